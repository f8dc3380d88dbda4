"""``jsonl-batch validate``."""

from __future__ import annotations

import os
from collections import Counter

import click

from ..validate import ValidationReport, validate_file
from ._common import (
    deployment_map_options,
    echo_json,
    format_option,
    handle_errors,
    prices_option,
    profile_target_option,
    progress_bar,
    read_deployment_map,
    region_option,
)

_COLORS = {"error": "red", "warning": "yellow"}


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True))
@profile_target_option
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
    "(context_window_exceeded) and output caps above its maximum (max_tokens_too_large).",
)
@deployment_map_options
@prices_option
@region_option
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
    token_check = None
    if check_tokens:
        from ..estimate import token_limit_check
        from ..pricing import PriceTable
        from ..tokens import TokenCounter

        token_check = token_limit_check(
            TokenCounter(read_deployment_map(deployment_items, deployment_map_file)),
            PriceTable.load(prices_path),
            region=region,
            target=target,
        )
    reports: list[ValidationReport] = []
    for path in files:
        size = os.path.getsize(path) if path != "-" and os.path.isfile(path) else None
        with progress_bar(size, f"validating {path}") as advance:
            reports.append(
                validate_file(
                    path,
                    target=target,
                    max_errors=max_errors,
                    token_check=token_check,
                    on_progress=advance,
                )
            )

    if output_format == "json":
        echo_json({"target": target, "files": [r.to_dict() for r in reports]})
    elif output_format == "github":
        for report in reports:
            for f in report.findings:
                line = f",line={f.line}" if f.line else ""
                click.echo(
                    f"::{f.severity} file={f.file}{line},title={f.code}::{f.message}"
                    + (f" ({f.hint})" if f.hint else "")
                )
    else:
        for report in reports:
            if not quiet:
                print_findings(report, max_shown)
            print_summary(report)

    failed = any(not r.ok or (strict and r.warnings) for r in reports)
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
        click.echo(f"{f.location()}: {label}: {f.message}")
        if f.path:
            click.echo(f"    --> {f.path}")
        if f.hint:
            click.echo(f"    = hint: {f.hint}")
    if left:
        click.echo(
            f"{report.file}: ... and {left} more finding(s) not shown "
            f"(run `jsonl-batch validate {report.file}` to see all)"
        )


def print_summary(report: ValidationReport) -> None:
    status = (
        click.style("ok", fg="green", bold=True)
        if report.ok
        else click.style("FAILED", fg="red", bold=True)
    )
    click.echo(
        f"{report.file}: {status}: {report.requests:,} requests, {report.bytes:,} bytes, "
        f"{report.errors} error(s), {report.warnings} warning(s) (target {report.target})"
    )
    if report.truncated:
        click.echo("  stopped early at --max-errors; more problems may follow")
    counts = Counter((f.severity, f.code) for f in report.findings)
    for (severity, code), n in sorted(counts.items()):
        click.echo(f"  {n:>6}  {severity:<7}  {code}")
