"""Several files published as one set (issue 15, items 5 and 6): a reader sees the old set
or the new set, after a kill at any rename; staging left by killed runs is cleaned.

The kills are real: a ``python -m jsonl_batch`` process exits on the spot (``os._exit``)
at the step ``JSONL_BATCH_CRASH_AFTER`` names: ``staged`` (written, not committed) or
``published:<n>`` (committed, ``n`` files moved).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from jsonl_batch.crash import CRASH_ENV, CRASH_EXIT_CODE
from jsonl_batch.formats import naming
from jsonl_batch.formats.manifest import read_manifest
from jsonl_batch.merge import merge
from jsonl_batch.publish import JOURNAL, FileSet, settle, sha256_file
from jsonl_batch.split import split_file

from .conftest import ROOT

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def request(i: int) -> dict[str, Any]:
    return {
        "custom_id": f"r{i}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": f"q{i}"}]},
    }


def answer(i: int, status: int = 200) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gpt-4o", "usage": {"prompt_tokens": 3}}
    if status != 200:
        body = {"error": {"code": "server_error", "message": "boom"}}
    return {
        "id": f"b{i}",
        "custom_id": f"r{i}",
        "response": {"status_code": status, "request_id": f"q{i}", "body": body},
        "error": None,
    }


def write_jsonl(path: Path, objs: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(o) + b"\n" for o in objs))
    return path


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def run_killed(args: list[str], step: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jsonl_batch", *args],
        env={**ENV, CRASH_ENV: step},
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == CRASH_EXIT_CODE, (step, done.stderr.decode())


# --- the mechanism -----------------------------------------------------------------------


def test_a_set_is_published_together_and_a_discarded_one_leaves_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    (folder / "old.txt").parent.mkdir()
    (folder / "old.txt").write_text("stale")
    with FileSet(folder, "demo") as files:
        files.path("a.txt").write_text("A")
        files.path("tmp-b").write_text("B")
        files.publish("a.txt")
        files.publish("tmp-b", "b.txt")
        files.remove("old.txt")
        assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
            "old.txt"
        ]  # nothing visible before the commit
        files.commit()
    assert sorted(p.name for p in folder.iterdir()) == ["a.txt", "b.txt"]
    with pytest.raises(RuntimeError), FileSet(folder, "demo") as files:
        files.path("a.txt").write_text("new A")
        files.publish("a.txt")
        raise RuntimeError("an error before the commit")
    assert (folder / "a.txt").read_text() == "A" and hidden(folder) == []


def test_settle_finishes_a_committed_set_and_spares_a_live_writer(tmp_path: Path) -> None:
    live = FileSet(tmp_path, "demo")  # another process, still writing: its lock is held
    committed = FileSet(tmp_path, "demo")
    committed.path("x.txt").write_text("X")
    committed.publish("x.txt")
    committed.commit()
    assert (tmp_path / "x.txt").read_text() == "X"
    # a committed journal whose moves did not run (a kill right after the commit point)
    staging = tmp_path / ".demo.publish-killed"
    staging.mkdir()
    (staging / "y.txt").write_text("Y")
    (staging / JOURNAL).write_bytes(orjson.dumps({"moves": [["y.txt", "y.txt"]], "removes": []}))
    debris = tmp_path / ".demo.publish-debris"  # staged, never committed, writer gone
    debris.mkdir()
    (debris / "z.txt").write_text("Z")
    settle(tmp_path, "demo")
    assert (tmp_path / "y.txt").read_text() == "Y"
    assert not staging.exists() and not debris.exists()
    assert live.staging.exists()  # a live writer's folder is left alone
    live.discard()
    assert hidden(tmp_path) == []


# --- split --overwrite killed at every step -------------------------------------------------


def _split_args(source: Path, out: Path, max_requests: int, *extra: str) -> list[str]:
    return ["split", str(source), "-o", str(out), "--max-requests", str(max_requests), *extra]


@pytest.mark.parametrize("step", ["staged", *(f"published:{n}" for n in range(6))])
def test_split_overwrite_killed_at_any_rename_leaves_one_whole_set(
    tmp_path: Path, step: str
) -> None:
    source = write_jsonl(tmp_path / "reqs.jsonl", [request(i) for i in range(9)])
    out = tmp_path / "shards"
    old = split_file(source, out, max_requests=4).manifest  # 3 shards
    run_killed(_split_args(source, out, 2, "--overwrite"), step)  # 5 shards + manifest
    manifest = read_manifest(naming.manifest_path(source, out))  # finishes a committed set
    expected_shards = 3 if step == "staged" else 5  # the old set, or the new one: never a mix
    assert len(manifest.shards) == expected_shards
    if step == "staged":
        assert manifest.created_at == old.created_at
    for shard in manifest.shards:
        assert sha256_file(manifest.shard_path(shard)) == shard.sha256
    listed = {s.path for s in manifest.shards} | {naming.manifest_path(source, out).name}
    assert {p.name for p in out.iterdir() if not p.name.startswith(".")} == listed
    if step != "staged":  # debris of an uncommitted run goes with the next writer
        assert hidden(out) == []


def test_split_into_an_empty_folder_killed_between_renames_is_finished_by_a_rerun(
    tmp_path: Path,
) -> None:
    source = write_jsonl(tmp_path / "reqs.jsonl", [request(i) for i in range(9)])
    out = tmp_path / "shards"
    run_killed(_split_args(source, out, 2), "published:2")  # 2 shards moved, no manifest
    done = subprocess.run(
        [sys.executable, "-m", "jsonl_batch", *_split_args(source, out, 2)],
        env=ENV,
        capture_output=True,
    )
    assert done.returncode == 0, done.stderr.decode()  # was: "already exists"
    assert b"already split with these limits" in done.stdout
    manifest = read_manifest(naming.manifest_path(source, out))
    assert len(manifest.shards) == 5 and hidden(out) == []
    for shard in manifest.shards:
        assert sha256_file(manifest.shard_path(shard)) == shard.sha256


# --- merge killed at every step ------------------------------------------------------------


@pytest.mark.parametrize("step", ["staged", *(f"published:{n}" for n in range(4))])
def test_merge_killed_at_any_rename_never_mixes_two_runs(tmp_path: Path, step: str) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [request(i) for i in range(6)])
    first = write_jsonl(
        tmp_path / "first.jsonl", [answer(i, 500 if i % 2 else 200) for i in range(6)]
    )
    merge(source, [first])  # run A: 3 succeeded, 3 to retry
    second = write_jsonl(
        tmp_path / "second.jsonl", [answer(i, 500 if i < 2 else 200) for i in range(6)]
    )
    run_killed(["merge", "--input", str(source), "--output-file", str(second)], step)
    settle(tmp_path, naming.merge_set(source))  # what the next merge does first
    summary = json.loads(naming.merge_summary_path(source, tmp_path).read_text())
    results = naming.results_path(source, tmp_path)
    retry = naming.retry_path(source, tmp_path)
    # the summary names the set: the files on disk are exactly the ones it names
    assert sha256_file(results) == summary["files"]["results"]["sha256"]
    assert sha256_file(retry) == summary["files"]["retry"]["sha256"]
    retried = [json.loads(line)["custom_id"] for line in retry.read_text().splitlines()]
    run_a = ["r1", "r3", "r5"]
    assert retried == (run_a if step == "staged" else ["r0", "r1"])
    assert summary["retry_requests"] == len(retried)
    assert hidden(tmp_path) == ([] if step != "staged" else hidden(tmp_path))
    merge(source, [second])  # the next run cleans any debris
    assert hidden(tmp_path) == []


# --- download killed between its two files ------------------------------------------------


def test_download_killed_between_its_files_is_finished_by_the_next_run(
    tmp_path: Path, emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from jsonl_batch.cli import main
    from jsonl_batch.formats.jobfile import read_job_file

    emulator.set_faults(request_failure_rate=0.5)  # an output and an error file
    source = write_jsonl(tmp_path / "data.jsonl", [request(i) for i in range(8)])
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", emulator.api_key)
    runner = CliRunner()
    assert (
        runner.invoke(main, ["submit", str(source), "--endpoint", emulator.base_url]).exit_code == 0
    )
    emulator.advance(86_400)
    job = tmp_path / "data.job.json"
    env = {**ENV, "AZURE_OPENAI_API_KEY": emulator.api_key}
    done = subprocess.run(
        [sys.executable, "-m", "jsonl_batch", "download", str(job)],
        env={**env, CRASH_ENV: "published:1"},  # output moved, error file not, job not saved
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == CRASH_EXIT_CODE, done.stderr.decode()
    result = runner.invoke(main, ["download", str(job)])
    assert result.exit_code == 0, result.output
    shard = read_job_file(job).shards[0]
    downloads = tmp_path / "data.downloads"
    assert hidden(downloads) == []
    assert shard.output_file and shard.error_file
    assert sha256_file(tmp_path / shard.output_file) == shard.output_sha256
    assert sha256_file(tmp_path / shard.error_file) == shard.error_sha256
