"""What a finished batch contains: deterministic model replies, per-request failures and the
output / error files, written in an order different from the input.

Every reply is derived from the seed and the line's ``custom_id`` (text, completion tokens,
ids, which lines fail), so a test can submit the same file twice and assert the same
results. ``usage.prompt_tokens`` comes from the project's token counter, so an estimate and
the emulator's bill agree.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..formats.wire import endpoint_of
from ..jsonl import AtomicWriter, Line, read_lines
from ..tokens import RequestTokens, TokenCounter

# Lines are shuffled within blocks of this many, so order differs from the input while
# memory stays bounded whatever the file size.
SHUFFLE_BLOCK = 64

_WORDS = (
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "batch",
    "jobs",
    "run",
    "through",
    "night",
    "and",
    "every",
    "request",
    "gets",
    "its",
    "answer",
    "in",
    "good",
    "time",
)

_SAFE = {"filtered": False, "severity": "safe"}
_CONTENT_FILTER = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}
_PROMPT_FILTER = {**_CONTENT_FILTER, "jailbreak": {"filtered": False, "detected": False}}

_HTTP_ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("invalid_request_error", "invalid_request", "The request is invalid."),
    401: ("invalid_request_error", "invalid_api_key", "Access denied."),
    403: ("invalid_request_error", "forbidden", "The request was refused."),
    404: ("invalid_request_error", "not_found", "The deployment was not found."),
    408: ("server_error", "timeout", "The request timed out."),
    429: (
        "rate_limit_error",
        "rate_limit_exceeded",
        "Rate limit reached for requests. Please try again later.",
    ),
    500: (
        "server_error",
        "server_error",
        "The server had an error while processing your request. Sorry about that!",
    ),
    502: ("server_error", "bad_gateway", "Bad gateway."),
    503: (
        "server_error",
        "service_unavailable",
        "The engine is currently overloaded, please try again later.",
    ),
    504: ("server_error", "timeout", "The server timed out while processing the request."),
}

EXPIRED_ERROR = {
    "code": "batch_expired",
    "message": "This request could not be executed before the completion window expired.",
}


def hex_id(*parts: object, length: int = 32) -> str:
    """A stable hex id derived from ``parts``."""
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:length]


def uuid_like(*parts: object) -> str:
    raw = hex_id(*parts)
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:32]}"


@dataclass
class ResultSettings:
    """Everything that decides a batch's results besides its input file."""

    batch_id: str
    flavor: str
    seed: int
    deployments: dict[str, str]
    failure_rate: float
    failure_statuses: list[int]
    created: int
    done_fraction: float | None = None
    """None: every request ran. Else only this share ran (cancelled or expired batch)."""
    expired: bool = False


@dataclass
class ResultCounts:
    completed: int
    failed: int


def count_request(counter: TokenCounter, line: Line) -> RequestTokens:
    """The token counter's view of one request line (input tokens, output cap, model)."""
    endpoint = endpoint_of(str(line.obj.get("url", ""))) or ""
    return counter.count_body(endpoint, line.obj["body"])


def scan_input(path: Path, counter: TokenCounter) -> dict[str, Any]:
    """Deployment (first line's ``body.model``), request count and input tokens of a file.

    This is what Azure compares against the enqueued-token quota.
    """
    deployment: str | None = None
    total = 0
    tokens = 0
    for line in _request_lines(path):
        body = line.obj["body"]
        if deployment is None and isinstance(body.get("model"), str):
            deployment = body["model"]
        total += 1
        tokens += count_request(counter, line).input_tokens
    return {"deployment": deployment, "requests": total, "input_tokens": tokens}


def _request_lines(path: Path) -> Iterator[Line]:
    for line in read_lines(path):
        if line.ok and isinstance(line.obj.get("body"), dict):
            yield line


def processing_order(path: Path, batch_id: str, seed: int) -> Iterator[Line]:
    """The request lines in the order the emulator "finishes" them.

    Each block of lines is reversed, then shuffled with a seeded generator: never the input
    order for a block of two or more, and memory holds one block at most.
    """
    block: list[Line] = []
    index = 0
    for line in _request_lines(path):
        block.append(line)
        if len(block) == SHUFFLE_BLOCK:
            yield from _shuffled(block, batch_id, seed, index)
            block = []
            index += 1
    if block:
        yield from _shuffled(block, batch_id, seed, index)


def _shuffled(block: list[Line], batch_id: str, seed: int, index: int) -> list[Line]:
    order = block[::-1]
    random.Random(hex_id(seed, batch_id, index)).shuffle(order)
    if len(order) > 1 and all(a is b for a, b in zip(order, block, strict=True)):
        order = order[1:] + order[:1]
    return order


def write_results(
    input_path: Path,
    settings: ResultSettings,
    counter: TokenCounter,
    output_path: Path,
    error_path: Path,
    total: int,
) -> ResultCounts:
    """Write the output and error files of a batch; returns how many succeeded and failed."""
    done = total if settings.done_fraction is None else math.floor(settings.done_fraction * total)
    completed = failed = 0
    with AtomicWriter(output_path) as output, AtomicWriter(error_path) as errors:
        for position, line in enumerate(
            processing_order(input_path, settings.batch_id, settings.seed)
        ):
            custom_id = str(line.obj.get("custom_id"))
            line_id = "batch_req_" + hex_id(settings.seed, settings.batch_id, custom_id)
            if position >= done:
                if settings.expired:
                    errors.write(
                        {
                            "id": line_id,
                            "custom_id": custom_id,
                            "response": None,
                            "error": EXPIRED_ERROR,
                        }
                    )
                    failed += 1
                continue
            status, body = reply(line, settings, counter)
            envelope = {
                "id": line_id,
                "custom_id": custom_id,
                "response": {
                    "status_code": status,
                    "request_id": uuid_like(settings.seed, settings.batch_id, custom_id, "req"),
                    "body": body,
                },
                "error": None,
            }
            if status == 200:
                output.write(envelope)
                completed += 1
            else:
                errors.write(envelope)
                failed += 1
    return ResultCounts(completed, failed)


def reply(
    line: Line, settings: ResultSettings, counter: TokenCounter
) -> tuple[int, dict[str, Any]]:
    """The HTTP status and body the "model" returns for one request line."""
    custom_id = str(line.obj.get("custom_id"))
    rng = random.Random(hex_id(settings.seed, custom_id))
    # Drawn whether or not failures are on, so a line's reply never depends on the faults.
    if rng.random() < settings.failure_rate:
        status = settings.failure_statuses[rng.randrange(len(settings.failure_statuses))]
        kind, code, message = _HTTP_ERRORS.get(
            status, ("server_error", str(status), f"The request failed with HTTP {status}.")
        )
        return status, {"error": {"message": message, "type": kind, "param": None, "code": code}}
    body = line.obj["body"]
    endpoint = endpoint_of(str(line.obj.get("url", "")))
    counted = count_request(counter, line)
    prompt_tokens, cap = counted.input_tokens, counted.max_output_tokens
    deployment = str(body.get("model", ""))
    model = settings.deployments.get(deployment, deployment)
    make = _BODIES.get(endpoint or "", _chat_body)
    return 200, make(rng, body, settings, custom_id, prompt_tokens, cap, deployment, model)


def _completion(rng: random.Random, cap: int | None) -> tuple[str, int, str]:
    tokens = rng.randint(8, 120)
    finish = "stop"
    if cap is not None and tokens >= cap:
        tokens, finish = max(1, int(cap)), "length"
    words = [rng.choice(_WORDS) for _ in range(tokens)]
    text = " ".join(words)
    return text[:1].upper() + text[1:] + ("." if finish == "stop" else ""), tokens, finish


def _chat_body(
    rng: random.Random,
    body: dict[str, Any],
    settings: ResultSettings,
    custom_id: str,
    prompt_tokens: int,
    cap: int | None,
    deployment: str,
    model: str,
) -> dict[str, Any]:
    n = body.get("n")
    n = n if isinstance(n, int) and n > 0 else 1
    choices = []
    completion_tokens = 0
    for index in range(n):
        text, tokens, finish = _completion(rng, cap)
        completion_tokens += tokens
        choice: dict[str, Any] = {
            "index": index,
            "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
            "finish_reason": finish,
            "logprobs": None,
        }
        if settings.flavor == "azure":
            choice["content_filter_results"] = _CONTENT_FILTER
        choices.append(choice)
    result: dict[str, Any] = {
        "id": "chatcmpl-" + hex_id(settings.seed, settings.batch_id, custom_id, "chat", length=29),
        "object": "chat.completion",
        "created": settings.created,
        "model": model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
        "system_fingerprint": "fp_" + hex_id(model, length=10),
    }
    if settings.flavor == "azure":
        result["prompt_filter_results"] = [
            {"prompt_index": 0, "content_filter_results": _PROMPT_FILTER}
        ]
    return result


def _responses_body(
    rng: random.Random,
    body: dict[str, Any],
    settings: ResultSettings,
    custom_id: str,
    prompt_tokens: int,
    cap: int | None,
    deployment: str,
    model: str,
) -> dict[str, Any]:
    text, tokens, finish = _completion(rng, cap)
    return {
        "id": "resp_" + hex_id(settings.seed, settings.batch_id, custom_id, "resp", length=48),
        "object": "response",
        "created_at": float(settings.created),
        "status": "completed" if finish == "stop" else "incomplete",
        "incomplete_details": None if finish == "stop" else {"reason": "max_output_tokens"},
        "error": None,
        # Azure reports the deployment name in Responses bodies, the model in chat bodies.
        "model": deployment if settings.flavor == "azure" else model,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "output": [
            {
                "id": "msg_"
                + hex_id(settings.seed, settings.batch_id, custom_id, "msg", length=48),
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [
                    {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
                ],
            }
        ],
        "parallel_tool_calls": True,
        "service_tier": "default",
        "store": True,
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text", {"format": {"type": "text"}}),
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "top_p": body.get("top_p", 1.0),
        "usage": {
            "input_tokens": prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt_tokens + tokens,
        },
    }


def _embeddings_body(
    rng: random.Random,
    body: dict[str, Any],
    settings: ResultSettings,
    custom_id: str,
    prompt_tokens: int,
    cap: int | None,
    deployment: str,
    model: str,
) -> dict[str, Any]:
    raw_input = body.get("input")
    inputs = (
        raw_input
        if isinstance(raw_input, list) and raw_input and not isinstance(raw_input[0], int)
        else [raw_input]
    )
    dimensions = body.get("dimensions")
    dimensions = dimensions if isinstance(dimensions, int) else 8
    data = []
    for index in range(len(inputs)):
        vector = [rng.uniform(-1, 1) for _ in range(dimensions)]
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        data.append(
            {"object": "embedding", "index": index, "embedding": [v / norm for v in vector]}
        )
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def _completions_body(
    rng: random.Random,
    body: dict[str, Any],
    settings: ResultSettings,
    custom_id: str,
    prompt_tokens: int,
    cap: int | None,
    deployment: str,
    model: str,
) -> dict[str, Any]:
    text, tokens, finish = _completion(rng, cap)
    return {
        "id": "cmpl-" + hex_id(settings.seed, settings.batch_id, custom_id, "cmpl", length=29),
        "object": "text_completion",
        "created": settings.created,
        "model": model,
        "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": tokens,
            "total_tokens": prompt_tokens + tokens,
        },
    }


_BODIES = {
    "chat/completions": _chat_body,
    "responses": _responses_body,
    "embeddings": _embeddings_body,
    "completions": _completions_body,
}
