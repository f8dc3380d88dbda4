"""Pass 1: where each custom_id's output line is, in a fixed memory budget.

Every output/error line is read once; only ``custom_id -> packed location`` is kept (file,
byte offset, length, success or failure, shard). Keys are the custom_id's UTF-8 bytes as
they appear in the file, so the usual lines need no decoding. Above the budget the
entries move to SQLite (standard library), so memory stays fixed however big the files.

Duplicates are never dropped silently: a success beats a failure; between equals the later
file (in the order given: outputs, then errors) and the later line wins, because a later
file is usually a retry's result. Every duplicate is counted, with examples.
"""

from __future__ import annotations

import contextlib
import itertools
import marshal
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..errors import InputError, MergeError, storage_error
from ..formats.naming import MERGE_TEMP_PREFIX
from ..formats.output_lines import (
    CLOSED_LINE_ENDS,
    FAST_OUTPUT,
    PLAIN_END,
    PLAIN_SUCCESS,
    SUCCEEDED,
    classify,
)
from ..jsonl import (
    BOM,
    DEFAULT_MAX_LINE_BYTES,
    is_regular_file,
    iter_raw_lines,
    open_binary,
    skip_line,
)
from .packed import (
    FILE_BITS,
    FILE_SHIFT,
    LEN_SHIFT,
    MAX_FILES,
    OFF_SHIFT,
    PLAIN,
    RANK_FAILURE,
    RANK_SHIFT,
    RANK_SUCCESS,
    USED,
    file_of,
    membership,
    offset_of,
    rank_of,
    with_shard_of,
)
from .plan import MergePlan
from .summary import EXAMPLES, Problem, Problems

# Approximate bytes one dict entry costs (key object + int + dict slot), measured.
ENTRY_BYTES = 125
_READ = 1 << 22  # bytes of output read at once
_SPLIT = 1 << 48  # SQLite integers are 64-bit: store packed as (hi, lo)
_CHECK_PATHS = "check the paths of the output and error files"

NOT_A_REQUEST = "not a request line (no string custom_id); not joined, not retried"


def key_of(custom_id: str) -> bytes:
    """Index key of a parsed custom_id: the bytes an escape-free id has in the file."""
    return custom_id.encode("utf-8", "surrogatepass")


def text_of_key(key: bytes) -> str:
    return key.decode("utf-8", "surrogateescape")


def parse_request_key(raw: bytes | memoryview) -> tuple[bytes | None, str | None]:
    """(key, None) of a request line; (None, None) for a blank line; (None, why) for a line
    that is not exactly one JSON object with a string custom_id, as validate checks it (a
    line with more after the object included)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if not bytes(raw).strip():
            return None, None
        return None, f"not exactly one JSON object ({exc}); not joined, not retried"
    cid = obj.get("custom_id") if type(obj) is dict else None
    if type(cid) is not str:
        return None, NOT_A_REQUEST
    return key_of(cid), None


def request_keys(
    path: Path, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> Iterator[tuple[int, bytes]]:
    """(line number, custom_id key) of a request file's lines, as the join takes them
    (problems are not reported; a line over ``max_line_bytes`` has none)."""
    with open_binary(path) as stream:
        for number, raw in enumerate(iter_raw_lines(stream, max_line_bytes), 1):
            if isinstance(raw, int):
                continue
            line = raw[3:] if number == 1 and raw.startswith(BOM) else raw
            key = parse_request_key(line)[0]
            if key is not None:
                yield number, key


class OutputIndex:
    """``key -> packed`` in a dict, moved to SQLite once it outgrows ``budget_bytes``."""

    def __init__(
        self, budget_bytes: int, spill_dir: Path, resolve: Callable[[bytes, int, int], int]
    ) -> None:
        self.entries: dict[bytes, int] = {}
        self.resolve = resolve
        self.budget_bytes = budget_bytes
        self.approx_bytes = 0
        self.spill_dir = spill_dir
        self._tmp: str | None = None
        self.db: sqlite3.Connection | None = None

    @property
    def spilled(self) -> bool:
        return self.db is not None

    def note_added(self, key: bytes) -> None:
        """Account for a new entry; spill when over budget."""
        self.approx_bytes += ENTRY_BYTES + len(key)
        if self.approx_bytes > self.budget_bytes:
            self.flush()

    def flush(self) -> None:
        """Move the in-memory entries to SQLite, settling clashes with ``resolve``."""
        if self.db is None:
            self._tmp = tempfile.mkdtemp(prefix=MERGE_TEMP_PREFIX, dir=self.spill_dir)
            self.db = sqlite3.connect(os.path.join(self._tmp, "index.sqlite"))
            for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-32768"):
                self.db.execute(f"PRAGMA {pragma}")
            self.db.execute(
                "CREATE TABLE idx (cid BLOB PRIMARY KEY, hi INTEGER, lo INTEGER) WITHOUT ROWID"
            )
        items, self.entries, self.approx_bytes = self.entries, {}, 0
        pending = iter(items.items())
        while batch := list(itertools.islice(pending, 500)):
            existing = self.lookup_many([key for key, _ in batch])
            rows = []
            for key, new in batch:
                kept = self.resolve(key, existing[key], new) if key in existing else new
                rows.append((key, kept // _SPLIT, kept % _SPLIT))
            self.db.executemany("INSERT OR REPLACE INTO idx (cid, hi, lo) VALUES (?, ?, ?)", rows)
        self.db.commit()

    def lookup_many(self, keys: Sequence[bytes]) -> dict[bytes, int]:
        """Spilled entries for the given keys (absent keys are left out)."""
        assert self.db is not None
        found: dict[bytes, int] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            batch = unique[start : start + 500]
            marks = ",".join("?" * len(batch))
            for key, hi, lo in self.db.execute(
                f"SELECT cid, hi, lo FROM idx WHERE cid IN ({marks})", batch
            ):
                found[key] = hi * _SPLIT + lo
        return found

    def store(self, updates: dict[bytes, int]) -> None:
        """Write back changed spilled entries (the used bit) after a block of input lines."""
        assert self.db is not None
        self.db.executemany(
            "UPDATE idx SET hi = ?, lo = ? WHERE cid = ?",
            [(packed // _SPLIT, packed % _SPLIT, key) for key, packed in updates.items()],
        )

    def unused_outputs(self) -> Iterator[tuple[bytes, int]]:
        """Entries with an output line that no input line asked for."""
        if self.db is None:
            rows: Any = self.entries.items()
        else:
            self.db.commit()
            rows = ((key, hi * _SPLIT + lo) for key, hi, lo in self.db.execute("SELECT * FROM idx"))
        for key, packed in rows:
            if not packed & USED and file_of(packed) >= 0:
                yield key, packed

    def claim_totals(self) -> tuple[int, int]:
        """How many entries have an output line, and the sum of their keys' hashes (in
        memory only): what the joins' claims must add up to when every line was claimed."""
        count = hashes = 0
        for key, packed in self.entries.items():
            if packed & FILE_BITS:
                count += 1
                hashes += hash(key)
        return count, hashes

    def clear_claims(self) -> None:
        """Forget which entries were claimed (in memory only)."""
        entries = self.entries
        for key, packed in entries.items():
            if packed & USED:
                entries[key] = packed & ~USED

    def claim(self, key: bytes) -> bool | None:
        """Claim an entry's output line for an input line (in memory only): True the first
        time, False when already claimed, None when the key has no output line."""
        packed = self.entries.get(key)
        if packed is None or file_of(packed) < 0:
            return None
        if packed & USED:
            return False
        self.entries[key] = packed | USED
        return True

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self.entries = {}


@dataclass(slots=True)
class IndexPart:
    """What a worker found indexing part of a file, handed back to :meth:`ResultFiles.absorb`."""

    entries: bytes  # the worker's index entries, marshalled
    problem_counts: dict[str, int]
    problems: list[Problem]
    duplicates: list[tuple[bytes, int, int, str]]
    approx_bytes: int


class ResultFiles:
    """The output and error files of one merge, their index, and where their lines are."""

    def __init__(
        self,
        plan: MergePlan,
        problems: Problems,
        *,
        memory_mb: float,
        spill_dir: Path,
        on_progress: Callable[[int], None],
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        self.files = [*plan.outputs, *plan.errors]
        self.max_line_bytes = max_line_bytes
        if max(len(self.files), len(plan.shards)) > MAX_FILES:
            raise MergeError(
                f"too many files to merge at once ({len(self.files)} result files,"
                f" {len(plan.shards)} shards; the limit is {MAX_FILES})",
                hint="merge the shards in groups",
            )
        self.problems = problems
        self.index = OutputIndex(int(memory_mb * 1024 * 1024), spill_dir, self._resolve)
        self.progress = on_progress
        self.duplicate_examples: list[tuple[bytes, int, int, str]] = []
        self.readable: list[Path] = []  # the files, with .gz ones unpacked to temp files
        self.fds: list[int] = []  # the readable files, open for pass 2's preads
        self.line_numbers: dict[tuple[int, int], int] = {}
        self._tmp_files: list[Path] = []

    def for_worker(self) -> ResultFiles:
        """A twin for a forked worker that indexes part of a file: the same files, an
        empty index without a memory budget (the caller checked that the part fits), its
        own problems, no progress reports."""
        twin = ResultFiles.__new__(ResultFiles)
        twin.files = self.files
        twin.max_line_bytes = self.max_line_bytes
        twin.problems = Problems()
        twin.index = OutputIndex(1 << 62, self.index.spill_dir, twin._resolve)
        twin.progress = lambda _n: None
        twin.duplicate_examples = []
        twin.readable = self.readable
        twin.fds = []
        twin.line_numbers = {}
        twin._tmp_files = []
        return twin

    def index_part(self) -> IndexPart:
        """What this (worker's) twin found, to send to the parent."""
        return IndexPart(
            marshal.dumps(self.index.entries),  # 10x faster than pickle for this
            dict(self.problems.counts),
            self.problems.examples,
            self.duplicate_examples,
            self.index.approx_bytes,
        )

    def absorb(self, part: IndexPart) -> None:
        """Add a worker's entries as if this process had read them (same duplicate rules);
        the worker's part of the file comes after what this process read."""
        theirs = marshal.loads(part.entries)
        part.entries = b""  # peak memory: one copy of the worker's entries at a time
        index = self.index
        entries = index.entries
        for key in entries.keys() & theirs.keys():  # usually none: settle them first
            entries[key] = self._resolve(key, entries[key], theirs.pop(key))
        entries.update(theirs)
        index.approx_bytes += part.approx_bytes
        self.problems.absorb(part.problem_counts, part.problems)
        room = EXAMPLES - len(self.duplicate_examples)
        self.duplicate_examples.extend(part.duplicates[: max(0, room)])
        if index.approx_bytes > index.budget_bytes:
            index.flush()

    def index_membership(self, plan: MergePlan) -> None:
        """Record which shard each custom_id was sent in (reads the shard files)."""
        entries = self.index.entries
        for pos, shard in enumerate(plan.shards):
            if shard.path is None or not shard.path.exists():
                plan.notes.append(
                    f"shard {shard.index}: shard file missing; its requests count as unsharded"
                )
                continue
            for _number, key in request_keys(shard.path, self.max_line_bytes):
                if key not in entries:
                    entries[key] = membership(pos)
                    self.index.note_added(key)

    def open_next(self) -> tuple[int, Path, Path]:
        """The next result file to index: (its index, its path, a plain file to read: a
        ``.gz`` is unpacked to a temporary file first)."""
        file_index = len(self.readable)
        path = self.files[file_index]
        readable = self._seekable(path)
        self.readable.append(readable)
        return file_index, path, readable

    def index_file(self, file_index: int, path: Path, readable: Path) -> None:
        """Index a whole result file in this process."""
        with open(readable, "rb", buffering=0) as stream:
            self.index_span(stream, file_index, path)

    def finish_indexing(self) -> None:
        """After the last file: settle a spilled index, open the files for pass 2's reads."""
        if self.index.spilled:
            self.index.flush()
        self.fds = [os.open(path, os.O_RDONLY) for path in self.readable]

    def index_span(
        self, stream: Any, file_index: int, path: Path, span: tuple[int, int, int] = (0, -1, 0)
    ) -> None:
        """The hot loop of pass 1, over 4 MB chunks of the file (or of ``span``: first byte,
        end byte, lines before it): lines in the services' key order are recognised by a
        regex without being copied or parsed; others are parsed. Broken JSON further in is
        found in pass 2."""
        index = self.index
        budget = index.budget_bytes
        entries = index.entries
        fast_match = FAST_OUTPUT.match
        plain_match = PLAIN_SUCCESS.match
        file_bits = (file_index + 1) << FILE_SHIFT
        plain_bits = file_bits | PLAIN | (RANK_SUCCESS << RANK_SHIFT)
        base, stop, number = span  # file offset of chunk[0], where to stop, lines so far
        stream.seek(base)
        remaining = stop - base if stop >= 0 else -1
        rest = b""
        max_line = self.max_line_bytes
        while True:
            data = stream.read(_READ if remaining < 0 else min(_READ, remaining))
            remaining -= len(data)
            chunk = rest + data if rest else data
            if not chunk:
                break
            end = chunk.rfind(b"\n") + 1 if data else len(chunk)
            if not end and len(chunk) > max_line:  # one line longer than the cap: skip it
                skipped, _after = skip_line(stream)
                number += 1
                self._too_long(path, number)
                base += len(chunk) + skipped
                stream.seek(base)
                remaining = stop - base if stop >= 0 else -1
                rest = b""
                self.progress(len(chunk) + skipped)
                continue
            find = chunk.find
            pos = 0
            while pos < end:
                line_end = find(b"\n", pos, end) + 1 or end
                number += 1
                if line_end - pos > max_line:
                    self._too_long(path, number)
                    pos = line_end
                    continue
                found = plain_match(chunk, pos, line_end)
                if found is not None and chunk.endswith(PLAIN_END, pos, line_end):
                    key = found.group(1)
                    bits = plain_bits
                elif (found := fast_match(chunk, pos, line_end)) is not None and chunk.endswith(
                    CLOSED_LINE_ENDS, pos, line_end
                ):
                    key = found.group(1)
                    rank = RANK_SUCCESS if found.group(2) == b"200" else RANK_FAILURE
                    bits = file_bits | (rank << RANK_SHIFT)
                else:
                    parsed = self._parse_output(chunk[pos:line_end], number, path)
                    if parsed is None:
                        pos = line_end
                        continue
                    key, rank = parsed
                    bits = file_bits | (rank << RANK_SHIFT)
                packed = ((base + pos) << OFF_SHIFT) | ((line_end - pos) << LEN_SHIFT) | bits
                old = entries.get(key)
                if old is None:
                    entries[key] = packed
                    index.approx_bytes += ENTRY_BYTES + len(key)
                    if index.approx_bytes > budget:
                        index.flush()
                        entries = index.entries
                else:
                    entries[key] = self._resolve(key, old, packed)
                pos = line_end
            self.progress(end)
            base += end
            if end and data and end < len(chunk):  # read the cut line again: no chunk copy
                stream.seek(end - len(chunk), os.SEEK_CUR)
                remaining += len(chunk) - end if remaining >= 0 else 0
                rest = b""
            else:
                rest = chunk[end:]

    def _parse_output(self, raw: bytes, number: int, path: Path) -> tuple[bytes, int] | None:
        """Key and rank of an output line the regex did not recognise."""
        text = raw[3:] if number == 1 and raw.startswith(BOM) else raw
        if text.isspace():
            return None
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            self.problems.add(
                "invalid_output_line", f"not valid JSON: {exc}", where=f"{path}:{number}"
            )
            return None
        cid = obj.get("custom_id") if type(obj) is dict else None
        if type(cid) is not str:
            self.problems.add(
                "invalid_output_line",
                "not an output line (no string custom_id)",
                where=f"{path}:{number}",
            )
            return None
        success = classify(obj).status == SUCCEEDED
        return key_of(cid), RANK_SUCCESS if success else RANK_FAILURE

    def _resolve(self, key: bytes, old: int, new: int) -> int:
        """Pick the winner of two entries for one custom_id and count the duplicate.

        A success beats a failure; between equals the later one (later file, later line)
        wins. Membership placeholders (no output line) only lend their shard.
        """
        if file_of(new) < 0:
            return old
        if file_of(old) < 0:
            return with_shard_of(new, old)
        rank_new, rank_old = rank_of(new), rank_of(old)
        winner, loser = (new, old) if rank_new >= rank_old else (old, new)
        self.problems.counts["duplicate_output"] += 1
        if len(self.duplicate_examples) < EXAMPLES:
            reason = (
                "a success beats a failure"
                if rank_new != rank_old
                else "between equals the later file/line wins"
            )
            self.duplicate_examples.append((key, winner, loser, reason))
        return with_shard_of(winner, old)

    def _seekable(self, path: Path) -> Path:
        """A plain file to map: a ``.gz`` output is unpacked, and a pipe or a device copied,
        to a temporary file in the merge's staging folder first. Lines over the cap are
        reported here and copied as empty lines (line numbers stay right), so the copy never
        grows with a line that does not end (``/dev/zero``)."""
        if not path.exists():
            raise InputError(f"{path}: no such file", hint=_CHECK_PATHS)
        if path.is_dir():
            raise InputError(f"{path}: is a directory, not an output file", hint=_CHECK_PATHS)
        if not path.name.endswith(".gz") and is_regular_file(path):
            return path
        try:
            fd, tmp = tempfile.mkstemp(
                prefix=MERGE_TEMP_PREFIX, suffix=".jsonl", dir=self.index.spill_dir
            )
        except OSError as exc:
            raise storage_error(exc, self.index.spill_dir, "write a temporary file") from None
        self._tmp_files.append(Path(tmp))
        with open_binary(path) as stream:
            try:
                with os.fdopen(fd, "wb", buffering=1 << 20) as out:
                    lines = iter_raw_lines(stream, self.max_line_bytes)
                    for number, raw in enumerate(lines, 1):
                        if isinstance(raw, int):
                            self._too_long(path, number)
                            raw = b"\n"
                        out.write(raw)
            except OSError as exc:
                raise storage_error(exc, tmp, f"write a temporary copy of {path}") from None
        return Path(tmp)

    def _too_long(self, path: Path, number: int) -> None:
        self.problems.add(
            "invalid_output_line",
            f"line is longer than {self.max_line_bytes:,} bytes (max_line_bytes); skipped",
            where=f"{path}:{number}",
        )

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        self.index.close()
        for tmp in self._tmp_files:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def describe_duplicates(self) -> None:
        """Report kept duplicate examples with file:line of both lines."""
        for key, winner, loser, reason in self.duplicate_examples:
            kept, dropped = self.where(winner), self.where(loser)
            self.problems.examples.append(
                Problem(
                    "duplicate_output",
                    f"custom_id appears more than once; kept {kept}, ignored {dropped} ({reason})",
                    custom_id=text_of_key(key),
                    where=kept,
                )
            )

    def where(self, packed: int) -> str:
        """``file:line`` of an entry's output line (found by ``locate``)."""
        file_index = file_of(packed)
        if file_index < 0:
            return "?"
        key = (file_index, offset_of(packed))
        line = self.line_numbers.get(key)
        return f"{self.files[file_index]}:{line}" if line else f"{self.files[file_index]}@{key[1]}"

    def locate(self, packed_entries: list[int]) -> None:
        """Find line numbers for the entries an example names: one pass per file involved."""
        wanted: dict[int, set[int]] = {}
        for packed in packed_entries:
            if file_of(packed) >= 0:
                wanted.setdefault(file_of(packed), set()).add(offset_of(packed))
        for file_index, offsets in wanted.items():
            for offset, line in _line_numbers(self.readable[file_index], offsets).items():
                self.line_numbers[(file_index, offset)] = line


def _line_numbers(path: Path, offsets: set[int]) -> dict[int, int]:
    """1-based line numbers of the lines starting at the given byte offsets."""
    targets = sorted(offsets)
    found: dict[int, int] = {}
    newlines = position = at = 0
    with open(path, "rb") as stream:
        while at < len(targets):
            chunk = stream.read(1 << 20)
            if not chunk:
                break
            end = position + len(chunk)
            while at < len(targets) and targets[at] <= end:
                found[targets[at]] = newlines + chunk.count(b"\n", 0, targets[at] - position) + 1
                at += 1
            newlines += chunk.count(b"\n")
            position = end
    return found
