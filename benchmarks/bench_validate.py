"""validate: MB/s on one core against a naive json.loads + full pydantic model per line, and
against parsing each line with orjson and nothing else (what reading the file costs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from jsonl_batch.formats.wire import BODY_MODELS, RequestLine, endpoint_of
from jsonl_batch.validate import validate_file

from ._util import peak_rss_mb, row, throughput
from .generate import generate_requests


def naive_validate(path: Path) -> int:
    """The baseline: parse with json, build the full pydantic models, collect errors."""
    problems = 0
    with open(path, "rb") as f:
        for raw in f:
            try:
                line = RequestLine.model_validate(json.loads(raw))
                model: type[BaseModel] = BODY_MODELS[endpoint_of(line.url) or "chat/completions"]
                model.model_validate(line.body)
            except (ValueError, ValidationError):
                problems += 1
    return problems


def orjson_parse(path: Path) -> int:
    """The floor: read the lines and parse each with orjson, checking nothing."""
    parsed = 0
    loads = orjson.loads
    with open(path, "rb") as f:
        for raw in f:
            loads(raw)
            parsed += 1
    return parsed


def run(tmpdir: Path, lines: int = 200_000) -> list[dict[str, Any]]:
    small = tmpdir / "validate-small.jsonl"
    big = tmpdir / "validate-big.jsonl"
    size = generate_requests(small, lines, seed=1)
    generate_requests(big, lines * 2, seed=2)
    ours = throughput(lambda: validate_file(small), size)
    naive = throughput(lambda: naive_validate(small), size)
    floor = throughput(lambda: orjson_parse(small), size)
    code = "from jsonl_batch.validate import validate_file; validate_file({!r})"
    rss_small = peak_rss_mb(code.format(str(small)))
    rss_big = peak_rss_mb(code.format(str(big)))
    return [
        row(
            "validate",
            f"{lines:,} lines, {size / 1e6:.0f} MB",
            ours,
            "json.loads + pydantic per line",
            naive,
            rss_small,
        ),
        row("validate", "same file", ours, "orjson parse loop (read + orjson.loads)", floor),
        row("validate", f"peak RSS at 2x the file ({lines * 2:,} lines)", ours, peak_rss=rss_big),
    ]
