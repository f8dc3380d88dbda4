"""Estimate what a Batch input file will cost: tokens per request, priced per model, as a range.

Why a range: the input is known (counted offline), the output is not. ``low`` is the input
(with the cached fraction the user states at the cached rate) plus the expected output,
``expected`` is the input at the batch rate plus the expected output, and ``high`` is every
request writing its full output cap (``max_tokens`` & co., else the model's max output).
Without ``expected_output_tokens`` / ``output_ratio`` the expected output is 0 (the notes
say so).

Large plain files are cut into byte ranges at line boundaries and counted in a process pool
(each worker builds its own TokenCounter); results are merged in file order, so the totals
equal a single-process run. Memory is bounded by the chunk size, never by the file size.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

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
from .pricing import REGIONS, TARGETS, ModelPrice, PriceTable
from .tokens import FLAG_NOT_COUNTABLE, FLAG_REMOTE_IMAGE, FLAG_UNKNOWN_MODEL, TokenCounter

DEFAULT_CHUNK_BYTES = 8 << 20
PROGRESS_EVERY_BYTES = 1 << 20
MAX_LISTED_LINES = 5
MAX_BAD_LINE_WARNINGS = 20
RETIRING_SOON_DAYS = 30

ProgressCallback = Callable[[int], None]
RequestCallback = Callable[[dict[str, Any]], None]


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
            raise ConfigError(f"unknown region {self.region!r}", hint="use global or data-zone")
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


@dataclass(slots=True)
class ModelRow:
    """Requests of one model in one file: token sums and the cost range (USD)."""

    model: str
    priced_as: str
    requests: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    expected_output_tokens: int = 0
    max_output_tokens: int = 0
    cost_low: float = 0.0
    cost_expected: float = 0.0
    cost_high: float = 0.0
    over_context: int = 0
    over_max_output: int = 0
    over_context_lines: list[int] = field(default_factory=list)
    over_max_output_lines: list[int] = field(default_factory=list)

    def add(self, other: ModelRow) -> None:
        self.requests += other.requests
        self.input_tokens += other.input_tokens
        self.cached_input_tokens += other.cached_input_tokens
        self.expected_output_tokens += other.expected_output_tokens
        self.max_output_tokens += other.max_output_tokens
        self.over_context += other.over_context
        self.over_max_output += other.over_max_output
        room = MAX_LISTED_LINES - len(self.over_context_lines)
        self.over_context_lines.extend(other.over_context_lines[:room])
        room = MAX_LISTED_LINES - len(self.over_max_output_lines)
        self.over_max_output_lines.extend(other.over_max_output_lines[:room])

    def price_with(self, price: ModelPrice) -> None:
        """Compute the cost range from integer sums (so it does not depend on --jobs)."""
        self.cost_low = price.cost(
            self.input_tokens, self.expected_output_tokens, self.cached_input_tokens
        )
        self.cost_expected = price.cost(self.input_tokens, self.expected_output_tokens)
        self.cost_high = price.cost(self.input_tokens, self.max_output_tokens)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "priced_as": self.priced_as,
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "output_tokens": {
                "expected": self.expected_output_tokens,
                "max": self.max_output_tokens,
            },
            "cost_usd": {
                "low": round(self.cost_low, 6),
                "expected": round(self.cost_expected, 6),
                "high": round(self.cost_high, 6),
            },
            "over_context": self.over_context,
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
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    prices: str = ""
    options: EstimateOptions = field(default_factory=EstimateOptions)
    models: dict[str, ModelPrice] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when nothing needs fixing before submitting (warnings are problems)."""
        return not self.warnings

    def to_dict(self) -> dict[str, Any]:
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
            "total": self.total.to_dict(),
            "warnings": list(self.warnings),
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
    ) -> None:
        self.table = table
        self.options = options
        self.tokens = counter if counter is not None else TokenCounter(deployment_map)
        self.prices: dict[str, ModelPrice] = {}

    def price(self, model: str, where: str) -> ModelPrice:
        price = self.prices.get(model)
        if price is None:
            try:
                price = self.table.lookup(
                    model, region=self.options.region, target=self.options.target
                )
            except PriceNotFound as exc:
                raise PriceNotFound(f"{where}: {exc.message}", hint=exc.hint) from None
            self.prices[model] = price
        return price

    def run(
        self,
        lines: Iterable[Line],
        name: str,
        *,
        first_line: int = 1,
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
                if flag not in (FLAG_UNKNOWN_MODEL,):
                    partial.flags[flag] = partial.flags.get(flag, 0) + 1
            absolute = first_line + line.number - 1
            price = self.price(tokens.model, f"{name}:{absolute}")
            raw_model = body.get("model") if isinstance(body.get("model"), str) else tokens.model
            key = (raw_model, tokens.model)
            row = partial.rows.get(key)
            if row is None:
                row = partial.rows[key] = ModelRow(raw_model, price.priced_as)

            n = body.get("n")
            n = n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1
            model_cap = price.max_output_tokens * n if price.max_output_tokens else None
            if price.mode == "embedding" or tokens.max_output_tokens == 0:
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
                expected = round(options.output_ratio * tokens.input_tokens) * n
            else:
                expected = 0
            if cap is not None:
                expected = min(expected, cap)
            max_output = cap or 0
            cached = int(options.cached_fraction * tokens.input_tokens)

            row.requests += 1
            row.input_tokens += tokens.input_tokens
            row.cached_input_tokens += cached
            row.expected_output_tokens += expected
            row.max_output_tokens += max_output
            if price.max_input_tokens and tokens.input_tokens > price.max_input_tokens:
                row.over_context += 1
                if len(row.over_context_lines) < MAX_LISTED_LINES:
                    row.over_context_lines.append(line.number)

            if on_request is not None or partial.requests is not None:
                custom_id = obj.get("custom_id")
                record = {
                    "custom_id": custom_id,
                    "line": line.number,
                    "model": raw_model,
                    "priced_as": price.priced_as,
                    "input_tokens": tokens.input_tokens,
                    "expected_output_tokens": expected,
                    "max_output_tokens": max_output,
                    "cost": round(price.cost(tokens.input_tokens, expected), 8),
                    "cost_low": round(price.cost(tokens.input_tokens, expected, cached), 8),
                    "cost_high": round(price.cost(tokens.input_tokens, max_output), 8),
                }
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
    table: PriceTable, deployment_map: Mapping[str, str] | None, options: EstimateOptions
) -> None:
    global _WORKER
    _WORKER = _Counter(table, deployment_map, options)


def _count_chunk(
    job: tuple[str, int, int, int, bool],
) -> tuple[str, Any]:
    """Worker: count the lines of bytes [start, end) of a file."""
    path, start, end, first_line, keep_requests = job
    assert _WORKER is not None
    try:
        with open_range(path, start, end) as stream:
            lines = read_lines(stream, max_line_bytes=_WORKER.options.max_line_bytes)
            partial = _WORKER.run(lines, path, first_line=first_line, keep_requests=keep_requests)
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
    tasks = [(path, start, end, 1, keep) for start, end in ranges]
    with context.Pool(
        processes=min(jobs, len(ranges)),
        initializer=_init_worker,
        initargs=(counter.table, deployment_map, counter.options),
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
    prices: PriceTable | None = None,
    deployment_map: Mapping[str, str] | None = None,
    target: str = "azure",
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

    ``jobs`` > 1 (``None`` = all cores) counts files larger than ``chunk_bytes`` in a process
    pool. ``on_request`` receives one dict per request, in file order (for ``--per-request``).
    Raises :class:`PriceNotFound` naming the first model with no price, :class:`InputError`
    when the file cannot be read; bad lines (and lines over ``max_line_bytes``) are skipped
    and reported in ``warnings``.
    """
    options = EstimateOptions(
        target, region, expected_output_tokens, output_ratio, cached_fraction, max_line_bytes
    )
    options.check()
    table = prices if prices is not None else PriceTable.load()
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
        merged.no_max_output += partial.no_max_output
        if partial.requests and on_request is not None:
            for record in partial.requests:
                record["line"] += shift
                on_request(record)
    # Price from integer sums: the figures do not depend on how the file was split.
    models: dict[str, ModelPrice] = {}
    for (_raw, resolved), row in rows.items():
        price = worker.price(resolved, name)
        models[row.model] = price
        row.price_with(price)
    ordered = sorted(rows.values(), key=lambda r: (r.model, r.priced_as))
    total = _total(ordered)
    result = EstimateResult(
        path=name,
        rows=ordered,
        total=total,
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
    if kwargs.get("prices") is None:
        kwargs["prices"] = PriceTable.load()
    return [estimate_file(path, **kwargs) for path in paths]


def combine_results(results: list[EstimateResult], *, path: str = "total") -> EstimateResult:
    """One result summing several files (rows merged by model)."""
    rows: dict[tuple[str, str], ModelRow] = {}
    models: dict[str, ModelPrice] = {}
    for result in results:
        models.update(result.models)
        for row in result.rows:
            key = (row.model, row.priced_as)
            if key not in rows:
                rows[key] = ModelRow(row.model, row.priced_as)
            rows[key].add(row)
    ordered = sorted(rows.values(), key=lambda r: (r.model, r.priced_as))
    for row in ordered:
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


def _total(rows: list[ModelRow]) -> ModelRow:
    total = ModelRow("total", "")
    for row in rows:
        total.add(row)
        total.cost_low += row.cost_low
        total.cost_expected += row.cost_expected
        total.cost_high += row.cost_high
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
    path, warnings, notes = result.path, result.warnings, result.notes
    for number, message in bad:
        warnings.append(f"{path}:{number}: skipped: {message}")
    if merged.bad_lines > len(bad):
        warnings.append(f"{path}: {merged.bad_lines - len(bad)} more bad lines skipped")
    for row in result.rows:
        price = result.models[row.model]
        if row.over_context:
            lines = ", ".join(str(n) for n in row.over_context_lines)
            warnings.append(
                f"{path}: {row.over_context} request(s) for {row.model} exceed the "
                f"{price.max_input_tokens:,}-token input limit of {price.priced_as} "
                f"(line {lines}{', ...' if row.over_context > len(row.over_context_lines) else ''})"
            )
        if row.over_max_output:
            lines = ", ".join(str(n) for n in row.over_max_output_lines)
            warnings.append(
                f"{path}: {row.over_max_output} request(s) for {row.model} ask for more than "
                f"{price.priced_as}'s {price.max_output_tokens:,} output tokens "
                f"(line {lines}); the high estimate uses the model's cap"
            )
    for model, price in sorted(result.models.items()):
        if price.retirement_date is None:
            continue
        successor = f"; successor: {price.successor}" if price.successor else ""
        if price.retired(today):
            warnings.append(
                f"{path}: {model} ({price.priced_as}) was retired on "
                f"{price.retirement_date.isoformat()} ({price.scope}){successor}"
            )
        elif (price.retirement_date - today).days <= RETIRING_SOON_DAYS:
            notes.append(
                f"{model} ({price.priced_as}) retires on {price.retirement_date.isoformat()}"
                f"{successor}"
            )
    if enqueued_limit is not None and result.total.input_tokens > enqueued_limit:
        warnings.append(
            f"{path}: {result.total.input_tokens:,} input tokens exceed the enqueued limit of "
            f"{enqueued_limit:,}; split the file (jsonl-batch split) or submit it in turns"
        )
    reasoning = sorted({p.priced_as for p in result.models.values() if p.is_reasoning})
    if reasoning:
        notes.append(
            f"{', '.join(reasoning)}: reasoning tokens bill as output; the expected output "
            "should include them (the high estimate already does)"
        )
    if not result.options.has_expected_output and result.total.requests:
        notes.append(
            "no expected output given: low and expected count input only; pass "
            "--expected-output-tokens N or --output-ratio R"
        )
    if result.options.cached_fraction > 0:
        same = sorted(
            {p.priced_as for p in result.models.values() if p.batch_cached_input >= p.batch_input}
        )
        if same:
            notes.append(
                f"{', '.join(same)}: cached input costs the same as batch input in a Batch job, "
                "so --cached-fraction does not lower the estimate"
            )
    if merged.no_max_output:
        notes.append(
            f"{merged.no_max_output} request(s) have no output cap and their model has no "
            "known max output: the high estimate counts 0 output for them"
        )
    for flag, count in sorted(merged.flags.items()):
        notes.append(f"{count} request(s) flagged {flag}: their input count is a lower bound")
    for price in result.models.values():
        notes.extend(n for n in price.notes if n not in notes)


__all__ = [
    "EstimateOptions",
    "EstimateResult",
    "ModelRow",
    "combine_results",
    "estimate_file",
    "estimate_files",
    "line_ranges",
]


def token_limit_check(
    counter: TokenCounter | None = None,
    prices: PriceTable | None = None,
    *,
    region: str = "global",
    target: str = "azure",
) -> Callable[[Line, str, dict[str, Any]], list[tuple[str, str, str]]]:
    """A per-request check for :class:`jsonl_batch.validate.Validator` (``validate --tokens``).

    Finds requests over the model's context window (``context_window_exceeded``) and output
    caps above the model's maximum output (``max_tokens_too_large``), and flags counts that
    are estimates (``token_count_approximate``). Models without a price row have no known
    limits and are skipped.
    """
    tokens = counter if counter is not None else TokenCounter()
    table = prices if prices is not None else PriceTable.load()
    limits: dict[str, ModelPrice | None] = {}

    def check(line: Line, endpoint: str, body: dict[str, Any]) -> list[tuple[str, str, str]]:
        count = tokens.count_body(endpoint, body)
        found: list[tuple[str, str, str]] = []
        if FLAG_REMOTE_IMAGE in count.flags:
            found.append(
                (
                    "token_count_approximate",
                    "body",
                    "an image URL's size is unknown offline; counted at the model's maximum",
                )
            )
        if count.model not in limits:
            try:
                limits[count.model] = table.lookup(count.model, region=region, target=target)
            except PriceNotFound:
                limits[count.model] = None
        price = limits[count.model]
        if price is None:
            return found
        if price.max_input_tokens and count.input_tokens > price.max_input_tokens:
            found.append(
                (
                    "context_window_exceeded",
                    "body",
                    f"{count.input_tokens:,} input tokens; {count.model} takes "
                    f"{price.max_input_tokens:,}",
                )
            )
        cap = count.max_output_tokens
        if cap is not None and price.max_output_tokens and cap > price.max_output_tokens:
            field_name = next(
                (
                    k
                    for k in ("max_completion_tokens", "max_tokens", "max_output_tokens")
                    if k in body
                ),
                "max_tokens",
            )
            found.append(
                (
                    "max_tokens_too_large",
                    f"body.{field_name}",
                    f"asks for up to {cap:,} output tokens; {count.model} writes at most "
                    f"{price.max_output_tokens:,}",
                )
            )
        return found

    return check
