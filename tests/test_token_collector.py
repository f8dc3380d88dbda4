"""The token-case collector (scripts/token_cases) reads every cassette format it names.

Each fixture in tests/data/cassettes/ is a whole recording file from a project in
scripts/token_cases/projects.toml (sources and licences in its README); the collector must
make from it the very case that tests/data/token_cases/cases.jsonl.gz holds.
"""

from __future__ import annotations

import collections
import gzip
import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts" / "token_cases"))

import collect  # noqa: E402

FIXTURES = ROOT / "tests" / "data" / "cassettes"
# fixture -> the committed case made from its first interaction
SOURCES = {
    "vcrpy.yaml": "github:jackmpcollins/magentic@47bfc994cd62a0dc77102bf1b990a6bdf6e924a0:"
    "tests/chat_model/cassettes/test_openai_chat_model/test_openai_chat_model_verbosity.yaml",
    "ruby_vcr.yml": "github:vicentereig/dspy.rb@01fd19252f552fcc177188699644ec304afc1e6c:"
    "spec/vcr_cassettes/DSPy_LM_raw_chat_integration/with_OpenAI_provider/"
    "supports_DSL_builder_for_messages.yml",
    "r_vcr.yml": "github:tidyverse/ellmer@12e9429812b87764891410ddbfaf91177a52f2a8:"
    "inst/_vcr/Chat.yml",
    "go_vcr_v2.yaml": "github:charmbracelet/fantasy@3f7265016cab421290f4afeb5e2aeb0822fded3d:"
    "providertests/testdata/TestSimple/openai-gpt-4o-mini.yaml",
    "polly.har": "github:traceloop/openllmetry-js@ecf862a758d880fcba0bc04bbd59c06e21c74b63:"
    "packages/instrumentation-azure/recordings/Test-OpenAI-instrumentation_1770406427/"
    "should-set-attributes-in-span-for-chat_1427850401/recording.har",
}


@pytest.fixture(scope="module")
def committed() -> dict[str, dict[str, Any]]:
    wanted = {source + "#interaction=0" for source in SOURCES.values()}
    path = ROOT / "tests" / "data" / "token_cases" / "cases.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        cases = (json.loads(line) for line in handle)
        return {c["source"]: c for c in cases if c["source"] in wanted}


def collect_file(data: bytes, case: dict[str, Any]) -> list[dict[str, Any]]:
    base = {
        "repo": case["repo"],
        "path": case["path"],
        "commit": case["commit"],
        "commit_date": case["recorded"],
    }
    rows = collect.rows_of(data, base, collections.Counter())
    project = next(p for p in collect.load_projects() if p["repo"] == case["repo"])
    cases, _ = collect.build([project], rows, FIXTURES)
    return cases


@pytest.mark.parametrize("fixture", sorted(SOURCES))
def test_each_format_gives_the_committed_case(
    fixture: str, committed: dict[str, dict[str, Any]]
) -> None:
    case = committed[SOURCES[fixture] + "#interaction=0"]
    made = next(
        c for c in collect_file((FIXTURES / fixture).read_bytes(), case) if c["id"] == case["id"]
    )
    for field in set(case) - {"caveats", *collect.RUN_DEPENDENT}:
        assert made[field] == case[field], field
    others = [c for c in case["caveats"] if c != collect.RUN_DEPENDENT_CAVEAT]
    assert made["caveats"] == others


def test_a_body_edited_after_recording_is_left_out(committed: dict[str, dict[str, Any]]) -> None:
    case = committed[SOURCES["vcrpy.yaml"] + "#interaction=0"]
    data = (FIXTURES / "vcrpy.yaml").read_bytes()
    edited = data.replace(b'"content":"Sum 1 + 2"', b'"content":"Sum 1 + 20"', 1)
    assert edited != data
    assert collect_file(data, case)
    assert collect_file(edited, case) == []  # the recorded Content-Length no longer matches
