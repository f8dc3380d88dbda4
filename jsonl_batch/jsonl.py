"""Streaming JSONL reader and atomic writer.

The reader splits on ``\\n`` only (binary line iteration), so U+2028, U+2029 and NEL inside
strings stay inside their line, and memory is bounded by the longest line. Each line comes
back with its number, byte offset and raw bytes, so later steps (split, merge, retry files)
can copy lines byte for byte instead of re-serialising them.

The writer writes to a temporary file next to the target and renames it into place on
success, so a crash or an exception never leaves a half-written file or clobbers the old one.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

import jiter
import orjson

from .errors import InputError

BOM = b"\xef\xbb\xbf"
_JSON_WHITESPACE = frozenset(b" \t\r\n")
# Exact duplicate-key detection at parse time; no NaN/Infinity; long unique strings are not
# worth caching.
_PARSE_OPTIONS: dict[str, Any] = {
    "catch_duplicate_keys": True,
    "allow_inf_nan": False,
    "cache_mode": False,
}
_BUFFER = 1 << 20
_SCAN = 1 << 16  # bytes read at a time looking for a line end

# Format notices a line can carry. The validator turns them into findings.
BOM_PRESENT = "bom"
CRLF = "crlf"
BLANK = "blank"
NO_FINAL_NEWLINE = "no_final_newline"
INVALID_UTF8 = "invalid_utf8"
NON_STANDARD_NUMBER = "non_standard_number"
DUPLICATE_KEY = "duplicate_key"
NOT_AN_OBJECT = "not_an_object"
INVALID_JSON = "invalid_json"


@dataclass(slots=True)
class Line:
    """One line of a JSONL file.

    ``raw`` holds the line's bytes exactly as in the file, terminator included (and the BOM
    on line 1 when there is one), so concatenating ``raw`` of every line gives the file back.
    """

    number: int
    offset: int
    raw: bytes
    obj: Any = None
    error: str | None = None
    notices: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the line parsed to a JSON object."""
        return self.error is None and isinstance(self.obj, dict)

    @property
    def content(self) -> bytes:
        """The line without its terminator and without a leading BOM."""
        raw = self.raw
        if raw.endswith(b"\n"):
            raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
        if self.number == 1 and raw.startswith(BOM):
            raw = raw[3:]
        return raw


def source_name(source: str | os.PathLike[str] | IO[bytes]) -> str:
    """A printable name for a path, ``-`` or an open stream."""
    if isinstance(source, str | os.PathLike):
        return "<stdin>" if str(source) == "-" else str(source)
    return getattr(source, "name", "<stream>")


@contextlib.contextmanager
def open_binary(source: str | os.PathLike[str] | IO[bytes]) -> Iterator[BinaryIO]:
    """Open a path, a ``.gz`` path, ``-`` (stdin) or pass through an open binary stream."""
    if not isinstance(source, str | os.PathLike):
        yield source  # type: ignore[misc]
        return
    name = str(source)
    if name == "-":
        yield sys.stdin.buffer
        return
    try:
        raw = open(name, "rb", buffering=_BUFFER)  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise InputError(f"{name}: no such file", hint="check the path") from None
    except IsADirectoryError:
        raise InputError(f"{name}: is a directory, not a JSONL file") from None
    except PermissionError:
        raise InputError(f"{name}: permission denied") from None
    try:
        if name.endswith(".gz"):
            with gzip.GzipFile(fileobj=raw) as gz:
                yield gz  # type: ignore[misc]
        else:
            yield raw
    finally:
        raw.close()


def read_lines(source: str | os.PathLike[str] | IO[bytes], *, parse: bool = True) -> Iterator[Line]:
    """Yield every line of ``source`` with its number, offset, raw bytes and parsed value.

    Never raises on bad content: parse problems are in ``Line.error`` and format quirks in
    ``Line.notices``. Raises :class:`InputError` only when the source cannot be opened or read
    (a missing file, a corrupt gzip stream).
    """
    name = source_name(source)
    with open_binary(source) as stream:
        number = 0
        offset = 0
        try:
            for raw in stream:
                number += 1
                # Fast path: an ordinary line ("{...}\n", not line 1 with its possible BOM)
                # needs no notices; anything else, or a parse error, takes the full path.
                if parse and number > 1 and raw.endswith(b"}\n"):
                    try:
                        obj = jiter.from_json(raw, **_PARSE_OPTIONS)
                    except ValueError:
                        line = _make_line(number, offset, raw, parse)
                    else:
                        line = Line(number, offset, raw, obj)
                else:
                    line = _make_line(number, offset, raw, parse)
                offset += len(raw)
                yield line
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise InputError(
                f"{name}:{number + 1}: cannot read past byte {offset}: {exc}",
                hint="the file is truncated or not really gzip; re-create it",
            ) from None


def _make_line(number: int, offset: int, raw: bytes, parse: bool) -> Line:
    notices: list[str] = []
    if raw.endswith(b"\n"):
        if raw.endswith(b"\r\n"):
            notices.append(CRLF)
    else:
        notices.append(NO_FINAL_NEWLINE)
    # The terminator is JSON whitespace, so the parser takes ``raw`` as it is (no copy).
    text = raw
    if number == 1 and raw.startswith(BOM):
        notices.append(BOM_PRESENT)
        text = raw[3:]
    if not text or (text[0] in _JSON_WHITESPACE and not text.strip()):
        notices.append(BLANK)
        return Line(number, offset, raw, None, None, tuple(notices))
    if not parse:
        return Line(number, offset, raw, None, None, tuple(notices))
    try:
        obj = jiter.from_json(text, **_PARSE_OPTIONS)
    except ValueError as exc:
        message = str(exc)
        if not message.startswith("Detected duplicate key"):
            kind, message = _classify_parse_error(text, message)
            notices.append(kind)
            return Line(number, offset, raw, None, message, tuple(notices))
        # Keep the last value, as most JSON parsers (and the services) do.
        obj = jiter.from_json(text, allow_inf_nan=False, cache_mode=False)
        key = message.split('"')[1] if '"' in message else "?"
        notices += [DUPLICATE_KEY, f"{DUPLICATE_KEY}:{key}"]
    if type(obj) is not dict:
        notices.append(NOT_AN_OBJECT)
    return Line(number, offset, raw, obj, None, tuple(notices))


def _classify_parse_error(text: bytes, message: str) -> tuple[str, str]:
    try:
        text.decode("utf-8")
    except UnicodeDecodeError as bad:
        return INVALID_UTF8, f"invalid UTF-8 at byte {bad.start} of the line"
    if _NON_STANDARD_NUMBER.search(text):
        return NON_STANDARD_NUMBER, "NaN or Infinity is not valid JSON"
    content = text.rstrip(b"\r\n")
    if content != text:  # say where on the line, not "line 2" past the terminator
        try:
            jiter.from_json(content)
        except ValueError as exc:
            message = str(exc)
    return INVALID_JSON, "not valid JSON: " + message.replace(" at line 1 column", " at column")


_NON_STANDARD_NUMBER = re.compile(rb"[:,\[]\s*-?(NaN|Infinity)\s*[,}\]]")


def duplicate_key_of(line: Line) -> str | None:
    """The duplicated key a line's notices name, if any."""
    for notice in line.notices:
        if notice.startswith(DUPLICATE_KEY + ":"):
            return notice.split(":", 1)[1]
    return None


def line_aligned_ranges(path: str | os.PathLike[str], cuts: Iterable[int]) -> list[tuple[int, int]]:
    """Cut a file into consecutive byte ranges ``(start, end)`` that begin at line starts.

    Each wanted cut moves forward to the start of the line after the one that holds it, so
    workers can take a range each and together read every line once. Ranges that would be
    empty are dropped; the ranges always cover the whole file.
    """
    size = os.path.getsize(path)
    bounds = [0]
    with open(path, "rb", buffering=0) as stream:
        for cut in cuts:
            position = max(cut, bounds[-1])
            stream.seek(position)
            while position < size:  # to the next newline, without holding a long line
                block = stream.read(_SCAN)
                found = block.find(b"\n")
                if found >= 0:
                    position += found + 1
                    break
                position += len(block) or size
            if bounds[-1] < position < size:
                bounds.append(position)
    bounds.append(size)
    return list(itertools.pairwise(bounds))


def _new_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_NEW_FILE_MODE = _new_file_mode()


def dumps_line(obj: Any) -> bytes:
    """Serialise one object as a ``\\n``-terminated JSONL line."""
    return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)


class AtomicWriter:
    """Write a file through a temporary sibling and rename it into place on success.

    Use as a context manager. On an exception inside the block, the temporary file is
    removed and the target is untouched. ``.gz`` targets are gzip-compressed.
    """

    def __init__(self, path: str | os.PathLike[str], *, overwrite: bool = True) -> None:
        self.path = Path(path)
        if not overwrite and self.path.exists():
            raise InputError(f"{self.path}: already exists", hint="pass --overwrite to replace it")
        self.lines = 0
        self.bytes = 0
        self._tmp_path: Path | None = None
        self._file: BinaryIO | None = None
        self._stream: BinaryIO | None = None

    def open(self) -> AtomicWriter:
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        except OSError as exc:
            raise InputError(f"{self.path}: cannot write here: {exc.strerror}") from None
        self._tmp_path = Path(tmp)
        os.fchmod(fd, _NEW_FILE_MODE)  # mkstemp makes 0600; give the mode open() would
        self._file = os.fdopen(fd, "wb", buffering=_BUFFER)
        self._stream = (
            gzip.GzipFile(fileobj=self._file, mode="wb", mtime=0)  # type: ignore[assignment]
            if self.path.name.endswith(".gz")
            else self._file
        )
        return self

    def __enter__(self) -> AtomicWriter:
        return self.open()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def write_raw(self, data: bytes) -> None:
        """Write bytes as they are (already a complete line, or several). Counts bytes
        only: scanning every block for newlines would cost the big writers (merge) time."""
        assert self._stream is not None, "writer is not open"
        self._stream.write(data)
        self.bytes += len(data)

    def write(self, obj: Any) -> None:
        """Write one object as one line (counted in ``lines``)."""
        self.write_raw(dumps_line(obj))
        self.lines += 1

    def fileno(self) -> int:
        """The temporary file's descriptor (for ``posix_fadvise`` and the like)."""
        assert self._file is not None, "writer is not open"
        return self._file.fileno()

    def append_file(self, path: str | os.PathLike[str], start: int = 0, end: int = -1) -> None:
        """Append bytes ``start`` to ``end`` (default: its end) of another file with an
        in-kernel copy; only for uncompressed targets."""
        if self._file is None or self._stream is not self._file:
            raise ValueError("append_file needs an open, uncompressed writer")
        target = self._file
        target.flush()
        with open(path, "rb", buffering=0) as part:
            if end < 0:
                end = os.fstat(part.fileno()).st_size
            at = start
            while at < end:
                try:
                    copied = os.copy_file_range(part.fileno(), target.fileno(), end - at, at)
                except OSError:  # no copy_file_range on this file system
                    copied = os.sendfile(target.fileno(), part.fileno(), at, end - at)
                if copied == 0:
                    break
                at += copied
        self.bytes += at - start

    def write_many(self, objects: Iterable[Any]) -> None:
        for obj in objects:
            self.write(obj)

    def commit(self) -> None:
        """Flush, fsync and rename the temporary file onto the target."""
        if self._file is None or self._tmp_path is None:
            return
        if self._stream is not self._file:
            self._stream.close()  # type: ignore[union-attr]
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp_path, self.path)
        self._file = self._stream = None
        self._tmp_path = None

    def abort(self) -> None:
        """Drop everything written so far."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        if self._tmp_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._tmp_path.unlink()
        self._file = self._stream = None
        self._tmp_path = None


def write_jsonl(path: str | os.PathLike[str], objects: Iterable[Any]) -> int:
    """Atomically write ``objects`` to ``path``, one per line. Returns the line count."""
    with AtomicWriter(path) as writer:
        writer.write_many(objects)
    return writer.lines


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Atomically replace ``path`` with ``data``."""
    with AtomicWriter(path) as writer:
        writer.write_raw(data)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Atomically write a pretty-printed JSON document (manifests, job files)."""
    atomic_write_bytes(
        path, orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    )


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a whole JSON document, with a clear error when it is missing or broken."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON: {exc}") from None


__all__ = [
    "AtomicWriter",
    "Line",
    "atomic_write_bytes",
    "atomic_write_json",
    "dumps_line",
    "line_aligned_ranges",
    "open_binary",
    "read_json",
    "read_lines",
    "write_jsonl",
]
