"""Batch jobs end to end: the CLI and the library against the emulator over HTTP, with the
real ``openai`` SDK (submit → wait → download, deployments, quota, faults, cancel, list)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from click.testing import CliRunner, Result

from jsonl_batch.cli import main
from jsonl_batch.emulator import Emulator, EmulatorConfig
from jsonl_batch.formats.jobfile import read_job_file
from jsonl_batch.merge import plan_merge
from jsonl_batch.service import Connection, Job, resolve_connection
from jsonl_batch.tokens import TokenCounter

DEPLOYMENTS = {"dep-a": "gpt-4o-2024-08-06", "dep-b": "gpt-4o-2024-08-06"}
ENV_VARS = (
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_API_BASE",
    "AZURE_OPENAI_API_KEY",
    "AZURE_API_KEY",
    "OPENAI_API_VERSION",
    "AZURE_API_VERSION",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "LITELLM_API_KEY",
    "AZURE_OPENAI_AD_TOKEN",
    "JSONL_BATCH_CRASH_AFTER",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def emu(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """An emulator whose key is in the environment, as a user's would be.

    Simulated seconds per real second come from ``@pytest.mark.parametrize("emu", [speed],
    indirect=True)``; by default a batch takes a few hundredths of a second.
    """
    speed = getattr(request, "param", 3000)
    server = Emulator(EmulatorConfig(speed=speed, deployments=DEPLOYMENTS)).start()
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", server.api_key)
    yield server
    server.close()


slow_batches = pytest.mark.parametrize("emu", [150], indirect=True)


def chat_line(i: int, model: str = "dep-a") -> dict[str, Any]:
    return {
        "custom_id": f"req-{i}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": f"Question {i}?"}]},
    }


def write_requests(path: Path, n: int, model: str = "dep-a") -> Path:
    path.write_text("".join(json.dumps(chat_line(i, model)) + "\n" for i in range(n)))
    return path


def run(*args: str, code: int | None = 0) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    if code is not None:
        assert result.exit_code == code, result.output
    return result


def azure_flags(emu: Emulator) -> list[str]:
    return ["--endpoint", emu.base_url, "--api-key", emu.api_key, "--max-retries", "5"]


def connect(emu: Emulator, **kwargs: Any) -> Connection:
    return Connection(
        resolve_connection(endpoint=emu.base_url, api_key=emu.api_key, environ={}, **kwargs)
    )


def sdk(emu: Emulator) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(
        azure_endpoint=emu.base_url, api_key=emu.api_key, api_version="2024-10-21", max_retries=0
    )


def batches_by_shard(emu: Emulator, job_id: str) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for batch in sdk(emu).batches.list(limit=100):
        metadata = batch.metadata or {}
        if metadata.get("jsonl_batch_job") == job_id:
            found.setdefault(metadata["shard"], []).append(batch)
    return found


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- the whole cycle -------------------------------------------------------------------


def test_submit_wait_download_over_two_deployments(emu: Emulator, tmp_path: Path) -> None:
    source = write_requests(tmp_path / "data.jsonl", 25)
    result = run(
        "submit", str(source), *azure_flags(emu), "--max-requests", "10",
        "--deployment", "dep-a", "--deployment", "dep-b",
    )  # fmt: skip
    assert "3 shard(s)" in result.stderr
    job_path = tmp_path / "data.job.json"
    job = read_job_file(job_path)
    assert [s.deployment for s in job.shards] == ["dep-a", "dep-b", "dep-a"]
    assert all(s.batch_id for s in job.shards)
    # the shard sent to dep-b was rewritten, next to the job, and that copy was uploaded
    rewritten = tmp_path / job.shards[1].upload_path
    assert rewritten.parent == tmp_path / "data.shards"
    assert {line["body"]["model"] for line in read_lines(rewritten)} == {"dep-b"}

    result = run("wait", str(job_path), "--poll-interval", "0.02")
    assert "all results downloaded" in result.output
    job = read_job_file(job_path)
    assert {s.status for s in job.shards} == {"completed"}
    outputs = [tmp_path / s.output_file for s in job.shards if s.output_file]
    ids = {line["custom_id"] for path in outputs for line in read_lines(path)}
    assert ids == {f"req-{i}" for i in range(25)}
    assert all(path.parent == tmp_path / "data.downloads" for path in outputs)
    # the batch's own timestamps, in the order it met them (the report draws its timeline)
    for shard in job.shards:
        times = shard.batch_times
        assert times["created_at"] <= times["in_progress_at"] <= times["finalizing_at"]
        assert times["finalizing_at"] <= times["completed_at"] < times["expires_at"]
    # each shard has exactly one batch, carrying the job's metadata and the right endpoint
    by_shard = batches_by_shard(emu, job.job_id)
    assert sorted(by_shard) == ["1", "2", "3"]
    assert all(len(batches) == 1 for batches in by_shard.values())
    assert {b[0].metadata["shard_sha256"] for b in by_shard.values()} == {
        s.sha256 for s in job.shards
    }
    # the merge step reads the job file as written
    plan = plan_merge(job_path)
    assert plan.source == job_path.parent / "data.jsonl"
    assert len(plan.outputs) == 3

    status = json.loads(run("status", str(job_path), "--format", "json").stdout)
    assert status["done"] and status["completed"] == 25
    assert [row["status"] for row in status["shards"]] == ["completed"] * 3


def test_submit_is_idempotent_and_status_offline(emu: Emulator, tmp_path: Path) -> None:
    source = write_requests(tmp_path / "data.jsonl", 6)
    run("submit", str(source), *azure_flags(emu), "--max-requests", "3")
    first = read_job_file(tmp_path / "data.job.json")
    result = run("submit", str(source), *azure_flags(emu))
    assert "resuming" in result.stderr
    again = read_job_file(tmp_path / "data.job.json")
    assert [s.batch_id for s in again.shards] == [s.batch_id for s in first.shards]
    assert len(batches_by_shard(emu, first.job_id)) == 2
    table = run("status", str(tmp_path / "data.job.json"), "--no-refresh").output
    assert "shard" in table and first.shards[0].batch_id in table


def test_manifest_input_and_library_api(emu: Emulator, tmp_path: Path) -> None:
    from jsonl_batch.split import split_file

    source = write_requests(tmp_path / "in.jsonl", 8)
    split_file(source, tmp_path / "parts", target="azure", max_requests=4)
    events: list[str] = []
    job = Job.submit(tmp_path / "parts" / "in.manifest.json", connect(emu), on_event=events.append)
    assert job.path == tmp_path / "parts" / "in.job.json"
    assert job.data.source == "../in.jsonl"
    assert job.wait(poll_interval=0.02)
    assert job.done and all(s.output_file for s in job.shards)
    assert any("output file saved" in event for event in events)


# --- quota -----------------------------------------------------------------------------


@slow_batches
def test_enqueued_limit_queues_shards_until_quota_frees(emu: Emulator, tmp_path: Path) -> None:
    source = write_requests(tmp_path / "data.jsonl", 30)
    one = TokenCounter().count_line(chat_line(0)).input_tokens
    limit = one * 15  # room for one 10-request shard, never two
    emu.set_faults(token_quota=limit)
    result = run(
        "submit", str(source), *azure_flags(emu), "--max-requests", "10",
        "--enqueued-limit", str(limit), "--format", "json",
    )  # fmt: skip
    statuses = [row["status"] for row in json.loads(result.stdout)["shards"]]
    assert statuses.count("queued") == 2 and statuses[0] == "validating"
    run("wait", str(tmp_path / "data.job.json"), "--poll-interval", "0.02")
    job = read_job_file(tmp_path / "data.job.json")
    assert {s.status for s in job.shards} == {"completed"}
    # the limit kept every create under the service's quota: no refusals, one batch each
    assert all(s.attempt == 1 and not s.previous_batch_ids for s in job.shards)
    assert all(len(b) == 1 for b in batches_by_shard(emu, job.job_id).values())


@slow_batches
def test_token_limit_exceeded_is_retried_not_final(emu: Emulator, tmp_path: Path) -> None:
    source = write_requests(tmp_path / "data.jsonl", 20)
    one = TokenCounter().count_line(chat_line(0)).input_tokens
    emu.set_faults(token_quota=one * 15)
    fast_retry = ["--quota-retry-delay", "0.05"]
    result = run("submit", str(source), *azure_flags(emu), "--max-requests", "10", *fast_retry)
    assert "enqueued-token quota full" in result.stderr  # Azure's fail-fast refusal at create
    job_path = tmp_path / "data.job.json"
    assert "queued" in {s.status for s in read_job_file(job_path).shards}
    run("wait", str(job_path), "--poll-interval", "0.02", *fast_retry)
    job = read_job_file(job_path)
    assert {s.status for s in job.shards} == {"completed"}
    retried = [s for s in job.shards if s.previous_batch_ids]
    assert retried and all(s.attempt > 1 for s in retried)
    assert all(s.errors == [] for s in job.shards)


def test_quota_refusals_give_up_after_max_attempts(emu: Emulator, tmp_path: Path) -> None:
    source = write_requests(tmp_path / "data.jsonl", 3)
    emu.set_faults(token_quota=1)  # no shard can ever fit
    job = Job.submit(source, connect(emu), quota_max_attempts=2, quota_retry_seconds=0.01)
    assert job.wait(poll_interval=0.01)
    shard = job.shards[0]
    assert shard.status == "failed" and shard.attempt == 2
    assert [e.code for e in shard.errors] == ["token_limit_exceeded"]
    assert len(shard.previous_batch_ids) == 1
    assert len(batches_by_shard(emu, job.data.job_id)["1"]) == 2


class RefuseFirstCreate(httpx2.BaseTransport):
    """Azure's fail-fast regions: the first batch create answers HTTP 400
    ``token_limit_exceeded``; everything else goes to the emulator."""

    def __init__(self) -> None:
        self.inner = httpx2.HTTPTransport()
        self.refused = 0

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.method == "POST" and request.url.path.endswith("/batches") and not self.refused:
            self.refused += 1
            error = {"code": "token_limit_exceeded", "message": "Enqueued token limit reached."}
            return httpx2.Response(400, json={"error": error}, request=request)
        return self.inner.handle_request(request)


def test_http_400_token_limit_is_retried(emu: Emulator, tmp_path: Path) -> None:
    source = write_requests(tmp_path / "data.jsonl", 3)
    transport = RefuseFirstCreate()
    settings = resolve_connection(endpoint=emu.base_url, api_key=emu.api_key, environ={})
    client = openai.AzureOpenAI(
        azure_endpoint=emu.base_url,
        api_key=emu.api_key,
        api_version="2024-10-21",
        http_client=httpx2.Client(transport=transport),
    )
    events: list[str] = []
    job = Job.submit(
        source, Connection(settings, client), quota_retry_seconds=0.01, on_event=events.append
    )
    assert job.shards[0].status == "queued" and transport.refused == 1
    assert any("enqueued-token quota full" in event for event in events)
    assert job.wait(poll_interval=0.01)
    assert job.shards[0].status == "completed" and job.shards[0].attempt == 2
    assert len(batches_by_shard(emu, job.data.job_id)["1"]) == 1


# --- faults ----------------------------------------------------------------------------


def test_429_and_500_are_retried(emu: Emulator, tmp_path: Path) -> None:
    source = write_requests(tmp_path / "data.jsonl", 6)
    emu.set_faults(api_errors_next=2, api_error_statuses=[429, 500], retry_after=0)
    events: list[str] = []

    def break_the_first_create(message: str) -> None:
        events.append(message)
        if message.startswith("shard 2: uploaded"):
            emu.set_faults(api_errors_next=2, api_error_statuses=[500, 503])

    job = Job.submit(
        source,
        connect(emu),
        split_limits={"max_requests": 3},
        on_event=break_the_first_create,
    )
    assert job.wait(poll_interval=0.02)
    answered = [r["status"] for r in emu.state()["recent_requests"]]
    assert sum(1 for status in answered if status in (429, 500, 503)) == 4
    assert any("retrying" in event for event in events)  # the create got a 5xx and retried
    assert all(len(b) == 1 for b in batches_by_shard(emu, job.data.job_id).values())


def test_expired_shard_keeps_partial_results(emu: Emulator, tmp_path: Path) -> None:
    source = write_requests(tmp_path / "data.jsonl", 20)
    emu.set_faults(expire_next=1, expire_progress=0.5)
    run("submit", str(source), *azure_flags(emu), "--max-requests", "10")
    result = run("wait", str(tmp_path / "data.job.json"), "--poll-interval", "0.02", code=1)
    assert "expired" in result.output
    job = read_job_file(tmp_path / "data.job.json")
    expired = next(s for s in job.shards if s.status == "expired")
    assert expired.output_file and expired.error_file
    done = read_lines(tmp_path / expired.output_file)
    missed = read_lines(tmp_path / expired.error_file)
    assert done and missed and len(done) + len(missed) == 10
    assert {line["error"]["code"] for line in missed} == {"batch_expired"}


def test_cancel_job_and_single_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Emulator(EmulatorConfig(speed=1, deployments=DEPLOYMENTS)) as slow:
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", slow.api_key)
        source = write_requests(tmp_path / "data.jsonl", 8)
        run("submit", str(source), *azure_flags(slow), "--max-requests", "4")
        job_path = tmp_path / "data.job.json"
        job = read_job_file(job_path)
        result = run("wait", str(job_path), "--timeout", "0", code=1)
        assert "still running" in result.stderr
        result = run("cancel", str(job.shards[0].batch_id), *azure_flags(slow))
        assert "cancel requested for 1 batch:" in result.output
        result = run("cancel", str(job_path), "--format", "json")
        assert json.loads(result.stdout)["cancelled"] == [job.shards[1].batch_id]
        slow.advance(120)
        result = run("wait", str(job_path), "--poll-interval", "0.02", code=1)
        job = read_job_file(job_path)
        assert {s.status for s in job.shards} == {"cancelled"}


def test_list_follows_pages_and_filters_by_job(emu: Emulator, tmp_path: Path) -> None:
    first = write_requests(tmp_path / "a.jsonl", 8)
    second = write_requests(tmp_path / "b.jsonl", 8)
    run("submit", str(first), *azure_flags(emu), "--max-requests", "2")
    run("submit", str(second), *azure_flags(emu), "--max-requests", "2")
    job_a = read_job_file(tmp_path / "a.job.json")
    # newest first: job b's four batches fill the first page of 4, job a's are on the next
    result = run("list", "--job", str(tmp_path / "a.job.json"), "--limit", "4", "--format", "json")
    rows = json.loads(result.stdout)
    assert sorted(row["id"] for row in rows) == sorted(s.batch_id for s in job_a.shards)
    # ISO 8601 with the offset, and the wall clock's date (the emulator's clock runs fast)
    created = [datetime.fromisoformat(row["created"]) for row in rows]
    assert all(
        c.utcoffset() is not None and abs(c.timestamp() - time.time()) < 120 for c in created
    )
    pages = [r for r in emu.state()["recent_requests"] if r["method"] == "GET"]
    assert [r["path"] for r in pages[-2:]] == ["/openai/batches"] * 2
    result = run("list", *azure_flags(emu), "--limit", "3")
    header, *rows = result.stdout.strip().splitlines()
    assert header.split()[:3] == ["batch", "status", "created"] and len(rows) == 3


# --- clear errors ----------------------------------------------------------------------


def test_bad_key_wrong_endpoint_unreachable_give_one_message(emu: Emulator, tmp_path: Path) -> None:
    source = write_requests(tmp_path / "data.jsonl", 2)
    result = run("submit", str(source), "--endpoint", emu.base_url, "--api-key", "wrong", code=1)
    assert "refused the credentials" in result.stderr and emu.base_url in result.stderr
    assert "hint:" in result.stderr and "Traceback" not in result.stderr

    wrong = emu.base_url + "/nothing-here"
    result = run(
        "submit", str(source), "--job", str(tmp_path / "x.job.json"),
        "--endpoint", wrong, "--api-key", emu.api_key, code=1,
    )  # fmt: skip
    assert "not found" in result.stderr and "api-version" in result.stderr

    result = run(
        "submit", str(source), "--job", str(tmp_path / "y.job.json"),
        "--endpoint", "http://127.0.0.1:9", "--api-key", "k", "--max-retries", "0", code=1,
    )  # fmt: skip
    assert "cannot reach http://127.0.0.1:9" in result.stderr


def test_missing_deployment_shows_in_status(emu: Emulator, tmp_path: Path) -> None:
    source = write_requests(tmp_path / "data.jsonl", 3, model="no-such-deployment")
    run("submit", str(source), *azure_flags(emu))
    result = run("wait", str(tmp_path / "data.job.json"), "--poll-interval", "0.02", code=1)
    assert "model_not_found" in result.output + result.stderr


def test_missing_key_and_entra_without_azure_identity(tmp_path: Path) -> None:
    source = write_requests(tmp_path / "data.jsonl", 2)
    result = run("submit", str(source), "--endpoint", "https://x.openai.azure.com", code=2)
    assert "AZURE_OPENAI_API_KEY" in result.stderr
    result = run(
        "submit", str(source), "--endpoint", "https://x.openai.azure.com", "--auth", "entra",
        code=None,
    )  # fmt: skip
    try:
        import azure.identity  # noqa: F401
    except ImportError:
        assert result.exit_code == 2
        assert "pip install azure-identity" in result.stderr


def test_litellm_style_base_url_with_custom_provider(emu: Emulator, tmp_path: Path) -> None:
    source = write_requests(tmp_path / "data.jsonl", 4)
    run(
        "submit", str(source), "--base-url", emu.openai_base_url, "--api-key", emu.api_key,
        "--custom-llm-provider", "azure", "--wait", "--poll-interval", "0.02",
    )  # fmt: skip
    job = read_job_file(tmp_path / "data.job.json")
    assert job.target == "litellm" and job.connection.kind == "openai"
    assert job.connection.custom_llm_provider == "azure"
    assert job.shards[0].endpoint == "/v1/chat/completions"
    assert job.shards[0].status == "completed"
    assert "api_key" not in json.dumps(job.connection.model_dump()).replace('"api_key"', "")


def test_azure_v1_base_url(emu: Emulator, tmp_path: Path) -> None:
    source = write_requests(tmp_path / "data.jsonl", 2)
    v1 = emu.base_url + "/openai/v1"
    run("submit", str(source), "--endpoint", v1, "--target", "azure", "--wait",
        "--poll-interval", "0.02")  # fmt: skip
    job = read_job_file(tmp_path / "data.job.json")
    assert job.connection.kind == "openai" and job.connection.api_version is None
    assert job.shards[0].endpoint == "/chat/completions"
    assert job.shards[0].status == "completed"


def test_env_variables_litellm_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_API_BASE", "https://res.openai.azure.com/")
    monkeypatch.setenv("AZURE_API_KEY", "secret")
    settings = resolve_connection()
    assert settings.kind == "azure" and settings.endpoint == "https://res.openai.azure.com"
    assert settings.api_key == "secret" and "secret" not in json.dumps(settings.public())
    assert "secret" not in repr(settings)


def test_a_batch_that_failed_validation_still_merges(emu: Emulator, tmp_path: Path) -> None:
    """No output and no error file: every request is failed with the batch's own code, and
    all of them go to the retry file."""
    source = write_requests(tmp_path / "data.jsonl", 3, model="no-such-deployment")
    run("submit", str(source), *azure_flags(emu))
    run(
        "wait",
        str(tmp_path / "data.job.json"),
        *azure_flags(emu),
        "--poll-interval",
        "0.05",
        code=1,
    )
    result = run("merge", str(tmp_path / "data.job.json"), code=1)
    assert "model_not_found" in result.output
    rows = read_lines(tmp_path / "data.results.jsonl")
    assert [(r["status"], r["error"]["code"]) for r in rows] == [("failed", "model_not_found")] * 3
    assert len(read_lines(tmp_path / "data.retry.jsonl")) == 3


@slow_batches
def test_requests_of_an_expired_shard_are_expired_not_missing(
    emu: Emulator, tmp_path: Path
) -> None:
    source = write_requests(tmp_path / "data.jsonl", 10)
    emu.set_faults(expire_next=1, expire_progress=0.5)
    run("submit", str(source), *azure_flags(emu), "--max-requests", "5")
    run(
        "wait",
        str(tmp_path / "data.job.json"),
        *azure_flags(emu),
        "--poll-interval",
        "0.05",
        code=1,
    )
    run("merge", str(tmp_path / "data.job.json"), code=1)
    statuses = {r["status"] for r in read_lines(tmp_path / "data.results.jsonl")}
    assert "missing" not in statuses
    assert "expired" in statuses
