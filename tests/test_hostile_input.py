"""Hostile input never gets a traceback and never unbounded memory (issue 15, items 1-3).

Broken gzip, lines without end, millions of blank or broken lines, pipes and devices: every
command answers with a message that names the file (and the line) and exits 0, 1 or 2, and
its peak memory stays bounded. Memory is measured on a real subprocess (``wait4``'s
``ru_maxrss``), with generous bounds and no timing.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import threading
import zlib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from benchmarks._util import run_measured
from jsonl_batch.cli import main
from jsonl_batch.errors import InputError
from jsonl_batch.jsonl import read_lines
from jsonl_batch.merge import merge
from jsonl_batch.split import split_file
from jsonl_batch.validate import MAX_FINDINGS_PER_CODE, validate_file

from .conftest import ROOT

JSONL_BATCH = [sys.executable, "-m", "jsonl_batch"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def request(i: int, text: str = "hello") -> dict[str, Any]:
    return {
        "custom_id": f"r{i}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]},
    }


def output(i: int) -> dict[str, Any]:
    return {
        "id": f"b{i}",
        "custom_id": f"r{i}",
        "response": {
            "status_code": 200,
            "request_id": f"q{i}",
            "body": {
                "model": "gpt-4o",
                "choices": [{"message": {"role": "assistant", "content": "hi"}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
            },
        },
        "error": None,
    }


def jsonl(objs: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objs)


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def assert_clean_failure(result: Result, *names: str) -> None:
    """Exit 1 with ``error: <file>...`` and a hint: no traceback, no click "Aborted!"."""
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "Aborted" not in result.output
    assert "error: " in result.output and "hint: " in result.output
    for name in names:
        assert name in result.output


# --- 1. broken gzip ---------------------------------------------------------------------


def _broken_gzips(folder: Path) -> dict[str, Path]:
    """The four ways a .jsonl.gz breaks, as the issue found them."""
    data = gzip.compress(jsonl([request(i, "x " * 50) for i in range(400)]), mtime=0)
    corrupt = bytearray(data)
    corrupt[20] ^= 0xFF  # inside the first deflate block header: zlib.error
    with pytest.raises(zlib.error):
        gzip.decompress(bytes(corrupt))
    kinds = {
        "corrupt": bytes(corrupt),
        "truncated": data[: len(data) // 2],
        "not-gzip": jsonl([request(1)]),
        "trailing-garbage": data + b"garbage!",
    }
    paths = {}
    for kind, content in kinds.items():
        paths[kind] = folder / f"{kind}.jsonl.gz"
        paths[kind].write_bytes(content)
    return paths


@pytest.mark.parametrize("kind", ["corrupt", "truncated", "not-gzip", "trailing-garbage"])
def test_a_broken_gzip_is_a_clear_error_in_every_command(tmp_path: Path, kind: str) -> None:
    broken = str(_broken_gzips(tmp_path)[kind])
    requests = tmp_path / "requests.jsonl"
    requests.write_bytes(jsonl([request(i) for i in range(3)]))
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_bytes(jsonl([output(i) for i in range(3)]))
    for args in (
        ["validate", broken],
        ["estimate", broken],
        ["split", broken, "--out-dir", str(tmp_path / "shards")],
        [
            "merge",
            "--input",
            broken,
            "--output-file",
            str(outputs),
            "--out-dir",
            str(tmp_path / "a"),
        ],
        [
            "merge",
            "--input",
            str(requests),
            "--output-file",
            broken,
            "--out-dir",
            str(tmp_path / "b"),
        ],
    ):
        result = cli(*args)
        assert_clean_failure(result, broken)
        assert "cannot read past byte" in result.output, (args, result.output)
    # nothing was written anywhere
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{k}.jsonl.gz" for k in ("corrupt", "truncated", "not-gzip", "trailing-garbage")]
        + ["requests.jsonl", "outputs.jsonl"]
    )


def test_read_lines_names_the_line_where_a_gzip_stream_breaks(tmp_path: Path) -> None:
    truncated = _broken_gzips(tmp_path)["truncated"]
    with pytest.raises(Exception, match=r"truncated\.jsonl\.gz:\d+: cannot read past byte \d+"):
        for _ in read_lines(truncated):
            pass


# --- 2. memory without bound -----------------------------------------------------------


def test_a_line_over_the_cap_is_one_error_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    path.write_bytes(
        jsonl([request(1)])
        + json.dumps(request(2, "y" * 5000)).encode()
        + b"\n"
        + jsonl([request(3)])
    )
    report = validate_file(path, max_line_bytes=1000)
    assert [(f.code, f.line) for f in report.findings] == [("line_too_long", 2)]
    assert report.requests == 3 and report.bytes == path.stat().st_size
    lines = list(read_lines(path, max_line_bytes=1000))
    assert [line.size for line in lines] == [len(x) for x in path.read_bytes().splitlines(True)]
    assert lines[1].raw == b"" and lines[2].obj["custom_id"] == "r3"

    result = cli("validate", str(path), "--max-line-bytes", "1000")
    assert result.exit_code == 1 and "line_too_long" in result.output
    result = cli("split", str(path), "--out-dir", str(tmp_path / "s"), "--max-line-bytes", "1000")
    assert result.exit_code == 1 and "line_too_long" in result.output
    # estimate reports unreadable lines as warnings: exit 1 only with --strict
    result = cli("estimate", str(path), "--max-line-bytes", "1000", "--format", "json", "--strict")
    assert result.exit_code == 1 and "longer than the 1,000 bytes" in result.output
    estimated = json.loads(result.output)["files"][0]
    assert (estimated["total"]["requests"], estimated["bad_lines"]) == (2, 1)


def test_merge_skips_lines_over_the_cap_on_both_sides(tmp_path: Path) -> None:
    requests = tmp_path / "in.jsonl"
    requests.write_bytes(jsonl([request(1)]) + json.dumps(request(2, "y" * 5000)).encode() + b"\n")
    outputs = tmp_path / "out.jsonl"
    long_output = output(9)
    long_output["response"]["body"]["filler"] = "z" * 5000
    outputs.write_bytes(jsonl([long_output, output(1)]))
    result = cli(
        "merge", "--input", str(requests), "--output-file", str(outputs),
        "--max-line-bytes", "1000", "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    summary = json.loads(result.output)
    assert summary["counts"]["succeeded"] == 1
    assert summary["problem_counts"]["invalid_input_line"] == 1
    assert summary["problem_counts"]["invalid_output_line"] == 1
    wheres = {p["where"] for p in summary["problems"]}
    assert f"{requests}:2" in wheres and f"{outputs}:1" in wheres


def test_findings_are_kept_up_to_a_cap_per_code_and_counted_beyond(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n" * 5000 + b"{broken\n" * 3000 + jsonl([request(1)]))
    report = validate_file(path)
    kept = {c: sum(1 for f in report.findings if f.code == c) for c in report.counts_by_code()}
    assert report.counts_by_code() == {
        "blank_line": ("warning", 5000),
        "invalid_json_line": ("error", 3000),
    }
    assert set(kept.values()) == {MAX_FINDINGS_PER_CODE}
    assert report.errors == 3000 and report.warnings == 5000
    assert report.omitted() == {"blank_line": 4900, "invalid_json_line": 2900}
    result = cli("validate", str(path))
    assert "... and 4,900 more blank_line" in result.output
    assert "5,000  warning  blank_line" in result.output


def test_a_million_blank_lines_stay_in_bounded_memory(tmp_path: Path) -> None:
    # 1 M blank lines took 150 MB in validate and split (4 M: 600 MB): a finding per line
    path = tmp_path / "blank.jsonl"
    path.write_bytes(b"\n" * 1_000_000)
    for args in (["validate", str(path)], ["split", str(path), "-o", str(tmp_path / "s")]):
        peak_mb, status, stderr = run_measured([*JSONL_BATCH, *args], env=ENV)
        assert status == 1 and "Traceback" not in stderr, stderr
        assert peak_mb < 100, (args, peak_mb)


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "/dev/zero"],
        ["split", "/dev/zero", "-o", "{tmp}/s"],
        ["estimate", "/dev/zero"],
        [
            "merge",
            "--input",
            "/dev/zero",
            "--output-file",
            "{tmp}/out.jsonl",
            "--out-dir",
            "{tmp}/m",
        ],
        [
            "merge",
            "--input",
            "{tmp}/in.jsonl",
            "--output-file",
            "/dev/zero",
            "--out-dir",
            "{tmp}/m",
        ],
    ],
    ids=["validate", "split", "estimate", "merge-input", "merge-output"],
)
@pytest.mark.parametrize("cap", ["4MiB", None], ids=["cap-4MiB", "default-cap"])
def test_an_endless_line_is_read_in_bounded_memory(
    tmp_path: Path, args: list[str], cap: str | None
) -> None:
    # Before: validate and estimate grew to GBs (MemoryError), merge to 1 GB, merge --output
    # /dev/zero copied it to disk without end. Under the cap the line's first 16 MiB stay in
    # memory and the rest waits on disk; over it, the line is skipped as it streams by. The
    # process is killed after 2 s (it never ends: the line never does).
    (tmp_path / "in.jsonl").write_bytes(jsonl([request(1)]))
    (tmp_path / "out.jsonl").write_bytes(jsonl([output(1)]))
    capped = ["--max-line-bytes", cap] if cap else []
    command = [*JSONL_BATCH, *(a.format(tmp=tmp_path) for a in args), *capped]
    peak_mb, status, stderr = run_measured(command, seconds=2, env=ENV)
    assert status == -9, stderr  # still reading
    assert peak_mb < 100, peak_mb
    assert sum(f.stat().st_size for f in tmp_path.rglob("*") if f.is_file()) < 1 << 20


def test_a_long_run_of_letters_is_counted_in_bounded_time_and_memory(tmp_path: Path) -> None:
    # one 50 MB word took 2.6 GB and 30 s in estimate (BPE on one giant piece)
    path = tmp_path / "word.jsonl"
    path.write_bytes(jsonl([request(1, "a" * 8_000_000)]))
    command = [*JSONL_BATCH, "estimate", "--strict", str(path)]
    peak_mb, status, stderr = run_measured(command, env=ENV)
    assert status == 1 and "Traceback" not in stderr  # over the context window: a warning
    assert peak_mb < 400, peak_mb  # the tokenizer alone is about 110 MB


# --- 3. pipes, devices, folders --------------------------------------------------------


def _feed_fifo(path: Path, data: bytes) -> threading.Thread:
    os.mkfifo(path)

    def write() -> None:
        with open(path, "wb") as fifo:
            fifo.write(data)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_split_reads_a_device_and_a_pipe(tmp_path: Path) -> None:
    result = cli("split", "/dev/null", "-o", str(tmp_path / "null"))
    assert result.exit_code == 1 and "no such file" not in result.output
    assert "empty_file" in result.output and not (tmp_path / "null").exists()
    fifo = tmp_path / "requests.jsonl"
    writer = _feed_fifo(fifo, jsonl([request(i) for i in range(5)]))
    result = cli("split", str(fifo), "-o", str(tmp_path / "s"))
    writer.join(5)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s" / "requests.manifest.json").exists()


def test_merge_reads_its_output_file_from_a_pipe(tmp_path: Path) -> None:
    requests = tmp_path / "in.jsonl"
    requests.write_bytes(jsonl([request(i) for i in range(5)]))
    fifo = tmp_path / "out.jsonl"
    writer = _feed_fifo(fifo, jsonl([output(i) for i in range(5)]))
    result = cli("merge", "--input", str(requests), "--output-file", str(fifo))
    writer.join(5)
    assert result.exit_code == 0, result.output  # was: OSError: Illegal seek
    assert "5 requests: 5 succeeded" in result.output
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_folder_where_a_file_belongs_is_a_clear_error(tmp_path: Path) -> None:
    requests = tmp_path / "in.jsonl"
    requests.write_bytes(jsonl([request(1)]))
    with pytest.raises(InputError, match="is a directory"):
        merge(requests, [tmp_path])
    with pytest.raises(InputError, match="is a directory"):
        split_file(tmp_path, tmp_path / "s")
    for args in (
        ["merge", "--input", str(requests), "--output-file", str(tmp_path)],
        ["validate", "."],
    ):
        result = cli(*args)
        assert result.exit_code in (1, 2) and "is a directory" in result.output
        assert isinstance(result.exception, SystemExit)


def test_a_line_longer_than_what_stays_in_memory_comes_back_whole(tmp_path: Path) -> None:
    # past 16 MiB a line's pieces wait in a temporary file until it ends: it must come back
    # byte for byte, to the reader and to merge (which hands long lines to the reader)
    big = request(1, "x" * (20 << 20))
    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl([big, request(2)]))
    lines = list(read_lines(path))
    assert [line.obj["custom_id"] for line in lines] == ["r1", "r2"]
    assert b"".join(line.raw for line in lines) == path.read_bytes()
    out = tmp_path / "out.jsonl"
    out.write_bytes(jsonl([output(1), output(2)]))
    result = merge(path, [out], out_dir=tmp_path / "m")
    assert result.total.counts["succeeded"] == 2 and result.ok
