"""Merge's results file: ``<stem>.results.jsonl`` (or ``.results.csv``), one row per input
request in input order. Its row layouts, the writer of each and the one reader.

Formats (``results_format``):

* ``full`` (JSONL): ``custom_id``, ``status``, ``line`` (of the request in the input),
  ``status_code``, ``error`` (``{"code", "message"}`` or null), ``usage`` (the response's
  usage block), ``response`` (the body of a success), and ``request`` when asked for.
* ``text`` / ``embedding`` (JSONL): ``custom_id``, ``status``, ``text`` (the assistant text)
  or ``embedding`` (the vector, or vectors for several inputs), ``error``, ``request``.
* ``csv``: the :data:`CSV_COLUMNS`; ``output`` is the text, or the vector as JSON.

:func:`read_result_rows` reads any of them back as :class:`ResultRow` objects, streaming.
What a row cannot hold is None: only ``full`` rows have the line, the response body, the
model and usage with cached and reasoning tokens in the shape the service wrote it.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..errors import InputError, storage_error
from ..jsonl import DEFAULT_MAX_LINE_BYTES, read_lines, source_name
from .output_lines import CANCELLED, EXPIRED, FAILED, SUCCEEDED
from .response_body import Usage, add_usage, embedding_of, request_model, text_of

MISSING = "missing"
"""The status of a request no output or error line answered."""
STATUSES = (SUCCEEDED, FAILED, EXPIRED, CANCELLED, MISSING)
RESULTS_FORMATS = ("full", "text", "embedding", "csv")
CSV_COLUMNS = (
    "custom_id",
    "status",
    "status_code",
    "error_code",
    "error_message",
    "output",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "reasoning_tokens",
)
PLAIN_ROW = (
    b'{"custom_id":"%b","status":"succeeded","line":%d,"status_code":200,"error":null,'
    b'"usage":%b,"response":%b}\n'
)
"""A ``full`` success row, filled with the custom_id, the line number, the usage and the body
as bytes (merge's fast path; the same row :class:`RowEncoder` writes)."""
_BAD_ROW_HINT = "read the file merge wrote (<stem>.results.jsonl or .results.csv), or merge again"


@dataclass(slots=True)
class ResultRow:
    """One request's result, as merge wrote it; ``cost_usd`` is filled by a priced reader."""

    custom_id: str
    status: str
    """``succeeded``, ``failed``, ``expired``, ``cancelled`` or ``missing``."""
    status_code: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    text: str | None = None
    """The assistant text of a success (chat, Responses, completions)."""
    embedding: Any = None
    """The vector of an embeddings success (a list of vectors for several inputs)."""
    usage: Usage | None = None
    response: dict[str, Any] | None = None
    """The response body of a success (``full`` rows only)."""
    model: str | None = None
    """The model that answered (``full`` rows: the response's, else the request's)."""
    line: int | None = None
    """The request's line in the input file (``full`` rows only)."""
    request: dict[str, Any] | None = None
    """The request line, when merge was asked to include it."""
    cost_usd: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCEEDED


class RowEncoder:
    """Writes rows in one results format (the general path; merge's fast path fills
    :data:`PLAIN_ROW`)."""

    def __init__(self, results_format: str, *, include_request: bool = False) -> None:
        self.results_format = results_format
        self.include_request = include_request
        self._buffer = io.StringIO()
        # RFC 4180 line ends: the writer then quotes a field holding a bare "\r" as well,
        # which it leaves bare with "\n" alone, and which every CSV reader splits on
        self._csv = csv.writer(self._buffer, lineterminator="\r\n")

    def header(self) -> bytes:
        """What the file starts with: the CSV header, nothing for JSONL."""
        return self._csv_line(CSV_COLUMNS) if self.results_format == "csv" else b""

    def encode(
        self,
        custom_id: str,
        status: str,
        line: int,
        status_code: int | None,
        code: str | None,
        message: str | None,
        body: Any,
        usage: dict[str, Any] | None,
        request: Any,
    ) -> bytes:
        """One row; ``body`` is the response (or error) body, ``usage`` its usage block."""
        succeeded = status == SUCCEEDED
        error = None if code is None else {"code": code, "message": message}
        results_format = self.results_format
        if results_format == "csv":
            content = text_of(body) if succeeded else None
            if succeeded and content is None and (vector := embedding_of(body)) is not None:
                content = orjson.dumps(vector).decode()
            numbers: tuple[Any, ...] = ("", "", "", "")
            if usage is not None:
                total = Usage()
                add_usage(total, usage)
                numbers = (
                    total.prompt_tokens,
                    total.cached_tokens,
                    total.completion_tokens,
                    total.reasoning_tokens,
                )
            return self._csv_line(
                (
                    custom_id,
                    status,
                    "" if status_code is None else status_code,
                    code or "",
                    message or "",
                    "" if content is None else content,
                    *numbers,
                )
            )
        row: dict[str, Any] = {"custom_id": custom_id, "status": status}
        if results_format == "full":
            row.update(
                line=line,
                status_code=status_code,
                error=error,
                usage=usage,
                response=body if succeeded else None,
            )
        else:
            if results_format == "text":
                row["text"] = text_of(body) if succeeded else None
            else:
                row["embedding"] = embedding_of(body) if succeeded else None
            row["error"] = error
        if self.include_request:
            row["request"] = request
        return orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)

    def _csv_line(self, values: tuple[Any, ...]) -> bytes:
        self._csv.writerow(values)
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text.encode("utf-8")


def read_result_rows(
    path: str | os.PathLike[str], *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> Iterator[ResultRow]:
    """Every row of a results file, in file order, one at a time (memory stays flat).

    A ``.csv`` name reads the CSV format, anything else JSONL (``.gz`` too) in any of the
    JSONL formats. A line that is not a results row (or is longer than ``max_line_bytes``)
    raises :class:`InputError` naming the file and line: it is a file merge writes, so a bad
    line means the wrong file or damage, not data to skip.
    """
    if Path(path).suffix.lower() == ".csv":
        yield from _read_csv(path, max_line_bytes)
        return
    name = source_name(path)
    for line in read_lines(path, max_line_bytes=max_line_bytes):
        if not line.raw.strip() and not line.dropped:
            continue
        row = line.obj if line.ok else None
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("custom_id"), str)
            or row.get("status") not in STATUSES
        ):
            why = line.error or "not a results row (custom_id and status)"
            raise InputError(f"{name}:{line.number}: {why}", hint=_BAD_ROW_HINT)
        yield _from_json(row)


def _from_json(row: dict[str, Any]) -> ResultRow:
    status = row["status"]
    error = row.get("error")
    error = error if isinstance(error, dict) else {}
    body = row.get("response")
    body = body if isinstance(body, dict) else None
    request = row.get("request")
    request = request if isinstance(request, dict) else None
    usage_block = row.get("usage")
    usage = None
    if isinstance(usage_block, dict):
        usage = Usage()
        add_usage(usage, usage_block)
    succeeded = status == SUCCEEDED
    text = row.get("text")
    embedding = row.get("embedding")
    if body is not None and succeeded:
        text, embedding = text_of(body), embedding_of(body)
    model = body.get("model") if body is not None else None
    if not isinstance(model, str) or not model:
        model = request_model(request)
    status_code = row.get("status_code")
    line = row.get("line")
    return ResultRow(
        custom_id=row["custom_id"],
        status=status,
        status_code=status_code if isinstance(status_code, int) else None,
        error_code=_str_or_none(error.get("code")),
        error_message=_str_or_none(error.get("message")),
        text=text if isinstance(text, str) else None,
        embedding=embedding,
        usage=usage,
        response=body,
        model=model,
        line=line if isinstance(line, int) else None,
        request=request,
    )


def _read_csv(path: str | os.PathLike[str], max_line_bytes: int) -> Iterator[ResultRow]:
    # The csv module caps a field at 128 KiB by default; a long reply is a longer field.
    # The cap is process-wide: raise it to this reader's, never lower it.
    if csv.field_size_limit() < max_line_bytes:
        csv.field_size_limit(max_line_bytes)
    name = source_name(path)
    try:
        stream = open(path, encoding="utf-8", newline="")  # noqa: SIM115  # closed below
    except OSError as exc:
        raise storage_error(exc, path, "read") from None
    with stream:
        reader = csv.reader(stream)
        try:
            header = next(reader, None)
            if header is None or tuple(header) != CSV_COLUMNS:
                raise InputError(
                    f"{name}:1: not a results CSV header (expected {','.join(CSV_COLUMNS)})",
                    hint=_BAD_ROW_HINT,
                )
            for values in reader:
                if len(values) != len(CSV_COLUMNS) or values[1] not in STATUSES:
                    raise InputError(
                        f"{name}:{reader.line_num}: not a results row", hint=_BAD_ROW_HINT
                    )
                yield _from_csv(values)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputError(f"{name}:{reader.line_num}: {exc}", hint=_BAD_ROW_HINT) from None


def _from_csv(values: list[str]) -> ResultRow:
    cid, status, status_code, code, message, output, *numbers = values
    usage = None
    if all(number.isdigit() for number in numbers):
        prompt, cached, completion, reasoning = (int(number) for number in numbers)
        usage = Usage(prompt, cached, completion, reasoning)
    return ResultRow(
        custom_id=cid,
        status=status,
        status_code=int(status_code) if status_code.isdigit() else None,
        error_code=code or None,
        error_message=message or None,
        text=output if status == SUCCEEDED else None,
        usage=usage,
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
