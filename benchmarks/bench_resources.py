"""resources: planning a 1,000,000-request, 100-shard job over 5 resources, and its job file.

Targets (issue 18): planning under 1 s, the job file under 1 MB. Measured: the pure planner
(:func:`jsonl_batch.service.planner.plan`) placing 100 shards of 10,000 requests by quota,
then every shard moved once by failover (:func:`~jsonl_batch.service.planner.choose`, the
step a failed resource costs per shard); and the job file of that job after it ran (batch
ids, file ids, counts, timestamps, one move per shard, learned quotas), written and read
back through :mod:`jsonl_batch.formats.jobfile`. Baseline, same run: round-robin placement
(what one-resource jobs do over ``deployments``) and the same job file with one resource.
Then the whole preparation of such a job as ``submit`` does it before uploading
(``Job._create`` on a split manifest of 1,000,000 small chat requests: plan, hash every
shard, rewrite ``body.model`` for the three resources whose deployment name differs, write
the job file), next to the same preparation for one resource (hashing only).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from jsonl_batch.formats.jobfile import (
    ConnectionInfo,
    JobFile,
    ResourceState,
    ShardMove,
    ShardState,
    read_job_file,
    write_job_file,
)
from jsonl_batch.formats.resources import Deployment, Resource
from jsonl_batch.service import planner
from jsonl_batch.service.connection import Connection, resolve_connection
from jsonl_batch.service.job import Job
from jsonl_batch.split import split_file

REQUESTS = 1_000_000
SHARDS = 100
RESOURCES = 5
TOKENS_PER_REQUEST = 600
ROUNDS = 20


def _resources() -> list[Resource]:
    return [
        Resource(
            name=f"region-{i}",
            endpoint=f"https://region-{i}.openai.azure.com",
            api_key_env=f"AZURE_KEY_REGION_{i}",
            deployments={
                "gpt-4o-batch": Deployment(model="gpt-4o", enqueued_token_quota=(i + 1) * 10**8),
                "mini-batch": Deployment(model="gpt-4o-mini", enqueued_token_quota=10**9),
            },
        )
        for i in range(RESOURCES)
    ]


def _needs() -> list[planner.Need]:
    per_shard = REQUESTS // SHARDS
    return [
        planner.Need(i, "gpt-4o" if i % 4 else "gpt-4o-mini", per_shard * TOKENS_PER_REQUEST)
        for i in range(1, SHARDS + 1)
    ]


def _plan_and_fail_over(resources: list[Resource]) -> dict[int, planner.Slot]:
    slots = planner.slots_of(resources)
    needs = _needs()
    chosen = planner.plan(needs, slots)
    load: dict[planner.SlotKey, int] = {}
    for need in needs:
        key = chosen[need.index].key
        load[key] = load.get(key, 0) + need.tokens
    down = {resources[0].name}
    for need in needs:  # the first resource fails: every shard asks where it would go
        planner.choose(need, planner.serving(need, slots, down=down), load)
    return chosen


def _round_robin(resources: list[Resource]) -> dict[int, tuple[str, str]]:
    names = [r.name for r in resources]
    return {n.index: (names[n.index % len(names)], "gpt-4o-batch") for n in _needs()}


def _best_of(func: Any, *args: Any) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        func(*args)
        best = min(best, time.perf_counter() - started)
    return best


def _job_file(resources: list[Resource], chosen: dict[int, planner.Slot] | None) -> JobFile:
    now = time.time()
    shards = []
    for need in _needs():
        slot = chosen[need.index] if chosen else None
        shard = ShardState(
            index=need.index,
            path=f"data.split/data.gpt-4o.{need.index:04d}.jsonl",
            upload_path=f"data.shards/data.{need.index:04d}.gpt-4o-batch.jsonl",
            sha256=uuid.uuid4().hex * 2,
            split_sha256=uuid.uuid4().hex * 2 if slot else None,
            requests=REQUESTS // SHARDS,
            bytes=20_000_000,
            input_tokens=need.tokens,
            deployment=slot.deployment if slot else "gpt-4o-batch",
            resource=slot.resource if slot else None,
            model=need.model if slot else None,
            url="/chat/completions",
            endpoint="/chat/completions",
            status="completed",
            file_id=f"file-{uuid.uuid4().hex}",
            file_status="processed",
            batch_id=f"batch_{uuid.uuid4()}",
            output_file_id=f"file-{uuid.uuid4().hex}",
            error_file_id=f"file-{uuid.uuid4().hex}",
            output_file=f"data.downloads/data.{need.index:04d}.output.jsonl",
            error_file=f"data.downloads/data.{need.index:04d}.error.jsonl",
            output_sha256=uuid.uuid4().hex * 2,
            error_sha256=uuid.uuid4().hex * 2,
            enqueued_tokens=need.tokens,
            maximum_enqueued_tokens=10**9,
            upload_started_at=now,
            uploaded_at=now,
            create_started_at=now,
            submitted_at=now,
            finished_at=now,
            downloaded_at=now,
            batch_times={"created_at": now, "in_progress_at": now, "completed_at": now},
        )
        if slot:
            shard.moves.append(
                ShardMove(
                    from_resource=resources[0].name,
                    from_deployment="gpt-4o-batch",
                    to_resource=slot.resource,
                    to_deployment=slot.deployment,
                    reason=f"resource {resources[0].name} is down",
                    at=now,
                    attempt=1,
                )
            )
        shards.append(shard)
    return JobFile(
        job_id=f"job_{uuid.uuid4().hex[:24]}",
        created_at=now,
        updated_at=now,
        source="data.jsonl",
        manifest="data.split/data.manifest.json",
        target="azure",
        connection=ConnectionInfo(kind="azure", endpoint=resources[0].endpoint, target="azure"),
        resources=resources if chosen else [],
        resource_state={
            r.name: ResourceState(learned_quota={"gpt-4o-batch": 10**8}) for r in resources
        }
        if chosen
        else {},
        shards=shards,
    )


def _write_read(path: Path, job: JobFile) -> None:
    write_job_file(path, job)
    read_job_file(path)


def _manifest(tmpdir: Path) -> tuple[Path, int]:
    """A split manifest of REQUESTS small chat requests in SHARDS shards; its data size."""
    source = tmpdir / "million.jsonl"
    with open(source, "wb") as out:
        for i in range(REQUESTS):
            line = {
                "custom_id": f"r-{i}",
                "method": "POST",
                "url": "/chat/completions",
                "body": {
                    "model": "gpt-4o-batch",
                    "messages": [{"role": "user", "content": f"Q{i}"}],
                },
            }
            out.write(orjson.dumps(line) + b"\n")
    result = split_file(source, tmpdir / "split", target="azure", max_requests=REQUESTS // SHARDS)
    return result.manifest_path, source.stat().st_size


def _prepare(manifest: Path, job_path: Path, resources: list[Resource] | None) -> float:
    started = time.perf_counter()
    connection = None
    if resources is None:
        settings = resolve_connection(endpoint="http://127.0.0.1:9", api_key="unused", environ={})
        connection = Connection(settings)
    Job._create(manifest, job_path, connection, (), None, None, {}, {}, resources=resources or ())
    return time.perf_counter() - started


def _prepare_rows(tmpdir: Path) -> list[dict[str, Any]]:
    manifest, size = _manifest(tmpdir)
    resources = [  # two resources name the deployment as the file does, three differently
        resource.model_copy(
            update={
                "deployments": {"gpt-4o-batch" if i < 2 else f"dep-{i}": Deployment(model="gpt-4o")}
            }
        )
        for i, resource in enumerate(_resources())
    ]
    multi_s = _prepare(manifest, tmpdir / "multi-prep.job.json", resources)
    single_s = _prepare(manifest, tmpdir / "single-prep.job.json", None)
    kb = (tmpdir / "multi-prep.job.json").stat().st_size / 1000
    return [
        {
            "command": "submit --resources (prepare)",
            "what": f"{REQUESTS:,} requests ({size / 1e6:.0f} MB), {SHARDS} shards, {RESOURCES}"
            f" resources (3 rewritten): {multi_s:.2f} s, job file {kb:.0f} kB",
            "mb_per_s": round(size / 1e6 / multi_s),
            "baseline": f"one resource, no rewrite: {single_s:.2f} s",
            "baseline_mb_per_s": round(size / 1e6 / single_s),
            "ratio": round(single_s / multi_s, 2),
        }
    ]


def run(tmpdir: Path) -> list[dict[str, Any]]:
    resources = _resources()
    plan_s = _best_of(_plan_and_fail_over, resources)
    robin_s = _best_of(_round_robin, resources)
    chosen = _plan_and_fail_over(resources)
    multi, single = tmpdir / "multi.job.json", tmpdir / "single.job.json"
    multi_job, single_job = _job_file(resources, chosen), _job_file(resources, None)
    write_s = _best_of(_write_read, multi, multi_job)
    single_s = _best_of(_write_read, single, single_job)
    size, single_size = multi.stat().st_size, single.stat().st_size
    return [
        {
            "command": "submit --resources (plan)",
            "what": f"{REQUESTS:,} requests, {SHARDS} shards, {RESOURCES} resources:"
            f" plan + fail-over {plan_s * 1000:.2f} ms",
            "baseline": f"round-robin {robin_s * 1000:.2f} ms",
            "ratio": round(robin_s / plan_s, 2),
        },
        {
            "command": "submit --resources (job file)",
            "what": f"job file {size / 1000:.0f} kB, written + read in {write_s * 1000:.1f} ms",
            "baseline": f"one-resource job file {single_size / 1000:.0f} kB,"
            f" {single_s * 1000:.1f} ms",
            "ratio": round(single_size / size, 2),
        },
        *_prepare_rows(tmpdir),
    ]
