"""Multi-resource jobs (issue 18) end to end: three emulators on 127.0.0.1 with different
deployment names and quotas, the real ``openai`` SDK, the CLI through click's CliRunner.

A 12-shard job spreads in proportion to quota; a deployment named differently on each
resource gets the shard rewritten (byte-exact where the name already matches); a resource
that stops answering has its shards not yet created finish elsewhere; merge is complete and
in input order, with cost and usage per resource.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from click.testing import CliRunner, Result

from jsonl_batch.cli import main
from jsonl_batch.emulator import Emulator, EmulatorConfig
from jsonl_batch.errors import ConfigError
from jsonl_batch.formats.jobfile import ResourceState, read_job_file
from jsonl_batch.formats.resources import (
    Deployment,
    Resource,
    read_resources,
    resources_from_items,
)
from jsonl_batch.service import Job, planner

# resource name -> (its deployment name for gpt-4o, configured enqueued-token quota)
LAYOUT = {"east": ("gpt4o-east", 300_000), "west": ("gpt-4o", 200_000), "north": ("b4o", 100_000)}
KEY_VARS = {name: f"KEY_{name.upper()}" for name in LAYOUT}


@pytest.fixture
def emulators(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Emulator]]:
    """Three emulators, each knowing only its own deployment name, keys in the environment."""
    servers: dict[str, Emulator] = {}
    for name, (deployment, _quota) in LAYOUT.items():
        config = EmulatorConfig(speed=3000, deployments={deployment: "gpt-4o-2024-08-06"})
        servers[name] = Emulator(config).start()
        monkeypatch.setenv(KEY_VARS[name], servers[name].api_key)
    yield servers
    for server in servers.values():
        server.close()


def write_resources(path: Path, servers: dict[str, Emulator]) -> Path:
    lines = []
    for name, (deployment, quota) in LAYOUT.items():
        lines += [
            f"[resources.{name}]",
            f'endpoint = "{servers[name].base_url}"',
            f'api-key-env = "{KEY_VARS[name]}"',
            f"[resources.{name}.deployments.{deployment}]",
            'model = "gpt-4o"',
            f"enqueued-token-quota = {quota}",
            "",
        ]
    path.write_text("\n".join(lines))
    return path


def write_requests(path: Path, n: int, url: str = "/chat/completions") -> Path:
    path.write_text(
        "".join(
            json.dumps(
                {
                    "custom_id": f"req-{i:03d}",
                    "method": "POST",
                    "url": url,
                    "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]},
                }
            )
            + "\n"
            for i in range(n)
        )
    )
    return path


def run(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == code, (result.output, result.stderr)
    return result


def batches_on(server: Emulator) -> list[Any]:
    client = openai.AzureOpenAI(
        azure_endpoint=server.base_url,
        api_key=server.api_key,
        api_version="2024-10-21",
        max_retries=0,
    )
    return list(client.batches.list(limit=100))


def test_twelve_shards_spread_by_quota_and_merge_in_input_order(
    emulators: dict[str, Emulator], tmp_path: Path
) -> None:
    resources = write_resources(tmp_path / "resources.toml", emulators)
    source = write_requests(tmp_path / "data.jsonl", 36)
    run("submit", str(source), "--resources", str(resources), "--max-requests", "3", "--wait",
        "--poll-interval", "0.02")  # fmt: skip
    job = read_job_file(tmp_path / "data.job.json")
    # 3 : 2 : 1 quotas → 6 : 4 : 2 shards
    assert Counter(s.resource for s in job.shards) == {"east": 6, "west": 4, "north": 2}
    for shard in job.shards:
        assert shard.deployment == LAYOUT[shard.resource or ""][0]
        upload = (tmp_path / shard.upload_path).read_bytes()
        if shard.resource == "west":  # the name matches body.model: the split shard, as is
            assert shard.upload_path == shard.path
        else:
            assert {json.loads(line)["body"]["model"] for line in upload.splitlines()} == {
                shard.deployment
            }
    # exactly one batch per shard, on its own resource, and nowhere else
    for name, server in emulators.items():
        on_server = Counter(b.metadata["shard"] for b in batches_on(server))
        assert on_server == Counter(str(s.index) for s in job.shards if s.resource == name)
    status = json.loads(run("status", str(tmp_path / "data.job.json"), "--format", "json").stdout)
    assert status["done"] and status["resources"]["north"]["shards"] == 2
    assert {row["resource"] for row in status["shards"]} == set(LAYOUT)
    text = run("status", str(tmp_path / "data.job.json"), "--no-refresh").stdout
    assert "3 resources (east, west, north)" in text

    report = tmp_path / "data.html"
    merged_run = run("merge", str(tmp_path / "data.job.json"), "--format", "json", "--report",
                     str(report))  # fmt: skip
    merged = json.loads(merged_run.stdout)
    assert merged["counts"]["succeeded"] == 36
    rows = [json.loads(line) for line in (tmp_path / "data.results.jsonl").read_text().splitlines()]
    assert [row["custom_id"] for row in rows] == [f"req-{i:03d}" for i in range(36)]
    per_resource = {row["name"]: row for row in merged["resources"]}
    assert {name: row["requests"] for name, row in per_resource.items()} == {
        "east": 18, "west": 12, "north": 6,
    }  # fmt: skip
    assert all(row["cost"]["actual_usd"] > 0 for row in per_resource.values())
    assert (
        sum(r["usage"]["prompt_tokens"] for r in per_resource.values())
        == merged["usage"]["prompt_tokens"]
    )
    html = report.read_text()
    by_resource = html[html.index('id="resources"') :]
    assert all(f"<td>{name}</td><td class=num>{n}</td>" in by_resource
               for name, n in (("east", 18), ("west", 12), ("north", 6)))  # fmt: skip

    listed = json.loads(
        run("list", "--job", str(tmp_path / "data.job.json"), "--format", "json").stdout
    )
    assert Counter(row["resource"] for row in listed) == {"east": 6, "west": 4, "north": 2}
    table = run("list", "--resources", str(resources), "--limit", "5").stdout
    assert "resource" in table and table.count("batch_") == 5
    # the keys are named in the job file, never stored or shown
    said = (tmp_path / "data.job.json").read_text() + text + merged_run.output + str(status)
    assert "KEY_EAST" in said and not any(srv.api_key in said for srv in emulators.values())


def test_a_resource_that_stops_answering_has_its_shards_finish_elsewhere(
    emulators: dict[str, Emulator], tmp_path: Path
) -> None:
    # west holds one shard at a time (its real quota, as configured): the rest queue there
    tokens = 3 * 8  # three one-word chat requests
    emulators["west"].set_faults(token_quota=tokens)
    resources = [
        Resource(
            name=name,
            endpoint=emulators[name].base_url,
            api_key_env=KEY_VARS[name],
            deployments={
                LAYOUT[name][0]: Deployment(
                    model="gpt-4o", enqueued_token_quota=tokens if name == "west" else None
                )
            },
        )
        for name in LAYOUT
    ]
    source = write_requests(tmp_path / "data.jsonl", 27)
    events: list[str] = []
    options: dict[str, Any] = {"max_retries": 0, "create_retries": 0, "on_event": events.append}
    job = Job.submit(source, resources=resources, split_limits={"max_requests": 3}, **options)
    on_west = [s for s in job.shards if s.resource == "west"]
    assert len(on_west) == 3 and [s.status for s in on_west].count("queued") == 2
    assert job.data.resource_state["west"].learned_quota == {"gpt-4o": tokens}  # its header
    emulators["west"].stop_serving()  # a region outage, mid-job

    job = Job.load(job.path, **options, sleep=lambda _s: None)
    deadline = time.monotonic() + 30
    while not all(s.downloaded_at for s in job.shards if s.resource != "west"):
        assert time.monotonic() < deadline
        job.step()  # west's running batch waits for west; the rest finish elsewhere
        time.sleep(0.02)
    assert not job.done
    assert job.data.resource_state["west"].down_since is not None
    moved = [s for s in job.shards if s.moves]
    assert len(moved) == 2 and {s.resource for s in moved} <= {"east", "north"}
    assert all(s.moves[0].from_resource == "west" and "down" in s.moves[0].reason for s in moved)
    assert all(s.status == "completed" for s in job.shards if s.resource != "west")

    emulators["west"].start()  # back: its one batch finishes there
    assert job.wait(poll_interval=0.02, timeout=30)
    assert job.data.resource_state["west"].down_since is None
    assert {s.status for s in job.shards} == {"completed"}
    live = Counter(b.metadata["shard"] for srv in emulators.values() for b in batches_on(srv))
    assert live == Counter(str(i) for i in range(1, 10))  # one batch per shard, in all
    merged = json.loads(run("merge", str(job.path), "--format", "json").stdout)
    assert merged["counts"]["succeeded"] == 27


def test_resources_file_errors_name_the_file_and_every_bad_key(tmp_path: Path) -> None:
    path = tmp_path / "resources.toml"
    path.write_text(
        "[resources.east]\n"
        'endpoint = "https://user:sk-secret@east.openai.azure.com"\n'
        'api-key-env = "sk-live-1234"\n'
        'colour = "blue"\n'
        'deployments = { d1 = { model = "gpt-4o", enqueued-token-quota = "lots" } }\n'
    )
    with pytest.raises(ConfigError) as raised:
        read_resources(path)
    message = raised.value.message
    assert message.startswith(f"{path}: 4 problems")
    for key in ("endpoint", "api-key-env", "colour", "deployments.d1.enqueued-token-quota"):
        assert f"resources.east.{key}:" in message
    assert "secret" not in message and "sk-live" not in message  # never echoed
    result = run("submit", str(write_requests(tmp_path / "d.jsonl", 1)), "--resources",
                 str(path), code=2)  # fmt: skip
    assert "resources.east.colour: unknown key" in result.stderr


def test_cli_items_and_a_model_no_resource_serves(tmp_path: Path) -> None:
    resources = resources_from_items(
        ["east=https://east.openai.azure.com"], ["east/d4o=gpt-4o@200M"]
    )
    assert resources[0].api_key_env == "AZURE_OPENAI_API_KEY_EAST"
    assert resources[0].deployments["d4o"].enqueued_token_quota == 200_000_000
    slots = planner.slots_of(resources)
    with pytest.raises(ConfigError, match="no resource serves model gpt-4o-mini"):
        planner.plan([planner.Need(1, "gpt-4o-mini", 10)], slots)
    # a resource whose service does not take the line's url is never chosen for it
    openai_only = planner.slots_of(resources, urls={"east": frozenset({"/v1/chat/completions"})})
    with pytest.raises(ConfigError, match="serves model gpt-4o with url /chat/completions"):
        planner.plan([planner.Need(1, "gpt-4o", 10, "/chat/completions")], openai_only)
    # nothing was uploaded: the job file is never written
    source = write_requests(tmp_path / "d.jsonl", 2)
    result = run("submit", str(source), "--resource", "east=https://east.openai.azure.com",
                 "--resource-deployment", "east/d4o=gpt-4o-mini", code=2)  # fmt: skip
    assert "no resource serves model gpt-4o" in result.stderr
    assert not (tmp_path / "d.job.json").exists()


def test_planner_fills_in_proportion_and_prefers_learned_quota() -> None:
    resources = [
        Resource(name=n, endpoint="https://x", auth="entra",
                 deployments={"d": Deployment(model="m", enqueued_token_quota=q)})
        for n, q in (("a", 500), ("b", 300), ("c", 200))
    ]  # fmt: skip
    chosen = planner.plan(
        [planner.Need(i, "m", 10) for i in range(100)], planner.slots_of(resources)
    )
    assert Counter(slot.resource for slot in chosen.values()) == {"a": 50, "b": 30, "c": 20}
    learned = planner.slots_of(resources, {"c": {"d": 800}})
    chosen = planner.plan([planner.Need(i, "m", 10) for i in range(16)], learned)
    assert Counter(slot.resource for slot in chosen.values()) == {"a": 5, "b": 3, "c": 8}


def test_kill_at_every_step_leaves_one_batch_per_shard_across_resources(
    emulators: dict[str, Emulator], tmp_path: Path
) -> None:
    """A real ``submit`` process killed at each step in turn (see test_jobs_crash.py), then
    run to the end: every shard has one upload and one batch, on its own resource only."""
    import os
    import subprocess
    import sys

    from jsonl_batch.service.job import CRASH_ENV, CRASH_EXIT_CODE, CRASH_STEPS

    resources = write_resources(tmp_path / "resources.toml", emulators)
    source = write_requests(tmp_path / "data.jsonl", 12)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "OPENAI_"))}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    args = [sys.executable, "-m", "jsonl_batch", "submit", str(source)]
    args += ["--resources", str(resources), "--max-requests", "2"]
    # shards 1..6 alternate east, west, east, north, ...: crash on a first and a later one
    for step in [*CRASH_STEPS[:5], "uploaded:4", *CRASH_STEPS[5:], "created:5", "lost", None]:
        if step == "lost":  # and the job file is lost: each resource is reconciled
            (tmp_path / "data.job.json").unlink()
            step = "create-saved:6"
        extra = {CRASH_ENV: step} if step else {}
        done = subprocess.run(args, env={**env, **extra}, capture_output=True, timeout=60)
        expected = CRASH_EXIT_CODE if step else 0
        assert done.returncode == expected, (step, done.stderr.decode())
    job = read_job_file(tmp_path / "data.job.json")
    assert len(job.shards) == 6 and all(s.batch_id for s in job.shards)
    for name, server in emulators.items():
        mine = [s for s in job.shards if s.resource == name]
        batches = batches_on(server)
        assert sorted(b.metadata["shard"] for b in batches) == sorted(str(s.index) for s in mine)
        assert {b.id for b in batches} == {s.batch_id for s in mine}
        client = openai.AzureOpenAI(
            azure_endpoint=server.base_url, api_key=server.api_key, api_version="2024-10-21"
        )
        assert len(list(client.files.list(purpose="batch"))) == len(mine)


def test_retry_elsewhere_on_a_litellm_proxy(emulators: dict[str, Emulator], tmp_path: Path) -> None:
    """A job over a direct resource and a LiteLLM-style proxy (model groups as deployments);
    every request east ran fails, and ``--retry-elsewhere`` sends them to the proxy."""
    emulators["east"].set_faults(request_failure_rate=1.0)
    (tmp_path / "resources.toml").write_text(
        f"""
[resources.east]
endpoint = "{emulators["east"].base_url}"
api-key-env = "KEY_EAST"
deployments = {{ gpt4o-east = "gpt-4o" }}

[resources.proxy]  # the west emulator through its OpenAI-style base URL
kind = "litellm"
endpoint = "{emulators["west"].openai_base_url}"
api-key-env = "KEY_WEST"
deployments = {{ gpt-4o = "gpt-4o" }}
"""
    )
    source = write_requests(tmp_path / "data.jsonl", 8, "/v1/chat/completions")  # both take it
    flags = ["--resources", str(tmp_path / "resources.toml"), "--poll-interval", "0.02"]
    run("submit", str(source), "--max-requests", "2", "--wait", *flags)
    job = read_job_file(tmp_path / "data.job.json")
    assert Counter(s.resource for s in job.shards) == {"east": 2, "proxy": 2}
    merged = json.loads(
        run("merge", str(tmp_path / "data.job.json"), "--format", "json", code=1).stdout
    )
    assert merged["retry_requests"] == 4

    run("submit", str(tmp_path / "data.job.json"), "--retry-elsewhere", "--wait", *flags)
    retry = read_job_file(tmp_path / "data.retry.job.json")
    assert retry.avoid_resources == ["east"] and retry.retry_of == "data.job.json"
    assert {s.resource for s in retry.shards} == {"proxy"}
    assert {s.status for s in retry.shards} == {"completed"}
    merged = json.loads(
        run("merge", str(tmp_path / "data.retry.job.json"), "--format", "json").stdout
    )
    assert merged["counts"]["succeeded"] == 4


def test_refused_credentials_send_a_resources_shards_elsewhere_at_once(
    emulators: dict[str, Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEY_NORTH", "not-the-key")
    resources = write_resources(tmp_path / "resources.toml", emulators)
    source = write_requests(tmp_path / "data.jsonl", 12)
    result = run("submit", str(source), "--resources", str(resources), "--max-requests", "2",
                 "--max-retries", "0")  # fmt: skip
    assert "resource north is down" in result.stderr
    job = read_job_file(tmp_path / "data.job.json")
    assert all(s.batch_id for s in job.shards) and {s.resource for s in job.shards} == {
        "east", "west",
    }  # fmt: skip
    moved = [s for s in job.shards if s.moves]
    assert moved and all(m.from_resource == "north" for s in moved for m in s.moves)
    assert job.resource_state["north"].down_reason.startswith("http://127.0.0.1")
    assert batches_on(emulators["north"]) == []


def _resources_without_quota(emulators: dict[str, Emulator], names: list[str]) -> list[Resource]:
    return [
        Resource(
            name=name,
            endpoint=emulators[name].base_url,
            api_key_env=KEY_VARS[name],
            deployments={LAYOUT[name][0]: Deployment(model="gpt-4o")},
        )
        for name in names
    ]


def test_a_full_deployment_hands_its_queue_to_an_idle_one(
    emulators: dict[str, Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No quota configured: the shards split evenly. East's real quota holds one shard at a
    time; the service says so (quota header, token_limit_exceeded), and once west is idle,
    east's waiting shards go there instead of queueing."""
    tokens = 3 * 8
    # East runs a batch in about 3 s, west in about 50 ms: west is idle while east's first
    # batch still holds its quota, however loaded the machine is.
    config = EmulatorConfig(speed=50, deployments={LAYOUT["east"][0]: "gpt-4o-2024-08-06"})
    emulators["east"].close()
    east = emulators["east"] = Emulator(config).start()  # the fixture closes it
    monkeypatch.setenv(KEY_VARS["east"], east.api_key)
    east.set_faults(token_quota=tokens)
    source = write_requests(tmp_path / "data.jsonl", 30)  # east queues 4 behind 1: a margin
    options: dict[str, Any] = {"quota_retry_seconds": 0.05, "sleep": lambda _s: None}
    job = Job.submit(
        source,
        resources=_resources_without_quota(emulators, ["east", "west"]),
        split_limits={"max_requests": 3},
        **options,
    )
    assert Counter(s.resource for s in job.shards) == {"east": 5, "west": 5}
    assert job.wait(poll_interval=0.02, timeout=30)
    assert job.data.resource_state["east"].learned_quota == {"gpt4o-east": tokens}
    moved = [s for s in job.shards if s.moves]
    assert moved and all("quota" in s.moves[0].reason and s.resource == "west" for s in moved)
    assert {s.status for s in job.shards} == {"completed"}


def test_a_batch_left_behind_by_a_move_is_cancelled(
    emulators: dict[str, Emulator], tmp_path: Path
) -> None:
    """A create that reached a resource whose reply was lost, then the resource failed: the
    shard moves with a new attempt, and the batch the old resource made is cancelled once it
    answers, so one batch per shard stays live."""
    source = write_requests(tmp_path / "data.jsonl", 3)
    resources = _resources_without_quota(emulators, ["east", "west"])
    events: list[str] = []
    job = Job.submit(source, resources=resources, job_path=tmp_path / "data.job.json",
                     on_event=events.append, max_retries=0)  # fmt: skip
    shard = job.shards[0]
    assert shard.resource == "east"
    # as if its create had gone through unseen: the batch exists, the job file says "uploaded"
    orphan = shard.batch_id
    shard.batch_id, shard.status = None, "uploaded"
    shard.create_started_at = job.clock()
    job.data.resource_state["east"] = ResourceState()
    job.data.resource_state["east"].down_since = job.clock()
    assert job.rebalance() == 1 and shard.resource == "west" and shard.attempt == 2
    job.submit_ready()
    job.refresh()  # east answers: the batch of attempt 1 is found by its metadata
    assert shard.moves[0].checked and orphan in shard.previous_batch_ids
    east = {b.id: b.status for b in batches_on(emulators["east"])}
    assert east[orphan] in ("cancelling", "cancelled")
    assert len(batches_on(emulators["west"])) == 1


@pytest.fixture
def slow(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Emulator]]:
    """Two emulators at wall-clock speed (a batch stays in progress), keys in
    ``AZURE_OPENAI_API_KEY_<NAME>`` (what ``--resource NAME=URL`` reads)."""
    servers = {name: Emulator(EmulatorConfig(speed=1)).start() for name in ("east", "west")}
    for name, server in servers.items():
        monkeypatch.setenv(f"AZURE_OPENAI_API_KEY_{name.upper()}", server.api_key)
    yield servers
    for server in servers.values():
        server.close()


def _slow_resources(slow: dict[str, Emulator]) -> list[Resource]:
    return [
        Resource(
            name=name,
            endpoint=server.base_url,
            api_key_env=f"AZURE_OPENAI_API_KEY_{name.upper()}",
            deployments={"gpt-4o": Deployment(model="gpt-4o")},
        )
        for name, server in slow.items()
    ]


def test_cancel_reaches_every_resource(slow: dict[str, Emulator], tmp_path: Path) -> None:
    """Command-line resources (``--resource``, ``--resource-deployment``); keys from
    ``AZURE_OPENAI_API_KEY_<NAME>``; ``cancel`` on the job cancels on both."""
    items = [f"{name}={server.base_url}" for name, server in slow.items()]
    source = write_requests(tmp_path / "data.jsonl", 8)
    run("submit", str(source), "--max-requests", "2",
        "--resource", items[0], "--resource-deployment", "east/gpt-4o=gpt-4o",
        "--resource", items[1], "--resource-deployment", "west/gpt-4o=gpt-4o",
        "--failover-after", "30")  # fmt: skip
    assert read_job_file(tmp_path / "data.job.json").creating_failover_seconds == 30
    result = run("cancel", str(tmp_path / "data.job.json"))
    assert "cancel requested for 4 batches" in result.output
    for server in slow.values():
        statuses = {b.status for b in batches_on(server)}
        assert len(batches_on(server)) == 2 and statuses <= {"cancelling", "cancelled"}


def _two_resources(emulators: dict[str, Emulator], east: int, west: int) -> list[Resource]:
    quotas = {"east": east, "west": west}
    return [
        Resource(
            name=name,
            endpoint=emulators[name].base_url,
            api_key_env=KEY_VARS[name],
            deployments={LAYOUT[name][0]: Deployment(model="gpt-4o", enqueued_token_quota=quota)},
        )
        for name, quota in quotas.items()
    ]


def test_a_lost_job_file_and_another_plan_take_over_batches_wherever_they_are(
    emulators: dict[str, Emulator], tmp_path: Path
) -> None:
    """The job file is lost and ``recover`` plans differently (the quotas changed, and east
    names its deployment differently): each shard's batch is found by the split shard's own
    hash on whichever resource has it, and no second batch is created anywhere."""
    source = write_requests(tmp_path / "data.jsonl", 12)
    limits = {"max_requests": 2}
    first = Job.submit(source, resources=_two_resources(emulators, 2_000_000, 1_000_000),
                       split_limits=limits)  # fmt: skip
    before = {s.index: (s.resource, s.batch_id) for s in first.shards}
    assert Counter(name for name, _ in before.values()) == {"east": 4, "west": 2}
    first.path.unlink()

    flipped = _two_resources(emulators, 1_000_000, 2_000_000)
    again = Job.recover(source, resources=flipped, split_limits=limits)
    assert {s.index: (s.resource, s.batch_id) for s in again.shards} == before
    assert Job.submit(source, resources=flipped).shards == again.shards  # nothing left to do
    moved = [s for s in again.shards if s.moves]
    assert len(moved) >= 2 and all("reconciled" in s.moves[0].reason for s in moved)
    assert all(s.deployment == LAYOUT[s.resource or ""][0] for s in again.shards)
    assert [len(batches_on(emulators[name])) for name in ("east", "west")] == [4, 2]


def test_a_create_in_flight_on_a_resource_that_stays_down_moves_after_the_bound(
    slow: dict[str, Emulator], tmp_path: Path
) -> None:
    """Killed while its create was in flight, then its resource went down: the shard waits
    (the create probably went through) until the resource has been down for the bound in
    the job file, then moves with a new attempt; the batch left behind is cancelled once
    the resource answers again."""
    now = [time.time()]
    options: dict[str, Any] = {"max_retries": 0, "create_retries": 0,
                               "clock": lambda: now[0], "sleep": lambda _s: None}  # fmt: skip
    source = write_requests(tmp_path / "data.jsonl", 3)
    job = Job.submit(source, resources=_slow_resources(slow), creating_failover_seconds=60,
                     **options)  # fmt: skip
    shard = job.shards[0]
    orphan = shard.batch_id
    assert shard.resource == "east" and orphan
    shard.batch_id, shard.status, shard.create_started_at = None, "creating", now[0]
    job.save()  # as if killed after the create was sent
    slow["east"].stop_serving()

    job = Job.load(job.path, **options)
    job.step()
    shard = job.shards[0]
    assert (shard.status, shard.resource, shard.moves) == ("creating", "east", [])
    now[0] += 60  # the bound this job was given, saved in its job file
    job.step()
    assert shard.resource == "west" and shard.attempt == 2 and shard.batch_id
    assert shard.moves[0].create_sent and "create in flight" in shard.moves[0].reason
    slow["east"].start()
    job.step()
    assert shard.moves[0].checked and orphan in shard.previous_batch_ids
    assert [b.status for b in batches_on(slow["east"])] == ["cancelling"]
    assert len(batches_on(slow["west"])) == 1


def test_ignore_existing_is_remembered_for_shards_moved_later(
    emulators: dict[str, Emulator], tmp_path: Path
) -> None:
    """``--ignore-existing`` is saved in the job file: a shard that moves on a later run
    is not given the batch another job has for the same content on its new resource."""
    source = write_requests(tmp_path / "data.jsonl", 3)
    other = Job.submit(source, resources=_resources_without_quota(emulators, ["east"]),
                       job_path=tmp_path / "other.job.json")  # fmt: skip
    resources = _resources_without_quota(emulators, ["west", "east"])
    job = Job.submit(source, resources=resources, reuse_existing=False, max_retries=0)
    assert not read_job_file(job.path).reuse_existing
    shard = job.shards[0]
    assert shard.resource == "west"
    shard.batch_id, shard.status = None, "uploaded"  # as if killed before its create
    job.save()
    emulators["west"].stop_serving()

    job = Job.load(job.path, max_retries=0)
    job.submit_ready()  # a run without the flag: west is down, the shard moves to east
    shard = job.shards[0]
    assert shard.resource == "east" and shard.batch_id not in (None, other.shards[0].batch_id)
    assert len(batches_on(emulators["east"])) == 2


def test_the_resources_schema_has_the_keys_the_reader_takes(tmp_path: Path) -> None:
    """``schemas/resources.schema.json`` (for editors) names exactly the keys, kinds and
    auths ``read_resources`` knows, and takes a file it reads."""
    import tomllib

    from jsonl_batch.formats import resources as fmt

    schema = fmt.ResourcesFile.model_json_schema()
    resource = schema["$defs"]["ResourceEntry"]["properties"]
    assert set(resource) == set(fmt.RESOURCE_KEYS)
    assert set(schema["$defs"]["DeploymentEntry"]["properties"]) == set(fmt.DEPLOYMENT_KEYS)
    assert (resource["kind"]["enum"], resource["auth"]["enum"]) == ([*fmt.KINDS], [*fmt.AUTHS])
    path = tmp_path / "resources.toml"
    path.write_text(
        '[resources.east]\nendpoint = "https://e.openai.azure.com"\napi-key-env = "KEY_E"\n'
        'api-version = "2025-04-01-preview"\n'
        'deployments = { d = { model = "gpt-4o", enqueued-token-quota = "200M" }, m = "mini" }\n'
        '[resources.proxy]\nkind = "litellm"\nendpoint = "http://localhost:4000"\n'
        'auth = "entra"\ncustom-llm-provider = "azure"\ndeployments = { g = "gpt-4o" }\n'
    )
    assert len(read_resources(path)) == 2
    fmt.ResourcesFile.model_validate(tomllib.loads(path.read_text()))


def test_a_resource_down_when_a_lost_job_is_rerun_has_its_second_batches_cancelled(
    slow: dict[str, Emulator], tmp_path: Path
) -> None:
    """The job file is lost and east is down on the rerun, so east's shards cannot be seen
    and run again on west; once east answers, the batches it still holds are cancelled:
    one live batch per shard, across resources."""
    source = write_requests(tmp_path / "data.jsonl", 4)
    resources = _slow_resources(slow)
    options: dict[str, Any] = {"split_limits": {"max_requests": 1}, "max_retries": 0}
    first = Job.submit(source, resources=resources, **options)
    on_east = {s.batch_id for s in first.shards if s.resource == "east"}
    assert len(on_east) == 2
    first.path.unlink()
    slow["east"].stop_serving()

    job = Job.submit(source, resources=resources, **options)
    assert {s.resource for s in job.shards} == {"west"}
    assert job.data.resource_state["east"].unreconciled
    slow["east"].start()
    job.refresh()
    assert not job.data.resource_state["east"].unreconciled
    assert {b.id: b.status for b in batches_on(slow["east"])} == dict.fromkeys(
        on_east, "cancelling"
    )
    live = [b for b in batches_on(slow["west"]) if b.status not in ("cancelling", "cancelled")]
    assert sorted(b.id for b in live) == sorted(str(s.batch_id) for s in job.shards)
