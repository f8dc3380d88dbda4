"""How a job looks on the command line: the ``status`` table, and the live view of
``submit`` and ``wait``.

On a terminal the live view redraws in place (rich's ``Live``): a row per shard with its
status, a bar, requests done and failed of the total, elapsed time, an ETA from the rate
observed so far, the deployment and the batch, and one summary line naming the resource.
Anywhere else (CI, a log, a pipe) it prints plain lines, one per change, with no escape
codes. The library only reports (``on_event``, ``on_poll``, ``on_upload``); this module
draws.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlparse

import click
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..display import clock_time, count, duration, number, percent, short_id, size
from ..formats.batch import TERMINAL_STATUSES
from ..service.job import Job
from ._tables import add_row, new_table, print_table

_STATUS_STYLES = {
    "completed": "green",
    "failed": "red",
    "expired": "red",
    "cancelled": "yellow",
    "cancelling": "yellow",
    "in_progress": "cyan",
    "finalizing": "cyan",
}
# Plain output reports an upload's progress at these shares, for shards this large.
_PLAIN_UPLOAD_STEPS = (0.25, 0.5, 0.75)
LARGE_UPLOAD_BYTES = 32 * 1000 * 1000
_BAR_WIDTH = 20


def resource(job: Job) -> str:
    """The service a job talks to, as people name it: the endpoint's host (the resources'
    names for a multi-resource job, those down marked so)."""
    if job.data.resources:
        rows = job.resource_summary()
        names = [name + (" (down)" if row["down"] else "") for name, row in rows.items()]
        return f"{len(names)} resources ({', '.join(names)})"
    endpoint = job.data.connection.endpoint
    return urlparse(endpoint).netloc or endpoint


def error_codes(row: dict[str, Any]) -> str:
    """The batch's error codes, each once (``model_not_found``), or ``-``."""
    codes = dict.fromkeys(str(e.get("code") or "error") for e in row["errors"])
    return ", ".join(codes) or "-"


def summary_line(job: Job) -> str:
    """``job job_x on host: 1 completed, 2 in_progress; 9,000 ok, 12 failed of 10,000
    requests``."""
    summary = job.summary()
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(summary["statuses"].items()))
    return (
        f"job {summary['job_id']} on {resource(job)}: {statuses};"
        f" {number(summary['completed'])} ok, {number(summary['failed'])} failed"
        f" of {count(summary['requests'], 'request')}"
    )


@dataclass
class _Seen:
    """When a shard's batch was first seen running, and how many requests it had done."""

    batch_id: str | None
    since: float
    done: int


@dataclass
class ProgressState:
    """What the live view knows beyond the job file: uploads in flight and observed rates."""

    clock: Callable[[], float] = time.monotonic
    uploads: dict[int, tuple[int, int]] = field(default_factory=dict)
    seen: dict[int, _Seen] = field(default_factory=dict)

    def observe(self, job: Job) -> None:
        now = self.clock()
        for row in job.iter_rows():
            done = row["completed"] + row["failed"]
            seen = self.seen.get(row["index"])
            if row["status"] == "in_progress" and (
                seen is None or seen.batch_id != row["batch_id"] or done < seen.done
            ):
                self.seen[row["index"]] = _Seen(row["batch_id"], now, done)

    def eta(self, row: dict[str, Any]) -> float | None:
        """Seconds left at the rate seen since the shard was first seen running; before that
        rate shows, at the rate since it was submitted."""
        if row["status"] != "in_progress":
            return None
        done = row["completed"] + row["failed"]
        seen = self.seen.get(row["index"])
        now = self.clock()
        if seen is not None and seen.batch_id == row["batch_id"] and done > seen.done:
            per_second = (done - seen.done) / max(now - seen.since, 1e-9)
        elif done and row["elapsed_seconds"]:
            per_second = done / row["elapsed_seconds"]
        else:
            return None
        return (row["total"] - done) / per_second


def shard_table(job: Job, state: ProgressState | None = None) -> Table:
    """One row per shard; with ``state`` (the live view) also a bar, the ETA and uploads."""
    live = state is not None
    several = bool(job.data.resources)
    headers = ["shard", *(["resource"] if several else []), "deployment", "status"]
    headers += [*([""] if live else []), "done", "failed"]
    headers += ["elapsed", *(["eta"] if live else []), "error", "batch"]
    table = new_table(*headers, numeric=("shard", "done", "failed", "elapsed", "eta"))
    for row in job.iter_rows():
        done = row["completed"] + row["failed"]
        progress = f"{number(done)}/{number(row['total'])} {percent(row['progress'])}"
        bar = ProgressBar(total=max(row["total"], 1), completed=done, width=_BAR_WIDTH)
        upload = state.uploads.get(row["index"]) if state is not None else None
        if upload is not None and row["status"] == "uploading":
            sent, total = upload
            bar = ProgressBar(total=max(total, 1), completed=sent, width=_BAR_WIDTH)
            progress = f"{size(sent)}/{size(total)}"
        eta = state.eta(row) if state is not None else None
        status = Text(row["status"], style=_STATUS_STYLES.get(row["status"], ""))
        cells: list[RenderableType] = [str(row["index"])]
        cells += [*([row["resource"] or "-"] if several else []), row["deployment"] or "-", status]
        cells += [*([bar] if live else []), progress, number(row["failed"])]
        cells += [duration(row["elapsed_seconds"]), *([duration(eta)] if live else [])]
        add_row(table, [*cells, error_codes(row), short_id(row["batch_id"])])
    return table


def print_status(job: Job) -> None:
    """The ``status`` table and the job's summary line, on stdout."""
    print_table(shard_table(job))
    click.echo(summary_line(job) + ("; all results downloaded" if job.done else ""))


class JobProgress:
    """Shows a running job: the live view on a terminal, plain lines elsewhere.

    Hand :meth:`event`, :meth:`poll` and :meth:`upload` to the library as ``on_event``,
    ``on_poll`` and ``on_upload``; use it as a context manager around the calls."""

    def __init__(self, console: Console, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.live_mode = console.is_terminal
        self.state = ProgressState(clock=clock)
        self._job: Job | None = None
        self._live: Live | None = None
        self._printed: dict[Any, Any] = {}

    # the library's callbacks

    def event(self, message: str) -> None:
        self.console.print(Text(message))

    def poll(self, job: Job) -> None:
        self._job = job
        self.state.observe(job)
        if self._live is not None:
            self._live.refresh()
        else:
            self._print_changes(job)

    def upload(self, index: int, sent: int, total: int) -> None:
        """Live: the bar moves with the next redraw. Plain: a line at each quarter of a
        large shard."""
        before = self.state.uploads.get(index, (0, total))[0]
        self.state.uploads[index] = (sent, total)
        if self._live is not None or total < LARGE_UPLOAD_BYTES:
            return
        if any(before < step * total <= sent for step in _PLAIN_UPLOAD_STEPS):
            share = percent(sent / total)
            self.console.print(
                Text(f"shard {index}: uploading, {size(sent)} of {size(total)} ({share})")
            )

    # drawing

    def render(self) -> RenderableType:
        """The live view: the shard table and the job's line (or, while ``submit`` uploads
        and there is no job to show yet, the uploads)."""
        if self._job is None:
            return self._upload_view()
        job = self._job
        rows = list(job.iter_rows())
        elapsed = [row["elapsed_seconds"] for row in rows if row["elapsed_seconds"] is not None]
        etas = [eta for eta in map(self.state.eta, rows) if eta is not None]
        line = summary_line(job)
        if elapsed:
            line += f"; elapsed {duration(max(elapsed))}"
        if etas:
            line += f", ETA {duration(max(etas))}"
        return Group(shard_table(job, self.state), Text(line, style="bold"))

    def _upload_view(self) -> RenderableType:
        if not self.state.uploads:
            return Text("")
        table = new_table("shard", "", "uploaded", numeric=("shard", "uploaded"))
        for index, (sent, total) in sorted(self.state.uploads.items()):
            bar = ProgressBar(total=max(total, 1), completed=sent, width=_BAR_WIDTH)
            add_row(table, [str(index), bar, f"{size(sent)}/{size(total)}"])
        return table

    def _print_changes(self, job: Job) -> None:
        stamp = clock_time(time.time())
        for row in job.iter_rows():
            key = (row["status"], row["completed"], row["failed"])
            seen = self._printed.get(row["index"]) == key
            self._printed[row["index"]] = key
            if seen or row["status"] in TERMINAL_STATUSES:  # the library's event says those
                continue
            done = row["completed"] + row["failed"]
            self.console.print(
                Text(
                    f"[{stamp}] shard {row['index']} ({row['deployment'] or '-'}): {row['status']},"
                    f" {number(done)}/{number(row['total'])} done, {number(row['failed'])} failed"
                    + (f"; {error_codes(row)}" if row["errors"] else "")
                )
            )
        line = summary_line(job)
        if self._printed.get("job") != line:
            self._printed["job"] = line
            self.console.print(Text(f"[{stamp}] {line}"))

    # context

    def __enter__(self) -> JobProgress:
        if self.live_mode:
            self._live = Live(
                get_renderable=self.render,
                console=self.console,
                transient=True,
                refresh_per_second=2,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
