"""Files and batches the emulator holds: metadata in memory, contents on disk.

File contents always live on disk (a temporary folder by default, ``<data-dir>/files``
with ``--data-dir``), so memory does not grow with upload size. With a data dir the
metadata is also written to ``<data-dir>/state.json`` after every change, atomically, so
a restarted emulator keeps its files and batches.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..formats.batch import TERMINAL_STATUSES
from ..jsonl import atomic_write_json, read_json

STATE_FILE = "state.json"


@dataclass
class FileRecord:
    """One stored file and what the API shows about it."""

    id: str
    bytes: int
    created_at: int
    filename: str
    purpose: str
    expires_at: int | None
    status: str = "processed"
    scan: dict[str, Any] | None = None
    """Cached ``{deployment, input_tokens, requests}`` of a batch input file."""

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": self.status,
            "status_details": None,
            "expires_at": self.expires_at,
        }


@dataclass
class BatchRecord:
    """One batch: the API object plus the emulator's schedule for it."""

    obj: dict[str, Any]
    flavor: str
    """``azure`` (``/openai/...`` paths) or ``openai`` (``/v1/...``): decides rules and files."""
    deployment: str | None = None
    input_tokens: int = 0
    phase_ends_at: float | None = None
    """Simulated time the current phase may end (validating, in_progress, finalizing...)."""
    started_at: float | None = None
    """Simulated time ``in_progress`` began (progress is measured from it)."""
    window_ends_at: float | None = None
    """Simulated time the completion window closes: the batch expires if still running."""
    expire: bool = False
    validation: dict[str, Any] | None = None
    """``{"errors": [...], "total": n}`` once the input file has been checked."""
    results: dict[str, Any] | None = None
    """``{"output": path, "error": path, "completed": n, "failed": n}`` once written."""
    done_fraction: float | None = None
    """Share of requests finished when a cancel or an expiry cut the batch short."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.obj["id"]

    @property
    def status(self) -> str:
        return self.obj["status"]

    @property
    def terminal(self) -> bool:
        return self.obj["status"] in TERMINAL_STATUSES


def new_file_id() -> str:
    return "file-" + uuid.uuid4().hex


def new_batch_id() -> str:
    return "batch_" + str(uuid.uuid4())


class Store:
    """Files and batches, in insertion order, with file contents under ``files_dir``."""

    def __init__(self, data_dir: Path | None) -> None:
        self.data_dir = data_dir
        self._temp_dir: str | None = None
        if data_dir is None:
            self._temp_dir = tempfile.mkdtemp(prefix="jsonl-batch-emulator-")
            self.files_dir = Path(self._temp_dir)
        else:
            self.files_dir = data_dir / "files"
            self.files_dir.mkdir(parents=True, exist_ok=True)
        self.files: dict[str, FileRecord] = {}
        self.batches: dict[str, BatchRecord] = {}
        self.saved_sim_time: float | None = None
        if data_dir is not None and (data_dir / STATE_FILE).exists():
            self._load()

    # --- contents -----------------------------------------------------------------------

    def content_path(self, file_id: str) -> Path:
        return self.files_dir / file_id

    def open_upload(self) -> tuple[str, BinaryIO]:
        """A new temporary file in the contents folder for an upload in progress."""
        fd, path = tempfile.mkstemp(prefix=".upload-", dir=self.files_dir)
        return path, os.fdopen(fd, "wb")

    def new_result_path(self) -> Path:
        fd, path = tempfile.mkstemp(prefix=".result-", dir=self.files_dir)
        os.close(fd)
        return Path(path)

    def add_file(self, record: FileRecord, source: str | os.PathLike[str]) -> FileRecord:
        """Register ``source`` (moved into place) under ``record.id``."""
        os.replace(source, self.content_path(record.id))
        self.files[record.id] = record
        return record

    def delete_file(self, file_id: str) -> None:
        self.files.pop(file_id, None)
        with contextlib.suppress(FileNotFoundError):
            self.content_path(file_id).unlink()

    def clear(self) -> None:
        """Forget every file and batch (``/_emulator/reset``)."""
        for file_id in list(self.files):
            self.delete_file(file_id)
        for leftover in self.files_dir.glob(".result-*"):
            leftover.unlink(missing_ok=True)
        self.batches.clear()

    def close(self) -> None:
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)

    # --- persistence --------------------------------------------------------------------

    def save(self, sim_time: float) -> None:
        """Write metadata to ``state.json`` (only with a data dir)."""
        if self.data_dir is None:
            return
        atomic_write_json(
            self.data_dir / STATE_FILE,
            {
                "sim_time": sim_time,
                "files": [asdict(f) for f in self.files.values()],
                "batches": [asdict(b) for b in self.batches.values()],
            },
        )

    def _load(self) -> None:
        assert self.data_dir is not None
        state = read_json(self.data_dir / STATE_FILE)
        self.saved_sim_time = state.get("sim_time")
        for raw in state.get("files", []):
            file = FileRecord(**raw)
            if self.content_path(file.id).exists():
                self.files[file.id] = file
        for raw in state.get("batches", []):
            batch = BatchRecord(**raw)
            self.batches[batch.id] = batch
