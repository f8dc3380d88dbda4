"""Streaming request bodies: Content-Length and chunked readers, and a multipart/form-data
parser that writes file parts straight to disk.

The standard library's ``cgi`` module is gone in Python 3.13 and ``email`` parses whole
messages in memory; uploads of hundreds of MB must not, so this parser keeps at most one
read buffer plus the boundary in memory whatever the upload size.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Protocol
from urllib.parse import unquote

_READ_SIZE = 1 << 16
_MAX_HEADER_BYTES = 16 * 1024
_MAX_FIELD_BYTES = 64 * 1024
# An upload has a handful of parts (file, purpose, expires_after[...]); far more is abuse,
# and each kept field costs memory, so the count is capped as well as each field's size.
MAX_PARTS = 64


class BodyError(Exception):
    """The request body is malformed or too large; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class LengthReader:
    """Reads exactly ``length`` bytes of a request body, never past it."""

    def __init__(self, stream: BinaryIO, length: int) -> None:
        self._stream = stream
        self.remaining = length

    def read(self, size: int = -1, /) -> bytes:
        if self.remaining <= 0:
            return b""
        want = self.remaining if size < 0 else min(size, self.remaining)
        data = self._stream.read(want)
        if not data:
            raise BodyError("request body ended early")
        self.remaining -= len(data)
        return data


class ChunkedReader:
    """Decodes ``Transfer-Encoding: chunked`` bodies (trailers are read and ignored)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._left = 0
        self._done = False

    def read(self, size: int = -1, /) -> bytes:
        if self._done:
            return b""
        if self._left == 0:
            header = self._stream.readline(1024)
            try:
                self._left = int(header.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BodyError("bad chunk header in request body") from None
            if self._left == 0:
                while self._stream.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                self._done = True
                return b""
        want = self._left if size < 0 else min(size, self._left)
        data = self._stream.read(want)
        if not data:
            raise BodyError("request body ended early")
        self._left -= len(data)
        if self._left == 0:
            self._stream.readline(16)
        return data


def read_all(reader: Readable, limit: int) -> bytes:
    """Read a small body (JSON) whole; refuse one larger than ``limit`` bytes."""
    parts: list[bytes] = []
    size = 0
    while chunk := reader.read(_READ_SIZE):
        size += len(chunk)
        if size > limit:
            raise BodyError(f"request body is larger than {limit} bytes", status=413)
        parts.append(chunk)
    return b"".join(parts)


@dataclass
class UploadedFile:
    """A file part written to ``path``."""

    field_name: str
    filename: str
    content_type: str | None
    path: str
    size: int


@dataclass
class FormData:
    fields: dict[str, str]
    files: list[UploadedFile]


def boundary_of(content_type: str) -> bytes:
    """The boundary parameter of a ``multipart/form-data`` Content-Type header."""
    match = re.search(r'boundary=(?:"([^"]+)"|([^;\s]+))', content_type, re.IGNORECASE)
    if not content_type.lower().startswith("multipart/form-data") or not match:
        raise BodyError("expected a multipart/form-data body with a boundary")
    return (match.group(1) or match.group(2)).encode("latin-1")


def parse_multipart(
    reader: Readable,
    boundary: bytes,
    open_file: Callable[[], tuple[str, BinaryIO]],
    *,
    max_file_bytes: int,
) -> FormData:
    """Parse a multipart body, streaming each file part into a file from ``open_file()``.

    ``open_file`` returns ``(path, binary stream)``; on any error every file written so far
    is removed. File parts over ``max_file_bytes`` together raise BodyError("File is too
    large."); more than ``MAX_PARTS`` parts, or a text field over 64 KB, a 400. Memory stays
    at one read buffer plus the kept fields whatever the body.
    """
    parser = _Parser(reader, boundary)
    fields: dict[str, str] = {}
    files: list[UploadedFile] = []
    current_path: str | None = None
    file_bytes = 0
    try:
        parser.skip_preamble()
        for part in itertools.count(1):
            if not parser.next_part():
                break
            if part > MAX_PARTS:
                raise BodyError(f"too many parts in the multipart body (more than {MAX_PARTS})")
            headers = parser.read_headers()
            name, filename = _disposition(headers.get("content-disposition", ""))
            if filename is None:
                data = bytearray()
                parser.copy_part(
                    data.extend,
                    limit=_MAX_FIELD_BYTES,
                    too_large=f"form field {name!r} is larger than {_MAX_FIELD_BYTES} bytes",
                )
                fields[name] = data.decode("utf-8", errors="replace")
                continue
            current_path, stream = open_file()
            try:
                size = parser.copy_part(stream.write, limit=max_file_bytes - file_bytes)
            finally:
                stream.close()
            file_bytes += size
            files.append(
                UploadedFile(name, filename, headers.get("content-type"), current_path, size)
            )
            current_path = None
    except BaseException:
        for uploaded in files:
            _remove(uploaded.path)
        if current_path:
            _remove(current_path)
        raise
    return FormData(fields, files)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _disposition(value: str) -> tuple[str, str | None]:
    params: dict[str, str] = {}
    for match in re.finditer(r';\s*([\w*]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))', value):
        raw = match.group(2) if match.group(2) is not None else match.group(3).strip()
        params[match.group(1).lower()] = raw.replace('\\"', '"')
    if "name" not in params:
        raise BodyError("a multipart part has no name")
    filename = params.get("filename")
    if "filename*" in params:
        _charset, _, encoded = params["filename*"].partition("''")
        filename = unquote(encoded or params["filename*"])
    return params["name"], filename


class _Parser:
    """Delimiter scanning over a rolling buffer."""

    def __init__(self, reader: Readable, boundary: bytes) -> None:
        self._reader = reader
        self._delimiter = b"--" + boundary
        self._buffer = b""

    def _fill(self) -> bool:
        chunk = self._reader.read(_READ_SIZE)
        if chunk:
            self._buffer += chunk
        return bool(chunk)

    def skip_preamble(self) -> None:
        while True:
            index = self._buffer.find(self._delimiter)
            if index >= 0:
                self._buffer = self._buffer[index + len(self._delimiter) :]
                return
            self._buffer = self._buffer[-len(self._delimiter) :]
            if not self._fill():
                raise BodyError("multipart body has no boundary")

    def next_part(self) -> bool:
        """After a delimiter: True if a part follows, False at the closing ``--``."""
        while len(self._buffer) < 2 and self._fill():
            pass
        if self._buffer.startswith(b"--"):
            return False
        if not self._buffer.startswith(b"\r\n"):
            raise BodyError("malformed multipart delimiter")
        self._buffer = self._buffer[2:]
        return True

    def read_headers(self) -> dict[str, str]:
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > _MAX_HEADER_BYTES or not self._fill():
                raise BodyError("malformed multipart part headers")
        block, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
        headers: dict[str, str] = {}
        for line in block.decode("utf-8", errors="replace").split("\r\n"):
            key, sep, value = line.partition(":")
            if sep:
                headers[key.strip().lower()] = value.strip()
        return headers

    def copy_part(
        self, write: Callable[[bytes], object], *, limit: int, too_large: str = "File is too large."
    ) -> int:
        """Pass the part's bytes to ``write`` up to the next delimiter; return the size."""
        marker = b"\r\n" + self._delimiter
        keep = len(marker) - 1
        size = 0
        while True:
            index = self._buffer.find(marker)
            if index >= 0:
                data, self._buffer = self._buffer[:index], self._buffer[index + len(marker) :]
            elif len(self._buffer) > keep:
                data, self._buffer = self._buffer[:-keep], self._buffer[-keep:]
            else:
                data = b""
            if data:
                size += len(data)
                if size > limit:
                    raise BodyError(too_large, status=400)
                write(data)
            if index >= 0:
                return size
            if not self._fill():
                raise BodyError("multipart body ended inside a part")
