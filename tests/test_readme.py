"""The README's examples run, so they stay true.

They run from a temporary copy of the repository's layout (``samples/`` inside, as in a
clone), with AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_API_KEY pointing at the local emulator:
```python blocks run as scripts; the ```console blocks run in README order, each
``$ jsonl-batch ...`` line through the CLI, expecting exit 0 or the code named in a trailing
``# exit N``. A command sent to the background (``... &``, the README's emulator) is only
parsed: the test's emulator stands in for it, and its endpoint and key for the exported
ones. A block whose info string says ``no-test`` is skipped.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import click
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
def workdir(tmp_path: Path, emulator, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The root of a clone: ``samples/`` without what the demo wrote; the emulator's
    endpoint and key in the environment."""
    work = tmp_path / "clone"
    shutil.copytree(SAMPLES, work / "samples", ignore=shutil.ignore_patterns("out"))
    monkeypatch.chdir(work)
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", emulator.base_url)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", emulator.config.api_key)
    return work


@pytest.mark.parametrize("code", blocks("python"))
def test_python_examples(workdir: Path, code: str) -> None:
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})


def _parses(args: list[str]) -> None:
    """A backgrounded command: its options must parse; it is not run."""
    command = main.get_command(click.Context(main), args[0])
    assert command is not None, args
    command.make_context(args[0], args[1:])


def test_console_examples(workdir: Path) -> None:
    runner = CliRunner()
    lines = [line for block in blocks("console") for line in block.splitlines()]
    ran = 0
    for line in lines:
        if not line.startswith("$ jsonl-batch "):
            continue
        command, _, comment = line[len("$ jsonl-batch ") :].partition("#")
        args = shlex.split(os.path.expandvars(command))
        if args and args[-1] == "&":
            _parses(args[:-1])
            continue
        expected = int(comment.split()[1]) if comment.strip().startswith("exit") else 0
        result = runner.invoke(main, args)
        assert result.exit_code == expected, f"{line}\n{result.output}"
        ran += 1
    assert ran >= 20
    assert (workdir / "samples/out/azure-chat.results.jsonl").exists()  # "Try submit locally"
