"""Line models, their JSON Schemas, and the quick checks compiled from them."""

from __future__ import annotations

import json

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from jsonl_batch import schemas
from jsonl_batch.formats.wire import (
    BODY_MODELS,
    ChatCompletionsBody,
    OutputLine,
    endpoint_of,
)
from jsonl_batch.quickcheck import quick_check, quick_struct

from .conftest import ROOT, SAMPLES


def test_schema_files_match_the_models() -> None:
    generated = schemas.generate()
    for stem, schema in generated.items():
        path = ROOT / "schemas" / f"{stem}.schema.json"
        assert path.exists(), f"run `python -m jsonl_batch.schemas`: {path} is missing"
        assert path.read_bytes() == schemas.render(schema), (
            f"{path} drifted from the model; run `python -m jsonl_batch.schemas`"
        )


def test_endpoint_of_accepts_every_url_form() -> None:
    assert endpoint_of("/v1/chat/completions") == "chat/completions"
    assert endpoint_of("/chat/completions") == "chat/completions"
    assert endpoint_of("/openai/v1/responses") == "responses"
    assert endpoint_of("/v1/images/generations") == "images/generations"
    assert endpoint_of("/v1/fine_tuning/jobs") is None


def test_unknown_body_fields_are_allowed() -> None:
    body = ChatCompletionsBody.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "seed": 7}
    )
    assert body.model_extra == {"seed": 7}


def test_sample_output_and_error_lines_parse() -> None:
    for name in ("azure-chat.output.jsonl", "azure-chat.errors.jsonl"):
        for raw in (SAMPLES / name).read_bytes().splitlines():
            OutputLine.model_validate(json.loads(raw))


# Mostly-valid bodies with random mutations: the interesting inputs for the quick checks.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-2, max_value=3),
    st.floats(min_value=-1, max_value=3, allow_nan=False),
    st.text(max_size=2),
)
anything = st.recursive(
    scalars, lambda c: st.lists(c, max_size=2) | st.dictionaries(st.text(max_size=3), c, max_size=2)
)
roles = st.sampled_from(["system", "user", "assistant", "tool", "developer", "robot", ""])
image_url = st.fixed_dictionaries(
    {"url": st.one_of(st.text(max_size=3), scalars)},
    optional={"detail": st.sampled_from(["low", "high", "auto", "original", "x", None])},
)
part = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(["text", "image_url"]), scalars)},
    optional={"text": st.one_of(st.text(max_size=3), scalars), "image_url": image_url | scalars},
)
tool_call = st.fixed_dictionaries(
    {"type": st.just("function")},
    optional={
        "id": scalars,
        "function": st.fixed_dictionaries({"name": scalars, "arguments": scalars}) | scalars,
    },
)
message = st.fixed_dictionaries(
    {"role": roles | scalars},
    optional={
        "content": st.one_of(st.text(max_size=3), st.none(), st.lists(part, max_size=2), scalars),
        "name": scalars,
        "tool_calls": st.lists(tool_call, max_size=2) | scalars,
        "x": anything,
    },
)
body_fields = {
    "messages": st.lists(message, max_size=3) | scalars,
    "input": st.one_of(
        st.text(max_size=3),
        st.lists(st.text(max_size=2), max_size=2),
        st.lists(st.integers(-1, 3), max_size=2),
        st.lists(st.lists(st.integers(0, 3), max_size=2), max_size=2),
        anything,
    ),
    "prompt": st.text(max_size=3) | st.lists(st.integers(0, 3), max_size=2) | scalars,
    "max_tokens": scalars,
    "max_output_tokens": scalars,
    "temperature": scalars,
    "top_p": scalars,
    "n": scalars,
    "stream": scalars,
    "dimensions": scalars,
    "encoding_format": st.sampled_from(["float", "base64", "x"]) | scalars,
    "tools": st.lists(st.fixed_dictionaries({"type": scalars}), max_size=2) | scalars,
    "instructions": scalars,
    "extra": anything,
}
bodies = st.fixed_dictionaries(
    {"model": st.text(max_size=3) | scalars},
    optional=body_fields,
)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(sorted(BODY_MODELS)), bodies)
def test_quick_check_never_accepts_what_the_model_rejects(endpoint: str, body: dict) -> None:
    model = BODY_MODELS[endpoint]
    if quick_check(model)(body):
        try:
            model.model_validate(body)
        except ValidationError as exc:  # pragma: no cover - the failure being tested
            raise AssertionError(f"quick check accepted an invalid body: {exc}") from None


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(sorted(BODY_MODELS)), bodies)
def test_quick_struct_accepts_what_the_quick_check_accepts_and_no_more(
    endpoint: str, body: dict
) -> None:
    """The validator's msgspec types answer as the quick check does: never accept what the
    model rejects, and miss nothing the quick check takes (so the fast path stays fast)."""
    model = BODY_MODELS[endpoint]
    kind = quick_struct(model)
    if kind is None:
        return
    try:
        msgspec.convert(body, kind)
    except msgspec.ValidationError:
        accepted = False
    else:
        accepted = True
    assert accepted == quick_check(model)(body)


def test_quick_struct_pins_the_model() -> None:
    kind = quick_struct(ChatCompletionsBody, model="gpt-4o")
    good = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}
    assert msgspec.convert(good, kind).messages[0].content == "x"
    for other in ({**good, "model": "gpt-4.1"}, {"messages": good["messages"]}):
        try:
            msgspec.convert(other, kind)
        except msgspec.ValidationError:
            continue
        raise AssertionError(f"accepted {other}")


def test_quick_check_accepts_the_common_shapes() -> None:
    chat = quick_check(ChatCompletionsBody)
    assert chat({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5})
    assert not chat({"model": "m", "messages": []})
    assert not chat({"model": "m", "messages": [{"role": "user"}], "max_tokens": 0})
    assert chat({"model": "m", "messages": [{"role": "user"}], "temperature": None})
    assert not chat({"model": "m", "messages": [{"role": "user"}], "temperature": 2.5})
