"""``jsonl-batch emulator``: run the local Azure OpenAI / OpenAI Batch API emulator."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click
import orjson

from ..emulator.config import (
    DEFAULT_IDLE_TIMEOUT_SECONDS,
    DEFAULT_MAX_UPLOAD_BYTES,
    DEFAULT_SPEED,
    EmulatorConfig,
    Faults,
    parse_deployment,
    parse_token_quota,
)
from ._common import format_option, handle_errors

if TYPE_CHECKING:
    from ..emulator.server import Emulator


@click.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=0, show_default=True, help="Port; 0 picks a free one.")
@click.option("--api-key", help="Key clients must send (api-key or Bearer). Random if unset.")
@click.option(
    "--speed",
    type=float,
    default=DEFAULT_SPEED,
    show_default=True,
    help="Simulated seconds per real second (a minute of validating takes 60/speed s).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of all results.")
@click.option(
    "--deployment",
    "deployments",
    multiple=True,
    metavar="NAME=MODEL",
    help="A deployment and the model its chat replies report (repeatable). When given, "
    "batches naming another deployment fail with model_not_found.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep files and batches here across restarts (default: in memory).",
)
@click.option(
    "--token-quota",
    multiple=True,
    metavar="[DEPLOYMENT=]N",
    help="Enqueued-token limit (all deployments, or one; repeatable): over it, new batches "
    "fail with token_limit_exceeded.",
)
@click.option(
    "--fail-rate", type=float, default=0.0, help="Share of requests that fail in results."
)
@click.option(
    "--fail-status",
    multiple=True,
    type=int,
    help="HTTP status of failed requests (repeatable; default 500).",
)
@click.option("--api-error-rate", type=float, default=0.0, help="Share of API calls refused.")
@click.option(
    "--api-error-status",
    multiple=True,
    type=int,
    help="Status of refused API calls (repeatable; default 429, sent with Retry-After).",
)
@click.option(
    "--drop-rate", type=float, default=0.0, help="Share of API calls whose connection drops."
)
@click.option(
    "--slow", type=float, default=0.0, help="Delay every API answer by this many seconds."
)
@click.option("--expire-rate", type=float, default=0.0, help="Share of batches that expire.")
@click.option(
    "--max-upload-bytes",
    type=int,
    default=DEFAULT_MAX_UPLOAD_BYTES,
    show_default=True,
    help="Larger uploads get 'File is too large.'.",
)
@click.option(
    "--idle-timeout",
    type=click.FloatRange(min=0.001),
    default=DEFAULT_IDLE_TIMEOUT_SECONDS,
    show_default=True,
    help="Close a connection that sends nothing for this many seconds.",
)
@click.option("--verbose", is_flag=True, help="Print every API call to stderr.")
@format_option()
@handle_errors
def emulator(
    host: str,
    port: int,
    api_key: str | None,
    speed: float,
    seed: int,
    deployments: tuple[str, ...],
    data_dir: Path | None,
    token_quota: tuple[str, ...],
    fail_rate: float,
    fail_status: tuple[int, ...],
    api_error_rate: float,
    api_error_status: tuple[int, ...],
    drop_rate: float,
    slow: float,
    expire_rate: float,
    max_upload_bytes: int,
    idle_timeout: float,
    verbose: bool,
    output_format: str,
) -> None:
    """Run a local Azure OpenAI / OpenAI Batch API emulator until Ctrl-C.

    It serves files and batches under Azure's /openai (with ?api-version=), /openai/v1 and
    OpenAI's /v1 paths, runs batches through validating, in_progress, finalizing and
    completed on a fast simulated clock, and injects faults on demand (flags here, or
    POST /_emulator/faults while it runs). It prints the base URL and the API key.

    Example:

    \b
      jsonl-batch emulator --port 8089 --deployment gpt-4o-batch=gpt-4o-2024-08-06
      # then: AzureOpenAI(azure_endpoint="http://127.0.0.1:8089", api_key=KEY,
      #                   api_version="2025-04-01-preview")
    """
    changes: dict[str, Any] = {
        "request_failure_rate": fail_rate,
        "api_error_rate": api_error_rate,
        "drop_rate": drop_rate,
        "slow_seconds": slow,
        "expire_rate": expire_rate,
        "token_quota": parse_token_quota(token_quota),
    }
    if fail_status:
        changes["request_failure_statuses"] = list(fail_status)
    if api_error_status:
        changes["api_error_statuses"] = list(api_error_status)
    config = EmulatorConfig(
        host=host,
        port=port,
        speed=speed,
        seed=seed,
        deployments=dict(parse_deployment(d) for d in deployments),
        data_dir=data_dir,
        max_upload_bytes=max_upload_bytes,
        idle_timeout=idle_timeout,
        faults=Faults().updated(changes),
    )
    if api_key:
        config.api_key = api_key
    from ..emulator.server import Emulator

    log = (lambda line: click.echo(line, err=True)) if verbose else None
    server = Emulator(config, on_request=log).start()
    try:
        _announce(server, output_format)
        _wait_for_stop()
    finally:
        server.close()


def _announce(server: Emulator, output_format: str) -> None:
    info = {
        "base_url": server.base_url,
        "openai_base_url": server.openai_base_url,
        "api_key": server.api_key,
    }
    if output_format == "json":
        # One line, flushed: a parent process reads it to find the port and key.
        click.echo(orjson.dumps(info).decode())
    else:
        click.echo(f"jsonl-batch emulator listening on {server.base_url}")
        click.echo(f"  Azure endpoint:  {server.base_url}   (api-version required)")
        click.echo(f"  Azure v1 base:   {server.base_url}/openai/v1")
        click.echo(f"  OpenAI base URL: {server.openai_base_url}")
        click.echo(f"  API key:         {server.api_key}")
        click.echo("  Control:         GET /_emulator/state, POST /_emulator/faults")
        click.echo("Press Ctrl-C to stop.")
    sys.stdout.flush()


def _wait_for_stop() -> None:
    """Block until Ctrl-C or SIGTERM (both end in a clean close that saves state)."""
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
