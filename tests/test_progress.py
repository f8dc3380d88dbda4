"""Live progress of submit and wait: plain lines off a terminal, a live table on one; the
library reports upload progress and never prints."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from click.testing import CliRunner
from rich.console import Console

from jsonl_batch.cli import main
from jsonl_batch.cli._jobview import LARGE_UPLOAD_BYTES, JobProgress
from jsonl_batch.emulator import Emulator, EmulatorConfig
from jsonl_batch.formats.jobfile import ConnectionInfo, JobFile, RequestCounts, ShardState
from jsonl_batch.service.connection import Connection, resolve_connection
from jsonl_batch.service.job import Job, _ProgressReader

ESCAPE = "\x1b["


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def write_requests(path: Path, n: int) -> Path:
    lines = [
        {
            "custom_id": f"req-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "dep-a", "messages": [{"role": "user", "content": f"Q{i}?"}]},
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def shard(index: int, status: str, done: int, **fields: object) -> ShardState:
    return ShardState(
        index=index,
        path=f"s{index}.jsonl",
        upload_path=f"s{index}.jsonl",
        sha256="0" * 64,
        requests=100,
        bytes=50_000,
        deployment="gpt-4o-batch",
        url="/v1/chat/completions",
        endpoint="/chat/completions",
        status=status,
        batch_id=f"batch_{index}" if status not in ("pending", "uploading") else None,
        request_counts=RequestCounts(total=100, completed=done),
        **fields,  # type: ignore[arg-type]
    )


def a_job(tmp_path: Path, clock: FakeClock) -> Job:
    data = JobFile(
        job_id="job_live",
        created_at=clock.now,
        updated_at=clock.now,
        target="azure",
        connection=ConnectionInfo(
            kind="azure", endpoint="https://res-east.openai.azure.com", target="azure"
        ),
        shards=[
            shard(1, "in_progress", 10, submitted_at=clock.now - 50),
            shard(2, "uploading", 0),
            shard(3, "failed", 0, errors=[{"code": "model_not_found", "message": "no"}]),
        ],
    )
    return Job(tmp_path / "live.job.json", data, clock=clock)


def test_terminal_view_shows_rows_bars_and_eta(tmp_path: Path) -> None:
    clock = FakeClock(1_000.0)
    job = a_job(tmp_path, clock)
    screen = Console(force_terminal=True, width=160, file=io.StringIO())
    view = JobProgress(screen, clock=clock)
    assert view.live_mode
    with view:
        view.upload(2, 20_000, 50_000)
        view.poll(job)
        clock.now += 10
        job.shards[0].request_counts.completed = 30  # 20 requests in 10 s: 70 left, 35 s
        view.poll(job)
        probe = Console(force_terminal=True, record=True, width=160, file=io.StringIO())
        probe.print(view.render())
    text = probe.export_text(clear=False)
    rows = {line.split()[0]: line for line in text.splitlines() if line.strip()[:1].isdigit()}
    assert set(rows) == {"1", "2", "3"}
    assert "in_progress" in rows["1"] and "30/100 30%" in rows["1"] and "35s" in rows["1"]
    assert "━" in rows["1"] and "gpt-4o-batch" in rows["1"] and "batch_1" in rows["1"]
    assert "20.0 kB/50.0 kB" in rows["2"]  # the upload's own bar
    assert "failed" in rows["3"] and "model_not_found" in rows["3"]
    assert "0 (model_not_found)" not in text
    summary = text.strip().splitlines()[-1]
    assert "job job_live on res-east.openai.azure.com" in summary
    assert "30 ok, 0 failed of 300 requests" in summary and "ETA 35s" in summary
    assert ESCAPE in probe.export_text(styles=True)  # colours on a terminal


def test_plain_view_prints_one_line_per_change_without_escape_codes(tmp_path: Path) -> None:
    clock = FakeClock(1_000.0)
    job = a_job(tmp_path, clock)
    out = io.StringIO()
    view = JobProgress(Console(file=out, width=10_000), clock=clock)
    assert not view.live_mode
    with view:
        view.poll(job)
        view.poll(job)  # nothing changed: nothing printed
        job.shards[0].request_counts.completed = 40
        view.poll(job)
        for sent in range(0, LARGE_UPLOAD_BYTES * 2 + 1, LARGE_UPLOAD_BYTES // 8):
            view.upload(2, sent, LARGE_UPLOAD_BYTES * 2)
        view.upload(4, 10, 10)  # a small shard: no upload lines
    lines = out.getvalue().splitlines()
    assert ESCAPE not in out.getvalue()
    first = [line for line in lines if "shard 1 " in line]
    assert [re.sub(r"^\[[0-9:]+\] ", "", line) for line in first] == [
        "shard 1 (gpt-4o-batch): in_progress, 10/100 done, 0 failed",
        "shard 1 (gpt-4o-batch): in_progress, 40/100 done, 0 failed",
    ]
    assert not any("shard 3 (" in line for line in lines)  # finished: the library says so
    uploads = [line for line in lines if "B of " in line]
    assert [line.rsplit("(", 1)[1] for line in uploads] == ["25%)", "50%)", "75%)"]
    assert sum("job job_live on res-east.openai.azure.com" in line for line in lines) == 2


def test_wait_off_a_terminal_prints_plain_lines(tmp_path: Path) -> None:
    with Emulator(EmulatorConfig(speed=100, deployments={"dep-a": "gpt-4o"})) as emu:
        flags = ["--endpoint", emu.base_url, "--api-key", emu.api_key]
        source = write_requests(tmp_path / "data.jsonl", 6)
        runner = CliRunner()
        submitted = runner.invoke(main, ["submit", str(source), *flags, "--max-requests", "3"])
        assert submitted.exit_code == 0, submitted.output
        job_file = str(tmp_path / "data.job.json")
        result = runner.invoke(main, ["wait", job_file, *flags, "--poll-interval", "0.05"])
    assert result.exit_code == 0, result.output
    assert ESCAPE not in result.output
    progress = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert progress and all(re.match(r"^\[\d\d:\d\d:\d\d\] (shard \d|job )", p) for p in progress)
    assert any(re.search(r"shard 1 \(dep-a\): (validating|in_progress)", p) for p in progress)
    assert "3 completed" not in progress[0] and "2 completed" in progress[-1]
    table = result.stdout.splitlines()
    assert table[0].split()[:3] == ["shard", "deployment", "status"]
    assert "all results downloaded" in table[-1]


def test_the_library_reports_upload_progress(tmp_path: Path) -> None:
    with Emulator(EmulatorConfig(speed=2000)) as emu:
        connection = Connection(
            resolve_connection(endpoint=emu.base_url, api_key=emu.api_key, environ={})
        )
        seen: list[tuple[int, int, int]] = []
        source = write_requests(tmp_path / "data.jsonl", 40)
        job = Job.submit(
            source,
            connection,
            split_limits={"max_requests": 20},
            on_upload=lambda *event: seen.append(event),
        )
    sizes = {s.index: s.bytes for s in job.shards}
    last = {index: (sent, total) for index, sent, total in seen}
    assert last == {index: (size, size) for index, size in sizes.items()}
    assert all(0 < sent <= total for _, sent, total in seen)


def test_a_retried_upload_reports_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "shard.jsonl"
    path.write_bytes(b"x" * 10_000)
    sent: list[int] = []
    with open(path, "rb") as raw:
        reader = _ProgressReader(raw, sent.append)
        assert reader.read(4096) and reader.read(4096)
        reader.seek(0)  # what the HTTP client does before sending the body again
        assert len(reader.read(1000)) + len(reader.read()) == 10_000
    assert sent[:3] == [4096, 8192, 1000] and sent[-1] == 10_000
