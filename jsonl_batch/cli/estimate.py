"""``jsonl-batch estimate``: tokens and Batch cost of input files, as a low/expected/high range."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import click
from rich.padding import Padding

from ..display import count, number, size, usd
from ..estimate import EstimateResult, ModelRow, combine_results, estimate_file
from ..jsonl import AtomicWriter
from ..pricing import TARGETS as PRICED_TARGETS
from ..pricing import PriceTable
from ..report import ReportBuilder, write_report
from ._common import (
    cli_terms,
    deployment_map_options,
    echo_json,
    fetch_image_sizes_option,
    format_option,
    handle_errors,
    input_path,
    jobs_option,
    max_line_bytes_option,
    output_assumption_options,
    prices_option,
    progress_bar,
    read_deployment_map,
    region_option,
    target_option,
)
from ._tables import add_row, new_table, print_table
from .report import report_option, written_line

_SHOW_PROGRESS_AFTER_S = 1.0


@click.command()
@click.argument("files", nargs=-1, required=True, type=input_path(allow_dash=True))
@target_option(PRICED_TARGETS)
@deployment_map_options
@prices_option
@region_option
@output_assumption_options
@click.option(
    "--enqueued-limit",
    type=click.IntRange(min=1),
    help="Warn when a file has more input tokens than this (your enqueued-token quota).",
)
@click.option(
    "--per-request",
    "per_request_path",
    type=click.Path(dir_okay=False, writable=True),
    help="Write one JSON line per request (custom_id, model, tokens, cost) to this file.",
)
@jobs_option("all cores, for large files")
@fetch_image_sizes_option
@report_option
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@max_line_bytes_option
@format_option()
@handle_errors
def estimate(
    files: tuple[str, ...],
    target: str,
    deployment_items: tuple[str, ...],
    deployment_map_file: str | None,
    prices_path: str | None,
    region: str,
    expected_output_tokens: int | None,
    output_ratio: float | None,
    cached_fraction: float,
    enqueued_limit: int | None,
    per_request_path: str | None,
    jobs: int | None,
    fetch_image_sizes: bool,
    report_path: str | None,
    strict: bool,
    max_line_bytes: int,
    output_format: str,
) -> None:
    """Count the input tokens of batch FILES (.jsonl, .jsonl.gz or - for stdin) and price
    them at Batch rates, per file and per model, as a range:

    \b
      low       least input (cached share at the cached rate) + expected output
      expected  counted input + expected output
      high      most input (as cache writes where those cost more) + every request's
                full output cap (max_tokens, else the model's max)

    Reasoning models bill their reasoning tokens as output. Without
    --expected-output-tokens or --output-ratio the expected output is 0. Where the input
    is a range (a remote image's size is unknown offline), low uses its least and high its
    most. A model with no price is still counted and reported, with a no_price warning.

    \b
    Examples:
      jsonl-batch estimate requests.jsonl --output-ratio 0.5
      jsonl-batch estimate batch.jsonl --deployment-map prod-4o=gpt-4o --region data-zone
      jsonl-batch estimate --target openai --format json --per-request costs.jsonl a.jsonl
      jsonl-batch estimate big.jsonl --prices model_prices_and_context_window.json -j 4
      jsonl-batch estimate vision.jsonl --fetch-image-sizes --strict
      jsonl-batch estimate requests.jsonl --output-ratio 0.5 --report costs.html

    Exit status: 0 (also with warnings: bad lines, requests over the context window,
    files over --enqueued-limit, retired models, models with no price), 1 with warnings
    under --strict or when a file cannot be read, 2 usage error.
    """
    if expected_output_tokens is not None and output_ratio is not None:
        raise click.UsageError("use --expected-output-tokens or --output-ratio, not both")
    if target == "openai" and region != "global":
        raise click.UsageError("--region applies to Azure targets only")
    deployment_map = read_deployment_map(deployment_items, deployment_map_file)
    table = PriceTable.load(prices_path)
    counter = None
    if fetch_image_sizes:
        from ..tokens import RemoteImageSizes, TokenCounter

        counter = TokenCounter(deployment_map, image_size=RemoteImageSizes())

    results: list[EstimateResult] = []
    report = ReportBuilder(f"Batch estimate: {', '.join(files)}") if report_path else None
    with ExitStack() as stack:
        callbacks: list[Callable[[Any], None]] = [report.request] if report else []
        if per_request_path:
            callbacks.append(stack.enter_context(AtomicWriter(per_request_path)).write)
        on_request = _each(callbacks) if callbacks else None
        for path in files:
            if report is not None:
                report.reading(os.path.basename(path))
            size = os.path.getsize(path) if path != "-" and os.path.isfile(path) else None
            with _late_progress(size, f"estimating {path}") as advance:
                results.append(
                    estimate_file(
                        path,
                        counter=counter,
                        prices=table,
                        deployment_map=deployment_map,
                        target=target,
                        region=region,
                        expected_output_tokens=expected_output_tokens,
                        output_ratio=output_ratio,
                        cached_fraction=cached_fraction,
                        enqueued_limit=enqueued_limit,
                        jobs=jobs,
                        max_line_bytes=max_line_bytes,
                        on_progress=advance,
                        on_request=on_request,
                    )
                )
            if report is not None:
                report.add_estimate(results[-1])
    total = combine_results(results)
    written = None
    if report is not None and report_path is not None:
        report.add_deployment_map(deployment_map)
        written = (report_path, write_report(report.build(), report_path))
    ok = total.ok and not table.problems

    if output_format == "json":
        summary = total.to_dict()["total"]
        echo_json(
            {
                "target": target,
                "region": region,
                "prices": table.describe(),
                "price_warnings": table.problems,
                "files": [r.to_dict() for r in results],
                "total": summary,
                "ok": ok,
                **({"report": report_path} if report_path else {}),
            }
        )
    else:
        for problem in table.problems:
            click.echo(click.style("warning[price_file]: ", fg="yellow", bold=True) + problem)
        for result in results:
            _print_result(result)
        if len(results) > 1:
            click.echo(f"all {len(results)} files")
            _print_rows(total.rows, total.total)
            click.echo()
        click.echo(
            f"prices: {table.describe()}; target {target}"
            + (f", {region}" if target != "openai" else "")
            + ", batch rates"
        )
        if per_request_path:
            click.echo(f"per-request costs written to {per_request_path}")
        if written is not None:
            click.echo(written_line(*written))
    raise SystemExit(1 if strict and not ok else 0)


def _each(callbacks: list[Callable[[Any], None]]) -> Callable[[Any], None]:
    """One callback that calls each of ``callbacks``."""
    if len(callbacks) == 1:
        return callbacks[0]

    def call(record: Any) -> None:
        for callback in callbacks:
            callback(record)

    return call


@contextmanager
def _late_progress(total_bytes: int | None, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar that appears only once a file has taken more than a second."""
    started = time.monotonic()
    pending = 0
    with ExitStack() as stack:
        bar: list[Callable[[int], None]] = []

        def advance(n_bytes: int) -> None:
            nonlocal pending
            if bar:
                bar[0](n_bytes)
                return
            pending += n_bytes
            if time.monotonic() - started > _SHOW_PROGRESS_AFTER_S:
                bar.append(stack.enter_context(progress_bar(total_bytes, label)))
                bar[0](pending)

        yield advance


_HEADERS = (
    "model",
    "priced as",
    "requests",
    "input tokens",
    "output exp.",
    "output max",
    "low",
    "expected",
    "high",
)


def _print_result(result: EstimateResult) -> None:
    bad = f", {count(result.bad_lines, 'bad line')} skipped" if result.bad_lines else ""
    click.echo(
        f"{result.path}: {count(result.total.requests, 'request')}, {size(result.bytes)}{bad}"
    )
    if result.rows:
        _print_rows(result.rows, result.total)
    for warning in result.warnings:
        label = click.style(f"  warning[{warning.code}]: ", fg="yellow", bold=True)
        click.echo(label + cli_terms(warning.message))
    for note in result.notes:
        click.echo(f"  note: {cli_terms(note)}")
    click.echo()


def _print_rows(rows: list[ModelRow], total: ModelRow) -> None:
    table = new_table(*_HEADERS, numeric=_HEADERS[2:])
    for row in rows:
        add_row(table, _cells(row))
    if len(rows) > 1:
        add_row(table, _cells(total), style="bold")
    print_table(Padding(table, (0, 0, 0, 2), expand=False))
    unpriced = sum(row.requests for row in rows if row.cost_low is None)
    if unpriced and len(rows) > 1:
        click.echo(f"  (the cost totals leave out {count(unpriced, 'request')} with no price)")


def _cells(row: ModelRow) -> tuple[str, ...]:
    input_tokens = number(row.input_tokens)
    if row.input_tokens_low != row.input_tokens_high:
        input_tokens = f"{number(row.input_tokens_low)}-{number(row.input_tokens_high)}"
    return (
        row.model,
        "(no price)" if row.priced_as is None else row.priced_as,
        number(row.requests),
        input_tokens,
        number(row.expected_output_tokens),
        number(row.max_output_tokens),
        usd(row.cost_low),
        usd(row.cost_expected),
        usd(row.cost_high),
    )


__all__ = ["estimate"]
