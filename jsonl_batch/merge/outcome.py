"""What an output line says: its status, error, usage, assistant text or embedding.

These read parsed lines; the merge's fast path reads the usual shapes from bytes instead
(see ``join``) and falls back to these for everything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .summary import CANCELLED, EXPIRED, FAILED, SUCCEEDED, Usage


@dataclass(slots=True)
class Outcome:
    """The status of one request, as its output line says."""

    status: str
    http_status: int | None
    code: str | None
    message: str | None


def classify(line: Mapping[str, Any]) -> Outcome:
    """Status rules: success iff ``response.status_code == 200``; ``batch_expired`` and
    ``batch_cancelled`` error codes are expired / cancelled; anything else failed."""
    response = line.get("response")
    http_status = None
    body = None
    if isinstance(response, dict):
        raw_status = response.get("status_code")
        http_status = raw_status if type(raw_status) is int else None
        body = response.get("body")
        if http_status == 200:
            return Outcome(SUCCEEDED, 200, None, None)
    error = line.get("error") if isinstance(line.get("error"), dict) else None
    body_error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(body_error, dict):
        body_error = None
    code = (body_error or {}).get("code") or (error or {}).get("code")
    message = (body_error or {}).get("message") or (error or {}).get("message")
    if code == "batch_expired":
        return Outcome(EXPIRED, http_status, code, message)
    if code == "batch_cancelled":
        return Outcome(CANCELLED, http_status, code, message)
    if not code:
        code = f"http_{http_status}" if http_status is not None else "unknown_error"
    return Outcome(FAILED, http_status, str(code), message)


def usage_of(body: Any) -> Usage | None:
    """Token usage of a response body, chat or Responses shape."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return None
    total = Usage()
    add_usage(total, usage)
    return total


def text_of(body: Any) -> str | None:
    """The assistant text of a chat completion, Response or completion (first choice)."""
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("output_text"), str):
        return body["output_text"]
    choices = body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        choice = choices[0]
        message = choice.get("message")
        if isinstance(message, dict):
            content = message.get("content")
            if isinstance(content, str) or content is None:
                return content
            if isinstance(content, list):
                return "".join(part.get("text", "") for part in content if isinstance(part, dict))
        return choice.get("text") if isinstance(choice.get("text"), str) else None
    output = body.get("output")
    if isinstance(output, list):
        texts = [
            part.get("text", "")
            for item in output
            if isinstance(item, dict) and item.get("type") == "message"
            for part in item.get("content") or ()
            if isinstance(part, dict) and part.get("type") == "output_text"
        ]
        return "".join(texts) if texts else None
    return None


def embedding_of(body: Any) -> Any:
    """The embedding vector (one input) or vectors (several inputs) of an embeddings body."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        return None
    vectors = [item.get("embedding") for item in body["data"] if isinstance(item, dict)]
    return vectors[0] if len(vectors) == 1 else vectors


def request_model(request: Any) -> str | None:
    body = request.get("body") if isinstance(request, dict) else None
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


def add_usage(total: Usage, usage: dict[str, Any]) -> None:
    """Add a usage block (chat or Responses shape) to ``total``; called once per success."""
    prompt = usage.get("prompt_tokens")
    if prompt is not None:
        completion = usage.get("completion_tokens")
        prompt_details = usage.get("prompt_tokens_details")
        completion_details = usage.get("completion_tokens_details")
    else:
        prompt = usage.get("input_tokens")
        completion = usage.get("output_tokens")
        prompt_details = usage.get("input_tokens_details")
        completion_details = usage.get("output_tokens_details")
    if prompt.__class__ is int:
        total.prompt_tokens += prompt
    if completion.__class__ is int:
        total.completion_tokens += completion
    if prompt_details.__class__ is dict:
        cached = prompt_details.get("cached_tokens")
        if cached.__class__ is int:
            total.cached_tokens += cached
    if completion_details.__class__ is dict:
        reasoning = completion_details.get("reasoning_tokens")
        if reasoning.__class__ is int:
            total.reasoning_tokens += reasoning
