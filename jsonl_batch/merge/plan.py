"""What a merge reads: the request file (or a split manifest's shards, or a submit job
file), the output and error files, and which failures go to the retry file."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, MergeError
from ..formats import naming
from ..formats.batch import ACTIVE_STATUSES, TERMINAL_STATUSES, normalize_status
from .summary import NOT_SUCCEEDED, SUCCEEDED


@dataclass(slots=True)
class ShardRef:
    """One shard of a split input, as a manifest or job file describes it."""

    index: int
    path: Path | None = None
    status: str | None = None
    first_line: int | None = None
    last_line: int | None = None
    requests: int | None = None
    input_tokens: int | None = None
    output_file: Path | None = None
    error_file: Path | None = None
    model: str | None = None
    resource: str | None = None
    """The resource its batch ran on (multi-resource job)."""
    error: tuple[str, str] | None = None
    """(code, message) of the batch's own failure (``errors.data[0]``), e.g. model_not_found."""


@dataclass(slots=True)
class MergePlan:
    """Everything merge reads: where the requests come from and which result files."""

    stem_path: Path  # results are named after this file: <stem>.results.jsonl
    source: Path | None  # the requests in input order; None: read the shards in order
    outputs: list[Path] = field(default_factory=list)
    errors: list[Path] = field(default_factory=list)
    shards: list[ShardRef] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _plan_from_manifest(path: Path) -> MergePlan:
    """The source file (None when it is gone) and the shards of a split manifest."""
    from ..formats.manifest import read_manifest  # pydantic models: 15 MB, only when needed

    manifest = read_manifest(path)
    source = manifest.source_path()
    shards = [
        ShardRef(
            index=shard.index,
            path=manifest.shard_path(shard),
            first_line=shard.first_line,
            last_line=shard.last_line,
            requests=shard.requests,
            input_tokens=shard.input_tokens,
            model=shard.model,
        )
        for shard in sorted(manifest.shards, key=lambda shard: shard.index)
    ]
    return MergePlan(stem_path=path, source=source if source.exists() else None, shards=shards)


def _plan_from_job(path: Path) -> MergePlan:
    """The requests, shard statuses and downloaded result files of a ``submit`` job file."""
    from ..formats.jobfile import read_job_file  # pydantic models: 15 MB, only when needed

    job = read_job_file(path)
    base = path.parent
    plan = MergePlan(stem_path=path, source=None)
    manifest_shards: dict[int, ShardRef] = {}
    if job.manifest is not None and (base / job.manifest).exists():
        listed = _plan_from_manifest(base / job.manifest)
        plan.source = listed.source
        manifest_shards = {shard.index: shard for shard in listed.shards}
    if job.source is not None and (base / job.source).exists():
        plan.source = base / job.source
    for item in sorted(job.shards, key=lambda shard: shard.index):
        shard = manifest_shards.get(item.index) or ShardRef(index=item.index)
        shard.path = base / item.path
        shard.status = normalize_status(item.status) or None
        shard.resource = item.resource
        if item.output_file:
            shard.output_file = base / item.output_file
            plan.outputs.append(shard.output_file)
        elif shard.status not in (None, *ACTIVE_STATUSES):
            plan.notes.append(
                f"shard {item.index} ({shard.status}) has no output file: none of its requests"
                " succeeded, or the output was not downloaded"
            )
        if item.error_file:
            shard.error_file = base / item.error_file
            plan.errors.append(shard.error_file)
        if shard.status == "failed" and item.errors:
            first = item.errors[0]
            shard.error = (first.code or "batch_failed", first.message or "")
        plan.shards.append(shard)
    return plan


def plan_merge(
    input_path: str | os.PathLike[str],
    outputs: Sequence[str | os.PathLike[str]] = (),
    errors: Sequence[str | os.PathLike[str]] = (),
) -> MergePlan:
    """Work out what to read from a job file, a split manifest or a plain request file."""
    path = Path(input_path)
    if not path.exists():
        raise InputError(f"{path}: no such file", hint="pass the job file or the request file")
    if path.name.endswith(naming.JOB_SUFFIX):
        plan = _plan_from_job(path)
    elif path.name.endswith(naming.MANIFEST_SUFFIX):
        plan = _plan_from_manifest(path)
    else:
        plan = MergePlan(stem_path=path, source=path)
    plan.outputs.extend(Path(p) for p in outputs)
    plan.errors.extend(Path(p) for p in errors)
    if plan.source is None:
        unreadable = [s.index for s in plan.shards if s.path is None or not s.path.exists()]
        if not plan.shards or unreadable:
            raise InputError(
                f"{path}: the source file and shard file(s) {unreadable} are missing,"
                " so the input order is unknown",
                hint="put the source file (or the shard files) back next to the manifest",
            )
        plan.notes.append("source file missing: input order is the shards' order")
    finished = plan.shards and all(shard.status in TERMINAL_STATUSES for shard in plan.shards)
    if not plan.outputs and not plan.errors and not finished:
        raise InputError(
            f"{path}: no output or error files to merge",
            hint="pass outputs=[FILE] and/or errors=[FILE], or a job file with downloaded results",
        )
    if not plan.outputs:
        plan.notes.append(
            "no output file: every request either failed or never came back"
            " (an all-failed batch has no output file)"
        )
    return plan


# --- retry selection --------------------------------------------------------------------


def retry_selector(values: Sequence[str]) -> Callable[[str, int | None, str | None], bool]:
    """Turn ``--retry-on`` values into a test ``(status, http_status, code) -> bool``.

    Values: ``all``, a status (``failed``, ``expired``, ``cancelled``, ``missing``), an HTTP
    status (``429``) or class (``4xx``, ``5xx``), or an error code (``server_error``).
    """
    statuses: set[str] = set()
    classes: set[int] = set()
    http: set[int] = set()
    codes: set[str] = set()
    for raw_value in values:
        for value in (v.strip() for v in raw_value.split(",")):
            lower = value.lower()
            if not value:
                continue
            if lower == "all":
                statuses.update(NOT_SUCCEEDED)
            elif lower == SUCCEEDED:
                raise MergeError(
                    "retry_on with succeeded makes no sense: the retry file holds requests to send"
                    " again",
                    hint="use failed, expired, cancelled, missing, 4xx, 5xx, 429 or error codes",
                )
            elif lower in NOT_SUCCEEDED:
                statuses.add(lower)
            elif len(lower) == 3 and lower[0] in "12345" and lower[1:] == "xx":
                classes.add(int(lower[0]))
            elif lower.isdigit() and len(lower) == 3:
                http.add(int(lower))
            else:
                codes.add(value)

    def should_retry(status: str, http_status: int | None, code: str | None) -> bool:
        if status == SUCCEEDED:
            return False
        if status in statuses:
            return True
        if http_status is not None and (http_status in http or http_status // 100 in classes):
            return True
        return code is not None and code in codes

    return should_retry
