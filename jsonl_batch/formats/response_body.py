"""What a response body holds: usage, assistant text, embedding.

The status and error of an output line are read by :mod:`jsonl_batch.formats.output_lines`;
these read the body it hands back (merge when it joins, :mod:`.results` when it reads merge's
rows back). The merge's fast path reads the usual shapes from bytes instead (see
``merge/join``) and falls back to these for everything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Usage:
    """Token totals; reasoning tokens are part of completion tokens, as the API counts them."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.cached_tokens += other.cached_tokens
        self.completion_tokens += other.completion_tokens
        self.reasoning_tokens += other.reasoning_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "completion_tokens": self.completion_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "total_tokens": self.total_tokens,
        }


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
