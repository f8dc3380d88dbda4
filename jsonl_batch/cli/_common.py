"""Shared pieces of the CLI: output format option, error handling, JSON output, progress."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
import orjson

from ..errors import JsonlBatchError

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


target_option = click.option(
    "--target",
    type=click.Choice(["azure", "openai", "litellm"]),
    default="azure",
    show_default=True,
    help="Which service the file is for; decides limits, allowed urls and error codes.",
)


def handle_errors(func: F) -> F:
    """Turn a JsonlBatchError into a one-line message and its exit code, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except JsonlBatchError as exc:
            click.secho(f"error: {exc.message}", fg="red", err=True)
            if exc.hint:
                click.echo(f"hint: {exc.hint}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


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
    """A byte-based progress bar on stderr, shown only on a terminal.

    Yields ``advance(n_bytes)``. Library functions take an ``on_progress`` callback; the
    CLI passes this in.
    """
    if total_bytes is None or not sys.stderr.isatty():
        yield lambda _n: None
        return
    with click.progressbar(length=total_bytes, label=label, file=sys.stderr, show_eta=True) as bar:
        yield bar.update
