"""Publish several files at once: a reader sees the old set or the new set, never a mix.

``split`` writes shards and a manifest, ``merge`` results, a retry file and a summary,
``download`` an output and an error file: each set has to change as one, even when the
process is killed between two renames or the disk fills up. How:

1. The new files are written into a hidden staging folder next to where they go
   (``.<set>.publish-<random>``, so every rename stays on one file system). The writer holds
   a lock on it (``flock``, released by the kernel when the process dies).
2. :meth:`FileSet.commit` writes ``PUBLISH.json`` into the staging folder: every move and
   removal, in order, with the marker (the manifest, the summary) last. Writing it is the
   commit point: before it, the old set stands; after it, the new one does.
3. The moves are carried out; the staging folder is removed.

A process killed in step 3 leaves a committed staging folder: the next writer or reader of
the set calls :func:`settle` first, which finishes the moves (they are idempotent), so the
set it then sees is the new one, complete. A staging folder with no journal and no live
writer is debris from a killed or failed run; :func:`settle` removes it.

The marker names the set with each file's sha256, and readers go by what it names (the
formats' readers: ``read_manifest``, ``read_job_file``), so a file in the folder that no
marker names is never read by mistake.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from .crash import crash_point
from .errors import StorageError, storage_error

JOURNAL = "PUBLISH.json"
_LOCK = ".lock"
_SUFFIX = ".publish-"
_NEW = ".new-"  # a staging folder before its lock is taken
_NEW_DEBRIS_SECONDS = 60.0
_HASH_CHUNK = 1 << 20


def staging_prefix(set_name: str) -> str:
    """The name every staging folder of a set starts with (hidden, next to its files)."""
    return f".{set_name}{_SUFFIX}"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as stream:
        while chunk := stream.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system can sync a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _try_lock(staging: Path) -> int | None:
    """An exclusive lock on a staging folder, or None when a live process holds it."""
    try:
        fd = os.open(staging / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _roll_forward(staging: Path) -> None:
    """Carry out a committed journal: every move (a move already done is skipped), every
    removal, then drop the staging folder."""
    journal = orjson.loads((staging / JOURNAL).read_bytes())
    folder = staging.parent
    crash_point("published", 0)
    for moved, (staged, final) in enumerate(journal["moves"], start=1):
        source = staging / staged
        if source.exists():
            os.replace(source, folder / final)
        crash_point("published", moved)
    for name in journal["removes"]:
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
    _fsync_dir(folder)
    shutil.rmtree(staging, ignore_errors=True)


def settle(folder: str | os.PathLike[str], set_name: str) -> None:
    """Finish a publish of ``set_name`` in ``folder`` that a killed process committed, and
    remove staging folders left by killed or failed runs (not those of a live writer)."""
    base = Path(folder)
    prefix = staging_prefix(set_name)
    starting = f".{set_name}{_NEW}"
    try:
        entries = list(base.iterdir())
    except OSError:  # no folder yet (nothing to settle), or not readable (the caller says)
        return
    for entry in entries:  # killed between creating a staging folder and locking it
        if entry.name.startswith(starting) and _age(entry) > _NEW_DEBRIS_SECONDS:
            shutil.rmtree(entry, ignore_errors=True)
    candidates = [p for p in entries if p.name.startswith(prefix) and p.is_dir()]
    for staging in sorted(candidates):
        fd = _try_lock(staging)
        if fd is None:
            continue  # a live writer's
        try:
            if (staging / JOURNAL).exists():
                try:
                    _roll_forward(staging)
                except OSError as exc:
                    raise _unfinished(exc, staging.parent) from None
            else:
                shutil.rmtree(staging, ignore_errors=True)
        finally:
            os.close(fd)


def _unfinished(exc: OSError, folder: Path) -> StorageError:
    error = storage_error(exc, folder, "publish the new files")
    error.hint = (
        f"{error.hint}; the new files are committed: the next run that reads or writes them"
        " finishes publishing them"
    )
    return error


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


class FileSet:
    """New files for ``folder``, staged until :meth:`commit` publishes them together.

    Use as a context manager: leaving the block with an exception discards the staging
    folder; :meth:`commit` must be called explicitly to publish::

        with FileSet(out_dir, "data.split") as files:
            write(files.path("a.jsonl")) ...
            files.publish("a.jsonl", sha256=...)   # or publish(staged_name, as_name)
            files.remove("old.jsonl")
            files.publish("data.manifest.json")  # the marker, last
            files.commit()
    """

    def __init__(self, folder: str | os.PathLike[str], set_name: str) -> None:
        self.folder = Path(folder)
        self.set_name = set_name
        self._moves: list[tuple[str, str]] = []
        self._removes: list[str] = []
        self._lock: int | None = None
        self.committed = False
        self.created_folder = not self.folder.exists()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, self.folder, "create the folder") from None
        settle(self.folder, set_name)
        try:
            new = Path(tempfile.mkdtemp(prefix=f".{set_name}{_NEW}", dir=self.folder))
            self._lock = _try_lock(new)
            # renamed only once locked, so settle() never takes a live one for debris
            self.staging = self.folder / (staging_prefix(set_name) + new.name.rsplit("-", 1)[1])
            os.rename(new, self.staging)
        except OSError as exc:
            self._unlock()
            if self.created_folder:
                with contextlib.suppress(OSError):
                    self.folder.rmdir()
            raise storage_error(exc, self.folder, "write here") from None

    def __enter__(self) -> FileSet:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.discard()

    def path(self, name: str) -> Path:
        """Where to write a file of the set (inside the staging folder)."""
        return self.staging / name

    def publish(self, staged_name: str, as_name: str | None = None) -> Path:
        """Publish the staged file ``staged_name`` as ``as_name`` (default: the same name) in
        the folder; files are published in the order of these calls. Returns the final path."""
        final = as_name or staged_name
        if os.sep in final or final in ("", ".", ".."):
            raise ValueError(f"{final!r}: a set publishes file names, not paths")
        self._moves.append((staged_name, final))
        return self.folder / final

    def remove(self, name: str) -> None:
        """Remove ``name`` from the folder when the set is published (a stale file)."""
        self._removes.append(name)

    def commit(self) -> None:
        """Publish: write the journal (the commit point), move the files, clean up."""
        staging = self.staging
        crash_point("staged")
        try:
            for staged, _final in self._moves:
                fd = os.open(staging / staged, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            journal = {"moves": self._moves, "removes": self._removes}
            tmp = staging / (JOURNAL + ".tmp")
            with open(tmp, "wb") as stream:
                stream.write(orjson.dumps(journal))
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(tmp, staging / JOURNAL)
            self.committed = True
            _fsync_dir(staging)
        except BaseException as exc:
            self.discard()
            if isinstance(exc, OSError):
                raise storage_error(exc, self.folder, "write here") from None
            raise
        try:
            _roll_forward(staging)
        except OSError as exc:  # committed: the next run finishes it
            raise _unfinished(exc, self.folder) from None
        finally:
            self._unlock()

    def discard(self) -> None:
        """Drop everything staged; the published set is untouched. Once committed, the set
        stays committed: the next :func:`settle` finishes publishing it."""
        if self.committed:
            self._unlock()
            return
        shutil.rmtree(self.staging, ignore_errors=True)
        self._unlock()
        if self.created_folder:
            with contextlib.suppress(OSError):
                self.folder.rmdir()  # only if still empty

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def describe(
    paths: dict[str, Path | None], known: dict[str, str | None] | None = None
) -> dict[str, Any]:
    """``{role: {"path": name, "bytes": n, "sha256": hex}}`` of files about to be published
    (None for a role with no file), for the marker that names the set. ``known`` gives the
    sha256 of files whose writer kept it (no need to read them back)."""
    named: dict[str, Any] = {}
    for role, path in paths.items():
        if path is None:
            named[role] = None
            continue
        try:
            named[role] = {
                "path": path.name,
                "bytes": path.stat().st_size,
                "sha256": (known or {}).get(role) or sha256_file(path),
            }
        except OSError as exc:
            raise storage_error(exc, path, "read it back") from None
    return named


__all__ = [
    "JOURNAL",
    "FileSet",
    "describe",
    "settle",
    "sha256_file",
    "staging_prefix",
]
