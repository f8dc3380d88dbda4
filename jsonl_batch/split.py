"""Split a batch input file into shards the service accepts, plus a manifest that lists them.

Why: a service takes one model (Azure: one deployment) and one ``url`` per file, a capped
number of requests and bytes per file, and a capped number of enqueued input tokens per
model. ``split`` cuts a file along those lines in one streaming pass, validating it on the
way, and records what it wrote in ``<stem>.manifest.json`` for ``submit`` and ``merge``.

Guarantees:

* Lines are copied byte for byte (BOM, CRLF and a missing final newline included), in input
  order within each shard; concatenating the shards of one (model, url) group in manifest
  order gives that group's lines of the input exactly. Blank lines are not requests: they are
  dropped and counted in the manifest.
* Every shard holds at least one request and stays within every limit (requests, bytes,
  estimated input tokens, and embedding inputs where the target caps them); shards are
  filled greedily, so a shard is closed only when the group's next line would not fit.
* All or nothing: shards and the manifest are written into a hidden staging folder inside
  the output folder and published as one set (:mod:`jsonl_batch.publish`) when the whole
  input has been read: a reader sees the old shards and manifest or the new ones, even
  after a kill between two renames. An error or Ctrl-C removes the staging folder.
* Memory: one open shard file (with a 1 MB buffer) per (model, url) group, so memory and
  open files grow with the number of models and urls, never with the file size, plus a few
  1 MiB blocks read or waiting to be written; the validator adds one entry per distinct
  ``custom_id``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import math
import operator
import os
import queue
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
import orjson

from .errors import ConfigError, InputError, SplitError, storage_error
from .formats import naming
from .formats.manifest import (
    Manifest,
    ShardInfo,
    SourceInfo,
    SplitLimits,
    ValidationSummary,
    read_manifest,
    write_manifest,
)
from .jsonl import (
    BLANK,
    DEFAULT_MAX_LINE_BYTES,
    LINE_TOO_LONG,
    Line,
    ReadError,
    finish_line,
    is_regular_file,
    iter_raw_lines,
    open_binary,
    read_lines,
)
from .profiles import Profile, as_profile
from .publish import FileSet, sha256_file
from .validate import ValidationReport, Validator

PROGRESS_EVERY_BYTES = 1 << 20
_BLOCK_BYTES = 1 << 20  # read at a time by the block router
_BUFFERS = 3  # blocks read or waiting to be hashed, at most
_HASH_QUEUE = 4  # buffers (or slices of blocks) waiting to be hashed, at most
_HASH_READ_BYTES = 1 << 20  # the source is read this much at a time to hash it
_FLUSH_BYTES = 1 << 20
# Findings a split itself cures: file-level limits and mixed url / model in one file.
FIXED_BY_SPLIT = frozenset(
    {
        "too_many_tasks",
        "file_too_large",
        "too_many_embedding_inputs",
        "url_mismatch",
        "model_mismatch",
    }
)

ProgressCallback = Callable[[int], None]


@dataclass(slots=True)
class SplitResult:
    """What :func:`split_file` wrote: the manifest, where it is, and what validation found."""

    manifest: Manifest
    manifest_path: Path
    report: ValidationReport | None
    """The validation pass's findings (None with ``validate=False``); not saved."""
    reused: bool = False
    """True when the same split was already in ``out_dir`` (same input bytes, target and
    limits): nothing was written."""


# --- limits -------------------------------------------------------------------------------


def resolve_limits(
    profile: Profile,
    *,
    max_requests: int | None = None,
    max_bytes: int | None = None,
    max_tokens: int | None = None,
    token_margin: float = 0.0,
    by_model: bool = True,
) -> SplitLimits:
    """The limits a split uses: the user's, else the target profile's."""
    requests = profile.max_requests if max_requests is None else max_requests
    size = profile.max_bytes if max_bytes is None else max_bytes
    if requests is None or size is None:
        raise ConfigError(
            f"target {profile.name!r} has no per-file limit to split under",
            hint="give the shard size: max_requests=N and max_bytes=SIZE",
        )
    if requests < 1:
        raise ConfigError(f"max requests per shard must be at least 1, not {requests}")
    if size < 1:
        raise ConfigError(f"max bytes per shard must be at least 1, not {size}")
    if not 0 <= token_margin < 1000 or math.isnan(token_margin):
        raise ConfigError(
            f"token margin must be a percentage from 0 to 1000, not {token_margin}",
            hint="e.g. token_margin=10 keeps 10% headroom under max_tokens",
        )
    if not by_model:
        raise ConfigError(
            f"target {profile.name!r} takes one model per file; shards are always split by model",
            hint="pass by_model=True",
        )
    budget = None
    if max_tokens is not None:
        if max_tokens < 1:
            raise ConfigError(f"max tokens per shard must be at least 1, not {max_tokens}")
        budget = math.floor(max_tokens / (1 + token_margin / 100))
        if budget < 1:
            raise ConfigError(
                f"max_tokens={max_tokens} with a {token_margin}% margin leaves no room",
                hint="raise max_tokens or lower token_margin",
            )
    return SplitLimits(
        max_requests=requests,
        max_bytes=size,
        max_tokens=max_tokens,
        token_margin=token_margin,
        by_model=True,
        token_budget=budget,
        max_embedding_inputs=profile.max_embedding_inputs,
    )


# --- the split ----------------------------------------------------------------------------


class SplitRefused(SplitError):
    """The input has errors and ``force`` was not given: nothing was written."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(
            f"{report.file}: {report.errors} error(s); not split, nothing written",
            hint="fix the errors (in the report) or pass force=True to split anyway",
        )
        self.report = report


@dataclass(slots=True)
class _Shard:
    """A shard being written (or written) to the staging folder."""

    part: int
    staging_path: Path
    file: BinaryIO | None
    hasher: Any = field(default_factory=hashlib.sha256)
    buffer: bytearray = field(default_factory=bytearray)
    requests: int = 0
    bytes: int = 0
    tokens: int = 0
    inputs: int = 0
    first_custom_id: str = ""
    last_custom_id: str = ""
    first_line: int = 0
    last_line: int = 0
    sha256: str = ""


@dataclass(slots=True)
class _Group:
    """All shards of one (model, url); only the last one is open."""

    number: int
    model: str
    url: str
    shards: list[_Shard] = field(default_factory=list)
    label: str = ""


class _Background:
    """``work(item)`` for each item given, in order, on a thread of its own.

    Why: hashing every shard byte costs the main loop as much as parsing its lines, and
    syncing every shard when the set is published as much as writing them; ``hashlib`` and
    ``fsync`` let go of the GIL, so on a second core they run alongside the main loop. With
    a ``limit`` at most that many items wait (memory stays bounded when the work falls
    behind). The first OSError is kept in ``error`` and the items after it are skipped: the
    owner raises it before the set is published, so an error the kernel reports once (a
    failed fsync) is not lost. With ``inline`` the work is done at once, on the caller's
    thread: where the main loop is bound by something slower (counting tokens), a second
    thread only adds hand-offs of the GIL.
    """

    def __init__(
        self, work: Callable[[Any], object], name: str, limit: int = 0, *, inline: bool = False
    ) -> None:
        self._work = work
        self._name = name
        self._inline = inline
        self._queue: queue.Queue[Any] = queue.Queue(limit)
        self._thread: threading.Thread | None = None
        self.error: OSError | None = None

    def put(self, item: Any) -> None:
        """``work(item)`` soon; ``item`` must not change afterwards."""
        if self._inline:
            if self.error is None:
                try:
                    self._work(item)
                except OSError as exc:
                    self.error = exc
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        self._queue.put(item)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self.error is None:
                try:
                    self._work(item)
                except OSError as exc:
                    self.error = exc

    def stop(self) -> None:
        """Wait until every item given is done; the next one starts a new thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None


def _call(task: tuple[Callable[[Any], object], Any]) -> None:
    work, data = task
    work(data)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _ShardSet:
    """The staging folder and every group's shards in it."""

    def __init__(self, out_dir: Path, stem: str, limits: SplitLimits) -> None:
        threads = limits.token_budget is None  # counting tokens bounds the loop: no threads
        self.out_dir = out_dir
        self.limits = limits
        self.files = FileSet(out_dir, naming.split_set(stem))
        self.staging = self.files.staging
        self.groups: dict[tuple[str, str], _Group] = {}
        self.open_shards: dict[tuple[str, str], _Shard] = {}
        self.max_requests = limits.max_requests
        self.max_bytes = limits.max_bytes
        self.token_budget = limits.token_budget
        self.max_inputs = limits.max_embedding_inputs or 0
        self.hashing = _Background(_call, "split-sha256", _HASH_QUEUE, inline=not threads)
        # one path per full shard
        self.syncing = _Background(_fsync_path, "split-fsync", inline=not threads)

    def add(
        self,
        raw: bytes,
        number: int,
        model: str,
        url: str,
        custom_id: str,
        tokens: int,
        inputs: int,
    ) -> None:
        """Append one request line to its group's open shard, opening a new one when full."""
        shard = self.open_shards.get((model, url))
        size = len(raw)
        if (
            shard is None
            or shard.requests >= self.max_requests
            or shard.bytes + size > self.max_bytes
            or (self.token_budget is not None and shard.tokens + tokens > self.token_budget)
            or (inputs and shard.inputs + inputs > self.max_inputs)
        ):
            shard = self._next_shard(model, url, shard)
            shard.first_custom_id = custom_id
            shard.first_line = number
        shard.requests += 1
        shard.bytes += size
        shard.tokens += tokens
        shard.inputs += inputs
        shard.last_custom_id = custom_id
        shard.last_line = number
        self.append(shard, raw)

    def add_if_fits(self, raw: bytes, number: int, model: str, url: str, custom_id: str) -> bool:
        """:meth:`add` for a line (no tokens, no embedding inputs) that fits its group's open
        shard; False (nothing done) when it does not: then :meth:`add` decides. The hot path
        of a validating split: :meth:`append` is written out here to save a call per line."""
        shard = self.open_shards.get((model, url))
        size = len(raw)
        if (
            shard is None
            or shard.requests >= self.max_requests
            or shard.bytes + size > self.max_bytes
        ):
            return False
        shard.requests += 1
        shard.bytes += size
        shard.last_custom_id = custom_id
        shard.last_line = number
        buffer = shard.buffer
        buffer += raw
        if len(buffer) >= _FLUSH_BYTES:
            self._flush(shard)
        return True

    def add_lines(
        self,
        keys: list[tuple[str, str]],
        lines: Sequence[bytes | memoryview],
        sizes: list[int],
        custom_id: Callable[[int], str],
        number: int,
        whole: memoryview,
    ) -> None:
        """:meth:`add` for consecutive request lines (line ``number + 1`` on; ``keys``: their
        (model, url); ``whole``: all of them, one after the other), each within the requests
        and bytes limits, with no Python work per line: shards are cut by ``bisect`` and
        written a run of lines at a time."""
        groups = list(dict.fromkeys(keys))  # in order of first line
        if len(groups) == 1:
            self._add_run(groups[0], range(len(lines)), whole, lines, sizes, custom_id, number)
            return
        # each group's lines, in file order (a stable sort by group)
        group_of = {key: index for index, key in enumerate(groups)}
        of_line = list(map(group_of.__getitem__, keys))
        order = sorted(range(len(lines)), key=of_line.__getitem__)
        first = 0
        for index, key in enumerate(groups):
            last = first + of_line.count(index)
            self._add_run(key, order[first:last], None, lines, sizes, custom_id, number)
            first = last

    def _add_run(
        self,
        key: tuple[str, str],
        members: range | list[int],
        whole: memoryview | None,
        lines: Sequence[bytes | memoryview],
        sizes: list[int],
        custom_id: Callable[[int], str],
        number: int,
    ) -> None:
        """One group's lines (``members``, in file order; ``whole``: all the lines, when all
        are this group's) added to its shards."""
        max_requests = self.max_requests
        max_bytes = self.max_bytes
        cum = list(accumulate(map(sizes.__getitem__, members)))
        count = len(cum)
        shard = self.open_shards.get(key)
        pos = 0
        base = 0  # cum before ``pos``
        while pos < count:
            if (
                shard is None
                or shard.requests >= max_requests
                or shard.bytes + cum[pos] - base > max_bytes
            ):
                shard = self._next_shard(key[0], key[1], shard)
                shard.first_custom_id = custom_id(members[pos])
                shard.first_line = number + members[pos] + 1
            end = min(
                count,
                pos + max_requests - shard.requests,
                bisect_right(cum, base + max_bytes - shard.bytes, pos),
            )
            shard.requests += end - pos
            shard.bytes += cum[end - 1] - base
            last = members[end - 1]
            shard.last_custom_id = custom_id(last)
            shard.last_line = number + last + 1
            if whole is not None:  # one slice of the block
                self.write(shard, whole[base : cum[end - 1]])
            else:
                self.append(shard, b"".join(map(lines.__getitem__, members[pos:end])))
            base = cum[end - 1]
            pos = end

    def write(self, shard: _Shard, data: bytes | memoryview) -> None:
        """Write whole lines to an open shard now (the caller has counted them); ``data``
        must not change until the hashing thread is done with it."""
        if shard.buffer:
            self._flush(shard)
        self._write(shard, data)

    def append(self, shard: _Shard, data: bytes) -> None:
        """Add whole lines to an open shard (the caller has counted them), written a MiB at
        a time."""
        buffer = shard.buffer
        buffer += data
        if len(buffer) >= _FLUSH_BYTES:
            self._flush(shard)

    def _next_shard(self, model: str, url: str, full: _Shard | None) -> _Shard:
        if full is not None:
            self._close(full)
            self.syncing.put(full.staging_path)  # the publish's fsync of it is then cheap
        group = self.groups.get((model, url))
        if group is None:
            group = self.groups[(model, url)] = _Group(len(self.groups) + 1, model, url)
        shard = self._open(group)
        self.open_shards[(model, url)] = shard
        return shard

    def _open(self, group: _Group) -> _Shard:
        part = len(group.shards) + 1
        path = self.staging / f"{group.number:05d}.{part:06d}.jsonl"
        # A plain file: the staging folder is the temporary area, published at the end.
        try:
            file = open(path, "xb")  # noqa: SIM115 - closed in _close or discard
        except OSError as exc:
            raise storage_error(exc, self.out_dir, "write a shard") from None
        shard = _Shard(part, path, file)
        group.shards.append(shard)
        return shard

    def _flush(self, shard: _Shard) -> None:
        self._write(shard, shard.buffer)
        shard.buffer = bytearray()  # the old one is the hashing thread's now

    def _write(self, shard: _Shard, data: bytes | bytearray | memoryview) -> None:
        # Written here, hashed on a thread: a write lets go of the GIL, so the hashing
        # thread gets it then (a second thread that writes would wait for a busy main loop
        # to let go of it, up to the 5 ms switch interval, several times a write).
        assert shard.file is not None
        try:
            shard.file.write(data)
        except OSError as exc:
            raise storage_error(exc, self.out_dir, "write a shard") from None
        self.hashing.put((shard.hasher.update, data))

    def _close(self, shard: _Shard) -> None:
        if shard.buffer:
            self._flush(shard)
        assert shard.file is not None
        try:
            shard.file.close()  # fsync'd when the set is published
        except OSError as exc:
            raise storage_error(exc, self.out_dir, "write a shard") from None
        shard.file = None

    def close_all(self) -> None:
        for group in self.groups.values():
            last = group.shards[-1]
            if last.file is not None:
                self._close(last)
        self.hashing.stop()
        self.syncing.stop()
        if self.syncing.error is not None:
            raise storage_error(self.syncing.error, self.out_dir, "write a shard") from None
        for group in self.groups.values():
            for shard in group.shards:
                shard.sha256 = shard.hasher.hexdigest()

    def discard(self) -> None:
        """Drop every shard written so far (the staging folder and all in it)."""
        self.hashing.stop()
        self.syncing.stop()
        for group in self.groups.values():
            for shard in group.shards:
                if shard.file is not None:
                    with contextlib.suppress(OSError):
                        shard.file.close()
                    shard.file = None
        self.files.discard()


def _assign_labels(groups: list[_Group]) -> None:
    """File-name labels: the safe model name, plus the endpoint (or a hash) when needed.

    Decided after the whole file is read, so the names depend only on the set of groups:
    a model sent to two urls gets ``<model>.<endpoint>`` labels, and two models that look
    alike once made safe (``a/b`` and ``a:b``) get a short hash of their real name.
    """
    by_label: dict[str, list[_Group]] = {}
    for group in groups:
        by_label.setdefault(naming.safe_label(group.model), []).append(group)
    for label, members in by_label.items():
        if len(members) == 1:
            members[0].label = label
            continue
        for group in members:
            endpoint = naming.safe_label(group.url) if group.url.strip("/") else "no-url"
            group.label = f"{label}.{endpoint}"
        seen: dict[str, int] = {}
        for group in members:
            seen[group.label] = seen.get(group.label, 0) + 1
        for group in members:
            if seen[group.label] > 1:
                digest = hashlib.sha256(f"{group.model}\n{group.url}".encode()).hexdigest()
                group.label = f"{group.label}-{digest[:8]}"


def _route(obj: Any) -> tuple[str, str, str]:
    """(model, url, custom_id) of a parsed line; "" for what is missing or not a string."""
    if type(obj) is not dict:
        return "", "", ""
    body = obj.get("body")
    model = body.get("model") if type(body) is dict else None
    url = obj.get("url")
    custom_id = obj.get("custom_id")
    return (
        model if type(model) is str else "",
        url if type(url) is str else "",
        custom_id if type(custom_id) is str else "",
    )


def _embedding_inputs(obj: Any) -> int:
    """How many inputs an embeddings request sends (a list of strings or of token lists)."""
    body = obj.get("body") if isinstance(obj, dict) else None  # None: a line orjson refuses
    inputs = body.get("input") if isinstance(body, dict) else None
    if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int):
        return len(inputs)
    return 1


def _relative_or_absolute(path: Path, base: Path) -> str:
    path, base = path.resolve(), base.resolve()
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def split_file(
    path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    target: Profile | str = "azure",
    max_requests: int | None = None,
    max_bytes: int | None = None,
    max_tokens: int | None = None,
    token_margin: float = 0.0,
    by_model: bool = True,
    validate: bool = True,
    force: bool = False,
    overwrite: bool = False,
    max_errors: int | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    deployment_map: Mapping[str, str] | None = None,
    on_progress: ProgressCallback | None = None,
) -> SplitResult:
    """Split ``path`` into shards in ``out_dir``; returns the manifest and the findings.

    Limits default to the target profile's. Raises :class:`SplitRefused` (carrying the
    report) when the input has errors and ``force`` is false, :class:`SplitError` when one
    request alone exceeds a limit, and :class:`InputError` when the manifest exists and
    ``overwrite`` is false. On any error nothing is left in ``out_dir``.
    """
    profile = as_profile(target)
    limits = resolve_limits(
        profile,
        max_requests=max_requests,
        max_bytes=max_bytes,
        max_tokens=max_tokens,
        token_margin=token_margin,
        by_model=by_model,
    )
    source = Path(path)
    out = Path(out_dir)
    stem = naming.stem(source)
    manifest_path = naming.manifest_path(source, out)
    if not source.exists():
        raise InputError(f"{source}: no such file", hint="check the path")
    if source.is_dir():
        raise InputError(f"{source}: is a directory, not a JSONL file")
    counter = None
    if limits.token_budget is not None:
        from .tokens import TokenCounter

        counter = TokenCounter(deployment_map)

    validator = (
        Validator(str(source), profile, max_errors=max_errors, ignore_codes=FIXED_BY_SPLIT)
        if validate
        else None
    )
    shard_set = _ShardSet(out, stem, limits)  # finishes an earlier, interrupted publish
    try:
        if manifest_path.exists() and not overwrite:
            same = _same_split(manifest_path, source, profile, limits)
            if same is not None:  # run again after it finished (or was killed committing)
                shard_set.discard()
                return SplitResult(same, manifest_path, None, reused=True)
            raise InputError(
                f"{manifest_path}: already exists (a previous split of {source.name})",
                hint="pass overwrite=True to replace it and its shards, or choose another out_dir",
            )
        old_shards = _old_shard_names(manifest_path) if overwrite else []
        source_info = _stream(
            source,
            shard_set,
            profile,
            limits,
            validator,
            counter,
            force,
            max_line_bytes,
            on_progress,
        )
        report = validator.finish() if validator is not None else None
        if report is not None and not report.ok and not force:
            raise SplitRefused(report)
        if source_info.requests == 0:
            raise SplitError(
                f"{source}: no requests to split (the file is empty or blank)",
                hint="check that you passed the right file",
            )
        shard_set.close_all()
        manifest = _build_manifest(
            source, manifest_path, source_info, profile, limits, shard_set, report, force
        )
        _publish(shard_set, manifest, manifest_path, source, overwrite, old_shards)
    except BaseException:
        shard_set.discard()
        raise
    return SplitResult(manifest, manifest_path, report)


def _stream(
    source: Path,
    shard_set: _ShardSet,
    profile: Profile,
    limits: SplitLimits,
    validator: Validator | None,
    counter: Any,
    force: bool,
    max_line_bytes: int,
    on_progress: ProgressCallback | None,
) -> SourceInfo:
    """The one pass: hash, validate, count tokens and route each line to its shard; a clean
    line the validator takes quickly is routed straight from the reader (no :class:`Line`
    made for it)."""
    source_hash = hashlib.sha256()
    hash_line = source_hash.update
    file_hash = None
    block_routed = validator is None and counter is None and _block_readable(source)
    if counter is None and _block_readable(source):  # hashed on a thread, not per line
        file_hash = _FileHash(source)
        hash_line = _hashed_elsewhere
    tally = _Tally()
    writing = True
    max_bytes = limits.max_bytes
    budget = limits.token_budget
    max_inputs = limits.max_embedding_inputs
    embedding_urls = {url for url, endpoint in profile.urls.items() if endpoint == "embeddings"}
    add = shard_set.add
    add_if_fits = shard_set.add_if_fits
    lean = counter is None  # no tokens to count per line
    slow_urls = embedding_urls if max_inputs is not None else set()  # inputs counted per line

    def take(number: int, raw: bytes, obj: Any, size: int, route: tuple[str, str, str]) -> None:
        """Count one request line and, while writing, add it to its shard."""
        hash_line(raw)
        tally.total += size
        tally.requests += 1
        if on_progress is not None:
            tally.unreported += size
            if tally.unreported >= PROGRESS_EVERY_BYTES:
                on_progress(tally.unreported)
                tally.unreported = 0
        if not writing:
            return
        if size != len(raw):
            raise SplitError(
                f"{source}:{number}: this line is {size:,} bytes, longer than the"
                f" {max_line_bytes:,} bytes read per line ({LINE_TOO_LONG}); it cannot be copied",
                hint="raise max_line_bytes, or remove the line",
            )
        model, url, custom_id = route
        if size > max_bytes:
            raise SplitError(
                f"{source}:{number}: this request alone is {size:,} bytes, more than "
                f"the {max_bytes:,} bytes allowed per shard",
                hint="raise max_bytes or shorten the request",
            )
        tokens = 0
        if counter is not None and type(obj) is dict:
            tokens = counter.count_line(obj).input_tokens
            if budget is not None and tokens > budget:
                raise SplitError(
                    f"{source}:{number}: this request alone has about {tokens:,} input "
                    f"tokens, more than the {budget:,} allowed per shard"
                    + (
                        f" (max_tokens less {limits.token_margin:g}%)"
                        if limits.token_margin
                        else ""
                    ),
                    hint="raise max_tokens, lower token_margin or shorten the request",
                )
        inputs = 0
        if max_inputs is not None and embedding_urls and url in embedding_urls:
            inputs = _embedding_inputs(obj)
            if inputs > max_inputs:
                raise SplitError(
                    f"{source}:{number}: this request alone has {inputs:,} embedding inputs, "
                    f"more than the {max_inputs:,} allowed per batch",
                    hint="split the input list over several requests",
                )
        add(raw, number, model, url, custom_id, tokens, inputs)

    def skip_blank(raw: bytes) -> None:
        hash_line(raw)
        size = len(raw)
        tally.total += size
        tally.blank += 1
        if on_progress is not None:
            tally.unreported += size

    try:
        if validator is not None:
            accepts = validator.accepts_parsed

            def fast(number: int, raw: bytes, obj: Any) -> bool:
                if not accepts(number, raw, obj):
                    return False
                url: str = validator.report.url  # type: ignore[assignment]
                # a line the quick path took has the first good line's url
                model, custom_id = obj["body"]["model"], obj["custom_id"]
                if (
                    lean
                    and writing
                    and url not in slow_urls
                    and add_if_fits(raw, number, model, url, custom_id)
                ):  # ``take`` for a line that fits its open shard
                    hash_line(raw)
                    size = len(raw)
                    tally.total += size
                    tally.requests += 1
                    if on_progress is not None:
                        tally.unreported += size
                        if tally.unreported >= PROGRESS_EVERY_BYTES:
                            on_progress(tally.unreported)
                            tally.unreported = 0
                    return True
                take(number, raw, obj, len(raw), (model, url, custom_id))
                return True

            for line in read_lines(source, max_line_bytes=max_line_bytes, fast=fast):
                validator.check(line)
                if writing and validator.error_count and not force:
                    writing = False  # keep validating for the full report; write nothing
                    shard_set.discard()
                if not writing and validator.stopped:
                    validator.report.truncated = True
                    break
                if BLANK in line.notices:
                    skip_blank(line.raw)
                else:
                    take(line.number, line.raw, line.obj, line.size, _route(line.obj))
        elif block_routed:
            router = _BlockRouter(shard_set, tally, take, skip_blank, on_progress)
            router.slow_urls = slow_urls
            router.route(source, max_line_bytes)
        else:
            _read_for_routing(source, max_line_bytes, take, skip_blank)
    except BaseException:
        if file_hash is not None:
            file_hash.cancel()
        raise
    if on_progress is not None and tally.unreported:
        on_progress(tally.unreported)
    if file_hash is None:
        sha256 = source_hash.hexdigest()
    else:  # every byte was read when writing: a file that changed meanwhile is refused
        sha256 = file_hash.result(source, tally.total if writing else None)
    return SourceInfo(
        path=str(source),
        sha256=sha256,
        bytes=tally.total,
        requests=tally.requests,
        blank_lines=tally.blank,
    )


@dataclass(slots=True)
class _Tally:
    """What the pass has counted so far (shared by the per-line and the block routes)."""

    total: int = 0
    requests: int = 0
    blank: int = 0
    unreported: int = 0

    def count_lines(
        self, sizes: list[int], total: int, on_progress: ProgressCallback | None
    ) -> None:
        """Count request lines (``total``: the sum of ``sizes``); progress is reported as
        ``take`` does line by line: when a line brings the unreported bytes to a MiB."""
        self.total += total
        self.requests += len(sizes)
        if on_progress is None:
            return
        ends = list(accumulate(sizes))
        unreported = self.unreported
        done = 0
        while (found := bisect_left(ends, PROGRESS_EVERY_BYTES - unreported + done)) < len(ends):
            on_progress(unreported + ends[found] - done)
            unreported = 0
            done = ends[found]
        self.unreported = unreported + total - done


def _hashed_elsewhere(raw: Any) -> None:
    """Per-line hashing turned off: :class:`_FileHash` hashes the source."""


class _FileHash:
    """The sha256 of a plain file, read a second time in big blocks on a thread of its own.

    Why: hashing each line as it is read costs the main loop as much as routing it; the
    manifest's hash is of every byte of the file (a split that skips or drops a line fails),
    so a second read gives the same digest, with ``hashlib`` and the reads off the GIL.
    """

    def __init__(self, path: Path) -> None:
        self._hasher = hashlib.sha256()
        self._bytes = 0
        self._error: OSError | None = None
        self._cancelled = False
        self._thread = threading.Thread(
            target=self._run, args=(path,), name="split-source-sha256", daemon=True
        )
        self._thread.start()

    def _run(self, path: Path) -> None:
        try:
            block = bytearray(_HASH_READ_BYTES)  # one buffer, read into: no allocation per read
            view = memoryview(block)
            with open(path, "rb", buffering=0) as stream:
                while not self._cancelled and (size := stream.readinto(block)):
                    self._hasher.update(view[:size])
                    self._bytes += size
        except OSError as exc:
            self._error = exc

    def cancel(self) -> None:
        self._cancelled = True

    def result(self, source: Path, expected_bytes: int | None) -> str:
        """The hex digest, once the file is read; ``expected_bytes``: what the pass read."""
        self._thread.join()
        if self._error is not None:
            raise storage_error(self._error, source, "read it") from None
        if expected_bytes is not None and expected_bytes != self._bytes:
            raise InputError(
                f"{source}: changed while it was being split ({expected_bytes:,} bytes read,"
                f" now {self._bytes:,})",
                hint="split it again once nothing writes to it",
            )
        return self._hasher.hexdigest()


def _block_readable(source: Path) -> bool:
    """A plain, uncompressed regular file: read in big blocks, not a line at a time."""
    return not source.name.endswith(".gz") and is_regular_file(source)


class _RouteBody(msgspec.Struct, frozen=True, gc=False):
    model: str = ""


class _RouteLine(msgspec.Struct, gc=False):
    """What routing reads of a line: as :func:`_route` for a line whose three values are
    strings or missing; any other line is not read (the caller routes it the slow way)."""

    custom_id: str = ""
    url: str = ""
    body: _RouteBody = _RouteBody()


_decode_route = msgspec.json.Decoder(_RouteLine).decode
_route_key = operator.attrgetter("body.model", "url")


class _BlockRouter:
    """Routes a plain file read in big blocks (split with no validation, no token limit).

    Why: reading, parsing and adding a line at a time cost several times more than copying
    it. The whole lines of a block are read by ``msgspec`` (only ``body.model``, ``url`` and
    ``custom_id``) and added to their shards in runs (:meth:`_ShardSet.add_lines`,
    :meth:`_whole_lines`). A block with any unusual line (a blank, broken or non-object
    line, a line over a limit or the cap, not UTF-8, an embeddings line when inputs are
    capped), line 1 (a BOM), a line across two blocks and the last with no newline go
    through ``take`` / ``skip_blank`` as the line reader's lines do, so shards, manifest,
    errors and progress are the same (``tests/test_fast_path.py``).
    """

    def __init__(
        self,
        shard_set: _ShardSet,
        tally: _Tally,
        take: Callable[[int, bytes, Any, int, tuple[str, str, str]], None],
        skip_blank: Callable[[bytes], None],
        on_progress: ProgressCallback | None,
    ) -> None:
        self.shard_set = shard_set
        self.tally = tally
        self.take = take
        self.skip_blank = skip_blank
        self.on_progress = on_progress
        self.slow_urls: set[str] = set()
        self.number = 0

    def route(self, source: Path, max_line_bytes: int) -> None:
        """Route every line of ``source``, read into a few reused blocks (a new one per read
        costs page faults); a block is read into again once the hashing thread is done
        with the slices of it that went to shards."""
        free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(_BUFFERS):
            free.put(bytearray(_BLOCK_BYTES))
        release = self.shard_set.hashing.put
        head = b""  # the start of a line whose end is in a later block
        offset = 0  # where ``head`` starts in the file
        with open_binary(source) as stream:
            readinto: Callable[[bytearray], int] = stream.readinto  # type: ignore[attr-defined]
            try:
                while True:
                    block = free.get()
                    size = readinto(block)
                    if not size:
                        free.put(block)
                        break
                    start = 0
                    if head:
                        found = block.find(b"\n", 0, size)
                        if found < 0 and len(head) < _BLOCK_BYTES:
                            head += block[:size]
                            release((free.put, block))
                            continue
                        if found < 0:  # a long line: the rest read as the line reader does
                            line = finish_line(stream, head + block[:size], max_line_bytes)
                        else:
                            start = found + 1
                            line = head + block[:start]
                        head = b""
                        self._one(line, max_line_bytes)
                        offset += line if isinstance(line, int) else len(line)
                        if found < 0:
                            release((free.put, block))
                            continue
                    cut = block.rfind(b"\n", 0, size) + 1
                    if cut > start:
                        self._lines(block, start, cut, max_line_bytes)
                        offset += cut - start
                    else:
                        cut = start
                    head = bytes(block[cut:size])
                    release((free.put, block))
            except ReadError as exc:  # say on which line reading stopped
                raise InputError(
                    f"{source}:{self.number + 1}: cannot read past byte {offset}: {exc.reason}",
                    hint=exc.hint,
                ) from None
        if head:
            self._one(head, max_line_bytes)

    def _one(self, line: bytes | int, max_line_bytes: int) -> None:
        """A line read across two blocks (or the last one): the line-at-a-time route."""
        self.number += 1
        if isinstance(line, int) or len(line) > max_line_bytes:  # over the cap
            size = line if isinstance(line, int) else len(line)
            self.take(self.number, b"", None, size, ("", "", ""))
            return
        _route_line(self.number, line, self.take, self.skip_blank)

    def _lines(self, data: bytearray, start: int, cut: int, max_line_bytes: int) -> None:
        """Every line of ``data[start:cut]`` (whole lines): all at once when
        :meth:`_whole_lines` can, else one at a time (line 1, with its possible BOM, always)."""
        if not self.number:
            first = data.find(b"\n", start) + 1
            self._each_line(bytes(data[start:first]), 0, first - start, max_line_bytes)
            start = first
        if start < cut and not self._whole_lines(data, start, cut, max_line_bytes):
            self._each_line(bytes(data[start:cut]), 0, cut - start, max_line_bytes)

    def _whole_lines(self, data: bytearray, start: int, cut: int, max_line_bytes: int) -> bool:
        """Route the whole lines of ``data[start:cut]`` with one short Python step per line
        (find its end): each line is read by :data:`_decode_route`, grouped, measured, cut
        into shards and copied per group by C calls. False, with nothing done, when any line
        is unusual (not UTF-8, a value :class:`_RouteLine` does not read: a blank or broken
        line, two values on a line, a model that is not a string...; a line over a limit; an
        url counted per line): then :meth:`_each_line` routes them as the line reader does."""
        view = memoryview(data)
        if not data.isascii():  # msgspec does not check the strings it skips
            try:
                str(view[start:cut], "utf-8")
            except UnicodeDecodeError:
                return False
        lines: list[memoryview] = []
        add = lines.append
        find = data.find
        pos = start
        while pos < cut:
            end = find(b"\n", pos, cut) + 1
            add(view[pos:end])
            pos = end
        try:
            routes = list(map(_decode_route, lines))
        except msgspec.DecodeError:
            return False
        shard_set = self.shard_set
        sizes = list(map(len, lines))
        if cut - start > max_line_bytes or cut - start > shard_set.max_bytes:
            longest = max(sizes)
            if longest > max_line_bytes or longest > shard_set.max_bytes:
                return False
        keys = list(map(_route_key, routes))
        slow_urls = self.slow_urls
        if slow_urls and any(url in slow_urls for _model, url in set(keys)):
            return False
        number = self.number
        shard_set.add_lines(
            keys, lines, sizes, lambda line: routes[line].custom_id, number, view[start:cut]
        )
        self.tally.count_lines(sizes, cut - start, self.on_progress)
        self.number = number + len(lines)
        return True

    def _each_line(self, data: bytes, start: int, cut: int, max_line_bytes: int) -> None:
        """Every line of ``data[start:cut]`` (whole lines); a line for an open shard it fits
        in is added here, any other the line-at-a-time way."""
        shard_set = self.shard_set
        tally = self.tally
        on_progress = self.on_progress
        slow_urls = self.slow_urls
        take = self.take
        add_if_fits = shard_set.add_if_fits
        loads = orjson.loads
        find = data.find
        number = self.number
        total = requests = 0
        unreported = tally.unreported
        pos = start
        while pos < cut:
            end = find(b"\n", pos) + 1
            number += 1
            size = end - pos
            raw = data[pos:end]
            pos = end
            obj = None
            if number > 1 and size <= max_line_bytes:
                try:  # noqa: SIM105 - a with statement costs per line
                    obj = loads(raw)
                except orjson.JSONDecodeError:
                    pass
            if type(obj) is dict:  # ``_route``, inlined
                body = obj.get("body")
                model: Any = body.get("model") if type(body) is dict else None
                if type(model) is not str:
                    model = ""
                url: Any = obj.get("url")
                if type(url) is not str:
                    url = ""
                custom_id: Any = obj.get("custom_id")
                if type(custom_id) is not str:
                    custom_id = ""
                if (not slow_urls or url not in slow_urls) and add_if_fits(
                    raw, number, model, url, custom_id
                ):
                    total += size
                    requests += 1
                    if on_progress is not None:
                        unreported += size
                        if unreported >= PROGRESS_EVERY_BYTES:
                            on_progress(unreported)
                            unreported = 0
                    continue
            # any other line: the line-at-a-time way
            tally.total += total
            tally.requests += requests
            tally.unreported = unreported
            total = requests = 0
            self.number = number
            if type(obj) is dict:
                take(number, raw, obj, size, (model, url, custom_id))
            elif size > max_line_bytes:
                take(number, b"", None, size, ("", "", ""))
            else:
                _route_line(number, raw, take, self.skip_blank)
            unreported = tally.unreported
        tally.total += total
        tally.requests += requests
        tally.unreported = unreported
        self.number = number


def _read_for_routing(
    source: Path,
    max_line_bytes: int,
    take: Callable[[int, bytes, Any, int, tuple[str, str, str]], None],
    skip_blank: Callable[[bytes], None],
) -> None:
    """Without a validator: a lean loop that parses only what routing needs (``orjson``
    accepts the trailing newline, so no copy of the line is made); blank lines are the same
    as ``read_lines``'."""
    number = 0
    loads = orjson.loads
    with open_binary(source) as stream:
        lines = iter_raw_lines(stream, max_line_bytes)
        while True:
            try:
                raw = next(lines, None)
            except ReadError as exc:  # say on which line reading stopped
                raise InputError(
                    f"{source}:{number + 1}: cannot read past byte {exc.position}: {exc.reason}",
                    hint=exc.hint,
                ) from None
            if raw is None:
                return
            number += 1
            if isinstance(raw, int):
                take(number, b"", None, raw, ("", "", ""))
                continue
            try:
                obj = loads(raw)
            except orjson.JSONDecodeError:
                _route_line(number, raw, take, skip_blank)
                continue
            take(number, raw, obj, len(raw), _route(obj))


def _route_line(
    number: int,
    raw: bytes,
    take: Callable[[int, bytes, Any, int, tuple[str, str, str]], None],
    skip_blank: Callable[[bytes], None],
) -> None:
    """One line (not over the cap) parsed for routing: a blank one is skipped; a BOM on
    line 1 is not part of the JSON; a line that does not parse is routed with no model."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        if raw.isspace():
            skip_blank(raw)
            return
        content = Line(number, 0, raw).content
        if not content.strip():
            skip_blank(raw)
            return
        try:
            obj = orjson.loads(content)  # a BOM on line 1, or a bad line
        except orjson.JSONDecodeError:
            take(number, raw, None, len(raw), _read_route(content))
            return
    take(number, raw, obj, len(raw), _route(obj))


def _read_route(content: bytes) -> tuple[str, str, str]:
    """:func:`_route` of a line ``orjson`` refuses: read by :data:`_decode_route` when it is
    UTF-8, as the block router reads it. Why: a number too big for a double is refused by
    ``orjson`` but read by ``jiter`` (the validating split routes such a line by its model)
    and skipped by ``msgspec``; every other line ``orjson`` refuses, ``msgspec`` refuses
    too (``tests/test_fast_path.py``)."""
    try:
        content.decode()
        route = _decode_route(content)
    except (UnicodeDecodeError, msgspec.DecodeError):
        return "", "", ""
    return route.body.model, route.url, route.custom_id


def _build_manifest(
    source: Path,
    manifest_path: Path,
    source_info: SourceInfo,
    profile: Profile,
    limits: SplitLimits,
    shard_set: _ShardSet,
    report: ValidationReport | None,
    force: bool,
) -> Manifest:
    groups = list(shard_set.groups.values())
    _assign_labels(groups)
    stem = naming.stem(source)
    base = manifest_path.parent
    shards: list[ShardInfo] = []
    for group in groups:
        for shard in group.shards:
            shards.append(
                ShardInfo(
                    index=len(shards) + 1,
                    path=naming.shard_name(stem, group.label, shard.part),
                    model=group.model,
                    url=group.url,
                    requests=shard.requests,
                    bytes=shard.bytes,
                    input_tokens=shard.tokens if limits.token_budget is not None else None,
                    embedding_inputs=shard.inputs if shard.inputs else None,
                    sha256=shard.sha256,
                    first_custom_id=shard.first_custom_id,
                    last_custom_id=shard.last_custom_id,
                    first_line=shard.first_line,
                    last_line=shard.last_line,
                    part=shard.part,
                )
            )
    validation = ValidationSummary(checked=report is not None)
    if report is not None:
        validation = ValidationSummary(
            checked=True,
            errors=report.errors,
            warnings=report.warnings,
            forced=force and not report.ok,
            counts={code: n for code, (_sev, n) in report.counts_by_code().items()},
        )
    return Manifest(
        source=source_info.model_copy(update={"path": _relative_or_absolute(source, base)}),
        target=profile.name,
        limits=limits,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        shards=shards,
        validation=validation,
    ).located_in(base)


def _publish(
    shard_set: _ShardSet,
    manifest: Manifest,
    manifest_path: Path,
    source: Path,
    overwrite: bool,
    old_shards: list[str],
) -> None:
    """Publish every shard and the manifest (last) as one set; the old set's shards that the
    new one does not replace are removed with it."""
    files = shard_set.files
    staged = [shard.staging_path for group in shard_set.groups.values() for shard in group.shards]
    source_resolved = source.resolve()
    names = set()
    for path, info in zip(staged, manifest.shards, strict=True):
        final = manifest.shard_path(info)
        if final.resolve() == source_resolved:
            raise SplitError(
                f"{final}: a shard would replace the input file",
                hint="choose another out_dir",
            )
        if final.exists() and not overwrite:
            raise InputError(
                f"{final}: already exists", hint="pass overwrite=True or choose another out_dir"
            )
        files.publish(path.name, final.name)
        names.add(final.name)
    for name in old_shards:
        if name not in names:
            files.remove(name)
    staged_manifest = files.path(manifest_path.name)
    write_manifest(staged_manifest, manifest)
    manifest.located_in(manifest_path.parent)
    files.publish(staged_manifest.name)
    files.commit()


def _same_split(
    manifest_path: Path, source: Path, profile: Profile, limits: SplitLimits
) -> Manifest | None:
    """The existing manifest when it is this very split (same input bytes, target and
    limits) and its shards are all there; else None."""
    try:
        old = read_manifest(manifest_path)
    except InputError:
        return None
    if old.target != profile.name or old.limits != limits or not source.is_file():
        return None
    if old.source.bytes != source.stat().st_size or sha256_file(source) != old.source.sha256:
        return None
    if not all(old.shard_path(shard).is_file() for shard in old.shards):
        return None
    return old


def _old_shard_names(manifest_path: Path) -> list[str]:
    """Shards of the manifest about to be replaced, in its folder (removed with the publish)."""
    if not manifest_path.exists():
        return []
    try:
        old = read_manifest(manifest_path)
    except InputError:
        return []
    folder = manifest_path.parent.resolve()
    paths = [old.shard_path(shard).resolve() for shard in old.shards]
    return [path.name for path in paths if path.parent == folder]


__all__ = [
    "FIXED_BY_SPLIT",
    "SplitRefused",
    "SplitResult",
    "resolve_limits",
    "split_file",
]
