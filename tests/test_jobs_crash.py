"""``submit`` survives a real process crash between every pair of its steps: rerunning it
continues, and every shard ends with exactly one upload and one batch. That holds even when
the job file is deleted after each crash (issue 15, item 7): a new job reconciles with the
service (batches carry the shard's content hash in their metadata, uploads are named after
it) instead of creating again; ``recover`` rebuilds a job file the same way.

Each run is a separate ``python -m jsonl_batch submit`` process that the
``JSONL_BATCH_CRASH_AFTER`` hook kills with ``os._exit`` at the named step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from click.testing import CliRunner

from jsonl_batch.cli import main
from jsonl_batch.emulator import Emulator, EmulatorConfig
from jsonl_batch.formats.jobfile import read_job_file
from jsonl_batch.service.job import CRASH_ENV, CRASH_EXIT_CODE, CRASH_STEPS

ROOT = Path(__file__).resolve().parent.parent
# One run per step, each killed at that step's first occurrence (or at one shard's:
# "uploaded:3"); every run gets further than the last. Uploads all go first, then the
# creates, so the sequence covers crashes on the first, a middle and the last shard.
SEQUENCE = [*CRASH_STEPS[:5], "uploaded:3", *CRASH_STEPS[5:], "created:3"]


@pytest.fixture
def service() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(speed=3000, deployments={"dep-a": "gpt-4o"})) as emu:
        yield emu


def _source(tmp_path: Path) -> Path:
    source = tmp_path / "data.jsonl"
    source.write_text(
        "".join(
            json.dumps(
                {
                    "custom_id": f"req-{i}",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {"model": "dep-a", "messages": [{"role": "user", "content": f"Q{i}"}]},
                }
            )
            + "\n"
            for i in range(9)
        )
    )
    return source


def _env(emu: Emulator) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AZURE_", "OPENAI_", "LITELLM_"))
    }
    env["AZURE_OPENAI_API_KEY"] = emu.api_key
    env["PYTHONPATH"] = str(ROOT)
    return env


def _run(command: str, source: Path, emu: Emulator, step: str | None = None) -> str:
    args = [sys.executable, "-m", "jsonl_batch", command, str(source), "--endpoint", emu.base_url]
    args += ["--max-requests", "3"]
    env = _env(emu) if step is None else {**_env(emu), CRASH_ENV: step}
    done = subprocess.run(args, env=env, capture_output=True, timeout=60)
    expected = 0 if step is None else CRASH_EXIT_CODE
    assert done.returncode == expected, (command, step, done.stderr.decode())
    return done.stderr.decode()


def _assert_one_batch_and_upload_per_shard(emu: Emulator, job_path: Path) -> None:
    job = read_job_file(job_path)
    assert len(job.shards) == 3 and all(s.batch_id for s in job.shards)
    client = openai.AzureOpenAI(
        azure_endpoint=emu.base_url, api_key=emu.api_key, api_version="2024-10-21", max_retries=0
    )
    batches = list(client.batches.list(limit=100))
    shards = Counter((b.metadata or {}).get("shard_sha256") for b in batches)
    assert sorted(shards) == sorted(s.sha256 for s in job.shards)
    assert set(shards.values()) == {1}
    uploads = [f for f in client.files.list(purpose="batch") if f.purpose == "batch"]
    assert len(uploads) == 3
    assert {s.batch_id for s in job.shards} == {b.id for b in batches}


def _wait_to_the_end(emu: Emulator, job_path: Path) -> None:
    os.environ["AZURE_OPENAI_API_KEY"] = emu.api_key
    try:
        result = CliRunner().invoke(main, ["wait", str(job_path), "--poll-interval", "0.02"])
    finally:
        del os.environ["AZURE_OPENAI_API_KEY"]
    assert result.exit_code == 0, result.output
    job = read_job_file(job_path)
    assert sum(s.request_counts.completed for s in job.shards) == 9


def test_crash_at_every_step_leaves_one_batch_per_shard(tmp_path: Path, service: Emulator) -> None:
    source = _source(tmp_path)
    said = "".join(_run("submit", source, service, step) for step in SEQUENCE)
    said += _run("submit", source, service)
    # what a crashed run left on the service was found, not made again
    assert said.count("found earlier upload") == 2  # shards 1 and 3
    assert said.count("found earlier batch") == 2  # shards 1 and 3
    _assert_one_batch_and_upload_per_shard(service, tmp_path / "data.job.json")
    _wait_to_the_end(service, tmp_path / "data.job.json")  # the resumed job runs to the end


def test_a_deleted_job_file_never_duplicates_a_batch(tmp_path: Path, service: Emulator) -> None:
    source = _source(tmp_path)
    job_path = tmp_path / "data.job.json"
    said = ""
    for step in SEQUENCE:
        said += _run("submit", source, service, step)
        job_path.unlink(missing_ok=True)  # lost with the crash: only the service knows
    said += _run("submit", source, service)
    assert "taking it over instead of creating another" in said
    _assert_one_batch_and_upload_per_shard(service, job_path)

    # and recover rebuilds the job file from the service alone, creating nothing
    before = read_job_file(job_path)
    job_path.unlink()
    said = _run("recover", source, service)
    assert said.count("taking it over") == 3
    after = read_job_file(job_path)
    assert [(s.index, s.sha256, s.file_id, s.batch_id) for s in after.shards] == [
        (s.index, s.sha256, s.file_id, s.batch_id) for s in before.shards
    ]
    _assert_one_batch_and_upload_per_shard(service, job_path)
    _wait_to_the_end(service, job_path)


def test_recover_refuses_to_replace_a_job_file_and_ignore_existing_creates_anew(
    tmp_path: Path, service: Emulator
) -> None:
    source = _source(tmp_path)
    _run("submit", source, service)
    env = _env(service)
    args = [sys.executable, "-m", "jsonl_batch", "recover", str(source)]
    done = subprocess.run([*args, "--endpoint", service.base_url], env=env, capture_output=True)
    assert done.returncode == 1 and b"already exists" in done.stderr
    (tmp_path / "data.job.json").unlink()
    again = [sys.executable, "-m", "jsonl_batch", "submit", str(source)]
    again += ["--endpoint", service.base_url, "--max-requests", "3", "--ignore-existing"]
    done = subprocess.run(again, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    assert len(service.state()["batches"]) == 6  # asked for: a second batch of every shard
