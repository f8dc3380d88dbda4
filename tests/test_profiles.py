"""Target profiles: every rule and limit has a source; the vllm target end to end."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from jsonl_batch.cli import main
from jsonl_batch.merge import merge
from jsonl_batch.profiles import TARGETS, load_profile
from jsonl_batch.validate import RULES, validate_file

LIMITS = ("max_requests", "max_bytes", "max_embedding_inputs", "max_custom_id_length", "urls")


@pytest.mark.parametrize("target", TARGETS)
def test_every_rule_and_limit_names_its_source(target: str) -> None:
    profile = load_profile(target)
    assert set(profile.rules) == set(RULES)
    for code, rule in profile.rules.items():
        assert rule.severity in ("error", "warning", "off"), code
        assert len(rule.source) > 20, (target, code)
    for key in LIMITS:
        assert len(profile.sources[key]) > 20, (target, key)


def _line(custom_id: str, url: str = "/v1/chat/completions", model: str = "m") -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return orjson.dumps(
        {"custom_id": custom_id, "method": "POST", "url": url, "body": body},
        option=orjson.OPT_APPEND_NEWLINE,
    )


@pytest.mark.parametrize("target", TARGETS)
def test_no_target_limits_the_custom_id_length(target: str, tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    path.write_bytes(_line("x" * 79 + "||/workspace/models/" + "y" * 100))
    report = validate_file(path, target=target)
    assert report.ok and not report.findings, report.findings


def test_openai_endpoints_of_today(tmp_path: Path) -> None:
    path = tmp_path / "moderations.jsonl"
    lines = [
        {"custom_id": "a", "method": "POST", "url": "/v1/moderations", "body": {"input": "x"}},
        {"custom_id": "b", "method": "POST", "url": "/v1/moderations", "body": {"input": ["y"]}},
    ]
    path.write_bytes(b"".join(orjson.dumps(x, option=orjson.OPT_APPEND_NEWLINE) for x in lines))
    assert validate_file(path, target="openai").ok  # no model needed: the endpoint has one
    edits = tmp_path / "edits.jsonl"
    body = {"prompt": "p", "images": [{"image_url": "https://x/y.png", "file_id": "file-1"}]}
    edits.write_bytes(
        orjson.dumps({"custom_id": "e", "method": "POST", "url": "/v1/images/edits", "body": body})
    )
    findings = validate_file(edits, target="openai").findings
    assert [(f.code, f.path) for f in findings if f.severity == "error"] == [
        ("invalid_body", "body.images[0]")
    ]


def test_vllm_target_on_the_command_line(tmp_path: Path) -> None:
    """Mixed urls, a duplicate id and vLLM's own endpoints pass; --max-shown caps the list."""
    path = tmp_path / "offline.jsonl"
    path.write_bytes(
        _line("a", "/v1/score") + _line("b", "/v2/rerank") + _line("b", "/v1/chat/completions")
    )
    runner = CliRunner()
    result = runner.invoke(main, ["validate", "--target", "vllm", str(path)])
    assert result.exit_code == 0, result.output
    assert "warning[duplicate_custom_id]" in result.output
    azure = runner.invoke(main, ["validate", "--format", "json", "--max-shown", "1", str(path)])
    assert azure.exit_code == 1
    codes = {f["code"] for f in json.loads(azure.output)["files"][0]["findings"]}
    assert {"unsupported_url", "duplicate_custom_id"} <= codes
    shown = runner.invoke(main, ["validate", "--max-shown", "1", str(path)])
    assert shown.output.count(": error[") == 1
    assert "more findings not shown" in shown.output


def test_vllm_split_needs_a_shard_size(tmp_path: Path) -> None:
    path = tmp_path / "offline.jsonl"
    path.write_bytes(_line("a") + _line("b"))
    result = CliRunner().invoke(
        main, ["split", "--target", "vllm", "--out-dir", str(tmp_path / "shards"), str(path)]
    )
    assert result.exit_code == 2, result.output
    assert "no per-file limit" in result.output and "--max-requests" in result.output


def test_vllm_merge_sums_usage_and_prices_nothing(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(_line("a", model="gpt-4o"))
    output = tmp_path / "out.jsonl"
    completion = {
        "object": "chat.completion",
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
    output.write_bytes(
        orjson.dumps({"id": "vllm-1", "custom_id": "a", "response": completion, "error": None})
    )
    result = merge(source, [output], out_dir=tmp_path, target="vllm")
    assert result.ok and result.total.usage.prompt_tokens == 5
    assert result.total.cost.actual_usd is None
    assert any("no batch prices" in note for note in result.notes)
