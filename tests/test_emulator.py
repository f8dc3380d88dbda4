"""The batch emulator, driven by the real ``openai`` SDK as users and our submit code do."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from click.testing import CliRunner

from jsonl_batch.cli import main
from jsonl_batch.emulator import Emulator, EmulatorConfig
from jsonl_batch.emulator.api_error import AZURE_401_MESSAGE
from jsonl_batch.emulator.multipart import (
    BodyError,
    ChunkedReader,
    LengthReader,
    parse_multipart,
)
from jsonl_batch.formats.wire import endpoint_of
from jsonl_batch.tokens import TokenCounter

API_VERSION = "2025-04-01-preview"
TERMINAL = {"completed", "failed", "expired", "cancelled"}
DEPLOYMENTS = {"gpt-4o-batch": "gpt-4o-2024-08-06", "gpt-4.1-batch": "gpt-4.1-2025-04-14"}


# --- helpers -------------------------------------------------------------------------


def chat_line(i: int, model: str = "gpt-4o-batch", url: str = "/v1/chat/completions") -> dict:
    return {
        "custom_id": f"task-{i}",
        "method": "POST",
        "url": url,
        "body": {
            "model": model,
            "messages": [{"role": "user", "content": f"When was company number {i} founded?"}],
            "max_tokens": 40,
        },
    }


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def azure(emu: Emulator, **kwargs: Any) -> openai.AzureOpenAI:
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 10)
    return openai.AzureOpenAI(
        azure_endpoint=emu.base_url, api_key=emu.api_key, api_version=API_VERSION, **kwargs
    )


def oai(emu: Emulator, base: str | None = None, **kwargs: Any) -> openai.OpenAI:
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 10)
    return openai.OpenAI(base_url=base or emu.openai_base_url, api_key=emu.api_key, **kwargs)


def wait_terminal(client: openai.OpenAI, batch_id: str, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in TERMINAL:
            return batch
        assert time.monotonic() < deadline, f"batch still {batch.status}"
        time.sleep(0.02)


def wait_status(client: openai.OpenAI, batch_id: str, status: str, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while (batch := client.batches.retrieve(batch_id)).status != status:
        assert time.monotonic() < deadline, f"batch still {batch.status}"
        time.sleep(0.005)
    return batch


def read_results(client: openai.OpenAI, file_id: str | None) -> list[dict]:
    if file_id is None:
        return []
    text = client.files.content(file_id).text
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def submit(client: openai.OpenAI, path: Path, endpoint: str = "/chat/completions") -> Any:
    with path.open("rb") as stream:
        uploaded = client.files.create(file=stream, purpose="batch")
    return client.batches.create(
        input_file_id=uploaded.id, endpoint=endpoint, completion_window="24h"
    )


@pytest.fixture
def mapped() -> Iterator[Emulator]:
    """An emulator with a deployment map (chat replies report the underlying model)."""
    with Emulator(EmulatorConfig(speed=2000, deployments=DEPLOYMENTS)) as server:
        yield server


# --- full runs with the real SDK ---------------------------------------------------------


def test_azure_client_full_cycle(mapped: Emulator, tmp_path: Path) -> None:
    client = azure(mapped)
    rows = [chat_line(i) for i in range(12)]
    path = write_jsonl(tmp_path / "in.jsonl", rows)

    with path.open("rb") as stream:
        uploaded = client.files.create(
            file=stream,
            purpose="batch",
            extra_body={"expires_after": {"anchor": "created_at", "seconds": 1_209_600}},
        )
    assert uploaded.status == "processed"
    assert uploaded.bytes == path.stat().st_size
    assert uploaded.filename == "in.jsonl"
    assert uploaded.expires_at == uploaded.created_at + 1_209_600
    assert client.files.retrieve(uploaded.id).id == uploaded.id

    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/chat/completions",
        completion_window="24h",
        metadata={"job": "demo"},
    )
    assert batch.status == "validating"
    assert batch.expires_at == batch.created_at + 86_400
    done = wait_terminal(client, batch.id)

    assert done.status == "completed"
    assert done.metadata == {"job": "demo"}
    assert done.request_counts.total == 12 and done.request_counts.completed == 12
    assert done.created_at <= done.in_progress_at <= done.finalizing_at <= done.completed_at
    # the phases ran on the simulated clock, but the dates are the wall clock's: never ahead
    assert time.time() - 60 <= done.created_at <= done.completed_at <= time.time() + 1
    outputs = read_results(client, done.output_file_id)
    assert sorted(o["custom_id"] for o in outputs) == sorted(r["custom_id"] for r in rows)
    assert [o["custom_id"] for o in outputs] != [r["custom_id"] for r in rows]
    # Azure leaves a zero-byte error file on success.
    assert done.error_file_id is not None
    assert client.files.content(done.error_file_id).content == b""

    counter = TokenCounter(DEPLOYMENTS)
    by_id = {r["custom_id"]: r for r in rows}
    for output in outputs:
        response = output["response"]
        assert response["status_code"] == 200 and response["request_id"]
        body = response["body"]
        assert body["object"] == "chat.completion"
        assert body["model"] == "gpt-4o-2024-08-06"  # the model, not the deployment
        expected = counter.count_body("chat/completions", by_id[output["custom_id"]]["body"])
        assert body["usage"]["prompt_tokens"] == expected.input_tokens
        assert 1 <= body["usage"]["completion_tokens"] <= 40
        assert body["usage"]["total_tokens"] == (
            body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
        )
        assert body["choices"][0]["message"]["content"]

    files = client.files.list(purpose="batch_output")
    assert {f.id for f in files} == {done.output_file_id, done.error_file_id}
    client.files.delete(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)


def test_openai_client_responses_and_list_pagination(mapped: Emulator, tmp_path: Path) -> None:
    client = oai(mapped)
    rows = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/responses",
            "body": {"model": "gpt-4.1-batch", "input": f"Say hi {i}"},
        }
        for i in range(3)
    ]
    path = write_jsonl(tmp_path / "responses.jsonl", rows)
    batch_ids = [submit(client, path, "/v1/responses").id for _ in range(3)]

    for batch_id in batch_ids:
        done = wait_terminal(client, batch_id)
        assert done.status == "completed"
        assert done.error_file_id is None  # OpenAI: no error file when nothing failed
        outputs = read_results(client, done.output_file_id)
        assert len(outputs) == 3
        body = outputs[0]["response"]["body"]
        assert body["object"] == "response"
        assert body["output"][0]["content"][0]["type"] == "output_text"
        assert body["usage"]["input_tokens"] > 0

    first = client.batches.list(limit=2)
    assert [b.id for b in first.data] == batch_ids[::-1][:2]
    assert first.has_more is True
    assert [b.id for b in client.batches.list(limit=2)] == batch_ids[::-1]  # auto-paging
    second = client.batches.list(limit=2, after=first.data[-1].id)
    assert [b.id for b in second.data] == [batch_ids[0]] and second.has_more is False


def test_azure_v1_path_and_bearer_auth(emulator: Emulator, tmp_path: Path) -> None:
    # OpenAI(base_url=".../openai/v1") sends "Authorization: Bearer", as Azure's v1 API allows.
    client = oai(emulator, base=emulator.base_url + "/openai/v1")
    batch = submit(client, write_jsonl(tmp_path / "a.jsonl", [chat_line(1)]))
    done = wait_terminal(client, batch.id)
    assert done.status == "completed"
    output = read_results(client, done.output_file_id)[0]
    # Without a deployment map the deployment name is all the emulator knows.
    assert output["response"]["body"]["model"] == "gpt-4o-batch"


def test_same_input_gives_same_replies(emulator: Emulator, tmp_path: Path) -> None:
    client = azure(emulator)
    path = write_jsonl(tmp_path / "in.jsonl", [chat_line(i) for i in range(5)])
    replies = []
    for _ in range(2):
        done = wait_terminal(client, submit(client, path).id)
        replies.append(
            {
                o["custom_id"]: (o["response"]["body"]["choices"], o["response"]["body"]["usage"])
                for o in read_results(client, done.output_file_id)
            }
        )
    assert replies[0] == replies[1]


# --- auth and routing -----------------------------------------------------------------


def test_wrong_key_gets_azure_401(emulator: Emulator) -> None:
    client = openai.AzureOpenAI(
        azure_endpoint=emulator.base_url, api_key="wrong", api_version=API_VERSION, max_retries=0
    )
    with pytest.raises(openai.AuthenticationError) as caught:
        client.batches.list()
    assert caught.value.response.json() == {"error": {"code": "401", "message": AZURE_401_MESSAGE}}


def test_classic_paths_need_api_version(emulator: Emulator) -> None:
    response = httpx2.get(
        emulator.base_url + "/openai/batches", headers={"api-key": emulator.api_key}
    )
    assert response.status_code == 404
    assert "api-version" in response.json()["error"]["message"]
    ok = httpx2.get(
        emulator.base_url + "/openai/batches",
        params={"api-version": API_VERSION},
        headers={"api-key": emulator.api_key},
    )
    assert ok.status_code == 200 and ok.json()["object"] == "list"


def test_upload_rules(emulator: Emulator, tmp_path: Path) -> None:
    client = azure(emulator)
    with pytest.raises(openai.BadRequestError, match=r"Must be \.jsonl"):
        client.files.create(file=("input.json", b"{}\n"), purpose="batch")
    with pytest.raises(openai.BadRequestError, match=r"expires_after\.seconds"):
        client.files.create(
            file=("a.jsonl", b"{}\n"),
            purpose="batch",
            extra_body={"expires_after": {"anchor": "created_at", "seconds": 60}},
        )
    small = Emulator(EmulatorConfig(speed=2000, max_upload_bytes=1000)).start()
    try:
        with pytest.raises(openai.BadRequestError, match="File is too large"):
            azure(small).files.create(file=("big.jsonl", b"x" * 5000), purpose="batch")
        assert list(small.engine.store.files_dir.iterdir()) == []  # partial upload removed
    finally:
        small.close()


def test_create_rules(emulator: Emulator, tmp_path: Path) -> None:
    client = azure(emulator)
    uploaded = client.files.create(file=("a.jsonl", b""), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="completion_window"):
        client.batches.create(
            input_file_id=uploaded.id, endpoint="/chat/completions", completion_window="48h"
        )
    with pytest.raises(openai.BadRequestError, match=r"metadata\.tags"):
        client.batches.create(
            input_file_id=uploaded.id,
            endpoint="/chat/completions",
            completion_window="24h",
            metadata={"tags": ["a"]},  # type: ignore[dict-item]
        )
    with pytest.raises(openai.BadRequestError, match="Cannot find file"):
        client.batches.create(
            input_file_id="file-missing", endpoint="/chat/completions", completion_window="24h"
        )
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_missing")


# --- lifecycle outcomes -----------------------------------------------------------------


def test_invalid_input_fails_with_validator_codes(emulator: Emulator, tmp_path: Path) -> None:
    client = azure(emulator)
    path = tmp_path / "bad.jsonl"
    path.write_text(
        json.dumps(chat_line(1)) + "\n" + "{not json\n" + json.dumps(chat_line(1)) + "\n"
    )
    done = wait_terminal(client, submit(client, path).id)
    assert done.status == "failed"
    assert done.failed_at is not None and done.output_file_id is None
    errors = {(e.code, e.line) for e in done.errors.data}
    assert ("invalid_json_line", 2) in errors
    assert ("duplicate_custom_id", 3) in errors

    empty = wait_terminal(client, submit(client, write_jsonl(tmp_path / "e.jsonl", [])).id)
    assert [e.code for e in empty.errors.data] == ["empty_file"]


def test_unknown_deployment_fails(mapped: Emulator, tmp_path: Path) -> None:
    client = azure(mapped)
    path = write_jsonl(tmp_path / "in.jsonl", [chat_line(1, model="gpt-5-batch")])
    done = wait_terminal(client, submit(client, path).id)
    assert done.status == "failed"
    assert done.errors.data[0].code == "model_not_found"


def test_request_failures_go_to_error_file(emulator: Emulator, tmp_path: Path) -> None:
    emulator.set_faults(request_failure_rate=0.5, request_failure_statuses=[429, 500])
    client = azure(emulator)
    path = write_jsonl(tmp_path / "in.jsonl", [chat_line(i) for i in range(40)])
    done = wait_terminal(client, submit(client, path).id)
    assert done.status == "completed"
    outputs = read_results(client, done.output_file_id)
    errors = read_results(client, done.error_file_id)
    assert done.request_counts.completed == len(outputs) > 0
    assert done.request_counts.failed == len(errors) > 0
    assert len(outputs) + len(errors) == 40
    for line in errors:
        assert line["error"] is None
        assert line["response"]["status_code"] in (429, 500)
        assert line["response"]["body"]["error"]["message"]
    # The same lines fail every time: failures are seeded by custom_id.
    again = wait_terminal(client, submit(client, path).id)
    assert {e["custom_id"] for e in read_results(client, again.error_file_id)} == {
        e["custom_id"] for e in errors
    }


def test_expired_batch_splits_done_and_expired(emulator: Emulator, tmp_path: Path) -> None:
    emulator.set_faults(expire_next=1, expire_progress=0.5)
    client = azure(emulator)
    path = write_jsonl(tmp_path / "in.jsonl", [chat_line(i) for i in range(10)])
    done = wait_terminal(client, submit(client, path).id)
    assert done.status == "expired" and done.expired_at is not None
    outputs = read_results(client, done.output_file_id)
    errors = read_results(client, done.error_file_id)
    assert len(outputs) == 5 and len(errors) == 5
    assert {e["error"]["code"] for e in errors} == {"batch_expired"}
    assert all(e["response"] is None for e in errors)
    assert (done.request_counts.completed, done.request_counts.failed) == (5, 5)
    # expire_next was used up: the next batch completes.
    assert wait_terminal(client, submit(client, path).id).status == "completed"


def test_cancel_in_progress_and_after_completion(tmp_path: Path) -> None:
    with Emulator(EmulatorConfig(speed=20)) as slow:
        client = azure(slow)
        path = write_jsonl(tmp_path / "in.jsonl", [chat_line(i) for i in range(200)])
        batch = submit(client, path)
        slow.advance(60)  # skip validating; in_progress then lasts 40 s simulated, 2 s real
        wait_status(client, batch.id, "in_progress")
        cancelling = client.batches.cancel(batch.id)
        assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
        slow.advance(30)
        done = wait_terminal(client, batch.id)
        assert done.status == "cancelled" and done.cancelled_at is not None
        outputs = read_results(client, done.output_file_id)
        assert len(outputs) == done.request_counts.completed < 200
        # Cancelling again is allowed; cancelling a finished batch is a conflict.
        assert client.batches.cancel(batch.id).status == "cancelled"

    with Emulator(EmulatorConfig(speed=2000)) as fast:
        client = azure(fast)
        finished = wait_terminal(
            client, submit(client, write_jsonl(tmp_path / "b.jsonl", [chat_line(1)])).id
        )
        with pytest.raises(openai.ConflictError, match="Cannot cancel a batch with status"):
            client.batches.cancel(finished.id)


def test_cancel_while_validating_has_no_results(tmp_path: Path) -> None:
    with Emulator(EmulatorConfig(speed=20)) as server:
        client = azure(server)
        batch = submit(client, write_jsonl(tmp_path / "in.jsonl", [chat_line(1)]))
        client.batches.cancel(batch.id)
        server.advance(60)
        done = wait_terminal(client, batch.id)
        assert done.status == "cancelled"
        assert done.in_progress_at is None and done.output_file_id is None


def test_token_limit_exceeded_fails_fast(emulator: Emulator, tmp_path: Path) -> None:
    client = azure(emulator)
    path = write_jsonl(tmp_path / "in.jsonl", [chat_line(i, "gpt-4.1-batch") for i in range(3)])
    tokens = sum(
        TokenCounter().count_body(endpoint_of(r["url"]), r["body"]).input_tokens
        for r in json.loads("[" + ",".join(path.read_text().splitlines()) + "]")
    )
    emulator.set_faults(token_quota={"gpt-4.1-batch": tokens + tokens // 2})

    with path.open("rb") as stream:
        uploaded = client.files.create(file=stream, purpose="batch")
    raw = client.batches.with_raw_response.create(
        input_file_id=uploaded.id, endpoint="/chat/completions", completion_window="24h"
    )
    assert raw.headers["deployment-enqueued-tokens"] == str(tokens)
    assert raw.headers["deployment-maximum-enqueued-tokens"] == str(tokens + tokens // 2)
    first = raw.parse()
    assert first.status == "validating"
    assert emulator.state()["enqueued_tokens"] == {"gpt-4.1-batch": tokens}

    second = client.batches.create(
        input_file_id=uploaded.id, endpoint="/chat/completions", completion_window="24h"
    )
    assert second.status == "failed"
    error = second.errors.data[0]
    assert error.code == "token_limit_exceeded"
    assert error.line is None and error.param is None
    assert error.message.startswith(
        "The number of enqueued tokens has surpassed the configured limit of "
    )
    assert "for the deployment 'gpt-4.1-batch'. Please either increase the limit" in error.message

    # Once the first batch is done its tokens leave the queue and a new one fits.
    assert wait_terminal(client, first.id).status == "completed"
    third = client.batches.create(
        input_file_id=uploaded.id, endpoint="/chat/completions", completion_window="24h"
    )
    assert third.status == "validating"


def test_token_limit_message_matches_azure(emulator: Emulator, tmp_path: Path) -> None:
    emulator.set_faults(token_quota=30_000)
    client = azure(emulator)
    big = [chat_line(0, "gpt-4.1-batch")]
    big[0]["body"]["messages"][0]["content"] = "word " * 31_000
    batch = submit(client, write_jsonl(tmp_path / "big.jsonl", big))
    assert batch.errors.data[0].message == (
        "The number of enqueued tokens has surpassed the configured limit of 30K for the "
        "deployment 'gpt-4.1-batch'. Please either increase the limit or try again once the "
        "current jobs have finished."
    )


# --- API-level faults -------------------------------------------------------------------


def test_api_429_has_retry_after_and_sdk_retries(emulator: Emulator) -> None:
    emulator.set_faults(api_errors_next=1, api_error_statuses=[429], retry_after=1)
    with pytest.raises(openai.RateLimitError) as caught:
        azure(emulator).batches.list()
    assert caught.value.response.headers["Retry-After"] == "1"

    emulator.set_faults(api_errors_next=1)
    assert azure(emulator, max_retries=2).batches.list().data == []
    statuses = [r["status"] for r in emulator.state()["recent_requests"]]
    assert statuses[-3:] == [429, 429, 200]


def test_api_500(emulator: Emulator) -> None:
    emulator.set_faults(api_errors_next=1, api_error_statuses=[500])
    with pytest.raises(openai.InternalServerError):
        azure(emulator).files.list()
    assert azure(emulator).files.list().data == []


def test_dropped_connection(emulator: Emulator, tmp_path: Path) -> None:
    emulator.set_faults(drop_next=1)
    client = azure(emulator)
    with pytest.raises(openai.APIConnectionError):
        client.files.create(file=("a.jsonl", b"{}\n"), purpose="batch")
    assert client.files.list().data == []  # the next call works; nothing was stored


def test_slow_response_times_out(emulator: Emulator) -> None:
    emulator.set_faults(slow_seconds=1.0)
    with pytest.raises(openai.APITimeoutError):
        azure(emulator, timeout=0.2).batches.list()
    emulator.set_faults(slow_seconds=0)
    assert azure(emulator).batches.list().data == []


def test_rates_from_cli_flags_are_applied(tmp_path: Path) -> None:
    config = EmulatorConfig(speed=2000)
    config.faults = config.faults.updated({"api_error_rate": 1.0, "api_error_statuses": [503]})
    with Emulator(config) as server, pytest.raises(openai.InternalServerError):
        azure(server).batches.list()


# --- control endpoint, persistence, CLI ---------------------------------------------------


def test_control_endpoints(emulator: Emulator, tmp_path: Path) -> None:
    headers = {"api-key": emulator.api_key}
    url = emulator.base_url + "/_emulator"
    response = httpx2.post(url + "/faults", json={"api_errors_next": 1}, headers=headers)
    assert response.status_code == 200 and response.json()["api_errors_next"] == 1
    bad = httpx2.post(url + "/faults", json={"nonsense": 1}, headers=headers)
    assert bad.status_code == 400 and "unknown fault" in bad.json()["error"]["message"]
    assert httpx2.post(url + "/faults", json={}).status_code == 401

    with pytest.raises(openai.RateLimitError):
        azure(emulator).batches.list()
    submit(azure(emulator), write_jsonl(tmp_path / "in.jsonl", [chat_line(1)]))
    state = httpx2.get(url + "/state", headers=headers).json()
    assert len(state["batches"]) == 1
    assert [f["purpose"] for f in state["files"]].count("batch") == 1
    assert state["faults"]["api_errors_next"] == 0

    clock = httpx2.post(url + "/clock", json={"advance": 3600}, headers=headers).json()
    assert clock["sim_time"] >= state["sim_time"] + 3600

    assert httpx2.post(url + "/reset", headers=headers).json() == {"reset": True}
    state = httpx2.get(url + "/state", headers=headers).json()
    assert state["batches"] == [] and state["files"] == [] and state["request_count"] == 0


def test_data_dir_survives_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    config = EmulatorConfig(speed=2000, data_dir=data_dir, api_key="k")
    with Emulator(config) as first:
        client = azure(first)
        done = wait_terminal(
            client, submit(client, write_jsonl(tmp_path / "in.jsonl", [chat_line(1)])).id
        )
        pending = submit(client, write_jsonl(tmp_path / "in2.jsonl", [chat_line(2)]))
    with Emulator(EmulatorConfig(speed=2000, data_dir=data_dir, api_key="k")) as second:
        client = azure(second)
        again = client.batches.retrieve(done.id)
        assert again.status == "completed" and again.output_file_id == done.output_file_id
        assert read_results(client, again.output_file_id)[0]["custom_id"] == "task-1"
        assert wait_terminal(client, pending.id).status == "completed"


def test_cli_prints_url_and_key_and_serves(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from jsonl_batch.cli import main; main()",
            "emulator",
            "--format",
            "json",
            "--speed",
            "2000",
            "--deployment",
            "gpt-4o-batch=gpt-4o-2024-08-06",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        assert info["base_url"].startswith("http://127.0.0.1:")
        client = openai.AzureOpenAI(
            azure_endpoint=info["base_url"],
            api_key=info["api_key"],
            api_version=API_VERSION,
            max_retries=0,
            timeout=10,
        )
        assert client.batches.list().data == []
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_cli_rejects_bad_options() -> None:
    result = CliRunner().invoke(main, ["emulator", "--deployment", "no-equals-sign"])
    assert result.exit_code == 2
    assert "NAME=MODEL" in result.output
    result = CliRunner().invoke(main, ["emulator", "--fail-rate", "2"])
    assert result.exit_code == 2 and "between 0 and 1" in result.output


# --- the multipart parser ----------------------------------------------------------------


def _form(boundary: bytes, content: bytes) -> bytes:
    return (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="expires_after[seconds]"\r\n\r\n1209600\r\n'
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="in.jsonl"\r\n'
        b"Content-Type: application/jsonl\r\n\r\n" + content + b"\r\n"
        b"--" + boundary + b"--\r\n"
    )


def _opener(tmp_path: Path):
    counter = iter(range(100))

    def open_file():
        path = tmp_path / f"part{next(counter)}"
        return str(path), path.open("wb")

    return open_file


def test_multipart_streams_file_parts(tmp_path: Path) -> None:
    boundary = b"abc123"
    # Content that contains near-boundaries and spans many read chunks.
    content = (b"--abc12\r\n--abc1" + bytes(range(256)) * 1000) * 3
    body = _form(boundary, content)
    form = parse_multipart(
        LengthReader(io.BytesIO(body), len(body)),
        boundary,
        _opener(tmp_path),
        max_file_bytes=10**7,
    )
    assert form.fields == {"purpose": "batch", "expires_after[seconds]": "1209600"}
    (uploaded,) = form.files
    assert uploaded.filename == "in.jsonl" and uploaded.size == len(content)
    assert Path(uploaded.path).read_bytes() == content


def test_multipart_chunked_and_too_large(tmp_path: Path) -> None:
    boundary = b"xyz"
    body = _form(boundary, b'{"a": 1}\n')
    chunked = (
        b"".join(
            b"%x\r\n" % len(body[i : i + 7]) + body[i : i + 7] + b"\r\n"
            for i in range(0, len(body), 7)
        )
        + b"0\r\n\r\n"
    )
    form = parse_multipart(
        ChunkedReader(io.BytesIO(chunked)), boundary, _opener(tmp_path), max_file_bytes=100
    )
    assert Path(form.files[0].path).read_bytes() == b'{"a": 1}\n'

    big = _form(boundary, b"x" * 500)
    parts = tmp_path / "parts"
    parts.mkdir()
    with pytest.raises(BodyError, match="File is too large"):
        parse_multipart(
            LengthReader(io.BytesIO(big), len(big)), boundary, _opener(parts), max_file_bytes=100
        )
    assert list(parts.iterdir()) == []  # the partial part is removed


def test_batch_expires_when_its_24h_window_passes(tmp_path: Path) -> None:
    with Emulator(EmulatorConfig(speed=20)) as server:
        client = azure(server)
        path = write_jsonl(tmp_path / "in.jsonl", [chat_line(i) for i in range(100)])
        batch = submit(client, path)
        server.advance(60)
        wait_status(client, batch.id, "in_progress")
        server.advance(86_400)
        done = wait_terminal(client, batch.id)
        # the window passed on the simulated clock; the dates stay the wall clock's
        assert done.status == "expired" and done.in_progress_at <= done.expired_at
        errors = read_results(client, done.error_file_id)
        assert errors and {e["error"]["code"] for e in errors} == {"batch_expired"}
        assert done.request_counts.completed + done.request_counts.failed == 100


def test_large_upload_streams_to_disk(emulator: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    line = (json.dumps(chat_line(0)) + "\n").encode()
    with path.open("wb") as stream:
        for _ in range(32):
            stream.write(line * (1_000_000 // len(line) + 1))
    tracemalloc.start()
    try:
        with path.open("rb") as stream:
            uploaded = azure(emulator).files.create(file=stream, purpose="batch")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert uploaded.bytes == path.stat().st_size > 30_000_000
    assert peak < 8_000_000  # client and server together hold a few buffers, not the file


def test_too_large_upload_is_answered_not_reset(tmp_path: Path) -> None:
    with Emulator(EmulatorConfig(speed=2000, max_upload_bytes=1_000_000)) as server:
        path = tmp_path / "big.jsonl"
        path.write_bytes(b"x" * 3_000_000)
        client = azure(server)
        with path.open("rb") as stream, pytest.raises(openai.BadRequestError, match="too large"):
            client.files.create(file=stream, purpose="batch")
        assert client.files.list().data == []
