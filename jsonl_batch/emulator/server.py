"""The HTTP side: Azure's and OpenAI's files/batches paths, auth, API-level faults and the
``/_emulator`` control endpoints, on the standard library's ``ThreadingHTTPServer``.

Paths served (``{p}`` is ``/openai`` with ``?api-version=``, ``/openai/v1`` or ``/v1``):
``POST|GET {p}/files``, ``GET|DELETE {p}/files/{id}``, ``GET {p}/files/{id}/content``,
``POST|GET {p}/batches``, ``GET {p}/batches/{id}``, ``POST {p}/batches/{id}/cancel``.

Why the standard library: the emulator then needs nothing beyond the core dependencies
(it ships in the product, not as a dev extra), one thread per connection is plenty for a
local test double, and the only piece the stdlib lacks, a streaming multipart parser, is
small (:mod:`.multipart`).
"""

from __future__ import annotations

import collections
import contextlib
import hmac
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from ..errors import ConfigError
from .api_error import ApiError, azure_error, invalid_request, not_found_route, unauthorized
from .config import EmulatorConfig, Faults
from .engine import BatchEngine, check_expiry
from .multipart import (
    BodyError,
    ChunkedReader,
    LengthReader,
    Readable,
    UploadedFile,
    boundary_of,
    parse_multipart,
    read_all,
)
from .store import BatchRecord, FileRecord

_MAX_JSON_BYTES = 1 << 20
_MULTIPART_OVERHEAD = 1 << 20
_COPY_CHUNK = 1 << 16
_RECENT_REQUESTS = 200
FILE_PURPOSES = frozenset(
    {"batch", "fine-tune", "assistants", "vision", "user_data", "evals", "batch_output"}
)
_CONTROL_PREFIX = "/_emulator/"
# Connections waiting to be accepted (the standard library's default of 5 makes a burst of
# connects wait for SYN retries, about a second each).
_LISTEN_BACKLOG = 128


class _Server(ThreadingHTTPServer):
    """One thread per connection, a real listen backlog, and quiet about clients that go
    away (a reset or a timeout is the client's business, not a traceback on stderr)."""

    daemon_threads = True
    request_queue_size = _LISTEN_BACKLOG

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError | socket.timeout):
            return
        print(f"emulator: error serving {client_address}: {exc!r}", file=sys.stderr)


class Emulator:
    """A running emulator: ``start()`` serves on a background thread, ``close()`` stops it.

    Use ``base_url`` as ``AzureOpenAI(azure_endpoint=...)`` and ``openai_base_url`` as
    ``OpenAI(base_url=...)``. ``set_faults``, ``reset``, ``advance`` and ``state`` do
    in-process what the ``/_emulator`` endpoints do over HTTP.
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        on_request: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config or EmulatorConfig()
        self.engine = BatchEngine(self.config)
        self.on_request = on_request
        self.requests: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=_RECENT_REQUESTS
        )
        self.request_count = 0
        self._count_lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- serving ------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Bind and serve on a background thread; returns self."""
        handler = type(
            "BoundHandler", (_Handler,), {"emulator": self, "timeout": self.config.idle_timeout}
        )
        try:
            server = _Server((self.config.host, self.config.port), handler)
        except OSError as exc:
            self.engine.close()
            raise ConfigError(
                f"cannot listen on {self.config.host}:{self.config.port}: {exc.strerror}",
                hint="pick another port, or port=0 for a free one",
            ) from None
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        assert self._server is not None, "call start() first"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://host:port``: the Azure endpoint (``AzureOpenAI(azure_endpoint=...)``)."""
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """``http://host:port/v1`` for ``OpenAI(base_url=...)``."""
        return self.base_url + "/v1"

    @property
    def api_key(self) -> str:
        return self.config.api_key

    def stop_serving(self) -> None:
        """Refuse connections but keep every file and batch (they go on running): a
        resource's outage. ``start()`` serves again on the same port."""
        if self._server is not None:
            self.config.port = self.port
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.engine.close()

    def __enter__(self) -> Emulator:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- control ------------------------------------------------------------------------

    def set_faults(self, **changes: Any) -> Faults:
        """Change some faults (the others stay); raises ConfigError for a bad one."""
        with self.engine.lock:
            self.engine.faults = self.engine.faults.updated(changes)
            return self.engine.faults

    def reset(self) -> None:
        self.engine.reset()
        with self._count_lock:
            self.requests.clear()
            self.request_count = 0

    def advance(self, seconds: float) -> float:
        """Jump the simulated clock ahead; returns the new simulated time."""
        return self.engine.advance_clock(seconds)

    def state(self) -> dict[str, Any]:
        state = self.engine.state()
        with self._count_lock:
            state["request_count"] = self.request_count
            state["recent_requests"] = list(self.requests)
        return state

    def record_request(self, method: str, path: str, status: int | str) -> None:
        """Count and remember one API call (shown by ``state()``)."""
        with self._count_lock:
            self.request_count += 1
            self.requests.append({"method": method, "path": path, "status": status})
        if self.on_request is not None:
            self.on_request(f"{method} {path} -> {status}")


class _Drop(Exception):
    """Close the connection without an answer (dropped-connection fault)."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "jsonl-batch-emulator"
    # Headers and body go out in two writes: with Nagle on, a keep-alive client's delayed
    # ACK holds the body back about 40 ms.
    disable_nagle_algorithm = True
    emulator: Emulator

    # --- plumbing -----------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: requests are recorded in ``/_emulator/state`` instead of printed."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _content_length(self) -> int:
        """The Content-Length header as a number; a 400 (and the connection closed: where
        the body ends is unknown) when it is not one."""
        raw = (self.headers.get("Content-Length") or "0").strip()
        if not raw.isdigit():
            self.close_connection = True
            raise BodyError(f"Content-Length {raw[:40]!r} is not a number of bytes")
        return int(raw)

    def _body_reader(self) -> Readable | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return ChunkedReader(self.rfile)  # type: ignore[arg-type]
        length = self._content_length()
        return LengthReader(self.rfile, length) if length else None  # type: ignore[arg-type]

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self._method, self._path = method, url.path
        self._query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self._body = None
        self._body_read = True
        self._recorded = False
        try:
            self._body = self._body_reader()
            self._body_read = self._body is None
            self._handle(method, url.path)
        except ApiError as error:
            self._send_json(error.status, error.body, error.headers)
        except BodyError as error:
            error_body = invalid_request(error.message, status=error.status).body
            self._send_json(error.status, error_body)
        except _Drop:
            self._record("dropped")
            self.close_connection = True
        except (ConnectionError, TimeoutError):
            self._record("client_gone")
            self.close_connection = True
        except Exception as exc:  # a bug in the emulator: answer, don't kill the thread
            with contextlib.suppress(OSError):
                self._send_json(
                    500, {"error": {"code": "InternalServerError", "message": repr(exc)}}
                )

    def _record(self, status: int | str) -> None:
        """Log the call once, before its answer goes out (so a client never outruns it)."""
        if not self._recorded and not self._path.startswith(_CONTROL_PREFIX):
            self._recorded = True
            self.emulator.record_request(self._method, self._path, status)

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = orjson.dumps(body)
        self._start_response(status, "application/json", len(data), headers)
        self.wfile.write(data)

    def _start_response(
        self, status: int, content_type: str, length: int, headers: dict[str, str] | None
    ) -> None:
        self._record(status)
        if not self._body_read:
            self._discard_body()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        request_id = str(uuid.uuid4())
        self.send_header("apim-request-id", request_id)
        self.send_header("x-request-id", request_id)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    def _discard_body(self) -> None:
        """Read what is left of the request body before answering, so a client still
        sending gets the answer rather than a reset; past a bound, close the connection."""
        self._body_read = True
        if self._body is None:
            return
        budget = self.emulator.config.max_upload_bytes + _MULTIPART_OVERHEAD
        try:
            while budget > 0 and (chunk := self._body.read(min(_COPY_CHUNK, budget))):
                budget -= len(chunk)
        except (BodyError, OSError):
            budget = 0
        if budget <= 0:
            self.close_connection = True

    def _read_json(self) -> dict[str, Any]:
        if self._body is None:
            raise invalid_request("We could not parse the JSON body of your request.")
        data = read_all(self._body, _MAX_JSON_BYTES)
        self._body_read = True
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise invalid_request(
                "We could not parse the JSON body of your request. (HINT: This likely means "
                "you aren't using your HTTP library correctly.)"
            ) from None
        if not isinstance(body, dict):
            raise invalid_request("The JSON body of your request must be an object.")
        return body

    # --- routing ------------------------------------------------------------------------

    def _handle(self, method: str, path: str) -> None:
        if path.startswith(_CONTROL_PREFIX):
            self._authorize("azure")
            self._control(method, path[len(_CONTROL_PREFIX) :].strip("/"))
            return
        flavor, rest, needs_version = _split_prefix(path)
        if flavor is None:
            raise not_found_route()
        self._authorize(flavor)
        if needs_version and not self._query.get("api-version"):
            raise azure_error(
                404,
                "404",
                "Resource not found. The api-version query parameter (?api-version=) is "
                "required for all requests on /openai paths; or use /openai/v1/.",
            )
        parts = [p for p in rest.split("/") if p]
        route = _ROUTES.get((method, _shape(parts)))
        if route is None:
            raise not_found_route()
        self._inject_faults()
        route(self, flavor, *parts[1:2])

    def _authorize(self, flavor: str) -> None:
        key = self.headers.get("api-key")
        if key is None:
            auth = self.headers.get("Authorization", "")
            if auth.lower().startswith("bearer "):
                key = auth[7:].strip()
        if key is None or not hmac.compare_digest(key.encode(), self.emulator.api_key.encode()):
            raise unauthorized(flavor)

    def _inject_faults(self) -> None:
        engine = self.emulator.engine
        with engine.lock:
            faults = engine.faults
            rng = engine.fault_rng
            drop = faults.drop_next > 0 or (faults.drop_rate and rng.random() < faults.drop_rate)
            if faults.drop_next > 0:
                engine.faults = faults = faults.updated({"drop_next": faults.drop_next - 1})
            slow = faults.slow_seconds > 0 and rng.random() < faults.slow_rate
            error_status = None
            if faults.api_errors_next > 0 or (
                faults.api_error_rate and rng.random() < faults.api_error_rate
            ):
                statuses = faults.api_error_statuses
                error_status = statuses[rng.randrange(len(statuses))]
                if faults.api_errors_next > 0:
                    engine.faults = faults = faults.updated(
                        {"api_errors_next": faults.api_errors_next - 1}
                    )
        if drop:
            raise _Drop()
        if slow:
            time.sleep(faults.slow_seconds)
        if error_status is not None:
            raise _api_fault(error_status, faults.retry_after)

    # --- files --------------------------------------------------------------------------

    def _upload(self, flavor: str) -> None:
        if self._body is None:
            raise invalid_request("Missing required parameter: 'file'.", param="file")
        limit = self.emulator.config.max_upload_bytes
        length = self._content_length()
        if length > limit + _MULTIPART_OVERHEAD:
            raise invalid_request("File is too large.", param="file")
        boundary = boundary_of(self.headers.get("Content-Type", ""))
        store = self.emulator.engine.store
        form = parse_multipart(self._body, boundary, store.open_upload, max_file_bytes=limit)
        try:
            self._register_upload(form.fields, form.files, flavor)
        finally:
            for uploaded in form.files:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(uploaded.path)

    def _register_upload(
        self, fields: dict[str, str], files: list[UploadedFile], flavor: str
    ) -> None:
        uploads = [f for f in files if f.field_name == "file"]
        if not uploads:
            raise invalid_request("Missing required parameter: 'file'.", param="file")
        purpose = fields.get("purpose")
        if not purpose:
            raise invalid_request(
                "Missing required parameter: 'purpose'.",
                param="purpose",
                code="missing_required_parameter",
            )
        if purpose not in FILE_PURPOSES - {"batch_output"}:
            raise invalid_request(
                f"Invalid value for 'purpose': {purpose!r}.",
                param="purpose",
                code="invalid_value",
            )
        upload = uploads[0]
        if purpose == "batch" and not upload.filename.lower().endswith(".jsonl"):
            raise invalid_request("Invalid file format for Batch API. Must be .jsonl", param="file")
        seconds = check_expiry(_expires_after(fields), "expires_after", flavor)
        record = self.emulator.engine.add_file(
            upload.path,
            filename=os.path.basename(upload.filename) or "upload.jsonl",
            purpose=purpose,
            size=upload.size,
            expires_after_seconds=seconds,
            flavor=flavor,
        )
        self._send_json(200, record.to_api())

    def _list_files(self, flavor: str) -> None:
        engine = self.emulator.engine
        with engine.lock:
            records = list(engine.store.files.values())
        purpose = self._query.get("purpose")
        if purpose:
            records = [r for r in records if r.purpose == purpose]
        if self._query.get("order", "desc") == "desc":
            records.reverse()
        page = _page(
            [r.to_api() for r in records], self._query, default_limit=10_000, max_limit=10_000
        )
        self._send_json(200, page)

    def _file_record(self, file_id: str) -> FileRecord:
        engine = self.emulator.engine
        with engine.lock:
            record = engine.store.files.get(file_id)
        if record is None:
            raise invalid_request(
                f"No such File object: {file_id}", param="id", code=None, status=404
            )
        return record

    def _get_file(self, flavor: str, file_id: str) -> None:
        self._send_json(200, self._file_record(file_id).to_api())

    def _delete_file(self, flavor: str, file_id: str) -> None:
        self._file_record(file_id)
        self.emulator.engine.delete_file(file_id)
        self._send_json(200, {"id": file_id, "object": "file", "deleted": True})

    def _file_content(self, flavor: str, file_id: str) -> None:
        record = self._file_record(file_id)
        path = self.emulator.engine.store.content_path(record.id)
        try:
            stream = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise invalid_request(
                f"No such File object: {file_id}", param="id", status=404
            ) from None
        with stream:
            size = os.fstat(stream.fileno()).st_size
            self._start_response(200, "application/octet-stream", size, None)
            while chunk := stream.read(_COPY_CHUNK):
                self.wfile.write(chunk)

    # --- batches ------------------------------------------------------------------------

    def _create_batch(self, flavor: str) -> None:
        params = self._read_json()
        record, headers = self.emulator.engine.create_batch(params, flavor)
        self._send_json(200, _batch_view(record), headers)

    def _list_batches(self, flavor: str) -> None:
        engine = self.emulator.engine
        engine.advance()
        with engine.lock:
            views = [_batch_view(b) for b in reversed(engine.store.batches.values())]
        self._send_json(200, _page(views, self._query, default_limit=20, max_limit=100))

    def _get_batch(self, flavor: str, batch_id: str) -> None:
        engine = self.emulator.engine
        engine.advance()
        record = engine.get_batch(batch_id)
        with engine.lock:
            view = _batch_view(record)
        self._send_json(200, view)

    def _cancel_batch(self, flavor: str, batch_id: str) -> None:
        record = self.emulator.engine.cancel_batch(batch_id)
        with self.emulator.engine.lock:
            view = _batch_view(record)
        self._send_json(200, view)

    # --- control ------------------------------------------------------------------------

    def _control(self, method: str, name: str) -> None:
        emulator = self.emulator
        if (method, name) == ("GET", "state"):
            self._send_json(200, emulator.state())
        elif (method, name) == ("GET", "faults"):
            self._send_json(200, emulator.engine.faults.to_dict())
        elif (method, name) == ("POST", "faults"):
            changes = self._read_json()
            try:
                faults = emulator.set_faults(**changes)
            except ConfigError as error:
                raise invalid_request(str(error), param="faults") from None
            self._send_json(200, faults.to_dict())
        elif (method, name) == ("POST", "reset"):
            emulator.reset()
            self._send_json(200, {"reset": True})
        elif (method, name) == ("POST", "clock"):
            seconds = self._read_json().get("advance", 0)
            if not isinstance(seconds, int | float) or seconds < 0:
                raise invalid_request("'advance' must be a number of seconds >= 0")
            self._send_json(200, {"sim_time": emulator.advance(float(seconds))})
        else:
            raise not_found_route()


def _split_prefix(path: str) -> tuple[str | None, str, bool]:
    """``(flavor, rest, needs_api_version)`` of a request path."""
    for prefix, flavor, needs_version in (
        ("/openai/v1/", "azure", False),
        ("/openai/", "azure", True),
        ("/v1/", "openai", False),
    ):
        if path.startswith(prefix):
            return flavor, path[len(prefix) :], needs_version
    return None, path, False


def _shape(parts: list[str]) -> tuple[str, ...]:
    """Route key of a path: ids become ``{id}``."""
    if not parts:
        return ()
    return (parts[0], *("{id}" if i == 1 else p for i, p in enumerate(parts) if i >= 1))


_ROUTES: dict[tuple[str, tuple[str, ...]], Callable[..., None]] = {
    ("POST", ("files",)): _Handler._upload,
    ("GET", ("files",)): _Handler._list_files,
    ("GET", ("files", "{id}")): _Handler._get_file,
    ("DELETE", ("files", "{id}")): _Handler._delete_file,
    ("GET", ("files", "{id}", "content")): _Handler._file_content,
    ("POST", ("batches",)): _Handler._create_batch,
    ("GET", ("batches",)): _Handler._list_batches,
    ("GET", ("batches", "{id}")): _Handler._get_batch,
    ("POST", ("batches", "{id}", "cancel")): _Handler._cancel_batch,
}


def _batch_view(record: BatchRecord) -> dict[str, Any]:
    """A copy of the batch object, safe to serialise outside the lock."""
    view = dict(record.obj)
    view["request_counts"] = dict(view["request_counts"])
    return view


def _page(
    items: list[dict[str, Any]], query: dict[str, str], *, default_limit: int, max_limit: int
) -> dict[str, Any]:
    """Cursor pagination: ``after`` is the id of the last item of the previous page."""
    raw_limit = query.get("limit", str(default_limit))
    try:
        limit = int(raw_limit)
    except ValueError:
        raise invalid_request(
            f"Invalid value for 'limit': {raw_limit!r}.", param="limit", code="invalid_value"
        ) from None
    if not 1 <= limit <= max_limit:
        raise invalid_request(
            f"Invalid value for 'limit': {limit}. It must be between 1 and {max_limit}.",
            param="limit",
            code="invalid_value",
        )
    after = query.get("after")
    if after:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }


def _expires_after(fields: dict[str, str]) -> dict[str, Any] | None:
    """``expires_after`` from form fields: ``expires_after[anchor]`` (openai-python),
    ``expires_after.anchor`` (Azure's curl sample) or a JSON ``expires_after``."""
    if "expires_after" in fields:
        try:
            value = orjson.loads(fields["expires_after"])
        except orjson.JSONDecodeError:
            raise invalid_request(
                "Invalid 'expires_after': expected a JSON object.", param="expires_after"
            ) from None
        return value if isinstance(value, dict) else {"seconds": value}
    found: dict[str, Any] = {}
    for key in ("anchor", "seconds"):
        for name in (f"expires_after[{key}]", f"expires_after.{key}"):
            if name in fields:
                found[key] = fields[name]
    return found or None


def _api_fault(status: int, retry_after: int) -> ApiError:
    """An injected API-level error, shaped like the real one."""
    if status == 429:
        return ApiError(
            429,
            {
                "error": {
                    "code": "429",
                    "message": (
                        "Requests to the Batch API have exceeded call rate limit of your "
                        f"current AIServices S0 pricing tier. Please retry after {retry_after} "
                        "second."
                    ),
                }
            },
            {"Retry-After": str(retry_after), "retry-after-ms": str(retry_after * 1000)},
        )
    if status >= 500:
        return ApiError(
            status,
            {
                "error": {
                    "message": "The server had an error while processing your request. "
                    "Sorry about that!",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            },
        )
    return invalid_request(f"Injected HTTP {status} error.", status=status)
