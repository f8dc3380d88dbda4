"""Both passes on several cores (Linux, files over 64 MB, no other threads running).

Pass 1: a forked worker indexes the second half of a big output file and sends its entries
back; they are added with the same duplicate rules, as if read here. Pass 2: the request
file is cut into parts at line ends; this process joins the first part straight into the
results, forked workers (sharing the index copy-on-write) join the others into part files
and send back their counts; the parts are appended in input order (each while its worker
is still writing it), so the results are byte-identical to a one-process run.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ..errors import MergeError
from ..formats.naming import MERGE_TEMP_PREFIX
from ..jsonl import AtomicWriter, line_aligned_ranges
from .index import ENTRY_BYTES, OutputIndex, ResultFiles
from .join import Join, JoinPart, Span
from .summary import Problems

MakeJoin = Callable[[Problems | None, Callable[[int], None] | None], Join]
"""Makes a join: with its own problems and progress (a worker's), or None for the shared."""

PARALLEL_MIN_BYTES = 64 << 20


def default_workers(source_bytes: int) -> int:
    """Processes for pass 2: up to 4 cores for sources over 64 MB on Linux, else 1.

    Workers are forked (they share the index copy-on-write), so only where fork is safe and
    cheap; a process with other threads running stays serial whatever this says.
    """
    if sys.platform != "linux" or source_bytes < PARALLEL_MIN_BYTES:
        return 1
    return max(1, min(4, len(os.sched_getaffinity(0))))


def input_spans(path: Path, workers: int) -> list[Span] | None:
    """(start byte, end byte, 0) of ``workers`` parts cut at line ends; each worker counts
    the lines before its part itself, in parallel."""
    if path.name.endswith(".gz") or not path.is_file():
        return None
    size = path.stat().st_size
    # the first part, joined here, is a little shorter: this process then appends the
    # workers' parts as they grow (workers count the lines before theirs first)
    cuts = [size * part // workers - size // 100 for part in range(1, workers)]
    spans = [(start, end, 0) for start, end in line_aligned_ranges(path, cuts)]
    return spans if len(spans) > 1 else None


def second_half(path: Path, index: OutputIndex) -> int | None:
    """Where a worker should start indexing a big output file, or None: small files, and
    files whose index would not fit the memory budget in one piece (they spill instead)."""
    size = path.stat().st_size
    if size < PARALLEL_MIN_BYTES or index.spilled:
        return None
    with open(path, "rb") as stream:
        sample = stream.read(1 << 20)
    lines = sample.count(b"\n") or 1
    if (size * lines // len(sample)) * (ENTRY_BYTES + 16) > index.budget_bytes:
        return None
    ranges = line_aligned_ranges(path, [size * 53 // 100])  # the worker also sends its index
    return ranges[1][0] if len(ranges) > 1 else None


def index_result_files(files: ResultFiles, workers: int) -> None:
    """Pass 1 over every output and error file; with ``workers`` > 1 the second half of a big
    file is indexed by a forked worker."""
    for _ in files.files:
        file_index, path, readable = files.open_next()
        cut = second_half(readable, files.index) if workers > 1 else None
        if cut is None:
            files.index_file(file_index, path, readable)
        else:
            _index_in_two(files, file_index, path, readable, cut)
    files.finish_indexing()


def _index_in_two(
    files: ResultFiles, file_index: int, path: Path, readable: Path, cut: int
) -> None:
    """Index ``readable`` up to ``cut`` here and from ``cut`` on in a forked worker, then add
    the worker's entries as if this process had read them itself (same duplicate rules)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: a twin with a fresh index and problem list for its half
        os.close(read_end)
        status = 0
        try:
            with open(readable, "rb", buffering=0) as stream:
                # line numbers only name problems: count the lines before the cut only then
                # (1, not 0, lines before it: only line 1 may start with a BOM)
                twin = files.for_worker()
                twin.index_span(stream, file_index, path, (cut, -1, 1))
                if twin.problems.examples:
                    twin = files.for_worker()
                    span = (cut, -1, _count_lines(readable, cut))
                    twin.index_span(stream, file_index, path, span)
            payload = pickle.dumps(twin.index_part(), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:  # report anything, the parent decides
            payload = pickle.dumps(f"{type(exc).__name__}: {exc}")
            status = 1
        try:
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(payload)
        finally:
            os._exit(status)
    os.close(write_end)
    try:
        with open(readable, "rb", buffering=0) as stream:
            files.index_span(stream, file_index, path, (0, cut, 0))
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
    finally:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    part = pickle.loads(data) if data else "a worker died"
    del data  # peak memory: only one copy of the worker's entries at a time
    if isinstance(part, str):
        raise MergeError(f"merge worker failed: {part}")
    files.absorb(part)
    del part
    files.progress(path.stat().st_size - cut)


def run_parallel(
    make_join: MakeJoin, spans: list[Span], results: AtomicWriter, retry: AtomicWriter
) -> Join:
    """Fork a worker for every span but the first, join the first here, then append the
    workers' parts and counts in input order."""
    folder = Path(tempfile.mkdtemp(prefix=MERGE_TEMP_PREFIX, dir=results.path.parent))
    workers: list[tuple[int, int]] = []
    try:
        for number, span in enumerate(spans[1:], start=1):
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # the worker
                os.close(read_end)
                _worker(make_join, span, folder / str(number), write_end)
            os.close(write_end)
            workers.append((pid, read_end))
        join = make_join(None, None)
        join.run(results, retry, spans[0])
        expected = join.outputs.index.claim_totals()  # while the workers finish
        for number, (pid, read_end) in enumerate(workers, start=1):
            part_path = folder / str(number) / "results"
            copied = _follow(results, part_path, read_end)
            with os.fdopen(read_end, "rb") as pipe:
                data = pipe.read()
            os.waitpid(pid, 0)
            workers[number - 1] = (0, -1)
            part = pickle.loads(data) if data else "a worker died"
            if isinstance(part, str):
                raise MergeError(f"merge worker failed: {part}")
            results.append_file(part_path, copied)
            retry.append_file(folder / str(number) / "retry")
            join.absorb(part)
            join.on_progress(spans[number][1] - spans[number][0])
        join.settle_claims(expected)
        return join
    finally:
        for pid, read_end in workers:  # only on an error: stop what is still running
            if pid:
                os.close(read_end)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
        shutil.rmtree(folder, ignore_errors=True)


class _PartFile:
    """A plain binary file with the ``write_raw`` a join writes to."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file

    def write_raw(self, data: bytes) -> None:
        self.file.write(data)


def _worker(make_join: MakeJoin, span: Span, folder: Path, write_end: int) -> None:
    """Join one span in a forked child; report through the pipe; never return."""
    status = 0
    payload: JoinPart | str
    try:
        folder.mkdir()
        # its own problems (the parent already holds pass 1's), no progress reports
        join = make_join(Problems(), lambda _n: None)
        assert join.plan.source is not None
        lines_before = _count_lines(join.plan.source, span[0])
        with open(folder / "results", "wb") as results, open(folder / "retry", "wb") as retry:
            join.run(_PartFile(results), _PartFile(retry), (span[0], span[1], lines_before))
        payload = join.part()
    except BaseException as exc:  # report anything, the parent decides
        payload = f"{type(exc).__name__}: {exc}"
        status = 1
    try:
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(pickle.dumps(payload))
    finally:
        os._exit(status)


def _count_lines(path: Path, end: int) -> int:
    """Lines before byte ``end``, read into one reused buffer (no 4 MB allocation a read)."""
    lines = position = 0
    buffer = bytearray(1 << 22)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as stream:
        while position < end:
            size = stream.readinto(view[: min(1 << 22, end - position)])
            if not size:
                break
            lines += buffer.count(b"\n", 0, size)
            position += size
    return lines


def _follow(writer: AtomicWriter, path: Path, pipe: int) -> int:
    """Append a running worker's part file as it grows, until the worker reports (its part
    is then complete): the copy overlaps the worker's join instead of following it. Returns
    the bytes appended. A file's bytes below its size are written, so a copy up to the size
    read just before is safe."""
    target = writer.fileno()
    copied = 0
    while not select.select([pipe], [], [], 0.02)[0]:
        with contextlib.suppress(FileNotFoundError):  # the worker has not opened it yet
            size = path.stat().st_size
            if size - copied >= 1 << 22:
                writer.append_file(path, copied, size)
                copied = size
                # start the disk write-back: the final fsync has less to wait for
                os.posix_fadvise(target, 0, 0, os.POSIX_FADV_DONTNEED)
    return copied
