"""Run every benchmark and print one table: ``python -m benchmarks.run [names...]``.

Each ``benchmarks/bench_<name>.py`` exposes ``run(tmpdir) -> list[dict]``. Baselines run in
the same process and the same run, so ratios are comparable even on a busy machine.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import tempfile
from pathlib import Path

import benchmarks

COLUMNS = ("command", "what", "mb_per_s", "baseline", "baseline_mb_per_s", "ratio", "peak_rss_mb")


def main() -> None:
    names = sorted(
        m.name[len("bench_") :]
        for m in pkgutil.iter_modules(benchmarks.__path__)
        if m.name.startswith("bench_")
    )
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("only", nargs="*", choices=[[], *names], help="benchmarks to run")
    parser.add_argument("--json", action="store_true", help="print rows as JSON")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="jsonl-batch-bench-") as tmp:
        for name in args.only or names:
            module = importlib.import_module(f"benchmarks.bench_{name}")
            rows.extend(module.run(Path(tmp)))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for r in rows:
        print("| " + " | ".join("" if r.get(c) is None else str(r[c]) for c in COLUMNS) + " |")


if __name__ == "__main__":
    main()
