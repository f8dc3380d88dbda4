"""The README's examples run, so they stay true.

```python blocks run as scripts; the ```console blocks run, in README order and in one
folder, each ``$ jsonl-batch ...`` line through the CLI, expecting exit 0 or the code named
in a trailing ``# exit N``. They run in a temporary copy of samples/, with
AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_API_KEY pointing at the local emulator. A block whose
info string says ``no-test`` is skipped.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from jsonl_batch.cli import main

from .conftest import ROOT, SAMPLES

BLOCK = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.S | re.M)


def blocks(kind: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [
        body for lang, info, body in BLOCK.findall(text) if lang == kind and "no-test" not in info
    ]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "work"
    shutil.copytree(SAMPLES, work, ignore=shutil.ignore_patterns("out", "*.py"))
    monkeypatch.chdir(work)
    return work


@pytest.mark.parametrize("code", blocks("python"))
def test_python_examples(workdir: Path, code: str) -> None:
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})


def test_console_examples(workdir: Path, emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", emulator.base_url)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", emulator.config.api_key)
    runner = CliRunner()
    lines = [line for block in blocks("console") for line in block.splitlines()]
    ran = 0
    for line in lines:
        if not line.startswith("$ jsonl-batch "):
            continue
        command, _, comment = line[len("$ jsonl-batch ") :].partition("#")
        expected = int(comment.split()[1]) if comment.strip().startswith("exit") else 0
        result = runner.invoke(main, shlex.split(os.path.expandvars(command)))
        assert result.exit_code == expected, f"{line}\n{result.output}"
        ran += 1
    assert ran >= 10
