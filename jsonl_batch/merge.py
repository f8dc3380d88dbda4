"""Join a finished batch's output and error files back to its input requests.

Why it is built this way:

* The service writes results in any order, split over an output file (successes) and an
  error file (failures), and sometimes not at all (expired, cancelled, all-failed batches).
  A user needs one row per *input* request, in input order, with a status, plus a retry file.
* Memory must not grow with file size. Pass 1 reads every output/error line once and keeps
  only ``custom_id -> packed location`` (file, byte offset, length, rank, shard). Pass 2
  streams the input in order, looks each ``custom_id`` up, reads the winning output line back
  with one ``pread`` and writes the result. Above ``memory_mb`` the index spills to SQLite
  (standard library), so the budget stays fixed however big the files get.
* Duplicates are never dropped silently: a success beats a failure; between equals the later
  file (in the order given: outputs, then errors) and the later line wins, because a later
  file is usually a retry's result. Every duplicate is counted, with examples.
* Costs are summed per model first and priced once: batch prices are linear in tokens, so
  this is exact and costs nothing per line.
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import gc
import gzip
import io
import itertools
import os
import pickle
import re
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .errors import InputError, JsonlBatchError, MergeError
from .jsonl import BOM, AtomicWriter, open_binary, read_json

SUCCEEDED = "succeeded"
FAILED = "failed"
EXPIRED = "expired"
CANCELLED = "cancelled"
MISSING = "missing"
STATUSES = (SUCCEEDED, FAILED, EXPIRED, CANCELLED, MISSING)
NOT_SUCCEEDED = (FAILED, EXPIRED, CANCELLED, MISSING)

RESULTS_FORMATS = ("full", "text", "embedding", "csv")
DEFAULT_RETRY_ON = NOT_SUCCEEDED
DEFAULT_MEMORY_MB = 160
EXAMPLES = 20  # examples kept per kind of problem; counts are always exact

# --- packed index entries -------------------------------------------------------------
# One Python int per custom_id: bit 0 used by an input line, bits 1-2 rank (0 no output,
# 1 failure, 2 success), bits 3-18 shard + 1, bits 19-34 output file + 1, bits 35-66 line
# length, bits 67+ byte offset. An int is the smallest thing a dict can hold per entry.
_USED = 1
_RANK_SHIFT, _SHARD_SHIFT, _FILE_SHIFT, _LEN_SHIFT, _OFF_SHIFT = 1, 3, 19, 35, 67
_RANK_MASK, _FIELD16, _LEN_MASK = 0b11, 0xFFFF, 0xFFFFFFFF
_SHARD_BITS = _FIELD16 << _SHARD_SHIFT
_RANK_SUCCESS, _RANK_FAILURE = 2, 1
# Approximate bytes one dict entry costs (key object + int + dict slot), measured.
_ENTRY_BYTES = 125
_SPLIT = 1 << 48  # SQLite integers are 64-bit: store packed as (hi, lo)

# Output and request lines as the services and SDKs write them start with these keys in this
# order; matching them spares a full parse. Values with escapes fall back to parsing.
_FAST_OUTPUT = re.compile(
    rb'\{\s*(?:"id"\s*:\s*"[^"\\]*"\s*,\s*)?"custom_id"\s*:\s*"([^"\\]*)"\s*,\s*'
    rb'"response"\s*:\s*(?:\{\s*"status_code"\s*:\s*(\d+)\s*[,}]|null)'
)
# How a complete output line ends (a cheap guard against a truncated last line).
_CLOSED_LINE_ENDS = (b"}\n", b"}\r\n", b"}")
_FAST_REQUEST = re.compile(rb'\s*\{\s*"custom_id"\s*:\s*"([^"\\]*)"\s*,')


def _rank(packed: int) -> int:
    return (packed >> _RANK_SHIFT) & _RANK_MASK


def _file_of(packed: int) -> int:
    """Output file index, or -1 when the entry has no output line."""
    return ((packed >> _FILE_SHIFT) & _FIELD16) - 1


# --- inputs: plain files, manifests, job files ---------------------------------------


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


@dataclass(slots=True)
class MergePlan:
    """Everything merge reads: where the requests come from and which result files."""

    stem_path: Path  # results are named after this file: <stem>.results.jsonl
    source: Path | None  # the requests in input order; None: read the shards in order
    outputs: list[Path] = field(default_factory=list)
    errors: list[Path] = field(default_factory=list)
    shards: list[ShardRef] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _stem(path: Path) -> str:
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
    if not plan.outputs and not plan.errors:
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


# --- result summary -----------------------------------------------------------------------


@dataclass(slots=True)
class Usage:
    """Token totals; reasoning tokens are part of completion tokens, as the API counts them."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.cached_tokens += other.cached_tokens
        self.completion_tokens += other.completion_tokens
        self.reasoning_tokens += other.reasoning_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "completion_tokens": self.completion_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(slots=True)
class Cost:
    """Actual cost at batch prices, next to the estimate for the same requests."""

    actual_usd: float | None = 0.0
    actual_input_usd: float | None = 0.0
    estimated_input_usd: float | None = None
    estimated_input_tokens: int | None = None
    unpriced_models: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "actual_usd": _round(self.actual_usd),
            "actual_input_usd": _round(self.actual_input_usd),
            "estimated_input_usd": _round(self.estimated_input_usd),
            "estimated_input_tokens": self.estimated_input_tokens,
            "unpriced_models": sorted(self.unpriced_models),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 9)


@dataclass(slots=True)
class ErrorStat:
    """How often one error code occurred, with one example."""

    code: str
    count: int
    status: str
    example_custom_id: str
    example_message: str | None
    example_where: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "count": self.count,
            "status": self.status,
            "example": {
                "custom_id": self.example_custom_id,
                "message": self.example_message,
                "where": self.example_where,
            },
        }


@dataclass(slots=True)
class GroupSummary:
    """Counts, usage and cost for one shard, or for everything."""

    name: str
    requests: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    usage: Usage = field(default_factory=Usage)
    cost: Cost = field(default_factory=Cost)
    shard_status: str | None = None
    manifest_input_tokens: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "requests": self.requests,
            "counts": dict(self.counts),
            "usage": self.usage.to_dict(),
            "cost": self.cost.to_dict(),
        }
        if self.shard_status is not None:
            out["shard_status"] = self.shard_status
        if self.manifest_input_tokens is not None:
            out["manifest_input_tokens"] = self.manifest_input_tokens
        return out


@dataclass(slots=True)
class Problem:
    """Something the merge noticed and reports instead of dropping silently."""

    kind: str  # unknown_custom_id, duplicate_output, invalid_output_line, ...
    message: str
    custom_id: str | None = None
    where: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "custom_id": self.custom_id,
            "where": self.where,
        }


PROBLEM_KINDS = (
    "invalid_output_line",
    "unknown_custom_id",
    "duplicate_output",
    "duplicate_input",
    "invalid_input_line",
)


@dataclass(slots=True)
class MergeResult:
    """What ``merge`` wrote and found. ``ok`` is True when every request succeeded."""

    results_path: Path
    retry_path: Path | None
    retry_count: int
    total: GroupSummary
    shards: list[GroupSummary]
    errors: list[ErrorStat]
    problem_counts: dict[str, int]
    problems: list[Problem]  # up to EXAMPLES per kind
    notes: list[str]
    warnings: list[str]
    index_spilled: bool = False
    output_files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.total.counts[SUCCEEDED] == self.total.requests
            and not self.problem_counts.get("invalid_output_line")
            and not self.problem_counts.get("unknown_custom_id")
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "results": str(self.results_path),
            "retry": str(self.retry_path) if self.retry_path else None,
            "retry_requests": self.retry_count,
            "requests": self.total.requests,
            "counts": dict(self.total.counts),
            "usage": self.total.usage.to_dict(),
            "cost": self.total.cost.to_dict(),
            "errors": [stat.to_dict() for stat in self.errors],
            "shards": [shard.to_dict() for shard in self.shards],
            "problem_counts": dict(self.problem_counts),
            "problems": [problem.to_dict() for problem in self.problems],
            "notes": list(self.notes),
            "warnings": list(self.warnings),
            "index_spilled": self.index_spilled,
            "output_files": list(self.output_files),
        }


class _Problems:
    """Counts every problem, keeps the first few of each kind."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: list[Problem] = []

    def add(
        self, kind: str, message: str, custom_id: str | None = None, where: str | None = None
    ) -> None:
        self.counts[kind] += 1
        if self.counts[kind] <= EXAMPLES:
            self.examples.append(Problem(kind, message, custom_id, where))


# --- the index -------------------------------------------------------------------------


def _blob(custom_id: str) -> bytes:
    """SQLite key of a custom_id (bytes, so ids that are not valid UTF-8 survive)."""
    return custom_id.encode("utf-8", "surrogateescape")


def _text(key: bytes) -> str:
    return key.decode("utf-8", "surrogateescape")


class OutputIndex:
    """``custom_id -> packed`` in a dict, moved to SQLite once it outgrows ``budget_bytes``."""

    def __init__(
        self, budget_bytes: int, spill_dir: Path, resolve: Callable[[str, int, int], int]
    ) -> None:
        self.entries: dict[str, int] = {}
        self.resolve = resolve
        self.budget_bytes = budget_bytes
        self.approx_bytes = 0
        self.spill_dir = spill_dir
        self._tmp: str | None = None
        self.db: sqlite3.Connection | None = None

    @property
    def spilled(self) -> bool:
        return self.db is not None

    def note_added(self, custom_id: str) -> None:
        """Account for a new entry; spill when over budget."""
        self.approx_bytes += _ENTRY_BYTES + len(custom_id)
        if self.approx_bytes > self.budget_bytes:
            self.flush()

    def flush(self) -> None:
        """Move the in-memory entries to SQLite, settling clashes with ``resolve``."""
        if self.db is None:
            self._open_db()
        assert self.db is not None
        items = self.entries
        self.entries = {}
        self.approx_bytes = 0
        if not items:
            return
        resolve = self.resolve
        pending = iter(items.items())
        while batch := list(itertools.islice(pending, 500)):
            keys = [_blob(cid) for cid, _ in batch]
            marks = ",".join("?" * len(batch))
            existing = {
                key: hi * _SPLIT + lo
                for key, hi, lo in self.db.execute(
                    f"SELECT cid, hi, lo FROM idx WHERE cid IN ({marks})", keys
                )
            }
            rows = []
            for key, (cid, new) in zip(keys, batch, strict=True):
                kept = resolve(cid, existing[key], new) if key in existing else new
                rows.append((key, kept // _SPLIT, kept % _SPLIT))
            self.db.executemany("INSERT OR REPLACE INTO idx (cid, hi, lo) VALUES (?, ?, ?)", rows)
        del items, pending
        self.db.commit()

    def _open_db(self) -> None:
        self._tmp = tempfile.mkdtemp(prefix=".jsonl-batch-merge-", dir=self.spill_dir)
        self.db = sqlite3.connect(os.path.join(self._tmp, "index.sqlite"))
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("PRAGMA cache_size=-32768")  # 32 MB page cache
        self.db.execute(
            "CREATE TABLE idx (cid BLOB PRIMARY KEY, hi INTEGER, lo INTEGER) WITHOUT ROWID"
        )

    def lookup_many(self, custom_ids: Sequence[str]) -> dict[str, int]:
        """Entries for the given ids (absent ids are left out)."""
        if self.db is None:
            entries = self.entries
            return {cid: entries[cid] for cid in custom_ids if cid in entries}
        found: dict[str, int] = {}
        unique = list(dict.fromkeys(custom_ids))
        for start in range(0, len(unique), 500):
            batch = [_blob(cid) for cid in unique[start : start + 500]]
            marks = ",".join("?" * len(batch))
            for key, hi, lo in self.db.execute(
                f"SELECT cid, hi, lo FROM idx WHERE cid IN ({marks})", batch
            ):
                found[_text(key)] = hi * _SPLIT + lo
        return found

    def store(self, updates: dict[str, int]) -> None:
        """Write back changed entries (the used bit) after a block of input lines."""
        if self.db is None:
            self.entries.update(updates)
            return
        self.db.executemany(
            "UPDATE idx SET hi = ?, lo = ? WHERE cid = ?",
            [(packed // _SPLIT, packed % _SPLIT, _blob(cid)) for cid, packed in updates.items()],
        )

    def unused_outputs(self) -> Iterator[tuple[str, int]]:
        """Entries with an output line that no input line asked for."""
        if self.db is None:
            for cid, packed in self.entries.items():
                if not packed & _USED and _file_of(packed) >= 0:
                    yield cid, packed
            return
        self.db.commit()
        for key, hi, lo in self.db.execute("SELECT cid, hi, lo FROM idx"):
            packed = hi * _SPLIT + lo
            if not packed & _USED and _file_of(packed) >= 0:
                yield _text(key), packed

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self.entries = {}


# --- what an output line says ------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    """The status of one request, as its output line says."""

    status: str
    http_status: int | None
    code: str | None
    message: str | None


def classify(line: Mapping[str, Any]) -> Outcome:
    """Status rules: success iff ``response.status_code == 200``; ``batch_expired`` and
    ``batch_cancelled`` error codes are expired / cancelled; anything else failed."""
    response = line.get("response")
    http_status = None
    body = None
    if isinstance(response, dict):
        raw_status = response.get("status_code")
        http_status = raw_status if type(raw_status) is int else None
        body = response.get("body")
        if http_status == 200:
            return Outcome(SUCCEEDED, 200, None, None)
    error = line.get("error") if isinstance(line.get("error"), dict) else None
    body_error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(body_error, dict):
        body_error = None
    code = (body_error or {}).get("code") or (error or {}).get("code")
    message = (body_error or {}).get("message") or (error or {}).get("message")
    if code == "batch_expired":
        return Outcome(EXPIRED, http_status, code, message)
    if code == "batch_cancelled":
        return Outcome(CANCELLED, http_status, code, message)
    if not code:
        code = f"http_{http_status}" if http_status is not None else "unknown_error"
    return Outcome(FAILED, http_status, str(code), message)


def usage_of(body: Any) -> Usage | None:
    """Token usage of a response body, chat or Responses shape."""
    if not isinstance(body, dict):
        return None
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return None
    if "input_tokens" in usage or "output_tokens" in usage:
        prompt, completion = usage.get("input_tokens"), usage.get("output_tokens")
        prompt_details = usage.get("input_tokens_details")
        completion_details = usage.get("output_tokens_details")
    else:
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        prompt_details = usage.get("prompt_tokens_details")
        completion_details = usage.get("completion_tokens_details")
    cached = prompt_details.get("cached_tokens") if isinstance(prompt_details, dict) else 0
    reasoning = (
        completion_details.get("reasoning_tokens") if isinstance(completion_details, dict) else 0
    )
    return Usage(_int(prompt), _int(cached), _int(completion), _int(reasoning))


def _int(value: Any) -> int:
    return value if type(value) is int else 0


def text_of(body: Any) -> str | None:
    """The assistant text of a chat completion, Response or completion (first choice)."""
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("output_text"), str):
        return body["output_text"]
    choices = body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        choice = choices[0]
        message = choice.get("message")
        if isinstance(message, dict):
            content = message.get("content")
            if isinstance(content, str) or content is None:
                return content
            if isinstance(content, list):
                return "".join(part.get("text", "") for part in content if isinstance(part, dict))
        return choice.get("text") if isinstance(choice.get("text"), str) else None
    output = body.get("output")
    if isinstance(output, list):
        texts = [
            part.get("text", "")
            for item in output
            if isinstance(item, dict) and item.get("type") == "message"
            for part in item.get("content") or ()
            if isinstance(part, dict) and part.get("type") == "output_text"
        ]
        return "".join(texts) if texts else None
    return None


def embedding_of(body: Any) -> Any:
    """The embedding vector (one input) or vectors (several inputs) of an embeddings body."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        return None
    vectors = [item.get("embedding") for item in body["data"] if isinstance(item, dict)]
    return vectors[0] if len(vectors) == 1 else vectors


# --- the merge ---------------------------------------------------------------------------


class _Merger:
    """State of one merge run; ``merge()`` is the public entry point."""

    def __init__(
        self,
        plan: MergePlan,
        *,
        memory_mb: float,
        spill_dir: Path,
        on_progress: Callable[[int], None] | None,
    ) -> None:
        self.plan = plan
        self.files = [*plan.outputs, *plan.errors]
        if max(len(self.files), len(plan.shards)) >= _FIELD16:
            raise MergeError(
                f"too many files to merge at once ({len(self.files)} result files,"
                f" {len(plan.shards)} shards; the limit is {_FIELD16 - 1})",
                hint="merge the shards in groups",
            )
        self.problems = _Problems()
        self.index = OutputIndex(int(memory_mb * 1024 * 1024), spill_dir, self._resolve)
        self.progress = on_progress or (lambda _n: None)
        self.duplicate_examples: list[tuple[str, int, int, str]] = []
        self._tmp_files: list[Path] = []
        self.readable: list[Path] = []
        self.line_numbers: dict[tuple[int, int], int] = {}
        self.fds: list[int] = []

    # pass 0: shard membership, when the manifest's line ranges cannot tell it
    def shard_ranges(self) -> tuple[list[int], list[int], list[int]] | None:
        """Sorted (first_line, last_line, shard position) when shards are line ranges."""
        shards = self.plan.shards
        if not shards or self.plan.source is None:
            return None
        ranges = []
        for pos, shard in enumerate(shards):
            if not isinstance(shard.first_line, int) or not isinstance(shard.last_line, int):
                return None
            ranges.append((shard.first_line, shard.last_line, pos))
        ranges.sort()
        for (_, last, _), (first, _, _) in itertools.pairwise(ranges):
            if first <= last:
                return None  # overlapping ranges: shards were regrouped, not cut in order
        return [r[0] for r in ranges], [r[1] for r in ranges], [r[2] for r in ranges]

    def index_membership(self) -> None:
        """Record which shard each custom_id was sent in (reads the shard files)."""
        for pos, shard in enumerate(self.plan.shards):
            if shard.path is None or not shard.path.exists():
                self.plan.notes.append(
                    f"shard {shard.index}: shard file missing; its requests count as unsharded"
                )
                continue
            for _number, _raw, cid, _shard, _path in _iter_requests(shard.path, pos, _Problems()):
                if cid not in self.index.entries:
                    self.index.entries[cid] = (pos + 1) << _SHARD_SHIFT
                    self.index.note_added(cid)

    # pass 1
    def index_outputs(self) -> None:
        """Read every output/error line once; keep only where each custom_id's line is."""
        for file_index, path in enumerate(self.files):
            readable = self._seekable(path)
            self.readable.append(readable)
            with open(readable, "rb", buffering=1 << 20) as stream:
                self._index_stream(stream, file_index, path)
        if self.index.spilled:
            self.index.flush()

    def _index_stream(self, stream: Any, file_index: int, path: Path) -> None:
        """The hot loop of pass 1.

        Lines in the services' own key order (``id``, ``custom_id``, ``response`` with
        ``status_code`` first) are recognised by a regex without parsing; any other line is
        parsed. A line that later turns out not to be JSON is reported in pass 2.
        """
        index = self.index
        fast_match = _FAST_OUTPUT.match
        offset = reported = 0
        number = 0
        for raw in stream:
            number += 1
            length = len(raw)
            start = offset
            offset += length
            if not number & 0xFFFF:
                self.progress(offset - reported)
                reported = offset
            found = fast_match(raw)
            if found is not None and raw.endswith(_CLOSED_LINE_ENDS):
                cid = found.group(1).decode("utf-8", "surrogateescape")
                rank = _RANK_SUCCESS if found.group(2) == b"200" else _RANK_FAILURE
            else:
                parsed = self._parse_output(raw, number, path)
                if parsed is None:
                    continue
                cid, rank = parsed
            packed = (
                (start << _OFF_SHIFT)
                | (length << _LEN_SHIFT)
                | ((file_index + 1) << _FILE_SHIFT)
                | (rank << _RANK_SHIFT)
            )
            entries = index.entries
            old = entries.get(cid)
            if old is None:
                entries[cid] = packed
                index.note_added(cid)
            else:
                entries[cid] = self._resolve(cid, old, packed)
        self.progress(offset - reported)

    def _parse_output(self, raw: bytes, number: int, path: Path) -> tuple[str, int] | None:
        """custom_id and rank of an output line the regex did not recognise."""
        text = raw[3:] if number == 1 and raw.startswith(BOM) else raw
        if text.isspace():
            return None
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            self.problems.add(
                "invalid_output_line", f"not valid JSON: {exc}", where=f"{path}:{number}"
            )
            return None
        cid = obj.get("custom_id") if type(obj) is dict else None
        if type(cid) is not str:
            self.problems.add(
                "invalid_output_line",
                "not an output line (no string custom_id)",
                where=f"{path}:{number}",
            )
            return None
        response = obj.get("response")
        success = type(response) is dict and response.get("status_code") == 200
        return cid, _RANK_SUCCESS if success else _RANK_FAILURE

    def _resolve(self, cid: str, old: int, new: int) -> int:
        """Pick the winner of two entries for one custom_id and count the duplicate.

        A success beats a failure; between equals the later one (later file, later line)
        wins. Membership placeholders (no output line) only lend their shard.
        """
        if _file_of(new) < 0:
            return old
        if _file_of(old) < 0:
            return new | (old & _SHARD_BITS)
        keep_new = _rank(new) >= _rank(old)
        winner, loser = (new, old) if keep_new else (old, new)
        self.problems.counts["duplicate_output"] += 1
        if len(self.duplicate_examples) < EXAMPLES:
            reason = (
                "a success beats a failure"
                if _rank(winner) != _rank(loser)
                else "between equals the later file/line wins"
            )
            self.duplicate_examples.append((cid, winner, loser, reason))
        return (winner & ~_SHARD_BITS) | (old & _SHARD_BITS)

    def _seekable(self, path: Path) -> Path:
        """A plain file to pread from (a ``.gz`` output is unpacked to a temp file)."""
        if not path.exists():
            raise InputError(f"{path}: no such file", hint="check the --output/--errors paths")
        if not path.name.endswith(".gz"):
            return path
        fd, tmp = tempfile.mkstemp(prefix=".jsonl-batch-merge-", suffix=".jsonl")
        self._tmp_files.append(Path(tmp))
        with os.fdopen(fd, "wb") as out, gzip.open(path, "rb") as packed:
            try:
                shutil.copyfileobj(packed, out, 1 << 20)
            except (OSError, EOFError) as exc:
                raise InputError(f"{path}: cannot decompress: {exc}") from None
        return Path(tmp)

    def open_outputs(self) -> None:
        """File descriptors to pread output lines from; closed by ``cleanup``."""
        self.fds = [os.open(path, os.O_RDONLY) for path in self.readable]

    def cleanup(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        self.index.close()
        for tmp in self._tmp_files:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def describe_duplicates(self) -> None:
        """Report kept duplicate examples with file:line of both lines."""
        for cid, winner, loser, reason in self.duplicate_examples:
            kept, dropped = self.where(winner), self.where(loser)
            self.problems.examples.append(
                Problem(
                    "duplicate_output",
                    f"custom_id appears more than once; kept {kept}, ignored {dropped} ({reason})",
                    custom_id=cid,
                    where=kept,
                )
            )

    def where(self, packed: int) -> str:
        """``file:line`` of an entry's output line (resolved lazily, see ``locate``)."""
        file_index = _file_of(packed)
        if file_index < 0:
            return "?"
        key = (file_index, packed >> _OFF_SHIFT)
        line = self.line_numbers.get(key)
        return f"{self.files[file_index]}:{line}" if line else f"{self.files[file_index]}@{key[1]}"

    def locate(self, packed_entries: list[int]) -> None:
        """Find line numbers for the entries an example names: one pass per file involved."""
        wanted: dict[int, set[int]] = {}
        for packed in packed_entries:
            if _file_of(packed) >= 0:
                wanted.setdefault(_file_of(packed), set()).add(packed >> _OFF_SHIFT)
        for file_index, offsets in wanted.items():
            for offset, line in _line_numbers(self.readable[file_index], offsets).items():
                self.line_numbers[(file_index, offset)] = line


def _line_numbers(path: Path, offsets: set[int]) -> dict[int, int]:
    """1-based line numbers of the lines starting at the given byte offsets."""
    targets = sorted(offsets)
    found: dict[int, int] = {}
    newlines = 0
    position = 0
    at = 0
    with open(path, "rb") as stream:
        while at < len(targets):
            chunk = stream.read(1 << 20)
            if not chunk:
                break
            end = position + len(chunk)
            while at < len(targets) and targets[at] <= end:
                found[targets[at]] = newlines + chunk.count(b"\n", 0, targets[at] - position) + 1
                at += 1
            newlines += chunk.count(b"\n")
            position = end
    return found


def merge(
    input_path: str | os.PathLike[str],
    outputs: Sequence[str | os.PathLike[str]] = (),
    errors: Sequence[str | os.PathLike[str]] = (),
    *,
    out_dir: str | os.PathLike[str] | None = None,
    results_format: str = "full",
    include_request: bool = False,
    retry_on: Sequence[str] = DEFAULT_RETRY_ON,
    deployment_map: Mapping[str, str] | None = None,
    prices: Any = None,
    estimate: bool = False,
    target: str = "azure",
    region: str = "global",
    memory_mb: float = DEFAULT_MEMORY_MB,
    workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> MergeResult:
    """Join outputs and errors to the input requests; write results and a retry file.

    ``input_path`` is a job file (``*.job.json``), a split manifest (``*.manifest.json``) or
    the request file itself. Writes ``<stem>.results.jsonl`` (``.results.csv`` for
    ``results_format="csv"``) and ``<stem>.retry.jsonl`` next to the input or in
    ``out_dir``, replacing earlier ones (they are derived files). ``prices`` is a
    ``PriceTable``, a path to a price file, or None for the bundled table; ``target`` and
    ``region`` choose the price row as in ``estimate``. ``estimate`` counts the input tokens
    of every request that came back with usage, to put an estimate next to the actual cost.
    ``workers`` processes share pass 2 (default: ``default_workers``; 1 = no fork).
    """
    if results_format not in RESULTS_FORMATS:
        raise MergeError(
            f"unknown results format {results_format!r}",
            hint="use one of " + ", ".join(RESULTS_FORMATS),
        )
    should_retry = retry_selector(retry_on)
    plan = plan_merge(input_path, outputs, errors)
    target_dir = Path(out_dir) if out_dir is not None else plan.stem_path.parent
    stem = _stem(plan.stem_path)
    suffix = ".results.csv" if results_format == "csv" else ".results.jsonl"
    results_path = target_dir / f"{stem}{suffix}"
    retry_path = target_dir / f"{stem}.retry.jsonl"
    target_dir.mkdir(parents=True, exist_ok=True)
    merger = _Merger(plan, memory_mb=memory_mb, spill_dir=target_dir, on_progress=on_progress)
    # The join allocates millions of short-lived, acyclic dicts (parsed lines); the cyclic
    # garbage collector would scan the big index again and again for nothing (~30% of the
    # run time). Reference counting frees everything.
    collecting = gc.isenabled()
    gc.disable()
    try:
        options = _Options(
            results_format=results_format,
            include_request=include_request,
            should_retry=should_retry,
            deployment_map=dict(deployment_map or {}),
            pricing=_Pricing(prices, target, region, estimate),
        )
        if workers is None:
            size = plan.source.stat().st_size if plan.source and plan.source.is_file() else 0
            workers = default_workers(size)
        return _run(merger, results_path, retry_path, options, workers)
    finally:
        merger.cleanup()
        if collecting:
            gc.enable()


@dataclass(slots=True, frozen=True)
class _Pricing:
    """How to price: the table (or its path), where the batch ran, and whether to estimate."""

    prices: Any
    target: str
    region: str
    estimate: bool


@dataclass(slots=True)
class _Tally:
    """Token sums of one (shard, model), priced once at the end."""

    usage: Usage = field(default_factory=Usage)
    estimated_input_tokens: int = 0


@dataclass(slots=True, frozen=True)
class _Options:
    results_format: str
    include_request: bool
    should_retry: Callable[[str, int | None, str | None], bool]
    deployment_map: dict[str, str]
    pricing: _Pricing


# Status of a request with no output line, by the status of the batch (shard) it was in.
_NEVER_CAME_BACK = {EXPIRED: EXPIRED, CANCELLED: CANCELLED}

# (line number, raw bytes, custom_id, shard position or None, file the line is in)
_Request = tuple[int, bytes, str, int | None, Path]
_BLOCK = 4096


def _iter_requests(
    path: Path,
    shard: int | None,
    problems: _Problems,
    span: tuple[int, int, int] | None = None,
) -> Iterator[_Request]:
    """The request lines of a file with their custom_id, BOM and blank lines skipped.

    Lines are not validated (``validate`` does that): the custom_id is read with a regex
    when the line starts with it, else by parsing the line. ``span`` is (first byte, end
    byte, number of the first line) of a part of a plain file, for parallel workers.
    """
    fast_match = _FAST_REQUEST.match
    with open_binary(path) as stream:
        number = 0
        remaining = -1
        if span is not None:
            stream.seek(span[0])
            number = span[2] - 1
            remaining = span[1] - span[0]
        for raw in stream:
            number += 1
            if remaining >= 0:
                if remaining == 0:
                    break
                remaining -= len(raw)
            if number == 1 and raw.startswith(BOM):
                raw = raw[3:]
            found = fast_match(raw)
            if found is not None:
                yield number, raw, found.group(1).decode("utf-8", "surrogateescape"), shard, path
                continue
            if raw.isspace():
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                problems.add(
                    "invalid_input_line", f"not valid JSON: {exc}", where=f"{path}:{number}"
                )
                continue
            cid = obj.get("custom_id") if type(obj) is dict else None
            if type(cid) is not str:
                problems.add(
                    "invalid_input_line",
                    "not a request line (no string custom_id)",
                    where=f"{path}:{number}",
                )
                continue
            yield number, raw, cid, shard, path


class _Join:
    """Pass 2: stream the requests in order, fetch each one's output line, write rows."""

    def __init__(
        self,
        merger: _Merger,
        ranges: tuple[list[int], list[int], list[int]] | None,
        options: _Options,
    ) -> None:
        plan = merger.plan
        self.merger = merger
        self.ranges = ranges
        self.options = options
        self.problems = merger.problems
        self.shard_status = [shard.status for shard in plan.shards]
        self.total = GroupSummary("total")
        self.groups = [
            GroupSummary(
                f"shard {shard.index}",
                shard_status=shard.status,
                manifest_input_tokens=shard.input_tokens,
            )
            for shard in plan.shards
        ]
        self.tallies: dict[tuple[int | None, str | None], _Tally] = {}
        self.error_stats: dict[str, ErrorStat] = {}
        self.error_where: dict[str, int | str] = {}  # packed output entry, or file:line
        self.bad_outputs: list[int] = []  # packed entries whose line is not JSON after all
        self.counter = _token_counter(options.deployment_map) if options.pricing.estimate else None
        self.retry_count = 0
        self.span: tuple[int, int, int] | None = None  # a worker's part of the source
        self.first_uses = 0  # outputs claimed by this join, and the sum of their ids' hashes
        self.first_use_hash = 0
        self.all_outputs_used = False  # set by the parallel run when the sums prove it
        self.csv_buffer = io.StringIO()
        self.csv_writer = csv.writer(self.csv_buffer, lineterminator="\n")

    def requests(self) -> Iterator[_Request]:
        plan = self.merger.plan
        if plan.source is not None:
            yield from _iter_requests(plan.source, None, self.problems, self.span)
            return
        for pos, shard in enumerate(plan.shards):
            assert shard.path is not None
            yield from _iter_requests(shard.path, pos, self.problems)

    def run(self, results: Any, retry: Any, *, header: bool = True) -> None:
        """Join every request, writing rows to ``results`` and lines to ``retry``
        (anything with ``write_raw``)."""
        if header and self.options.results_format == "csv":
            self.csv_writer.writerow(_CSV_COLUMNS)
        progress = self.merger.progress
        block: list[_Request] = []
        done = 0
        for request in self.requests():
            block.append(request)
            done += len(request[1])
            if len(block) >= _BLOCK:
                self.flush(block, results, retry)
                block = []
                progress(done)
                done = 0
        if block:
            self.flush(block, results, retry)
        progress(done)

    def flush(self, block: list[_Request], results: Any, retry: Any) -> None:
        """Join one block of requests. The hot loop of pass 2, kept flat on purpose."""
        merger = self.merger
        index = merger.index
        # In memory, work on the index itself (the used bit is set in place); spilled, on a
        # block-sized copy that is written back at the end of the block.
        spilled = index.spilled
        found = index.lookup_many([r[2] for r in block]) if spilled else index.entries
        fds = merger.fds
        pread = os.pread
        loads = orjson.loads
        dumps = orjson.dumps
        append_newline = orjson.OPT_APPEND_NEWLINE
        options = self.options
        full = options.results_format == "full"
        include_request = options.include_request
        deployment_map = options.deployment_map
        should_retry = options.should_retry
        total_counts = self.total.counts
        groups = self.groups
        tallies = self.tallies
        counter = self.counter
        changed: dict[str, int] = {}
        first_uses = first_use_hash = 0
        rows: list[bytes] = []
        retries: list[bytes] = []
        sharded = bool(groups)
        last_key: tuple[int | None, str | None] | None = None
        last_usage = Usage()
        for number, raw, cid, line_shard, source in block:
            packed = found.get(cid)
            shard = line_shard
            if sharded and shard is None:
                if packed is not None:
                    shard = ((packed >> _SHARD_SHIFT) & _FIELD16) - 1
                    if shard < 0:
                        shard = None
                if shard is None and self.ranges is not None:
                    shard = self._shard_at(number)
            file_index = -1
            if packed is not None:
                if packed & _USED:
                    self.problems.add(
                        "duplicate_input",
                        "custom_id appears more than once in the input; every copy gets the"
                        " same result",
                        custom_id=cid,
                        where=f"{source}:{number}",
                    )
                file_index = ((packed >> _FILE_SHIFT) & _FIELD16) - 1
            body: Any = None
            output: Any = None
            if file_index >= 0:
                assert packed is not None
                if not packed & _USED:
                    packed |= _USED
                    found[cid] = packed
                    first_uses += 1
                    first_use_hash += hash(cid)
                    if spilled:
                        changed[cid] = packed
                offset = packed >> _OFF_SHIFT
                data = pread(fds[file_index], (packed >> _LEN_SHIFT) & _LEN_MASK, offset)
                if offset == 0 and data.startswith(BOM):
                    data = data[3:]
                try:
                    output = loads(data)
                except orjson.JSONDecodeError:
                    self.problems.counts["invalid_output_line"] += 1
                    self.bad_outputs.append(packed)
                    output = None
            response = output.get("response") if output.__class__ is dict else None
            if response.__class__ is dict and response.get("status_code") == 200:
                body = response.get("body")
                status = SUCCEEDED
                http_status: int | None = 200
                code = message = None
            elif output.__class__ is dict:
                outcome = classify(output)
                status, http_status = outcome.status, outcome.http_status
                code, message = outcome.code, outcome.message
                body = response.get("body") if response.__class__ is dict else None
            else:
                status = MISSING
                if shard is not None:
                    status = _NEVER_CAME_BACK.get(self.shard_status[shard], MISSING)
                http_status = code = message = None
            total_counts[status] += 1
            if shard is not None and groups:
                group = groups[shard]
                group.requests += 1
                group.counts[status] += 1
            if code is not None:
                self._count_error(code, status, cid, message, packed, f"{source}:{number}")
            usage = body.get("usage") if body.__class__ is dict else None
            request: Any = None
            if usage.__class__ is dict:
                model = body.get("model")
                if model.__class__ is not str or not model:
                    request = loads(raw)
                    model = _request_model(request)
                model = deployment_map.get(model, model)
                key = (shard, model)
                if key != last_key:  # consecutive requests mostly share shard and model
                    tally = tallies.get(key)
                    if tally is None:
                        tally = tallies[key] = _Tally()
                    last_key, last_usage = key, tally.usage
                _add_usage(last_usage, usage)
                if counter is not None:
                    tally = tallies[key]
                    if request is None:
                        request = loads(raw)
                    tally.estimated_input_tokens += _count_input(counter, request)
            else:
                usage = None
            if status != SUCCEEDED and should_retry(status, http_status, code):
                retries.append(raw if raw.endswith(b"\n") else raw + b"\n")
            if include_request and request is None:
                request = loads(raw)
            if full:
                row: dict[str, Any] = {
                    "custom_id": cid,
                    "status": status,
                    "line": number,
                    "status_code": http_status,
                    "error": None if code is None else {"code": code, "message": message},
                    "usage": usage,
                    "response": body if status == SUCCEEDED else None,
                }
                if include_request:
                    row["request"] = request
                rows.append(dumps(row, option=append_newline))
            else:
                rows.append(
                    self._row(cid, status, http_status, code, message, body, usage, request)
                )
        self.total.requests += len(block)
        self.first_uses += first_uses
        self.first_use_hash += first_use_hash
        if changed:
            index.store(changed)
        results.write_raw(b"".join(rows))
        if retries:
            self.retry_count += len(retries)
            retry.write_raw(b"".join(retries))

    def _shard_at(self, number: int) -> int | None:
        assert self.ranges is not None
        firsts, lasts, positions = self.ranges
        at = bisect.bisect_right(firsts, number) - 1
        return positions[at] if at >= 0 and number <= lasts[at] else None

    def _count_error(
        self,
        code: str,
        status: str,
        cid: str,
        message: str | None,
        packed: int | None,
        input_where: str,
    ) -> None:
        stat = self.error_stats.get(code)
        if stat is not None:
            stat.count += 1
            return
        self.error_stats[code] = ErrorStat(code, 1, status, cid, message, "")
        self.error_where[code] = packed if packed is not None else input_where

    def _row(
        self,
        cid: str,
        status: str,
        http_status: int | None,
        code: str | None,
        message: str | None,
        body: Any,
        usage: dict[str, Any] | None,
        request: Any,
    ) -> bytes:
        """A results row in the text, embedding or csv format."""
        results_format = self.options.results_format
        succeeded = status == SUCCEEDED
        error = None if code is None else {"code": code, "message": message}
        if results_format == "csv":
            content = text_of(body) if succeeded else None
            if succeeded and content is None and (vector := embedding_of(body)) is not None:
                content = orjson.dumps(vector).decode()
            numbers = usage_of(body) if usage is not None else None
            self.csv_writer.writerow(
                (
                    cid,
                    status,
                    "" if http_status is None else http_status,
                    code or "",
                    message or "",
                    "" if content is None else content,
                    *(
                        (
                            numbers.prompt_tokens,
                            numbers.cached_tokens,
                            numbers.completion_tokens,
                            numbers.reasoning_tokens,
                        )
                        if numbers is not None
                        else ("", "", "", "")
                    ),
                )
            )
            text = self.csv_buffer.getvalue()
            self.csv_buffer.seek(0)
            self.csv_buffer.truncate()
            return text.encode("utf-8")
        row: dict[str, Any] = {"custom_id": cid, "status": status}
        if results_format == "text":
            row["text"] = text_of(body) if succeeded else None
        else:
            row["embedding"] = embedding_of(body) if succeeded else None
        row["error"] = error
        if request is not None:
            row["request"] = request
        return orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)

    def partial(self) -> dict[str, Any]:
        """What a worker sends back to the parent (see ``absorb``)."""
        return {
            "total": self.total,
            "groups": self.groups,
            "tallies": self.tallies,
            "error_stats": self.error_stats,
            "error_where": self.error_where,
            "bad_outputs": self.bad_outputs,
            "retry_count": self.retry_count,
            "problem_counts": dict(self.problems.counts),
            "problem_examples": self.problems.examples,
            "first_uses": self.first_uses,
            "first_use_hash": self.first_use_hash,
        }

    def absorb(self, part: dict[str, Any]) -> None:
        """Add a worker's counts; parts come in input order, so first examples stay first."""
        self.total.requests += part["total"].requests
        for status, count in part["total"].counts.items():
            self.total.counts[status] += count
        for mine, theirs in zip(self.groups, part["groups"], strict=True):
            mine.requests += theirs.requests
            for status, count in theirs.counts.items():
                mine.counts[status] += count
        for key, tally in part["tallies"].items():
            into = self.tallies.setdefault(key, _Tally())
            into.usage.add(tally.usage)
            into.estimated_input_tokens += tally.estimated_input_tokens
        for code, stat in part["error_stats"].items():
            if code in self.error_stats:
                self.error_stats[code].count += stat.count
            else:
                self.error_stats[code] = stat
                self.error_where[code] = part["error_where"][code]
        self.bad_outputs.extend(part["bad_outputs"])
        self.retry_count += part["retry_count"]
        kept = Counter(problem.kind for problem in self.problems.examples)
        for problem in part["problem_examples"]:
            if kept[problem.kind] < EXAMPLES:
                kept[problem.kind] += 1
                self.problems.examples.append(problem)
        self.problems.counts.update(part["problem_counts"])
        self.first_uses += part["first_uses"]
        self.first_use_hash += part["first_use_hash"]

    def finish(self, results_path: Path, retry_path: Path) -> MergeResult:
        """Report what pass 2 could not: unknown custom_ids, duplicates, costs."""
        merger = self.merger
        problems = self.problems
        unknown: list[tuple[str, int]] = []
        unused = () if self.all_outputs_used else merger.index.unused_outputs()
        for cid, packed in unused:
            problems.counts["unknown_custom_id"] += 1
            if len(unknown) < EXAMPLES:
                unknown.append((cid, packed))
        bad = self.bad_outputs[:EXAMPLES]
        merger.locate(
            [packed for _, packed in unknown]
            + bad
            + [p for p in self.error_where.values() if isinstance(p, int)]
            + [p for _, kept, lost, _ in merger.duplicate_examples for p in (kept, lost)]
        )
        for packed in bad:
            problems.examples.append(
                Problem(
                    "invalid_output_line",
                    "not valid JSON; its request counts as missing",
                    where=merger.where(packed),
                )
            )
        for cid, packed in unknown:
            problems.examples.append(
                Problem(
                    "unknown_custom_id",
                    "output line for a custom_id that is not in the input",
                    custom_id=cid,
                    where=merger.where(packed),
                )
            )
        for code, where in self.error_where.items():
            self.error_stats[code].example_where = (
                where if isinstance(where, str) else merger.where(where)
            )
        merger.describe_duplicates()
        warnings: list[str] = []
        _price(self.tallies, self.total, self.groups, self.options.pricing, warnings)
        examples = sorted(problems.examples, key=lambda p: PROBLEM_KINDS.index(p.kind))
        return MergeResult(
            results_path=results_path,
            retry_path=retry_path if self.retry_count else None,
            retry_count=self.retry_count,
            total=self.total,
            shards=self.groups,
            errors=sorted(self.error_stats.values(), key=lambda s: (-s.count, s.code)),
            problem_counts={kind: problems.counts[kind] for kind in PROBLEM_KINDS},
            problems=examples,
            notes=list(merger.plan.notes),
            warnings=warnings,
            index_spilled=merger.index.spilled,
            output_files=[str(path) for path in merger.files],
        )


def _run(
    merger: _Merger, results_path: Path, retry_path: Path, options: _Options, workers: int
) -> MergeResult:
    plan = merger.plan
    ranges = merger.shard_ranges()
    if plan.shards and plan.source is not None and ranges is None:
        merger.index_membership()
    merger.index_outputs()
    merger.open_outputs()
    spans = None
    # Forking a process that runs other threads can deadlock them: stay serial then.
    single_threaded = threading.active_count() == 1
    if workers > 1 and single_threaded and not merger.index.spilled and plan.source is not None:
        spans = _input_spans(plan.source, workers)
    with AtomicWriter(results_path) as results, AtomicWriter(retry_path) as retry:
        if spans is None:
            join = _Join(merger, ranges, options)
            join.run(results, retry)
        else:
            join = _run_parallel(merger, ranges, options, spans, results, retry)
        if join.retry_count == 0:
            retry.abort()
    if join.retry_count == 0:
        with contextlib.suppress(FileNotFoundError):
            retry_path.unlink()  # no stale retry file from an earlier merge
    return join.finish(results_path, retry_path)


# --- parallel pass 2 --------------------------------------------------------------------
# Pass 2 costs ~80% of a merge and every request is independent, so big plain source files
# are cut into parts: this process joins the first, forked workers (sharing the index
# copy-on-write) join the others into part files and send back their counts; the parts are
# appended in order, so the results are byte-identical to a serial run.

_PARALLEL_MIN_BYTES = 64 << 20


def default_workers(source_bytes: int) -> int:
    """Processes for pass 2: up to 4 cores for sources over 64 MB on Linux, else 1.

    Workers are forked (they share the index copy-on-write), so only where fork is safe and
    cheap; a process with other threads running stays serial whatever this says.
    """
    if sys.platform != "linux" or source_bytes < _PARALLEL_MIN_BYTES:
        return 1
    return max(1, min(4, len(os.sched_getaffinity(0))))


def _input_spans(path: Path, workers: int) -> list[tuple[int, int, int]] | None:
    """(start byte, end byte, first line number) of ``workers`` parts cut at line ends."""
    if path.name.endswith(".gz") or str(path) == "-" or not path.is_file():
        return None
    size = path.stat().st_size
    cuts = [0]
    with open(path, "rb") as stream:
        for part in range(1, workers):
            stream.seek(max(size * part // workers, cuts[-1]))
            stream.readline()
            cuts.append(min(stream.tell(), size))
        cuts.append(size)
        numbers = [1]
        stream.seek(0)
        position = lines = 0
        for cut in cuts[1:-1]:
            while position < cut:
                chunk = stream.read(min(1 << 20, cut - position))
                lines += chunk.count(b"\n")
                position += len(chunk)
            numbers.append(lines + 1)
    spans = [(cuts[i], cuts[i + 1], numbers[i]) for i in range(workers) if cuts[i] < cuts[i + 1]]
    return spans if len(spans) > 1 else None


class _PartFile:
    """A plain binary file with the ``write_raw`` a join writes to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = open(path, "wb", buffering=1 << 20)  # noqa: SIM115 - closed by the worker

    def write_raw(self, data: bytes) -> None:
        self.file.write(data)


def _run_parallel(
    merger: _Merger,
    ranges: tuple[list[int], list[int], list[int]] | None,
    options: _Options,
    spans: list[tuple[int, int, int]],
    results: AtomicWriter,
    retry: AtomicWriter,
) -> _Join:
    """Fork a worker for every span but the first, join the first span here (straight into
    the results), then append the workers' parts and counts in input order."""
    folder = Path(tempfile.mkdtemp(prefix=".jsonl-batch-merge-", dir=results.path.parent))
    workers: list[tuple[int, int]] = []
    try:
        for number, span in enumerate(spans[1:], start=1):
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # the worker
                os.close(read_end)
                _worker(merger, ranges, options, span, folder / str(number), write_end)
            os.close(write_end)
            workers.append((pid, read_end))
        join = _Join(merger, ranges, options)
        join.span = spans[0]
        join.run(results, retry)
        for number, (pid, read_end) in enumerate(workers, start=1):
            with os.fdopen(read_end, "rb") as pipe:
                data = pipe.read()
            os.waitpid(pid, 0)
            workers[number - 1] = (0, -1)
            payload = pickle.loads(data) if data else {"error": "a worker died"}
            if "error" in payload:
                raise MergeError(f"merge worker failed: {payload['error']}")
            _append_file(results, folder / str(number) / "results")
            _append_file(retry, folder / str(number) / "retry")
            join.absorb(payload)
            merger.progress(spans[number][1] - spans[number][0])
        _settle_used_bits(merger, join)
        return join
    finally:
        for pid, read_end in workers:  # only on an error: stop what is still running
            if pid:
                os.close(read_end)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
        shutil.rmtree(folder, ignore_errors=True)


def _worker(
    merger: _Merger,
    ranges: tuple[list[int], list[int], list[int]] | None,
    options: _Options,
    span: tuple[int, int, int],
    folder: Path,
    write_end: int,
) -> None:
    """Join one span in a forked child; report through the pipe; never return."""
    status = 0
    try:
        folder.mkdir()
        merger.progress = lambda _n: None  # the parent's progress bar is not ours to draw
        join = _Join(merger, ranges, options)
        join.problems = _Problems()  # the parent already holds pass 1's problems
        join.span = span
        results, retry = _PartFile(folder / "results"), _PartFile(folder / "retry")
        join.run(results, retry, header=False)
        results.file.close()
        retry.file.close()
        payload = pickle.dumps(join.partial())
    except BaseException as exc:  # report anything, the parent decides
        payload = pickle.dumps({"error": f"{type(exc).__name__}: {exc}"})
        status = 1
    try:
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(payload)
    finally:
        os._exit(status)


def _append_file(writer: AtomicWriter, path: Path) -> None:
    """Copy a part file into the writer through one reused buffer (3x faster than reading
    fresh bytes objects: no page faults on new memory)."""
    buffer = bytearray(1 << 20)
    with open(path, "rb", buffering=0) as part:
        while size := part.readinto(buffer):
            writer.write_raw(buffer if size == len(buffer) else bytes(buffer[:size]))  # type: ignore[arg-type]


def _settle_used_bits(merger: _Merger, join: _Join) -> None:
    """Workers cannot set the used bit in the parent's index; their counts and hash sums
    prove that every output line was claimed. When they do not add up (unknown custom_ids,
    or one custom_id in two parts of the input), one quick pass over the input's custom_ids
    sets the bits and finds duplicates exactly."""
    expected = claimed = 0
    for cid, packed in merger.index.entries.items():
        if (packed >> _FILE_SHIFT) & _FIELD16:
            expected += 1
            claimed += hash(cid)
    if (expected, claimed) == (join.first_uses, join.first_use_hash):
        join.all_outputs_used = True
        return
    problems = join.problems
    problems.counts["duplicate_input"] = 0
    problems.examples = [p for p in problems.examples if p.kind != "duplicate_input"]
    entries = merger.index.entries
    for cid, packed in entries.items():
        if packed & _USED:  # set by the first span, joined in this process
            entries[cid] = packed & ~_USED
    assert merger.plan.source is not None
    for number, _raw, cid, _shard, source in _iter_requests(merger.plan.source, None, _Problems()):
        packed = entries.get(cid)
        if packed is None or not (packed >> _FILE_SHIFT) & _FIELD16:
            continue
        if packed & _USED:
            problems.add(
                "duplicate_input",
                "custom_id appears more than once in the input; every copy gets the same result",
                custom_id=cid,
                where=f"{source}:{number}",
            )
        else:
            entries[cid] = packed | _USED


def _request_model(request: Any) -> str | None:
    body = request.get("body") if isinstance(request, dict) else None
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


def _add_usage(total: Usage, usage: dict[str, Any]) -> None:
    """Add a usage block (chat or Responses shape) to ``total``; called once per success."""
    prompt = usage.get("prompt_tokens")
    if prompt is not None:
        completion = usage.get("completion_tokens")
        prompt_details = usage.get("prompt_tokens_details")
        completion_details = usage.get("completion_tokens_details")
    else:
        prompt = usage.get("input_tokens")
        completion = usage.get("output_tokens")
        prompt_details = usage.get("input_tokens_details")
        completion_details = usage.get("output_tokens_details")
    if prompt.__class__ is int:
        total.prompt_tokens += prompt
    if completion.__class__ is int:
        total.completion_tokens += completion
    if prompt_details.__class__ is dict:
        cached = prompt_details.get("cached_tokens")
        if cached.__class__ is int:
            total.cached_tokens += cached
    if completion_details.__class__ is dict:
        reasoning = completion_details.get("reasoning_tokens")
        if reasoning.__class__ is int:
            total.reasoning_tokens += reasoning


_CSV_COLUMNS = (
    "custom_id",
    "status",
    "status_code",
    "error_code",
    "error_message",
    "output",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "reasoning_tokens",
)


# --- prices and token estimates (other modules; imported lazily) -------------------------


def _token_counter(deployment_map: dict[str, str]) -> Any:
    from .tokens import TokenCounter

    return TokenCounter(deployment_map)


def _count_input(counter: Any, request: dict[str, Any]) -> int:
    try:
        return int(counter.count_line(request).input_tokens)
    except JsonlBatchError:
        return 0


def _price(
    tallies: dict[tuple[int | None, str | None], _Tally],
    total: GroupSummary,
    groups: list[GroupSummary],
    pricing: _Pricing,
    warnings: list[str],
) -> None:
    """Sum usage per group and price it once per model (prices are linear in tokens).

    A model with no price is left out of the cost totals, named in ``unpriced_models`` and
    in a warning; it never fails the merge.
    """
    from .pricing import PriceTable

    summaries = [total, *groups]
    if pricing.estimate:
        for summary in summaries:
            summary.cost.estimated_input_usd = 0.0
            summary.cost.estimated_input_tokens = 0
    if not tallies:
        return
    prices = pricing.prices
    table = prices if isinstance(prices, PriceTable) else PriceTable.load(prices)
    unpriced: set[str] = set()
    for (shard, model), tally in tallies.items():
        targets = [total] + ([groups[shard]] if shard is not None and groups else [])
        for summary in targets:
            summary.usage.add(tally.usage)
        try:
            price = table.lookup(model or "", region=pricing.region, target=pricing.target)
        except JsonlBatchError:
            name = model or "(no model)"
            unpriced.add(name)
            for summary in targets:
                summary.cost.unpriced_models = sorted({*summary.cost.unpriced_models, name})
            continue
        usage = tally.usage
        actual_input = price.cost(usage.prompt_tokens, 0, usage.cached_tokens, batch=True)
        actual = price.cost(
            usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, batch=True
        )
        estimated = price.cost(tally.estimated_input_tokens, 0, batch=True)
        for summary in targets:
            cost = summary.cost
            cost.actual_usd = (cost.actual_usd or 0.0) + actual
            cost.actual_input_usd = (cost.actual_input_usd or 0.0) + actual_input
            if cost.estimated_input_tokens is not None and cost.estimated_input_usd is not None:
                cost.estimated_input_tokens += tally.estimated_input_tokens
                cost.estimated_input_usd += estimated
    for name in sorted(unpriced):
        warnings.append(f"no batch price for model {name}: its cost is left out of the totals")


__all__ = [
    "CANCELLED",
    "EXPIRED",
    "FAILED",
    "MISSING",
    "RESULTS_FORMATS",
    "STATUSES",
    "SUCCEEDED",
    "Cost",
    "ErrorStat",
    "GroupSummary",
    "MergePlan",
    "MergeResult",
    "Outcome",
    "Problem",
    "ShardRef",
    "Usage",
    "classify",
    "embedding_of",
    "merge",
    "plan_merge",
    "read_job",
    "read_manifest",
    "retry_selector",
    "text_of",
    "usage_of",
]
