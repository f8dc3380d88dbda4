"""A full or read-only disk is a clear error, never a traceback or a stray file (issue 15,
item 4).

The disks are real: a small tmpfs mounted in a private mount namespace (``unshare -rm``,
no root needed where user namespaces are allowed; skipped where they are not), so every
write path meets a real ``ENOSPC`` or ``EROFS`` from the kernel. Permission errors are
injected (a test run as root passes every permission check).
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from jsonl_batch.cli import main

from .conftest import ROOT

ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "OPENAI_"))},
    "PYTHONPATH": str(ROOT),
}
JB = f"{shlex.quote(sys.executable)} -m jsonl_batch"


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /tmp"],
        capture_output=True,
    )
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not _namespaces_work(), reason="needs unshare -rm (user + mount namespaces) for a tmpfs"
)


def on_small_disk(disk: Path, size: str, script: str, *, read_only: bool = False) -> str:
    """Run a shell script with a fresh ``size`` tmpfs on ``disk``; returns its output."""
    disk.mkdir(exist_ok=True)
    mount = f"mount -t tmpfs -o size={size} tmpfs {disk}"
    if read_only:
        mount += f" && mkdir {disk}/sub && mount -o remount,ro {disk}"
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f"exec 2>&1; {mount} && {script}"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def request(i: int) -> dict[str, Any]:
    return {
        "custom_id": f"request-{i:06d}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": f"question {i}"}]},
    }


def answer(i: int) -> dict[str, Any]:
    return {
        "id": f"batch_req_{i}",
        "custom_id": f"request-{i:06d}",
        "response": {
            "status_code": 200,
            "request_id": f"req_{i}",
            "body": {
                "model": "gpt-4o",
                "choices": [{"message": {"role": "assistant", "content": "an answer " * 10}}],
                "usage": {"prompt_tokens": 9, "completion_tokens": 20, "total_tokens": 29},
            },
        },
        "error": None,
    }


def write_jsonl(path: Path, objs: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(o) + b"\n" for o in objs))
    return path


def assert_clear(output: str, marker: str, *phrases: str) -> None:
    """The section of ``output`` after ``marker``: exit 1, the reason and the hint."""
    section = output.split(marker, 1)[1].split("\n#", 1)[0]
    assert "rc=1" in section, output
    assert "Traceback" not in output and "Aborted" not in output, output
    assert "error: " in section and "hint: " in section, section
    for phrase in phrases:
        assert phrase in section, section


def test_full_disk_in_merge_split_and_estimate(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [request(i) for i in range(3000)])
    outputs = write_jsonl(tmp_path / "out.jsonl", [answer(i) for i in range(3000)])
    disk = tmp_path / "disk"
    old = b'{"custom_id":"old"}\n'
    script = f"""
printf '%s' {shlex.quote(old.decode())} > {disk}/in.results.jsonl
echo '# merge'; {JB} merge --input {source} --output-file {outputs} -o {disk}; echo rc=$?
echo '# split'; {JB} split {source} -o {disk}/shards --max-requests 500; echo rc=$?
echo '# estimate'; {JB} estimate {source} --per-request {disk}/costs.jsonl; echo rc=$?
echo '# left'; ls -A {disk}; cat {disk}/in.results.jsonl
"""
    output = on_small_disk(disk, "256k", script)
    for step in ("# merge", "# split", "# estimate"):
        assert_clear(output, step, "No space left on device", "free some space")
    assert str(disk) in output.split("# merge", 1)[1]
    left = output.split("# left", 1)[1].split()
    assert left == ["in.results.jsonl", old.decode().strip()]  # the old results, untouched


def test_read_only_disk_is_a_clear_error(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [request(i) for i in range(10)])
    outputs = write_jsonl(tmp_path / "out.jsonl", [answer(i) for i in range(10)])
    disk = tmp_path / "disk"
    script = f"""
echo '# merge'; {JB} merge --input {source} --output-file {outputs} -o {disk}/sub/m; echo rc=$?
echo '# merge here'; {JB} merge --input {source} --output-file {outputs} -o {disk}; echo rc=$?
echo '# split'; {JB} split {source} -o {disk}/sub; echo rc=$?
"""
    output = on_small_disk(disk, "64k", script, read_only=True)
    for step in ("# merge", "# merge here", "# split"):
        assert_clear(output, step, "Read-only file system", "write somewhere else")


def test_download_on_a_full_disk_fails_cleanly_and_a_rerun_finishes(
    tmp_path: Path, emulator: Any
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [request(i) for i in range(300)])
    disk = tmp_path / "disk"
    job = disk / "in.job.json"
    fill = tmp_path / "fill.py"
    fill.write_text(  # fill the disk, then give back a little: the job file still fits
        "import os, sys\n"
        "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT)\n"
        "try:\n"
        "    while True: os.write(fd, b'x' * 4096)\n"
        "except OSError: pass\n"
        "os.ftruncate(fd, max(0, os.lseek(fd, 0, os.SEEK_CUR) - 32768))\n"
    )
    connection = f"--endpoint {emulator.base_url}"
    script = f"""
cp {source} {disk}/in.jsonl
{JB} submit {disk}/in.jsonl {connection} >/dev/null; echo submitted=$?
{shlex.quote(sys.executable)} {fill} {disk}/filler
echo '# wait'; {JB} wait {job} --poll-interval 0.02 >/dev/null; echo rc=$?
rm {disk}/filler
echo '# again'; {JB} wait {job} --poll-interval 0.02 >/dev/null; echo rc=$?
echo '# left'; ls -A {disk}/in.downloads
"""
    output = on_small_disk(disk, "1m", f"export AZURE_OPENAI_API_KEY={emulator.api_key}; {script}")
    assert "submitted=0" in output, output
    assert_clear(output, "# wait", "No space left on device")
    assert "rc=0" in output.split("# again", 1)[1], output
    left = output.split("# left", 1)[1].split()
    assert left == ["in.0001.error.jsonl", "in.0001.output.jsonl"], output  # no .tmp, no staging
    assert f"{disk}/in.downloads/in.0001.output.jsonl: cannot write it" in output


@pytest.mark.parametrize("command", ["merge", "split"])
def test_no_permission_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [request(i) for i in range(3)])
    outputs = write_jsonl(tmp_path / "out.jsonl", [answer(i) for i in range(3)])

    def refused(*_args: object, **_kwargs: object) -> str:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("tempfile.mkdtemp", refused)
    args = {
        "merge": ["merge", "--input", str(source), "--output-file", str(outputs)],
        "split": ["split", str(source), "-o", str(tmp_path / "shards")],
    }[command]
    result = CliRunner().invoke(main, args)
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1, result.output
    assert "Permission denied" in result.output and "no permission" in result.output
    assert str(tmp_path) in result.output
    assert json.dumps(sorted(p.name for p in tmp_path.iterdir())) == json.dumps(
        ["in.jsonl", "out.jsonl"]
    )
