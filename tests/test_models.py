"""Line models, their JSON Schemas, and the quick checks compiled from them."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from jsonl_batch import schemas
from jsonl_batch.models import (
    BODY_MODELS,
    ChatCompletionsBody,
    OutputLine,
    endpoint_of,
)
from jsonl_batch.quickcheck import quick_check

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
    assert endpoint_of("/v1/images/generations") is None


def test_unknown_body_fields_are_allowed() -> None:
    body = ChatCompletionsBody.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "seed": 7}
    )
    assert body.model_extra == {"seed": 7}


def test_sample_output_and_error_lines_parse() -> None:
    for name in ("azure-chat.output.jsonl", "azure-chat.errors.jsonl"):
        for raw in (SAMPLES / name).read_bytes().splitlines():
            OutputLine.model_validate(json.loads(raw))


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-3, max_value=3)
    | st.floats(min_value=-1, max_value=3)
    | st.sampled_from(["", "user", "system", "robot", "text", "m", "auto"]),
    lambda c: (
        st.lists(c, max_size=3)
        | st.dictionaries(
            st.sampled_from(["role", "content", "type", "text", "url", "name", "x"]), c, max_size=3
        )
    ),
    max_leaves=8,
)
bodies = st.dictionaries(
    st.sampled_from(
        ["model", "messages", "input", "max_tokens", "temperature", "stream", "n", "prompt", "x"]
    ),
    values,
    max_size=5,
)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(sorted(BODY_MODELS)), bodies)
def test_quick_check_never_accepts_what_the_model_rejects(endpoint: str, body: dict) -> None:
    model = BODY_MODELS[endpoint]
    if quick_check(model)(body):
        try:
            model.model_validate(body)
        except ValidationError as exc:  # pragma: no cover - the failure being tested
            raise AssertionError(f"quick check accepted an invalid body: {exc}") from None


def test_quick_check_accepts_the_common_shapes() -> None:
    chat = quick_check(ChatCompletionsBody)
    assert chat({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5})
    assert not chat({"model": "m", "messages": []})
    assert not chat({"model": "m", "messages": [{"role": "user"}], "max_tokens": 0})
    assert chat({"model": "m", "messages": [{"role": "user"}], "temperature": None})
    assert not chat({"model": "m", "messages": [{"role": "user"}], "temperature": 2.5})
