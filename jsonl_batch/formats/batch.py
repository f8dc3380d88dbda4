"""The batch object as the services return it: its statuses, and reading its fields.

Statuses are the service's (Azure OpenAI, OpenAI and LiteLLM share them), lower-cased, with
the American spellings Azure also uses folded to the ones OpenAI documents.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

# After these no more results come; a batch's output and error files are final.
TERMINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})
# A batch in these holds enqueued tokens on its deployment.
ACTIVE_STATUSES = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
# A shard of a job has these before its batch exists:
# pending → uploading → uploaded → (queued ↔) creating → validating → ...
LOCAL_STATUSES = ("pending", "uploading", "uploaded", "queued", "creating")
_SPELLINGS = {"canceled": "cancelled", "canceling": "cancelling"}
# The batch object's timestamps (Unix seconds on the service's clock), in the order a batch
# meets them; ``expires_at`` is the end of its completion window. Source: the openai SDK's
# ``types/batch.py`` (``Batch``) and Azure's batch how-to (AZ-HOWTO in data/profiles.json),
# which share these names (research/batch-api-spec.md, the batch object's fields).
BATCH_TIMES = (
    "created_at",
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
    "expires_at",
)


def normalize_status(status: Any) -> str:
    """``Canceled`` → ``cancelled``; ``None`` → ``""``."""
    text = str(status or "").lower()
    return _SPELLINGS.get(text, text)


def field_of(obj: Any, name: str) -> Any:
    """A field of a batch or file object, whether the SDK's object or a plain dict."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def timestamp_of(value: Any) -> float | None:
    """Unix seconds from a batch's ``*_at`` field: an int, or an ISO-8601 string (Azure's
    REST samples use both)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
