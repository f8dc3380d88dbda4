"""Output and error line shapes: each one read right, and merge over random mixes of them.

The shapes are the ones the services write (tests/corpus has a real file of each): OpenAI's
compact lines, Azure's (no ``id``, keys in another order), vLLM's bare completion and its
string, flat and nested errors, ``batch_expired`` / ``batch_cancelled``. A line of no known
shape must come out as ``unrecognized_output_line``, never as a silent ``unknown_error``.
"""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jsonl_batch.formats.output_lines import UNRECOGNIZED, classify
from jsonl_batch.merge import merge

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi."}}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
}
Shape = Callable[[str], dict[str, Any]]

# name -> (line for a custom_id, expected status, expected code, expected message)
SHAPES: dict[str, tuple[Shape, str, str | None, str | None]] = {
    "openai_success": (
        lambda cid: {
            "id": "batch_req_1",
            "custom_id": cid,
            "response": {"status_code": 200, "request_id": "r", "body": COMPLETION},
            "error": None,
        },
        "succeeded",
        None,
        None,
    ),
    "azure_success": (
        lambda cid: {
            "custom_id": cid,
            "response": {
                "body": {**COMPLETION, "prompt_filter_results": []},
                "request_id": "r",
                "status_code": 200,
            },
            "error": None,
        },
        "succeeded",
        None,
        None,
    ),
    "vllm_bare_completion": (
        lambda cid: {"id": "vllm-1", "custom_id": cid, "response": COMPLETION, "error": None},
        "succeeded",
        None,
        None,
    ),
    "openai_http_error": (
        lambda cid: {
            "id": "batch_req_2",
            "custom_id": cid,
            "response": {
                "status_code": 400,
                "request_id": "r",
                "body": {"error": {"message": "too long", "code": "context_length_exceeded"}},
            },
            "error": None,
        },
        "failed",
        "context_length_exceeded",
        "too long",
    ),
    "azure_content_filter": (
        lambda cid: {
            "custom_id": cid,
            "response": {
                "body": {
                    "error": {
                        "code": "content_filter",
                        "message": "filtered",
                        "innererror": {"content_filter_result": {"hate": {"filtered": True}}},
                    }
                },
                "request_id": "r",
                "status_code": 400,
            },
            "error": None,
        },
        "failed",
        "content_filter",
        "filtered",
    ),
    "vllm_string_error": (
        lambda cid: {
            "id": "vllm-2",
            "custom_id": cid,
            "response": {"status_code": 400, "request_id": "vllm-batch-1", "body": None},
            "error": "URL /bad_url was used.",
        },
        "failed",
        "http_400",
        "URL /bad_url was used.",
    ),
    "vllm_flat_error": (
        lambda cid: {
            "id": "vllm-3",
            "custom_id": cid,
            "response": {"status_code": 404, "request_id": "vllm-batch-2", "body": None},
            "error": {"object": "error", "message": "no model", "type": "NotFound", "code": 404},
        },
        "failed",
        "404",
        "no model",
    ),
    "vllm_nested_error": (
        lambda cid: {
            "id": "vllm-4",
            "custom_id": cid,
            "response": {"status_code": 404, "request_id": "vllm-batch-3", "body": None},
            "error": {"error": {"message": "no model", "type": "NotFound", "code": 404}},
        },
        "failed",
        "404",
        "no model",
    ),
    "expired": (
        lambda cid: {
            "id": "batch_req_3",
            "custom_id": cid,
            "response": None,
            "error": {"code": "batch_expired", "message": "expired"},
        },
        "expired",
        "batch_expired",
        "expired",
    ),
    "cancelled": (
        lambda cid: {"custom_id": cid, "error": {"code": "batch_cancelled", "message": "x"}},
        "cancelled",
        "batch_cancelled",
        "x",
    ),
    "no_response_no_error": (
        lambda cid: {"id": "batch_req_4", "custom_id": cid, "response": None, "error": None},
        "failed",
        UNRECOGNIZED,
        None,
    ),
    "response_not_an_object": (
        lambda cid: {"custom_id": cid, "response": [COMPLETION], "error": None},
        "failed",
        UNRECOGNIZED,
        None,
    ),
    "string_status": (
        lambda cid: {"custom_id": cid, "response": {"status_code": "200", "body": COMPLETION}},
        "failed",
        UNRECOGNIZED,
        None,
    ),
    "empty_error": (
        lambda cid: {"custom_id": cid, "response": None, "error": {}},
        "failed",
        UNRECOGNIZED,
        None,
    ),
}
GARBAGE_OUTPUTS = [b"{not json\n", b'{"no_custom_id": 1}\n', b"[1, 2]\n"]
GARBAGE_INPUTS = ["{}}", "{} garbage", "{},{}"]  # appended to a request object


def test_every_shape_reads_as_the_service_meant() -> None:
    for name, (make, status, code, message) in SHAPES.items():
        outcome = classify(make("x"))
        assert (outcome.status, outcome.code) == (status, code), name
        if code == UNRECOGNIZED:
            assert outcome.message and outcome.message.startswith("output line not recognised")
        else:
            assert outcome.message == message, name


def _request(custom_id: str, compact: bool) -> bytes:
    request = {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": custom_id}]},
    }
    return orjson.dumps(request) if compact else json.dumps(request).encode()


def _line(obj: dict[str, Any], compact: bool) -> bytes:
    return (orjson.dumps(obj) if compact else json.dumps(obj).encode()) + b"\n"


@st.composite
def batches(draw: st.DrawFn) -> dict[str, Any]:
    names = [*SHAPES, "missing"]
    n = draw(st.integers(min_value=1, max_value=30))
    plan = draw(st.lists(st.sampled_from(names), min_size=n, max_size=n))
    ids = [f"req-{i}" if draw(st.booleans()) else f'req "{i}" é' for i in range(n)]
    return {
        "plan": list(zip(ids, plan, strict=True)),
        "compact": draw(st.lists(st.booleans(), min_size=n, max_size=n)),
        "garbage_outputs": draw(st.lists(st.sampled_from(GARBAGE_OUTPUTS), max_size=3)),
        "garbage_inputs": draw(
            st.lists(st.tuples(st.integers(0, n), st.sampled_from(GARBAGE_INPUTS)), max_size=3)
        ),
        "seed": draw(st.integers(0, 2**16)),
    }


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=batches())
def test_merge_keeps_every_request_once_with_its_status(
    batch: dict[str, Any], tmp_path: Path
) -> None:
    rng = random.Random(batch["seed"])
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    # the input: one line per request, with broken lines (an object with more after it)
    lines = [
        _request(cid, compact)
        for (cid, _), compact in zip(batch["plan"], batch["compact"], strict=True)
    ]
    for at, tail in sorted(batch["garbage_inputs"], reverse=True):
        lines.insert(at, _request(f"broken-{at}", True)[:-1] + tail.encode())
    source = folder / "in.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    # the outputs: successes in one file, the rest in the other, shuffled, with garbage
    outputs: list[bytes] = []
    errors: list[bytes] = [*batch["garbage_outputs"]]
    for (cid, shape), compact in zip(batch["plan"], batch["compact"], strict=True):
        if shape == "missing":
            continue
        make, status, _, _ = SHAPES[shape]
        (outputs if status == "succeeded" else errors).append(_line(make(cid), compact))
    rng.shuffle(outputs)
    rng.shuffle(errors)
    (folder / "out.jsonl").write_bytes(b"".join(outputs))
    (folder / "err.jsonl").write_bytes(b"".join(errors))

    result = merge(source, [folder / "out.jsonl"], [folder / "err.jsonl"], out_dir=folder, jobs=1)

    rows = [orjson.loads(line) for line in result.results_path.read_bytes().splitlines()]
    assert [row["custom_id"] for row in rows] == [cid for cid, _ in batch["plan"]]
    for row, (_cid, shape) in zip(rows, batch["plan"], strict=True):
        if shape == "missing":
            assert row["status"] == "missing"
            continue
        _, status, code, message = SHAPES[shape]
        assert row["status"] == status, (shape, row)
        if status == "succeeded":
            assert row["response"]["choices"][0]["message"]["content"] == "Hi."
        else:
            assert row["error"]["code"] == code, (shape, row)
            if message is not None:
                assert row["error"]["message"] == message, (shape, row)
    retried = result.retry_path.read_bytes().splitlines() if result.retry_path else []
    assert retried == [
        line
        for line in lines
        if not line.startswith(b'{"custom_id":"broken-')
        and dict(batch["plan"])[orjson.loads(line)["custom_id"]]
        not in {name for name, (_, status, _, _) in SHAPES.items() if status == "succeeded"}
    ]
    unrecognized = sum(
        1 for _, shape in batch["plan"] if SHAPES.get(shape, (0, 0, 0))[2] == UNRECOGNIZED
    )
    assert result.problem_counts["unrecognized_output_line"] == unrecognized
    assert result.problem_counts["invalid_output_line"] == len(batch["garbage_outputs"])
    assert result.problem_counts["invalid_input_line"] == len(batch["garbage_inputs"])
    where = [p.where for p in result.problems if p.kind == "unrecognized_output_line"]
    assert all(w and w.startswith(str(folder / "err.jsonl") + ":") for w in where)
