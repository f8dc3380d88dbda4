"""One exception hierarchy for the whole package.

The CLI catches :class:`JsonlBatchError` and prints its message without a traceback, so
every message here must say what went wrong, where (file and line when known), and what to do.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class JsonlBatchError(Exception):
    """Base class of every error jsonl-batch raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\nhint: {self.hint}" if self.hint else self.message


class InputError(JsonlBatchError):
    """An input file is missing, unreadable or not what the command needs."""


class StorageError(InputError):
    """The file system refused: disk full, read-only, no permission, not a regular file."""


class ConfigError(JsonlBatchError):
    """A bundled or user-supplied data file (profile, price table, map) is invalid."""

    exit_code = 2


class EncodingUnavailable(JsonlBatchError):
    """A tokenizer encoding file is missing or fails its sha256 check."""


class PriceNotFound(JsonlBatchError):
    """A model has no row in the price table."""


class SplitError(JsonlBatchError):
    """A file cannot be split under the requested limits."""


class ServiceError(JsonlBatchError):
    """The batch service (Azure OpenAI, OpenAI, a LiteLLM proxy) refused or failed a call."""


class JobError(JsonlBatchError):
    """A job file is missing, corrupt or inconsistent with the service."""


class MergeError(JsonlBatchError):
    """Outputs cannot be joined to inputs."""


# errno -> what to do about it, in words a user acts on
_STORAGE_HINTS = {
    errno.ENOSPC: "the disk is full: free some space (or write somewhere else) and run the"
    " same command again",
    errno.EDQUOT: "the disk quota is used up: free some space and run the same command again",
    errno.EROFS: "that file system is read-only: write somewhere else (e.g. out_dir=DIR)",
    errno.EACCES: "no permission: check the owner and mode of the file and its folder,"
    " or write somewhere else",
    errno.EPERM: "not permitted: check the owner and mode of the file and its folder",
    errno.EISDIR: "that is a folder: pass a file",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.ESPIPE: "that is a pipe or a device, which cannot be read twice: pass a regular file"
    " (or copy it to one first)",
    errno.ENOENT: "check the path",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n) or merge fewer files",
    errno.ENAMETOOLONG: "the name is too long for the file system: choose a shorter path",
}


def storage_error(exc: OSError, path: str | os.PathLike[str] | None, action: str) -> StorageError:
    """A clear error for an OS failure: ``<path>: cannot <action>: <reason>`` and what to do.

    ``action`` says what was being done in a few words (``write``, ``read``, ``create the
    folder``). The path defaults to the one the OS error names.
    """
    where = path if path is not None else exc.filename
    reason = exc.strerror or str(exc) or type(exc).__name__
    hint = _STORAGE_HINTS.get(exc.errno or 0, "check the path, the disk and the permissions")
    prefix = f"{os.fspath(where)}: " if where is not None else ""
    return StorageError(f"{prefix}cannot {action}: {reason}", hint=hint)


def first_problem(exc: ValidationError) -> str:
    """``where: what`` of the first problem pydantic found, for one-line messages."""
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}"
