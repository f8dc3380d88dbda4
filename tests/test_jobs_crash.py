"""``submit`` survives a real process crash between every pair of its steps: rerunning it
continues, and every shard ends with exactly one upload and one batch.

Each run is a separate ``python -m jsonl_batch submit`` process that the
``JSONL_BATCH_CRASH_AFTER`` hook kills with ``os._exit`` at the named step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import openai
from click.testing import CliRunner

from jsonl_batch.cli import main
from jsonl_batch.emulator import Emulator, EmulatorConfig
from jsonl_batch.formats.jobfile import read_job_file
from jsonl_batch.service.job import CRASH_ENV, CRASH_EXIT_CODE, CRASH_STEPS

ROOT = Path(__file__).resolve().parent.parent


def test_crash_at_every_step_leaves_one_batch_per_shard(tmp_path: Path) -> None:
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
    with Emulator(EmulatorConfig(speed=3000, deployments={"dep-a": "gpt-4o"})) as emu:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AZURE_", "OPENAI_", "LITELLM_"))
        }
        env["AZURE_OPENAI_API_KEY"] = emu.api_key
        env["PYTHONPATH"] = str(ROOT)
        command = [
            sys.executable, "-m", "jsonl_batch", "submit", str(source),
            "--endpoint", emu.base_url, "--max-requests", "3",
        ]  # fmt: skip

        # One run per step, each killed at that step's first occurrence (or at one shard's:
        # "uploaded:3"); every run gets further than the last. Uploads all go first, then
        # the creates, so the sequence covers crashes on the first, a middle and the last shard.
        sequence = [*CRASH_STEPS[:5], "uploaded:3", *CRASH_STEPS[5:], "created:3"]
        said = ""
        for step in sequence:
            done = subprocess.run(
                command, env={**env, CRASH_ENV: step}, capture_output=True, timeout=60
            )
            assert done.returncode == CRASH_EXIT_CODE, (step, done.stderr.decode())
            said += done.stderr.decode()
        final = subprocess.run(command, env=env, capture_output=True, timeout=60)
        assert final.returncode == 0, final.stderr.decode()
        said += final.stderr.decode()
        # what a crashed run left on the service was found, not made again
        assert said.count("found earlier upload") == 2  # shards 1 and 3
        assert said.count("found earlier batch") == 2  # shards 1 and 3

        job = read_job_file(tmp_path / "data.job.json")
        assert len(job.shards) == 3 and all(s.batch_id for s in job.shards)
        client = openai.AzureOpenAI(
            azure_endpoint=emu.base_url,
            api_key=emu.api_key,
            api_version="2024-10-21",
            max_retries=0,
        )
        batches = Counter((b.metadata or {}).get("shard") for b in client.batches.list(limit=100))
        assert batches == {"1": 1, "2": 1, "3": 1}
        uploads = [f for f in client.files.list(purpose="batch") if f.purpose == "batch"]
        assert len(uploads) == 3
        assert {s.batch_id for s in job.shards} == {b.id for b in client.batches.list(limit=100)}

        # and the resumed job runs to the end like any other
        os.environ["AZURE_OPENAI_API_KEY"] = emu.api_key
        try:
            result = CliRunner().invoke(
                main, ["wait", str(tmp_path / "data.job.json"), "--poll-interval", "0.02"]
            )
        finally:
            del os.environ["AZURE_OPENAI_API_KEY"]
        assert result.exit_code == 0, result.output
        job = read_job_file(tmp_path / "data.job.json")
        assert sum(s.request_counts.completed for s in job.shards) == 9
