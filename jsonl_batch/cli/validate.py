"""``jsonl-batch validate``."""

from __future__ import annotations

import os
from typing import Any

import click

from ..display import count, number
from ..validate import MAX_FINDINGS_PER_CODE, ValidationReport, validate_file
from ._common import (
    cli_terms,
    deployment_map_options,
    echo_json,
    fetch_image_sizes_option,
    format_option,
    handle_errors,
    input_path,
    max_line_bytes_option,
    prices_option,
    progress_bar,
    read_deployment_map,
    region_option,
    target_option,
)

_COLORS = {"error": "red", "warning": "yellow"}


@click.command()
@click.argument("files", nargs=-1, required=True, type=input_path(allow_dash=True))
@target_option()
@format_option("github")
@click.option(
    "--max-errors",
    type=click.IntRange(min=1),
    default=None,
    help="Stop a file after this many errors.",
)
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@click.option(
    "--tokens",
    "check_tokens",
    is_flag=True,
    help="Also count tokens: requests over the model's context window "
    "(context_window_exceeded), output caps above its maximum (max_tokens_too_large) and "
    "models with no known price or limits (no_price, a warning).",
)
@deployment_map_options
@prices_option
@region_option
@fetch_image_sizes_option
@max_line_bytes_option
@click.option(
    "--max-shown",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Print at most N findings per file, errors first (the summary counts them all).",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only the summary.")
@handle_errors
def validate(
    files: tuple[str, ...],
    target: str,
    output_format: str,
    max_errors: int | None,
    strict: bool,
    check_tokens: bool,
    deployment_items: tuple[str, ...],
    deployment_map_file: str | None,
    prices_path: str | None,
    region: str,
    fetch_image_sizes: bool,
    max_line_bytes: int,
    max_shown: int | None,
    quiet: bool,
) -> None:
    """Check batch input FILES (.jsonl, .jsonl.gz or - for stdin) for everything the
    service would reject: bad JSON, duplicate or missing custom_id, mixed url or model,
    placeholder deployment names, invalid bodies, streaming, size and request limits.

    \b
    Examples:
      jsonl-batch validate requests.jsonl
      jsonl-batch validate --target openai --format json data/*.jsonl
      jsonl-batch validate --format github shards/*.jsonl   # CI annotations
      jsonl-batch validate --tokens --deployment-map prod-4o=gpt-4o requests.jsonl
      jsonl-batch validate --target vllm --max-shown 20 offline.jsonl

    Exit status: 0 when clean, 1 when a file has errors (or warnings with --strict),
    2 on usage errors.
    """
    counter = table = None
    price_problems: list[str] = []
    if check_tokens:  # one counter and one table for every file
        from ..pricing import PriceTable
        from ..tokens import RemoteImageSizes, TokenCounter

        counter = TokenCounter(
            read_deployment_map(deployment_items, deployment_map_file),
            image_size=RemoteImageSizes() if fetch_image_sizes else None,
        )
        table = PriceTable.load(prices_path)
        price_problems = table.problems
    elif fetch_image_sizes:
        raise click.UsageError("--fetch-image-sizes needs --tokens")
    for problem in price_problems:
        click.secho(f"warning[price_file]: {problem}", fg="yellow", err=True)
    reports: list[ValidationReport] = []
    for path in files:
        size = os.path.getsize(path) if path != "-" and os.path.isfile(path) else None
        with progress_bar(size, f"validating {path}") as advance:
            reports.append(
                validate_file(
                    path,
                    target=target,
                    max_errors=max_errors,
                    tokens=check_tokens,
                    counter=counter,
                    prices=table,
                    region=region,
                    max_line_bytes=max_line_bytes,
                    on_progress=advance,
                )
            )

    if output_format == "json":
        echo_json({"target": target, "files": [_in_cli_terms(r.to_dict()) for r in reports]})
    elif output_format == "github":
        for report in reports:
            for f in report.findings:
                line = f",line={f.line}" if f.line else ""
                click.echo(
                    f"::{f.severity} file={f.file}{line},title={f.code}::{cli_terms(f.message)}"
                    + (f" ({cli_terms(f.hint)})" if f.hint else "")
                )
    else:
        for report in reports:
            if not quiet:
                print_findings(report, max_shown)
            print_summary(report)

    failed = any(not r.ok or (strict and r.warnings) for r in reports)
    failed = failed or bool(strict and price_problems)
    raise SystemExit(1 if failed else 0)


def print_findings(report: ValidationReport, limit: int | None = None) -> None:
    """Every finding in line order; with ``limit``, the first ``limit`` errors, then
    warnings while there is room, and how many were left out."""
    findings = report.findings
    if limit is not None and len(findings) > limit:
        ranked = sorted(findings, key=lambda f: (f.severity != "error", f.line or 0))
        findings = ranked[:limit]
        left = len(report.findings) - limit
        findings.sort(key=lambda f: f.line or 0)
    else:
        left = 0
    for f in findings:
        label = click.style(f"{f.severity}[{f.code}]", fg=_COLORS[f.severity], bold=True)
        click.echo(f"{f.location()}: {label}: {cli_terms(f.message)}")
        if f.path:
            click.echo(f"    --> {f.path}")
        if f.hint:
            click.echo(f"    = hint: {cli_terms(f.hint)}")
    for code, n in report.omitted().items():
        click.echo(f"... and {n:,} more {code} (only the first {MAX_FINDINGS_PER_CODE} are listed)")
    if left:
        click.echo(
            f"{report.file}: ... and {count(left, 'more finding')} not shown "
            f"(run `jsonl-batch validate {report.file}` to see all)"
        )


def _in_cli_terms(report: dict[str, Any]) -> dict[str, Any]:
    """A report's JSON with the findings' messages and hints naming flags, not parameters."""
    for finding in report["findings"]:
        for key in ("message", "hint"):
            if finding.get(key):
                finding[key] = cli_terms(finding[key])
    return report


def print_summary(report: ValidationReport) -> None:
    status = (
        click.style("ok", fg="green", bold=True)
        if report.ok
        else click.style("FAILED", fg="red", bold=True)
    )
    click.echo(
        f"{report.file}: {status}: {count(report.requests, 'request')},"
        f" {count(report.bytes, 'byte')}, {count(report.errors, 'error')},"
        f" {count(report.warnings, 'warning')} (target {report.target})"
    )
    if report.truncated:
        click.echo("  stopped early at --max-errors; more problems may follow")
    counts = sorted((severity, code, n) for code, (severity, n) in report.counts_by_code().items())
    for severity, code, n in counts:
        click.echo(f"  {number(n):>7}  {severity:<7}  {code}")
