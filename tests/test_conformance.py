"""Conformance: validate, estimate and merge on real public batch files (``tests/corpus``).

Each corpus entry holds real input, output and error files with the verdict the service gave
for them (``tests/corpus/README.md``). Valid inputs must pass with no error, rejected inputs
must fail with the service's code on the service's line (or with the entry's recorded
accepted difference), and output files must merge with the status, error code and message
the service wrote for each request.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from jsonl_batch.errors import JsonlBatchError
from jsonl_batch.estimate import estimate_file
from jsonl_batch.merge import merge
from jsonl_batch.pricing import TARGETS as PRICED_TARGETS
from jsonl_batch.pricing import PriceTable
from jsonl_batch.tokens import TokenCounter
from jsonl_batch.validate import validate_file

CORPUS = Path(__file__).parent / "corpus"
ENTRIES: list[dict[str, Any]] = json.loads((CORPUS / "index.json").read_bytes())["entries"]


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter()


@pytest.fixture(scope="module")
def prices() -> PriceTable:
    return PriceTable.load()


def _files(entry: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [f for f in entry["files"] if f["role"] == role]


def _expected_errors(entry: dict[str, Any]) -> set[tuple[str, int]]:
    """(code, line) of every error we must report: the service's, with the accepted
    differences recorded in the entry swapped in."""
    verdict = entry["verdict"]
    expected = {(e["code"], e["line"]) for e in verdict.get("errors", [])}
    for difference in entry.get("accepted_differences", []):
        expected.discard((difference["service"], difference["line"]))
        if difference["ours"] is not None:
            expected.add((difference["ours"], difference["line"]))
    return expected


def _check_validate(entry: dict[str, Any], path: Path, target: str) -> None:
    report = validate_file(path, target=target)
    errors = {(f.code, f.line) for f in report.findings if f.severity == "error"}
    shown = [f"{f.code}@{f.line}: {f.message}" for f in report.findings if f.severity == "error"]
    expected = _expected_errors(entry) if not entry["verdict"].get("valid", True) else set()
    if entry["verdict"].get("partial"):
        assert expected <= errors, shown
    else:
        assert errors == expected, shown
    for finding in report.findings:
        assert finding.hint, finding  # every finding says what to do


def _check_estimate(path: Path, target: str, counter: TokenCounter, prices: PriceTable) -> None:
    """Every line is counted or reported as bad; a model without a price is an error with a
    hint (vLLM and placeholder models), never a traceback."""
    priced = target if target in PRICED_TARGETS else "openai"
    try:
        result = estimate_file(path, counter=counter, prices=prices, target=priced)
    except JsonlBatchError as exc:
        assert exc.hint, exc
        return
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    assert result.total.requests + result.bad_lines == len(lines)


def _stub_input(entry: dict[str, Any], folder: Path) -> Path:
    """Output-only entries: an input with the custom_ids the verdict names."""
    path = folder / "stub.jsonl"
    with open(path, "wb") as out:
        for custom_id in entry["verdict"]["requests"]:
            request = {
                "custom_id": custom_id,
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "stub", "messages": [{"role": "user", "content": "stub"}]},
            }
            out.write(orjson.dumps(request, option=orjson.OPT_APPEND_NEWLINE))
    return path


def _check_merge(entry: dict[str, Any], folder: Path) -> None:
    hints = entry.get("test", {})
    outputs, errors = _files(entry, "output"), _files(entry, "error")
    inputs = _files(entry, "input")
    source = _stub_input(entry, folder) if hints.get("stub_input") else CORPUS / inputs[0]["path"]
    result = merge(
        source,
        [CORPUS / f["path"] for f in outputs],
        [CORPUS / f["path"] for f in errors],
        out_dir=folder / "merged",
        target=(outputs or errors)[0]["target"],
    )
    rows = {row["custom_id"]: row for row in map(orjson.loads, result.results_path.open("rb"))}
    wanted = entry["verdict"]["requests"]
    not_in_input = set(wanted) - set(rows)
    assert bool(not_in_input) == bool(hints.get("output_ids_not_in_input")), not_in_input
    for custom_id, want in wanted.items():
        if custom_id in not_in_input:
            continue
        row = rows[custom_id]
        assert row["status"] == want["status"], row
        if want["status"] == "succeeded":
            assert row["response"] is not None and row["error"] is None, row
            continue
        if want["error_code"] is not None:
            assert row["error"]["code"] == str(want["error_code"]), row
        if want["error_message"] is not None:
            assert row["error"]["message"] == want["error_message"], row
    for custom_id in hints.get("expect_missing", []):
        assert rows[custom_id]["status"] == "missing"
    problems = {kind: n for kind, n in result.problem_counts.items() if n}
    assert problems == ({"unknown_custom_id": len(not_in_input)} if not_in_input else {})
    retried = set()
    if result.retry_path is not None:
        retried = {orjson.loads(line)["custom_id"] for line in result.retry_path.open("rb")}
    assert retried == {cid for cid, row in rows.items() if row["status"] != "succeeded"}


@pytest.mark.parametrize("entry", ENTRIES, ids=[entry["id"] for entry in ENTRIES])
def test_corpus_entry(
    entry: dict[str, Any], tmp_path: Path, counter: TokenCounter, prices: PriceTable
) -> None:
    for file in _files(entry, "input"):
        path = CORPUS / file["path"]
        for target in [file["target"], *entry.get("test", {}).get("also_targets", [])]:
            _check_validate(entry, path, target)
            _check_estimate(path, target, counter, prices)
    if _files(entry, "output") or _files(entry, "error"):
        _check_merge(entry, tmp_path)


def test_corpus_is_what_the_readme_says() -> None:
    """At least 40 entries, each file as recorded (size and sha256), with a source and a
    licence, and a verdict source for every entry."""
    import hashlib

    assert len(ENTRIES) >= 40
    for entry in ENTRIES:
        assert entry["verdict_source"], entry["id"]
        for file in entry["files"]:
            data = (CORPUS / file["path"]).read_bytes()
            assert (
                len(data) == file["bytes"] and hashlib.sha256(data).hexdigest() == file["sha256"]
            ), file["path"]
            source = file["source"]
            assert source["url"] or (source["repo"] and source["path"]), file["path"]
            assert file["license"] and file["shortened"], file["path"]
