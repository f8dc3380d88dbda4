"""Crash-safe batch jobs: submit the shards of a request file, follow them, download results.

Every step is written to the job file before and after it talks to the service, so running
the same command again after a crash continues where it stopped. The two steps that create
something remote look for what a crashed run may already have created before creating it
again: an upload by its file name (the shard's content hash), a batch by its ``metadata``
(job id, shard, attempt). So a shard never gets a second batch.

Without a job file (lost, deleted, or a crash before the first save) a new job first
*reconciles* with the service: a batch whose metadata carries a shard's content hash
(``shard_sha256``; on several resources the split shard's own ``split_sha256``, looked for
on every resource), or an upload named after it, is taken over instead of created again
(:meth:`Job.reconcile`); :meth:`Job.recover` rebuilds a job file that way without creating
anything.

``JSONL_BATCH_CRASH_AFTER=<step>`` (or ``<step>:<shard index>``) makes the process exit on
the spot at that step; it exists only so tests can crash a real process between every pair
of steps (see :data:`CRASH_STEPS`).
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from ..crash import CRASH_ENV as CRASH_ENV
from ..crash import CRASH_EXIT_CODE as CRASH_EXIT_CODE
from ..crash import crash_point
from ..errors import InputError, JobError, ServiceError
from ..formats import naming
from ..formats.batch import (
    BATCH_TIMES,
    TERMINAL_STATUSES,
    field_of,
    normalize_status,
    timestamp_of,
)
from ..formats.jobfile import (
    BatchErrorInfo,
    ConnectionInfo,
    JobFile,
    RequestCounts,
    ResourceState,
    ShardMove,
    ShardState,
    batch_errors,
    read_job_file,
    write_job_file,
)
from ..formats.manifest import ShardInfo, read_manifest
from ..formats.resources import Resource, parse_quantity
from ..jsonl import AtomicWriter, read_lines
from ..profiles import load_profile
from ..publish import FileSet
from . import planner
from .connection import (
    Connection,
    as_connection,
    is_outage,
    is_token_limit_error,
    is_transient,
    resource_settings,
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
# Azure's token_limit_exceeded text names the limit ("... the configured limit of 30K for
# the deployment 'gpt-4.1-batch'", a real reply quoted in batch-api-spec.md §3.2 [AZ-QA-TOK]).
_LIMIT_IN_MESSAGE = re.compile(r"configured limit of ([0-9][0-9.,_]*\s*[KMBkmb]?)\b")
# Shards not created yet: the ones a multi-resource job may still send elsewhere, and whose
# batch reconciling may find (a run that lost its job file made it).
_MOVABLE = frozenset({"pending", "uploading", "uploaded", "queued"})
# Batches not taken over when reconciling: a new batch is what the shard needs then.
_NOT_REUSED = frozenset({"failed", "expired", "cancelled", "cancelling"})
_CHUNK = 1 << 20

T = TypeVar("T")
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

    With ``resources`` (:func:`~jsonl_batch.formats.resources.read_resources`) the shards
    spread over several resources by free enqueued-token quota (:mod:`.planner`); a resource
    that fails has its shards not yet created moved to the others, and every step talks to
    the resource of its shard, with the key from the variable the resource names.
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
        max_retries: int | None = None,
        connections: Mapping[str, Connection] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.data = data
        self._connection = connection
        self._connections: dict[str, Connection] = dict(connections or {})
        self.max_retries = max_retries
        self._moved = 0  # shards moved to another resource by this process
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
        from the environment (made when first needed). A multi-resource job: its first
        resource's."""
        if self.data.resources and not isinstance(self._connection, Connection):
            self._connection = self.resource_connection(self.data.resources[0].name)
        if not isinstance(self._connection, Connection):
            saved = self.data.connection.model_dump()
            self._connection = as_connection(self._connection, saved)
        return self._connection

    def resource(self, name: str) -> Resource:
        for resource in self.data.resources:
            if resource.name == name:
                return resource
        raise JobError(
            f"{self.path}: shard names resource {name!r}, which the job file does not list",
            hint="the job file was edited by hand; restore it",
        )

    def resource_connection(self, name: str) -> Connection:
        """The connection to one resource of the job (its key from the variable it names)."""
        if name not in self._connections:
            settings = resource_settings(self.resource(name), max_retries=self.max_retries)
            self._connections[name] = Connection(settings)
        return self._connections[name]

    def connection_for(self, shard: ShardState) -> Connection:
        """Where a shard's upload and batch live."""
        return self._connection_of(shard.resource)

    def _connection_of(self, name: str | None) -> Connection:
        return self.resource_connection(name) if name is not None else self.connection

    def _model_group(self, shard: ShardState, connection: Connection) -> str | None:
        """The LiteLLM model group to route a shard's upload and batch by (model-based
        routing, ``batch-api-spec.md`` §7.2); None elsewhere, and with
        ``--custom-llm-provider``, where the proxy routes by provider instead."""
        target = self.resource(shard.resource).target if shard.resource else self.data.target
        if target == "litellm" and shard.deployment and not connection.extra_body:
            return shard.deployment
        return None

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
        resources: Sequence[Resource] = (),
        avoid_resources: Sequence[str] = (),
        creating_failover_seconds: float | None = None,
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

        ``resources`` (instead of ``connection``) spreads the shards over several resources;
        ``avoid_resources`` are used only for models no other resource serves;
        ``creating_failover_seconds`` is how long a shard whose create was in flight waits
        for its resource, once down, before it moves (saved in the job file).
        """
        source = Path(path)
        job_file = Path(job_path) if job_path else naming.job_path(source)
        if job_file.exists():
            job = cls.load(job_file, connection, **options)
            job._check_same_job(source, deployments, enqueued_limit, resources)
            if not reuse_existing and job.data.reuse_existing:
                job.data.reuse_existing = False
                job.save()
            job.on_event(f"resuming {job_file}")
        else:
            job = cls._create(
                source,
                job_file,
                None if resources else as_connection(connection),
                deployments,
                enqueued_limit,
                description,
                split_limits or {},
                options,
                resources=resources,
                avoid_resources=avoid_resources,
                reuse_existing=reuse_existing,
            )
            if reuse_existing:
                job.reconcile()
        if creating_failover_seconds is not None:
            job.data.creating_failover_seconds = creating_failover_seconds
            job.save()
        job.submit_ready()
        return job

    @classmethod
    def retry_elsewhere(
        cls,
        path: str | os.PathLike[str],
        *,
        resources: Sequence[Resource] = (),
        job_path: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> Job:
        """Send a merged job's retry file (``<stem>.retry.jsonl``: the requests that failed,
        expired or never came back) as a new job, ``<stem>.retry.job.json``, on resources
        other than those its failures came from (used only for models no other serves).

        ``resources`` default to the merged job's own; rerunning resumes the retry job."""
        original_path = Path(path)
        original = read_job_file(original_path)
        resources = list(resources) or list(original.resources)
        if not resources:
            raise JobError(
                f"{original_path}: ran on one resource, so there is nowhere else to retry",
                hint="pass resources=[...] (a resources file) to retry it elsewhere",
            )
        retry_file = naming.retry_path(original_path, original_path.parent)
        if not retry_file.exists():
            raise JobError(
                f"{retry_file}: no retry file next to the job",
                hint="merge the job first (merge(JOB)); a job whose requests all"
                " succeeded has no retry file",
            )
        troubled = {
            shard.resource
            for shard in original.shards
            if shard.resource and (shard.status != "completed" or shard.request_counts.failed)
        }
        down = {name for name, state in original.resource_state.items() if state.down_since}
        job = cls.submit(
            retry_file,
            None,
            job_path=job_path,
            resources=resources,
            avoid_resources=sorted(troubled | down),
            **options,
        )
        if job.data.retry_of is None:
            job.data.retry_of = _rel(original_path, job.folder)
            job.save()
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
        resources: Sequence[Resource] = (),
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
            None if resources else as_connection(connection),
            deployments,
            enqueued_limit,
            None,
            split_limits or {},
            options,
            resources=resources,
        )
        job.reconcile()
        return job

    @classmethod
    def _create(
        cls,
        source: Path,
        path: Path,
        connection: Connection | None,
        deployments: Sequence[str],
        enqueued_limit: int | None,
        description: str | None,
        split_limits: dict[str, Any],
        options: dict[str, Any],
        *,
        resources: Sequence[Resource] = (),
        avoid_resources: Sequence[str] = (),
        reuse_existing: bool = True,
    ) -> Job:
        if not source.exists():
            raise InputError(f"{source}: no such file", hint="pass a request file or a manifest")
        if resources:
            _check_resource_names(resources)
            if deployments:
                raise JobError(
                    "deployments and resources together: a multi-resource job takes its"
                    " deployments from the resources",
                    hint="list the deployments in the resources file",
                )
            first = resources[0]
            target = first.target
            saved = ConnectionInfo(
                kind="azure" if first.kind == "azure" else "openai",
                endpoint=first.endpoint,
                target=target,
                api_version=first.api_version,
                auth=first.auth,
                custom_llm_provider=first.custom_llm_provider,
            )
        else:
            assert connection is not None
            target = connection.settings.target
            saved = ConnectionInfo(**connection.settings.public())
        profile = load_profile(target)
        if source.name.endswith(naming.MANIFEST_SUFFIX):
            manifest_path, request_path = source, None
        else:
            manifest_path = _split(
                source, naming.split_dir(path), target, enqueued_limit, split_limits
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
            target=target,
            connection=saved,
            description=description,
            deployments=list(deployments),
            enqueued_limit=enqueued_limit,
            file_expiry_seconds=profile.file_expiry_seconds,
            resources=list(resources),
            avoid_resources=list(avoid_resources),
            reuse_existing=reuse_existing,
            shards=[],
        )
        job = cls(path, data, connection, **options)
        shards = sorted(manifest.shards, key=lambda s: s.index)
        chosen = job._plan(manifest_path.parent, shards) if resources else {}
        for position, shard in enumerate(shards):
            job.data.shards.append(
                job._prepare_shard(manifest_path.parent, shard, position, chosen.get(shard.index))
            )
        job.save()
        job.on_event(f"job {data.job_id}: {len(data.shards)} shard(s), saved to {path}")
        crash_point("prepared")
        return job

    def reconcile(self) -> int:
        """Take over what the service already has for shards not yet submitted: the newest
        batch of the same shard content (unless it failed, expired or was cancelled), else
        an upload named after the content hash. Returns the batches taken over.

        One resource: the batch's ``shard_sha256`` is the hash of every byte sent
        (``body.model`` included), so only a batch of the very same requests to the same
        deployment matches, whichever job file created it. Several resources: the batch's
        ``split_sha256`` (the split shard, before any rewrite) matches on every resource that
        answers, and the shard goes where its batch is (a ``moves`` entry says so): a plan
        that differs from the lost one never adds a second live batch. A resource that does
        not answer is marked down, and looked at again once it answers
        (:meth:`_reconcile_late`)."""
        waiting = self._waiting()
        if not self.data.resources:
            adopted = self._adopt_batches(waiting, None)
            self._adopt_uploads(waiting, None)
            return adopted
        per_resource = self._on_each_resource(functools.partial(self._adopt_batches, waiting))
        self._on_each_resource(functools.partial(self._adopt_uploads, waiting))
        if waiting and self._down():
            for name in self._down():
                self._state(name).unreconciled = True
            self.save()
        return sum(n or 0 for n in per_resource)

    def _waiting(self) -> list[ShardState]:
        """Shards with nothing created yet: what reconciling may take over."""
        return [
            shard for shard in self.shards if shard.batch_id is None and shard.status in _MOVABLE
        ]

    def _reconcile_late(self, name: str) -> None:
        """Resource ``name`` was down when the job reconciled and answers now. A batch of a
        shard's content there (a run that lost its job file made it) is taken over when the
        shard has none yet, else cancelled: one live batch per shard, across resources."""
        self._adopt_batches(self._waiting(), name)
        connection = self.resource_connection(name)
        wanted = _by_content([shard for shard in self.shards if shard.batch_id], name)
        for batch in _batches_since(connection, self.clock() - RECONCILE_LOOKBACK_SECONDS):
            shard = _shard_of(batch, wanted, name)
            status = normalize_status(field_of(batch, "status"))
            if (
                shard is None
                or str(batch.id) == shard.batch_id
                or status in TERMINAL_STATUSES | {"cancelling"}
            ):
                continue
            self._cancel_extra(
                shard,
                connection,
                str(batch.id),
                f"on {name}, a second batch of its content (the shard runs as"
                f" {shard.batch_id} on {shard.resource})",
            )
        self._state(name).unreconciled = False
        self.save()

    def _adopt_batches(self, waiting: Sequence[ShardState], name: str | None) -> int:
        """Take over the batches of ``waiting`` shards that resource ``name`` has."""
        wanted = _by_content([shard for shard in waiting if shard.batch_id is None], name)
        if not wanted:
            return 0
        adopted = 0
        for shard, batch in self._batches_by_content(wanted, name):
            if name is not None and name != shard.resource:
                slots = planner.serving(self._need(shard), self._slots())
                here = [slot for slot in slots if slot.resource == name]
                deployment = (field_of(batch, "metadata") or {}).get("deployment")
                here.sort(key=lambda slot: slot.deployment != deployment)
                if not here:
                    continue
                self._move(shard, here[0], f"its batch {batch.id} is there (reconciled)")
            shard.file_id = _id_or_none(field_of(batch, "input_file_id")) or shard.file_id
            shard.file_status = "processed"
            self.on_event(
                f"shard {shard.index}: found batch {batch.id} ({field_of(batch, 'status')}) of"
                " the same content on the service; taking it over instead of creating another"
            )
            self._created(shard, batch, {})
            adopted += 1
        return adopted

    def _adopt_uploads(self, waiting: Sequence[ShardState], name: str | None) -> None:
        """Take over the uploads of ``waiting`` shards of resource ``name`` (by file name)."""
        by_name = {
            naming.upload_name(shard.sha256): shard
            for shard in waiting
            if shard.batch_id is None and shard.file_id is None and shard.resource == name
        }
        if by_name:
            connection = self._connection_of(name)
            for upload, (file_id, status) in self._find_uploads(set(by_name), connection).items():
                shard = by_name[upload]
                self.on_event(f"shard {shard.index}: found earlier upload {file_id}")
                self._uploaded(shard, file_id, status)

    def _batches_by_content(
        self, wanted: Mapping[str, ShardState], name: str | None
    ) -> list[tuple[ShardState, Any]]:
        """The newest reusable batch per shard of ``wanted`` (:func:`_by_content`) on
        resource ``name``, from the service's list (newest first), back to
        ``RECONCILE_LOOKBACK_SECONDS`` ago."""
        shards = {shard.index for shard in wanted.values()}
        found: dict[int, tuple[ShardState, Any]] = {}
        connection = self._connection_of(name)
        for batch in _batches_since(connection, self.clock() - RECONCILE_LOOKBACK_SECONDS):
            if normalize_status(field_of(batch, "status")) in _NOT_REUSED:
                continue
            shard = _shard_of(batch, wanted, name)
            if shard is not None:
                found.setdefault(shard.index, (shard, batch))
            if len(found) == len(shards):
                break
        return list(found.values())

    def _check_same_job(
        self,
        source: Path,
        deployments: Sequence[str],
        enqueued_limit: int | None,
        resources: Sequence[Resource] = (),
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
        names = [resource.name for resource in resources]
        if names and names != [resource.name for resource in self.data.resources]:
            raise JobError(
                f"{self.path} was submitted to resources"
                f" {[r.name for r in self.data.resources] or 'none (one connection)'}, not {names}",
                hint="resume with the same resources (or none: the job file has them), or pass"
                " job_path=NEW.job.json",
            )
        if enqueued_limit is not None and enqueued_limit != self.data.enqueued_limit:
            self.data.enqueued_limit = enqueued_limit
            self.on_event(f"enqueued-token limit is now {enqueued_limit} per deployment")

    def _plan(
        self, manifest_folder: Path, shards: Sequence[ShardInfo]
    ) -> dict[int, tuple[planner.Slot, int | None]]:
        """A (resource, deployment) per shard, by free quota (:func:`planner.plan`), and its
        input tokens (counted when some quota is known and the split did not count them)."""
        slots = self._slots()
        by_tokens = any(slot.quota for slot in slots)
        tokens: dict[int, int | None] = {}
        for shard in shards:
            tokens[shard.index] = shard.input_tokens
            if shard.input_tokens is None and by_tokens:
                tokens[shard.index] = _count_tokens(manifest_folder / shard.path)
        needs = [
            planner.Need(shard.index, shard.model, tokens[shard.index] or shard.bytes, shard.url)
            for shard in shards
        ]
        chosen = planner.plan(needs, slots, avoid=self.data.avoid_resources)
        counts: dict[str, int] = {}
        for slot in chosen.values():
            counts[slot.resource] = counts.get(slot.resource, 0) + 1
        self.on_event("planned: " + ", ".join(f"{name} {n} shard(s)" for name, n in counts.items()))
        return {index: (slot, tokens[index]) for index, slot in chosen.items()}

    def _upload_file(
        self, shard_path: Path, index: int, model: str, deployment: str, sha256: str | None
    ) -> tuple[Path, str, int]:
        """The file to upload for a deployment: the shard itself when ``body.model`` already
        names it (byte-exact), else a copy with ``body.model`` rewritten; (path, sha256,
        bytes)."""
        if deployment != model:
            upload_path = naming.deployment_copy_path(self.path, index, deployment)
            return (upload_path, *_rewrite_model(shard_path, upload_path, deployment))
        actual = _sha256_of(shard_path)
        if sha256 is not None and actual != sha256:
            raise InputError(
                f"{shard_path}: changed since it was split (sha256 differs from the manifest)",
                hint="split the request file again",
            )
        return shard_path, actual, shard_path.stat().st_size

    def _prepare_shard(
        self,
        manifest_folder: Path,
        shard: ShardInfo,
        position: int,
        planned: tuple[planner.Slot, int | None] | None = None,
    ) -> ShardState:
        """Check a manifest shard, rewrite its deployment if asked, count tokens if needed."""
        shard_path = manifest_folder / shard.path
        if not shard_path.exists():
            raise InputError(
                f"{shard_path}: shard {shard.index} of the manifest is missing",
                hint="split the request file again",
            )
        deployments = self.data.deployments
        deployment = deployments[position % len(deployments)] if deployments else shard.model
        resource = None
        tokens = shard.input_tokens
        if planned is not None:
            slot, tokens = planned
            deployment, resource = slot.deployment, slot.resource
        profile = load_profile(self.resource(resource).target if resource else self.data.target)
        upload_path, sha256, size = self._upload_file(
            shard_path, shard.index, shard.model, deployment, shard.sha256
        )
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
            split_sha256=shard.sha256,
            requests=shard.requests,
            bytes=size,
            input_tokens=tokens,
            deployment=deployment,
            resource=resource,
            model=shard.model,
            url=shard.url,
            endpoint=profile.batch_endpoint(shard.url),
        )

    def submit_ready(self) -> int:
        """Upload every pending shard and create batches for those that fit; returns creates.

        A multi-resource job first moves shards not yet created off resources that failed,
        and off full deployments when another has room (:meth:`rebalance`); a resource that
        fails now is marked down and its shards go elsewhere in the same call."""
        created = 0
        while True:
            before = (self._moved, self._down())
            if self.data.resources and self.rebalance() and self.data.reuse_existing:
                # a moved shard's content may already be there (a run that lost its job file)
                self.reconcile()
            unreachable: set[str] = set()
            for shard in self.shards:
                if shard.status in ("pending", "uploading"):
                    self._guarded(shard, self._upload, unreachable)
            for shard in self.shards:
                if shard.status == "creating" or (
                    shard.status in ("uploaded", "queued") and self._ready(shard)
                ):
                    created += self._guarded(shard, self._create_batch, unreachable) or 0
                elif shard.status == "uploaded":
                    shard.status = "queued"
                    self.save()
            if (self._moved, self._down()) == before:
                return created

    def _guarded(
        self,
        shard: ShardState,
        step: Callable[[ShardState], T],
        unreachable: set[str] | None = None,
    ) -> T | None:
        """Run one step of a shard, on its resource (:meth:`_on_resource`)."""
        if shard.resource is None:
            return step(shard)
        return self._on_resource(shard.resource, functools.partial(step, shard), unreachable)

    def _on_resource(
        self, name: str, call: Callable[[], T], unreachable: set[str] | None = None
    ) -> T | None:
        """``call()`` against resource ``name``. An outage (credentials refused, unreachable,
        5xx past the retries) marks the resource down and returns None instead of stopping
        the job, unless every resource is down; a resource in ``unreachable`` (down this
        round) is not asked again. One that answers is marked up."""
        if unreachable is not None and name in unreachable:
            return None
        try:
            result = call()
        except ServiceError as exc:
            if not is_outage(exc):
                raise
            self._mark_down(name, exc)
            if unreachable is not None:
                unreachable.add(name)
            if all(other in self._down() for other in self._resource_names()):
                raise
            return None
        self._mark_up(name)
        return result

    def _on_each_resource(self, step: Callable[[str], T]) -> list[T | None]:
        """``step(name)`` on every resource not down (:meth:`_on_resource`)."""
        return [
            self._on_resource(name, functools.partial(step, name))
            for name in self._resource_names()
            if name not in self._down()
        ]

    def _resource_names(self) -> list[str]:
        return [resource.name for resource in self.data.resources]

    def _down(self) -> set[str]:
        return {n for n, state in self.data.resource_state.items() if state.down_since is not None}

    def _state(self, name: str) -> ResourceState:
        return self.data.resource_state.setdefault(name, ResourceState())

    def _mark_down(self, name: str, exc: BaseException) -> None:
        state = self._state(name)
        reason = str(getattr(exc, "message", exc)).splitlines()[0][:300]
        if state.down_since is None:
            state.down_since = self.clock()
            self.on_event(
                f"resource {name} is down ({reason}); its shards not yet created go elsewhere"
            )
        state.down_reason = reason
        self.save()

    def _mark_up(self, name: str) -> None:
        state = self.data.resource_state.get(name)
        if state is not None and state.down_since is not None:
            state.down_since = state.down_reason = None
            self.on_event(f"resource {name} answers again")
            self.save()

    def _slots(self) -> list[planner.Slot]:
        learned = {name: state.learned_quota for name, state in self.data.resource_state.items()}
        urls = {r.name: frozenset(load_profile(r.target).urls) for r in self.data.resources}
        return planner.slots_of(self.data.resources, learned, urls)

    def _need(self, shard: ShardState) -> planner.Need:
        """What the planner weighs; ``model``: body.model in the split shard."""
        model = shard.model or shard.deployment or ""
        return planner.Need(shard.index, model, shard.input_tokens or shard.bytes, shard.url)

    def rebalance(self) -> int:
        """Move shards not yet created: off a resource that is down (to the one with the
        most room), and off a deployment whose quota is full to one with room now. Every
        move is recorded in the shard's ``moves``. Returns the shards moved."""
        slots = self._slots()
        down = self._down()
        avoid = self.data.avoid_resources
        load: dict[planner.SlotKey, int] = {}
        for shard in self.shards:
            if shard.resource is not None and shard.deployment and not shard.terminal:
                key = (shard.resource, shard.deployment)
                load[key] = load.get(key, 0) + self._need(shard).tokens
        moved = 0
        for shard in self.shards:
            if shard.resource is None or shard.batch_id is not None:
                continue
            in_flight = shard.status == "creating" and self._down_too_long(shard.resource)
            if shard.status not in _MOVABLE and not in_flight:
                continue
            need, key = self._need(shard), (shard.resource, shard.deployment or "")
            target: planner.Slot | None = None
            if shard.resource in down:
                candidates = planner.serving(need, slots, down=down, avoid=avoid)
                if not candidates:
                    continue  # nowhere else to go: it waits for its resource
                target = planner.choose(need, candidates, load)
                reason = f"resource {shard.resource} is down"
                if in_flight:
                    reason += (
                        f" for over {self.data.creating_failover_seconds:g}s with a create in"
                        " flight (a batch it made there is cancelled once it answers)"
                    )
            elif shard.status in ("uploaded", "queued") and not self._ready(shard):
                # a full deployment, or backing off after a quota refusal
                target = planner.better_slot(need, key, slots, load, down=down, avoid=avoid)
                reason = f"enqueued-token quota of {shard.deployment} on {shard.resource} is full"
            if target is None:
                continue
            load[key] -= need.tokens
            load[target.key] = load.get(target.key, 0) + need.tokens
            self._move(shard, target, reason)
            moved += 1
        return moved

    def _down_too_long(self, name: str) -> bool:
        """Down for ``creating_failover_seconds``: a shard whose create was in flight there
        stops waiting to learn whether it went through and moves (a new attempt).

        Waiting first is the choice because the create usually did go through, and a
        resource that comes back soon answers that without a second batch; past the bound
        (15 minutes by default, recorded in the job file) the work matters more, and the
        batch the create may have made is cancelled when the resource answers again."""
        state = self.data.resource_state.get(name)
        if state is None or state.down_since is None:
            return False
        return self.clock() - state.down_since >= self.data.creating_failover_seconds

    def _move(self, shard: ShardState, slot: planner.Slot, reason: str) -> None:
        """Send a shard not yet created to another (resource, deployment): a new upload file
        if the deployment name differs, a new attempt number, and a record of why."""
        create_sent = shard.create_started_at is not None
        shard.moves.append(
            ShardMove(
                from_resource=shard.resource,
                from_deployment=shard.deployment,
                to_resource=slot.resource,
                to_deployment=slot.deployment,
                reason=reason,
                at=self.clock(),
                attempt=shard.attempt,
                create_sent=create_sent,
                checked=not create_sent,
            )
        )
        upload_path, shard.sha256, shard.bytes = self._upload_file(
            self.resolve(shard.path),
            shard.index,
            self._need(shard).model,
            slot.deployment,
            shard.split_sha256,
        )
        shard.upload_path = _rel(upload_path, self.folder)
        shard.resource, shard.deployment = slot.resource, slot.deployment
        shard.endpoint = load_profile(self.resource(slot.resource).target).batch_endpoint(shard.url)
        if create_sent:
            shard.attempt += 1
        shard.status = "pending"
        shard.file_id = shard.file_status = None
        shard.upload_started_at = shard.uploaded_at = shard.create_started_at = None
        shard.next_attempt_at = None
        shard.errors = []
        self._moved += 1
        self.save()
        self.on_event(
            f"shard {shard.index}: moved to {slot.deployment} on {slot.resource} ({reason})"
        )

    def _limit(self, shard: ShardState) -> int | None:
        """The enqueued-token limit of the shard's deployment: learned from the service,
        configured, or the job's ``enqueued_limit``."""
        if shard.resource is not None:
            for slot in self._slots():
                if slot.key == (shard.resource, shard.deployment) and slot.quota:
                    return slot.quota
        return self.data.enqueued_limit

    def _ready(self, shard: ShardState) -> bool:
        """Due (after a quota refusal's backoff) and within the enqueued-token limit."""
        if shard.next_attempt_at is not None and shard.next_attempt_at > self.clock():
            return False
        limit = self._limit(shard)
        if limit is None:
            return True
        enqueued = sum(
            other.input_tokens or 0
            for other in self.shards
            if other.active
            and other.deployment == shard.deployment
            and other.resource == shard.resource
            and other is not shard
        )
        return enqueued == 0 or enqueued + (shard.input_tokens or 0) <= limit

    # upload

    def _upload(self, shard: ShardState) -> None:
        name = naming.upload_name(shard.sha256)
        if shard.status == "uploading":
            found = self._find_uploads({name}, self.connection_for(shard)).get(name)
            if found is not None:
                self.on_event(f"shard {shard.index}: found earlier upload {found[0]}")
                self._uploaded(shard, *found)
                return
        shard.status = "uploading"
        shard.upload_started_at = self.clock()
        self.save()
        crash_point("upload-started", shard.index)
        connection = self.connection_for(shard)
        kwargs: dict[str, Any] = {}
        if self.data.file_expiry_seconds:
            kwargs["expires_after"] = {
                "anchor": "created_at",
                "seconds": self.data.file_expiry_seconds,
            }
        if connection.extra_body:
            kwargs["extra_body"] = connection.extra_body
        group = self._model_group(shard, connection)
        if group is not None:  # the proxy encodes the model group in the file id
            kwargs["extra_headers"] = {"x-litellm-model": group}
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
        connection = self.connection_for(shard)
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

    def _find_uploads(
        self, names: set[str], connection: Connection
    ) -> dict[str, tuple[str, str | None]]:
        """Uploads an earlier run made, by file name (the content hash), not failed:
        ``{name: (file id, status)}``, the newest per name."""
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
            "split_sha256": shard.split_sha256 or shard.sha256,
            **({"deployment": shard.deployment} if shard.deployment else {}),
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
        connection = self.connection_for(shard)
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
        group = self._model_group(shard, connection)
        if group is not None:  # it picks the deployment when the proxy load-balances batches
            extra_body["model"] = group
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
                # refused at connect: nothing was created, another resource can take it
                refused = shard.resource is not None and _not_sent(exc)
                if not is_transient(exc) or attempt > self.create_retries or refused:
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
        self._learn_quota(shard, shard.maximum_enqueued_tokens)
        self._apply_batch(shard, batch)
        self.save()
        self.on_event(f"shard {shard.index}: batch {shard.batch_id} {shard.status}")
        self._requeue_if_refused(shard)  # Azure's fail-fast quota check

    def _learn_quota(self, shard: ShardState, limit: int | None) -> None:
        """Remember the limit a service reported for a deployment (the create reply's
        ``deployment-maximum-enqueued-tokens`` header [AZ-REF-PREV], or the limit a
        ``token_limit_exceeded`` reply names [AZ-QA-TOK]; batch-api-spec.md §3.2)."""
        if shard.resource is None or not shard.deployment or not limit:
            return
        learned = self._state(shard.resource).learned_quota
        if learned.get(shard.deployment) != limit:
            learned[shard.deployment] = limit
            self.on_event(
                f"resource {shard.resource}: {shard.deployment} takes {limit} enqueued tokens"
            )

    def _find_batch(
        self, shard: ShardState, connection: Connection | None = None, attempt: int | None = None
    ) -> Any | None:
        """A batch this shard's current attempt (or ``attempt``) already has on its resource
        (or ``connection``): its metadata names it."""
        connection = connection or self.connection_for(shard)
        started = shard.create_started_at if attempt is None else None  # an earlier attempt's
        attempt = shard.attempt if attempt is None else attempt
        since = (started or self.data.created_at) - LOOKUP_SLACK_SECONDS
        for batch in _batches_since(connection, since):
            metadata = field_of(batch, "metadata") or {}
            if (
                metadata.get(METADATA_JOB_KEY) == self.data.job_id
                and metadata.get("shard") == str(shard.index)
                and metadata.get("attempt") == str(attempt)
                and batch.id not in shard.previous_batch_ids
            ):
                return batch
        return None

    def _requeue(self, shard: ShardState, batch_id: str | None, reason: str) -> None:
        """A quota refusal (token_limit_exceeded): back off and try again later, or give up
        after ``quota_max_attempts`` (the shard then stays ``failed`` with that error).
        A multi-resource job learns the deployment's limit from the reply's text."""
        found = _LIMIT_IN_MESSAGE.search(reason)
        if found is not None:
            self._learn_quota(shard, parse_quantity(found.group(1)))
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
        """Fetch the status of every running batch; requeue quota refusals. True if changed.

        In a multi-resource job a resource that does not answer is marked down and its
        batches are asked again next time (they keep running there); one that answers
        again is marked up."""
        changed = False
        unreachable: set[str] = set()
        for shard in self.shards:
            # a run that crashed between saving a refused batch and requeueing it
            if shard.attempt < self.quota_max_attempts and self._requeue_if_refused(shard):
                changed = True
        if self.data.resources:
            self._sweep_moves(unreachable)
            for name, state in list(self.data.resource_state.items()):
                if state.unreconciled:
                    late = functools.partial(self._reconcile_late, name)
                    self._on_resource(name, late, unreachable)
        for shard in self.shards:
            if not self._needs_refresh(shard):
                continue
            before = shard.model_dump()
            batch = self._guarded(shard, self._retrieve, unreachable)
            if batch is None:
                continue
            self._apply_batch(shard, batch)
            self._requeue_if_refused(shard)
            if shard.model_dump() != before:
                changed = True
                if shard.terminal:
                    self.on_event(self._finished_message(shard))
        if changed:
            self.save()
        return changed

    def _retrieve(self, shard: ShardState) -> Any:
        connection = self.connection_for(shard)
        return connection.call(
            f"checking batch {shard.batch_id} (shard {shard.index})",
            connection.client.batches.retrieve,
            shard.batch_id,
        )

    def _sweep_moves(self, unreachable: set[str]) -> None:
        """A shard moved after its create reached the old resource may have a batch there
        (the reply was lost): find it by its metadata and cancel it, so one batch per shard
        stays live. Left for later while the old resource does not answer."""
        for shard in self.shards:
            for move in shard.moves:
                if not move.checked and move.from_resource is not None:
                    check = functools.partial(self._cancel_left_behind, shard, move)
                    self._on_resource(move.from_resource, check, unreachable)

    def _cancel_extra(
        self, shard: ShardState, connection: Connection, batch_id: str, why: str
    ) -> None:
        """Cancel a second batch of a shard. One that ended since it was listed refuses (the
        emulator answers 409): nothing is left to cancel then, so that is no error."""
        import openai

        try:
            self._cancel_batch(shard, connection, batch_id)
        except ServiceError as exc:
            refused = isinstance(exc.__cause__, openai.APIStatusError) and not is_outage(exc)
            if not refused:
                raise
            self.on_event(f"shard {shard.index}: batch {batch_id} {why} had ended: {exc}")
            return
        shard.previous_batch_ids.append(batch_id)
        self.on_event(f"shard {shard.index}: cancelled batch {batch_id} {why}")

    def _cancel_left_behind(self, shard: ShardState, move: ShardMove) -> None:
        name = move.from_resource or ""
        connection = self.resource_connection(name)
        found = self._find_batch(shard, connection, move.attempt)
        status = normalize_status(field_of(found, "status")) if found else None
        if (
            found is not None
            and str(found.id) != shard.batch_id  # taken over by a reconcile
            and status not in TERMINAL_STATUSES | {"cancelling"}
        ):
            self._cancel_extra(shard, connection, str(found.id), f"left on {name} by the move")
        move.checked = True
        self.save()

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
        unreachable: set[str] = set()
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
                step = functools.partial(self._download_shard, kinds=kinds)
                written.extend(self._guarded(shard, step, unreachable) or [])
        return written

    def _download_shard(self, shard: ShardState, kinds: list[str]) -> list[Path]:
        targets = {kind: naming.download_path(self.path, shard.index, kind) for kind in kinds}
        folder = targets[kinds[0]].parent
        hashes: dict[str, str] = {}
        with FileSet(folder, naming.download_set(self.path, shard.index)) as files:
            for kind, target in targets.items():
                hashes[kind] = self._stream_to(
                    shard,
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

    def _stream_to(
        self, shard: ShardState, file_id: str, staged: Path, target: Path, action: str
    ) -> str:
        """Download a file of a shard to ``staged`` (published as ``target``); its sha256."""
        connection = self.connection_for(shard)
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
        """Cancel every running batch; shards not yet submitted are cancelled locally.
        (Multi-resource: a batch on a resource that does not answer is left running; cancel
        again once it does.)"""
        cancelled: list[str] = []
        unreachable: set[str] = set()
        self.refresh()
        for shard in self.shards:
            if shard.status == "creating":
                found = self._guarded(shard, self._find_batch, unreachable)
                if found is not None:
                    self._created(shard, found, {})
                elif shard.resource in unreachable:
                    continue  # its create may have gone through: ask again next time
            if shard.batch_id is None and not shard.terminal:
                shard.status = "cancelled"
                shard.finished_at = self.clock()
                continue
            if shard.terminal or shard.status == "cancelling":
                continue
            batch = self._guarded(shard, self._cancel_batch, unreachable)
            if batch is None:
                self.on_event(
                    f"shard {shard.index}: {shard.resource} does not answer, not cancelled"
                )
                continue
            self._apply_batch(shard, batch)
            cancelled.append(str(shard.batch_id))
            self.on_event(f"shard {shard.index}: batch {shard.batch_id} {shard.status}")
        self.save()
        return cancelled

    def _cancel_batch(
        self, shard: ShardState, connection: Connection | None = None, batch_id: str | None = None
    ) -> Any:
        """Cancel the shard's batch (or ``batch_id`` on ``connection``: one left behind)."""
        connection = connection or self.connection_for(shard)
        batch_id = batch_id or shard.batch_id
        return connection.call(
            f"cancelling batch {batch_id} (shard {shard.index})",
            connection.client.batches.cancel,
            batch_id,
            extra_body=connection.extra_body,
        )

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
            **({"resources": self.resource_summary()} if self.data.resources else {}),
        }

    def resource_summary(self) -> dict[str, dict[str, Any]]:
        """Per resource of a multi-resource job: shards, requests, and whether it is down."""
        rows: dict[str, dict[str, Any]] = {}
        for resource in self.data.resources:
            state = self.data.resource_state.get(resource.name) or ResourceState()
            rows[resource.name] = {
                "endpoint": resource.endpoint,
                "shards": 0,
                "requests": 0,
                "completed": 0,
                "down": state.down_since is not None,
                "down_reason": state.down_reason,
                "learned_quota": dict(state.learned_quota),
            }
        for shard in self.shards:
            row = rows.get(shard.resource or "")
            if row is not None:
                row["shards"] += 1
                row["requests"] += shard.requests
                row["completed"] += shard.request_counts.completed
        return rows

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
                "resource": shard.resource,
                "moved_from": [move.from_resource for move in shard.moves],
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
    """Copy a shard with every ``body.model`` set to ``deployment``; returns (sha256, bytes).

    A shard is a file split wrote (one request object per line, no BOM, ``\\n`` endings), so
    its lines go straight to orjson: 2.4x the speed of the general reader on this step."""
    import orjson

    digest = hashlib.sha256()
    loads, dumps, newline = orjson.loads, orjson.dumps, orjson.OPT_APPEND_NEWLINE
    with open(source, "rb") as stream, AtomicWriter(target) as writer:
        chunk: list[bytes] = []
        for number, raw in enumerate(stream, start=1):
            try:
                obj = loads(raw)
                obj["body"]["model"] = deployment
            except (orjson.JSONDecodeError, TypeError, KeyError, IndexError):
                if not raw.strip():
                    continue
                raise InputError(
                    f"{source}:{number}: not a request line with a body",
                    hint="validate the file first (validate_file)",
                ) from None
            chunk.append(dumps(obj, option=newline))
            if len(chunk) >= 1024:
                _write_chunk(chunk, digest, writer)
        _write_chunk(chunk, digest, writer)
    return digest.hexdigest(), writer.bytes


def _write_chunk(chunk: list[bytes], digest: Any, writer: AtomicWriter) -> None:
    data = b"".join(chunk)
    digest.update(data)
    writer.write_raw(data)
    chunk.clear()


def _by_content(shards: Sequence[ShardState], name: str | None) -> dict[str, ShardState]:
    """Shards by the content hashes their batches carry: the upload's (``shard_sha256``),
    and on a resource of a multi-resource job (``name``) the split shard's too."""
    wanted: dict[str, ShardState] = {}
    for shard in shards:
        wanted[shard.sha256] = shard
        if name is not None:
            wanted[shard.split_sha256 or shard.sha256] = shard
    return wanted


def _shard_of(batch: Any, wanted: Mapping[str, ShardState], name: str | None) -> ShardState | None:
    """The shard of ``wanted`` a batch's metadata names by content (see :func:`_by_content`)."""
    metadata = field_of(batch, "metadata") or {}
    fields = ("shard_sha256",) if name is None else ("split_sha256", "shard_sha256")
    for field in fields:
        shard = wanted.get(str(metadata.get(field)))
        if shard is not None:
            return shard
    return None


def _batches_since(connection: Connection, since: float) -> Iterator[Any]:
    """The service's batches, newest first, page by page until a page holds only batches
    created before ``since``."""
    page = connection.call("listing batches", connection.client.batches.list, limit=100)
    while True:
        data = list(page.data)
        yield from data
        created = [timestamp_of(field_of(batch, "created_at")) for batch in data]
        if not data or all(c is not None and c < since for c in created):
            return
        if not page.has_next_page():
            return
        page = connection.call("listing batches", page.get_next_page)


def _not_sent(exc: BaseException) -> bool:
    """The connection was refused: the request never left, so nothing was created (in a
    multi-resource job the shard can then go to another resource at once). The SDK's HTTP
    client raises its ``ConnectError`` under ``APIConnectionError`` then (by name: the
    client package differs between SDK versions)."""
    import openai

    return isinstance(exc, openai.APIConnectionError) and any(
        cls.__name__ == "ConnectError" for cls in type(exc.__cause__).__mro__
    )


def _check_resource_names(resources: Sequence[Resource]) -> None:
    names = [resource.name for resource in resources]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise JobError(
            f"resource {', '.join(twice)} listed twice", hint="give every resource its own name"
        )


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
