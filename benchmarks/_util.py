"""Shared benchmark plumbing: timing a callable and a child's peak memory."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def throughput(func: Callable[[], Any], size_bytes: int, repeat: int = 3) -> float:
    """Best MB/s of ``repeat`` runs of ``func`` over ``size_bytes`` of input.

    Measured in CPU time of this process, so other work on the machine disturbs the
    figures less; the benchmarks are single-threaded ("on one core").
    """
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        func()
        best = min(best, time.process_time() - start)
    return size_bytes / 1e6 / best


def peak_rss_mb(code: str) -> float:
    """Peak resident memory (MB) of a fresh Python process running ``code``.

    Read from ``VmHWM`` in /proc: unlike ``ru_maxrss``, it is not inherited from the parent
    across fork and exec, so a big benchmark process does not inflate the figure.
    """
    script = (
        code
        + "\nimport re\nstatus = open('/proc/self/status').read()"
        + "\nprint(re.search(r'VmHWM:\\s+(\\d+)', status).group(1))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    return int(out.strip().splitlines()[-1]) / 1024


def row(
    command: str,
    what: str,
    mb_per_s: float,
    baseline: str | None = None,
    baseline_mb_per_s: float | None = None,
    peak_rss: float | None = None,
) -> dict[str, Any]:
    return {
        "command": command,
        "what": what,
        "mb_per_s": round(mb_per_s, 1),
        "baseline": baseline,
        "baseline_mb_per_s": round(baseline_mb_per_s, 1) if baseline_mb_per_s else None,
        "ratio": round(mb_per_s / baseline_mb_per_s, 2) if baseline_mb_per_s else None,
        "peak_rss_mb": round(peak_rss, 1) if peak_rss else None,
    }


def file_size(path: Path) -> int:
    return path.stat().st_size
