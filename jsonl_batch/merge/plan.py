"""What a merge reads: the request file (or a split manifest's shards, or a submit job
file), the output and error files, and which failures go to the retry file."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, MergeError
from ..jsonl import read_json
from .summary import CANCELLED, NOT_SUCCEEDED, SUCCEEDED


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


def stem_of(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".job.json", ".manifest.json", ".jsonl", ".json", ".txt"):
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
    return name


def read_manifest(path: Path) -> tuple[Path | None, list[ShardRef]]:
    """The source file (None when it is gone) and the shards of a split manifest."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("shards"), list):
        raise InputError(f"{path}: not a split manifest (no 'shards' list)")
    base = path.parent
    source = None
    source_info = data.get("source")
    if isinstance(source_info, dict) and isinstance(source_info.get("path"), str):
        candidate = base / source_info["path"]
        source = candidate if candidate.exists() else None
    shards = []
    for position, item in enumerate(data["shards"]):
        if not isinstance(item, dict) or not isinstance(item.get("index", position), int):
            raise InputError(f"{path}: shard {position} is not an object with an integer index")
        shards.append(
            ShardRef(
                index=item.get("index", position),
                path=base / item["path"] if isinstance(item.get("path"), str) else None,
                first_line=item.get("first_line"),
                last_line=item.get("last_line"),
                requests=item.get("requests"),
                input_tokens=item.get("input_tokens"),
                model=item.get("model") if isinstance(item.get("model"), str) else None,
            )
        )
    shards.sort(key=lambda shard: shard.index)
    return source, shards


def read_job(path: Path) -> MergePlan:
    """Read a ``<stem>.job.json`` written by ``jsonl-batch submit``.

    Kept small on purpose: the job format belongs to the submit command, and only this
    function needs to follow it.
    """
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("shards"), list):
        raise InputError(f"{path}: not a job file (no 'shards' list)")
    base = path.parent
    plan = MergePlan(stem_path=path, source=None)
    manifest_shards: dict[int, ShardRef] = {}
    if isinstance(data.get("manifest"), str) and (base / data["manifest"]).exists():
        plan.source, listed = read_manifest(base / data["manifest"])
        manifest_shards = {shard.index: shard for shard in listed}
    if isinstance(data.get("source"), str):
        source = base / data["source"]
        if source.exists():
            plan.source = source
    for position, item in enumerate(data["shards"]):
        if not isinstance(item, dict) or not isinstance(item.get("index", position), int):
            raise InputError(
                f"{path}: shard {position} is not an object with an integer index",
                hint="re-create the job file with jsonl-batch submit",
            )
        index = item.get("index", position)
        shard = manifest_shards.get(index) or ShardRef(index=index)
        if isinstance(item.get("path"), str):
            shard.path = base / item["path"]
        status = str(item.get("status") or "").lower()
        shard.status = {"canceled": CANCELLED, "": None}.get(status, status)
        for key in ("output_file", "error_file"):
            if isinstance(item.get(key), str) and item[key]:
                setattr(shard, key, base / item[key])
        batch_errors = item.get("errors")
        if shard.status == "failed" and isinstance(batch_errors, list) and batch_errors:
            first = batch_errors[0] if isinstance(batch_errors[0], dict) else {}
            shard.error = (
                str(first.get("code") or "batch_failed"),
                str(first.get("message") or ""),
            )
        if shard.output_file is not None:
            plan.outputs.append(shard.output_file)
        elif shard.status not in (None, "validating", "in_progress", "finalizing"):
            plan.notes.append(
                f"shard {index} ({shard.status}) has no output file: none of its requests"
                " succeeded, or the output was not downloaded"
            )
        if shard.error_file is not None:
            plan.errors.append(shard.error_file)
        plan.shards.append(shard)
    plan.shards.sort(key=lambda shard: shard.index)
    return plan


# Shard statuses after which no more results will come.
_FINISHED = frozenset({"completed", "failed", "expired", "cancelled"})


def plan_merge(
    input_path: str | os.PathLike[str],
    outputs: Sequence[str | os.PathLike[str]] = (),
    errors: Sequence[str | os.PathLike[str]] = (),
) -> MergePlan:
    """Work out what to read from a job file, a split manifest or a plain request file."""
    path = Path(input_path)
    if not path.exists():
        raise InputError(f"{path}: no such file", hint="pass the job file or the request file")
    if path.name.endswith(".job.json"):
        plan = read_job(path)
    elif path.name.endswith(".manifest.json"):
        source, shards = read_manifest(path)
        plan = MergePlan(stem_path=path, source=source, shards=shards)
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
    finished = plan.shards and all(shard.status in _FINISHED for shard in plan.shards)
    if not plan.outputs and not plan.errors and not finished:
        raise InputError(
            f"{path}: no output or error files to merge",
            hint="pass --output FILE and/or --errors FILE, or a job file with downloaded results",
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
                    "--retry-on succeeded makes no sense: the retry file holds requests to send"
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
