"""The batch lifecycle: validating → in_progress → finalizing → completed, or failed,
cancelling → cancelled, expired; plus the enqueued-token quota.

The state machine is advanced on a simulated clock (see :mod:`.clock`) by a ticker thread
and before every API call. Slow work (validating a file, writing results) runs on a worker
thread without the lock, so API calls stay fast while a large batch is being processed;
a phase ends only when both its simulated duration has passed and its work is done.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..formats.wire import endpoint_of
from ..tokens import TokenCounter
from ..validate import validate_file
from .api_error import ApiError, invalid_request
from .clock import SimClock
from .config import (
    CANCELLING_SECONDS,
    COMPLETION_WINDOW_SECONDS,
    FINALIZING_SECONDS,
    IN_PROGRESS_BASE_SECONDS,
    IN_PROGRESS_SECONDS_PER_REQUEST,
    VALIDATING_SECONDS,
    EmulatorConfig,
    Faults,
)
from .results import ResultSettings, scan_input, write_results
from .store import BatchRecord, FileRecord, Store, new_batch_id, new_file_id

# Codes the services use when a batch's input breaks their rules; at most this many are
# reported per batch, like the services (which stop early too).
MAX_REPORTED_ERRORS = 1000
TICK_SECONDS = 0.02

OPENAI_ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses")
AZURE_ENDPOINTS = (
    "/chat/completions",
    "/responses",
    "/completions",
    "/embeddings",
    *OPENAI_ENDPOINTS,
)
_OUTPUT_EXPIRY_RANGE = {"azure": (1_209_600, 2_592_000), "openai": (3_600, 2_592_000)}
OPENAI_DEFAULT_FILE_EXPIRY = 30 * 86_400

TOKEN_LIMIT_MESSAGE = (
    "The number of enqueued tokens has surpassed the configured limit of {limit} for the "
    "deployment '{deployment}'. Please either increase the limit or try again once the "
    "current jobs have finished."
)


def _window_end(record: BatchRecord) -> float:
    """Simulated time a batch's completion window closes (a state saved before the window
    was kept apart from the dates: its ``expires_at``, then on the simulated clock too)."""
    if record.window_ends_at is not None:
        return record.window_ends_at
    return float(record.obj["expires_at"])


def short_number(value: int) -> str:
    """30000 → ``30K``, 5000000 → ``5M``, as Azure writes limits in messages."""
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K")):
        if value >= size:
            return f"{round(value / size, 1):g}{suffix}"
    return str(value)


class BatchEngine:
    """Owns the store, the clock and the workers; every method is thread-safe."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.store = Store(config.data_dir)
        start = self.store.saved_sim_time
        self.clock = SimClock(config.speed, start=start)
        if start is not None and self.clock.now() < start:
            self.clock.advance(start - self.clock.now())
        self.faults: Faults = config.faults
        self.counter = TokenCounter(config.deployments)
        self.fault_rng = random.Random(config.seed)
        self._jobs: dict[str, Future[None]] = {}
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="emulator-work")
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="emulator-ticker", daemon=True)
        self._ticker.start()

    # --- lifecycle of the engine --------------------------------------------------------

    def close(self) -> None:
        self._stop.set()
        self._ticker.join(timeout=2)
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self.lock:
            self.store.save(self.clock.now())
            self.store.close()

    def reset(self) -> None:
        """Forget all files and batches and go back to the configured faults."""
        with self.lock:
            for future in self._jobs.values():
                future.cancel()
            self._jobs.clear()
            self.store.clear()
            self.faults = self.config.faults
            self.fault_rng = random.Random(self.config.seed)
            self.store.save(self.clock.now())

    def advance_clock(self, seconds: float) -> float:
        """Jump the simulated clock; a batch whose 24 h window the jump passes expires with
        the progress it had before the jump."""
        with self.lock:
            now = self.clock.now()
            for record in self.store.batches.values():
                if record.status == "in_progress" and now + seconds >= _window_end(record):
                    record.done_fraction = self._progress(record, now)
                    record.expire = True
            self.clock.advance(seconds)
            self._advance_all()
            return self.clock.now()

    def _tick(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            self.advance()

    def now(self) -> int:
        """The date objects carry: the wall clock (only durations are simulated)."""
        return int(time.time())

    # --- files --------------------------------------------------------------------------

    def add_file(
        self,
        source: str,
        *,
        filename: str,
        purpose: str,
        size: int,
        expires_after_seconds: int | None,
        flavor: str,
    ) -> FileRecord:
        with self.lock:
            created = self.now()
            expires_at = None
            if expires_after_seconds is not None:
                expires_at = created + expires_after_seconds
            elif flavor == "openai" and purpose == "batch":
                expires_at = created + OPENAI_DEFAULT_FILE_EXPIRY
            record = FileRecord(
                id=new_file_id(),
                bytes=size,
                created_at=created,
                filename=filename,
                purpose=purpose,
                expires_at=expires_at,
            )
            self.store.add_file(record, source)
            self.store.save(self.clock.now())
            return record

    def delete_file(self, file_id: str) -> None:
        with self.lock:
            self.store.delete_file(file_id)
            self.store.save(self.clock.now())

    # --- batches ------------------------------------------------------------------------

    def enqueued_tokens(self, deployment: str) -> int:
        """Input tokens of the non-terminal batches of ``deployment`` (Azure's queue)."""
        with self.lock:
            return sum(
                b.input_tokens
                for b in self.store.batches.values()
                if not b.terminal and b.deployment == deployment
            )

    def create_batch(
        self, params: dict[str, Any], flavor: str
    ) -> tuple[BatchRecord, dict[str, str]]:
        """Create a batch from a create-request body; returns it and extra response headers."""
        input_file = self._check_create(params, flavor)
        scan = None
        if self.faults.token_quota is not None:
            scan = self._scan(input_file)
        with self.lock:
            self._advance_all()
            now = self.now()
            record = BatchRecord(
                obj={
                    "id": new_batch_id(),
                    "object": "batch",
                    "endpoint": params["endpoint"],
                    "errors": None,
                    "input_file_id": input_file.id,
                    "completion_window": params["completion_window"],
                    "status": "validating",
                    "output_file_id": None,
                    "error_file_id": None,
                    "created_at": now,
                    "in_progress_at": None,
                    "expires_at": now + COMPLETION_WINDOW_SECONDS,
                    "finalizing_at": None,
                    "completed_at": None,
                    "failed_at": None,
                    "expired_at": None,
                    "cancelling_at": None,
                    "cancelled_at": None,
                    "request_counts": {"total": 0, "completed": 0, "failed": 0},
                    "metadata": params.get("metadata"),
                },
                flavor=flavor,
                phase_ends_at=self.clock.now() + VALIDATING_SECONDS,
                window_ends_at=self.clock.now() + COMPLETION_WINDOW_SECONDS,
                expire=self._draw_expiry(),
            )
            output_expiry = params.get("output_expires_after")
            if isinstance(output_expiry, dict):
                record.extra["output_expires_after"] = int(output_expiry["seconds"])
            headers: dict[str, str] = {}
            if scan is not None:
                headers = self._apply_quota(record, scan, now)
            self.store.batches[record.id] = record
            self.store.save(self.clock.now())
            return record, headers

    def _apply_quota(self, record: BatchRecord, scan: dict[str, Any], now: int) -> dict[str, str]:
        """Azure's fail-fast check of the enqueued-token quota; returns the quota headers."""
        deployment = scan["deployment"] or ""
        record.deployment = deployment
        record.input_tokens = scan["input_tokens"]
        record.obj["request_counts"]["total"] = scan["requests"]
        limit = self.faults.quota_for(deployment)
        if limit is None:
            return {}
        enqueued = self.enqueued_tokens(deployment)
        if enqueued + record.input_tokens > limit:
            message = TOKEN_LIMIT_MESSAGE.format(limit=short_number(limit), deployment=deployment)
            self._fail(
                record,
                [{"code": "token_limit_exceeded", "message": message, "line": None, "param": None}],
                now,
            )
        else:
            enqueued += record.input_tokens
        return {
            "deployment-enqueued-tokens": str(enqueued),
            "deployment-maximum-enqueued-tokens": str(limit),
        }

    def _draw_expiry(self) -> bool:
        faults = self.faults
        if faults.expire_next > 0:
            self.faults = faults.updated({"expire_next": faults.expire_next - 1})
            return True
        return bool(faults.expire_rate) and self.fault_rng.random() < faults.expire_rate

    def _check_create(self, params: dict[str, Any], flavor: str) -> FileRecord:
        """The synchronous checks of batch create (HTTP 400 before any batch exists)."""
        file_id = params.get("input_file_id")
        if not isinstance(file_id, str) or not file_id:
            raise invalid_request(
                "Missing required parameter: 'input_file_id'.",
                param="input_file_id",
                code="missing_required_parameter",
            )
        endpoint = params.get("endpoint")
        allowed = AZURE_ENDPOINTS if flavor == "azure" else OPENAI_ENDPOINTS
        if endpoint not in allowed:
            names = ", ".join(f"'{e}'" for e in allowed)
            raise invalid_request(
                f"Invalid value: {endpoint!r}. Supported values are: {names}.",
                param="endpoint",
                code="invalid_value",
            )
        window = params.get("completion_window")
        if window != "24h":
            raise invalid_request(
                f"Invalid value for 'completion_window': {window!r}. Supported values are: '24h'.",
                param="completion_window",
                code="invalid_value",
            )
        _check_metadata(params.get("metadata"))
        check_expiry(params.get("output_expires_after"), "output_expires_after", flavor)
        with self.lock:
            record = self.store.files.get(file_id)
        if record is None:
            raise invalid_request(
                f"Cannot find file {file_id}, or you do not have access to it.",
                param="input_file_id",
                code="invalid_request",
            )
        if record.purpose != "batch":
            raise invalid_request(
                f"File {file_id} has purpose {record.purpose!r}; a batch needs purpose 'batch'.",
                param="input_file_id",
                code="invalid_request",
            )
        return record

    def cancel_batch(self, batch_id: str) -> BatchRecord:
        with self.lock:
            self._advance_all()
            record = self.get_batch(batch_id)
            status = record.status
            if status in ("completed", "failed", "expired"):
                raise ApiError(
                    409,
                    {
                        "error": {
                            "message": f"Cannot cancel a batch with status '{status}'.",
                            "type": "invalid_request_error",
                            "param": None,
                            "code": None,
                        }
                    },
                )
            if status in ("validating", "in_progress", "finalizing"):
                now = self.clock.now()
                if status == "validating":
                    record.done_fraction = 0.0
                elif status == "in_progress":
                    record.done_fraction = self._progress(record, now)
                record.obj["status"] = "cancelling"
                record.obj["cancelling_at"] = self.now()
                record.phase_ends_at = now + CANCELLING_SECONDS
                self.store.save(now)
            return record

    def get_batch(self, batch_id: str) -> BatchRecord:
        with self.lock:
            record = self.store.batches.get(batch_id)
        if record is None:
            raise invalid_request(
                f"No batch found with id '{batch_id}'.", code="not_found", status=404
            )
        return record

    # --- the state machine --------------------------------------------------------------

    def advance(self) -> None:
        """Move every batch as far as the simulated clock and finished work allow."""
        with self.lock:
            self._advance_all()

    def _advance_all(self) -> None:
        now = self.clock.now()
        changed = False
        for record in list(self.store.batches.values()):
            if not record.terminal:
                changed |= self._advance(record, now)
        if changed:
            self.store.save(now)

    def _advance(self, record: BatchRecord, now: float) -> bool:
        """One step of one batch; True when its status changed."""
        if record.status == "validating":
            return self._advance_validating(record, now)
        if record.status == "in_progress":
            return self._advance_in_progress(record, now)
        if record.status in ("finalizing", "cancelling"):
            return self._advance_wrapping_up(record, now)
        return False

    def _advance_validating(self, record: BatchRecord, now: float) -> bool:
        if record.validation is None:
            self._start(record, self._validate)
            return False
        if now < (record.phase_ends_at or 0.0):
            return False
        if record.validation["errors"]:
            self._fail(record, record.validation["errors"], self.now())
            return True
        total = record.validation["total"]
        record.obj["status"] = "in_progress"
        record.obj["in_progress_at"] = self.now()
        record.started_at = now
        record.obj["request_counts"] = {"total": total, "completed": 0, "failed": 0}
        record.phase_ends_at = (
            now + IN_PROGRESS_BASE_SECONDS + IN_PROGRESS_SECONDS_PER_REQUEST * total
        )
        return True

    def _advance_in_progress(self, record: BatchRecord, now: float) -> bool:
        progress = self._progress(record, now)
        window_over = now >= _window_end(record)
        fault_expiry = record.expire and progress >= self.faults.expire_progress
        if window_over or fault_expiry:
            if record.done_fraction is None:
                record.done_fraction = self.faults.expire_progress if fault_expiry else progress
            record.expire = True
            if record.results is None:
                self._start(record, self._write_results)
                return False
            self._finish(record, "expired", self.now())
            return True
        if now >= (record.phase_ends_at or 0.0):
            record.obj["status"] = "finalizing"
            record.obj["finalizing_at"] = self.now()
            record.phase_ends_at = now + FINALIZING_SECONDS
            self._start(record, self._write_results)
            return True
        counts = record.obj["request_counts"]
        counts["completed"] = math.floor(progress * counts["total"])
        return False

    def _advance_wrapping_up(self, record: BatchRecord, now: float) -> bool:
        """``finalizing`` → ``completed`` and ``cancelling`` → ``cancelled``, once the
        results are written and the phase's simulated time has passed."""
        cancelled_before_start = record.obj["in_progress_at"] is None
        if record.results is None and not cancelled_before_start:
            self._start(record, self._write_results)
            return False
        if now < (record.phase_ends_at or 0.0):
            return False
        self._finish(
            record, "completed" if record.status == "finalizing" else "cancelled", self.now()
        )
        return True

    def _progress(self, record: BatchRecord, now: float) -> float:
        started = (
            record.started_at if record.started_at is not None else record.obj["in_progress_at"]
        )
        ends = record.phase_ends_at
        if started is None or ends is None or ends <= started:
            return 0.0
        return max(0.0, min(1.0, (now - started) / (ends - started)))

    def _fail(self, record: BatchRecord, errors: list[dict[str, Any]], now: int) -> None:
        record.obj["status"] = "failed"
        record.obj["failed_at"] = now
        record.obj["errors"] = {"object": "list", "data": errors}

    def _finish(self, record: BatchRecord, status: str, now: int) -> None:
        """Enter a terminal state with results: register the output and error files."""
        record.obj["status"] = status
        record.obj[f"{status}_at"] = now
        results = record.results
        if results is None:
            return
        counts = record.obj["request_counts"]
        counts["completed"] = results["completed"]
        counts["failed"] = results["failed"]
        for kind, key in (("output", "output_file_id"), ("error", "error_file_id")):
            path = Path(results[kind])
            if not path.exists():
                continue
            size = path.stat().st_size
            if size == 0 and record.flavor == "openai":
                # OpenAI leaves the id null when there is nothing to put in the file; Azure
                # always gives an (empty) error file.
                path.unlink()
                continue
            seconds = record.extra.get("output_expires_after")
            file_record = FileRecord(
                id=new_file_id(),
                bytes=size,
                created_at=now,
                filename=f"{record.id}_{kind}.jsonl",
                purpose="batch_output",
                expires_at=None if seconds is None else now + seconds,
            )
            self.store.add_file(file_record, path)
            record.obj[key] = file_record.id

    # --- work on the worker threads -----------------------------------------------------

    def _start(self, record: BatchRecord, work: Callable[[BatchRecord], None]) -> None:
        if record.id in self._jobs:
            return
        future = self._executor.submit(self._run_job, record, work)
        self._jobs[record.id] = future

    def _run_job(self, record: BatchRecord, work: Callable[[BatchRecord], None]) -> None:
        try:
            work(record)
        except Exception as exc:
            # E.g. the input file was deleted mid-way: fail the batch instead of retrying.
            with self.lock:
                if not record.terminal:
                    error = {"code": "internal_error", "message": str(exc), "line": None}
                    self._fail(record, [{**error, "param": None}], self.now())
        finally:
            with self.lock:
                self._jobs.pop(record.id, None)
                if record.id in self.store.batches:
                    self._advance_all()

    def _scan(self, file_record: FileRecord) -> dict[str, Any]:
        if file_record.scan is None:
            file_record.scan = scan_input(self.store.content_path(file_record.id), self.counter)
        return file_record.scan

    def _validate(self, record: BatchRecord) -> None:
        """Check the input file as the service would (the project's validator)."""
        with self.lock:
            file_record = self.store.files.get(record.obj["input_file_id"])
        if file_record is None:
            errors = [
                {
                    "code": "invalid_request",
                    "message": f"Cannot find file {record.obj['input_file_id']}.",
                    "line": None,
                    "param": "input_file_id",
                }
            ]
            result: dict[str, Any] = {"errors": errors, "total": 0}
        else:
            result = self._validation_errors(record, file_record)
        with self.lock:
            record.validation = result

    def _validation_errors(self, record: BatchRecord, file_record: FileRecord) -> dict[str, Any]:
        path = self.store.content_path(file_record.id)
        report = validate_file(path, target=record.flavor, max_errors=MAX_REPORTED_ERRORS)
        errors = [
            {
                "code": finding.service_code or finding.code,
                "message": finding.message,
                "line": finding.line,
                "param": finding.path,
            }
            for finding in report.findings
            if finding.severity == "error"
        ]
        scan = self._scan(file_record)
        with self.lock:
            record.deployment = scan["deployment"]
            record.input_tokens = scan["input_tokens"]
        deployments = self.config.deployments
        if not errors and deployments and scan["deployment"] not in deployments:
            errors.append(
                {
                    "code": "model_not_found",
                    "message": (
                        f"The deployment name '{scan['deployment']}' in the model property "
                        "wasn't found."
                    ),
                    "line": None,
                    "param": "body.model",
                }
            )
        if not errors and record.flavor == "openai" and report.url is not None:
            batch_endpoint = endpoint_of(record.obj["endpoint"])
            if endpoint_of(report.url) != batch_endpoint:
                errors.append(
                    {
                        "code": "invalid_url",
                        "message": (
                            "The URL provided for this request does not match the batch endpoint."
                        ),
                        "line": 1,
                        "param": "url",
                    }
                )
        return {"errors": errors, "total": scan["requests"]}

    def _write_results(self, record: BatchRecord) -> None:
        with self.lock:
            if record.results is not None:
                return
            file_record = self.store.files.get(record.obj["input_file_id"])
            settings = ResultSettings(
                batch_id=record.id,
                flavor=record.flavor,
                seed=self.config.seed,
                deployments=self.config.deployments,
                failure_rate=self.faults.request_failure_rate,
                failure_statuses=list(self.faults.request_failure_statuses),
                created=self.now(),
                done_fraction=record.done_fraction,
                expired=record.expire and record.status == "in_progress",
            )
            output_path = self.store.new_result_path()
            error_path = self.store.new_result_path()
            total = (record.validation or {}).get("total", 0)
        if file_record is not None:
            input_path = self.store.content_path(file_record.id)
            counts = write_results(
                input_path, settings, self.counter, output_path, error_path, total
            )
            completed, failed = counts.completed, counts.failed
        else:
            completed = failed = 0
        with self.lock:
            record.results = {
                "output": str(output_path),
                "error": str(error_path),
                "completed": completed,
                "failed": failed,
            }

    # --- state for the control endpoint ---------------------------------------------------

    def state(self) -> dict[str, Any]:
        with self.lock:
            self._advance_all()
            deployments = {b.deployment for b in self.store.batches.values() if b.deployment}
            return {
                "sim_time": self.clock.now(),
                "speed": self.clock.speed,
                "faults": self.faults.to_dict(),
                "deployments": dict(self.config.deployments),
                "files": [f.to_api() for f in self.store.files.values()],
                "batches": [dict(b.obj) for b in self.store.batches.values()],
                "enqueued_tokens": {d: self.enqueued_tokens(d) for d in sorted(deployments)},
            }


def _check_metadata(metadata: Any) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise invalid_request(
            "Invalid type for 'metadata': expected an object.",
            param="metadata",
            code="invalid_type",
        )
    if len(metadata) > 16:
        raise invalid_request(
            "Invalid 'metadata': too many properties. Expected at most 16.",
            param="metadata",
            code="invalid_value",
        )
    for key, value in metadata.items():
        if not isinstance(value, str):
            kind = "an array" if isinstance(value, list) else f"a {type(value).__name__}"
            raise invalid_request(
                f"Invalid type for 'metadata.{key}': expected a string, but got {kind} instead.",
                param=f"metadata.{key}",
                code="invalid_type",
            )
        if len(key) > 64 or len(value) > 512:
            raise invalid_request(
                f"Invalid 'metadata.{key}': keys are at most 64 and values at most 512 characters.",
                param=f"metadata.{key}",
                code="invalid_value",
            )


def check_expiry(value: Any, param: str, flavor: str) -> int | None:
    """Validate an ``expires_after`` object; returns its seconds (None when absent)."""
    if value is None:
        return None
    low, high = _OUTPUT_EXPIRY_RANGE[flavor]
    if not isinstance(value, dict):
        raise invalid_request(f"Invalid type for '{param}': expected an object.", param=param)
    if value.get("anchor") != "created_at":
        raise invalid_request(
            f"Invalid value for '{param}.anchor': expected 'created_at'.",
            param=f"{param}.anchor",
            code="invalid_value",
        )
    seconds = value.get("seconds")
    if isinstance(seconds, str) and seconds.isdigit():
        seconds = int(seconds)
    if not isinstance(seconds, int) or not low <= seconds <= high:
        raise invalid_request(
            f"Invalid value for '{param}.seconds': expected an integer between {low} and "
            f"{high}, got {seconds!r}.",
            param=f"{param}.seconds",
            code="invalid_value",
        )
    value["seconds"] = seconds
    return seconds
