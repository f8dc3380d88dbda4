"""``jsonl-batch merge``: join output and error files back to the input, write results and a
retry file, and summarise statuses, errors, usage and cost."""

from __future__ import annotations

import os
import sys

import click

from ..display import count, number, usd
from ..merge import DEFAULT_MEMORY_MB, RESULTS_FORMATS, Cost, MergeResult, merge, plan_merge
from ._common import (
    cli_terms,
    deployment_map_options,
    echo_json,
    format_option,
    handle_errors,
    input_path,
    jobs_option,
    max_line_bytes_option,
    output_dir_option,
    prices_option,
    progress_bar,
    read_deployment_map,
    region_option,
    target_option,
)
from .report import report_option, written_line


@click.command("merge")
@click.argument("job", required=False, type=input_path())
@click.option(
    "--input",
    "input_path",
    type=input_path(),
    help="The request file or split manifest (instead of JOB).",
)
@click.option(
    "--output-file",
    "outputs",
    multiple=True,
    type=input_path(),
    metavar="FILE",
    help="A batch output file you downloaded (repeatable; .gz works).",
)
@click.option(
    "--error-file",
    "--errors",
    "errors",
    multiple=True,
    type=input_path(),
    metavar="FILE",
    help="A batch error file you downloaded (repeatable; .gz works).",
)
@output_dir_option(
    "Folder for the results, retry and summary files [default: next to the input].",
    file_hint=" (the batch's own output file goes to --output-file)",
)
@click.option(
    "--results-format",
    type=click.Choice(RESULTS_FORMATS),
    default="full",
    show_default=True,
    help="full: status, code, error, usage, response body; text: the assistant text; "
    "embedding: the vector(s); csv: one row per request with the text in a column.",
)
@click.option("--include-request", is_flag=True, help="Copy each request into its results row.")
@click.option(
    "--retry-on",
    multiple=True,
    metavar="KIND[,KIND]",
    help="What goes into the retry file: failed, expired, cancelled, missing, all, an HTTP "
    "status (429) or class (4xx, 5xx), or an error code [default: all four statuses].",
)
@target_option()
@region_option
@deployment_map_options
@prices_option
@click.option(
    "--estimate",
    is_flag=True,
    help="Also count the input tokens of the requests that came back and show the estimated "
    "input cost next to the actual one (slower: tokenizes every request).",
)
@click.option(
    "--memory-mb",
    type=click.FloatRange(min=1),
    default=DEFAULT_MEMORY_MB,
    show_default=True,
    help="Memory for the custom_id index; above it the index moves to a temporary SQLite "
    "file in the output folder.",
)
@jobs_option("up to 4 cores for a request file over 64 MB, on Linux")
@report_option
@max_line_bytes_option
@format_option()
@handle_errors
def merge_command(
    job: str | None,
    input_path: str | None,
    outputs: tuple[str, ...],
    errors: tuple[str, ...],
    output_dir: str | None,
    results_format: str,
    include_request: bool,
    retry_on: tuple[str, ...],
    target: str,
    region: str,
    deployment_items: tuple[str, ...],
    deployment_map_file: str | None,
    prices_path: str | None,
    estimate: bool,
    memory_mb: float,
    jobs: int | None,
    report_path: str | None,
    max_line_bytes: int,
    output_format: str,
) -> None:
    """Join a finished batch's output and error files to its requests.

    JOB is a job file (*.job.json, from submit); or give the request file (or split manifest)
    with --input and the downloaded files with --output-file / --error-file. Writes, next to
    the input (or in the --output folder), replacing earlier copies since they are derived
    files:

    \b
      <stem>.results.jsonl  one row per request, in input order: custom_id, status
                            (succeeded, failed, expired, cancelled, missing), HTTP status,
                            error code and message, usage, response body
      <stem>.retry.jsonl    the original request lines, byte for byte, of the requests to
                            send again (see --retry-on); not written when there are none

    Nothing is dropped silently: output lines that are not JSON, custom_ids not in the input
    and duplicates are reported. For a duplicate, a success beats a failure; between equals
    the later file (outputs in the order given, then errors) and the later line wins.

    \b
    Examples:
      jsonl-batch merge big.job.json
      jsonl-batch merge --input batch.jsonl --output-file out.jsonl --error-file err.jsonl
      jsonl-batch merge --input batch.jsonl --output-file out.jsonl --retry-on 429,5xx,expired
      jsonl-batch merge big.job.json -o merged/ --results-format csv --format json
      jsonl-batch merge big.job.json --report big.html   # also counts every request's tokens

    Exit status: 0 every request succeeded, 1 some did not (or bad output lines / unknown
    custom_ids), 2 usage error.
    """
    if (job is None) == (input_path is None):
        raise click.UsageError("give JOB or --input FILE (one of them)")
    source = job or input_path
    assert source is not None
    deployment_map = read_deployment_map(deployment_items, deployment_map_file)
    if target == "openai" and region != "global":
        raise click.UsageError("--region applies to Azure targets only")
    plan = plan_merge(source, outputs, errors)
    total_bytes = sum(
        os.path.getsize(p) for p in (*plan.outputs, *plan.errors, plan.source) if p and p.exists()
    )
    with progress_bar(total_bytes, "merging") as advance:
        result = merge(
            source,
            outputs,
            errors,
            out_dir=output_dir,
            results_format=results_format,
            include_request=include_request,
            retry_on=retry_on or ("failed", "expired", "cancelled", "missing"),
            deployment_map=deployment_map,
            prices=prices_path,
            estimate=estimate,
            target=target,
            region=region,
            memory_mb=memory_mb,
            jobs=jobs,
            max_line_bytes=max_line_bytes,
            on_progress=advance,
        )
    written = None
    if report_path:
        from ..report import build_report, find_sources, write_report

        sources = find_sources(source, merge_summary=result.summary_path)
        with progress_bar(sources.total_bytes, "report") as advance:
            built = build_report(
                sources,
                merge=result.to_dict(),
                prices=prices_path,
                deployment_map=deployment_map,
                target=target,
                region=region,
                jobs=jobs,
                max_line_bytes=max_line_bytes,
                on_progress=advance,
            )
        written = (report_path, write_report(built, report_path))
    if output_format == "json":
        echo_json(result.to_dict() | ({"report": report_path} if report_path else {}))
    else:
        click.echo(render_text(result))
        if written is not None:
            click.echo(written_line(*written))
    sys.exit(0 if result.ok else 1)


def _usd(value: float | None) -> str:
    return usd(value, unknown="unknown")


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{number(n)} {status}" for status, n in counts.items() if n) or "nothing"


def render_text(result: MergeResult) -> str:
    """The human report: counts, files, top errors, usage and cost, shards, problems."""
    total = result.total
    lines = [f"{count(total.requests, 'request')}: {_counts(total.counts)}"]
    lines.append(f"results: {result.results_path}")
    if result.retry_path is not None:
        lines.append(f"retry:   {result.retry_path} ({count(result.retry_count, 'request')})")
    else:
        lines.append("retry:   nothing to retry")
    if result.errors:
        lines.append("errors:")
        for stat in result.errors[:10]:
            message = (stat.example_message or "").replace("\n", " ")
            if len(message) > 100:
                message = message[:97] + "..."
            example = f"e.g. {stat.example_custom_id} at {stat.example_where}"
            lines.append(
                f"  {number(stat.count):>8}  {stat.code} ({stat.status}), {example}"
                + (f": {message}" if message else "")
            )
        if len(result.errors) > 10:
            lines.append(f"  ... and {count(len(result.errors) - 10, 'more code')} (--format json)")
    usage = total.usage
    lines.append(
        f"usage: {usage.prompt_tokens:,} prompt ({usage.cached_tokens:,} cached), "
        f"{usage.completion_tokens:,} completion ({usage.reasoning_tokens:,} reasoning)"
    )
    lines.append("cost at batch prices: " + _cost_text(total.cost))
    if result.shards:
        lines.append("per shard:")
    for shard in result.shards:
        status = f" [{shard.shard_status}]" if shard.shard_status else ""
        lines.append(
            f"  {shard.name}{status}: {count(shard.requests, 'request')}, {_counts(shard.counts)};"
            f" {_cost_text(shard.cost)}"
        )
    if result.resources:
        lines.append("per resource:")
    for resource in result.resources:
        lines.append(
            f"  {resource.name}: {count(resource.requests, 'request')},"
            f" {_counts(resource.counts)}; {_cost_text(resource.cost)}"
        )
    for kind, found in result.problem_counts.items():
        if not found:
            continue
        lines.append(f"{kind.replace('_', ' ')}: {number(found)}")
        for problem in (p for p in result.problems if p.kind == kind):
            subject = f"{problem.custom_id}: " if problem.custom_id else ""
            lines.append(f"  {problem.where}: {subject}{cli_terms(problem.message)}")
        if found > sum(1 for p in result.problems if p.kind == kind):
            lines.append("  ... (first ones shown)")
    lines.extend(f"note: {cli_terms(note)}" for note in result.notes)
    lines.extend(f"warning: {cli_terms(warning)}" for warning in result.warnings)
    if result.index_spilled:
        lines.append("note: the custom_id index outgrew --memory-mb and used a SQLite file")
    return "\n".join(lines)


def _cost_text(cost: Cost) -> str:
    text = f"{_usd(cost.actual_usd)} (input {_usd(cost.actual_input_usd)}"
    if cost.estimated_input_usd is not None:
        text += f", estimated input {_usd(cost.estimated_input_usd)}"
    text += ")"
    if cost.unpriced_models:
        text += " without " + ", ".join(cost.unpriced_models)
    return text
