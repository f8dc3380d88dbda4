"""jsonl-batch: build, validate, estimate, split, submit and merge Batch API files.

The main entry points are importable from here; modules that pull in the tokenizer or the
HTTP client load only when first used, so ``import jsonl_batch`` stays cheap.

>>> import jsonl_batch
>>> report = jsonl_batch.validate_file("requests.jsonl", target="azure")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__
from .errors import JsonlBatchError
from .jsonl import AtomicWriter, Line, read_lines, write_jsonl

# name → module that defines it, imported on first access (PEP 562)
_LAZY = {
    "RequestFileBuilder": "build",
    "validate_file": "validate",
    "Validator": "validate",
    "ValidationReport": "validate",
    "TokenCounter": "tokens",
    "count_request_tokens": "tokens",
    "PriceTable": "pricing",
    "estimate_file": "estimate",
    "split_file": "split",
    "read_manifest": "formats.manifest",
    "read_job_file": "formats.jobfile",
    "Job": "service",
    "merge": "merge",
    "MergeResult": "merge",
}

__all__ = [
    "AtomicWriter",
    "JsonlBatchError",
    "Line",
    "__version__",
    "read_lines",
    "write_jsonl",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jsonl_batch' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
