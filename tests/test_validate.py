"""The validator: every rule, every output format, exit codes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from jsonl_batch.cli import main
from jsonl_batch.profiles import load_profile
from jsonl_batch.validate import RULES, Validator, validate_file

from .conftest import SAMPLES


def request(custom_id: str = "r1", **body: object) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-batch", "messages": [{"role": "user", "content": "hi"}], **body},
    }


def write(tmp_path: Path, *objects: dict, name: str = "f.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(b"".join(orjson.dumps(o) + b"\n" for o in objects))
    return path


def test_broken_sample_gives_exactly_the_expected_finding_on_every_line() -> None:
    expected = json.loads((SAMPLES / "broken.expected.json").read_text())
    report = validate_file(SAMPLES / "broken.jsonl")
    got = [
        {"line": f.line, "code": f.code, "severity": f.severity, "path": f.path}
        for f in report.findings
    ]
    assert got == expected


def test_every_rule_in_the_broken_sample_is_a_known_code() -> None:
    expected = json.loads((SAMPLES / "broken.expected.json").read_text())
    assert {row["code"] for row in expected} <= RULES.keys()


@pytest.mark.parametrize(
    ("sample", "target"),
    [
        ("azure-chat.jsonl", "azure"),
        ("azure-responses.jsonl", "azure"),
        ("litellm-chat.jsonl", "litellm"),
        ("openai-embeddings.jsonl", "openai"),
    ],
)
def test_doc_samples_are_clean(sample: str, target: str) -> None:
    report = validate_file(SAMPLES / sample, target=target)
    assert report.ok and not report.findings, report.findings


def test_embeddings_are_rejected_on_azure() -> None:
    report = validate_file(SAMPLES / "openai-embeddings.jsonl", target="azure")
    assert {f.code for f in report.findings} == {"unsupported_url"}


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    report = validate_file(path)
    assert [(f.code, f.line) for f in report.findings] == [("empty_file", None)]


def test_too_many_tasks_and_file_too_large_name_the_line(tmp_path: Path) -> None:
    profile = load_profile("azure")
    small = type(profile)(**{**profile.__dict__, "max_requests": 3, "max_bytes": 400})
    validator = Validator("f.jsonl", small)
    from jsonl_batch.jsonl import read_lines

    path = write(tmp_path, *(request(f"r{i}") for i in range(5)))
    for line in read_lines(path):
        validator.check(line)
    report = validator.finish()
    by_code = {f.code: f for f in report.findings}
    assert by_code["too_many_tasks"].line == 4
    assert by_code["file_too_large"].line == 3  # 3 x 140 bytes > 400
    assert "5 requests" in by_code["too_many_tasks"].message


def test_openai_profile_uses_openai_codes_and_embedding_limit(tmp_path: Path) -> None:
    path = write(tmp_path, request("a", stream=True))
    (finding,) = validate_file(path, target="openai").findings
    assert finding.code == "stream_not_supported"
    assert finding.service_code == "streaming_unsupported"


def test_max_errors_stops_early(tmp_path: Path) -> None:
    path = write(tmp_path, *(request("same") for _ in range(10)))
    report = validate_file(path, max_errors=2)
    assert report.errors == 2
    assert report.truncated


def test_validator_never_raises_on_arbitrary_bytes() -> None:
    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300))
    def check(data: bytes) -> None:
        report = validate_file(io.BytesIO(data))
        assert all(f.code in RULES for f in report.findings)

    check()


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["custom_id", "method", "url", "body", "x"]), json_like, max_size=5
    ).map(lambda d: {**d, "body": {"model": "m", "messages": d.get("body")}} if d else d)
)
def test_validator_never_raises_on_arbitrary_json_objects(obj: dict) -> None:
    report = validate_file(io.BytesIO(json.dumps(obj).encode() + b"\n"))
    assert all(f.code in RULES for f in report.findings)


# -- CLI ---------------------------------------------------------------------------------


def test_cli_clean_file_exits_0() -> None:
    result = CliRunner().invoke(main, ["validate", str(SAMPLES / "azure-chat.jsonl")])
    assert result.exit_code == 0, result.output
    assert "ok: 5 requests" in result.output


def test_cli_text_output_is_compiler_like_with_summary() -> None:
    result = CliRunner().invoke(main, ["validate", str(SAMPLES / "broken.jsonl")])
    assert result.exit_code == 1
    assert f"{SAMPLES / 'broken.jsonl'}:6: error[duplicate_custom_id]: " in result.output
    assert "already used on line 1" in result.output
    assert "--> body.messages[0].role" in result.output
    assert "18 errors, 7 warnings" in result.output


def test_cli_json_output(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["validate", "--format", "json", str(SAMPLES / "broken.jsonl")]
    )
    assert result.exit_code == 1
    data = json.loads(result.output)
    (file_report,) = data["files"]
    assert file_report["errors"] == 18
    assert file_report["counts"]["duplicate_custom_id"] == 1
    assert {"code", "severity", "file", "line", "path", "message", "hint"} <= set(
        file_report["findings"][0]
    )


def test_cli_github_annotations() -> None:
    result = CliRunner().invoke(
        main, ["validate", "--format", "github", str(SAMPLES / "broken.jsonl")]
    )
    assert "::error file=" in result.output
    assert ",line=6,title=duplicate_custom_id::" in result.output


def test_cli_warnings_fail_only_with_strict(tmp_path: Path) -> None:
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(orjson.dumps(request()) + b"\r\n")
    runner = CliRunner()
    assert runner.invoke(main, ["validate", str(path)]).exit_code == 0
    assert runner.invoke(main, ["validate", "--strict", str(path)]).exit_code == 1


def test_cli_reads_stdin() -> None:
    data = orjson.dumps(request()) + b"\n"
    result = CliRunner().invoke(main, ["validate", "-"], input=data)
    assert result.exit_code == 0, result.output
    assert "<stdin>: ok" in result.output


def test_cli_usage_errors_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["validate"]).exit_code == 2
    assert runner.invoke(main, ["validate", "--target", "aws", "x"]).exit_code == 2


def test_cli_missing_file_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2  # a usage error, as the README says
    assert "nope.jsonl' does not exist" in result.output
    assert "Traceback" not in result.output


def test_real_subprocess_gzip_file(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "f.jsonl.gz"
    path.write_bytes(gzip.compress(orjson.dumps(request()) + b"\n"))
    proc = subprocess.run(
        [sys.executable, "-m", "jsonl_batch", "validate", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["files"][0]["requests"] == 1


def test_tokens_flag_finds_context_and_output_cap_problems(tmp_path: Path) -> None:
    long_prompt = "word " * 20_000  # ~20k tokens, over gpt-3.5-turbo's 16k window
    path = write(
        tmp_path,
        request("ok", max_tokens=100),
        request("cap", max_tokens=50_000),
        {
            **request("long"),
            "body": {
                "model": "gpt-4o-batch",
                "messages": [{"role": "user", "content": long_prompt}],
            },
        },
    )
    args = ["validate", "--tokens", "--format", "json", str(path)]
    result = CliRunner().invoke(main, [*args, "--deployment-map", "gpt-4o-batch=gpt-3.5-turbo"])
    assert result.exit_code == 1, result.output
    findings = json.loads(result.output)["files"][0]["findings"]
    assert [(f["line"], f["code"], f["path"]) for f in findings] == [
        (2, "max_tokens_too_large", "body.max_tokens"),
        (3, "context_window_exceeded", "body"),
    ]
    # without --tokens the same file is clean
    assert CliRunner().invoke(main, ["validate", str(path)]).exit_code == 0


def test_too_many_embedding_inputs_on_openai(tmp_path: Path) -> None:
    profile = load_profile("openai")
    small = type(profile)(**{**profile.__dict__, "max_embedding_inputs": 3})
    line = {
        "custom_id": "e",
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": "text-embedding-3-small", "input": ["a", "b"]},
    }
    path = write(tmp_path, line, {**line, "custom_id": "f"})
    from jsonl_batch.jsonl import read_lines

    validator = Validator(str(path), small)
    for item in read_lines(path):
        validator.check(item)
    (finding,) = validator.finish().findings
    assert finding.code == "too_many_embedding_inputs"
    assert "4 embedding inputs" in finding.message


def test_tokens_flag_marks_remote_images_as_approximate(tmp_path: Path) -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    path = write(tmp_path, request("img", messages=[{"role": "user", "content": [image]}]))
    result = CliRunner().invoke(
        main,
        ["validate", "--tokens", "--deployment-map", "gpt-4o-batch=gpt-4o", str(path)],
    )
    assert result.exit_code == 0, result.output
    assert "warning[token_count_approximate]" in result.output
