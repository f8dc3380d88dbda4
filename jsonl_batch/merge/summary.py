"""What a merge found: statuses, counts, usage and cost per shard, problems, the result.

Costs are summed per (shard, model) first and priced once at the end: batch prices are
linear in tokens within a long-context tier, and requests over a tier's threshold (which
bill entirely at its rates) are summed apart, so this is exact and costs little per line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..display import round_usd
from ..errors import JsonlBatchError
from ..formats.output_lines import CANCELLED as CANCELLED
from ..formats.output_lines import EXPIRED as EXPIRED
from ..formats.output_lines import FAILED as FAILED
from ..formats.output_lines import SUCCEEDED as SUCCEEDED
from ..formats.output_lines import UNRECOGNIZED
from ..formats.response_body import Usage as Usage
from ..formats.results import MISSING as MISSING
from ..formats.results import RESULTS_FORMATS as RESULTS_FORMATS
from ..formats.results import STATUSES as STATUSES

NOT_SUCCEEDED = (FAILED, EXPIRED, CANCELLED, MISSING)

DEFAULT_RETRY_ON = NOT_SUCCEEDED
DEFAULT_MEMORY_MB = 160
EXAMPLES = 20  # examples kept per kind of problem; counts are always exact


@dataclass(slots=True)
class Cost:
    """Actual cost at batch prices, next to the estimate for the same requests."""

    actual_usd: float | None = 0.0
    actual_input_usd: float | None = 0.0
    estimated_input_usd: float | None = None
    estimated_input_tokens: int | None = None
    unpriced_models: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "actual_usd": round_usd(self.actual_usd),
            "actual_input_usd": round_usd(self.actual_input_usd),
            "estimated_input_usd": round_usd(self.estimated_input_usd),
            "estimated_input_tokens": self.estimated_input_tokens,
            "unpriced_models": sorted(self.unpriced_models),
        }


@dataclass(slots=True)
class ErrorStat:
    """How often one error code occurred, with one example."""

    code: str
    count: int
    status: str
    example_custom_id: str
    example_message: str | None
    example_where: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "count": self.count,
            "status": self.status,
            "example": {
                "custom_id": self.example_custom_id,
                "message": self.example_message,
                "where": self.example_where,
            },
        }


@dataclass(slots=True)
class GroupSummary:
    """Counts, usage and cost for one shard, or for everything."""

    name: str
    requests: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    usage: Usage = field(default_factory=Usage)
    cost: Cost = field(default_factory=Cost)
    shard_status: str | None = None
    manifest_input_tokens: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "requests": self.requests,
            "counts": dict(self.counts),
            "usage": self.usage.to_dict(),
            "cost": self.cost.to_dict(),
        }
        if self.shard_status is not None:
            out["shard_status"] = self.shard_status
        if self.manifest_input_tokens is not None:
            out["manifest_input_tokens"] = self.manifest_input_tokens
        return out


@dataclass(slots=True)
class ModelSummary:
    """Usage and cost of the requests that came back from one model, as the output lines
    name it (deployment map applied); ``priced_as`` is the price table row, None if none."""

    model: str
    priced_as: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost: Cost = field(default_factory=Cost)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "priced_as": self.priced_as,
            "usage": self.usage.to_dict(),
            "cost": self.cost.to_dict(),
        }


@dataclass(slots=True)
class Problem:
    """Something the merge noticed and reports instead of dropping silently."""

    kind: str  # unknown_custom_id, duplicate_output, invalid_output_line, ...
    message: str
    custom_id: str | None = None
    where: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "custom_id": self.custom_id,
            "where": self.where,
        }


PROBLEM_KINDS = (
    "invalid_output_line",
    UNRECOGNIZED,
    "unknown_custom_id",
    "duplicate_output",
    "duplicate_input",
    "invalid_input_line",
)


@dataclass(slots=True)
class MergeResult:
    """What ``merge`` wrote and found. ``ok`` is True when every request succeeded."""

    results_path: Path
    retry_path: Path | None
    retry_count: int
    total: GroupSummary
    shards: list[GroupSummary]
    errors: list[ErrorStat]
    problem_counts: dict[str, int]
    problems: list[Problem]  # up to EXAMPLES per kind
    notes: list[str]
    warnings: list[str]
    index_spilled: bool = False
    output_files: list[str] = field(default_factory=list)
    summary_path: Path | None = None
    """``<stem>.merge.json``: this summary, with the results and retry files' sha256."""
    models: list[ModelSummary] = field(default_factory=list)
    resources: list[GroupSummary] = field(default_factory=list)
    """Per resource of a multi-resource job: its shards' counts, usage and cost summed."""

    @property
    def ok(self) -> bool:
        return (
            self.total.counts[SUCCEEDED] == self.total.requests
            and not self.problem_counts.get("invalid_output_line")
            and not self.problem_counts.get(UNRECOGNIZED)
            and not self.problem_counts.get("unknown_custom_id")
            and not self.problem_counts.get("invalid_input_line")
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "results": str(self.results_path),
            "retry": str(self.retry_path) if self.retry_path else None,
            "summary": str(self.summary_path) if self.summary_path else None,
            "retry_requests": self.retry_count,
            "requests": self.total.requests,
            "counts": dict(self.total.counts),
            "usage": self.total.usage.to_dict(),
            "cost": self.total.cost.to_dict(),
            "errors": [stat.to_dict() for stat in self.errors],
            "shards": [shard.to_dict() for shard in self.shards],
            "models": [model.to_dict() for model in self.models],
            "resources": [resource.to_dict() for resource in self.resources],
            "problem_counts": dict(self.problem_counts),
            "problems": [problem.to_dict() for problem in self.problems],
            "notes": list(self.notes),
            "warnings": list(self.warnings),
            "index_spilled": self.index_spilled,
            "output_files": list(self.output_files),
        }


class Problems:
    """Counts every problem, keeps the first few of each kind."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: list[Problem] = []

    def add(
        self, kind: str, message: str, custom_id: str | None = None, where: str | None = None
    ) -> None:
        self.counts[kind] += 1
        if self.counts[kind] <= EXAMPLES:
            self.examples.append(Problem(kind, message, custom_id, where))

    def absorb(self, counts: Mapping[str, int], examples: Iterable[Problem]) -> None:
        """Add another process's problems, found later in the input: their examples fill
        what room is left per kind."""
        kept = Counter(problem.kind for problem in self.examples)
        for problem in examples:
            if kept[problem.kind] < EXAMPLES:
                kept[problem.kind] += 1
                self.examples.append(problem)
        self.counts.update(counts)

    def forget(self, kind: str) -> None:
        """Drop every problem of one kind (it is about to be counted again)."""
        self.counts[kind] = 0
        self.examples = [problem for problem in self.examples if problem.kind != kind]


@dataclass(slots=True, frozen=True)
class Pricing:
    """How to price: the table (or its path), where the batch ran, and whether to estimate;
    ``thresholds`` are the table's long-context thresholds (see :func:`load_pricing`)."""

    prices: Any
    target: str
    region: str
    estimate: bool
    thresholds: tuple[int, ...] = ()
    priced: bool = True
    """False for a target with no prices (vLLM): usage is summed, costs stay unknown."""


def load_pricing(
    prices: Any, target: str, region: str, estimate: bool, *, priced: bool = True
) -> Pricing:
    """Load the price table up front (a bad file fails before the join, not after it)."""
    from ..pricing import PriceTable

    table = prices if isinstance(prices, PriceTable) else PriceTable.load(prices)
    return Pricing(table, target, region, estimate, table.thresholds(), priced)


@dataclass(slots=True)
class Tally:
    """Token sums of one (shard, model), priced once at the end.

    ``above`` holds the usage of requests over a long-context threshold (keyed by the
    highest threshold they exceed; they are in ``usage`` too), ``estimated_above`` the same
    for the estimated input tokens.
    """

    usage: Usage = field(default_factory=Usage)
    estimated_input_tokens: int = 0
    above: dict[int, Usage] = field(default_factory=dict)
    estimated_above: dict[int, int] = field(default_factory=dict)

    def long_usage(self, thresholds: tuple[int, ...], prompt_tokens: int) -> Usage | None:
        """Where to add a request's usage a second time: its tier's sums, or None."""
        if not thresholds or prompt_tokens <= thresholds[0]:
            return None
        threshold = max(t for t in thresholds if prompt_tokens > t)
        usage = self.above.get(threshold)
        if usage is None:
            usage = self.above[threshold] = Usage()
        return usage

    def add_estimate(self, thresholds: tuple[int, ...], tokens: int) -> None:
        self.estimated_input_tokens += tokens
        if thresholds and tokens > thresholds[0]:
            threshold = max(t for t in thresholds if tokens > t)
            self.estimated_above[threshold] = self.estimated_above.get(threshold, 0) + tokens

    def absorb(self, other: Tally) -> None:
        self.usage.add(other.usage)
        self.estimated_input_tokens += other.estimated_input_tokens
        for threshold, usage in other.above.items():
            self.above.setdefault(threshold, Usage()).add(usage)
        for threshold, tokens in other.estimated_above.items():
            self.estimated_above[threshold] = self.estimated_above.get(threshold, 0) + tokens


def _add_money(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def by_resource(groups: list[GroupSummary], resources: list[str | None]) -> list[GroupSummary]:
    """Shard summaries summed per resource (``resources[i]`` is shard i's), in the order the
    resources first appear; empty when no shard names one."""
    totals: dict[str, GroupSummary] = {}
    for group, name in zip(groups, resources, strict=True):
        if name is None:
            continue
        total = totals.get(name)
        if total is None:
            total = totals[name] = GroupSummary(name)
            total.cost.estimated_input_usd = group.cost.estimated_input_usd and 0.0
            total.cost.estimated_input_tokens = group.cost.estimated_input_tokens and 0
        total.requests += group.requests
        for status, n in group.counts.items():
            total.counts[status] = total.counts.get(status, 0) + n
        total.usage.add(group.usage)
        cost, add = total.cost, group.cost
        cost.actual_usd = _add_money(cost.actual_usd, add.actual_usd)
        cost.actual_input_usd = _add_money(cost.actual_input_usd, add.actual_input_usd)
        cost.estimated_input_usd = _add_money(cost.estimated_input_usd, add.estimated_input_usd)
        if cost.estimated_input_tokens is not None and add.estimated_input_tokens is not None:
            cost.estimated_input_tokens += add.estimated_input_tokens
        cost.unpriced_models = sorted({*cost.unpriced_models, *add.unpriced_models})
    return list(totals.values())


def token_counter(deployment_map: dict[str, str]) -> Any:
    from ..tokens import TokenCounter

    return TokenCounter(deployment_map)


def count_input(counter: Any, request: dict[str, Any]) -> int:
    try:
        return int(counter.count_line(request).input_tokens)
    except JsonlBatchError:
        return 0


def price_tallies(
    tallies: dict[tuple[int | None, str | None], Tally],
    total: GroupSummary,
    groups: list[GroupSummary],
    pricing: Pricing,
    warnings: list[str],
) -> list[ModelSummary]:
    """Sum usage per group and price it once per model (prices are linear in tokens); the
    returned rows are per model.

    A model with no price is left out of the cost totals, named in ``unpriced_models`` and
    in a warning; it never fails the merge. Requests over a long-context threshold are
    priced at that tier, whole.
    """
    from ..pricing import PriceTable

    summaries = [total, *groups]
    if pricing.estimate:
        for summary in summaries:
            summary.cost.estimated_input_usd = 0.0
            summary.cost.estimated_input_tokens = 0
    if not pricing.priced:
        for (shard, _model), tally in tallies.items():
            for summary in [total] + ([groups[shard]] if shard is not None and groups else []):
                summary.usage.add(tally.usage)
        for summary in summaries:
            summary.cost.actual_usd = summary.cost.actual_input_usd = None
        return []
    if not tallies:
        return []
    prices = pricing.prices
    table = prices if isinstance(prices, PriceTable) else PriceTable.load(prices)
    unpriced: set[str] = set()
    models: dict[str, ModelSummary] = {}
    for (shard, model), tally in tallies.items():
        name = model or "(no model)"
        by_model = models.get(name)
        if by_model is None:
            by_model = models[name] = ModelSummary(name)
            if pricing.estimate:
                by_model.cost.estimated_input_usd = 0.0
                by_model.cost.estimated_input_tokens = 0
        targets: list[GroupSummary | ModelSummary] = [total, by_model]
        if shard is not None and groups:
            targets.append(groups[shard])
        for target in targets:
            target.usage.add(tally.usage)
        try:
            price = table.lookup(model or "", region=pricing.region, target=pricing.target)
        except JsonlBatchError:
            unpriced.add(name)
            for target in targets:
                target.cost.unpriced_models = sorted({*target.cost.unpriced_models, name})
            by_model.cost.actual_usd = by_model.cost.actual_input_usd = None
            continue
        by_model.priced_as = price.priced_as
        actual_input = actual = 0.0
        base = Usage()
        base.add(tally.usage)
        for threshold, usage in [*tally.above.items(), (0, base)]:
            rates = price.tiers[price.tier_index(threshold + 1)] if threshold else price.base
            actual_input += rates.cost(usage.prompt_tokens, 0, usage.cached_tokens)
            actual += rates.cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
            if threshold:
                base.prompt_tokens -= usage.prompt_tokens
                base.completion_tokens -= usage.completion_tokens
                base.cached_tokens -= usage.cached_tokens
        estimated_base = tally.estimated_input_tokens - sum(tally.estimated_above.values())
        estimated = price.base.cost(estimated_base, 0)
        for threshold, tokens in tally.estimated_above.items():
            estimated += price.tiers[price.tier_index(threshold + 1)].cost(tokens, 0)
        for target in targets:
            cost = target.cost
            cost.actual_usd = (cost.actual_usd or 0.0) + actual
            cost.actual_input_usd = (cost.actual_input_usd or 0.0) + actual_input
            if cost.estimated_input_tokens is not None and cost.estimated_input_usd is not None:
                cost.estimated_input_tokens += tally.estimated_input_tokens
                cost.estimated_input_usd += estimated
    for name in sorted(unpriced):
        warnings.append(f"no batch price for model {name}: its cost is left out of the totals")
    return sorted(models.values(), key=lambda row: row.model)
