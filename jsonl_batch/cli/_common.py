"""Shared pieces of the CLI: output format option, error handling, JSON output, progress."""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import orjson

from ..errors import JsonlBatchError, storage_error
from ..jsonl import DEFAULT_MAX_LINE_BYTES
from ..profiles import TARGETS

F = TypeVar("F", bound=Callable[..., Any])


def format_option(*choices: str, default: str = "text") -> Callable[[F], F]:
    """``--format`` with the given choices (``text`` and ``json`` always first)."""
    all_choices = ["text", "json", *[c for c in choices if c not in ("text", "json")]]
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(all_choices),
        default=default,
        show_default=True,
        help="Output format: text for people, json for machines"
        + (", " + ", ".join(all_choices[2:]) if all_choices[2:] else "")
        + ".",
    )


TARGET_HELP = (
    "Which service the file is for: its limits, allowed urls, error codes and prices"
    " (vllm: vLLM's run-batch)."
)


def target_option(
    choices: Sequence[str] = TARGETS, *, default: str | None = "azure", help: str = TARGET_HELP
) -> Callable[[F], F]:
    """``--target``: the same name, choices and wording on every command."""
    return click.option(
        "--target",
        type=click.Choice(list(choices)),
        default=default,
        show_default=default is not None,
        help=help,
    )


def input_path(*, allow_dash: bool = False) -> click.Path:
    """An input file: a missing one (or a folder) is a usage error, exit 2."""
    return click.Path(exists=True, dir_okay=False, allow_dash=allow_dash)


def output_dir_option(
    help: str, *, required: bool = False, file_hint: str = ""
) -> Callable[[F], F]:
    """``-o/--output DIR``: the folder a command writes its files into (split's shards,
    merge's results); ``--out-dir`` stays as the older name."""

    def check(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is not None and os.path.exists(value) and not os.path.isdir(value):
            raise click.BadParameter(f"{value!r} is a file, not a folder{file_hint}", ctx, param)
        return value

    return click.option(
        "-o",
        "--output",
        "--out-dir",
        "output_dir",
        type=click.Path(),
        required=required,
        metavar="DIR",
        callback=check,
        help=help,
    )


def jobs_option(default: str) -> Callable[[F], F]:
    """``-j/--jobs N``: worker processes, where a command has them."""
    return click.option(
        "-j",
        "--jobs",
        type=click.IntRange(min=1),
        default=None,
        metavar="N",
        help=f"Worker processes [default: {default}].",
    )


_UNITS = {
    "": 1,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}


class Quantity(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """A positive integer with an optional decimal or binary unit: 200MB, 1.5GiB, 2M, 500k."""

    name = "quantity"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"\s*([0-9][0-9_,]*(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(value))
        unit = match and _UNITS.get(match.group(2).lower())
        if not match or unit is None:
            self.fail(f"{value!r} is not a number like 200000, 200MB, 1GiB or 2M", param, ctx)
        amount = int(float(match.group(1).replace(",", "").replace("_", "")) * unit)
        if amount < 1:
            self.fail(f"{value!r} must be at least 1", param, ctx)
        return amount


QUANTITY = Quantity()


def deployment_map_options(func: F) -> F:
    """``--deployment-map NAME=MODEL`` (repeatable) and ``--deployment-map-file FILE``;
    the command turns them into a dict with :func:`read_deployment_map`."""
    func = click.option(
        "--deployment-map-file",
        type=input_path(),
        metavar="FILE",
        help="A file of NAME=MODEL lines or a JSON object {name: model}.",
    )(func)
    return click.option(
        "--deployment-map",
        "deployment_items",
        multiple=True,
        metavar="NAME=MODEL",
        help="Azure deployment name -> the model it serves (repeatable), e.g. prod-4o=gpt-4o.",
    )(func)


def read_deployment_map(items: tuple[str, ...], path: str | None) -> dict[str, str]:
    """Merge ``--deployment-map`` items over the ``--deployment-map-file`` entries."""
    from ..deployments import parse_deployment_map

    mapping = parse_deployment_map(list(items))
    if path:
        mapping = {**parse_deployment_map(Path(path)), **mapping}
    return mapping


max_line_bytes_option = click.option(
    "--max-line-bytes",
    type=QUANTITY,
    default=DEFAULT_MAX_LINE_BYTES,
    show_default="256MiB, above the 200 MB file limit of every service",
    help="Longest line read: a longer one is reported (line_too_long) and skipped without"
    " being held in memory, and reading goes on after it.",
)

prices_option = click.option(
    "--prices",
    "prices_path",
    type=input_path(),
    metavar="FILE",
    help="Price table: our prices.json format or LiteLLM's model_prices_and_context_window.json. "
    "Its prices win; models it lacks are priced from the bundled, dated table.",
)

region_option = click.option(
    "--region",
    type=click.Choice(
        ["global", "data-zone", "data-zone-eu", "data-zone-us", "data-zone-apac", "us-gov"]
    ),
    default="global",
    show_default=True,
    help="Azure deployment type: Global Batch, or Data Zone Batch (data-zone: EU or US, "
    "whichever costs more where they differ; or one zone), or Azure Government.",
)


def output_assumption_options(func: F) -> F:
    """What estimate assumes about output and caching (``estimate`` and ``report``):
    ``--expected-output-tokens``, ``--output-ratio`` and ``--cached-fraction``."""
    func = click.option(
        "--cached-fraction",
        type=click.FloatRange(0, 1),
        default=0.0,
        show_default=True,
        help="Share of input tokens you expect to hit the prompt cache (used by the low figure).",
    )(func)
    func = click.option(
        "--output-ratio",
        type=click.FloatRange(min=0),
        help="Expected output = R x input tokens per request (capped at the request's max).",
    )(func)
    return click.option(
        "--expected-output-tokens",
        type=click.IntRange(min=0),
        help="Expected output tokens per request (capped at the request's max).",
    )(func)


fetch_image_sizes_option = click.option(
    "--fetch-image-sizes",
    is_flag=True,
    help="Read the size of each remote image (one small HTTP Range request per URL) so it "
    "counts exactly. The only network use of this command; off by default.",
)


# The library names its own functions and parameters in messages and hints ("pass
# overwrite=True", "raise max_line_bytes"); the command line shows its commands and flags.
_COMMANDS = {
    "split_file": "`jsonl-batch split`",
    "validate_file": "`jsonl-batch validate`",
    "Job.submit": "`jsonl-batch submit`",
}
_FLAGS = {
    name: "--" + name.replace("_", "-")
    for name in (
        "api_key",
        "api_version",
        "auth",
        "base_url",
        "cached_fraction",
        "deployment_map",
        "endpoint",
        "enqueued_limit",
        "expected_output_tokens",
        "fetch_image_sizes",
        "force",
        "max_bytes",
        "max_line_bytes",
        "max_requests",
        "max_tokens",
        "output_ratio",
        "overwrite",
        "port",
        "prices",
        "region",
        "retry_on",
        "target",
        "token_margin",
    )
} | {
    "job_path": "--job",
    "out_dir": "--output",
    "outputs": "--output-file",
    "errors": "--error-file",
    "deployments": "--deployment",
}
_TERM = re.compile(
    r"(?<![\w.-])(?P<command>" + "|".join(map(re.escape, _COMMANDS)) + r")(?!\w)"
    r"|(?<![\w.-])(?P<name>" + "|".join(_FLAGS) + r")"
    r"(?:=(?:(?P<true>True)\b|\[(?P<item>[^\]]*)\]|\"(?P<quoted>[^\"]*)\""
    r"|\{\"(?P<key>[^\"]*)\": \"(?P<value>[^\"]*)\"\}|(?P<plain>))|(?!\w))"
)


def _flag(match: re.Match[str]) -> str:
    if match["command"]:
        return _COMMANDS[match["command"]]
    name, flag = match["name"], _FLAGS[match["name"]]
    if match["true"]:
        return flag
    for part in ("item", "quoted"):
        if match[part] is not None:
            return f"{flag} {match[part]}"
    if match["key"] is not None:
        return f"{flag} {match['key']}={match['value']}"
    if match["plain"] is not None:
        return f"{flag} "
    return flag if "_" in name else name  # a plain word ("force", "prices") stays a word


def cli_terms(text: str) -> str:
    """A library message or hint in command-line terms: ``pass overwrite=True`` → ``pass
    --overwrite``, ``out_dir=DIR`` → ``--out-dir DIR``, ``max_line_bytes`` →
    ``--max-line-bytes``, ``deployment_map={"NAME": "MODEL"}`` → ``--deployment-map
    NAME=MODEL``, ``split_file`` → ``jsonl-batch split``."""
    return _TERM.sub(_flag, text)


def handle_errors(func: F) -> F:
    """Turn a JsonlBatchError into a one-line message and its exit code, never a traceback.

    An OS error the library did not name (a disk that fills up, a file that turns out to be a
    pipe) gets the same treatment: the path, the reason and what to do, exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except JsonlBatchError as exc:
            _fail(exc)
        except OSError as exc:
            _fail(storage_error(exc, None, "read or write it"))
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def _fail(exc: JsonlBatchError) -> NoReturn:
    click.secho(f"error: {cli_terms(exc.message)}", fg="red", err=True)
    if exc.hint:
        click.echo(f"hint: {cli_terms(exc.hint)}", err=True)
    sys.exit(exc.exit_code)


def echo_json(obj: Any) -> None:
    """Print one JSON document to stdout."""
    click.echo(orjson.dumps(obj, option=orjson.OPT_INDENT_2, default=_default).decode())


def _default(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    return str(obj)


@contextmanager
def progress_bar(total_bytes: int | None, label: str) -> Iterator[Callable[[int], None]]:
    """A byte-based progress bar on stderr, shown only on a terminal (drawn by rich, like
    the job view), gone when the work is done.

    Yields ``advance(n_bytes)``. Library functions take an ``on_progress`` callback; the
    CLI passes this in.
    """
    if total_bytes is None or not sys.stderr.isatty():
        yield lambda _n: None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from ._tables import console

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console(err=True),
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=total_bytes)
        yield lambda n_bytes: progress.advance(task, n_bytes)
