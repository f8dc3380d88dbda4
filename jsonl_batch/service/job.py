"""Crash-safe batch jobs: submit the shards of a request file, follow them, download results.

Every step is written to the job file before and after it talks to the service, so running
the same command again after a crash continues where it stopped. The two steps that create
something remote look for what a crashed run may already have created before creating it
again: an upload by its file name (the shard's content hash), a batch by its ``metadata``
(job id, shard, attempt). So a shard never gets a second batch.

Without a job file (lost, deleted, or a crash before the first save) a new job first
*reconciles* with the service: a batch whose metadata carries a shard's content hash
(``shard_sha256``), or an upload named after it, is taken over instead of created again
(:meth:`Job.reconcile`); :meth:`Job.recover` rebuilds a job file that way without creating
anything.

``JSONL_BATCH_CRASH_AFTER=<step>`` (or ``<step>:<shard index>``) makes the process exit on
the spot at that step; it exists only so tests can crash a real process between every pair
of steps (see :data:`CRASH_STEPS`).
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..crash import CRASH_ENV as CRASH_ENV
from ..crash import CRASH_EXIT_CODE as CRASH_EXIT_CODE
from ..crash import crash_point
from ..errors import InputError, JobError, ServiceError
from ..formats import naming
from ..formats.batch import BATCH_TIMES, field_of, normalize_status, timestamp_of
from ..formats.jobfile import (
    BatchErrorInfo,
    ConnectionInfo,
    JobFile,
    RequestCounts,
    ShardState,
    batch_errors,
    read_job_file,
    write_job_file,
)
from ..formats.manifest import ShardInfo, read_manifest
from ..jsonl import AtomicWriter, dumps_line, read_lines
from ..profiles import load_profile
from ..publish import FileSet
from .connection import (
    Connection,
    as_connection,
    is_token_limit_error,
    is_transient,
    retry_after_seconds,
    translate_error,
)

if TYPE_CHECKING:  # the SDK loads only when a job talks to a service
    import openai

CRASH_STEPS = (
    "split",  # manifest written, no job file yet
    "prepared",  # job file written, nothing uploaded
    "upload-started",  # shard marked "uploading", upload not sent
    "uploaded",  # upload accepted by the service, file id not saved
    "upload-saved",  # file id saved
    "create-started",  # shard marked "creating", create not sent
    "created",  # batch created by the service, batch id not saved
    "create-saved",  # batch id saved
)
TOKEN_LIMIT_CODE = "token_limit_exceeded"
METADATA_JOB_KEY = "jsonl_batch_job"
MAX_METADATA_VALUE = 512
# How far back a lookup for a batch a crashed run may have created searches the service's
# list, before the moment the create was first attempted (clock skew, slow answers).
LOOKUP_SLACK_SECONDS = 3600.0
# How far back reconciling looks for batches of the same content (a choice: a batch runs
# for at most its 24h completion window, and a lost job file is noticed within days).
RECONCILE_LOOKBACK_SECONDS = 30 * 24 * 3600.0
# Batches not taken over when reconciling: a new batch is what the shard needs then.
_NOT_REUSED = frozenset({"failed", "expired", "cancelled", "cancelling"})
_CHUNK = 1 << 20

EventHandler = Callable[[str], None]
UploadProgress = Callable[[int, int, int], None]
"""``(shard index, bytes sent, bytes in the shard)`` as an upload streams."""


class _ProgressReader(io.RawIOBase):
    """A shard file as the SDK reads it for the upload, reporting how far it got.

    It keeps ``fileno``/``seek``/``tell`` so the HTTP client still sends a
    Content-Length, and a retried upload (which seeks back to 0) reports from the start."""

    def __init__(self, raw: BinaryIO, report: Callable[[int], None]) -> None:
        super().__init__()
        self._raw = raw
        self._report = report

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._raw.fileno()

    def tell(self) -> int:
        return self._raw.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def readinto(self, buffer: Any) -> int:
        n = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self._report(self._raw.tell())
        return n or 0


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _rel(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()


def _id_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _count(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: base, 2·base, 4·base ... up to cap."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return delay * (0.75 + 0.25 * random.random())


class Job:
    """One job file and the service it talks to.

    Library use (``connection`` is a :class:`Connection`, an ``openai.OpenAI`` /
    ``AzureOpenAI`` client, or None to connect from the environment)::

        job = Job.submit("data.jsonl", AzureOpenAI(...))  # split, upload, create (resumable)
        job.wait(poll_interval=60)                          # refresh, submit queued, download
        job = Job.load("data.job.json")                     # later: the saved endpoint + key
        job.cancel(); job.refresh(); job.download()
    """

    def __init__(
        self,
        path: Path,
        data: JobFile,
        connection: Connection | openai.OpenAI | None = None,
        *,
        on_event: EventHandler | None = None,
        on_upload: UploadProgress | None = None,
        quota_retry_seconds: float = 5.0,
        quota_retry_max_seconds: float = 300.0,
        quota_max_attempts: int = 10,
        create_retries: int = 6,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.data = data
        self._connection = connection
        self.on_event = on_event or (lambda _message: None)
        self.on_upload = on_upload
        self.quota_retry_seconds = quota_retry_seconds
        self.quota_retry_max_seconds = quota_retry_max_seconds
        self.quota_max_attempts = quota_max_attempts
        self.create_retries = create_retries
        self.sleep = sleep
        self.clock = clock

    # --- files ------------------------------------------------------------------------

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def shards(self) -> list[ShardState]:
        return self.data.shards

    @property
    def connection(self) -> Connection:
        """The connection given, else one to the endpoint saved in the job file, with the key
        from the environment (made when first needed)."""
        if not isinstance(self._connection, Connection):
            saved = self.data.connection.model_dump()
            self._connection = as_connection(self._connection, saved)
        return self._connection

    def save(self) -> None:
        """Write the job file atomically; called after every step."""
        self.data.updated_at = self.clock()
        write_job_file(self.path, self.data)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        connection: Connection | openai.OpenAI | None = None,
        **options: Any,
    ) -> Job:
        """Open an existing job file; without ``connection`` it connects to the endpoint the
        job file names when it first talks to the service."""
        job_path = Path(path)
        return cls(job_path, read_job_file(job_path), connection, **options)

    def resolve(self, relative: str) -> Path:
        return self.folder / relative

    # --- submit -----------------------------------------------------------------------

    @classmethod
    def submit(
        cls,
        path: str | os.PathLike[str],
        connection: Connection | openai.OpenAI | None = None,
        *,
        job_path: str | os.PathLike[str] | None = None,
        deployments: Sequence[str] = (),
        enqueued_limit: int | None = None,
        description: str | None = None,
        split_limits: dict[str, Any] | None = None,
        reuse_existing: bool = True,
        **options: Any,
    ) -> Job:
        """Split (if needed), upload and create a batch per shard; resume an existing job.

        ``path`` is a request file or a split manifest; ``connection`` a :class:`Connection`,
        an ``openai.OpenAI`` / ``AzureOpenAI`` client, or None for :func:`connect` from the
        environment. Shards that do not fit under
        ``enqueued_limit`` (input tokens per deployment) stay ``queued``; :meth:`wait` submits
        them as earlier ones finish. A new job first takes over the batches and uploads the
        service already has for the same shard content (:meth:`reconcile`), unless
        ``reuse_existing`` is False.
        """
        source = Path(path)
        job_file = Path(job_path) if job_path else naming.job_path(source)
        if job_file.exists():
            job = cls.load(job_file, connection, **options)
            job._check_same_job(source, deployments, enqueued_limit)
            job.on_event(f"resuming {job_file}")
        else:
            job = cls._create(
                source,
                job_file,
                as_connection(connection),
                deployments,
                enqueued_limit,
                description,
                split_limits or {},
                options,
            )
            if reuse_existing:
                job.reconcile()
        job.submit_ready()
        return job

    @classmethod
    def recover(
        cls,
        path: str | os.PathLike[str],
        connection: Connection | openai.OpenAI | None = None,
        *,
        job_path: str | os.PathLike[str] | None = None,
        deployments: Sequence[str] = (),
        enqueued_limit: int | None = None,
        split_limits: dict[str, Any] | None = None,
        **options: Any,
    ) -> Job:
        """Rebuild a lost job file from the service: split the input as ``submit`` did, then
        take over the batches and uploads of the same shard content. Creates nothing remote;
        ``submit`` or ``wait`` carries on from the job file it writes."""
        source = Path(path)
        job_file = Path(job_path) if job_path else naming.job_path(source)
        if job_file.exists():
            raise JobError(
                f"{job_file}: already exists",
                hint="wait or submit resume from it; move it away first to rebuild it from the"
                " service",
            )
        job = cls._create(
            source,
            job_file,
            as_connection(connection),
            deployments,
            enqueued_limit,
            None,
            split_limits or {},
            options,
        )
        job.reconcile()
        return job

    @classmethod
    def _create(
        cls,
        source: Path,
        path: Path,
        connection: Connection,
        deployments: Sequence[str],
        enqueued_limit: int | None,
        description: str | None,
        split_limits: dict[str, Any],
        options: dict[str, Any],
    ) -> Job:
        if not source.exists():
            raise InputError(f"{source}: no such file", hint="pass a request file or a manifest")
        settings = connection.settings
        profile = load_profile(settings.target)
        if source.name.endswith(naming.MANIFEST_SUFFIX):
            manifest_path, request_path = source, None
        else:
            manifest_path = _split(
                source, naming.split_dir(path), settings.target, enqueued_limit, split_limits
            )
            request_path = source
            crash_point("split")
        manifest = read_manifest(manifest_path)
        folder = path.parent
        if request_path is None and manifest.source_path().exists():
            request_path = manifest.source_path()
        now = time.time()
        data = JobFile(
            job_id=f"job_{uuid.uuid4().hex[:24]}",
            created_at=now,
            updated_at=now,
            source=_rel(request_path, folder) if request_path else None,
            manifest=_rel(manifest_path, folder),
            target=settings.target,
            connection=ConnectionInfo(**settings.public()),
            description=description,
            deployments=list(deployments),
            enqueued_limit=enqueued_limit,
            file_expiry_seconds=profile.file_expiry_seconds,
            shards=[],
        )
        job = cls(path, data, connection, **options)
        for position, shard in enumerate(sorted(manifest.shards, key=lambda s: s.index)):
            job.data.shards.append(job._prepare_shard(manifest_path.parent, shard, position))
        job.save()
        job.on_event(f"job {data.job_id}: {len(data.shards)} shard(s), saved to {path}")
        crash_point("prepared")
        return job

    def reconcile(self) -> int:
        """Take over what the service already has for shards not yet submitted: the newest
        batch whose metadata carries the shard's content hash (unless it failed, expired or
        was cancelled), else an upload named after that hash. Returns the batches taken over.

        The hash covers every byte sent (``body.model`` included), so only a batch of the
        very same requests to the same deployment matches, whichever job file created it."""
        waiting = {
            shard.sha256: shard
            for shard in self.shards
            if shard.batch_id is None and shard.status in ("pending", "uploading", "uploaded")
        }
        if not waiting:
            return 0
        adopted = 0
        for sha256, batch in self._batches_by_content(set(waiting)).items():
            shard = waiting.pop(sha256)
            shard.file_id = _id_or_none(field_of(batch, "input_file_id")) or shard.file_id
            shard.file_status = "processed"
            self.on_event(
                f"shard {shard.index}: found batch {batch.id} ({field_of(batch, 'status')}) of"
                " the same content on the service; taking it over instead of creating another"
            )
            self._created(shard, batch, {})
            adopted += 1
        by_name = {naming.upload_name(sha256): shard for sha256, shard in waiting.items()}
        if by_name:
            for name, (file_id, status) in self._find_uploads(set(by_name)).items():
                shard = by_name[name]
                self.on_event(f"shard {shard.index}: found earlier upload {file_id}")
                self._uploaded(shard, file_id, status)
        return adopted

    def _batches_by_content(self, hashes: set[str]) -> dict[str, Any]:
        """The newest reusable batch per content hash, from the service's list (newest
        first), back to ``RECONCILE_LOOKBACK_SECONDS`` ago."""
        connection = self.connection
        since = self.clock() - RECONCILE_LOOKBACK_SECONDS
        found: dict[str, Any] = {}
        page = connection.call("listing batches", connection.client.batches.list, limit=100)
        while True:
            data = list(page.data)
            for batch in data:
                metadata = field_of(batch, "metadata") or {}
                sha256 = metadata.get("shard_sha256")
                status = normalize_status(field_of(batch, "status"))
                if sha256 in hashes and sha256 not in found and status not in _NOT_REUSED:
                    found[sha256] = batch
            created = [timestamp_of(field_of(b, "created_at")) for b in data]
            if len(found) == len(hashes) or not data or not page.has_next_page():
                return found
            if all(c is not None and c < since for c in created):
                return found
            page = connection.call("listing batches", page.get_next_page)

    def _check_same_job(
        self, source: Path, deployments: Sequence[str], enqueued_limit: int | None
    ) -> None:
        known = {path for path in (self.data.manifest, self.data.source) if path is not None}
        if _rel(source, self.folder) not in known:
            raise JobError(
                f"{self.path} belongs to another input ({', '.join(sorted(known))}), not {source}",
                hint="pass job_path=NEW.job.json to start a separate job",
            )
        if deployments and list(deployments) != self.data.deployments:
            raise JobError(
                f"{self.path} was submitted with deployments {self.data.deployments},"
                f" not {list(deployments)}",
                hint="resume with the same deployments (or none), or pass job_path=NEW.job.json",
            )
        if enqueued_limit is not None and enqueued_limit != self.data.enqueued_limit:
            self.data.enqueued_limit = enqueued_limit
            self.on_event(f"enqueued-token limit is now {enqueued_limit} per deployment")

    def _prepare_shard(self, manifest_folder: Path, shard: ShardInfo, position: int) -> ShardState:
        """Check a manifest shard, rewrite its deployment if asked, count tokens if needed."""
        shard_path = manifest_folder / shard.path
        if not shard_path.exists():
            raise InputError(
                f"{shard_path}: shard {shard.index} of the manifest is missing",
                hint="split the request file again",
            )
        profile = load_profile(self.data.target)
        deployments = self.data.deployments
        deployment = deployments[position % len(deployments)] if deployments else shard.model
        upload_path, sha256, size = shard_path, shard.sha256, shard.bytes
        if deployment != shard.model:
            upload_path = naming.deployment_copy_path(self.path, shard.index, deployment)
            sha256, size = _rewrite_model(shard_path, upload_path, deployment)
        elif _sha256_of(shard_path) != shard.sha256:
            raise InputError(
                f"{shard_path}: changed since it was split (sha256 differs from the manifest)",
                hint="split the request file again",
            )
        tokens = shard.input_tokens
        if tokens is None and self.data.enqueued_limit is not None:
            tokens = _count_tokens(upload_path)
        limit = self.data.enqueued_limit
        if limit is not None and tokens is not None and tokens > limit:
            raise JobError(
                f"shard {shard.index} ({shard_path}) has {tokens} input tokens, more than the"
                f" enqueued-token limit {limit}: it could never be submitted",
                hint="split again with a token limit (max_tokens) or raise enqueued_limit",
            )
        return ShardState(
            index=shard.index,
            path=_rel(shard_path, self.folder),
            upload_path=_rel(upload_path, self.folder),
            sha256=sha256,
            requests=shard.requests,
            bytes=size,
            input_tokens=tokens,
            deployment=deployment,
            url=shard.url,
            endpoint=profile.batch_endpoint(shard.url),
        )

    def submit_ready(self) -> int:
        """Upload every pending shard and create batches for those that fit; returns creates."""
        created = 0
        for shard in self.shards:
            if shard.status in ("pending", "uploading"):
                self._upload(shard)
        for shard in self.shards:
            if shard.status == "creating" or (
                shard.status in ("uploaded", "queued") and self._ready(shard)
            ):
                created += self._create_batch(shard)
            elif shard.status == "uploaded":
                shard.status = "queued"
                self.save()
        return created

    def _ready(self, shard: ShardState) -> bool:
        """Due (after a quota refusal's backoff) and within the enqueued-token limit."""
        if shard.next_attempt_at is not None and shard.next_attempt_at > self.clock():
            return False
        limit = self.data.enqueued_limit
        if limit is None:
            return True
        enqueued = sum(
            other.input_tokens or 0
            for other in self.shards
            if other.active and other.deployment == shard.deployment and other is not shard
        )
        return enqueued == 0 or enqueued + (shard.input_tokens or 0) <= limit

    # upload

    def _upload(self, shard: ShardState) -> None:
        name = naming.upload_name(shard.sha256)
        if shard.status == "uploading":
            found = self._find_uploads({name}).get(name)
            if found is not None:
                self.on_event(f"shard {shard.index}: found earlier upload {found[0]}")
                self._uploaded(shard, *found)
                return
        shard.status = "uploading"
        shard.upload_started_at = self.clock()
        self.save()
        crash_point("upload-started", shard.index)
        connection = self.connection
        kwargs: dict[str, Any] = {}
        if self.data.file_expiry_seconds:
            kwargs["expires_after"] = {
                "anchor": "created_at",
                "seconds": self.data.file_expiry_seconds,
            }
        if connection.extra_body:
            kwargs["extra_body"] = connection.extra_body
        if self.data.target == "litellm" and shard.deployment and not connection.extra_body:
            # LiteLLM's model-based routing (not with --custom-llm-provider, which routes by
            # provider instead): the proxy encodes the model group in the file id
            kwargs["extra_headers"] = {"x-litellm-model": shard.deployment}
        with open(self.resolve(shard.upload_path), "rb") as raw:
            stream: BinaryIO = raw
            if self.on_upload is not None:
                on_upload, index, size = self.on_upload, shard.index, shard.bytes
                stream = _ProgressReader(raw, lambda sent: on_upload(index, sent, size))  # type: ignore[assignment]
            uploaded = connection.call(
                f"uploading shard {shard.index} ({shard.upload_path})",
                connection.client.files.create,
                file=(name, stream, "application/jsonl"),
                purpose="batch",
                **kwargs,
            )
        crash_point("uploaded", shard.index)
        self._uploaded(shard, uploaded.id, getattr(uploaded, "status", None))
        crash_point("upload-saved", shard.index)

    def _uploaded(self, shard: ShardState, file_id: str, file_status: str | None) -> None:
        shard.file_id = file_id
        shard.file_status = (file_status or "").lower() or None
        shard.status = "uploaded"
        shard.uploaded_at = self.clock()
        self.save()
        self.on_event(f"shard {shard.index}: uploaded as {file_id}")

    def _wait_processed(self, shard: ShardState) -> None:
        """Azure's classic API answers an upload with ``pending`` until it has read the file;
        a create before ``processed`` fails, so poll the file first (short, growing pauses)."""
        if shard.file_status == "processed":
            return
        connection = self.connection
        for attempt in range(1, 40):
            item = connection.call(
                f"checking upload {shard.file_id} (shard {shard.index})",
                connection.client.files.retrieve,
                shard.file_id,
            )
            status = str(getattr(item, "status", "") or "processed").lower()
            if status in ("error", "deleted", "deleting"):
                details = getattr(item, "status_details", None) or "no details"
                raise ServiceError(
                    f"the service could not read the upload of shard {shard.index}"
                    f" ({shard.upload_path}, {shard.file_id}): {status}: {details}",
                    hint="validate the shard (validate_file), then submit again",
                )
            if status not in ("pending", "uploaded", "running"):
                shard.file_status = status
                self.save()
                return
            self.sleep(min(10.0, 0.5 * attempt))
        raise ServiceError(
            f"the upload of shard {shard.index} ({shard.file_id}) is still being processed",
            hint="run the same step again later: it continues from here",
        )

    def _find_uploads(self, names: set[str]) -> dict[str, tuple[str, str | None]]:
        """Uploads an earlier run made, by file name (the content hash), not failed:
        ``{name: (file id, status)}``, the newest per name."""
        connection = self.connection
        files = connection.call(
            "listing uploaded files", connection.client.files.list, purpose="batch"
        )
        found: dict[str, tuple[str, str | None]] = {}
        for item in connection.call("listing uploaded files", lambda: list(files)):
            status = getattr(item, "status", None)
            if (
                item.filename in names
                and item.filename not in found
                and (status or "").lower() not in ("error", "deleted")
            ):
                found[item.filename] = (str(item.id), status)
        return found

    # create

    def _metadata(self, shard: ShardState) -> dict[str, str]:
        description = self.data.description or (
            f"jsonl-batch {self.data.source or self.data.manifest}"
            f" shard {shard.index}/{len(self.shards)}"
        )
        return {
            METADATA_JOB_KEY: self.data.job_id,
            "shard": str(shard.index),
            "shard_sha256": shard.sha256,
            "attempt": str(shard.attempt),
            "description": description[:MAX_METADATA_VALUE],
        }

    def _create_batch(self, shard: ShardState) -> int:
        """Create the shard's batch, unless a crashed or failed-over call already did."""
        if shard.status == "creating":
            found = self._find_batch(shard)
            if found is not None:
                self.on_event(f"shard {shard.index}: found earlier batch {found.id}")
                self._created(shard, found, {})
                return 0
        self._wait_processed(shard)
        shard.status = "creating"
        shard.create_started_at = self.clock()
        self.save()
        crash_point("create-started", shard.index)
        connection = self.connection
        client = connection.client.with_options(max_retries=0)
        kwargs: dict[str, Any] = {
            "input_file_id": shard.file_id,
            "endpoint": shard.endpoint,
            "completion_window": self.data.completion_window,
            "metadata": self._metadata(shard),
        }
        if self.data.file_expiry_seconds:
            kwargs["output_expires_after"] = {
                "anchor": "created_at",
                "seconds": self.data.file_expiry_seconds,
            }
        extra_body = dict(connection.extra_body or {})
        if self.data.target == "litellm" and shard.deployment and not connection.extra_body:
            # the model group picks the deployment when the proxy load-balances batches
            # (with --custom-llm-provider the proxy routes by provider instead)
            extra_body["model"] = shard.deployment
        if extra_body:
            kwargs["extra_body"] = extra_body
        action = f"creating the batch of shard {shard.index}"
        import openai

        for attempt in range(1, self.create_retries + 2):
            try:
                raw = client.batches.with_raw_response.create(**kwargs)
                batch, headers = raw.parse(), raw.headers
                break
            except openai.OpenAIError as exc:
                if is_token_limit_error(exc):
                    self._requeue(shard, None, str(exc))
                    return 0
                if not is_transient(exc) or attempt > self.create_retries:
                    shard.status = "uploaded"
                    self.save()
                    raise translate_error(exc, connection.settings, action) from exc
                delay = retry_after_seconds(exc) or _backoff(attempt, 0.5, 30.0)
                self.on_event(
                    f"shard {shard.index}: {type(exc).__name__}, retrying in {delay:.1f}s"
                )
                self.sleep(delay)
                if not isinstance(exc, openai.RateLimitError):
                    # The create may have gone through before the error: never create twice.
                    found = self._find_batch(shard)
                    if found is not None:
                        self._created(shard, found, {})
                        return 1
        crash_point("created", shard.index)
        self._created(shard, batch, headers)
        crash_point("create-saved", shard.index)
        return 1

    def _created(self, shard: ShardState, batch: Any, headers: Any) -> None:
        shard.batch_id = str(batch.id)
        shard.submitted_at = self.clock()
        shard.next_attempt_at = None
        for header, attribute in (
            ("deployment-enqueued-tokens", "enqueued_tokens"),
            ("deployment-maximum-enqueued-tokens", "maximum_enqueued_tokens"),
        ):
            value = headers.get(header) if headers else None
            if value and value.isdigit():
                setattr(shard, attribute, int(value))
        self._apply_batch(shard, batch)
        self.save()
        self.on_event(f"shard {shard.index}: batch {shard.batch_id} {shard.status}")
        self._requeue_if_refused(shard)  # Azure's fail-fast quota check

    def _find_batch(self, shard: ShardState) -> Any | None:
        """A batch this shard's current attempt already has (its metadata names it)."""
        connection = self.connection
        since = (shard.create_started_at or self.data.created_at) - LOOKUP_SLACK_SECONDS
        page = connection.call("listing batches", connection.client.batches.list, limit=100)
        while True:
            data = list(page.data)
            for batch in data:
                metadata = field_of(batch, "metadata") or {}
                if (
                    metadata.get(METADATA_JOB_KEY) == self.data.job_id
                    and metadata.get("shard") == str(shard.index)
                    and metadata.get("attempt") == str(shard.attempt)
                    and batch.id not in shard.previous_batch_ids
                ):
                    return batch
            created = [timestamp_of(field_of(b, "created_at")) for b in data]
            if not data or all(c is not None and c < since for c in created):
                return None
            if not page.has_next_page():
                return None
            page = connection.call("listing batches", page.get_next_page)

    def _requeue(self, shard: ShardState, batch_id: str | None, reason: str) -> None:
        """A quota refusal (token_limit_exceeded): back off and try again later, or give up
        after ``quota_max_attempts`` (the shard then stays ``failed`` with that error)."""
        if shard.attempt >= self.quota_max_attempts:
            if batch_id is None:  # refused at create (HTTP 400): no batch carries the error
                shard.errors = [BatchErrorInfo(code=TOKEN_LIMIT_CODE, message=reason)]
                shard.batch_id = None
            shard.status = "failed"
            shard.finished_at = shard.finished_at or self.clock()
            self.save()
            self.on_event(
                f"shard {shard.index}: still over the enqueued-token quota after"
                f" {shard.attempt} attempts, giving up"
            )
            return
        if batch_id:
            shard.previous_batch_ids.append(batch_id)
        delay = _backoff(shard.attempt, self.quota_retry_seconds, self.quota_retry_max_seconds)
        shard.attempt += 1
        shard.batch_id = None
        shard.status = "queued"
        shard.create_started_at = None
        shard.output_file_id = shard.error_file_id = None
        shard.next_attempt_at = self.clock() + delay
        self.save()
        self.on_event(
            f"shard {shard.index}: enqueued-token quota full ({reason.splitlines()[0][:120]});"
            f" retrying in {delay:.0f}s"
        )

    # --- refresh ----------------------------------------------------------------------

    def _apply_batch(self, shard: ShardState, batch: Any) -> None:
        shard.status = normalize_status(field_of(batch, "status"))
        counts = field_of(batch, "request_counts")
        shard.request_counts = RequestCounts(
            total=_count(field_of(counts, "total")),
            completed=_count(field_of(counts, "completed")),
            failed=_count(field_of(counts, "failed")),
        )
        shard.errors = batch_errors(batch)
        shard.output_file_id = _id_or_none(field_of(batch, "output_file_id"))
        shard.error_file_id = _id_or_none(field_of(batch, "error_file_id"))
        times = ((name, timestamp_of(field_of(batch, name))) for name in BATCH_TIMES)
        shard.batch_times = {name: value for name, value in times if value is not None}
        if shard.terminal and shard.finished_at is None:
            shard.finished_at = self.clock()  # local clock, like submitted_at: elapsed is honest

    def _requeue_if_refused(self, shard: ShardState) -> bool:
        """A batch failed for the enqueued-token quota goes back to the queue, not to the end."""
        refusals = [e for e in shard.errors if e.code == TOKEN_LIMIT_CODE]
        if shard.status != "failed" or not refusals or shard.batch_id is None:
            return False
        self._requeue(shard, shard.batch_id, refusals[0].message or TOKEN_LIMIT_CODE)
        return True

    def _needs_refresh(self, shard: ShardState) -> bool:
        if shard.batch_id is None:
            return False
        if not shard.terminal:
            return True
        # A completed batch can show no output file id for a moment (LiteLLM notes it).
        return (
            shard.status == "completed"
            and shard.output_file_id is None
            and shard.request_counts.completed > 0
        )

    def refresh(self) -> bool:
        """Fetch the status of every running batch; requeue quota refusals. True if changed."""
        changed = False
        connection = self.connection
        for shard in self.shards:
            # a run that crashed between saving a refused batch and requeueing it
            if shard.attempt < self.quota_max_attempts and self._requeue_if_refused(shard):
                changed = True
        for shard in self.shards:
            if not self._needs_refresh(shard):
                continue
            before = shard.model_dump()
            batch = connection.call(
                f"checking batch {shard.batch_id} (shard {shard.index})",
                connection.client.batches.retrieve,
                shard.batch_id,
            )
            self._apply_batch(shard, batch)
            self._requeue_if_refused(shard)
            if shard.model_dump() != before:
                changed = True
                if shard.terminal:
                    self.on_event(self._finished_message(shard))
        if changed:
            self.save()
        return changed

    @staticmethod
    def _finished_message(shard: ShardState) -> str:
        counts = shard.request_counts
        text = (
            f"shard {shard.index}: {shard.status}"
            f" ({counts.completed} ok, {counts.failed} failed of {counts.total or shard.requests})"
        )
        if shard.errors:
            first = shard.errors[0]
            text += f": {first.code}: {first.message}"
        return text

    # --- download ---------------------------------------------------------------------

    def download(self, *, force: bool = False) -> list[Path]:
        """Stream the output and error files of finished shards next to the job file.

        A shard's files are published together (:mod:`jsonl_batch.publish`), then the job
        file names them with their sha256: a kill or a full disk leaves no partial file, and
        the next run removes what such a run staged."""
        written: list[Path] = []
        for shard in self.shards:
            if not shard.terminal:
                continue
            kinds = [
                kind
                for kind in ("output", "error")
                if getattr(shard, f"{kind}_file_id") is not None
                and (getattr(shard, f"{kind}_file") is None or force)
            ]
            if kinds:
                written.extend(self._download_shard(shard, kinds))
        return written

    def _download_shard(self, shard: ShardState, kinds: list[str]) -> list[Path]:
        targets = {kind: naming.download_path(self.path, shard.index, kind) for kind in kinds}
        folder = targets[kinds[0]].parent
        hashes: dict[str, str] = {}
        with FileSet(folder, naming.download_set(self.path, shard.index)) as files:
            for kind, target in targets.items():
                hashes[kind] = self._stream_to(
                    getattr(shard, f"{kind}_file_id"),
                    files.path(target.name),
                    target,
                    f"downloading the {kind} file of shard {shard.index}",
                )
                files.publish(target.name)
            files.commit()
        for kind, target in targets.items():
            setattr(shard, f"{kind}_file", _rel(target, self.folder))
            setattr(shard, f"{kind}_sha256", hashes[kind])
            self.on_event(f"shard {shard.index}: {kind} file saved to {target}")
        shard.downloaded_at = self.clock()
        self.save()
        return list(targets.values())

    def _stream_to(self, file_id: str, staged: Path, target: Path, action: str) -> str:
        """Download a file to ``staged`` (published as ``target``); returns its sha256."""
        connection = self.connection
        content = connection.client.files.with_streaming_response.content

        def fetch() -> str:
            digest = hashlib.sha256()
            with content(file_id) as response, AtomicWriter(staged, shown_as=target) as writer:
                for chunk in response.iter_bytes(_CHUNK):
                    digest.update(chunk)
                    writer.write_raw(chunk)
            return digest.hexdigest()

        return connection.call(action, fetch)

    # --- wait -------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """Every shard finished and its results downloaded."""
        return all(shard.terminal and shard.downloaded for shard in self.shards) and not any(
            self._needs_refresh(shard) for shard in self.shards
        )

    def step(self) -> bool:
        """One round of wait: refresh, download finished shards, submit queued ones."""
        changed = self.refresh()
        changed = bool(self.download()) or changed
        changed = self.submit_ready() > 0 or changed
        return changed

    def wait(
        self,
        *,
        poll_interval: float = 60.0,
        max_poll_interval: float | None = None,
        timeout: float | None = None,
        on_poll: Callable[[Job], None] | None = None,
    ) -> bool:
        """Poll until every shard is finished and downloaded; True when done.

        The interval grows by half each quiet round up to ``max_poll_interval`` (default
        10 × ``poll_interval``) and drops back when something changes. Returns False on
        ``timeout``. Ctrl-C raises KeyboardInterrupt and cancels nothing.
        """
        ceiling = max_poll_interval or poll_interval * 10
        interval = poll_interval
        started = self.clock()
        while True:
            changed = self.step()
            if on_poll is not None:
                on_poll(self)
            if self.done:
                return True
            if timeout is not None and self.clock() - started >= timeout:
                return False
            interval = poll_interval if changed else min(ceiling, interval * 1.5)
            pause = interval
            due = [
                s.next_attempt_at for s in self.shards if s.status == "queued" and s.next_attempt_at
            ]
            if due:
                pause = max(0.0, min(pause, min(due) - self.clock()))
            self.sleep(pause)

    # --- cancel -----------------------------------------------------------------------

    def cancel(self) -> list[str]:
        """Cancel every running batch; shards not yet submitted are cancelled locally."""
        cancelled: list[str] = []
        connection = self.connection
        self.refresh()
        for shard in self.shards:
            if shard.status == "creating" and (found := self._find_batch(shard)) is not None:
                self._created(shard, found, {})
            if shard.batch_id is None and not shard.terminal:
                shard.status = "cancelled"
                shard.finished_at = self.clock()
                continue
            if shard.terminal or shard.status == "cancelling":
                continue
            batch = connection.call(
                f"cancelling batch {shard.batch_id} (shard {shard.index})",
                connection.client.batches.cancel,
                shard.batch_id,
                extra_body=connection.extra_body,
            )
            self._apply_batch(shard, batch)
            cancelled.append(str(shard.batch_id))
            self.on_event(f"shard {shard.index}: batch {shard.batch_id} {shard.status}")
        self.save()
        return cancelled

    # --- reporting --------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Counts over all shards, for progress lines and ``status``."""
        statuses: dict[str, int] = {}
        for shard in self.shards:
            statuses[shard.status] = statuses.get(shard.status, 0) + 1
        return {
            "job_id": self.data.job_id,
            "shards": len(self.shards),
            "statuses": statuses,
            "requests": sum(s.requests for s in self.shards),
            "completed": sum(s.request_counts.completed for s in self.shards),
            "failed": sum(s.request_counts.failed for s in self.shards),
            "done": self.done,
        }

    def iter_rows(self) -> Iterator[dict[str, Any]]:
        """One row per shard for the ``status`` table."""
        now = self.clock()
        for shard in self.shards:
            counts = shard.request_counts
            total = counts.total or shard.requests
            elapsed = None
            if shard.submitted_at is not None:
                elapsed = (shard.finished_at or now) - shard.submitted_at
            yield {
                "index": shard.index,
                "deployment": shard.deployment,
                "status": shard.status,
                "batch_id": shard.batch_id,
                "completed": counts.completed,
                "failed": counts.failed,
                "total": total,
                "progress": (counts.completed + counts.failed) / total if total else 0.0,
                "elapsed_seconds": elapsed,
                "errors": [e.model_dump() for e in shard.errors],
                "output_file": shard.output_file,
                "error_file": shard.error_file,
            }


# --- module helpers -------------------------------------------------------------------


def _rewrite_model(source: Path, target: Path, deployment: str) -> tuple[str, int]:
    """Copy a shard with every ``body.model`` set to ``deployment``; returns (sha256, bytes)."""
    digest = hashlib.sha256()
    with AtomicWriter(target) as writer:
        for line in read_lines(source):
            if not line.content.strip():
                continue
            if not line.ok or not isinstance(line.obj.get("body"), dict):
                raise InputError(
                    f"{source}:{line.number}: not a request line with a body",
                    hint="validate the file first (validate_file)",
                )
            line.obj["body"]["model"] = deployment
            raw = dumps_line(line.obj)
            digest.update(raw)
            writer.write_raw(raw)
    return digest.hexdigest(), writer.bytes


def _count_tokens(path: Path) -> int:
    """Input tokens of a shard, for the enqueued-token limit, when the manifest has none."""
    from ..tokens import TokenCounter

    counter = TokenCounter()
    return sum(counter.count_line(line.obj).input_tokens for line in read_lines(path) if line.ok)


def _split(
    source: Path, out_dir: Path, target: str, enqueued_limit: int | None, options: dict[str, Any]
) -> Path:
    """Split a request file with the target's limits (and the token limit); the manifest path."""
    from ..split import split_file

    limits = {key: value for key, value in options.items() if value is not None}
    if enqueued_limit is not None:
        limits.setdefault("max_tokens", enqueued_limit)
    return split_file(source, out_dir, target=target, overwrite=True, **limits).manifest_path
