"""Streaming JSONL reader and atomic writer.

The reader splits on ``\\n`` only (binary line iteration), so U+2028, U+2029 and NEL inside
strings stay inside their line. Each line comes back with its number, byte offset and raw
bytes, so later steps (split, merge, retry files) can copy lines byte for byte instead of
re-serialising them. Memory is bounded whatever the bytes: a line longer than
``max_line_bytes`` is not kept (it comes back as one ``line_too_long`` line and reading goes
on after its newline), and a broken ``.gz`` is an :class:`InputError`, never a traceback.

The writer writes to a temporary file next to the target and renames it into place on
success, so a crash or an exception never leaves a half-written file or clobbers the old one.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import itertools
import os
import re
import stat
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

import jiter
import orjson

from .errors import InputError, storage_error

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
_PIECE = 1 << 20  # a long line is read in pieces of this size, so one over the cap is never whole
_SPOOL_BYTES = 16 << 20  # past this, a line's pieces wait on disk until the line ends
# The longest line the readers keep. No service accepts a longer one: a line cannot be longer
# than the file that holds it, and a batch input file is at most 200 MB on Azure OpenAI and on
# OpenAI (research/batch-api-spec.md section 1: Azure "Maximum input file size 200 MB"
# [AZ-LIMITS]; OpenAI "up to 200 MB" [OAI-GUIDE][OAI-SDK files.create]). Azure's
# bring-your-own-storage files (1 GB) need a larger --max-line-bytes.
DEFAULT_MAX_LINE_BYTES = 256 * 1024 * 1024
# What reading a file can raise besides OSError: a truncated gzip stream (EOFError), a
# corrupt one (zlib.error); gzip.BadGzipFile is an OSError.
READ_ERRORS = (OSError, EOFError, zlib.error)

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
LINE_TOO_LONG = "line_too_long"


@dataclass(slots=True)
class Line:
    """One line of a JSONL file.

    ``raw`` holds the line's bytes exactly as in the file, terminator included (and the BOM
    on line 1 when there is one), so concatenating ``raw`` of every line gives the file back.
    A line longer than the reader's ``max_line_bytes`` is the exception: its ``raw`` is empty,
    ``dropped`` holds its length and ``notices`` has ``line_too_long``.
    """

    number: int
    offset: int
    raw: bytes
    obj: Any = None
    error: str | None = None
    notices: tuple[str, ...] = ()
    dropped: int = 0

    @property
    def size(self) -> int:
        """The line's length in the file, in bytes (terminator included)."""
        return len(self.raw) + self.dropped

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


class ReadError(InputError):
    """A file could not be read to its end (a truncated or corrupt ``.gz``, a disk error).

    ``position`` is how many (uncompressed) bytes were read before it; ``reason`` is why.
    """

    def __init__(self, name: str, position: int, reason: str) -> None:
        super().__init__(
            f"{name}: cannot read past byte {position}: {reason}", hint=_read_hint(name)
        )
        self.name = name
        self.position = position
        self.reason = reason


def _read_hint(name: str) -> str:
    if name.endswith(".gz"):
        return "the file is truncated, corrupt or not really gzip; re-create it"
    return "check the disk and the file; re-create it if it was cut short"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "the compressed stream ends early (the file is truncated)"
    if isinstance(exc, zlib.error):
        return f"corrupt compressed data ({exc})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class _Guarded:
    """A binary stream whose read failures are :class:`ReadError` naming the file.

    ``seekable()`` is True only for a plain file: a pipe cannot seek, and a gzip stream
    "seeks" backwards by decompressing again from the start."""

    def __init__(self, stream: BinaryIO, name: str, *, compressed: bool) -> None:
        self._stream = stream
        self.name = name
        self._position = 0
        self._seekable = not compressed and stream.seekable()

    def _failed(self, exc: BaseException) -> ReadError:
        position = self._position
        with contextlib.suppress(*READ_ERRORS, ValueError):  # how far a gzip stream got
            position = max(position, self._stream.tell())
        return ReadError(self.name, position, _reason(exc))

    def read(self, size: int = -1, /) -> bytes:
        try:
            data = self._stream.read(size)
        except READ_ERRORS as exc:
            raise self._failed(exc) from None
        self._position += len(data)
        return data

    def readinto(self, buffer: bytearray, /) -> int:
        try:
            size: int = self._stream.readinto(buffer)  # type: ignore[attr-defined]
        except READ_ERRORS as exc:
            raise self._failed(exc) from None
        self._position += size
        return size

    def readline(self, size: int = -1, /) -> bytes:
        try:
            data = self._stream.readline(size)
        except READ_ERRORS as exc:
            raise self._failed(exc) from None
        self._position += len(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def seekable(self) -> bool:
        return self._seekable

    def seek(self, offset: int, whence: int = os.SEEK_SET, /) -> int:
        try:
            self._position = self._stream.seek(offset, whence)
        except READ_ERRORS as exc:
            raise self._failed(exc) from None
        return self._position

    def tell(self) -> int:
        return self._position


@contextlib.contextmanager
def _open_raw(source: str | os.PathLike[str] | IO[bytes]) -> Iterator[BinaryIO]:
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
    except OSError as exc:
        raise storage_error(exc, name, "open it for reading") from None
    try:
        if name.endswith(".gz"):
            with gzip.GzipFile(fileobj=raw) as gz:
                yield gz  # type: ignore[misc]
        else:
            yield raw
    finally:
        raw.close()


@contextlib.contextmanager
def open_binary(source: str | os.PathLike[str] | IO[bytes]) -> Iterator[BinaryIO]:
    """Open a path, a ``.gz`` path, ``-`` (stdin) or pass through an open binary stream.

    Reads that fail (a truncated or corrupt ``.gz``, a disk error) raise :class:`ReadError`.
    ``seekable()`` is False for pipes and compressed files.
    """
    with _open_raw(source) as stream:
        compressed = isinstance(stream, gzip.GzipFile)
        yield _Guarded(stream, source_name(source), compressed=compressed)  # type: ignore[misc]


class _Range:
    """Bytes ``start`` to ``end`` of an open file, read through its buffer."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self._stream = stream
        self._left = size
        self.name = getattr(stream, "name", "<range>")

    def read(self, size: int = -1, /) -> bytes:
        data = self._stream.read(self._left if size < 0 else min(size, self._left))
        self._left -= len(data)
        return data

    def readline(self, size: int = -1, /) -> bytes:
        data = self._stream.readline(self._left if size < 0 else min(size, self._left))
        self._left -= len(data)
        return data


@contextlib.contextmanager
def open_range(path: str | os.PathLike[str], start: int, end: int) -> Iterator[BinaryIO]:
    """Bytes ``start`` to ``end`` of a plain file as a stream (a worker's part of a file),
    read a buffer at a time: a part is never held whole."""
    with open(path, "rb", buffering=_BUFFER) as stream:
        stream.seek(start)
        yield _Range(stream, max(0, end - start))  # type: ignore[misc]


def is_regular_file(path: str | os.PathLike[str]) -> bool:
    """True for a regular file (not a pipe, a device or a folder); False when missing."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def iter_raw_lines(
    stream: Any, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> Iterator[bytes | int]:
    """Each line of ``stream`` as its bytes (terminator included), or, for a line longer than
    ``max_line_bytes``, its length: such a line is read in pieces and never held whole."""
    piece = min(_PIECE, max_line_bytes + 1)
    readline = stream.readline
    while raw := readline(piece):
        if len(raw) == piece and raw[-1] != 0x0A:
            yield _rest_of_line(readline, raw, piece, max_line_bytes)
        elif len(raw) > max_line_bytes:
            yield len(raw)
        else:
            yield raw


def _rest_of_line(readline: Any, first: bytes, piece: int, max_line_bytes: int) -> bytes | int:
    """The rest of a line longer than one piece: its bytes, or its length when it is over
    ``max_line_bytes``. Past ``_SPOOL_BYTES`` the pieces wait in a temporary file, so a line
    that never ends (``/dev/zero``) costs that much memory, not the cap."""
    pieces = [first]
    size = len(first)
    spool: IO[bytes] | None = None
    try:
        while True:
            more = readline(piece)
            size += len(more)
            if size > max_line_bytes:
                while more and more[-1] != 0x0A:  # skip to the line's end, a piece at a time
                    more = readline(piece)
                    size += len(more)
                return size
            if not more:
                break
            pieces.append(more)
            if spool is None and size > _SPOOL_BYTES:
                spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
            if spool is not None:
                spool.writelines(pieces)
                pieces.clear()
            if more[-1] == 0x0A:
                break
        if spool is None:
            return b"".join(pieces)
        spool.seek(0)
        return spool.read()
    finally:
        if spool is not None:
            spool.close()


def finish_line(stream: Any, first: bytes, max_line_bytes: int) -> bytes | int:
    """The whole of a line whose first bytes (no newline among them) were already read: its
    bytes, or its length when it is over ``max_line_bytes`` (then read and dropped). Never
    reads past the line's end; holds at most ``_SPOOL_BYTES`` of it in memory meanwhile."""
    return _rest_of_line(stream.readline, first, min(_PIECE, max_line_bytes + 1), max_line_bytes)


def skip_line(stream: Any, block: int = _SCAN) -> tuple[int, bytes]:
    """Read past the end of the current line, a block at a time: (bytes read up to and
    including its newline, the bytes read after it); at the end of the stream (bytes read,
    b"")."""
    skipped = 0
    while data := stream.read(block):
        found = data.find(b"\n")
        if found >= 0:
            return skipped + found + 1, data[found + 1 :]
        skipped += len(data)
    return skipped, b""


def read_lines(
    source: str | os.PathLike[str] | IO[bytes],
    *,
    parse: bool = True,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    fast: Callable[[int, bytes, Any], bool] | None = None,
) -> Iterator[Line]:
    """Yield every line of ``source`` with its number, offset, raw bytes and parsed value.

    Never raises on bad content: parse problems are in ``Line.error`` and format quirks in
    ``Line.notices`` (a line over ``max_line_bytes`` is one ``line_too_long`` line). Raises
    :class:`InputError` only when the source cannot be opened or read (a missing file, a
    truncated or corrupt gzip stream), naming the line where reading stopped.

    ``fast(number, raw, parsed)`` is offered every line that parsed with no notices; when it
    returns True it has taken the line, which is then not yielded. Most lines of a good file
    go this way, with no :class:`Line` made for them (the validator's quick path).
    """
    name = source_name(source)
    number = 0
    offset = 0
    from_json = jiter.from_json
    piece = min(_PIECE, max_line_bytes + 1)
    with _open_raw(source) as stream:  # errors caught here: a wrapper costs per line
        readline = stream.readline
        try:
            # iter_raw_lines, inlined: a generator per line costs as much as the checks
            while raw := readline(piece):
                number += 1
                size = len(raw)
                # Fast path: an ordinary line ("{...}\n", not line 1 with its possible BOM)
                # needs no notices; anything else, or a parse error, takes the full path.
                if raw[-2:] == b"}\n" and number > 1 and size <= max_line_bytes and parse:
                    try:
                        obj = from_json(  # _PARSE_OPTIONS, spelled out: ** costs per call
                            raw, catch_duplicate_keys=True, allow_inf_nan=False, cache_mode=False
                        )
                    except ValueError:
                        pass
                    else:
                        offset += size
                        if fast is None or not fast(number, raw, obj):
                            yield Line(number, offset - size, raw, obj)
                        continue
                if size == piece and raw[-1] != 0x0A:
                    rest = _rest_of_line(readline, raw, piece, max_line_bytes)
                    if isinstance(rest, int):
                        line = _too_long(number, offset, rest, max_line_bytes)
                        offset += rest
                        yield line
                        continue
                    raw = rest
                elif size > max_line_bytes:
                    yield _too_long(number, offset, size, max_line_bytes)
                    offset += size
                    continue
                line = _make_line(number, offset, raw, parse)
                offset += len(raw)
                yield line
        except READ_ERRORS as exc:
            raise InputError(
                f"{name}:{number + 1}: cannot read past byte {offset}: {_reason(exc)}",
                hint=_read_hint(name),
            ) from None


def _too_long(number: int, offset: int, size: int, max_line_bytes: int) -> Line:
    return Line(
        number,
        offset,
        b"",
        None,
        f"line is {size:,} bytes, longer than the {max_line_bytes:,} bytes read per line"
        " (max_line_bytes)",
        (LINE_TOO_LONG,),
        size,
    )


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
        duplicate = message.startswith("Detected duplicate key")
        if duplicate:  # keep the last value, as most JSON parsers (and the services) do
            try:
                obj = jiter.from_json(text, allow_inf_nan=False, cache_mode=False)
            except ValueError as broken:  # the duplicate came before the line breaks
                message, duplicate = str(broken), False
        if not duplicate:
            kind, message = _classify_parse_error(text, message)
            notices.append(kind)
            return Line(number, offset, raw, None, message, tuple(notices))
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

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        overwrite: bool = True,
        shown_as: str | os.PathLike[str] | None = None,
    ) -> None:
        self.path = Path(path)
        # the path errors name: the final one when ``path`` is in a staging folder
        self.shown_as = Path(shown_as) if shown_as is not None else self.path
        if not overwrite and self.path.exists():
            raise InputError(
                f"{self.path}: already exists", hint="pass overwrite=True to replace it"
            )
        self.lines = 0
        self.bytes = 0
        self._tmp_path: Path | None = None
        self._file: BinaryIO | None = None
        self._stream: BinaryIO | None = None
        # the sha256 of what is written, kept on the way (a marker names files with it):
        # hashing here overlaps the writing instead of reading a big file back afterwards
        self._digest = None if self.path.name.endswith(".gz") else hashlib.sha256()

    @property
    def sha256(self) -> str | None:
        """The sha256 of the bytes written so far; None for a ``.gz`` target."""
        return None if self._digest is None else self._digest.hexdigest()

    def open(self) -> AtomicWriter:
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        except OSError as exc:
            raise storage_error(exc, self.shown_as, "write it") from None
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
        try:
            self._stream.write(data)
        except OSError as exc:
            raise storage_error(exc, self.shown_as, "write it") from None
        if self._digest is not None:
            self._digest.update(data)
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
        try:
            target.flush()
            self._append(path, start, end)
        except OSError as exc:
            raise storage_error(exc, self.shown_as, "write it") from None

    def _append(self, path: str | os.PathLike[str], start: int, end: int) -> None:
        target = self._file
        assert target is not None
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
            if self._digest is not None:  # the kernel copied them: read them for the hash
                for offset in range(start, at, _BUFFER):
                    self._digest.update(os.pread(part.fileno(), min(_BUFFER, at - offset), offset))
        self.bytes += at - start

    def write_many(self, objects: Iterable[Any]) -> None:
        for obj in objects:
            self.write(obj)

    def commit(self) -> None:
        """Flush, fsync and rename the temporary file onto the target. On a failure (a disk
        that fills up at the last flush) the temporary file is removed and the target is
        untouched."""
        if self._file is None or self._tmp_path is None:
            return
        try:
            if self._stream is not self._file:
                self._stream.close()  # type: ignore[union-attr]
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._tmp_path, self.path)
        except OSError as exc:
            self.abort()
            raise storage_error(exc, self.shown_as, "write it") from None
        self._file = self._stream = None
        self._tmp_path = None

    def abort(self) -> None:
        """Drop everything written so far."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()  # a full disk fails this flush: the file goes anyway
        if self._tmp_path is not None:
            with contextlib.suppress(OSError):
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
        raise storage_error(exc, path, "read it") from None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON: {exc}") from None


__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "AtomicWriter",
    "Line",
    "ReadError",
    "atomic_write_bytes",
    "atomic_write_json",
    "dumps_line",
    "is_regular_file",
    "iter_raw_lines",
    "line_aligned_ranges",
    "open_binary",
    "open_range",
    "read_json",
    "read_lines",
    "skip_line",
    "write_jsonl",
]
