"""jsonl-batch: build, validate, estimate, split, submit and merge Batch API files.

Every name in ``__all__`` is importable from here and documented in the README's "Library"
section; modules that pull in the tokenizer or the HTTP client load only when first used, so
``import jsonl_batch`` stays cheap.

>>> import jsonl_batch
>>> report = jsonl_batch.validate_file("requests.jsonl", target="azure")  # doctest: +SKIP
>>> job = jsonl_batch.Job.submit("requests.jsonl", jsonl_batch.connect())  # doctest: +SKIP
>>> for row in jsonl_batch.read_results("requests.results.jsonl"):  # doctest: +SKIP
...     print(row.custom_id, row.status, row.text, row.cost_usd)
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    ConfigError,
    InputError,
    JobError,
    JsonlBatchError,
    MergeError,
    PriceNotFound,
    ServiceError,
    SplitError,
    StorageError,
)
from .jsonl import AtomicWriter, Line, read_lines, write_jsonl

# name → module that defines it, imported on first access (PEP 562)
_LAZY = {
    # the trip, step by step
    "RequestFileBuilder": "build",
    "validate_file": "validate",
    "ValidationReport": "validate",
    "Validator": "validate",
    "estimate_file": "estimate",
    "EstimateResult": "estimate",
    "split_file": "split",
    "SplitResult": "split",
    "connect": "service",
    "Connection": "service",
    "Job": "service",
    "merge": "merge",
    "MergeResult": "merge",
    "read_results": "merge",
    "ResultRow": "formats.results",
    "find_sources": "report",
    "build_report": "report",
    "write_report": "report",
    "Report": "report",
    # the files the tool writes, read back
    "read_manifest": "formats.manifest",
    "read_job_file": "formats.jobfile",
    "read_resources": "formats.resources",
    "Resource": "formats.resources",
    # tokens and prices
    "TokenCounter": "tokens",
    "count_request_tokens": "tokens",
    "PriceTable": "pricing",
}

__all__ = [  # every name is documented in the README's Library section
    "AtomicWriter",
    "ConfigError",
    "Connection",
    "EstimateResult",
    "InputError",
    "Job",
    "JobError",
    "JsonlBatchError",
    "Line",
    "MergeError",
    "MergeResult",
    "PriceNotFound",
    "PriceTable",
    "Report",
    "RequestFileBuilder",
    "Resource",
    "ResultRow",
    "ServiceError",
    "SplitError",
    "SplitResult",
    "StorageError",
    "TokenCounter",
    "ValidationReport",
    "Validator",
    "__version__",
    "build_report",
    "connect",
    "count_request_tokens",
    "estimate_file",
    "find_sources",
    "merge",
    "read_job_file",
    "read_lines",
    "read_manifest",
    "read_resources",
    "read_results",
    "split_file",
    "validate_file",
    "write_jsonl",
    "write_report",
]


if TYPE_CHECKING:  # what type checkers see; at run time each loads on first use
    from .build import RequestFileBuilder
    from .estimate import EstimateResult, estimate_file
    from .formats.jobfile import read_job_file
    from .formats.manifest import read_manifest
    from .formats.resources import Resource, read_resources
    from .formats.results import ResultRow
    from .merge import MergeResult, merge, read_results
    from .pricing import PriceTable
    from .service import Connection, Job, connect
    from .split import SplitResult, split_file
    from .tokens import TokenCounter, count_request_tokens
    from .validate import ValidationReport, Validator, validate_file


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jsonl_batch' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """Keeps ``jsonl_batch.merge`` the function: importing a submodule binds its name in the
    package, and the ``merge`` subpackage would otherwise hide the function of that name
    (the subpackage stays importable: ``from jsonl_batch.merge import MergeResult``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _LAZY.get(name) == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
