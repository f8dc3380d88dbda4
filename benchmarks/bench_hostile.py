"""hostile input: peak RSS of each command on files built to exhaust memory.

Every figure is one real ``python -m jsonl_batch`` process (``ru_maxrss`` through
``run_measured``). ``/dev/zero`` is one line that never ends: the command is killed after
10 s of reading it (it would read forever; the point is that memory stays flat). The
bounds the issue set: under 100 MB for 4 M blank lines and for /dev/zero with the cap.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

from ._util import run_measured

JSONL_BATCH = [sys.executable, "-m", "jsonl_batch"]
ZERO_SECONDS = 10.0


def _files(tmpdir: Path) -> dict[str, Path]:
    blank = tmpdir / "blank-4m.jsonl"
    blank.write_bytes(b"\n" * 4_000_000)
    newlines = tmpdir / "newlines-200mb.jsonl.gz"
    with gzip.open(newlines, "wb", compresslevel=1) as out:
        block = b"\n" * (1 << 20)
        for _ in range(200):
            out.write(block)
    invalid = tmpdir / "invalid-1m.jsonl"
    invalid.write_bytes(b"{not json\n" * 1_000_000)
    word = tmpdir / "one-50mb-word.jsonl"
    request = {
        "custom_id": "w",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "a" * 50_000_000}]},
    }
    word.write_text(json.dumps(request) + "\n")
    small = tmpdir / "one.jsonl"
    small.write_text(json.dumps({**request, "body": {**request["body"], "messages": []}}) + "\n")
    return {"blank": blank, "newlines": newlines, "invalid": invalid, "word": word, "one": small}


def run(tmpdir: Path) -> list[dict[str, Any]]:
    files = _files(tmpdir)
    out = str(tmpdir / "out")
    one = str(files["one"])
    cases: list[tuple[str, list[str], float | None]] = [
        ("4 M blank lines", ["validate", str(files["blank"])], None),
        ("4 M blank lines", ["split", str(files["blank"]), "-o", out], None),
        ("4 M blank lines", ["estimate", str(files["blank"])], None),
        ("200 MB of newlines, gzipped", ["validate", str(files["newlines"])], None),
        ("1 M invalid lines", ["validate", str(files["invalid"])], None),
        ("1 M invalid lines", ["split", str(files["invalid"]), "-o", out], None),
        ("one 50 MB word", ["estimate", str(files["word"])], None),
    ]
    for command in ("validate", "estimate", "split"):
        extra = ["-o", out] if command == "split" else []
        for cap in ("16MiB", None):
            cases.append(
                (
                    f"/dev/zero, {ZERO_SECONDS:.0f} s, cap {cap or '256MiB (default)'}",
                    [command, "/dev/zero", *extra, *(["--max-line-bytes", cap] if cap else [])],
                    ZERO_SECONDS,
                )
            )
    for side, args in (
        ("input", ["--input", "/dev/zero", "--output-file", one]),
        ("output", ["--input", one, "--output-file", "/dev/zero"]),
    ):
        for cap in ("16MiB", None):
            cases.append(
                (
                    f"/dev/zero as merge {side}, {ZERO_SECONDS:.0f} s,"
                    f" cap {cap or '256MiB (default)'}",
                    ["merge", *args, "--out-dir", out, *(["--max-line-bytes", cap] if cap else [])],
                    ZERO_SECONDS,
                )
            )
    rows = []
    for what, args, seconds in cases:
        peak, status, _stderr = run_measured([*JSONL_BATCH, *args], seconds)
        ended = "killed while reading" if status == -9 else f"exit {status}"
        rows.append(
            {
                "command": args[0],
                "what": f"{what} ({ended})",
                "mb_per_s": None,
                "peak_rss_mb": round(peak, 1),
            }
        )
    return rows
