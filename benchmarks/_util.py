"""Shared benchmark plumbing: timing a callable and a child's peak memory."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def throughput(
    func: Callable[[], Any],
    size_bytes: int,
    repeat: int = 3,
    clock: Callable[[], float] = time.process_time,
) -> float:
    """Best MB/s of ``repeat`` runs of ``func`` over ``size_bytes`` of input.

    Measured in CPU time of this process, so other work on the machine disturbs the
    figures less; the benchmarks are single-threaded ("on one core").
    """
    best = float("inf")
    for _ in range(repeat):
        start = clock()
        func()
        best = min(best, clock() - start)
    return size_bytes / 1e6 / best


def wall_throughput(func: Callable[[], Any], size_bytes: int, repeat: int = 3) -> float:
    """:func:`throughput` in wall-clock time: for baselines that run in another process
    (coreutils), where this process's CPU time says nothing."""
    return throughput(func, size_bytes, repeat, clock=time.perf_counter)


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


# Forks and waits for the command in a small, fresh process: the ru_maxrss a parent reads
# from wait4 counts the pages a child shares with it after fork, so a big test or benchmark
# process would inflate the figure of a child it forks itself.
_LAUNCHER = """
import os, signal, sys
seconds, command = float(sys.argv[1]), sys.argv[2:]
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execvp(command[0], command)
if seconds > 0:
    signal.signal(signal.SIGALRM, lambda *_: os.kill(pid, signal.SIGKILL))
    signal.setitimer(signal.ITIMER_REAL, seconds)
_pid, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def run_measured(
    command: Sequence[str], seconds: float | None = None, **popen: Any
) -> tuple[float, int, str]:
    """Run a command (killed after ``seconds`` when given) and return its peak resident
    memory in MB (``ru_maxrss``: exact, even for a killed process), its exit status
    (negative: the signal that ended it) and its stderr."""
    with tempfile.TemporaryFile() as err:
        done = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, str(seconds or 0), *command],
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            check=True,
            **popen,
        )
        err.seek(0)
        maxrss, status = done.stdout.split()[-2:]
        return int(maxrss) / 1024, int(status), err.read().decode("utf-8", "replace")


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
