"""merge: joining output and error files back to the requests, the retry file, the report."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jsonl_batch.cli import main
from jsonl_batch.errors import InputError, MergeError
from jsonl_batch.merge import classify, merge, retry_selector, text_of

from .conftest import SAMPLES

# --- fixture builders ------------------------------------------------------------------


def request(custom_id: str, model: str = "gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra},
    }


def success(custom_id: str, text: str = "Hello", prompt: int = 10, completion: int = 2) -> dict:
    return {
        "id": f"batch_req_{custom_id}",
        "custom_id": custom_id,
        "response": {
            "status_code": 200,
            "request_id": "req",
            "body": {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": "gpt-4o-mini-2024-07-18",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                    "prompt_tokens_details": {"cached_tokens": 4},
                    "completion_tokens_details": {"reasoning_tokens": 1},
                },
            },
        },
        "error": None,
    }


def http_error(custom_id: str, status: int = 429, code: str | None = "rate_limit_exceeded"):
    return {
        "id": f"batch_req_{custom_id}",
        "custom_id": custom_id,
        "response": {
            "status_code": status,
            "request_id": "req",
            "body": {"error": {"message": f"failed with {status}", "type": "x", "code": code}},
        },
        "error": None,
    }


def batch_error(custom_id: str, code: str = "batch_expired") -> dict:
    return {
        "id": f"batch_req_{custom_id}",
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": f"{code} happened"},
    }


def write(path: Path, *objects: dict | bytes) -> Path:
    path.write_bytes(
        b"".join(o if isinstance(o, bytes) else orjson.dumps(o) + b"\n" for o in objects)
    )
    return path


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def batch(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Five requests: a and b succeed, c fails with 429, d expired, e never came back."""
    source = write(tmp_path / "batch.jsonl", *(request(c) for c in "abcde"))
    output = write(tmp_path / "out.jsonl", success("b", "B!"), success("a", "A!"))
    errors = write(tmp_path / "err.jsonl", batch_error("d"), http_error("c"))
    return source, output, errors


# --- the join --------------------------------------------------------------------------


def test_every_request_gets_one_row_in_input_order_with_its_status(batch) -> None:
    source, output, errors = batch
    result = merge(source, [output], [errors])
    got = rows(source.parent / "batch.results.jsonl")
    assert [r["custom_id"] for r in got] == list("abcde")
    assert [r["status"] for r in got] == ["succeeded", "succeeded", "failed", "expired", "missing"]
    assert got[0]["response"]["choices"][0]["message"]["content"] == "A!"
    assert got[0]["usage"]["prompt_tokens"] == 10
    assert got[2]["status_code"] == 429
    assert got[2]["error"] == {"code": "rate_limit_exceeded", "message": "failed with 429"}
    assert got[3]["error"]["code"] == "batch_expired"
    assert got[4]["error"] is None and got[4]["response"] is None
    assert result.total.counts == {
        "succeeded": 2,
        "failed": 1,
        "expired": 1,
        "cancelled": 0,
        "missing": 1,
    }
    assert not result.ok


def test_retry_file_holds_the_original_lines_byte_for_byte(tmp_path: Path) -> None:
    odd = b'{"custom_id":  "x", "method": "POST", "url": "/v1/chat/completions", "body": {}}\r\n'
    source = write(tmp_path / "in.jsonl", request("ok"), odd, b'{"custom_id": "y"}')
    output = write(tmp_path / "out.jsonl", success("ok"))
    result = merge(source, [output])
    assert result.retry_count == 2
    assert (tmp_path / "in.retry.jsonl").read_bytes() == odd + b'{"custom_id": "y"}\n'


def test_usage_and_cost_are_summed_at_batch_prices(batch) -> None:
    source, output, errors = batch
    result = merge(source, [output], [errors])
    usage = result.total.usage
    assert (usage.prompt_tokens, usage.cached_tokens) == (20, 8)
    assert (usage.completion_tokens, usage.reasoning_tokens) == (4, 2)
    assert result.total.cost.actual_usd and result.total.cost.actual_usd > 0
    assert result.total.cost.actual_input_usd < result.total.cost.actual_usd


def test_estimate_puts_counted_input_tokens_next_to_the_actual_cost(batch) -> None:
    source, output, errors = batch
    cost = merge(source, [output], [errors], estimate=True).total.cost
    assert cost.estimated_input_tokens and cost.estimated_input_tokens > 0
    assert cost.estimated_input_usd and cost.estimated_input_usd > 0


def test_unknown_model_warns_and_leaves_cost_out_instead_of_failing(tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", request("a"))
    line = success("a")
    line["response"]["body"]["model"] = "no-such-model-xyz"
    result = merge(source, [write(tmp_path / "out.jsonl", line)])
    assert result.total.cost.unpriced_models == ["no-such-model-xyz"]
    assert any("no-such-model-xyz" in w for w in result.warnings)
    assert result.ok


def test_usage_and_cost_per_model_add_up_to_the_total(tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", *(request(f"r{i}") for i in range(3)))
    lines = [success("r0"), success("r1", prompt=30), success("r2", prompt=5)]
    lines[2]["response"]["body"]["model"] = "no-such-model-xyz"
    result = merge(source, [write(tmp_path / "out.jsonl", *lines)])
    by_model = {row.model: row for row in result.models}
    assert set(by_model) == {"gpt-4o-mini-2024-07-18", "no-such-model-xyz"}
    mini = by_model["gpt-4o-mini-2024-07-18"]
    assert mini.usage.prompt_tokens == 40 and mini.priced_as
    assert mini.cost.actual_usd == result.total.cost.actual_usd
    unpriced = by_model["no-such-model-xyz"]
    assert unpriced.priced_as is None and unpriced.cost.actual_usd is None
    assert unpriced.usage.prompt_tokens == 5
    assert [m["model"] for m in result.to_dict()["models"]] == sorted(by_model)


@pytest.mark.parametrize("include_request", [False, True])  # the byte path and the parsed one
def test_long_context_requests_are_priced_whole_at_their_tier(
    tmp_path: Path, include_request: bool
) -> None:
    source = write(tmp_path / "in.jsonl", request("long", "gpt-5.4"), request("short", "gpt-5.4"))
    lines = [
        success("long", prompt=300_000, completion=100),
        success("short", prompt=1000, completion=100),
    ]
    for line in lines:
        line["response"]["body"]["model"] = "gpt-5.4-2026-03-05"
    output = write(tmp_path / "out.jsonl", *lines)
    result = merge(source, [output], target="openai", include_request=include_request)
    # gpt-5.4 batch per 1M: input 1.25, cached 0.13, output 7.50; a request over 272k input
    # tokens bills entirely at 2.50, 0.25, 11.25 (4 cached tokens each, from success())
    long = (299_996 * 2.5 + 4 * 0.25 + 100 * 11.25) / 1e6
    short = (996 * 1.25 + 4 * 0.13 + 100 * 7.5) / 1e6
    assert result.total.cost.actual_usd == pytest.approx(long + short)
    assert result.total.usage.prompt_tokens == 301_000


def test_error_summary_counts_codes_with_an_example_line(tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", *(request(f"r{i}") for i in range(4)))
    errors = write(
        tmp_path / "err.jsonl",
        http_error("r0"),
        http_error("r1", 500, None),
        http_error("r2"),
        http_error("r3", 400, "context_length_exceeded"),
    )
    result = merge(source, [], [errors])
    by_code = {stat.code: stat for stat in result.errors}
    assert by_code["rate_limit_exceeded"].count == 2
    assert by_code["http_500"].count == 1
    assert by_code["rate_limit_exceeded"].example_where == f"{errors}:1"
    assert result.errors[0].code == "rate_limit_exceeded"
    assert any("no output file" in note for note in result.notes)


# --- reports, never silent drops --------------------------------------------------------


def test_duplicates_success_beats_failure_and_later_wins_between_equals(tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", request("a"), request("b"))
    output = write(tmp_path / "out.jsonl", success("a", "first"), success("b", "only"))
    errors = write(
        tmp_path / "err.jsonl", http_error("b"), success("a", "second"), http_error("a", 500)
    )
    result = merge(source, [output], [errors])
    got = {r["custom_id"]: r for r in rows(tmp_path / "in.results.jsonl")}
    assert got["a"]["response"]["choices"][0]["message"]["content"] == "second"
    assert got["b"]["status"] == "succeeded"
    assert result.problem_counts["duplicate_output"] == 3
    messages = [p.message for p in result.problems if p.kind == "duplicate_output"]
    assert any("later file/line wins" in m and f"{errors}:2" in m for m in messages)
    assert any("success beats a failure" in m and f"{errors}:1" in m for m in messages)


def test_unknown_custom_ids_and_broken_output_lines_are_reported_with_file_and_line(
    tmp_path: Path,
) -> None:
    source = write(tmp_path / "in.jsonl", request("a"))
    output = write(
        tmp_path / "out.jsonl", success("zz"), b"{not json\n", b'{"no": "id"}\n', success("a")
    )
    result = merge(source, [output])
    assert result.problem_counts["unknown_custom_id"] == 1
    assert result.problem_counts["invalid_output_line"] == 2
    wheres = {(p.kind, p.where) for p in result.problems}
    assert ("unknown_custom_id", f"{output}:1") in wheres
    assert ("invalid_output_line", f"{output}:2") in wheres
    assert ("invalid_output_line", f"{output}:3") in wheres
    assert not result.ok  # problems found, even though every request succeeded


def test_a_truncated_output_line_makes_its_request_missing_and_is_reported(
    tmp_path: Path,
) -> None:
    source = write(tmp_path / "in.jsonl", request("a"))
    whole = orjson.dumps(success("a"))
    output = write(tmp_path / "out.jsonl", whole[:60] + b"}\n")
    result = merge(source, [output])
    assert result.total.counts["missing"] == 1
    assert result.problem_counts["invalid_output_line"] == 1


def test_duplicate_custom_id_in_the_input_is_reported(tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", request("a"), request("a"))
    result = merge(source, [write(tmp_path / "out.jsonl", success("a"))])
    assert result.problem_counts["duplicate_input"] == 1
    assert result.total.requests == 2


def test_bom_blank_lines_and_gzip_outputs_are_read(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + orjson.dumps(request("a")) + b"\n\n")
    output = tmp_path / "out.jsonl.gz"
    output.write_bytes(gzip.compress(b"\xef\xbb\xbf" + orjson.dumps(success("a")) + b"\n"))
    result = merge(source, [output])
    assert result.ok and result.total.requests == 1


def test_missing_output_file_is_an_input_error(tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", request("a"))
    with pytest.raises(InputError, match="no such file"):
        merge(source, [tmp_path / "nope.jsonl"])
    with pytest.raises(InputError, match="no output or error files"):
        merge(source)


# --- retry selection ------------------------------------------------------------------


def test_retry_on_selects_statuses_http_classes_and_codes(tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", *(request(c) for c in "abcdef"))
    errors = write(
        tmp_path / "err.jsonl",
        http_error("a", 429),
        http_error("b", 400, "context_length_exceeded"),
        http_error("c", 503, "server_error"),
        batch_error("d"),
        batch_error("e", "batch_cancelled"),
    )

    def retried(*values: str) -> list[str]:
        merge(source, [], [errors], retry_on=values)
        path = tmp_path / "in.retry.jsonl"
        return [json.loads(x)["custom_id"] for x in path.read_text().splitlines()]

    assert retried("failed", "expired", "cancelled", "missing") == list("abcdef")
    assert retried("429,5xx") == ["a", "c"]
    assert retried("expired", "missing") == ["d", "f"]
    assert retried("context_length_exceeded", "cancelled") == ["b", "e"]
    assert retried("4xx") == ["a", "b"]


def test_retry_on_succeeded_is_refused() -> None:
    with pytest.raises(MergeError):
        retry_selector(["succeeded"])


def test_no_retry_file_when_nothing_to_retry_and_a_stale_one_is_removed(tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", request("a"))
    stale = write(tmp_path / "in.retry.jsonl", request("old"))
    result = merge(source, [write(tmp_path / "out.jsonl", success("a"))])
    assert result.retry_path is None and not stale.exists()


# --- formats ---------------------------------------------------------------------------


def test_text_format_has_the_assistant_text(batch) -> None:
    source, output, errors = batch
    merge(source, [output], [errors], results_format="text")
    got = rows(source.parent / "batch.results.jsonl")
    assert got[0] == {"custom_id": "a", "status": "succeeded", "text": "A!", "error": None}
    assert got[2]["text"] is None and got[2]["error"]["code"] == "rate_limit_exceeded"


def test_embedding_format_has_the_vector(tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", request("a"), request("b"))
    line = {
        "custom_id": "a",
        "response": {
            "status_code": 200,
            "body": {"object": "list", "data": [{"index": 0, "embedding": [0.5, -1.0]}]},
        },
        "error": None,
    }
    merge(source, [write(tmp_path / "out.jsonl", line)], results_format="embedding")
    got = rows(tmp_path / "in.results.jsonl")
    assert got[0]["embedding"] == [0.5, -1.0]
    assert got[1] == {"custom_id": "b", "status": "missing", "embedding": None, "error": None}


def test_csv_format_writes_one_row_per_request(batch) -> None:
    import csv

    source, output, errors = batch
    result = merge(source, [output], [errors], results_format="csv")
    assert result.results_path.name == "batch.results.csv"
    with open(result.results_path, newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [r["status"] for r in table] == [
        "succeeded",
        "succeeded",
        "failed",
        "expired",
        "missing",
    ]
    assert table[0]["output"] == "A!" and table[0]["prompt_tokens"] == "10"
    assert table[2]["error_code"] == "rate_limit_exceeded"


def test_include_request_copies_the_request_into_the_row(batch) -> None:
    source, output, errors = batch
    merge(source, [output], [errors], include_request=True, out_dir=source.parent / "o")
    got = rows(source.parent / "o" / "batch.results.jsonl")
    assert got[4]["request"] == request("e")


def test_text_of_reads_chat_responses_and_completions() -> None:
    responses = {"output": [{"type": "message", "content": [{"type": "output_text", "text": "R"}]}]}
    assert text_of(responses) == "R"
    assert text_of({"choices": [{"text": "C"}]}) == "C"
    assert text_of({"choices": [{"message": {"content": "M"}}]}) == "M"


def test_classify_follows_the_status_rules() -> None:
    assert classify(success("a")).status == "succeeded"
    assert classify(batch_error("a")).status == "expired"
    assert classify(batch_error("a", "batch_cancelled")).status == "cancelled"
    failed = classify(http_error("a", 500, None))
    assert (failed.status, failed.code) == ("failed", "http_500")


# --- memory: the spilled index gives the same answer -----------------------------------


def test_a_spilled_index_gives_the_same_results(tmp_path: Path) -> None:
    ids = [f"id-{i:04d}" for i in range(600)]
    source = write(tmp_path / "in.jsonl", *(request(i) for i in ids))
    outputs = [success(i) for i in ids[::2]] + [http_error(i) for i in ids[1::4]]
    output = write(tmp_path / "out.jsonl", *reversed(outputs), success("stranger"))
    small = merge(source, [output], memory_mb=0.01, out_dir=tmp_path / "small")
    big = merge(source, [output], out_dir=tmp_path / "big")
    assert small.index_spilled and not big.index_spilled
    assert (tmp_path / "small" / "in.results.jsonl").read_bytes() == (
        tmp_path / "big" / "in.results.jsonl"
    ).read_bytes()
    assert small.problem_counts == big.problem_counts
    assert small.problem_counts["unknown_custom_id"] == 1
    assert not list((tmp_path / "small").glob(".jsonl-batch-merge-*"))  # temp index removed


# --- manifests and job files -------------------------------------------------------------


def _split(tmp_path: Path, ids: list[str], per_shard: int) -> tuple[Path, Path]:
    """A source file, shards cut in order, and a manifest like split writes."""
    source = write(tmp_path / "big.jsonl", *(request(i) for i in ids))
    shards = []
    for n, start in enumerate(range(0, len(ids), per_shard)):
        chunk = ids[start : start + per_shard]
        shard = write(tmp_path / f"big.{n:03d}.jsonl", *(request(i) for i in chunk))
        shards.append(
            {
                "index": n,
                "path": shard.name,
                "model": "gpt-4o-mini",
                "url": "/v1/chat/completions",
                "requests": len(chunk),
                "bytes": shard.stat().st_size,
                "input_tokens": 8 * len(chunk),
                "sha256": "",
                "first_custom_id": chunk[0],
                "last_custom_id": chunk[-1],
                "first_line": start + 1,
                "last_line": start + len(chunk),
            }
        )
    manifest = tmp_path / "big.manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "version": 1,
                "source": {
                    "path": source.name,
                    "sha256": "",
                    "bytes": 0,
                    "requests": len(ids),
                    "blank_lines": 0,
                },
                "target": "azure",
                "limits": {"max_requests": per_shard, "max_bytes": 1 << 20},
                "created_at": "2026-12-01T00:00:00+00:00",
                "shards": shards,
            }
        )
    )
    return source, manifest


def test_job_file_uses_shard_status_for_requests_that_never_came_back(tmp_path: Path) -> None:
    ids = [f"r{i}" for i in range(6)]
    _, manifest = _split(tmp_path, ids, 2)
    write(tmp_path / "out0.jsonl", success("r0"), success("r1"))
    write(tmp_path / "out1.jsonl", success("r2"))
    write(tmp_path / "err2.jsonl", http_error("r4"))
    job = tmp_path / "big.job.json"
    shard = {
        "upload_path": "",
        "sha256": "",
        "requests": 2,
        "bytes": 0,
        "url": "/v1/chat/completions",
        "endpoint": "/v1/chat/completions",
    }
    job.write_text(
        json.dumps(
            {
                "job_id": "j",
                "created_at": 0,
                "updated_at": 0,
                "target": "azure",
                "connection": {"kind": "azure", "endpoint": "http://x", "target": "azure"},
                "manifest": manifest.name,
                "source": "big.jsonl",
                "shards": [
                    {**shard, "index": 0, "path": "big.000.jsonl", "status": "completed",
                     "batch_id": "b0", "output_file": "out0.jsonl", "error_file": None},
                    {**shard, "index": 1, "path": "big.001.jsonl", "status": "expired",
                     "batch_id": "b1", "output_file": "out1.jsonl", "error_file": None},
                    {**shard, "index": 2, "path": "big.002.jsonl", "status": "cancelled",
                     "batch_id": "b2", "output_file": None, "error_file": "err2.jsonl"},
                ],
            }
        )
    )  # fmt: skip
    result = merge(job)
    got = rows(tmp_path / "big.results.jsonl")
    assert [r["status"] for r in got] == [
        "succeeded",
        "succeeded",
        "succeeded",
        "expired",
        "failed",
        "cancelled",
    ]
    assert [s.counts["succeeded"] for s in result.shards] == [2, 1, 0]
    assert result.shards[1].shard_status == "expired"
    assert result.shards[0].manifest_input_tokens == 16
    assert result.shards[0].usage.prompt_tokens == 20
    assert any("shard 2" in note for note in result.notes)


def test_manifest_without_its_source_reads_the_shards_in_order(tmp_path: Path) -> None:
    ids = [f"r{i}" for i in range(5)]
    source, manifest = _split(tmp_path, ids, 2)
    source.unlink()
    output = write(tmp_path / "out.jsonl", *(success(i) for i in reversed(ids)))
    result = merge(manifest, [output])
    assert [r["custom_id"] for r in rows(tmp_path / "big.results.jsonl")] == ids
    assert [s.requests for s in result.shards] == [2, 2, 1]
    assert any("source file missing" in note for note in result.notes)


def test_manifest_with_regrouped_shards_finds_each_request_s_shard(tmp_path: Path) -> None:
    ids = [f"r{i}" for i in range(4)]
    _, manifest = _split(tmp_path, ids, 2)
    data = json.loads(manifest.read_text())
    # shards regrouped (e.g. by model): r0, r2 in shard 0 and r1, r3 in shard 1
    write(tmp_path / "big.000.jsonl", request("r0"), request("r2"))
    write(tmp_path / "big.001.jsonl", request("r1"), request("r3"))
    data["shards"][0].update(first_line=1, last_line=3)
    data["shards"][1].update(first_line=2, last_line=4)
    manifest.write_text(json.dumps(data))
    output = write(tmp_path / "out.jsonl", success("r0"), success("r2"))
    result = merge(manifest, [output], memory_mb=0.001)
    assert [s.counts["succeeded"] for s in result.shards] == [2, 0]
    assert [s.counts["missing"] for s in result.shards] == [0, 2]


# --- samples and the CLI -------------------------------------------------------------------


def test_the_sample_output_and_error_files_merge(tmp_path: Path) -> None:
    source = SAMPLES / "azure-chat.jsonl"
    result = merge(
        source,
        [SAMPLES / "azure-chat.output.jsonl"],
        [SAMPLES / "azure-chat.errors.jsonl"],
        out_dir=tmp_path,
    )
    assert result.total.requests == 5
    assert result.total.counts["succeeded"] == 3
    assert result.retry_count == 2
    assert result.total.cost.actual_usd and result.total.cost.actual_usd > 0


def test_cli_exit_codes_and_json_summary(batch) -> None:
    source, output, errors = batch
    runner = CliRunner()
    args = ["merge", "--input", str(source), "--output-file", str(output), "--errors", str(errors)]
    failed = runner.invoke(main, [*args, "--format", "json"])
    assert failed.exit_code == 1, failed.output
    summary = json.loads(failed.output)
    assert summary["counts"]["missing"] == 1 and summary["retry_requests"] == 3
    text = runner.invoke(main, args)
    assert "5 requests: 2 succeeded, 1 failed, 1 expired, 1 missing" in text.output
    assert "rate_limit_exceeded" in text.output

    good = write(source.parent / "good.jsonl", request("a"))
    ok = runner.invoke(main, ["merge", "--input", str(good), "--output-file", str(output)])
    assert ok.exit_code == 1  # b in the output is not in good.jsonl: reported
    assert "not in the input" in ok.output
    only_a = write(source.parent / "only-a.jsonl", success("a"))
    clean = runner.invoke(main, ["merge", "--input", str(good), "--output-file", str(only_a)])
    assert clean.exit_code == 0, clean.output


def test_cli_usage_errors_exit_2(batch) -> None:
    source, output, _ = batch
    runner = CliRunner()
    assert runner.invoke(main, ["merge"]).exit_code == 2
    both = runner.invoke(main, ["merge", str(source), "--input", str(source)])
    assert both.exit_code == 2
    bad = runner.invoke(
        main,
        ["merge", "--input", str(source), "--output-file", str(output), "--results-format", "x"],
    )
    assert bad.exit_code == 2


def test_cli_help_explains_overwriting_and_duplicates() -> None:
    text = " ".join(CliRunner().invoke(main, ["merge", "--help"]).output.split())
    assert "replacing earlier copies" in text
    assert "a success beats a failure" in text


# --- property: every request exactly once, retry file exactly the right set ----------------

FATES = ("success", "429", "400", "500", "expired", "cancelled")
STATUS_OF = {
    "success": "succeeded",
    "429": "failed",
    "400": "failed",
    "500": "failed",
    "expired": "expired",
    "cancelled": "cancelled",
}


def _line(custom_id: str, fate: str) -> dict:
    if fate == "success":
        return success(custom_id)
    if fate in ("expired", "cancelled"):
        return batch_error(custom_id, f"batch_{fate}")
    return http_error(custom_id, int(fate), None if fate == "500" else f"code_{fate}")


@st.composite
def batches(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(min_value=1, max_value=25))
    ids = [f"req-{i}" for i in range(n)]
    # each request: no result, or 1-3 results, each in the output (0) or error (1) file
    results = {
        cid: draw(st.lists(st.tuples(st.sampled_from(FATES), st.integers(0, 1)), max_size=3))
        for cid in ids
    }
    events = [(cid, fate, where) for cid, fates in results.items() for fate, where in fates]
    events = draw(st.permutations(events))
    strangers = draw(st.lists(st.sampled_from(FATES), max_size=2))
    retry_on = draw(
        st.lists(
            st.sampled_from(["failed", "expired", "cancelled", "missing", "4xx", "5xx", "429"]),
            min_size=1,
            max_size=3,
        )
    )
    memory_mb = draw(st.sampled_from([256, 0.0005]))
    return {
        "ids": ids,
        "events": events,
        "strangers": strangers,
        "retry_on": retry_on,
        "memory_mb": memory_mb,
    }


def _expected(case: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """custom_id -> (status, fate) by the documented rules."""
    order = [e for e in case["events"] if e[2] == 0] + [e for e in case["events"] if e[2] == 1]
    final: dict[str, str] = {}
    for cid, fate, _ in order:
        old = final.get(cid)
        if old == "success" and fate != "success":
            continue  # a success beats a failure; otherwise the later one wins
        final[cid] = fate
    return {
        cid: (STATUS_OF[final[cid]], final[cid]) if cid in final else ("missing", None)
        for cid in case["ids"]
    }


def _should_retry(status: str, fate: str | None, retry_on: list[str]) -> bool:
    if status == "succeeded":
        return False
    http = int(fate) if fate and fate.isdigit() else None
    return (
        status in retry_on
        or (http is not None and str(http) in retry_on)
        or (http is not None and f"{http // 100}xx" in retry_on)
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=batches())
def test_property_every_request_once_with_its_status_and_exact_retry_set(
    tmp_path_factory: pytest.TempPathFactory, case: dict[str, Any]
) -> None:
    folder = tmp_path_factory.mktemp("prop")
    source = write(folder / "in.jsonl", *(request(cid) for cid in case["ids"]))
    out_lines = [_line(c, f) for c, f, where in case["events"] if where == 0]
    err_lines = [_line(c, f) for c, f, where in case["events"] if where == 1]
    out_lines += [_line(f"stranger-{i}", f) for i, f in enumerate(case["strangers"])]
    output = write(folder / "out.jsonl", *out_lines)
    errors = write(folder / "err.jsonl", *err_lines)

    result = merge(
        source, [output], [errors], retry_on=case["retry_on"], memory_mb=case["memory_mb"]
    )

    expected = _expected(case)
    got = rows(folder / "in.results.jsonl")
    assert [r["custom_id"] for r in got] == case["ids"]
    assert {r["custom_id"]: r["status"] for r in got} == {c: s for c, (s, _) in expected.items()}
    retry_ids = [
        cid for cid, (status, fate) in expected.items()
        if _should_retry(status, fate, case["retry_on"])
    ]  # fmt: skip
    retry_path = folder / "in.retry.jsonl"
    want = b"".join(orjson.dumps(request(cid)) + b"\n" for cid in retry_ids)
    assert (retry_path.read_bytes() if retry_path.exists() else b"") == want
    assert result.retry_count == len(retry_ids)
    assert result.problem_counts["unknown_custom_id"] == len(case["strangers"])
    duplicates = len(case["events"]) - len({c for c, _, _ in case["events"]})
    assert result.problem_counts["duplicate_output"] == duplicates


# --- the fast path (rows from byte spans) gives what parsing gives ------------------------


@pytest.mark.parametrize("twist", ["clean", "unknown_ids", "input_duplicate", "spaced_lines"])
def test_rows_copied_from_bytes_equal_rows_built_from_parsed_lines(
    tmp_path: Path, twist: str
) -> None:
    ids = [f"id-{i:04d}" for i in range(300)]
    inputs = [request(i) for i in ids]
    if twist == "input_duplicate":
        inputs.append(request(ids[0]))
    source = write(tmp_path / "in.jsonl", *inputs)
    outputs = [success(i, f'answer {i} \u00e9 \\ "q"') for i in ids[::3]]
    outputs += [http_error(i) for i in ids[1::3]]
    outputs.append(
        {
            "id": "r",
            "custom_id": ids[5],
            "response": {
                "status_code": 200,
                "request_id": "q",
                "body": {
                    "object": "response",
                    "model": "gpt-4o-mini",
                    "output": [],
                    "usage": {
                        "input_tokens": 7,
                        "output_tokens": 3,
                        "input_tokens_details": {"cached_tokens": 2},
                        "output_tokens_details": {"reasoning_tokens": 1},
                    },
                },
            },
            "error": None,
        }
    )
    if twist == "unknown_ids":
        outputs += [success("nobody"), http_error("nobody-else")]
    lines = [
        json.dumps(o).encode() + b"\n" if twist == "spaced_lines" and n % 2 else o
        for n, o in enumerate(reversed(outputs))
    ]
    output = write(tmp_path / "out.jsonl", *lines)
    errors = write(tmp_path / "err.jsonl", batch_error(ids[2]), http_error(ids[0], 500))
    fast = merge(source, [output], [errors], out_dir=tmp_path / "fast")
    # --estimate parses every line (it needs the request) and builds every row as a dict
    parsed = merge(source, [output], [errors], out_dir=tmp_path / "parsed", estimate=True)
    assert rows(fast.results_path) == rows(parsed.results_path)
    assert (tmp_path / "fast" / "in.retry.jsonl").read_bytes() == (
        tmp_path / "parsed" / "in.retry.jsonl"
    ).read_bytes()
    ignore = {"results": "", "retry": "", "summary": "", "cost": None, "shards": None}
    ignore["models"] = None
    assert fast.to_dict() | ignore == parsed.to_dict() | ignore
    assert [(m.model, m.usage) for m in fast.models] == [(m.model, m.usage) for m in parsed.models]
    assert fast.total.cost.actual_usd == parsed.total.cost.actual_usd
    successes = fast.total.counts["succeeded"]  # every chat success has 4 cached tokens
    assert successes >= 101 and fast.total.usage.cached_tokens == 4 * (successes - 1) + 2


# --- parallel pass 2 gives exactly the serial answer -----------------------------------------


@pytest.mark.parametrize("results_format", ["full", "csv"])
@pytest.mark.parametrize("twist", ["clean", "unknown_ids", "input_duplicate_across_parts"])
def test_parallel_workers_write_exactly_what_a_serial_run_writes(
    tmp_path: Path, results_format: str, twist: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    forks: list[int] = []
    real_fork = os.fork

    def counting_fork() -> int:
        forks.append(1)
        return real_fork()

    monkeypatch.setattr(os, "fork", counting_fork)
    ids = [f"id-{i:04d}" for i in range(300)]
    inputs = [request(i) for i in ids]
    if twist == "input_duplicate_across_parts":
        inputs.append(request(ids[0]))
    source = write(tmp_path / "in.jsonl", *inputs)
    outputs = [success(i) for i in ids[::3]] + [http_error(i) for i in ids[1::3]]
    if twist == "unknown_ids":
        outputs += [success("nobody"), http_error("nobody-else")]
    output = write(tmp_path / "out.jsonl", *reversed(outputs))
    errors = write(tmp_path / "err.jsonl", batch_error(ids[2]), http_error(ids[0], 500))
    common = {"results_format": results_format, "estimate": True}
    serial = merge(source, [output], [errors], jobs=1, out_dir=tmp_path / "s", **common)
    forked = merge(source, [output], [errors], jobs=3, out_dir=tmp_path / "p", **common)
    assert len(forks) == 2  # the first of 3 parts is joined in-process
    name = serial.results_path.name
    assert (tmp_path / "p" / name).read_bytes() == (tmp_path / "s" / name).read_bytes()
    assert (tmp_path / "p" / "in.retry.jsonl").read_bytes() == (
        tmp_path / "s" / "in.retry.jsonl"
    ).read_bytes()
    paths = {"results": "", "retry": "", "summary": ""}
    assert forked.to_dict() | paths == serial.to_dict() | paths
    assert not list((tmp_path / "p").glob(".jsonl-batch-merge-*"))


@pytest.mark.parametrize("read_size", [700, 2500])
def test_reads_shorter_than_a_line_give_the_same_results(
    tmp_path: Path, read_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both passes read in chunks and re-read the line a chunk cut; lines longer than a chunk,
    a BOM and parts of a parallel run must not change a byte."""
    from jsonl_batch.merge import index, join, parallel

    ids = [f"id-{i:04d}" for i in range(200)]
    inputs = [request(i, content="x" * (n * 37 % 1500)) for n, i in enumerate(ids)]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + write(tmp_path / "raw.jsonl", *inputs).read_bytes())
    outputs = [success(i, text="y" * (n * 53 % 1800)) for n, i in enumerate(ids[::2])]
    output = write(tmp_path / "out.jsonl", *reversed(outputs), b"{broken\n")
    errors = write(tmp_path / "err.jsonl", *(http_error(i) for i in ids[1::4]))
    expected = merge(source, [output], [errors], jobs=1, out_dir=tmp_path / "a")
    monkeypatch.setattr(join, "_CHUNK", read_size)
    monkeypatch.setattr(index, "_READ", read_size)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 0)  # pass 1 in two parts as well
    for workers in (1, 2):
        got = merge(source, [output], [errors], jobs=workers, out_dir=tmp_path / f"{workers}")
        for name in ("in.results.jsonl", "in.retry.jsonl"):
            assert (tmp_path / f"{workers}" / name).read_bytes() == (
                tmp_path / "a" / name
            ).read_bytes()
        paths = {"results": "", "retry": "", "summary": ""}
        assert got.to_dict() | paths == expected.to_dict() | paths
        # the summary names the files by the sha256 kept while writing (parts appended too)
        summary = json.loads((tmp_path / f"{workers}" / "in.merge.json").read_bytes())
        for role in ("results", "retry"):
            named = summary["files"][role]
            data = (tmp_path / f"{workers}" / named["path"]).read_bytes()
            assert named["sha256"] == hashlib.sha256(data).hexdigest()
