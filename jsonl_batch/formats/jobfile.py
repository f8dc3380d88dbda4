"""The job file (``<stem>.job.json``): everything a batch job needs to resume after a crash.

This module owns the format: ``submit``/``wait`` write it through :func:`write_job_file`,
and every reader (the job logic, ``merge``, ``status``) goes through :func:`read_job_file`.
Paths are relative to the job file's folder; the secret of the connection is never stored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import JobError, first_problem
from ..jsonl import atomic_write_json, read_json
from .batch import ACTIVE_STATUSES, TERMINAL_STATUSES, field_of
from .resources import Resource


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")


class BatchErrorInfo(_Record):
    """One entry of a batch's ``errors.data`` (why the whole batch failed)."""

    code: str | None = None
    message: str | None = None
    line: int | None = None
    param: str | None = None


class RequestCounts(_Record):
    """Requests of a batch: ``completed`` succeeded, ``failed`` went to the error file."""

    total: int = 0
    completed: int = 0
    failed: int = 0


class ConnectionInfo(_Record):
    """Where the batches were sent; enough to reconnect with a key from the environment."""

    kind: Literal["azure", "openai"]
    endpoint: str
    target: str
    api_version: str | None = None
    auth: Literal["api_key", "entra"] = "api_key"
    custom_llm_provider: str | None = None


class ShardMove(_Record):
    """A shard sent to another resource (failover or free quota elsewhere), and why."""

    from_resource: str | None
    from_deployment: str | None
    to_resource: str
    to_deployment: str
    reason: str
    at: float
    attempt: int = Field(description="the attempt abandoned on from_resource")
    create_sent: bool = Field(
        False, description="a create reached from_resource: look there for a batch to cancel"
    )
    checked: bool = Field(False, description="from_resource answered: no live batch is left")


class ResourceState(_Record):
    """What a multi-resource job learned about one resource while it ran."""

    down_since: float | None = Field(None, description="failed (auth, 5xx, unreachable) at")
    down_reason: str | None = None
    unreconciled: bool = Field(
        False,
        description="down when the job looked for batches of its content: once it answers,"
        " one found there is taken over (shard without a batch) or cancelled (a second one)",
    )
    learned_quota: dict[str, int] = Field(
        default_factory=dict,
        description="deployment -> enqueued-token limit the service reported (quota headers"
        " or a token_limit_exceeded reply)",
    )


class ShardState(_Record):
    """One shard of the job: its file, upload, batch and downloaded results."""

    index: int = Field(description="1-based shard number, as in the split manifest")
    path: str = Field(description="the shard's request file, relative to the job folder")
    upload_path: str = Field(
        description="the file actually uploaded: path, or a copy with body.model rewritten"
    )
    sha256: str = Field(description="sha256 of upload_path")
    requests: int
    bytes: int
    input_tokens: int | None = None
    deployment: str | None = Field(None, description="body.model of every line (Azure deployment)")
    resource: str | None = Field(None, description="the resource it goes to (multi-resource job)")
    model: str | None = Field(None, description="body.model in the split shard, before rewrite")
    split_sha256: str | None = Field(
        None,
        description="sha256 of the split shard before any body.model rewrite: tags its"
        " batches on every resource (None in older job files: sha256)",
    )
    moves: list[ShardMove] = Field(default_factory=list)
    url: str
    endpoint: str = Field(description="the endpoint passed at batch create")
    status: str = "pending"
    attempt: int = Field(1, description="batch creates so far (quota refusals retry)")
    file_id: str | None = None
    file_status: str | None = Field(None, description="the upload's status (processed, ...)")
    batch_id: str | None = None
    previous_batch_ids: list[str] = Field(default_factory=list)
    request_counts: RequestCounts = Field(default_factory=RequestCounts)
    errors: list[BatchErrorInfo] = Field(default_factory=list)
    output_file_id: str | None = None
    error_file_id: str | None = None
    output_file: str | None = Field(None, description="downloaded output, relative to job folder")
    error_file: str | None = Field(None, description="downloaded error file, relative")
    output_sha256: str | None = Field(None, description="sha256 of the downloaded output file")
    error_sha256: str | None = Field(None, description="sha256 of the downloaded error file")
    enqueued_tokens: int | None = Field(None, description="deployment-enqueued-tokens at create")
    maximum_enqueued_tokens: int | None = None
    upload_started_at: float | None = None
    uploaded_at: float | None = None
    create_started_at: float | None = None
    submitted_at: float | None = None
    finished_at: float | None = None
    downloaded_at: float | None = None
    next_attempt_at: float | None = None
    batch_times: dict[str, float] = Field(
        default_factory=dict,
        description="the batch's own timestamps (created_at, in_progress_at, finalizing_at,"
        " completed_at, failed_at, expired_at, cancelling_at, cancelled_at, expires_at) as the"
        " service last reported them: Unix seconds on its clock, not ours",
    )

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def active(self) -> bool:
        """Holds enqueued tokens on its deployment."""
        return self.status in ACTIVE_STATUSES or self.status == "creating"

    @property
    def downloaded(self) -> bool:
        """Every result file the service has for this shard is on disk."""
        return (self.output_file_id is None or self.output_file is not None) and (
            self.error_file_id is None or self.error_file is not None
        )


class JobFile(_Record):
    """``<stem>.job.json``: one job = the shards of one request file, each its own batch."""

    version: Literal[1] = 1
    job_id: str
    created_at: float
    updated_at: float
    source: str | None = Field(None, description="the request file, relative to the job folder")
    manifest: str | None = Field(None, description="the split manifest, relative")
    target: str
    connection: ConnectionInfo
    description: str | None = None
    deployments: list[str] = Field(default_factory=list)
    enqueued_limit: int | None = Field(None, description="input tokens per deployment at once")
    completion_window: str = "24h"
    file_expiry_seconds: int | None = None
    resources: list[Resource] = Field(
        default_factory=list,
        description="the resources shards spread over; empty: one resource, ``connection``",
    )
    resource_state: dict[str, ResourceState] = Field(default_factory=dict)
    avoid_resources: list[str] = Field(
        default_factory=list, description="used only for models no other resource serves"
    )
    retry_of: str | None = Field(None, description="the job whose retry file this job sends")
    reuse_existing: bool = Field(
        True,
        description="take over batches of the same shard content found on the service, also"
        " for shards moved to another resource (false: create new ones)",
    )
    creating_failover_seconds: float = Field(
        900.0,
        description="a shard whose create was in flight on a resource that has been down this"
        " long moves to another (a new attempt; a batch found there later is cancelled);"
        " 900 is our choice (no service sets it): long enough for a short outage not to cost"
        " a second batch",
    )
    shards: list[ShardState]


def read_job_file(path: str | os.PathLike[str]) -> JobFile:
    """Load and check a job file; a clear JobError when it is missing or not one."""
    path = Path(path)
    if not path.exists():
        raise JobError(
            f"{path}: no such job file",
            hint="pass the <stem>.job.json that Job.submit wrote",
        )
    data = read_json(path)
    try:
        return JobFile.model_validate(data)
    except ValidationError as exc:
        raise JobError(
            f"{path}: not a valid job file ({first_problem(exc)})",
            hint="pass the <stem>.job.json written by Job.submit",
        ) from None


def write_job_file(path: str | os.PathLike[str], job: JobFile) -> None:
    """Replace the job file atomically (a crash leaves the old or the new one, never half)."""
    data: dict[str, Any] = job.model_dump(mode="json")
    atomic_write_json(path, data)


def batch_errors(batch: Any) -> list[BatchErrorInfo]:
    """``errors.data`` of a batch object (SDK object or dict) as plain records."""
    errors = field_of(batch, "errors")
    data = field_of(errors, "data") if errors is not None else None
    return [
        BatchErrorInfo(
            code=field_of(item, "code"),
            message=field_of(item, "message"),
            line=field_of(item, "line"),
            param=field_of(item, "param"),
        )
        for item in (data or [])
    ]
