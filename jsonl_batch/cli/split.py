"""``jsonl-batch split``."""

from __future__ import annotations

import os

import click

from ..display import count, number
from ..formats.manifest import Manifest
from ..split import SplitRefused, split_file
from ._common import (
    QUANTITY,
    deployment_map_options,
    echo_json,
    format_option,
    handle_errors,
    input_path,
    max_line_bytes_option,
    output_dir_option,
    progress_bar,
    read_deployment_map,
    target_option,
)
from ._tables import add_row, new_table, print_table
from .validate import print_findings, print_summary


@click.command()
@click.argument("file", type=input_path())
@output_dir_option(
    "Folder for the shards and <stem>.manifest.json (created if missing).", required=True
)
@target_option()
@click.option(
    "--max-requests",
    type=QUANTITY,
    default=None,
    help="Requests per shard [default: the target's, Azure 100,000, OpenAI 50,000].",
)
@click.option(
    "--max-bytes",
    type=QUANTITY,
    default=None,
    help="Bytes per shard, e.g. 150MB [default: the target's, 200 MB].",
)
@click.option(
    "--max-tokens",
    type=QUANTITY,
    default=None,
    help="Estimated input (enqueued) tokens per shard, e.g. 2M. Off by default.",
)
@click.option(
    "--token-margin",
    type=click.FloatRange(min=0, max=1000, max_open=True),
    default=0.0,
    show_default=True,
    help="Safety margin in percent for --max-tokens: estimate x (1 + margin/100) <= max.",
)
@deployment_map_options
@click.option("--no-validate", is_flag=True, help="Skip validation (faster; trust the file).")
@click.option("--force", is_flag=True, help="Split even when the file has errors.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier split's manifest and shards.")
@click.option(
    "--max-errors",
    type=click.IntRange(min=1),
    default=None,
    help="Stop listing errors after this many.",
)
@max_line_bytes_option
@click.option("--quiet", "-q", is_flag=True, help="Do not list the validation findings.")
@format_option()
@handle_errors
def split(
    file: str,
    output_dir: str,
    target: str,
    max_requests: int | None,
    max_bytes: int | None,
    max_tokens: int | None,
    token_margin: float,
    deployment_items: tuple[str, ...],
    deployment_map_file: str | None,
    no_validate: bool,
    force: bool,
    overwrite: bool,
    max_errors: int | None,
    max_line_bytes: int,
    quiet: bool,
    output_format: str,
) -> None:
    """Split FILE into shards the service accepts: one model and one url per shard, at most
    --max-requests requests, --max-bytes bytes and (optionally) --max-tokens estimated input
    tokens each. Lines are copied byte for byte in input order; blank lines are dropped.
    Writes <stem>.<model>.part-0001.jsonl ... and <stem>.manifest.json (read by submit and
    merge) into the --output folder, all at once or not at all.

    The file is validated in the same pass; a file with errors is not split unless --force.

    \b
    Examples:
      jsonl-batch split requests.jsonl --output shards/
      jsonl-batch split requests.jsonl -o shards/ --target openai --max-bytes 100MB
      jsonl-batch split big.jsonl -o shards/ --max-tokens 5M --token-margin 10 \\
          --deployment-map my-gpt4o=gpt-4o-2024-08-06
      jsonl-batch split requests.jsonl -o shards/ --format json   # prints the manifest

    Exit status: 0 when split, 1 when the file has errors (nothing written) or a single
    request exceeds a limit, 2 on usage errors.
    """
    mapping = read_deployment_map(deployment_items, deployment_map_file) or None
    size = os.path.getsize(file) if os.path.isfile(file) else None
    try:
        with progress_bar(size, f"splitting {file}") as advance:
            result = split_file(
                file,
                output_dir,
                target=target,
                max_requests=max_requests,
                max_bytes=max_bytes,
                max_tokens=max_tokens,
                token_margin=token_margin,
                validate=not no_validate,
                force=force,
                overwrite=overwrite,
                max_errors=max_errors,
                max_line_bytes=max_line_bytes,
                deployment_map=mapping,
                on_progress=advance,
            )
    except SplitRefused as refused:
        if output_format == "json":
            echo_json({"split": False, "reason": refused.message, **refused.report.to_dict()})
        else:
            if not quiet:
                print_findings(refused.report)
            print_summary(refused.report)
        raise

    manifest = result.manifest
    if output_format == "json":
        echo_json(manifest.to_json())
        return
    report = result.report
    if result.reused:
        click.echo(f"{file}: already split with these limits in {output_dir}; nothing written")
    if report is not None and report.findings:
        if not quiet:
            print_findings(report)
        print_summary(report)
        if not report.ok:
            click.secho("split anyway (--force)", fg="yellow", err=True)
    _print_table(manifest, result.manifest_path)


def _print_table(manifest: Manifest, manifest_path: os.PathLike[str]) -> None:
    limits = manifest.limits
    with_tokens = limits.max_tokens is not None
    headers = ["path", "model", "requests", "bytes"] + (["tokens"] if with_tokens else [])
    table = new_table(*headers, numeric=("requests", "bytes", "tokens"))
    for shard in manifest.shards:
        cells = [shard.path, shard.model or "(none)", number(shard.requests), number(shard.bytes)]
        add_row(table, cells + ([number(shard.input_tokens or 0)] if with_tokens else []))
    print_table(table)
    source = manifest.source
    token_text = ""
    if limits.max_tokens is not None:
        budget = limits.token_budget or limits.max_tokens
        token_text = f", {count(budget, 'estimated input token')}"
        if budget != limits.max_tokens:
            margin = f"{limits.token_margin:g}%"
            token_text += f" (--max-tokens {number(limits.max_tokens)} less a {margin} margin)"
    blank = f" ({count(source.blank_lines, 'blank line')} dropped)" if source.blank_lines else ""
    click.echo(
        f"{count(source.requests, 'request')}{blank} -> {count(len(manifest.shards), 'shard')}"
        f" (limits per shard: {count(limits.max_requests, 'request')},"
        f" {count(limits.max_bytes, 'byte')}{token_text}; target {manifest.target})"
    )
    click.echo(f"manifest: {manifest_path}")
