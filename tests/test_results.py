"""Merge's results read back into Python: every format, in input order, priced like merge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from jsonl_batch import InputError, ResultRow, merge, read_results
from jsonl_batch.formats.results import RESULTS_FORMATS, STATUSES, RowEncoder, read_result_rows

from .conftest import SAMPLES

INPUT = SAMPLES / "azure-chat.jsonl"
OUTPUT = SAMPLES / "azure-chat.output.jsonl"
ERRORS = SAMPLES / "azure-chat.errors.jsonl"
MAP = {"gpt-4o-batch": "gpt-4o"}


def _input_ids() -> list[str]:
    return [json.loads(line)["custom_id"] for line in INPUT.read_text().splitlines()]


@pytest.mark.parametrize("results_format", RESULTS_FORMATS)
def test_every_format_reads_back_in_input_order(tmp_path: Path, results_format: str) -> None:
    result = merge(
        INPUT, [OUTPUT], [ERRORS], out_dir=tmp_path, results_format=results_format, jobs=1
    )
    rows = read_results(result.results_path, deployment_map=MAP)
    assert iter(rows) is rows  # a stream, not a list
    rows = list(rows)
    assert all(isinstance(row, ResultRow) for row in rows)
    assert [row.custom_id for row in rows] == _input_ids()
    counts = {status: sum(row.status == status for row in rows) for status in STATUSES}
    assert {k: v for k, v in counts.items() if v} == {
        k: v for k, v in result.total.counts.items() if v
    }
    succeeded = [row for row in rows if row.succeeded]
    failed = [row for row in rows if row.status == "failed"]
    assert succeeded and failed
    if results_format != "embedding":
        assert all(row.text for row in succeeded)
    assert all(row.error_code and row.error_message for row in failed)
    if results_format == "full":
        assert all(row.line and row.response and row.model and row.usage for row in succeeded)
        # each row priced as merge prices the whole file
        total = sum(row.cost_usd or 0.0 for row in rows)
        merged = merge(INPUT, [OUTPUT], [ERRORS], out_dir=tmp_path / "m", deployment_map=MAP)
        assert merged.total.cost.actual_usd == pytest.approx(total, rel=1e-9, abs=1e-12)
        assert total > 0
    if results_format == "csv":
        assert all(row.usage and row.usage.prompt_tokens for row in succeeded)


def test_cost_follows_target_region_and_prices(tmp_path: Path) -> None:
    result = merge(INPUT, [OUTPUT], [ERRORS], out_dir=tmp_path)
    path = result.results_path
    unmapped = [row.cost_usd for row in read_results(path) if row.succeeded]
    global_cost = sum(row.cost_usd or 0 for row in read_results(path, deployment_map=MAP))
    zone_cost = sum(
        row.cost_usd or 0 for row in read_results(path, deployment_map=MAP, region="data-zone")
    )
    assert zone_cost > global_cost > 0
    # the bodies name the model (gpt-4o-2024-08-06): no mapping needed to price them
    assert all(cost for cost in unmapped)
    assert all(row.cost_usd is None for row in read_results(path, target="vllm"))


def test_a_merge_in_one_format_removes_the_results_of_another(tmp_path: Path) -> None:
    jsonl = merge(INPUT, [OUTPUT], [ERRORS], out_dir=tmp_path).results_path
    csv_path = merge(INPUT, [OUTPUT], [ERRORS], out_dir=tmp_path, results_format="csv")
    assert csv_path.results_path.exists() and not jsonl.exists()
    merge(INPUT, [OUTPUT], [ERRORS], out_dir=tmp_path, results_format="text")
    assert jsonl.exists() and not csv_path.results_path.exists()


def test_a_file_that_is_not_results_names_its_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"azure-chat\.jsonl:1: not a results row"):
        list(read_results(INPUT))
    bad_csv = tmp_path / "x.results.csv"
    bad_csv.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match=r"x\.results\.csv:1: not a results CSV header"):
        list(read_results(bad_csv))


_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)


@settings(max_examples=60, deadline=None)
# a bare carriage return in a CSV field was written unquoted and read back as a line break
@example(
    results_format="csv",
    custom_id="",
    status="succeeded",
    reply="",
    code=None,
    message="\r",
    tokens=(0, 0, 0),
)
@given(
    results_format=st.sampled_from(RESULTS_FORMATS),
    custom_id=_TEXT,
    status=st.sampled_from(STATUSES),
    reply=_TEXT,
    code=st.none() | st.text(st.characters(categories=("L", "N")), min_size=1, max_size=10),
    message=_TEXT,
    tokens=st.tuples(*(st.integers(0, 10**6) for _ in range(3))),
)
def test_what_merge_writes_reads_back(
    tmp_path_factory: pytest.TempPathFactory,
    results_format: str,
    custom_id: str,
    status: str,
    reply: str,
    code: str | None,
    message: str,
    tokens: tuple[int, int, int],
) -> None:
    prompt, cached, completion = tokens
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
    body = {"model": "gpt-4o", "choices": [{"message": {"content": reply}}], "usage": usage}
    encoder = RowEncoder(results_format)
    row = encoder.encode(custom_id, status, 7, 200, code, message, body, usage, None)
    suffix = ".csv" if results_format == "csv" else ".jsonl"
    path = tmp_path_factory.mktemp("rows") / f"r.results{suffix}"
    path.write_bytes(encoder.header() + row)
    (back,) = read_result_rows(path)
    assert (back.custom_id, back.status) == (custom_id, status)
    assert back.error_code == code
    if code is not None:
        assert (back.error_message or "") == message
    if status == "succeeded" and results_format != "embedding":
        assert back.text == reply
    if results_format in ("full", "csv"):
        assert back.usage is not None
        assert (back.usage.prompt_tokens, back.usage.cached_tokens) == (prompt, cached)
        assert back.usage.completion_tokens == completion
