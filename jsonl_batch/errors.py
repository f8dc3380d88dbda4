"""One exception hierarchy for the whole package.

The CLI catches :class:`JsonlBatchError` and prints its message without a traceback, so
every message here must say what went wrong, where (file and line when known), and what to do.
"""

from __future__ import annotations

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


def first_problem(exc: ValidationError) -> str:
    """``where: what`` of the first problem pydantic found, for one-line messages."""
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}"
