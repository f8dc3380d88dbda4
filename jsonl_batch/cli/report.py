"""``jsonl-batch report``: one self-contained HTML file on a job, manifest or request file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..display import size as shown_size
from ..formats import naming
from ..pricing import TARGETS as PRICED_TARGETS
from ._common import (
    deployment_map_options,
    echo_json,
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

if TYPE_CHECKING:
    from ..report import Report

# merge and estimate take --report too: the report package (and the tokenizer) is imported
# only when a report is written, so `jsonl-batch merge` without it starts as before.
report_option = click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, writable=True),
    metavar="FILE.html",
    help="Also write an HTML report (charts and tables, one self-contained file) to FILE.",
)


@click.command("report")
@click.argument("source", type=input_path())
@click.option(
    "-o",
    "--output",
    "--out-dir",
    "output_dir",
    type=click.Path(),
    metavar="FILE|DIR",
    help="Where to write the page: a file (report.html), or a folder to write "
    "<stem>.report.html into [default: next to SOURCE].",
)
@click.option(
    "--merged",
    "merge_summary",
    type=click.Path(exists=True, dir_okay=False),
    help="The merge summary (<stem>.merge.json) when merge wrote it elsewhere (--out-dir).",
)
@click.option(
    "--no-estimate",
    is_flag=True,
    help="Do not count tokens: no estimate, histogram or costliest requests, but quick.",
)
@target_option(
    PRICED_TARGETS,
    default=None,
    help="Which service's prices [default: the job's target, else azure].",
)
@region_option
@deployment_map_options
@prices_option
@output_assumption_options
@jobs_option("all cores, for large files")
@max_line_bytes_option
@format_option()
@handle_errors
def report(
    source: str,
    output_dir: str | None,
    merge_summary: str | None,
    no_estimate: bool,
    target: str | None,
    region: str,
    deployment_items: tuple[str, ...],
    deployment_map_file: str | None,
    prices_path: str | None,
    expected_output_tokens: int | None,
    output_ratio: float | None,
    cached_fraction: float,
    jobs: int | None,
    max_line_bytes: int,
    output_format: str,
) -> None:
    """Write one self-contained HTML report on a batch job: where the money goes, how each
    shard went, which errors came back.

    SOURCE is a job file (*.job.json), a split manifest, a request file or a merge summary
    (*.merge.json). The report shows what exists: the estimate (low / expected / high) by
    model and by shard next to the actual cost once merged, the input tokens per request
    (histogram) and the 20 most expensive requests, statuses and failures by error code,
    the shards' timeline, and the inputs, price table and version. It opens offline (no
    scripts, nothing loaded) and reads requests as a stream, so a job of millions of
    requests gives a small file in bounded memory.

    \b
    Examples:
      jsonl-batch report big.job.json -o big.html --deployment-map prod-4o=gpt-4o
      jsonl-batch report requests.jsonl --output-ratio 0.5       # before submitting
      jsonl-batch report big.job.json --no-estimate              # quick, while it runs
      jsonl-batch report out/big.merge.json -o reports/ --format json

    Exit status: 0 written, 1 an input cannot be read, 2 usage error (a missing SOURCE
    included).
    """
    if expected_output_tokens is not None and output_ratio is not None:
        raise click.UsageError("use --expected-output-tokens or --output-ratio, not both")
    if target == "openai" and region != "global":
        raise click.UsageError("--region applies to Azure targets only")
    from ..report import build_report, find_sources, write_report

    sources = find_sources(source, merge_summary=merge_summary)
    output = naming.report_path(sources.path)
    if output_dir is not None:  # a folder (as -o is on every command) or the page itself
        folder = os.path.isdir(output_dir) or output_dir.endswith(os.sep)
        output = Path(output_dir) / output.name if folder else Path(output_dir)
    with progress_bar(None if no_estimate else sources.total_bytes, "reading") as advance:
        built = build_report(
            sources,
            estimate=not no_estimate,
            prices=prices_path,
            deployment_map=read_deployment_map(deployment_items, deployment_map_file),
            target=target,
            region=region,
            expected_output_tokens=expected_output_tokens,
            output_ratio=output_ratio,
            cached_fraction=cached_fraction,
            jobs=jobs,
            max_line_bytes=max_line_bytes,
            on_progress=advance,
        )
    size = write_report(built, output)
    print_written(built, output, size, output_format)


def print_written(built: Report, output: Path, size: int, output_format: str) -> None:
    """Where the report went and its headline figures (JSON, or one line for people)."""
    if output_format == "json":
        echo_json({"report": str(output), "bytes": size, **built.headline()})
    else:
        click.echo(written_line(output, size))


def written_line(output: str | Path, size: int) -> str:
    return f"report written to {output} ({shown_size(size)})"


__all__ = ["print_written", "report", "report_option", "written_line"]
