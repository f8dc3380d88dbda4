"""estimate: token sums, cost ranges, warnings, parallel counting and the CLI."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from jsonl_batch.cli import main
from jsonl_batch.errors import PriceNotFound
from jsonl_batch.estimate import combine_results, estimate_file, line_ranges
from jsonl_batch.pricing import PriceTable

TODAY = dt.date(2026, 11, 24)


def _chat(custom_id: str, model: str, text: str, **extra: Any) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def _embedding(custom_id: str, model: str, n_tokens: int) -> dict[str, Any]:
    """Token-id input: the service bills exactly len(input) tokens, so costs are exact."""
    body = {"model": model, "input": [list(range(n_tokens))]}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings", "body": body}


def _write(path: Path, lines: list[Any]) -> Path:
    with path.open("w") as out:
        for line in lines:
            out.write(line if isinstance(line, str) else json.dumps(line))
            out.write("\n")
    return path


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


# --- library ----------------------------------------------------------------------------


def test_embedding_cost_is_exact(tmp_path: Path, table: PriceTable) -> None:
    path = _write(
        tmp_path / "emb.jsonl",
        [
            _embedding("a", "text-embedding-3-small", 1000),
            _embedding("b", "text-embedding-3-small", 3000),
        ],
    )
    result = estimate_file(path, prices=table, target="openai", today=TODAY)
    (row,) = result.rows
    assert (row.requests, row.input_tokens, row.max_output_tokens) == (2, 4000, 0)
    # 4,000 tokens at the $0.01 / 1M batch rate
    assert row.cost_low == row.cost_expected == row.cost_high == pytest.approx(0.00004)
    assert result.ok


def test_output_range_gpt_4o(tmp_path: Path, table: PriceTable) -> None:
    path = _write(
        tmp_path / "chat.jsonl",
        [
            _chat("a", "gpt-4o-2024-08-06", "Say hi", max_tokens=1000),
            _chat("b", "gpt-4o-2024-08-06", "Say hi"),  # no cap: the model's 16,384
            _chat("c", "gpt-4o-2024-08-06", "Say hi", max_completion_tokens=10),
        ],
    )
    result = estimate_file(path, prices=table, expected_output_tokens=50, today=TODAY)
    (row,) = result.rows
    assert row.priced_as == "gpt-4o"
    assert row.max_output_tokens == 1000 + 16384 + 10
    assert row.expected_output_tokens == 50 + 50 + 10  # capped at the request's max
    # output differences at the gpt-4o batch output rate ($5 / 1M)
    assert row.cost_high - row.cost_expected == pytest.approx((17394 - 110) * 5 / 1e6)
    assert row.cost_expected == pytest.approx((row.input_tokens * 1.25 + 110 * 5) / 1e6)


def test_output_ratio_and_cached_fraction(tmp_path: Path, table: PriceTable) -> None:
    path = _write(tmp_path / "r.jsonl", [_chat("a", "gpt-4.1", "word " * 200, max_tokens=4000)])
    result = estimate_file(path, prices=table, output_ratio=0.5, cached_fraction=0.5, today=TODAY)
    (row,) = result.rows
    assert row.expected_output_tokens == round(0.5 * row.input_tokens)
    assert row.cached_input_tokens == row.input_tokens // 2
    # gpt-4.1: cached tokens at $0.50 instead of $1.00 batch input
    saving = row.cached_input_tokens * (1.0 - 0.5) / 1e6
    assert row.cost_expected - row.cost_low == pytest.approx(saving)


def test_bad_lines_are_skipped_with_file_and_line(tmp_path: Path, table: PriceTable) -> None:
    path = _write(
        tmp_path / "bad.jsonl",
        [
            _chat("a", "gpt-4o", "hi"),
            "{not json",
            "",
            "[1, 2]",
            {"custom_id": "x", "method": "POST", "url": "/v1/chat/completions"},
            _chat("b", "gpt-4o", "hi"),
        ],
    )
    result = estimate_file(path, prices=table, today=TODAY)
    assert result.total.requests == 2
    assert result.bad_lines == 3
    joined = "\n".join(result.warnings)
    assert f"{path}:2: skipped" in joined
    assert f"{path}:4: skipped" in joined
    assert f"{path}:5: skipped" in joined
    assert not result.ok


def test_context_window_and_enqueued_limit(tmp_path: Path, table: PriceTable) -> None:
    path = _write(
        tmp_path / "big.jsonl",
        [
            _embedding("a", "text-embedding-3-large", 100),
            _embedding("b", "text-embedding-3-large", 9000),
        ],
    )
    result = estimate_file(path, prices=table, enqueued_limit=5000, today=TODAY)
    assert result.rows[0].over_context == 1
    assert any("8,191-token input limit" in w and "line 2" in w for w in result.warnings)
    assert any("enqueued limit of 5,000" in w for w in result.warnings)


def test_retired_model_warns(tmp_path: Path, table: PriceTable) -> None:
    path = _write(tmp_path / "o1.jsonl", [_chat("a", "o1", "hi")])
    result = estimate_file(path, prices=table, today=TODAY)
    assert any("retired on 2026-11-19" in w for w in result.warnings)
    assert any("reasoning tokens bill as output" in n for n in result.notes)
    result = estimate_file(path, prices=table, today=dt.date(2026, 11, 1))
    assert result.ok and any("retires on 2026-11-19" in n for n in result.notes)


def test_deployment_names_need_a_map(tmp_path: Path, table: PriceTable) -> None:
    path = _write(
        tmp_path / "dep.jsonl", [_chat("a", "prod-4o", "hi"), _chat("b", "prod-4o", "yo")]
    )
    with pytest.raises(PriceNotFound, match=r"dep.jsonl:1: no price for model 'prod-4o'"):
        estimate_file(path, prices=table, today=TODAY)
    result = estimate_file(
        path, prices=table, deployment_map={"prod-4o": "gpt-4o-mini"}, today=TODAY
    )
    (row,) = result.rows
    assert (row.model, row.priced_as, row.requests) == ("prod-4o", "gpt-4o-mini", 2)


def test_line_ranges_cut_at_line_boundaries(tmp_path: Path) -> None:
    path = tmp_path / "lines.jsonl"
    data = b"".join(b'{"n": %d, "pad": "%s"}\n' % (i, b"x" * (i % 37)) for i in range(500))
    path.write_bytes(data)
    ranges = line_ranges(path, 1000)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(data)
    for (_, end), (start, _) in itertools.pairwise(ranges):
        assert end == start and data[end - 1 : end] == b"\n"


def test_jobs_2_gives_the_same_totals_as_jobs_1(tmp_path: Path, table: PriceTable) -> None:
    lines: list[Any] = []
    for i in range(400):
        model = ["gpt-4o", "gpt-4.1-mini", "text-embedding-3-small"][i % 3]
        if model.startswith("text-"):
            lines.append(_embedding(f"r{i}", model, 10 + i))
        else:
            lines.append(_chat(f"r{i}", model, "hello " * (i % 50), max_tokens=100 + i))
        if i % 97 == 0:
            lines.append("{broken")
    path = _write(tmp_path / "many.jsonl", lines)
    runs = []
    for jobs in (1, 2):
        records: list[dict[str, Any]] = []
        result = estimate_file(
            path,
            prices=table,
            output_ratio=0.3,
            jobs=jobs,
            chunk_bytes=4096,
            on_request=records.append,
            today=TODAY,
        )
        runs.append((result.to_dict(), records))
    (one, records_one), (two, records_two) = runs
    assert one == two
    assert records_one == records_two
    assert [r["custom_id"] for r in records_one] == [f"r{i}" for i in range(400)]


def test_combine_results_sums_files(tmp_path: Path, table: PriceTable) -> None:
    a = _write(tmp_path / "a.jsonl", [_embedding("a", "text-embedding-3-small", 100)])
    b = _write(tmp_path / "b.jsonl", [_embedding("b", "text-embedding-3-small", 300)])
    results = [estimate_file(p, prices=table, today=TODAY) for p in (a, b)]
    total = combine_results(results)
    assert total.total.input_tokens == 400
    assert total.total.cost_high == pytest.approx(400 * 0.01 / 1e6)


# --- CLI -------------------------------------------------------------------------------------


@pytest.fixture
def clean_file(tmp_path: Path) -> Path:
    return _write(
        tmp_path / "clean.jsonl",
        [
            _chat("req-1", "gpt-4o", "Translate to French: good morning", max_tokens=200),
            _chat("req-2", "gpt-4o", "Translate to French: good night", max_tokens=200),
            _embedding("req-3", "text-embedding-3-small", 500),
        ],
    )


def test_cli_text_output(clean_file: Path) -> None:
    result = CliRunner().invoke(
        main, ["estimate", str(clean_file), "--expected-output-tokens", "20"]
    )
    assert result.exit_code == 0, result.output
    assert "gpt-4o" in result.output and "text-embedding-3-small" in result.output
    assert "3 requests" in result.output
    assert "total" in result.output
    assert "bundled price table of 2026-11-24" in result.output


def test_cli_json_output_and_per_request_file(clean_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "costs.jsonl"
    result = CliRunner().invoke(
        main,
        ["estimate", str(clean_file), "--format", "json", "--per-request", str(out), "-j", "1"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["total"]["requests"] == 3
    (file_report,) = report["files"]
    assert {m["model"] for m in file_report["models"]} == {"gpt-4o", "text-embedding-3-small"}
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["custom_id"] for r in records] == ["req-1", "req-2", "req-3"]
    assert records[0]["max_output_tokens"] == 200
    assert records[2]["input_tokens"] == 500
    assert records[2]["cost"] == pytest.approx(500 * 0.01 / 1e6)
    assert sum(r["cost_high"] for r in records) == pytest.approx(
        report["total"]["cost_usd"]["high"], abs=1e-6
    )


def test_cli_missing_model_message(tmp_path: Path) -> None:
    path = _write(tmp_path / "dep.jsonl", [_chat("a", "my-deployment", "hi")])
    result = CliRunner().invoke(main, ["estimate", str(path)])
    assert result.exit_code == 1
    assert "no price for model 'my-deployment'" in result.output
    assert "--deployment-map" in result.output and "--prices" in result.output
    result = CliRunner().invoke(
        main, ["estimate", str(path), "--deployment-map", "my-deployment=gpt-4.1-mini"]
    )
    assert result.exit_code == 0, result.output
    assert "gpt-4.1-mini" in result.output


def test_cli_problems_and_usage_errors(tmp_path: Path, clean_file: Path) -> None:
    path = _write(tmp_path / "bad.jsonl", [_chat("a", "gpt-4o", "hi"), "nope"])
    result = CliRunner().invoke(main, ["estimate", str(path)])
    assert result.exit_code == 1
    assert "bad.jsonl:2: skipped" in result.output
    both = ["estimate", str(clean_file), "--output-ratio", "1", "--expected-output-tokens", "5"]
    assert CliRunner().invoke(main, both).exit_code == 2
    assert CliRunner().invoke(main, ["estimate", str(tmp_path / "missing.jsonl")]).exit_code == 1


def test_cli_litellm_prices_and_region(tmp_path: Path, clean_file: Path) -> None:
    prices = tmp_path / "litellm.json"
    prices.write_text(
        json.dumps(
            {
                "azure/eu/gpt-4o": {
                    "input_cost_per_token": 2.75e-06,
                    "output_cost_per_token": 1.1e-05,
                },
                "azure/gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05},
                "text-embedding-3-small": {"input_cost_per_token": 2e-08, "mode": "embedding"},
            }
        )
    )
    args = ["estimate", str(clean_file), "--prices", str(prices), "--format", "json"]
    glob = json.loads(CliRunner().invoke(main, args).output)
    zone = json.loads(CliRunner().invoke(main, [*args, "--region", "data-zone"]).output)
    assert "LiteLLM price file" in glob["prices"]
    high_global = glob["files"][0]["models"][0]["cost_usd"]["high"]
    high_zone = zone["files"][0]["models"][0]["cost_usd"]["high"]
    assert high_zone == pytest.approx(high_global * 1.1, rel=1e-3)
