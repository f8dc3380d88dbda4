"""Estimate what a Batch input file will cost: tokens per request, priced per model, as a range.

Why a range: the input is known (counted offline) or known to lie between two counts (a
remote image's size, hidden server text), the output is not. ``low`` is the least input
(with the cached fraction the user states at the cached rate) plus the expected output,
``expected`` is the counted input at the batch rate plus the expected output, and ``high``
is the most input (as prompt-cache writes where those cost more) plus every request writing
its full output cap (``max_tokens`` & co., else the model's max output). Without
``expected_output_tokens`` / ``output_ratio`` the expected output is 0 (the notes say so).

Counting never depends on pricing: a model with no price is counted and reported like any
other, with a ``no_price`` warning and no cost.

Large plain files are cut into byte ranges at line boundaries and counted in a process pool
(each worker builds its own TokenCounter); results are merged in file order, so the totals
equal a single-process run. Costs are priced from integer token sums (per long-context
tier), so they do not depend on how the file was split. Memory is bounded by the chunk
size, never by the file size.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .display import round_usd
from .errors import ConfigError, JsonlBatchError, PriceNotFound
from .jsonl import (
    BLANK,
    DEFAULT_MAX_LINE_BYTES,
    Line,
    line_aligned_ranges,
    open_range,
    read_lines,
    source_name,
)
from .pricing import REGIONS, TARGETS, ModelPrice, PriceTable, no_price_hint
from .profiles import Profile, as_profile
from .tokens import FLAG_NOT_COUNTABLE, FLAG_REMOTE_IMAGE, FLAG_UNKNOWN_MODEL, TokenCounter
from .tokens.context import ImageSizeLookup

DEFAULT_CHUNK_BYTES = 8 << 20
PROGRESS_EVERY_BYTES = 1 << 20
MAX_LISTED_LINES = 5
MAX_BAD_LINE_WARNINGS = 20
RETIRING_SOON_DAYS = 30

ProgressCallback = Callable[[int], None]
RequestCallback = Callable[[dict[str, Any]], None]

# The three figures; token sums per long-context tier are kept for each.
LOW, EXPECTED, HIGH = 0, 1, 2


@dataclass(frozen=True, slots=True)
class EstimateOptions:
    """What the user assumes about output and caching, and where the batch runs."""

    target: str = "azure"
    region: str = "global"
    expected_output_tokens: int | None = None
    output_ratio: float | None = None
    cached_fraction: float = 0.0
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    """A longer line is not read: it is reported as a bad line."""

    def check(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError(
                f"unknown target {self.target!r}", hint="use azure, openai or litellm"
            )
        if self.region not in REGIONS:
            raise ConfigError(
                f"unknown region {self.region!r}", hint=f"use one of {', '.join(REGIONS)}"
            )
        if self.expected_output_tokens is not None and self.output_ratio is not None:
            raise ConfigError(
                "give either an expected output token count or an output ratio, not both"
            )
        if self.expected_output_tokens is not None and self.expected_output_tokens < 0:
            raise ConfigError("expected output tokens must be 0 or more")
        if self.output_ratio is not None and self.output_ratio < 0:
            raise ConfigError("the output ratio must be 0 or more")
        if not 0.0 <= self.cached_fraction <= 1.0:
            raise ConfigError("the cached fraction must be between 0 and 1")

    @property
    def has_expected_output(self) -> bool:
        return self.expected_output_tokens is not None or self.output_ratio is not None


# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EstimateWarning:
    """Something to fix before submitting: a ``code`` to filter on and a message."""

    code: str
    message: str

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(slots=True)
class ModelRow:
    """Requests of one model in one file: token sums and the cost range (USD).

    ``priced_as`` and the costs are None for a model with no price.
    """

    model: str
    priced_as: str | None
    mapped_to: str | None = None  # the deployment map's model for ``model``, if it has one
    requests: int = 0
    input_tokens: int = 0
    input_tokens_low: int = 0
    input_tokens_high: int = 0
    cached_input_tokens: int = 0
    expected_output_tokens: int = 0
    max_output_tokens: int = 0
    cache_write_tokens_high: int = 0
    cost_low: float | None = None
    cost_expected: float | None = None
    cost_high: float | None = None
    first_line: int = 0
    over_context: int = 0
    maybe_over_context: int = 0
    over_max_output: int = 0
    over_context_lines: list[int] = field(default_factory=list)
    over_max_output_lines: list[int] = field(default_factory=list)
    # (figure, tier) -> [input, output, cached, cache writes] of requests above tier 0
    tiered: dict[tuple[int, int], list[int]] = field(default_factory=dict)

    def add(self, other: ModelRow) -> None:
        self.requests += other.requests
        self.input_tokens += other.input_tokens
        self.input_tokens_low += other.input_tokens_low
        self.input_tokens_high += other.input_tokens_high
        self.cached_input_tokens += other.cached_input_tokens
        self.expected_output_tokens += other.expected_output_tokens
        self.max_output_tokens += other.max_output_tokens
        self.cache_write_tokens_high += other.cache_write_tokens_high
        self.over_context += other.over_context
        self.maybe_over_context += other.maybe_over_context
        self.over_max_output += other.over_max_output
        room = MAX_LISTED_LINES - len(self.over_context_lines)
        self.over_context_lines.extend(other.over_context_lines[:room])
        room = MAX_LISTED_LINES - len(self.over_max_output_lines)
        self.over_max_output_lines.extend(other.over_max_output_lines[:room])
        for key, sums in other.tiered.items():
            mine = self.tiered.setdefault(key, [0, 0, 0, 0])
            for i, value in enumerate(sums):
                mine[i] += value

    def add_tiered(self, figure: int, tier: int, tokens: tuple[int, int, int, int]) -> None:
        sums = self.tiered.setdefault((figure, tier), [0, 0, 0, 0])
        for i, value in enumerate(tokens):
            sums[i] += value

    def price_with(self, price: ModelPrice) -> None:
        """Compute the cost range from integer sums (so it does not depend on --jobs)."""
        self.priced_as = price.priced_as
        figures = (
            (LOW, self.input_tokens_low, self.expected_output_tokens, self.cached_input_tokens, 0),
            (EXPECTED, self.input_tokens, self.expected_output_tokens, 0, 0),
            (HIGH, self.input_tokens_high, self.max_output_tokens, 0, self.cache_write_tokens_high),
        )
        costs = []
        for figure, *totals in figures:
            cost = 0.0
            for (which, tier), sums in self.tiered.items():
                if which == figure:
                    cost += price.tiers[tier].cost(*sums)
                    totals = [total - part for total, part in zip(totals, sums, strict=True)]
            costs.append(cost + price.base.cost(*totals))
        self.cost_low, self.cost_expected, self.cost_high = costs

    def to_dict(self) -> dict[str, Any]:
        priced = self.cost_low is not None
        return {
            "model": self.model,
            "mapped_to": self.mapped_to,
            "priced_as": self.priced_as,
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "input_tokens_low": self.input_tokens_low,
            "input_tokens_high": self.input_tokens_high,
            "cached_input_tokens": self.cached_input_tokens,
            "output_tokens": {
                "expected": self.expected_output_tokens,
                "max": self.max_output_tokens,
            },
            "cost_usd": {
                "low": round_usd(self.cost_low),
                "expected": round_usd(self.cost_expected),
                "high": round_usd(self.cost_high),
            }
            if priced
            else None,
            "over_context": self.over_context,
            "maybe_over_context": self.maybe_over_context,
            "over_max_output": self.over_max_output,
        }


@dataclass(slots=True)
class EstimateResult:
    """The estimate of one file (or, from :func:`combine_results`, of several)."""

    path: str
    rows: list[ModelRow]
    total: ModelRow
    lines: int = 0
    bad_lines: int = 0
    bytes: int = 0
    warnings: list[EstimateWarning] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    prices: str = ""
    options: EstimateOptions = field(default_factory=EstimateOptions)
    models: dict[str, ModelPrice] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when nothing needs fixing before submitting (warnings are problems)."""
        return not self.warnings

    @property
    def unpriced_requests(self) -> int:
        return sum(row.requests for row in self.rows if row.cost_low is None)

    def to_dict(self) -> dict[str, Any]:
        total = self.total.to_dict()
        total["unpriced_requests"] = self.unpriced_requests
        return {
            "path": self.path,
            "prices": self.prices,
            "target": self.options.target,
            "region": self.options.region,
            "assumptions": {
                "expected_output_tokens": self.options.expected_output_tokens,
                "output_ratio": self.options.output_ratio,
                "cached_fraction": self.options.cached_fraction,
                "batch": True,
            },
            "lines": self.lines,
            "bad_lines": self.bad_lines,
            "bytes": self.bytes,
            "models": [row.to_dict() for row in self.rows],
            "total": total,
            "warnings": [w.to_dict() for w in self.warnings],
            "notes": list(self.notes),
            "ok": self.ok,
        }


# --- counting (one pass over lines; shared by the single process and the workers) ---------------


@dataclass(slots=True)
class _Partial:
    """What one pass over some lines found; line numbers are relative to its first line."""

    rows: dict[tuple[str, str], ModelRow] = field(default_factory=dict)
    lines: int = 0
    bytes: int = 0
    bad_lines: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)
    flags: dict[str, int] = field(default_factory=dict)
    ranged: int = 0
    no_max_output: int = 0
    requests: list[dict[str, Any]] | None = None


class _Counter:
    """Counts and prices lines; one per process."""

    def __init__(
        self,
        table: PriceTable,
        deployment_map: Mapping[str, str] | None,
        options: EstimateOptions,
        counter: TokenCounter | None = None,
        image_size: ImageSizeLookup | None = None,
    ) -> None:
        self.table = table
        self.options = options
        self.tokens = (
            counter if counter is not None else TokenCounter(deployment_map, image_size=image_size)
        )
        self.prices: dict[str, ModelPrice | None] = {}

    def price(self, model: str) -> ModelPrice | None:
        """The model's price, or None when the table has none (counted, not priced)."""
        if model in self.prices:
            return self.prices[model]
        try:
            price: ModelPrice | None = self.table.lookup(
                model, region=self.options.region, target=self.options.target
            )
        except PriceNotFound:
            price = None
        self.prices[model] = price
        return price

    def run(
        self,
        lines: Iterable[Line],
        name: str,
        *,
        on_progress: ProgressCallback | None = None,
        on_request: RequestCallback | None = None,
        keep_requests: bool = False,
    ) -> _Partial:
        partial = _Partial(requests=[] if keep_requests else None)
        options = self.options
        unreported = 0
        for line in lines:
            partial.lines += 1
            partial.bytes += line.size
            if on_progress is not None:
                unreported += line.size
                if unreported >= PROGRESS_EVERY_BYTES:
                    on_progress(unreported)
                    unreported = 0
            if not line.ok:
                if BLANK in line.notices and line.error is None:
                    continue
                _bad(partial, line.number, line.error or "not a JSON object")
                continue
            obj = line.obj
            body = obj.get("body")
            tokens = self.tokens.count_line(obj)
            if FLAG_NOT_COUNTABLE in tokens.flags or not tokens.model:
                _bad(partial, line.number, "not a request line (needs url, body and body.model)")
                continue
            for flag in tokens.flags:
                if flag != FLAG_UNKNOWN_MODEL:
                    partial.flags[flag] = partial.flags.get(flag, 0) + 1
            price = self.price(tokens.model)
            raw_model = body.get("model") if isinstance(body.get("model"), str) else tokens.model
            key = (raw_model, tokens.model)
            row = partial.rows.get(key)
            if row is None:
                row = partial.rows[key] = ModelRow(
                    raw_model,
                    price.priced_as if price else None,
                    mapped_to=tokens.model if tokens.model != raw_model else None,
                    first_line=line.number,
                )

            input_tokens = tokens.input_tokens
            if tokens.input_tokens_range is None:
                low_input = high_input = input_tokens
            else:
                low_input, high_input = tokens.input_tokens_range
                partial.ranged += 1
            n = body.get("n")
            n = n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1
            model_max = price.max_output_tokens if price is not None else None
            model_cap = model_max * n if model_max else None
            if (price is not None and price.mode == "embedding") or tokens.max_output_tokens == 0:
                cap: int | None = 0
            elif tokens.max_output_tokens is None:
                cap = model_cap
            else:
                cap = tokens.max_output_tokens
                if model_cap is not None and cap > model_cap:
                    row.over_max_output += 1
                    if len(row.over_max_output_lines) < MAX_LISTED_LINES:
                        row.over_max_output_lines.append(line.number)
                    cap = model_cap
            if cap is None:
                partial.no_max_output += 1
            if options.expected_output_tokens is not None:
                expected = options.expected_output_tokens * n
            elif options.output_ratio is not None:
                expected = round(options.output_ratio * input_tokens) * n
            else:
                expected = 0
            if cap is not None:
                expected = min(expected, cap)
            max_output = cap or 0
            cached = int(options.cached_fraction * low_input)
            writes = high_input if price is not None and price.charges_cache_writes else 0

            row.requests += 1
            row.input_tokens += input_tokens
            row.input_tokens_low += low_input
            row.input_tokens_high += high_input
            row.cached_input_tokens += cached
            row.expected_output_tokens += expected
            row.max_output_tokens += max_output
            row.cache_write_tokens_high += writes
            if price is not None:
                if len(price.tiers) > 1:
                    for figure, tier_tokens in (
                        (LOW, (low_input, expected, cached, 0)),
                        (EXPECTED, (input_tokens, expected, 0, 0)),
                        (HIGH, (high_input, max_output, 0, writes)),
                    ):
                        tier = price.tier_index(tier_tokens[0])
                        if tier:
                            row.add_tiered(figure, tier, tier_tokens)
                limit = price.max_input_tokens
                if limit and high_input > limit:
                    if low_input > limit:
                        row.over_context += 1
                        if len(row.over_context_lines) < MAX_LISTED_LINES:
                            row.over_context_lines.append(line.number)
                    else:
                        row.maybe_over_context += 1

            if on_request is not None or partial.requests is not None:
                record: dict[str, Any] = {
                    "custom_id": obj.get("custom_id"),
                    "line": line.number,
                    "model": raw_model,
                    "priced_as": price.priced_as if price is not None else None,
                    "input_tokens": input_tokens,
                }
                if low_input != high_input:
                    record["input_tokens_low"] = low_input
                    record["input_tokens_high"] = high_input
                record["expected_output_tokens"] = expected
                record["max_output_tokens"] = max_output
                if price is None:
                    record["cost"] = record["cost_low"] = record["cost_high"] = None
                else:
                    record["cost"] = round_usd(price.cost(input_tokens, expected))
                    record["cost_low"] = round_usd(price.cost(low_input, expected, cached))
                    record["cost_high"] = round_usd(
                        price.cost(high_input, max_output, cache_write_tokens=writes)
                    )
                if on_request is not None:
                    on_request(record)
                else:
                    partial.requests.append(record)  # type: ignore[union-attr]
        if on_progress is not None and unreported:
            on_progress(unreported)
        return partial


def _bad(partial: _Partial, number: int, message: str) -> None:
    partial.bad_lines += 1
    if len(partial.bad) < MAX_BAD_LINE_WARNINGS:
        partial.bad.append((number, message))


# --- parallel --------------------------------------------------------------------------------

_WORKER: _Counter | None = None


def _init_worker(
    table: PriceTable,
    deployment_map: Mapping[str, str] | None,
    options: EstimateOptions,
    image_size: ImageSizeLookup | None,
) -> None:
    global _WORKER
    _WORKER = _Counter(table, deployment_map, options, image_size=image_size)


def _count_chunk(
    job: tuple[str, int, int, bool],
) -> tuple[str, Any]:
    """Worker: count the lines of bytes [start, end) of a file."""
    path, start, end, keep_requests = job
    assert _WORKER is not None
    try:
        with open_range(path, start, end) as stream:
            lines = read_lines(stream, max_line_bytes=_WORKER.options.max_line_bytes)
            partial = _WORKER.run(lines, path, keep_requests=keep_requests)
        return "ok", partial
    except JsonlBatchError as exc:
        return "error", (type(exc), exc.message, exc.hint)


def line_ranges(path: str | os.PathLike[str], chunk_bytes: int) -> list[tuple[int, int]]:
    """Cut a file into byte ranges of about ``chunk_bytes`` that start at line boundaries."""
    return line_aligned_ranges(path, range(chunk_bytes, os.path.getsize(path), chunk_bytes))


def _parallel(
    path: str,
    counter: _Counter,
    deployment_map: Mapping[str, str] | None,
    jobs: int,
    chunk_bytes: int,
    on_progress: ProgressCallback | None,
    on_request: RequestCallback | None,
) -> Iterator[tuple[_Partial, int]]:
    """Yield each chunk's partial with its first line number, in file order."""
    ranges = line_ranges(path, chunk_bytes)
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    keep = on_request is not None
    # Line numbers are only known after the chunks before are counted: workers report
    # chunk-relative numbers and the parent shifts them.
    tasks = [(path, start, end, keep) for start, end in ranges]
    with context.Pool(
        processes=min(jobs, len(ranges)),
        initializer=_init_worker,
        initargs=(counter.table, deployment_map, counter.options, counter.tokens.image_size),
    ) as pool:
        first_line = 1
        for status, payload in pool.imap(_count_chunk, tasks):
            if status == "error":
                cls, message, hint = payload
                error = cls.__new__(cls)
                JsonlBatchError.__init__(error, _shift_where(message, path, first_line), hint=hint)
                raise error
            partial: _Partial = payload
            if on_progress is not None:
                on_progress(partial.bytes)
            yield partial, first_line
            first_line += partial.lines


def _shift_where(message: str, path: str, first_line: int) -> str:
    """Rewrite ``path:N:`` (chunk-relative) at the start of a worker message to absolute."""
    prefix = f"{path}:"
    if message.startswith(prefix):
        number, sep, rest = message[len(prefix) :].partition(":")
        if sep and number.isdigit():
            return f"{prefix}{int(number) + first_line - 1}:{rest}"
    return message


# --- public API -------------------------------------------------------------------------------


def _today() -> dt.date:
    """Today, for retirement warnings (tests pin it)."""
    return dt.date.today()


def estimate_file(
    path: str | os.PathLike[str],
    *,
    counter: TokenCounter | None = None,
    prices: PriceTable | str | os.PathLike[str] | None = None,
    deployment_map: Mapping[str, str] | None = None,
    target: Profile | str = "azure",
    region: str = "global",
    expected_output_tokens: int | None = None,
    output_ratio: float | None = None,
    cached_fraction: float = 0.0,
    enqueued_limit: int | None = None,
    jobs: int | None = 1,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    on_progress: ProgressCallback | None = None,
    on_request: RequestCallback | None = None,
    today: dt.date | None = None,
) -> EstimateResult:
    """Count, price and check every request of one Batch input file.

    ``counter`` counts the tokens (pass ``TokenCounter(image_size=RemoteImageSizes())`` to
    read remote image sizes). ``jobs`` > 1 (``None`` = all cores) counts files larger than
    ``chunk_bytes`` in a process pool. ``on_request`` receives one dict per request, in file
    order (for ``--per-request``). A model with no price is counted and gets a ``no_price``
    warning; bad lines (and lines over ``max_line_bytes``) are skipped and reported in
    ``warnings``. Raises :class:`InputError` when the file cannot be read.
    """
    options = EstimateOptions(
        as_profile(target).name,
        region,
        expected_output_tokens,
        output_ratio,
        cached_fraction,
        max_line_bytes,
    )
    options.check()
    table = prices if isinstance(prices, PriceTable) else PriceTable.load(prices)
    if deployment_map is None and counter is not None:
        deployment_map = counter.deployment_map
    name = source_name(path)
    worker = _Counter(table, deployment_map, options, counter)
    jobs = (os.cpu_count() or 1) if jobs is None else max(1, jobs)
    size = _plain_size(path)

    merged = _Partial()
    rows: dict[tuple[str, str], ModelRow] = {}
    bad: list[tuple[int, str]] = []
    if jobs > 1 and size is not None and size > chunk_bytes:
        chunks: Iterable[tuple[_Partial, int]] = _parallel(
            str(path), worker, deployment_map, jobs, chunk_bytes, on_progress, on_request
        )
    else:
        chunks = [
            (
                worker.run(
                    read_lines(path, max_line_bytes=max_line_bytes),
                    name,
                    on_progress=on_progress,
                    on_request=on_request,
                ),
                1,
            )
        ]
    for partial, first_line in chunks:
        shift = first_line - 1
        for key, row in partial.rows.items():
            row.over_context_lines = [n + shift for n in row.over_context_lines]
            row.over_max_output_lines = [n + shift for n in row.over_max_output_lines]
            row.first_line += shift
            if key in rows:
                rows[key].add(row)
            else:
                rows[key] = row
        for number, message in partial.bad:
            if len(bad) < MAX_BAD_LINE_WARNINGS:
                bad.append((number + shift, message))
        for flag, count in partial.flags.items():
            merged.flags[flag] = merged.flags.get(flag, 0) + count
        merged.lines += partial.lines
        merged.bytes += partial.bytes
        merged.bad_lines += partial.bad_lines
        merged.ranged += partial.ranged
        merged.no_max_output += partial.no_max_output
        if partial.requests and on_request is not None:
            for record in partial.requests:
                record["line"] += shift
                on_request(record)
    # Price from integer sums: the figures do not depend on how the file was split.
    models: dict[str, ModelPrice] = {}
    for (_raw, resolved), row in rows.items():
        price = worker.price(resolved)
        if price is not None:
            models[row.model] = price
            row.price_with(price)
    ordered = sorted(rows.values(), key=_row_order)
    result = EstimateResult(
        path=name,
        rows=ordered,
        total=_total(ordered),
        lines=merged.lines,
        bad_lines=merged.bad_lines,
        bytes=merged.bytes,
        prices=table.describe(),
        options=options,
        models=models,
    )
    _findings(result, merged, bad, enqueued_limit, today or _today())
    return result


def estimate_files(paths: Iterable[str | os.PathLike[str]], **kwargs: Any) -> list[EstimateResult]:
    """:func:`estimate_file` on each path with the same options and one price table."""
    if not isinstance(kwargs.get("prices"), PriceTable):
        kwargs["prices"] = PriceTable.load(kwargs.get("prices"))
    return [estimate_file(path, **kwargs) for path in paths]


def combine_results(results: list[EstimateResult], *, path: str = "total") -> EstimateResult:
    """One result summing several files (rows merged by model)."""
    rows: dict[tuple[str, str | None], ModelRow] = {}
    models: dict[str, ModelPrice] = {}
    for result in results:
        models.update(result.models)
        for row in result.rows:
            key = (row.model, row.priced_as)
            if key not in rows:
                rows[key] = ModelRow(row.model, row.priced_as, row.mapped_to)
            rows[key].add(row)
    ordered = sorted(rows.values(), key=_row_order)
    for row in ordered:
        if row.priced_as is not None and row.model in models:
            row.price_with(models[row.model])
    first = results[0] if results else None
    return EstimateResult(
        path=path,
        rows=ordered,
        total=_total(ordered),
        lines=sum(r.lines for r in results),
        bad_lines=sum(r.bad_lines for r in results),
        bytes=sum(r.bytes for r in results),
        warnings=[w for r in results for w in r.warnings],
        notes=list(dict.fromkeys(n for r in results for n in r.notes)),
        prices=first.prices if first else "",
        options=first.options if first else EstimateOptions(),
        models=models,
    )


def _row_order(row: ModelRow) -> tuple[str, str]:
    return row.model, row.priced_as or ""


def _total(rows: list[ModelRow]) -> ModelRow:
    """All rows summed; the costs cover the priced rows (None when no row is priced)."""
    total = ModelRow("total", "")
    for row in rows:
        total.add(row)
        if row.cost_low is not None:
            total.cost_low = (total.cost_low or 0.0) + row.cost_low
            total.cost_expected = (total.cost_expected or 0.0) + (row.cost_expected or 0.0)
            total.cost_high = (total.cost_high or 0.0) + (row.cost_high or 0.0)
    total.tiered = {}
    return total


def _plain_size(path: str | os.PathLike[str]) -> int | None:
    """Size of a plain (seekable, uncompressed) file, else None."""
    name = str(path)
    if name == "-" or name.endswith(".gz"):
        return None
    try:
        return os.path.getsize(name) if os.path.isfile(name) else None
    except OSError:
        return None


def _findings(
    result: EstimateResult,
    merged: _Partial,
    bad: list[tuple[int, str]],
    enqueued_limit: int | None,
    today: dt.date,
) -> None:
    """Warnings (problems to fix before submitting) and notes (what the figures assume)."""
    path, notes = result.path, result.notes

    def warn(code: str, message: str) -> None:
        result.warnings.append(EstimateWarning(code, f"{path}: {message}"))

    for number, message in bad:
        result.warnings.append(
            EstimateWarning("invalid_line", f"{path}:{number}: skipped: {message}")
        )
    if merged.bad_lines > len(bad):
        warn("invalid_line", f"{merged.bad_lines - len(bad)} more bad lines skipped")
    for row in result.rows:
        price = result.models.get(row.model)
        if price is None or row.cost_low is None:
            name = repr(row.model)
            hint = no_price_hint(row.model)
            if row.mapped_to is not None:
                name = f"{row.mapped_to!r} (what the deployment map makes of {row.model!r})"
                hint = "check the deployment map's model name, or pass prices=FILE"
            warn(
                "no_price",
                f"no price for model {name} ({row.requests:,} request(s), first on line "
                f"{row.first_line}): counted but not priced; {hint}",
            )
            continue
        if row.over_context:
            lines = ", ".join(str(n) for n in row.over_context_lines)
            more = ", ..." if row.over_context > len(row.over_context_lines) else ""
            warn(
                "context_window_exceeded",
                f"{row.over_context} request(s) for {row.model} exceed the "
                f"{price.max_input_tokens:,}-token input limit of {price.priced_as} "
                f"(line {lines}{more})",
            )
        if row.maybe_over_context:
            warn(
                "context_window_maybe_exceeded",
                f"{row.maybe_over_context} request(s) for {row.model} may exceed the "
                f"{price.max_input_tokens:,}-token input limit of {price.priced_as}: their "
                "input is a range whose high end is over it",
            )
        if row.over_max_output:
            lines = ", ".join(str(n) for n in row.over_max_output_lines)
            warn(
                "max_tokens_too_large",
                f"{row.over_max_output} request(s) for {row.model} ask for more than "
                f"{price.priced_as}'s {price.max_output_tokens:,} output tokens "
                f"(line {lines}); the high estimate uses the model's cap",
            )
    for model, price in sorted(result.models.items()):
        if price.retirement_date is None:
            continue
        successor = f"; successor: {price.successor}" if price.successor else ""
        if price.retired(today):
            warn(
                "model_retired",
                f"{model} ({price.priced_as}) was retired on "
                f"{price.retirement_date.isoformat()} ({price.scope}){successor}",
            )
        elif (price.retirement_date - today).days <= RETIRING_SOON_DAYS:
            notes.append(
                f"{model} ({price.priced_as}) retires on {price.retirement_date.isoformat()}"
                f"{successor}"
            )
    if enqueued_limit is not None and result.total.input_tokens > enqueued_limit:
        warn(
            "enqueued_limit_exceeded",
            f"{result.total.input_tokens:,} input tokens exceed the enqueued limit of "
            f"{enqueued_limit:,}; split the file (split_file) or submit it in turns",
        )
    prices = result.models.values()
    reasoning = sorted({p.priced_as for p in prices if p.is_reasoning})
    if reasoning:
        notes.append(
            f"{', '.join(reasoning)}: reasoning tokens bill as output; the expected output "
            "should include them (the high estimate already does)"
        )
    writers = sorted({p.priced_as for p in prices if p.charges_cache_writes})
    if writers:
        notes.append(
            f"{', '.join(writers)}: prompt-cache writes cost more than input; the high "
            "estimate bills every input token as a cache write"
        )
    tiered = sorted({p.priced_as for p in prices if len(p.tiers) > 1})
    if tiered and any(row.tiered for row in result.rows):
        notes.append(
            f"{', '.join(tiered)}: requests over the long-context threshold bill entirely "
            "at the long-context rates"
        )
    if not result.options.has_expected_output and result.total.requests:
        notes.append(
            "no expected output given: low and expected count input only; pass "
            "expected_output_tokens=N or output_ratio=R"
        )
    if result.options.cached_fraction > 0:
        same = sorted({p.priced_as for p in prices if p.batch_cached_input >= p.batch_input})
        if same:
            notes.append(
                f"{', '.join(same)}: cached input costs the same as batch input in a Batch job, "
                "so cached_fraction does not lower the estimate"
            )
    if merged.no_max_output:
        notes.append(
            f"{merged.no_max_output} request(s) have no output cap and their model has no "
            "known max output: the high estimate counts 0 output for them"
        )
    if merged.ranged:
        notes.append(
            f"{merged.ranged} request(s) have an input count that is a range (a remote "
            "image's size, a file's extracted text or server-side text is unknown offline): "
            "low uses the least, high the most; fetch_image_sizes=True reads remote image sizes"
        )
    for flag, count in sorted(merged.flags.items()):
        if flag == FLAG_REMOTE_IMAGE:
            if not merged.ranged:
                notes.append(
                    f"{count} request(s) point at remote images whose size is unknown offline "
                    "and were counted at the model's largest image; fetch_image_sizes=True reads "
                    "their sizes"
                )
            continue
        notes.append(f"{count} request(s) flagged {flag}: their input count is a lower bound")
    for price in prices:
        notes.extend(n for n in price.notes if n not in notes)


__all__ = [
    "EstimateOptions",
    "EstimateResult",
    "EstimateWarning",
    "ModelRow",
    "combine_results",
    "estimate_file",
    "estimate_files",
    "line_ranges",
]
