"""The package's top level: the documented names, and a cheap import."""

from __future__ import annotations

import subprocess
import sys

import jsonl_batch


def test_every_public_name_resolves() -> None:
    for name in jsonl_batch.__all__:
        assert getattr(jsonl_batch, name) is not None, name
    assert set(jsonl_batch._LAZY) <= set(jsonl_batch.__all__)


def test_merge_is_the_function_whatever_was_imported_first() -> None:
    code = (
        "from jsonl_batch.merge.join import Join\n"  # the subpackage, before the function
        "import jsonl_batch\n"
        "from jsonl_batch import merge\n"
        "assert callable(jsonl_batch.merge) and merge is jsonl_batch.merge, jsonl_batch.merge\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_and_validate_do_not_load_the_tokenizer_or_http_client() -> None:
    code = (
        "import sys, jsonl_batch\n"
        "from jsonl_batch.cli import main\n"
        "jsonl_batch.validate_file\n"
        "print(sorted(m for m in ('tiktoken', 'openai', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
