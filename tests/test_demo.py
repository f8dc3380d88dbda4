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
    ids = [f"question-{i}" for i in range(1, 7)] + ["review-1", "review-2"]
    assert [r["custom_id"] for r in results] == ids
    failed = {r["custom_id"] for r in results if r["status"] != "succeeded"}
    retry = [
        json.loads(line)["custom_id"] for line in (out / "shards/questions.retry.jsonl").open()
    ]
    assert set(retry) == failed
    assert "Traceback" not in proc.stdout + proc.stderr
    # it ends by writing the job's report and saying where
    report = out / "questions.report.html"
    assert f"report: {report}" in proc.stdout
    page = report.read_text("utf-8")
    assert "review-1" in page and "rate_limit_exceeded" in page and "<svg" in page
