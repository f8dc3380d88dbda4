"""What a report shows, collected by streaming: aggregates and a top-N, never every row.

A :class:`ReportBuilder` is fed per-request records (``estimate_file(on_request=...)``),
per-file or per-shard estimates, a merge summary and a job file, and builds a
:class:`Report`. Memory is fixed whatever the number of requests: a histogram with fixed
power-of-two bins, a bounded heap of the costliest requests, and counts per model, shard,
status and error code.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._version import __version__
from ..display import round_usd
from ..estimate import EstimateResult, ModelRow, combine_results
from ..formats.batch import BATCH_TIMES
from ..merge.summary import STATUSES

TOP_REQUESTS = 20
MAX_NOTES = 40
MAX_ERROR_CODES = 50
MAX_TEXT = 300  # characters kept of a custom_id, model name or message
# Two bins per doubling of the input tokens: 80 bins reach 2**39 tokens, far above any
# context window.
HISTOGRAM_BINS = 80

# Phases of a batch, named by the timestamp that starts them (service clock); the
# timestamps that end a batch start no phase.
PHASE_OF = {
    "created_at": "validating",
    "in_progress_at": "in_progress",
    "finalizing_at": "finalizing",
    "cancelling_at": "cancelling",
}
END_OF = {
    "completed_at": "completed",
    "failed_at": "failed",
    "expired_at": "expired",
    "cancelled_at": "cancelled",
}


def clip(text: Any, limit: int = MAX_TEXT) -> str:
    """A user string (custom_id, model, message) cut to ``limit`` characters."""
    value = text if isinstance(text, str) else str(text)
    return value if len(value) <= limit else value[: limit - 1] + "…"


@dataclass(slots=True)
class Histogram:
    """Requests per input-token bin, with their expected cost. The bins are fixed and
    logarithmic, two per doubling: bin 0 holds requests of 0 tokens, then [1], [2], [3],
    [4, 5], [6, 7], [8, 11], [12, 15], [16, 22], ... (edges at powers of two and at powers
    of two times √2, rounded up; computed on integers, so exact)."""

    counts: list[int] = field(default_factory=lambda: [0] * HISTOGRAM_BINS)
    costs: list[float] = field(default_factory=lambda: [0.0] * HISTOGRAM_BINS)

    @staticmethod
    def bin_of(tokens: int) -> int:
        if tokens <= 0:
            return 0
        bits = tokens.bit_length()
        upper_half = tokens * tokens >= 1 << (2 * bits - 1)  # tokens >= 2**(bits-1) * √2
        return min(2 * bits - 1 + upper_half, HISTOGRAM_BINS - 1)

    @staticmethod
    def start(index: int) -> int:
        """The smallest token count of a bin."""
        if index <= 0:
            return 0
        bits, upper_half = divmod(index - 1, 2)
        if not upper_half:
            return 1 << bits
        return math.isqrt((1 << (2 * bits + 1)) - 1) + 1

    @classmethod
    def bounds(cls, index: int) -> tuple[int, int]:
        """The smallest and largest token count of a bin (the last bin has no largest: it
        holds everything above its start, far beyond any context window)."""
        return cls.start(index), cls.start(index + 1) - 1

    def add(self, tokens: int, cost: float | None) -> None:
        index = self.bin_of(tokens)
        self.counts[index] += 1
        self.costs[index] += cost or 0.0

    @property
    def requests(self) -> int:
        return sum(self.counts)

    def rows(self, at_least: int = 0) -> list[tuple[int, int, int, float]]:
        """(least tokens, most tokens, requests, expected cost) from the first non-empty bin
        to the last one, empty bins between them included so the shape is honest; with
        ``at_least``, empty bins either side make up that many rows (for a chart)."""
        used = [i for i, count in enumerate(self.counts) if count]
        if not used:
            return []
        possible = [i for i in range(HISTOGRAM_BINS) if self.start(i) < self.start(i + 1) or i == 0]
        first, last = possible.index(used[0]), possible.index(used[-1])
        missing = max(0, at_least - (last - first + 1))
        before = min(first, missing // 2)
        first -= before
        last = min(len(possible) - 1, last + missing - before)
        return [
            (*self.bounds(i), self.counts[i], self.costs[i]) for i in possible[first : last + 1]
        ]


@dataclass(slots=True, frozen=True)
class RequestCost:
    """One of the costliest requests: where it is and what it is estimated to cost."""

    custom_id: str
    where: str
    model: str
    input_tokens: int
    input_tokens_low: int
    input_tokens_high: int
    max_output_tokens: int
    cost: float | None
    cost_high: float | None


class TopRequests:
    """The ``n`` costliest requests seen (expected cost, then input tokens): a bounded heap.
    Ties keep the first seen, so the result does not depend on arrival order of equals."""

    def __init__(self, n: int = TOP_REQUESTS) -> None:
        self.n = n
        self._heap: list[tuple[float, int, int, RequestCost]] = []
        self._seq = itertools.count()

    def add(self, record: Mapping[str, Any], where: str) -> None:
        """One request; ``where`` is its file, to which its ``line`` is added."""
        cost = record.get("cost")
        tokens = int(record.get("input_tokens") or 0)
        key = (float(cost or 0.0), tokens, -next(self._seq))
        if len(self._heap) >= self.n and key <= self._heap[0][:3]:
            return
        item = RequestCost(
            custom_id=clip(record.get("custom_id")),
            where=clip(f"{where}:{record.get('line')}"),
            model=clip(record.get("model") or ""),
            input_tokens=tokens,
            input_tokens_low=int(record.get("input_tokens_low", tokens)),
            input_tokens_high=int(record.get("input_tokens_high", tokens)),
            max_output_tokens=int(record.get("max_output_tokens") or 0),
            cost=cost,
            cost_high=record.get("cost_high"),
        )
        entry = (*key, item)
        if len(self._heap) < self.n:
            heapq.heappush(self._heap, entry)
        else:
            heapq.heapreplace(self._heap, entry)

    def items(self) -> list[RequestCost]:
        return [entry[3] for entry in sorted(self._heap, reverse=True)]


@dataclass(slots=True)
class Estimate:
    """An estimate's requests, input tokens and cost range (costs None: no price)."""

    requests: int
    input_tokens: int
    input_tokens_low: int
    input_tokens_high: int
    low: float | None
    expected: float | None
    high: float | None

    @classmethod
    def of(cls, row: ModelRow) -> Estimate:
        return cls(
            row.requests,
            row.input_tokens,
            row.input_tokens_low,
            row.input_tokens_high,
            row.cost_low,
            row.cost_expected,
            row.cost_high,
        )

    def costs(self) -> dict[str, float | None]:
        """The cost range, rounded as estimate's JSON rounds it."""
        return {
            "low": round_usd(self.low),
            "expected": round_usd(self.expected),
            "high": round_usd(self.high),
        }


@dataclass(slots=True)
class CostRow:
    """One model or shard: the estimate next to what the batch actually cost."""

    name: str
    aliases: list[str] = field(default_factory=list)  # model names that priced as ``name``
    estimate: Estimate | None = None
    actual_usd: float | None = None
    requests: int | None = None
    status: str | None = None
    unpriced: bool = False


@dataclass(slots=True, frozen=True)
class ResourceRow:
    """One resource of a multi-resource job, from the merge summary: where the work ran and
    what it cost there."""

    name: str
    requests: int
    counts: dict[str, int]
    prompt_tokens: int
    completion_tokens: int
    actual_usd: float | None


@dataclass(slots=True, frozen=True)
class ErrorRow:
    """One error code: how many requests (or batches) got it, with one example."""

    code: str
    status: str
    count: int
    custom_id: str | None
    message: str | None
    where: str | None


@dataclass(slots=True)
class ShardTimeline:
    """One shard's batch: its phases (``phase``, start, end; end None while it runs), in
    Unix seconds on ``clock`` ("service": the batch's own timestamps; "local": ours)."""

    name: str
    status: str
    clock: str
    phases: list[tuple[str, float, float | None]]
    requests: int
    done: int
    failed: int
    ended: float | None = None
    expires_at: float | None = None
    expected_end: float | None = None
    batch_id: str | None = None
    deployment: str | None = None


@dataclass(slots=True)
class Report:
    """Everything the HTML shows, aggregated (the user strings in it clipped)."""

    title: str
    generated_at: float
    version: str = __version__
    inputs: list[tuple[str, str]] = field(default_factory=list)  # (what, path or value)
    prices: str | None = None
    settings: list[tuple[str, str]] = field(default_factory=list)
    estimate: Estimate | None = None
    actual_usd: float | None = None
    usage: dict[str, int] | None = None
    models: list[CostRow] = field(default_factory=list)
    groups: list[CostRow] = field(default_factory=list)
    group_kind: str = "file"  # what ``groups`` are: "shard" or "file"
    resources: list[ResourceRow] = field(default_factory=list)
    histogram: Histogram | None = None
    top: list[RequestCost] = field(default_factory=list)
    counts: dict[str, int] | None = None
    counts_from: str | None = None  # "merge" or "batches"
    errors: list[ErrorRow] = field(default_factory=list)
    more_error_codes: int = 0
    timeline: list[ShardTimeline] = field(default_factory=list)
    as_of: float | None = None  # when the job file was last updated (our clock)
    notes: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int | None:
        if self.counts is not None:
            return sum(self.counts.values())
        return self.estimate.requests if self.estimate else None

    def headline(self) -> dict[str, Any]:
        """The figures ``--format json`` prints next to where the report went."""
        return {
            "requests": self.requests,
            "estimate_usd": self.estimate.costs() if self.estimate else None,
            "actual_usd": self.actual_usd,
            "counts": dict(self.counts) if self.counts is not None else None,
        }


class ReportBuilder:
    """Collects a report piece by piece, in bounded memory.

    Feed it :meth:`request` from ``estimate_file(on_request=...)``, then :meth:`add_estimate`
    with each file's (or shard's) result, and optionally :meth:`add_merge` and
    :meth:`add_job`; :meth:`build` returns the :class:`Report`.
    """

    def __init__(
        self,
        title: str,
        *,
        group_kind: str = "file",
        top: int = TOP_REQUESTS,
        now: float | None = None,
    ) -> None:
        self.report = Report(
            title=title, generated_at=time.time() if now is None else now, group_kind=group_kind
        )
        self.histogram = Histogram()
        self.top = TopRequests(top)
        self.estimates: list[tuple[str, EstimateResult]] = []
        self.merge: Mapping[str, Any] | None = None
        self._where = ""

    # --- feeding ------------------------------------------------------------------------

    def add_input(self, what: str, value: str) -> None:
        self.report.inputs.append((what, value))

    def add_setting(self, what: str, value: str) -> None:
        self.report.settings.append((what, value))

    def reading(self, where: str) -> None:
        """Name the file the next :meth:`request` records come from (for their line)."""
        self._where = where

    def add_deployment_map(self, mapping: Mapping[str, str] | None) -> None:
        if mapping:
            self.add_setting(
                "deployment map", ", ".join(f"{k}={v}" for k, v in sorted(mapping.items()))
            )

    def request(self, record: dict[str, Any]) -> None:
        """One request of an estimate (an ``on_request`` record)."""
        self.histogram.add(int(record.get("input_tokens") or 0), record.get("cost"))
        self.top.add(record, self._where)

    def add_estimate(self, result: EstimateResult, group: str | None = None) -> None:
        """One file's estimate; ``group`` names its row in the by-shard/by-file table."""
        self.estimates.append((group or result.path, result))

    def add_merge(self, summary: Mapping[str, Any]) -> None:
        """A merge summary: ``MergeResult.to_dict()`` or the ``<stem>.merge.json`` it wrote."""
        self.merge = summary

    def add_job(self, job: Any) -> None:
        """A job file (``JobFile``): shard statuses and the timeline of their batches, as of
        its last update (a batch still running then is drawn up to that moment)."""
        shards = sorted(job.shards, key=lambda shard: shard.index)
        service = any(shard.batch_times for shard in shards)
        self.report.as_of = job.updated_at
        self.report.timeline = [_timeline(shard, service, job.updated_at) for shard in shards]
        self._job_counts(shards)

    def note(self, text: str) -> None:
        notes = self.report.notes
        if text not in notes and len(notes) < MAX_NOTES:
            notes.append(text)

    # --- building -----------------------------------------------------------------------

    def build(self) -> Report:
        report = self.report
        if self.estimates:
            self._estimate_rows()
        if self.merge is not None:
            self._merge_rows(self.merge)
        return report

    def _estimate_rows(self) -> None:
        report = self.report
        results = [result for _, result in self.estimates]
        total = combine_results(results)
        report.estimate = Estimate.of(total.total)
        report.prices = total.prices or report.prices
        report.histogram = self.histogram
        report.top = self.top.items()
        for row in total.rows:
            key = row.priced_as or row.model
            cost_row = _row(report.models, key)
            cost_row.unpriced = row.priced_as is None
            name = row.model if row.mapped_to is None else f"{row.model} → {row.mapped_to}"
            if name != key and name not in cost_row.aliases:
                cost_row.aliases.append(clip(name))
            estimate = Estimate.of(row)
            if cost_row.estimate is None:
                cost_row.estimate = estimate
            else:  # two names priced as one row: sum them
                cost_row.estimate = _sum_estimates(cost_row.estimate, estimate)
            cost_row.requests = cost_row.estimate.requests
        first = results[0].options
        output = "none given (expected cost counts input only)"
        if first.expected_output_tokens is not None:
            output = f"{first.expected_output_tokens:,} tokens per request"
        elif first.output_ratio is not None:
            output = f"{first.output_ratio:g} × input tokens"
        self.add_setting("target", first.target)
        if first.target != "openai":
            self.add_setting("region", first.region)
        self.add_setting("expected output", output)
        self.add_setting("cached input share (low figure)", f"{first.cached_fraction:g}")
        if len(self.estimates) > 1 or report.group_kind == "shard":
            for name, result in self.estimates:
                group = _row(report.groups, name)
                group.estimate = Estimate.of(result.total)
                group.requests = result.total.requests
        for result in results:
            for warning in result.warnings:
                self.note(f"warning: {warning.message}")
            for text in result.notes:
                self.note(text)

    def _merge_rows(self, merge: Mapping[str, Any]) -> None:
        """The merge summary's figures; a field of the wrong type (a summary edited by hand)
        is left out rather than trusted."""
        report = self.report
        report.actual_usd = _number(_mapping(merge.get("cost")).get("actual_usd"))
        usage = _mapping(merge.get("usage"))
        report.usage = {k: v for k, v in usage.items() if type(v) is int} or None
        counts = _mapping(merge.get("counts"))
        report.counts = {str(k): v for k, v in counts.items() if type(v) is int}
        report.counts_from = "merge"
        errors = _items(merge.get("errors"))
        for stat in errors[:MAX_ERROR_CODES]:
            example = _mapping(stat.get("example"))
            report.errors.append(
                ErrorRow(
                    code=clip(stat.get("code")),
                    status=clip(stat.get("status")),
                    count=int(_number(stat.get("count")) or 0),
                    custom_id=_clip_or_none(example.get("custom_id")),
                    message=_clip_or_none(example.get("message")),
                    where=_clip_or_none(example.get("where")),
                )
            )
        report.more_error_codes = max(0, len(errors) - MAX_ERROR_CODES)
        models = _items(merge.get("models"))
        if not models and report.actual_usd is not None and len(report.models) == 1:
            # a summary from before merge kept per-model costs: its one model has it all
            report.models[0].actual_usd = report.actual_usd
        for item in models:
            key = item.get("priced_as") or item.get("model") or "(no model)"
            row = _row(report.models, str(key))
            name = clip(f"{item.get('model')} (served)")
            if str(item.get("model")) != row.name and name not in row.aliases:
                row.aliases.append(name)
            actual = _number(_mapping(item.get("cost")).get("actual_usd"))
            if actual is None:
                row.unpriced = True
            else:
                row.actual_usd = (row.actual_usd or 0.0) + actual
        for shard in _items(merge.get("shards")):
            row = _row(report.groups, str(shard.get("name")))
            row.actual_usd = _number(_mapping(shard.get("cost")).get("actual_usd"))
            if row.requests is None and type(shard.get("requests")) is int:
                row.requests = shard["requests"]
            row.status = _clip_or_none(shard.get("shard_status")) or row.status
        for item in _items(merge.get("resources")):
            usage, counts = _mapping(item.get("usage")), _mapping(item.get("counts"))
            report.resources.append(
                ResourceRow(
                    name=clip(item.get("name")),
                    requests=int(_number(item.get("requests")) or 0),
                    counts={clip(k): v for k, v in counts.items() if type(v) is int},
                    prompt_tokens=int(_number(usage.get("prompt_tokens")) or 0),
                    completion_tokens=int(_number(usage.get("completion_tokens")) or 0),
                    actual_usd=_number(_mapping(item.get("cost")).get("actual_usd")),
                )
            )
        for text in [*_strings(merge.get("warnings")), *_strings(merge.get("notes"))]:
            self.note(f"merge: {text}")

    def _job_counts(self, shards: Iterable[Any]) -> None:
        """Statuses from the batches' request counts, until a merge gives exact ones."""
        counts = dict.fromkeys((*STATUSES, "pending"), 0)
        codes: dict[str, ErrorRow] = {}
        for shard in shards:
            done = shard.request_counts.completed
            failed = shard.request_counts.failed
            counts["succeeded"] += done
            counts["failed"] += failed
            # requests not counted by the batch: what its end makes of them, else not back yet
            counts[_UNCOUNTED.get(shard.status, "pending")] += max(
                shard.requests - done - failed, 0
            )
            row = _row(self.report.groups, f"shard {shard.index}")
            row.status = shard.status
            row.requests = shard.requests
            for error in shard.errors:
                code = clip(error.code or "batch_failed")
                if code in codes:
                    old = codes[code]
                    codes[code] = ErrorRow(
                        old.code, old.status, old.count + 1, None, old.message, old.where
                    )
                else:
                    codes[code] = ErrorRow(
                        code, "batch", 1, None, _clip_or_none(error.message), f"shard {shard.index}"
                    )
        if self.report.counts is None:
            self.report.counts = counts
            self.report.counts_from = "batches"
            self.report.errors = list(codes.values())


_UNCOUNTED = {"completed": "missing", "failed": "failed", "expired": "expired"}
_UNCOUNTED["cancelled"] = "cancelled"


def _row(rows: list[CostRow], name: str) -> CostRow:
    for row in rows:
        if row.name == name:
            return row
    row = CostRow(clip(name))
    rows.append(row)
    return row


def _sum_estimates(a: Estimate, b: Estimate) -> Estimate:
    def add(x: float | None, y: float | None) -> float | None:
        return None if x is None and y is None else (x or 0.0) + (y or 0.0)

    return Estimate(
        a.requests + b.requests,
        a.input_tokens + b.input_tokens,
        a.input_tokens_low + b.input_tokens_low,
        a.input_tokens_high + b.input_tokens_high,
        add(a.low, b.low),
        add(a.expected, b.expected),
        add(a.high, b.high),
    )


def _number(value: Any) -> float | None:
    return float(value) if type(value) in (int, float) else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _strings(value: Any) -> list[str]:
    return [clip(item) for item in value] if isinstance(value, list) else []


def _clip_or_none(value: Any) -> str | None:
    return None if value is None else clip(value)


def _timeline(shard: Any, service: bool, now: float) -> ShardTimeline:
    """A shard's phases from its batch's timestamps (or, for job files written before we kept
    them, from our own submit and finish times)."""
    counts = shard.request_counts
    timeline = ShardTimeline(
        name=f"shard {shard.index}",
        status=shard.status,
        clock="service" if service else "local",
        phases=[],
        requests=shard.requests,
        done=counts.completed + counts.failed,
        failed=counts.failed,
        batch_id=shard.batch_id,
        deployment=shard.deployment,
    )
    if service:
        times = dict(shard.batch_times)
        timeline.expires_at = times.pop("expires_at", None)
        # in time order, and where two share a second, in the order a batch meets them
        events = sorted(
            (t, BATCH_TIMES.index(name), name)
            for name, t in times.items()
            if name in PHASE_OF or name in END_OF
        )
        for i, (start, _, name) in enumerate(events):
            if name in END_OF:
                timeline.ended = start
                break
            end = events[i + 1][0] if i + 1 < len(events) else None
            timeline.phases.append((PHASE_OF[name], start, end))
        started = times.get("in_progress_at")
        if timeline.ended is None and started is not None and now > started and counts.total:
            done = counts.completed + counts.failed
            if 0 < done < counts.total:
                timeline.expected_end = started + (now - started) * counts.total / done
    elif shard.submitted_at is not None:
        timeline.phases.append(("running", shard.submitted_at, shard.finished_at))
        timeline.ended = shard.finished_at
    return timeline


__all__ = [
    "CostRow",
    "ErrorRow",
    "Estimate",
    "Histogram",
    "Report",
    "ReportBuilder",
    "RequestCost",
    "ShardTimeline",
    "TopRequests",
]
