"""The README's first command, `make demo`, end to end in a real subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import SAMPLES


def test_demo_runs_the_whole_trip(tmp_path: Path) -> None:
    samples = tmp_path / "samples"
    shutil.copytree(SAMPLES, samples, ignore=shutil.ignore_patterns("out"))
    proc = subprocess.run(
        [sys.executable, str(samples / "demo.py")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "demo finished" in proc.stdout
    out = samples / "out"
    results = [json.loads(line) for line in (out / "shards/questions.results.jsonl").open()]
    assert [r["custom_id"] for r in results] == [f"question-{i}" for i in range(1, 7)]
    failed = {r["custom_id"] for r in results if r["status"] != "succeeded"}
    retry = [
        json.loads(line)["custom_id"] for line in (out / "shards/questions.retry.jsonl").open()
    ]
    assert set(retry) == failed
    assert "Traceback" not in proc.stdout + proc.stderr
