"""Fuzzing the commands that read files (issue 15): any bytes, plain or gzipped, whole or
cut short, given to validate, estimate, split or either side of merge, end in exit 0, 1 or
2 with a message, never a traceback, in bounded memory.

Bytes are drawn raw and from JSONL-like pieces (good request and output lines, broken
JSON, BOMs, CRLF, NUL, invalid UTF-8, very long tokens), so the fuzzer reaches past the
parser into the checks. Memory is traced per example (``tracemalloc``): a few KB of input
must not cost more than a few MB.
"""

from __future__ import annotations

import gzip
import json
import tempfile
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jsonl_batch.cli import main

REQUEST = json.dumps(
    {
        "custom_id": "r1",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
    }
).encode()
OUTPUT = json.dumps(
    {
        "id": "b1",
        "custom_id": "r1",
        "response": {"status_code": 200, "request_id": "q", "body": {"usage": {}}},
        "error": None,
    }
).encode()
PIECES = [
    REQUEST,
    REQUEST.replace(b'"r1"', b'"r2"'),
    OUTPUT,
    b"{",
    b"}",
    b"[1, 2]",
    b'{"custom_id": null}',
    b'{"a": NaN}',
    b"\xef\xbb\xbf",
    b"\r\n",
    b"\n",
    b"\x00",
    b"\xff\xfe",
    b'"\\ud800"',
    b"x" * 3000,
    b'{"custom_id": "r1", "custom_id": "r1"}',
]
MAX_LINE = "2000"  # small, so the fuzzer meets line_too_long too
MAX_TRACED_BYTES = 32 << 20

contents = st.one_of(
    st.binary(max_size=2000),
    st.lists(st.sampled_from(PIECES), max_size=30).map(b"".join),
)
# how the bytes reach the command: as they are, gzipped, gzipped and cut short, or as a
# .gz file that is not gzip at all
packings = st.sampled_from(["plain", "gzip", "gzip-truncated", "fake-gzip"])
COMMANDS = ["validate", "estimate", "split", "merge-input", "merge-output"]


def _write(folder: Path, data: bytes, packing: str) -> Path:
    if packing == "plain":
        path = folder / "fuzz.jsonl"
        path.write_bytes(data)
        return path
    path = folder / "fuzz.jsonl.gz"
    packed = gzip.compress(data, mtime=0)
    path.write_bytes(
        {"gzip": packed, "gzip-truncated": packed[: len(packed) // 2], "fake-gzip": data}[packing]
    )
    return path


def _args(command: str, path: Path, folder: Path) -> list[str]:
    good_requests = folder / "requests.jsonl"
    good_requests.write_bytes(REQUEST + b"\n")
    good_outputs = folder / "outputs.jsonl"
    good_outputs.write_bytes(OUTPUT + b"\n")
    out = str(folder / "out")
    return {
        "validate": ["validate", str(path)],
        "estimate": ["estimate", str(path)],
        "split": ["split", str(path), "-o", out],
        "merge-input": ["merge", "--input", str(path), "--output-file", str(good_outputs)],
        "merge-output": ["merge", "--input", str(good_requests), "--output-file", str(path)],
    }[command] + ["--max-line-bytes", MAX_LINE, *(["--out-dir", out] if "merge" in command else [])]


@pytest.fixture(scope="module", autouse=True)
def _tokenizer_loaded(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Load the tokenizer once before memory is traced: it is not what an input costs."""
    path = tmp_path_factory.mktemp("warm") / "one.jsonl"
    path.write_bytes(REQUEST + b"\n")
    CliRunner().invoke(main, ["estimate", str(path)])


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=contents, packing=packings, command=st.sampled_from(COMMANDS))
def test_any_bytes_give_an_exit_code_and_a_message(data: bytes, packing: str, command: str) -> None:
    runner = CliRunner()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = _write(folder, data, packing)
        tracemalloc.start()
        try:
            result = runner.invoke(main, _args(command, path, folder))
            _size, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert result.exit_code in (0, 1, 2), (command, packing, data[:200], result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        command,
        packing,
        data[:200],
        result.exception,
    )
    assert "Traceback" not in result.output and "Aborted" not in result.output
    assert result.output.strip(), (command, packing)  # a report or a message, never silence
    assert peak < MAX_TRACED_BYTES, (command, packing, peak)
