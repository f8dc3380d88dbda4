"""split: MB/s on one core against a plain buffered copy of the same file, with and without
validation in the same pass and with a token limit; against coreutils ``split -l`` in wall-clock
time (it runs in its own process); peak memory at two file sizes (it must not grow with the
file; with validation it grows only with the number of custom_ids)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from jsonl_batch.jsonl import read_lines
from jsonl_batch.split import split_file
from jsonl_batch.tokens import TokenCounter
from jsonl_batch.validate import validate_file

from ._util import peak_rss_mb, row, throughput, wall_throughput
from .generate import generate_requests

MODELS = ("gpt-4o-batch", "gpt-4o-mini-batch", "gpt-4.1-batch")
MAX_REQUESTS = 20_000


def buffered_copy(source: Path, target: Path) -> None:
    """The baseline: read and write 1 MB blocks and fsync, as split does with its shards."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        while block := src.read(1 << 20):
            dst.write(block)
        dst.flush()
        os.fsync(dst.fileno())


def coreutils_split(source: Path, out_dir: Path) -> None:
    """The baseline users reach for: ``split -l`` into files of MAX_REQUESTS lines each (no
    parsing, no hashing, no fsync)."""
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir()
    subprocess.run(["split", "-l", str(MAX_REQUESTS), str(source), str(out_dir / "x")], check=True)


def _split(source: Path, out_dir: Path, **options: Any) -> None:
    shutil.rmtree(out_dir, ignore_errors=True)
    split_file(source, out_dir, max_requests=MAX_REQUESTS, **options)


def count_tokens(source: Path, warm_up: bool = False) -> int:
    """The token counter alone over a file (what bounds ``split --max-tokens``)."""
    if warm_up:
        generate_requests(source, 10, models=MODELS)
    counter = TokenCounter()
    return sum(counter.count_line(line.obj).input_tokens for line in read_lines(source) if line.ok)


def child_peak_rss_mb(source: Path, out_dir: Path, validate: bool) -> float:
    """Peak RSS (MB) of a fresh process splitting ``source``."""
    return peak_rss_mb(
        "import shutil\n"
        "from jsonl_batch.split import split_file\n"
        f"split_file({str(source)!r}, {str(out_dir)!r}, max_requests={MAX_REQUESTS}, "
        f"validate={validate})\n"
        f"shutil.rmtree({str(out_dir)!r})"
    )


def run(tmpdir: Path, lines: int = 100_000) -> list[dict[str, Any]]:
    small = tmpdir / "split-small.jsonl"
    big = tmpdir / "split-big.jsonl"
    size = generate_requests(small, lines, seed=3, models=MODELS)
    generate_requests(big, lines * 2, seed=4, models=MODELS)
    out = tmpdir / "split-out"
    what = f"{lines:,} lines, {size / 1e6:.0f} MB, 3 models, {MAX_REQUESTS:,} requests/shard"

    copy = throughput(lambda: buffered_copy(small, tmpdir / "split-copy.jsonl"), size, repeat=3)
    fast = throughput(lambda: _split(small, out, validate=False), size, repeat=3)
    fast_wall = wall_throughput(lambda: _split(small, out, validate=False), size, repeat=3)
    checked_wall = wall_throughput(lambda: _split(small, out), size, repeat=2)
    coreutils = (
        wall_throughput(lambda: coreutils_split(small, out), size, repeat=3)
        if shutil.which("split")
        else None
    )
    checked = throughput(lambda: _split(small, out), size, repeat=2)
    validate_only = throughput(lambda: validate_file(small), size, repeat=2)
    # One model: validate alone has no model_mismatch lines to check slowly (the 3-model
    # file flatters split's ratio). Wall clock too: split hashes and syncs on other threads.
    single = tmpdir / "split-single.jsonl"
    single_size = generate_requests(single, lines, seed=6, models=MODELS[:1])
    single_fast_wall = wall_throughput(
        lambda: _split(single, out, validate=False), single_size, repeat=3
    )
    single_checked = throughput(lambda: _split(single, out), single_size, repeat=2)
    single_validate = throughput(lambda: validate_file(single), single_size, repeat=2)
    single_checked_wall = wall_throughput(lambda: _split(single, out), single_size, repeat=2)
    single_validate_wall = wall_throughput(lambda: validate_file(single), single_size, repeat=2)
    single.unlink()
    token_lines = max(1, lines // 10)
    tokens_file = tmpdir / "split-tokens.jsonl"
    token_size = generate_requests(tokens_file, token_lines, seed=5, models=MODELS)
    count_tokens(small.with_name("split-warmup.jsonl"), warm_up=True)  # load the encodings
    tokens = throughput(
        lambda: _split(tokens_file, out, validate=False, max_tokens=2_000_000), token_size, repeat=1
    )
    counter_only = throughput(lambda: count_tokens(tokens_file), token_size, repeat=1)
    (tmpdir / "split-copy.jsonl").unlink()
    shutil.rmtree(out, ignore_errors=True)

    rss = {
        (name, validate): child_peak_rss_mb(path, out, validate)
        for name, path in (("small", small), ("big", big))
        for validate in (False, True)
    }
    baseline = "buffered copy (1 MB blocks + fsync)"
    return [
        row("split --no-validate", what, fast, baseline, copy, rss["small", False]),
        row("split", what + ", validated in the same pass", checked, baseline, copy),
        row(
            "split --no-validate",
            "same, wall clock",
            fast_wall,
            f"coreutils split -l {MAX_REQUESTS}, wall clock",
            coreutils,
        ),
        row(
            "split",
            "same, validated, wall clock",
            checked_wall,
            f"coreutils split -l {MAX_REQUESTS}, wall clock",
            coreutils,
        ),
        row("split", "validated in the same pass", checked, "validate alone", validate_only),
        row(
            "split --no-validate",
            f"one model, {single_size / 1e6:.0f} MB, wall clock",
            single_fast_wall,
            f"coreutils split -l {MAX_REQUESTS}, wall clock",
            coreutils,
        ),
        row(
            "split",
            "one model, validated in the same pass",
            single_checked,
            "validate alone",
            single_validate,
        ),
        row(
            "split",
            "one model, validated in the same pass, wall clock",
            single_checked_wall,
            "validate alone, wall clock",
            single_validate_wall,
        ),
        row(
            "split",
            "peak RSS, validated (grows with custom_ids only)",
            checked,
            None,
            None,
            rss["small", True],
        ),
        row(
            "split --max-tokens 2M --no-validate",
            f"{token_lines:,} lines, {token_size / 1e6:.0f} MB (token counter bound)",
            tokens,
            "TokenCounter alone",
            counter_only,
        ),
        row(
            "split --no-validate",
            f"peak RSS at 2x the file ({lines * 2:,} lines)",
            fast,
            peak_rss=rss["big", False],
        ),
        row(
            "split",
            f"peak RSS at 2x the file ({lines * 2:,} lines), validated",
            checked,
            peak_rss=rss["big", True],
        ),
    ]
