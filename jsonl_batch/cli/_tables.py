"""Every table the command line prints, drawn one way with rich (a well-kept library that
aligns, styles only on a terminal, and also draws the live job view): a header row,
numbers right-aligned, two spaces between columns, no frame, so the text reads the same
in a terminal, a log or a pipe.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

# Off a terminal nothing wraps: a log or a pipe gets every table row on one line.
_UNBOUNDED_WIDTH = 10_000


def console(*, err: bool = False) -> Console:
    """A console on the current stdout (or stderr): the terminal's width on a terminal,
    unbounded elsewhere. Made per call, since tests swap the streams."""
    stream = sys.stderr if err else sys.stdout
    out = Console(file=stream, highlight=False, markup=False, emoji=False)
    if not out.is_terminal:
        out.width = _UNBOUNDED_WIDTH
    return out


def new_table(*headers: str, numeric: Iterable[str] = ()) -> Table:
    """A table with these column headers; the ``numeric`` ones are right-aligned."""
    right = set(numeric)
    table = Table(box=None, pad_edge=False, header_style="bold", highlight=False, show_edge=False)
    for header in headers:
        table.add_column(
            header,
            justify="right" if header in right else "left",
            no_wrap=header in right,
        )
    return table


def add_row(table: Table, cells: Iterable[RenderableType], *, style: str | None = None) -> None:
    """Strings go in as plain text, never rich markup: ``[completed]`` stays as written."""
    table.add_row(*(Text(c) if isinstance(c, str) else c for c in cells), style=style)


def print_table(renderable: RenderableType, *, err: bool = False) -> None:
    out = console(err=err)
    if out.is_terminal:
        out.print(renderable)
        return
    with out.capture() as captured:
        out.print(renderable)
    # a cell is padded to its column's width; a log has no use for the trailing blanks
    out.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
