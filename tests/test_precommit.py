"""The pre-commit hook, run by the real ``pre-commit try-repo``.

pre-commit installs the hook into a fresh virtualenv with pip. To keep the test offline,
``make`` fills ``.venv/wheelhouse`` with wheels of the project's dependencies at install time,
and the test points pip there with ``--no-index``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, SAMPLES

WHEELHOUSE = ROOT / ".venv" / "wheelhouse"
PRE_COMMIT = Path(sys.executable).parent / "pre-commit"

pytestmark = pytest.mark.skipif(
    not (PRE_COMMIT.exists() and WHEELHOUSE.is_dir() and (ROOT / ".git").exists()),
    reason="needs pre-commit, a git checkout and .venv/wheelhouse (created by `make`)",
)


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_hook_passes_good_files_and_fails_bad_ones(tmp_path: Path) -> None:
    repo = tmp_path / "dataset"
    repo.mkdir()
    git(repo, "init", "-q")
    shutil.copy(SAMPLES / "azure-chat.jsonl", repo / "good.jsonl")
    shutil.copy(SAMPLES / "broken.jsonl", repo / "bad.jsonl")
    (repo / "many.jsonl").write_bytes(b"{not json\n" * 30)
    git(repo, "add", ".")
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(WHEELHOUSE),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }

    def try_repo(*files: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(PRE_COMMIT), "try-repo", str(ROOT), "jsonl-batch-validate", "--files", *files],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    good = try_repo("good.jsonl")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Passed" in good.stdout

    bad = try_repo("good.jsonl", "bad.jsonl", "many.jsonl")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "Failed" in bad.stdout
    # where each problem is, with its hint, before the summary: no rerun by hand needed
    assert "bad.jsonl:6: error[duplicate_custom_id]: " in bad.stdout
    assert "= hint: give every request a unique custom_id" in bad.stdout
    assert bad.stdout.index("bad.jsonl:6:") < bad.stdout.index("bad.jsonl: FAILED")
    # capped at 20 per file
    assert "many.jsonl:20: error[invalid_json_line]" in bad.stdout
    assert "many.jsonl:21:" not in bad.stdout
    assert "many.jsonl: ... and 10 more findings not shown" in bad.stdout
    assert "many.jsonl: FAILED: 30 requests" in bad.stdout


def test_the_readme_snippet_blocks_bad_files_and_skips_results(tmp_path: Path) -> None:
    """The ``.pre-commit-config.yaml`` the README shows, as written, in a fresh repository
    (``language: system``: the jsonl-batch on PATH, here the one of this checkout)."""
    readme = (ROOT / "README.md").read_text()
    snippet = re.search(r"```yaml\n(# \.pre-commit-config\.yaml\n.*?)```", readme, re.S)
    assert snippet is not None
    repo = tmp_path / "dataset"
    (repo / "results").mkdir(parents=True)
    git(repo, "init", "-q")
    (repo / ".pre-commit-config.yaml").write_text(snippet.group(1))
    shutil.copy(SAMPLES / "azure-chat.jsonl", repo / "good.jsonl")
    shutil.copy(SAMPLES / "broken.jsonl", repo / "results" / "kept-out.jsonl")
    git(repo, "add", ".")
    env = {
        **os.environ,
        "PATH": f"{PRE_COMMIT.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
    }

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(PRE_COMMIT), "run", "--all-files"],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    passed = run()
    assert passed.returncode == 0, passed.stdout + passed.stderr
    shutil.copy(SAMPLES / "broken.jsonl", repo / "bad.jsonl")
    git(repo, "add", "bad.jsonl")
    blocked = run()
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    assert "bad.jsonl:6: error[duplicate_custom_id]: " in blocked.stdout
    assert "kept-out.jsonl" not in blocked.stdout
