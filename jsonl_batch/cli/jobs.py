"""``jsonl-batch submit | status | wait | cancel | list | download``: batch jobs on Azure
OpenAI, a LiteLLM proxy or any OpenAI-compatible service."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..display import count, duration, iso_time, local_time, number, short_id, size
from ..formats import naming
from ..formats.batch import timestamp_of
from ..formats.jobfile import read_job_file
from ..formats.naming import JOB_SUFFIX
from ..formats.resources import Resource, read_resources, resources_from_items
from ..profiles import TARGETS
from ..service.connection import Connection, resolve_connection, resource_settings
from ..service.job import Job
from ._common import QUANTITY, echo_json, format_option, handle_errors, input_path, target_option
from ._jobview import JobProgress, print_status
from ._tables import add_row, console, new_table, print_table

F = TypeVar("F", bound=Callable[..., Any])
# vLLM's run-batch is offline: there is no service to submit to.
SERVICE_TARGETS = tuple(target for target in TARGETS if target != "vllm")

_CONNECTION_HELP = """
\b
Connection (flags, else environment, else the job file's saved connection):
  Azure OpenAI:  --endpoint https://NAME.openai.azure.com  (AZURE_OPENAI_ENDPOINT or
                 AZURE_API_BASE), key AZURE_OPENAI_API_KEY or AZURE_API_KEY, api-version
                 OPENAI_API_VERSION; or --auth entra (pip install 'jsonl-batch[entra]').
  LiteLLM proxy: --base-url http://localhost:4000 --api-key sk-...  [--custom-llm-provider azure]
  OpenAI:        OPENAI_API_KEY (base URL https://api.openai.com/v1).
  Several:       --resources resources.toml (see the README), or --resource east=URL
                 --resource-deployment east/gpt-4o-batch=gpt-4o@200M (key of resource
                 east in AZURE_OPENAI_API_KEY_EAST); a job file remembers them.
"""


def connection_options(func: F) -> F:
    """The flags that say where batches go and how to sign in."""
    options = [
        click.option("--endpoint", help="Azure OpenAI resource URL (uses the AzureOpenAI client)."),
        click.option("--base-url", help="OpenAI-compatible base URL: a LiteLLM proxy, OpenAI."),
        click.option("--api-key", help="API key (prefer the environment variables)."),
        click.option("--api-version", help="Azure api-version, e.g. 2025-04-01-preview."),
        target_option(
            SERVICE_TARGETS,
            default=None,
            help="Which service the batches go to: its limits and url forms"
            " [default: guessed from the URL].",
        ),
        click.option(
            "--auth",
            type=click.Choice(["api-key", "entra"]),
            help="api-key (default) or entra (Microsoft Entra ID via azure-identity).",
        ),
        click.option(
            "--custom-llm-provider",
            help="LiteLLM proxy: route to this provider (sent as header and extra_body).",
        ),
        click.option(
            "--max-retries",
            type=click.IntRange(min=0),
            help="Retries of 429/5xx/connection errors per call (default 5).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def resource_options(func: F) -> F:
    """The flags that spread a job over several resources."""
    options = [
        click.option(
            "--resources",
            "resources_file",
            type=input_path(),
            metavar="FILE",
            help="Resources file (TOML): several resources, their deployments and quotas.",
        ),
        click.option(
            "--resource",
            "resource_items",
            multiple=True,
            metavar="NAME=URL",
            help="An Azure resource (repeat); its key is in AZURE_OPENAI_API_KEY_<NAME>.",
        ),
        click.option(
            "--resource-deployment",
            "resource_deployments",
            multiple=True,
            metavar="NAME/DEPLOYMENT=MODEL[@QUOTA]",
            help="A deployment of --resource NAME, its model and optionally its enqueued-token"
            " quota (repeat), e.g. east/gpt-4o-batch=gpt-4o@200M.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _resources(options: dict[str, Any]) -> list[Resource]:
    """The resources the flags name (and removes those flags from ``options``)."""
    path = options.pop("resources_file", None)
    items = options.pop("resource_items", ())
    deployments = options.pop("resource_deployments", ())
    if deployments and not items:
        raise click.UsageError("--resource-deployment needs --resource NAME=URL")
    if not path and not items:
        return []
    if path and items:
        raise click.UsageError("use --resources FILE or --resource items, not both")
    single = [flag for flag in ("endpoint", "base_url", "api_key") if options.get(flag)]
    if single:
        raise click.UsageError(
            f"--{single[0].replace('_', '-')} names one service; with several resources each"
            " names its own endpoint and key variable"
        )
    if path:
        return read_resources(path)
    auth = options.get("auth") or "api-key"
    return resources_from_items(
        items, deployments, api_version=options.get("api_version"), auth=auth
    )


def _resources_of(job_path: Path) -> list[Resource]:
    """The resources of an existing job file: ``submit`` resumes it without the flags."""
    if job_path.name.endswith(JOB_SUFFIX) and job_path.exists():
        return list(read_job_file(job_path).resources)
    return []


def _connection(options: dict[str, Any], saved: dict[str, Any] | None = None) -> Connection:
    auth = options.get("auth")
    settings = resolve_connection(
        endpoint=options.get("endpoint"),
        base_url=options.get("base_url"),
        api_key=options.get("api_key"),
        api_version=options.get("api_version"),
        target=options.get("target"),
        auth="api_key" if auth == "api-key" else auth,
        custom_llm_provider=options.get("custom_llm_provider"),
        max_retries=options.get("max_retries"),
        saved=saved,
    )
    return Connection(settings)


def _say(message: str) -> None:
    click.echo(message, err=True)


def _open_job(path: str, options: dict[str, Any], **job_options: Any) -> Job:
    job_path = Path(path)
    data = read_job_file(job_path)
    job_options.setdefault("on_event", _say)
    if data.resources:  # each resource names its endpoint and key variable
        return Job.load(job_path, None, max_retries=options.get("max_retries"), **job_options)
    return Job.load(job_path, _connection(options, data.connection.model_dump()), **job_options)


# --- submit --------------------------------------------------------------------------


poll_interval_option = click.option(
    "--poll-interval",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds between status checks (Azure asks for at least 60); grows when quiet.",
)
quota_retry_delay_option = click.option(
    "--quota-retry-delay",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="First delay before retrying a shard refused with token_limit_exceeded (doubles).",
)


def job_input_options(func: F) -> F:
    """What decides a job's shards: where it is saved, the deployments and the split limits
    (``recover`` needs the same ones ``submit`` had, to find the same shards)."""
    options = [
        click.option(
            "--job", "job_path", type=click.Path(dir_okay=False), help="Job file to write."
        ),
        click.option(
            "--deployment",
            "deployments",
            multiple=True,
            metavar="NAME",
            help="Deployment to send shards to (repeat to spread shards over several).",
        ),
        click.option(
            "--enqueued-limit",
            type=click.IntRange(min=1),
            help="Input tokens each deployment may have queued at once; other shards wait.",
        ),
        click.option("--max-requests", type=QUANTITY, help="Split: requests per shard."),
        click.option("--max-bytes", type=QUANTITY, help="Split: bytes per shard, e.g. 150MB."),
        click.option("--max-tokens", type=QUANTITY, help="Split: input tokens per shard, e.g. 2M."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.command(epilog=_CONNECTION_HELP)
@click.argument("input_path", metavar="INPUT", type=input_path())
@connection_options
@resource_options
@job_input_options
@click.option("--description", help="Stored in each batch's metadata.")
@click.option(
    "--retry-elsewhere",
    is_flag=True,
    help="INPUT is a merged multi-resource job: send its retry file (failed, expired"
    " requests) as a new job, on resources other than those the failures came from.",
)
@click.option(
    "--ignore-existing",
    is_flag=True,
    help="Create new batches even when the service already has batches of the same shard"
    " content (by default a new job takes those over).",
)
@click.option(
    "--failover-after",
    "creating_failover_seconds",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Several resources: how long a shard whose create was in flight waits for its"
    " resource, once down, before it moves (a batch found there later is cancelled)."
    "  [default: 900; saved in the job file]",
)
@click.option("--wait", "then_wait", is_flag=True, help="Wait for the job after submitting.")
@poll_interval_option
@quota_retry_delay_option
@format_option()
@handle_errors
def submit(
    input_path: str,
    job_path: str | None,
    deployments: tuple[str, ...],
    enqueued_limit: int | None,
    description: str | None,
    max_requests: int | None,
    max_bytes: int | None,
    max_tokens: int | None,
    ignore_existing: bool,
    retry_elsewhere: bool,
    creating_failover_seconds: float | None,
    then_wait: bool,
    poll_interval: float,
    quota_retry_delay: float,
    output_format: str,
    **options: Any,
) -> None:
    """Submit a request file (split first with the target's limits) or a split manifest as
    one batch per shard, recorded in INPUT's <stem>.job.json.

    Safe to rerun: after a crash or an error it continues where it stopped and never
    creates a second batch for a shard. Without a job file (lost or deleted), it first
    looks on the service for batches of the same shard content (their metadata carries the
    shard's sha256) and takes them over instead of creating them again.

    \b
    Example:
      jsonl-batch submit requests.jsonl --endpoint https://NAME.openai.azure.com \\
          --deployment gpt-4o-batch --deployment gpt-4o-batch-2 --enqueued-limit 5000000
      jsonl-batch wait requests.job.json
      jsonl-batch submit requests.jsonl --resources resources.toml --max-requests 50000
      jsonl-batch submit requests.job.json --retry-elsewhere   # after merge
    """
    resources = _resources(options) or _resources_of(Path(job_path or naming.job_path(input_path)))
    if resources and deployments:
        raise click.UsageError("--deployment with several resources: list them per resource")
    split_limits = {"max_requests": max_requests, "max_bytes": max_bytes, "max_tokens": max_tokens}
    with JobProgress(console(err=True)) as view:
        common: dict[str, Any] = {
            "job_path": job_path,
            "description": description,
            "split_limits": split_limits,
            "reuse_existing": not ignore_existing,
            "creating_failover_seconds": creating_failover_seconds,
            "on_event": view.event,
            "on_upload": view.upload,
            "quota_retry_seconds": quota_retry_delay,
        }
        if retry_elsewhere:
            job = Job.retry_elsewhere(
                input_path, resources=resources, max_retries=options.get("max_retries"), **common
            )
        elif resources:
            job = Job.submit(
                input_path,
                None,
                resources=resources,
                enqueued_limit=enqueued_limit,
                max_retries=options.get("max_retries"),
                **common,
            )
        else:
            job = Job.submit(
                input_path,
                _connection(options),
                deployments=deployments,
                enqueued_limit=enqueued_limit,
                **common,
            )
        if then_wait:
            _wait(job, view, poll_interval, None, None)
    _report(job, output_format)
    if then_wait and not _all_completed(job):
        sys.exit(1)


@click.command(epilog=_CONNECTION_HELP)
@click.argument("input_path", metavar="INPUT", type=input_path())
@connection_options
@resource_options
@job_input_options
@format_option()
@handle_errors
def recover(
    input_path: str,
    job_path: str | None,
    deployments: tuple[str, ...],
    enqueued_limit: int | None,
    max_requests: int | None,
    max_bytes: int | None,
    max_tokens: int | None,
    output_format: str,
    **options: Any,
) -> None:
    """Rebuild a lost job file for INPUT from the service, creating nothing.

    INPUT is split as submit splits it (pass the same --deployment and split limits), and
    every shard is matched to the batch whose metadata carries its content hash, else to
    the upload named after it. Then `wait` follows the batches, or `submit` sends the
    shards that have none.

    \b
    Example:
      jsonl-batch recover requests.jsonl --endpoint https://NAME.openai.azure.com \\
          --deployment gpt-4o-batch
      jsonl-batch wait requests.job.json
    """
    resources = _resources(options)
    if resources and deployments:
        raise click.UsageError("--deployment with several resources: list them per resource")
    job = Job.recover(
        input_path,
        None if resources else _connection(options),
        resources=resources,
        max_retries=options.get("max_retries"),
        job_path=job_path,
        deployments=deployments,
        enqueued_limit=enqueued_limit,
        split_limits={
            "max_requests": max_requests,
            "max_bytes": max_bytes,
            "max_tokens": max_tokens,
        },
        on_event=_say,
    )
    _report(job, output_format)


def _report(job: Job, output_format: str) -> None:
    if output_format == "json":
        echo_json({"job_file": str(job.path), **job.summary(), "shards": list(job.iter_rows())})
        return
    print_status(job)


# --- status --------------------------------------------------------------------------


@click.command(epilog=_CONNECTION_HELP)
@click.argument("job_path", metavar="JOB", type=input_path())
@connection_options
@click.option(
    "--refresh/--no-refresh",
    default=True,
    show_default=True,
    help="Ask the service first (--no-refresh shows the job file as saved, offline).",
)
@format_option()
@handle_errors
def status(job_path: str, refresh: bool, output_format: str, **options: Any) -> None:
    """Show each shard of a job: status, progress, elapsed time and errors so far.

    \b
    Example:
      jsonl-batch status requests.job.json --format json
    """
    if refresh:
        job = _open_job(job_path, options)
        job.refresh()
    else:
        job = Job.load(job_path)
    _report(job, output_format)


# --- wait ----------------------------------------------------------------------------


def _all_completed(job: Job) -> bool:
    return all(shard.status == "completed" for shard in job.shards)


def _wait(
    job: Job,
    view: JobProgress,
    poll_interval: float,
    max_poll: float | None,
    timeout: float | None,
) -> bool:
    try:
        return job.wait(
            poll_interval=poll_interval,
            max_poll_interval=max_poll,
            timeout=timeout,
            on_poll=view.poll,
        )
    except KeyboardInterrupt:
        view.__exit__(None, None, None)
        _say(
            "stopped waiting; nothing was cancelled."
            f" Run `jsonl-batch wait {job.path}` to continue."
        )
        sys.exit(130)


@click.command(epilog=_CONNECTION_HELP)
@click.argument("job_path", metavar="JOB", type=input_path())
@connection_options
@poll_interval_option
@click.option("--max-poll-interval", type=click.FloatRange(min=0), help="Default 10x interval.")
@click.option("--timeout", type=click.FloatRange(min=0), help="Give up waiting after N seconds.")
@quota_retry_delay_option
@format_option()
@handle_errors
def wait(
    job_path: str,
    poll_interval: float,
    max_poll_interval: float | None,
    timeout: float | None,
    quota_retry_delay: float,
    output_format: str,
    **options: Any,
) -> None:
    """Wait until every shard of a job has finished: downloads results as shards finish and
    submits queued shards as the enqueued-token quota frees. Ctrl-C stops waiting and
    cancels nothing.

    Exit code 0 when every shard completed, 1 otherwise (failed, expired, cancelled, timeout).

    \b
    Example:
      jsonl-batch wait requests.job.json --poll-interval 60
    """
    with JobProgress(console(err=True)) as view:
        job = _open_job(
            job_path,
            options,
            quota_retry_seconds=quota_retry_delay,
            on_event=view.event,
            on_upload=view.upload,  # queued shards are uploaded while waiting
        )
        finished = _wait(job, view, poll_interval, max_poll_interval, timeout)
    _report(job, output_format)
    if not finished:
        _say(f"still running after {timeout:g}s; run `jsonl-batch wait {job_path}` again")
    if not finished or not _all_completed(job):
        sys.exit(1)


# --- cancel --------------------------------------------------------------------------


@click.command(epilog=_CONNECTION_HELP)
@click.argument("what", metavar="JOB|BATCH_ID")
@connection_options
@format_option()
@handle_errors
def cancel(what: str, output_format: str, **options: Any) -> None:
    """Cancel every running batch of a job (shards not yet submitted are dropped), or one
    batch by id. Cancelled batches keep their partial results: run `download` later.

    \b
    Example:
      jsonl-batch cancel requests.job.json
      jsonl-batch cancel batch_abc123 --endpoint https://NAME.openai.azure.com
    """
    if what.endswith(JOB_SUFFIX) or Path(what).is_file():
        job = _open_job(what, options)
        cancelled = job.cancel()
        result: dict[str, Any] = {"job_id": job.data.job_id, "cancelled": cancelled}
    else:
        connection = _connection(options)
        batch = connection.call(
            f"cancelling batch {what}",
            connection.client.batches.cancel,
            what,
            extra_body=connection.extra_body,
        )
        cancelled = [batch.id]
        result = {"cancelled": cancelled, "status": batch.status}
    if output_format == "json":
        echo_json(result)
    elif cancelled:
        click.echo(
            f"cancel requested for {count(len(cancelled), 'batch', 'batches')}:"
            f" {' '.join(cancelled)}"
        )
    else:
        click.echo("nothing to cancel: every batch of the job has already finished")


# --- list ----------------------------------------------------------------------------


@click.command("list", epilog=_CONNECTION_HELP)
@connection_options
@resource_options
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Show at most this many batches (the newest).",
)
@click.option("--job", "job_filter", help="Only batches of this job (job file or job id).")
@format_option()
@handle_errors
def list_batches(limit: int, job_filter: str | None, output_format: str, **options: Any) -> None:
    """List batches on the service, newest first, following pagination up to --limit.

    \b
    Example:
      jsonl-batch list --limit 50 --job requests.job.json
      jsonl-batch list --resources resources.toml   # every resource, newest first
    """
    job_id = job_filter
    connections: dict[str | None, Connection] = {}
    if job_filter and (job_filter.endswith(JOB_SUFFIX) or Path(job_filter).is_file()):
        job = _open_job(job_filter, options)
        job_id = job.data.job_id
        names = [resource.name for resource in job.data.resources]
        connections = {name: job.resource_connection(name) for name in names}
        connections = connections or {None: job.connection}
    elif resources := _resources(options):
        connections = {
            r.name: Connection(resource_settings(r, max_retries=options.get("max_retries")))
            for r in resources
        }
    else:
        connections = {None: _connection(options)}
    rows = []
    for name, connection in connections.items():
        found = connection.call(
            "listing batches", lambda c=connection: _collect_batches(c, limit, job_id)
        )
        rows += [{**row, **({"resource": name} if name else {})} for row in found]
    rows = sorted(rows, key=lambda row: -(row["created"] or 0))[:limit]
    if output_format == "json":
        echo_json([{**row, "created": iso_time(row["created"])} for row in rows])
        return
    if not rows:
        click.echo("no batches" + (f" for job {job_id}" if job_id else ""))
        return
    several = any("resource" in row for row in rows)
    headers = ["batch", "status", "created", "done", "failed", "job", "shard"]
    table = new_table(*headers, *(["resource"] if several else []), numeric=("done", "failed"))
    for row in rows:
        done = f"{number(row['completed'] + row['failed'])}/{number(row['total'])}"
        cells = [short_id(row["id"]), row["status"], local_time(row["created"]), done]
        cells += [number(row["failed"]), short_id(row["job_id"]), row["shard"] or "-"]
        add_row(table, [*cells, *([row.get("resource") or "-"] if several else [])])
    print_table(table)


def _collect_batches(
    connection: Connection, limit: int, job_id: str | None
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    # iterating the page follows ``after`` cursors page by page until --limit rows are found
    for batch in connection.client.batches.list(limit=min(100, limit)):
        metadata = batch.metadata or {}
        if job_id and metadata.get("jsonl_batch_job") != job_id:
            continue
        counts = batch.request_counts
        rows.append(
            {
                "id": batch.id,
                "status": str(batch.status).lower(),
                "created": timestamp_of(batch.created_at),
                "total": (counts.total if counts else 0) or 0,
                "completed": (counts.completed if counts else 0) or 0,
                "failed": (counts.failed if counts else 0) or 0,
                "job_id": metadata.get("jsonl_batch_job"),
                "shard": metadata.get("shard"),
                "metadata": metadata,
            }
        )
        if len(rows) >= limit:
            break
    return rows


# --- download ------------------------------------------------------------------------


@click.command(epilog=_CONNECTION_HELP)
@click.argument("job_path", metavar="JOB", type=input_path())
@connection_options
@click.option("--force", is_flag=True, help="Download again files already on disk.")
@format_option()
@handle_errors
def download(job_path: str, force: bool, output_format: str, **options: Any) -> None:
    """Download the output and error files of a job's finished shards next to the job file
    (<stem>.downloads/), streamed and written atomically.

    \b
    Example:
      jsonl-batch download requests.job.json && jsonl-batch merge requests.job.json
    """
    job = _open_job(job_path, options)
    job.refresh()
    started = time.monotonic()
    written = job.download(force=force)
    if output_format == "json":
        echo_json({"job_id": job.data.job_id, "files": [str(p) for p in written]})
        return
    total = sum(p.stat().st_size for p in written)
    click.echo(
        f"downloaded {count(len(written), 'file')}, {size(total)}"
        f" in {duration(time.monotonic() - started)}"
    )
    pending = [s.index for s in job.shards if not s.terminal]
    if pending:
        click.echo(f"shards still running: {', '.join(map(str, pending))}")
