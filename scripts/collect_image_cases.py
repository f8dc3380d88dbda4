"""Collect image-input token cases from recorded HTTP cassettes (issue 13, image counting).

Usage::

    python scripts/collect_image_cases.py MIRRORS   # writes cases_images.jsonl.gz

``MIRRORS`` holds one bare git snapshot per project as ``<owner>+<name>/repo`` (the layout
of the snapshots the ``fetch`` tool makes); each needs the commit named in ``PROJECTS``.

Reads the VCR cassettes of the projects in ``PROJECTS`` at the commit named there and
writes every recorded request to api.openai.com or an Azure OpenAI endpoint that carries an
image or file input and whose response reports ``prompt_tokens`` / ``input_tokens``, in the
format of
``tests/data/token_cases/cases.jsonl.gz`` (fields in its README). Nothing is computed: the
body is the one recorded and the count the one the API returned. Requests already in
``cases.jsonl.gz`` (same endpoint, same body up to key order, same count) are skipped, and
so are repeats within the new ones. Every project here is a Python client's, so the cases
are ``fit`` under the held-out rule.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML: comes with the dev extras (pre-commit)

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from jsonl_batch.tokens.images import image_size_from_data_url  # noqa: E402

CASES_DIR = ROOT / "tests" / "data" / "token_cases"
OUTPUT = CASES_DIR / "cases_images.jsonl.gz"

# repo: (licence, commit, all media requests or only those with a file part). The
# projects taken in full before issue 13 (origin "collected") had their image requests
# collected then; their file (PDF) requests were left out, so only those are taken here.
PROJECTS = {
    "crewAIInc/crewAI": ("MIT", "f4731f5025f861c78e3af0487cc80bf5e7c64782", "all"),
    "pydantic/pydantic-ai": ("MIT", "4fda38988f2939fa6ea9cdefcf120693e10ef491", "all"),
    "Mirascope/mirascope": ("MIT", "41d433578653411dbff96c6eaca4fa869aafc931", "files"),
    "posit-dev/chatlas": ("MIT", "ea4531130e56d3c5bb003d87a1792dd942554b8d", "files"),
    "Arize-ai/openinference": ("Apache-2.0", "1fe497f1d9f45a07eee55d97fe185e020560f9c7", "files"),
    "DataDog/dd-trace-py": (
        "Apache-2.0 OR BSD-3-Clause",
        "3bb9ecda22830e3303b18b0ffa5abe7586aef6a7",
        "files",
    ),
    "traceloop/openllmetry": ("Apache-2.0", "93429cfb9767e6b51db6cb35f6b70f758117669a", "files"),
    "braintrustdata/braintrust-sdk": (
        "Apache-2.0",
        "a696a72395bb5829c8579af7e108c8c52745a685",
        "files",
    ),
    "bespokelabsai/curator": ("Apache-2.0", "8f26600e0a6b41f5fc1098ac2d4f22fe0ec95b97", "files"),
}
# pydantic-ai's cassette serializer sorts keys; from 2026-01-06 it also rewrites smart
# quotes and NFKC-normalises strings (its tests/json_body_serializer.py).
PYDANTIC_NFKC_FROM = "2026-01-06"
MEDIA = 'image_url|input_image|input_file|file_data|type: file$|"type": ?"file"'


def git(mirror: Path, *args: str) -> bytes:
    """A git command's output; empty when it finds nothing (``git grep`` exits 1)."""
    return subprocess.run(["git", "--git-dir", str(mirror), *args], capture_output=True).stdout


def cassettes(mirror: Path, commit: str) -> Iterator[tuple[str, bytes]]:
    """(path, text) of every YAML cassette that mentions an image or file part."""
    listing = git(mirror, "grep", "-l", "-I", "-E", MEDIA, commit, "--", "*.yaml", "*.yml")
    for line in listing.decode().splitlines():
        path = line.split(":", 1)[1]
        yield path, git(mirror, "show", f"{commit}:{path}")


def endpoint_of(uri: str) -> str | None:
    host = uri.split("/")[2] if "://" in uri else ""
    if host != "api.openai.com" and not host.endswith(".openai.azure.com"):
        return None
    path = uri.split("?")[0]
    for tail in ("/chat/completions", "/responses"):
        if path.endswith(tail):
            return "/v1" + tail
    return None


def body_of(side: dict[str, Any]) -> tuple[Any, str | None]:
    """(parsed body, raw text or None) of a recorded request or response."""
    if "parsed_body" in side:
        return side["parsed_body"], None
    body = side.get("body")
    if isinstance(body, dict):
        body = body.get("string")
    if isinstance(body, bytes):
        try:
            body = body.decode()
        except UnicodeDecodeError:
            return None, None
    if not isinstance(body, str):
        return None, None
    try:
        return json.loads(body), body
    except json.JSONDecodeError:
        return _sse_final(body), body


def _sse_final(text: str) -> Any:
    """The last event of a server-sent-event stream that carries usage, or None."""
    found = None
    for line in text.splitlines():
        if not line.startswith("data:"):
            continue
        try:
            event = json.loads(line[5:].strip())
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict):
            if isinstance(event.get("response"), dict) and event["response"].get("usage"):
                found = event["response"]
            elif event.get("usage"):
                found = event
    return found


def media_parts(value: Any) -> Iterator[dict[str, Any]]:
    """Every image or file content part in a request body, wherever it sits."""
    if isinstance(value, list):
        for item in value:
            yield from media_parts(item)
    elif isinstance(value, dict):
        if value.get("type") in ("image_url", "input_image", "file", "input_file"):
            yield value
            return
        for key in ("messages", "input", "content", "output"):
            yield from media_parts(value.get(key))


def describe(part: dict[str, Any]) -> dict[str, Any]:
    if part.get("type") in ("file", "input_file"):
        nested = part.get("file")
        inner: dict[str, Any] = nested if isinstance(nested, dict) else part
        data = inner.get("file_data") or inner.get("file_url") or ""
        kind = (
            "file_id"
            if inner.get("file_id")
            else ("data_url" if str(data).startswith("data:") else "url")
        )
        return {"source": kind, "file": True, "filename": inner.get("filename")}
    image = part.get("image_url")
    detail = part.get("detail")
    if isinstance(image, dict):
        detail = image.get("detail", detail)
        image = image.get("url")
    if not isinstance(image, str):
        return {"source": "file_id" if part.get("file_id") else "unknown", "detail": detail}
    size = image_size_from_data_url(image)
    if image.startswith("data:"):
        entry: dict[str, Any] = {"source": "data_url", "detail": detail}
        if size is not None:
            entry["width"], entry["height"] = size
        return entry
    return {"source": "url", "url": image, "detail": detail}


def _compact_lengths(body: Any) -> set[str]:
    """Byte lengths of ``body`` as compact JSON, the way clients send it."""
    return {
        str(len(json.dumps(body, ensure_ascii=ascii, separators=(",", ":")).encode()))
        for ascii in (True, False)
    }


def canonical(endpoint: str, body: Any, count: int) -> str:
    return json.dumps([endpoint, body, count], sort_keys=True, ensure_ascii=False)


def recorded_date(response: dict[str, Any], parsed: Any) -> str | None:
    created = (
        parsed.get("created") or parsed.get("created_at") if isinstance(parsed, dict) else None
    )
    if isinstance(created, int | float):
        return dt.datetime.fromtimestamp(created, dt.UTC).date().isoformat()
    return None


def collect(mirrors: Path) -> list[dict[str, Any]]:
    with gzip.open(CASES_DIR / "cases.jsonl.gz", "rt", encoding="utf-8") as handle:
        existing = [json.loads(line) for line in handle]
    seen = {
        canonical(c["endpoint"], c["request_body"], c["expected_prompt_tokens"]) for c in existing
    }
    out: list[dict[str, Any]] = []
    for repo, (licence, commit, which) in PROJECTS.items():
        mirror = mirrors / repo.replace("/", "+") / "repo"
        for path, text in cassettes(mirror, commit):
            try:
                data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            except yaml.YAMLError:
                continue
            interactions = data.get("interactions") if isinstance(data, dict) else None
            for index, interaction in enumerate(interactions or []):
                case = _case(repo, commit, licence, path, index, interaction)
                if case is None or (which == "files" and "file_input" not in case["caveats"]):
                    continue
                key = canonical(
                    case["endpoint"], case["request_body"], case["expected_prompt_tokens"]
                )
                if key in seen:
                    continue
                seen.add(key)
                out.append(case)
    return out


def _case(
    repo: str, commit: str, licence: str, path: str, index: int, interaction: dict[str, Any]
) -> dict[str, Any] | None:
    request, response = interaction.get("request") or {}, interaction.get("response") or {}
    endpoint = endpoint_of(str(request.get("uri", "")))
    if endpoint is None:
        return None
    body, raw = body_of(request)
    reply, _ = body_of(response)
    if not isinstance(body, dict) or not isinstance(reply, dict):
        return None
    usage = reply.get("usage") or {}
    field = "input_tokens" if endpoint == "/v1/responses" else "prompt_tokens"
    count = usage.get(field)
    parts = list(media_parts(body))
    if not isinstance(count, int) or not parts:
        return None
    if body.get("previous_response_id") or body.get("conversation"):
        return None  # stateful: the service adds turns the body does not show
    response_model = reply.get("model")
    model = body.get("model") if isinstance(body.get("model"), str) else response_model
    recorded = recorded_date(response, reply)
    caveats: list[str] = []
    body_check = "not_checkable"
    if repo == "pydantic/pydantic-ai":
        caveats.append("body_keys_sorted_by_cassette_serializer")
        if recorded is None or recorded >= PYDANTIC_NFKC_FROM:
            caveats.append("pydantic_ai_serializer_NFKC_smart_char_normalization_possible")
    elif raw is not None:
        length = (request.get("headers") or {}).get("content-length")
        length = length[0] if isinstance(length, list) else length
        if str(length) == str(len(raw.encode())):
            body_check = "content_length_header_matches_recorded_body"
        elif str(length) in _compact_lengths(body):
            body_check = "content_length_matches_after_whitespace_normalisation"
        elif length is not None:
            body_check = "content_length_differs"
    if repo == "posit-dev/chatlas":
        # its cassette serializer re-indents bodies; strings and key order are kept
        caveats.append("body_whitespace_reformatted_by_cassette_serializer")
    items = body.get("input")
    if isinstance(items, list) and any(
        isinstance(i, dict) and i.get("encrypted_content") for i in items
    ):
        caveats.append("encrypted_reasoning")
    tools = body.get("tools")
    tools = tools if isinstance(tools, list) else []
    if any(isinstance(t, dict) and t.get("type") not in ("function", "custom") for t in tools):
        caveats.append("hosted_tool")
    images = [describe(p) for p in parts]
    if any(i["source"] == "url" for i in images if not i.get("file")):
        caveats.append("remote_image_dims_unknown")
    if any(i.get("file") for i in images):
        caveats.append("file_input")
    features = ["stream"] if body.get("stream") else []
    if body.get("tools"):
        features.append("tools")
    source = f"github:{repo}@{commit[:12]}:{path}#interaction={index}"
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    return {
        "id": hashlib.sha256(source.encode()).hexdigest()[:16],
        "repo": repo,
        "path": path,
        "commit": commit,
        "recorded": recorded,
        "license": licence,
        "source": source,
        "endpoint": endpoint,
        "kind": "image",
        "model": model,
        "expected_prompt_tokens": count,
        "expected_field": field,
        "expected_from": "api",
        "response_model": response_model,
        "features": features,
        "caveats": caveats,
        "images": images,
        "notes": None,
        "split": "fit",
        "origin": "collected_images",
        "body_check": body_check,
        "cached_tokens": details.get("cached_tokens"),
        "request_body": body,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "mirrors", type=Path, help="directory of <owner>+<name>/repo bare git mirrors"
    )
    args = parser.parse_args()
    cases = collect(args.mirrors)
    lines = "".join(json.dumps(case, ensure_ascii=False) + "\n" for case in cases)
    with open(OUTPUT, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as handle:
        handle.write(lines.encode())  # mtime 0: the same cases give the same bytes
    print(f"{len(cases)} cases -> {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
