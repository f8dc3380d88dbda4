"""estimate: MB/s with 1 and 2 processes, against a naive per-line json + tiktoken count.

The naive baseline is what a user would write first: ``json.loads`` each line and encode
every message's text with tiktoken (no framing, tools or images, so it also undercounts).
The jobs=2 row's baseline is the jobs=1 run, so its ratio is the scaling from 1 to 2 cores.
Peak RSS is measured at the file size and at twice it: it must not grow with the file.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from jsonl_batch.estimate import estimate_file
from jsonl_batch.pricing import PriceTable
from jsonl_batch.tokens import get_encoding

from ._util import peak_rss_mb, row, throughput
from .generate import generate_requests

DEPLOYMENTS = {"gpt-4o-batch": "gpt-4o"}


def naive_estimate(path: Path) -> int:
    """The baseline: json.loads + tiktoken encode of every text part, per line."""
    encoding = get_encoding("o200k_base")
    total = 0
    with open(path, "rb") as stream:
        for raw in stream:
            body = json.loads(raw)["body"]
            for message in body["messages"]:
                content = message.get("content")
                parts = content if isinstance(content, list) else [{"text": content}]
                for part in parts:
                    if isinstance(part.get("text"), str):
                        total += len(encoding.encode_ordinary(part["text"]))
    return total


def run(tmpdir: Path, lines: int = 50_000) -> list[dict[str, Any]]:
    small = tmpdir / "estimate-small.jsonl"
    big = tmpdir / "estimate-big.jsonl"
    size = generate_requests(small, lines, seed=3)
    generate_requests(big, lines * 2, seed=4)
    table = PriceTable.load()

    def ours(jobs: int) -> None:
        estimate_file(small, prices=table, deployment_map=DEPLOYMENTS, jobs=jobs)

    one_cpu = throughput(lambda: ours(1), size)
    naive = throughput(lambda: naive_estimate(small), size, repeat=1)
    # Scaling needs wall-clock time (CPU time of this process misses the workers). Alternate
    # the two settings and keep the median: the machine is shared, so back-to-back blocks
    # would compare different loads, and one outlier must not decide.
    walls: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(3):
        for jobs in (1, 2):
            start = time.perf_counter()
            ours(jobs)
            walls[jobs].append(size / 1e6 / (time.perf_counter() - start))
    one, two = statistics.median(walls[1]), statistics.median(walls[2])
    code = (
        "from jsonl_batch.estimate import estimate_file; "
        "estimate_file({!r}, deployment_map={!r}, jobs=1)"
    )
    rss_small = peak_rss_mb(code.format(str(small), DEPLOYMENTS))
    rss_big = peak_rss_mb(code.format(str(big), DEPLOYMENTS))
    what = f"{lines:,} lines, {size / 1e6:.0f} MB"
    return [
        row(
            "estimate",
            f"jobs=1, {what} (CPU time)",
            one_cpu,
            "json.loads + tiktoken per text",
            naive,
            rss_small,
        ),
        row("estimate", f"jobs=2, {what} (wall clock)", two, "jobs=1 (wall clock)", one),
        row(
            "estimate",
            f"jobs=1 peak RSS at 2x the file ({lines * 2:,} lines)",
            one_cpu,
            peak_rss=rss_big,
        ),
    ]
