"""A key in the endpoint URL is used, never stored or printed (issue 15, item 8)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from jsonl_batch.cli import main
from jsonl_batch.errors import ConfigError
from jsonl_batch.service.connection import resolve_connection, strip_credentials


@pytest.fixture(autouse=True)
def _no_keys_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AZURE_OPENAI_API_KEY", "AZURE_API_KEY", "OPENAI_API_KEY", "LITELLM_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_credentials_are_taken_out_of_the_url() -> None:
    assert strip_credentials("http://user:KEY@host:8080/v1?api-key=K2#x") == (
        "http://host:8080/v1",
        "KEY",
    )
    assert strip_credentials("https://KEY@name.openai.azure.com") == (
        "https://name.openai.azure.com",
        "KEY",
    )
    settings = resolve_connection(base_url="http://u:SECRET@localhost:4000/", environ={})
    assert settings.endpoint == "http://localhost:4000" and settings.api_key == "SECRET"
    assert "SECRET" not in json.dumps(settings.public()) and "SECRET" not in repr(settings)
    with pytest.raises(ConfigError, match="port is not a number"):
        resolve_connection(endpoint="http://u:SECRET@host:port", environ={})


def test_the_key_is_in_no_file_and_no_output(tmp_path: Path, emulator: Any) -> None:
    key = emulator.api_key
    source = tmp_path / "data.jsonl"
    source.write_text(
        "".join(
            json.dumps(
                {
                    "custom_id": f"r{i}",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {"model": "dep", "messages": [{"role": "user", "content": "hi"}]},
                }
            )
            + "\n"
            for i in range(4)
        )
    )
    endpoint = emulator.base_url.replace("http://", f"http://user:{key}@")
    runner = CliRunner()
    outputs = []
    for args in (
        ["submit", str(source), "--endpoint", endpoint, "--format", "json"],
        ["status", str(tmp_path / "data.job.json"), "--endpoint", endpoint, "--format", "json"],
        ["wait", str(tmp_path / "data.job.json"), "--endpoint", endpoint, "--poll-interval", "0"],
        ["merge", str(tmp_path / "data.job.json"), "--format", "json"],
        ["list", "--endpoint", endpoint],
    ):
        result = runner.invoke(main, args)
        assert result.exit_code == 0, (args, result.output)
        outputs.append(result.output)
    # a failing call names the endpoint, not the key
    unreachable = endpoint.rsplit(":", 1)[0] + ":1"
    failed = runner.invoke(main, ["list", "--endpoint", unreachable, "--max-retries", "0"])
    assert failed.exit_code == 1 and "cannot reach http://127.0.0.1:1" in failed.output
    outputs.append(failed.output)

    job = json.loads((tmp_path / "data.job.json").read_text())
    assert job["connection"]["endpoint"] == emulator.base_url
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 6  # job, manifest, shards, downloads, results, summary
    for path in files:
        assert key.encode() not in path.read_bytes(), path
    for text in outputs:
        assert key not in text
