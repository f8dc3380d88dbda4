"""The recorded token-count ground truth (``tests/data/token_cases``) and how it is measured.

Shared by ``tests/test_token_accuracy.py`` and ``benchmarks/litellm_token_baseline.py`` so
that both count the same cases the same way. ``data/token_cases/README.md`` says where every
case comes from.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CASES = Path(__file__).resolve().parent / "data" / "token_cases" / "cases.jsonl.gz"
KINDS = ("chat", "tools", "image", "embedding", "responses", "all")
SPLITS = ("fit", "heldout")
CLEAN = "heldout_unread"
"""The held-out projects whose failing cases nobody has read (tallied on their own as well)."""
HELDOUT_FAILURES_READ = frozenset(
    {"crmne/ruby_llm", "tidyverse/ellmer", "activeagents/activeagent"}
)
"""Held-out projects whose failures were read once, to describe them (issue 13, round 1)."""

EARLY_RESPONSES_BEFORE = "2025-05-01"
BODY_NOT_AS_SENT = frozenset(
    {
        # llama-stack's recorder stores the kwargs its server passed to the client
        "body_is_client_kwargs_recorded_by_llama_stack_recorder",
        # pydantic-ai's cassette serializer may NFKC-normalise strings before storing them
        "pydantic_ai_serializer_NFKC_smart_char_normalization_possible",
    }
)
RANGE_REASONS = ("remote_image", "file_input", "hidden_server_text", "stored_items")


def exclusion(case: dict[str, Any]) -> str | None:
    """Why a case stays out of the exact / within-2 % figures, or None when it counts.

    Decided from how the request was stored and what it shows, never from how well it is
    counted, and the same for both splits:

    - ``body_not_as_sent``: the stored body is not the one sent (see BODY_NOT_AS_SENT);
    - ``key_order_lost``: a serializer sorted the body's keys and the body has tools or a
      JSON schema, whose property order the service renders into the prompt;
    - ``remote_image``: an image by URL or file id, whose size the request does not carry;
    - ``file_input``: a file (PDF, text) whose extracted text the service adds;
    - ``stored_items``: a Responses request that continues a stored response or
      conversation (``previous_response_id``, ``conversation``) or names a stored item
      (``item_reference``): text the request does not show;
    - ``hidden_server_text``: a hosted tool or an encrypted reasoning item, text the request
      does not show;
    - ``early_responses``: a Responses request recorded before EARLY_RESPONSES_BEFORE, when
      the service added hidden text it no longer adds (18 tokens without tools, 211 to 228
      with them, on every such fit case).

    ``remote_image``, ``hidden_server_text`` and ``stored_items`` are counted as ranges;
    ``range_coverage`` measures them.
    """
    caveats = set(case["caveats"])
    if caveats & BODY_NOT_AS_SENT:
        return "body_not_as_sent"
    if any(c.startswith("body_keys_sorted") for c in caveats) and _renders_key_order(
        case["request_body"]
    ):
        return "key_order_lost"
    if _has_remote_image(case["request_body"]):
        return "remote_image"
    if _has_part(case["request_body"], ("file", "input_file")):
        return "file_input"
    if _refers_to_stored(case["request_body"]):
        return "stored_items"  # before hosted tools: its range spans theirs
    if caveats & {"hosted_tool", "encrypted_reasoning"}:
        return "hidden_server_text"
    recorded = case["recorded"] or "9999"
    if case["endpoint"].startswith("/v1/responses") and recorded < EARLY_RESPONSES_BEFORE:
        return "early_responses"
    return None


def _parts(value: Any, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    """The content parts of those kinds in a body: messages, input items, tool outputs."""
    if isinstance(value, list):
        return [part for item in value for part in _parts(item, kinds)]
    if not isinstance(value, dict):
        return []
    if value.get("type") in kinds:
        return [value]
    return [
        p
        for key in ("messages", "input", "content", "output")
        for p in _parts(value.get(key), kinds)
    ]


def _has_part(body: dict[str, Any], kinds: tuple[str, ...]) -> bool:
    return bool(_parts(body, kinds))


def _has_remote_image(body: dict[str, Any]) -> bool:
    """Whether a body points at an image by URL or file id (its size is not in the request)."""
    for part in _parts(body, ("image_url", "input_image")):
        url = part.get("image_url")
        url = url.get("url") if isinstance(url, dict) else url
        if not (isinstance(url, str) and url.startswith("data:")):
            return True
    return False


def _refers_to_stored(body: dict[str, Any]) -> bool:
    """Whether a Responses body continues stored text or names a stored item by id."""
    if body.get("previous_response_id") or body.get("conversation"):
        return True
    items = body.get("input")
    return isinstance(items, list) and any(
        isinstance(item, dict) and item.get("type") == "item_reference" for item in items
    )


def _renders_key_order(body: dict[str, Any]) -> bool:
    if body.get("tools") or body.get("functions"):
        return True
    response_format = body.get("response_format")
    text = body.get("text")
    spec = response_format if isinstance(response_format, dict) else None
    if spec is None and isinstance(text, dict):
        spec = text.get("format")
    return isinstance(spec, dict) and spec.get("type") == "json_schema"


def counting_model(case: dict[str, Any]) -> str:
    """The model to count a case with.

    The case's model (for Azure, the model the response names, as a deployment map would
    give it), or the dated snapshot the response names when the request used its alias:
    ``gpt-3.5-turbo`` meant ``gpt-3.5-turbo-0301`` in May 2023, which framed messages
    differently.
    """
    model: str = case["model"]
    served = case.get("response_model")
    if isinstance(served, str) and re.fullmatch(
        re.escape(model) + r"-(\d{4}|\d{4}-\d{2}-\d{2})", served
    ):
        return served
    return model


def kinds_of(case: dict[str, Any]) -> tuple[str, ...]:
    if case["endpoint"].startswith("/v1/responses"):
        return (case["kind"], "responses", "all")
    return (case["kind"], "all")


def load_cases(path: Path = CASES) -> list[dict[str, Any]]:
    """The cases of ``path`` and of the script-made additions beside it (``cases_*.jsonl.gz``)."""
    cases = []
    for part in (path, *sorted(path.parent.glob("cases_*.jsonl.gz"))):
        with gzip.open(part, "rt", encoding="utf-8") as handle:
            cases.extend(json.loads(line) for line in handle)
    return cases


def request_of(case: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(endpoint, body, deployment map) to count a case with.

    A body that names an Azure deployment (or no model) is counted through a deployment
    map to the case's model, as a user would map it.
    """
    endpoint = case["endpoint"].removeprefix("/v1/")
    if endpoint == "responses/input_tokens":  # same body as responses.create
        endpoint = "responses"
    body = case["request_body"]
    model = counting_model(case)
    named = body.get("model")
    if not isinstance(named, str):
        return endpoint, {**body, "model": model}, {}
    return endpoint, body, ({named: model} if named != model else {})


@dataclass
class Tally:
    cases: int = 0
    exact: int = 0
    close: int = 0  # within 2 %

    def add(self, got: int, expected: int) -> None:
        self.cases += 1
        self.exact += got == expected
        self.close += abs(got - expected) <= 0.02 * expected

    def rates(self) -> tuple[float, float]:
        return (self.exact / self.cases, self.close / self.cases) if self.cases else (0.0, 0.0)


@dataclass
class Report:
    """Figures per split and kind, the excluded cases and how often ranges hold the truth."""

    tallies: dict[tuple[str, str], Tally] = field(default_factory=lambda: defaultdict(Tally))
    excluded: Counter[tuple[str, str]] = field(default_factory=Counter)
    in_range: Counter[tuple[str, str]] = field(default_factory=Counter)

    def rates(self, split: str, kind: str) -> tuple[float, float]:
        return self.tallies[(split, kind)].rates()

    def range_coverage(self, split: str, reason: str) -> float:
        total = self.excluded[(split, reason)]
        return self.in_range[(split, reason)] / total if total else 1.0


def measure(
    cases: Iterable[dict[str, Any]], count: Callable[[dict[str, Any]], tuple[int, Any]]
) -> Report:
    """Tally ``count(case) -> (tokens, (least, most) or None)`` against the recorded counts."""
    report = Report()
    for case in cases:
        split, expected = case["split"], case["expected_prompt_tokens"]
        got, spread = count(case)
        reason = exclusion(case)
        if reason is not None:
            report.excluded[(split, reason)] += 1
            least, most = spread or (got, got)
            report.in_range[(split, reason)] += least <= expected <= most
            continue
        unread = split == "heldout" and case["repo"] not in HELDOUT_FAILURES_READ
        for kind in kinds_of(case):
            report.tallies[(split, kind)].add(got, expected)
            if unread:
                report.tallies[(CLEAN, kind)].add(got, expected)
    return report


def format_report(report: Report, label: str) -> str:
    """The figures as Markdown table rows: kind, cases, fit and held-out exact / within 2 %."""
    rows = []
    for kind in KINDS:
        cells = []
        for split in SPLITS:
            tally = report.tallies[(split, kind)]
            exact, close = tally.rates()
            cells.append(f"{tally.cases}: {exact:.1%} / {close:.1%}")
        rows.append(f"| {kind} | {label} | {' | '.join(cells)} |")
    return "\n".join(rows)
