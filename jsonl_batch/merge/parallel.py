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
import marshal
import os
import pickle
import select
import shutil
import signal
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import MergeError
from ..jsonl import AtomicWriter
from .index import ENTRY_BYTES, FIELD16, FILE_SHIFT, USED, OutputIndex, Outputs, request_keys
from .join import Join, Span
from .summary import EXAMPLES, Problems, Tally

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
    cuts = [0]
    with open(path, "rb") as stream:
        for part in range(1, workers):
            # the first part, joined here, is a little shorter: this process then appends
            # the workers' parts as they grow (workers count the lines before theirs first)
            stream.seek(max(size * part // workers - size // 100, cuts[-1]))
            stream.readline()
            cuts.append(min(stream.tell(), size))
    cuts.append(size)
    spans = [(cuts[i], cuts[i + 1], 0) for i in range(workers) if cuts[i] < cuts[i + 1]]
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
        stream.seek(size * 53 // 100)  # the worker also sends its index back
        stream.readline()
        cut = stream.tell()
    return cut if cut < size else None


def index_in_two(outputs: Outputs, file_index: int, path: Path, readable: Path, cut: int) -> None:
    """Index ``readable`` up to ``cut`` here and from ``cut`` on in a forked worker, then add
    the worker's entries as if this process had read them itself (same duplicate rules)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: a fresh index and problem list for its half
        os.close(read_end)
        status = 0
        try:
            outputs.index.entries = {}
            approx_bytes = outputs.index.approx_bytes
            outputs.index.budget_bytes = 1 << 62  # second_half checked that it fits
            outputs.problems = Problems()
            outputs.duplicate_examples = []
            outputs.progress = lambda _n: None
            with open(readable, "rb", buffering=0) as stream:
                # line numbers only name problems: count the lines before the cut only then
                # (1, not 0, lines before it: only line 1 may start with a BOM)
                outputs.index_span(stream, file_index, path, (cut, -1, 1))
                if outputs.problems.examples:
                    outputs.index.entries = {}
                    outputs.index.approx_bytes = approx_bytes
                    outputs.problems = Problems()
                    outputs.duplicate_examples = []
                    span = (cut, -1, _count_lines(readable, cut))
                    outputs.index_span(stream, file_index, path, span)
            payload = pickle.dumps(
                (
                    marshal.dumps(outputs.index.entries),  # 10x faster than pickle for this
                    outputs.problems.counts,
                    outputs.problems.examples,
                    outputs.duplicate_examples,
                    outputs.index.approx_bytes,
                ),
                protocol=pickle.HIGHEST_PROTOCOL,
            )
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
            outputs.index_span(stream, file_index, path, (0, cut, 0))
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
    finally:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    part = pickle.loads(data) if data else "a worker died"
    del data  # peak memory: only one copy of the worker's entries at a time
    if isinstance(part, str):
        raise MergeError(f"merge worker failed: {part}")
    packed_entries, counts, examples, duplicates, their_bytes = part
    part = None
    theirs = marshal.loads(packed_entries)
    del packed_entries
    index = outputs.index
    entries = index.entries
    for key in entries.keys() & theirs.keys():  # usually none: settle them first
        entries[key] = outputs._resolve(key, entries[key], theirs.pop(key))
    entries.update(theirs)
    index.approx_bytes += their_bytes
    kept = Counter(problem.kind for problem in outputs.problems.examples)
    for problem in examples:
        if kept[problem.kind] < EXAMPLES:
            kept[problem.kind] += 1
            outputs.problems.examples.append(problem)
    outputs.problems.counts.update(counts)
    outputs.duplicate_examples.extend(duplicates[: EXAMPLES - len(outputs.duplicate_examples)])
    outputs.progress(path.stat().st_size - cut)
    if index.approx_bytes > index.budget_bytes:
        index.flush()


def run_parallel(
    make_join: Callable[[], Join], spans: list[Span], results: AtomicWriter, retry: AtomicWriter
) -> Join:
    """Fork a worker for every span but the first, join the first here, then append the
    workers' parts and counts in input order."""
    folder = Path(tempfile.mkdtemp(prefix=".jsonl-batch-merge-", dir=results.path.parent))
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
        join = make_join()
        join.run(results, retry, spans[0])
        expected = _expected_uses(join)  # while the workers finish
        for number, (pid, read_end) in enumerate(workers, start=1):
            part = folder / str(number) / "results"
            copied = _follow(results, part, read_end)
            with os.fdopen(read_end, "rb") as pipe:
                data = pipe.read()
            os.waitpid(pid, 0)
            workers[number - 1] = (0, -1)
            payload = pickle.loads(data) if data else {"error": "a worker died"}
            if "error" in payload:
                raise MergeError(f"merge worker failed: {payload['error']}")
            results.append_file(part, copied)
            retry.append_file(folder / str(number) / "retry")
            _absorb(join, payload)
            join.outputs.progress(spans[number][1] - spans[number][0])
        _settle_used_bits(join, expected)
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


def _worker(make_join: Callable[[], Join], span: Span, folder: Path, write_end: int) -> None:
    """Join one span in a forked child; report through the pipe; never return."""
    status = 0
    try:
        folder.mkdir()
        join = make_join()
        join.problems = Problems()  # the parent already holds pass 1's problems
        join.outputs.progress = lambda _n: None  # the parent's progress bar is not ours
        assert join.plan.source is not None
        lines_before = _count_lines(join.plan.source, span[0])
        with open(folder / "results", "wb") as results, open(folder / "retry", "wb") as retry:
            join.run(_PartFile(results), _PartFile(retry), (span[0], span[1], lines_before))
        payload = pickle.dumps(_partial(join))
    except BaseException as exc:  # report anything, the parent decides
        payload = pickle.dumps({"error": f"{type(exc).__name__}: {exc}"})
        status = 1
    try:
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(payload)
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


def _partial(join: Join) -> dict[str, Any]:
    """What a worker sends back to the parent (see ``_absorb``)."""
    return {
        "counts": join.total.counts,
        "groups": [(group.requests, group.counts) for group in join.groups],
        "tallies": join.tallies,
        "error_stats": join.error_stats,
        "error_where": join.error_where,
        "bad_outputs": join.bad_outputs,
        "retry_count": join.retry_count,
        "problem_counts": dict(join.problems.counts),
        "problem_examples": join.problems.examples,
        "first_uses": join.first_uses,
        "first_use_hash": join.first_use_hash,
    }


def _absorb(join: Join, part: dict[str, Any]) -> None:
    """Add a worker's counts; parts come in input order, so first examples stay first."""
    for status, count in part["counts"].items():
        join.total.counts[status] += count
    for mine, (requests, counts) in zip(join.groups, part["groups"], strict=True):
        mine.requests += requests
        for status, count in counts.items():
            mine.counts[status] += count
    for key, tally in part["tallies"].items():
        into = join.tallies.setdefault(key, Tally())
        into.usage.add(tally.usage)
        into.estimated_input_tokens += tally.estimated_input_tokens
    for code, stat in part["error_stats"].items():
        if code in join.error_stats:
            join.error_stats[code].count += stat.count
        else:
            join.error_stats[code] = stat
            join.error_where[code] = part["error_where"][code]
    join.bad_outputs.extend(part["bad_outputs"])
    join.retry_count += part["retry_count"]
    kept = Counter(problem.kind for problem in join.problems.examples)
    for problem in part["problem_examples"]:
        if kept[problem.kind] < EXAMPLES:
            kept[problem.kind] += 1
            join.problems.examples.append(problem)
    join.problems.counts.update(part["problem_counts"])
    join.first_uses += part["first_uses"]
    join.first_use_hash += part["first_use_hash"]


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


def _expected_uses(join: Join) -> tuple[int, int]:
    """How many entries have an output line, and the sum of their keys' hashes."""
    expected = claimed = 0
    for key, packed in join.outputs.index.entries.items():
        if (packed >> FILE_SHIFT) & FIELD16:
            expected += 1
            claimed += hash(key)
    return expected, claimed


def _settle_used_bits(join: Join, expected: tuple[int, int]) -> None:
    """Workers cannot set the used bit in this process's index; their counts and hash sums
    prove that every output line was claimed once. When they do not add up (unknown
    custom_ids, or one custom_id in two parts of the input), one quick pass over the input's
    custom_ids sets the bits and finds duplicates exactly."""
    entries = join.outputs.index.entries
    if expected == (join.first_uses, join.first_use_hash):
        join.all_outputs_used = True
        return
    problems = join.problems
    problems.counts["duplicate_input"] = 0
    problems.examples = [p for p in problems.examples if p.kind != "duplicate_input"]
    for key, packed in entries.items():
        if packed & USED:  # set by the first span, joined in this process
            entries[key] = packed & ~USED
    source = join.plan.source
    assert source is not None
    for number, key in request_keys(source):
        packed = entries.get(key)
        if packed is None or not (packed >> FILE_SHIFT) & FIELD16:
            continue
        if packed & USED:
            problems.add(
                "duplicate_input",
                "custom_id appears more than once in the input; every copy gets the same result",
                custom_id=key.decode("utf-8", "surrogateescape"),
                where=f"{source}:{number}",
            )
        else:
            entries[key] = packed | USED
