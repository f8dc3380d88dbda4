"""jsonl-batch: build, validate, estimate, split, submit and merge Batch API files."""

from ._version import __version__
from .errors import JsonlBatchError
from .jsonl import AtomicWriter, Line, read_lines, write_jsonl

__all__ = [
    "AtomicWriter",
    "JsonlBatchError",
    "Line",
    "__version__",
    "read_lines",
    "write_jsonl",
]
