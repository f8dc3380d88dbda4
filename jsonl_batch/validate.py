"""Streaming validator: find what the batch service would reject, before it does.

One pass over the file, every problem counted (not only the first), each with a code (the
service's own where it has one), a severity, file, line, the JSON path inside the line, a
message and a hint. The first ``MAX_FINDINGS_PER_CODE`` findings of each code are kept and
the rest only counted, so memory does not grow with the number of problems. The
:class:`Validator` checks one line at a time so ``split`` can validate in the same pass that
writes shards.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from pydantic import BaseModel, ValidationError

from .errors import PriceNotFound
from .formats.wire import BODY_MODELS, endpoint_of, model_required
from .jsonl import (
    BLANK,
    BOM_PRESENT,
    CRLF,
    DEFAULT_MAX_LINE_BYTES,
    INVALID_UTF8,
    LINE_TOO_LONG,
    NO_FINAL_NEWLINE,
    NON_STANDARD_NUMBER,
    Line,
    duplicate_key_of,
    read_lines,
    source_name,
)
from .profiles import Profile, as_profile
from .quickcheck import quick_check, quick_struct

if TYPE_CHECKING:  # the tokenizer loads only when tokens are counted
    from .pricing import ModelPrice, PriceTable
    from .tokens import TokenCounter

Severity = Literal["error", "warning"]

# Code → hint. How severe each code is for a target, and where the rule comes from, is in
# the target's profile (data/profiles.json): a rule with no source is at most a warning.
# Codes the services use keep their names (invalid_json_line, duplicate_custom_id,
# url_mismatch, model_mismatch, empty_file, too_many_tasks); ``Finding.service_code`` gives
# the target's own code for the others.
RULES: dict[str, str] = {
    "invalid_json_line": "each line must be one complete JSON object",
    "line_too_long": "no service takes a line longer than its whole input file (200 MB); shorten"
    " the request, or raise max_line_bytes for Azure's 1 GB bring-your-own-storage files",
    "invalid_utf8": "save the file as UTF-8",
    "not_an_object": "each line must be a JSON object {...}, not an array or value",
    "duplicate_key": "remove the repeated key; the service keeps only one of the values",
    "utf8_bom": "save the file as UTF-8 without a byte-order mark (BOM)",
    "crlf_line_ending": "convert line endings to \\n (e.g. dos2unix)",
    "blank_line": "remove empty lines",
    "missing_final_newline": "end the file with a newline",
    "unknown_field": "a request line has exactly custom_id, method, url and body",
    "missing_custom_id": "add a unique string custom_id to every line",
    "invalid_custom_id": "make custom_id a string",
    "blank_custom_id": "give every request a non-empty custom_id",
    "duplicate_custom_id": "give every request a unique custom_id",
    "invalid_method": 'set "method": "POST"',
    "missing_url": 'add "url", e.g. "/v1/chat/completions"',
    "unsupported_url": "use a url the target accepts, or the target the file is for (target=NAME)",
    "url_mismatch": "every line of one file must use the same url; split the file",
    "missing_body": "add the request body as a JSON object",
    "missing_model": "set body.model (the deployment name on Azure)",
    "placeholder_model": "replace the placeholder with your deployment/model name",
    "model_mismatch": "one model/deployment per file: split the file by model (split_file)",
    "invalid_body": "fix the field so it matches the endpoint's request schema",
    "stream_not_supported": "remove body.stream; batch requests cannot stream",
    "empty_file": "the file needs at least one request",
    "too_many_tasks": "split the file (split_file)",
    "file_too_large": "split the file (split_file)",
    "too_many_embedding_inputs": "split the file into smaller batches",
    "context_window_exceeded": "shorten the prompt or use a model with more context",
    "max_tokens_too_large": "lower body.max_tokens to the model's maximum output",
    "token_count_approximate": "the count for this request is an estimate",
    "no_price": 'map the deployment with deployment_map={"NAME": "MODEL"} or pass prices=FILE',
}

MAX_FINDINGS_PER_CODE = 100  # kept with their line; the rest of a code is only counted

_convert = msgspec.convert
_StructError = msgspec.ValidationError

_PROGRESS_BYTES = 1 << 20
_TOP_LEVEL_KEYS = frozenset({"custom_id", "method", "url", "body"})
# Strings pydantic's lax mode reads as booleans (pydantic docs, "Conversion Table": bool).
_LAX_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_LAX_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})
# Union member tags pydantic puts into error locations; not part of the JSON path.
_UNION_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found in a file."""

    code: str
    severity: Severity
    file: str
    line: int | None
    path: str | None
    message: str
    hint: str | None = None
    service_code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "file": self.file,
            "line": self.line,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
            "service_code": self.service_code,
        }

    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass
class ValidationReport:
    """Everything found in one file: every finding counted, the first
    ``MAX_FINDINGS_PER_CODE`` of each code kept in ``findings``."""

    file: str
    target: str
    findings: list[Finding] = field(default_factory=list)
    requests: int = 0
    bytes: int = 0
    url: str | None = None
    model: str | None = None
    truncated: bool = False
    """True when ``max_errors`` stopped the scan early."""
    counts: Counter[tuple[str, Severity]] = field(default_factory=Counter)
    """Every finding, kept or not, by (code, severity)."""

    def count(self, code: str, severity: Severity) -> bool:
        """Count a finding; True while its code has room to keep it in ``findings``."""
        key = (code, severity)
        seen = self.counts[key] = self.counts[key] + 1
        return seen <= MAX_FINDINGS_PER_CODE

    @property
    def errors(self) -> int:
        return sum(n for (_code, severity), n in self.counts.items() if severity == "error")

    @property
    def warnings(self) -> int:
        return sum(n for (_code, severity), n in self.counts.items() if severity == "warning")

    @property
    def ok(self) -> bool:
        """True when the file has no errors (warnings allowed)."""
        return self.errors == 0

    def counts_by_code(self) -> dict[str, tuple[Severity, int]]:
        return {code: (sev, n) for (code, sev), n in sorted(self.counts.items())}

    def omitted(self) -> dict[str, int]:
        """Findings counted but not kept, by code."""
        return {
            code: n - MAX_FINDINGS_PER_CODE
            for (code, _sev), n in sorted(self.counts.items())
            if n > MAX_FINDINGS_PER_CODE
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "target": self.target,
            "ok": self.ok,
            "requests": self.requests,
            "bytes": self.bytes,
            "url": self.url,
            "model": self.model,
            "errors": self.errors,
            "warnings": self.warnings,
            "truncated": self.truncated,
            "counts": {code: n for code, (_sev, n) in self.counts_by_code().items()},
            "findings": [f.to_dict() for f in self.findings],
            "omitted": self.omitted(),
        }


TokenCheck = Callable[[Line, str, dict[str, Any]], Iterable[tuple[str, str, str]]]
"""Optional per-request check: (line, endpoint, body) → (code, path, message) triples."""


class Validator:
    """Check lines one at a time; :meth:`finish` adds the file-level findings.

    Memory: one entry per distinct ``custom_id`` (for duplicate detection) plus findings.
    """

    def __init__(
        self,
        file: str,
        profile: Profile | str = "azure",
        *,
        max_errors: int | None = None,
        token_check: TokenCheck | None = None,
        ignore_codes: Iterable[str] = (),
    ) -> None:
        self.profile = as_profile(profile)
        self.ignore_codes = frozenset(ignore_codes)
        self.report = ValidationReport(file=file, target=self.profile.name)
        self.max_errors = max_errors
        self.token_check = token_check
        self._errors = 0
        self._seen_ids: dict[str, int] = {}
        self._first_url: tuple[str, int] | None = None
        self._first_model: tuple[str, int] | None = None
        self._crlf_lines = 0
        self._first_crlf: int | None = None
        self._last_line: Line | None = None
        self._limit_lines: dict[str, int] = {}
        self._embedding_inputs = 0
        # the target's limits, -1 (0 for the id length) where it has none
        profile = self.profile
        self._max_requests = -1 if profile.max_requests is None else profile.max_requests
        self._max_bytes = -1 if profile.max_bytes is None else profile.max_bytes
        self._max_id = profile.max_custom_id_length or 0
        # the quick path calls _note_limits only past these (inf: nothing left to note)
        self._watch_requests: float = self._max_requests if self._max_requests >= 0 else math.inf
        self._watch_bytes: float = self._max_bytes if self._max_bytes >= 0 else math.inf
        # (url, model, quick check) of the first good line, once known: see _fast_accepts.
        self._fast: tuple[str, str, Callable[[Any], bool]] | None = None
        # the same as one msgspec type, when the body model has one: see accepts_parsed.
        self._fast_line: Any = None
        # With model_mismatch silenced (split ignores it), a request for another model has
        # nothing to report either: the quick path takes every (non-placeholder) model seen.
        silenced = "model_mismatch" in self.ignore_codes or (
            self.profile.rule("model_mismatch").severity == "off"
        )
        self._fast_models: set[str] | None = set() if silenced else None

    @property
    def error_count(self) -> int:
        """Errors found so far."""
        return self._errors

    @property
    def stopped(self) -> bool:
        """True once ``max_errors`` errors have been found."""
        return self.max_errors is not None and self._errors >= self.max_errors

    def _add(self, code: str, line: int | None, message: str, path: str | None = None) -> None:
        if code in self.ignore_codes:
            return
        severity = self.profile.rule(code).severity
        if severity == "off":
            return
        if severity == "error":
            if self.stopped:
                self.report.truncated = True
                return
            self._errors += 1
        if self.report.count(code, severity):
            self.report.findings.append(
                Finding(
                    code,
                    severity,
                    self.report.file,
                    line,
                    path,
                    message,
                    RULES[code],
                    self.profile.service_code(code),
                )
            )

    # -- per line ---------------------------------------------------------------------

    def accepts_parsed(self, number: int, raw: bytes, obj: Any) -> bool:
        """Check a clean line (one JSON object, ``\\n``-terminated, no notices) the quick
        way: True when it is a request like the first good one (same url and model, new
        custom_id, a body its model accepts), counted as checked. False changes nothing: the
        line then goes to :meth:`check`, which says what is wrong. ``read_lines(fast=...)``
        calls this before it makes a :class:`Line`."""
        kind = self._fast_line
        if kind is None:  # no good line yet, or no struct for this target or body model
            return False
        try:
            line = _convert(obj, kind)
        except _StructError:  # anything unusual, stream=true included: the full checks
            return False
        custom_id = line.custom_id
        seen = self._seen_ids
        if custom_id in seen or custom_id.isspace():
            return False
        seen[custom_id] = number
        report = self.report
        report.bytes += len(raw)
        report.requests += 1
        if report.requests > self._watch_requests or report.bytes > self._watch_bytes:
            self._note_limits(number)
        return True

    def check(self, line: Line) -> None:
        """Check one line (in file order)."""
        report = self.report
        report.bytes += len(line.raw) or line.dropped
        if self._fast is not None and self._fast_accepts(line):
            report.requests += 1
            if report.requests == self._max_requests + 1 or report.bytes > self._max_bytes >= 0:
                self._note_limits(line.number)
            return
        self._check_slowly(line)

    def _fast_accepts(self, line: Line) -> bool:
        """The common case in one go: a clean line like the first good one (same url and
        model, new custom_id, a body the quick check accepts). False sends the line to the
        full checks, which then say what is wrong; so this path never hides a finding."""
        obj = line.obj
        if line.notices or type(obj) is not dict or len(obj) != 4:
            return False
        url, model, accepts = self._fast  # type: ignore[misc]
        body = obj.get("body")
        custom_id = obj.get("custom_id")
        if (
            obj.get("url") != url
            or obj.get("method") != "POST"
            or type(body) is not dict
            or body.get("model") != model
            or body.get("stream") is True
            or type(custom_id) is not str
            or not custom_id
            or (self._max_id and len(custom_id) > self._max_id)
            or custom_id.isspace()
            or custom_id in self._seen_ids
            or not accepts(body)
        ):
            return False
        self._seen_ids[custom_id] = line.number
        return True

    def _note_limits(self, number: int) -> None:
        """Note the line where the file crosses the target's request or byte limit."""
        if self.report.requests == self._max_requests + 1:
            self._limit_lines["requests"] = number
        if self.report.bytes > self._max_bytes >= 0 and "bytes" not in self._limit_lines:
            self._limit_lines["bytes"] = number
        # past a limit it was noted (or there is none): the quick path stops looking
        if self.report.requests > self._max_requests:
            self._watch_requests = math.inf
        if "bytes" in self._limit_lines or self._max_bytes < 0:
            self._watch_bytes = math.inf

    def _check_slowly(self, line: Line) -> None:
        # Only a line that takes this path can lack its final newline (fast lines have no
        # notices), so this is where finish() looks for it.
        self._last_line = line
        report = self.report
        number = line.number
        notices = line.notices
        if notices:
            self._check_notices(line)
            if BLANK in notices:
                return
        report.requests += 1
        self._note_limits(number)
        if line.error is not None:
            if LINE_TOO_LONG in notices:
                self._add("line_too_long", number, line.error)
            elif INVALID_UTF8 in notices:
                self._add("invalid_utf8", number, line.error)
            else:
                self._add("invalid_json_line", number, line.error)
            return
        obj = line.obj
        if type(obj) is not dict:
            self._add(
                "not_an_object",
                number,
                f"line is a JSON {_json_type(obj)}, not an object",
            )
            return
        self._check_envelope(number, obj)
        body = obj.get("body")
        if body is None:
            if "body" not in obj:
                self._add("missing_body", number, "missing required field 'body'", "body")
            else:
                self._add("missing_body", number, "'body' is null", "body")
            return
        if type(body) is not dict:
            self._add("invalid_body", number, "'body' must be a JSON object", "body")
            return
        url = obj.get("url")
        endpoint = self.profile.urls.get(url) if type(url) is str else None
        self._check_body(line, endpoint, body)

    def _check_notices(self, line: Line) -> None:
        number = line.number
        for notice in line.notices:
            if notice == BOM_PRESENT:
                self._add("utf8_bom", 1, "file starts with a UTF-8 byte-order mark (BOM)")
            elif notice == CRLF:
                self._crlf_lines += 1
                if self._first_crlf is None:
                    self._first_crlf = number
            elif notice == BLANK:
                self._add("blank_line", number, "blank line")
            elif notice == NON_STANDARD_NUMBER:
                pass  # reported as invalid_json_line with its own message
        if (key := duplicate_key_of(line)) is not None:
            self._add("duplicate_key", number, f"key {key!r} appears twice in one object")

    def _check_envelope(self, number: int, obj: dict[str, Any]) -> None:
        if not obj.keys() <= _TOP_LEVEL_KEYS:
            names = ", ".join(sorted(obj.keys() - _TOP_LEVEL_KEYS))
            self._add("unknown_field", number, f"unexpected top-level field(s): {names}")

        custom_id = obj.get("custom_id")
        if custom_id is None:
            self._add(
                "missing_custom_id", number, "missing required field 'custom_id'", "custom_id"
            )
        elif type(custom_id) is not str:
            self._add(
                "invalid_custom_id",
                number,
                f"custom_id must be a string, not {_json_type(custom_id)}",
                "custom_id",
            )
        elif not custom_id or custom_id.isspace():
            self._add("blank_custom_id", number, "custom_id is empty", "custom_id")
        else:
            if self._max_id and len(custom_id) > self._max_id:
                self._add(
                    "invalid_custom_id",
                    number,
                    f"custom_id is {len(custom_id)} characters; target "
                    f"{self.profile.name!r} allows {self._max_id}",
                    "custom_id",
                )
            first = self._seen_ids.setdefault(custom_id, number)
            if first != number:
                self._add(
                    "duplicate_custom_id",
                    number,
                    f"custom_id {custom_id!r} is already used on line {first}",
                    "custom_id",
                )

        method = obj.get("method")
        methods = self.profile.methods
        if type(method) is not str or (methods is not None and method not in methods):
            shown = "missing" if method is None else repr(method)
            self._add(
                "invalid_method", number, f"method is {shown}; only POST is supported", "method"
            )

        url = obj.get("url")
        if url is None:
            self._add("missing_url", number, "missing required field 'url'", "url")
        elif type(url) is not str or url not in self.profile.urls:
            allowed = ", ".join(self.profile.urls)
            self._add(
                "unsupported_url",
                number,
                f"url {url!r} is not a batch endpoint of target {self.profile.name!r} "
                f"(allowed: {allowed})",
                "url",
            )
        elif self._first_url is None:
            self._first_url = (url, number)
            self.report.url = url
        elif url != self._first_url[0]:
            self._add(
                "url_mismatch",
                number,
                f"url {url!r} differs from {self._first_url[0]!r} on line {self._first_url[1]}",
                "url",
            )

    def _check_body(self, line: Line, endpoint: str | None, body: dict[str, Any]) -> None:
        number = line.number
        model = body.get("model")
        if self._first_model is not None and model == self._first_model[0]:
            pass  # the common case: same model as the first line, already checked
        elif model is None:
            if model_required(endpoint):
                self._add(
                    "missing_model", number, "missing required field 'body.model'", "body.model"
                )
        elif type(model) is str:
            if _is_placeholder(model, self.profile.placeholder_models):
                self._add(
                    "placeholder_model",
                    number,
                    f"body.model {model!r} is a placeholder from the docs",
                    "body.model",
                )
            elif self._first_model is None:
                self._first_model = (model, number)
                self.report.model = model
            elif model != self._first_model[0]:
                if self._fast_models is not None and model not in self._fast_models:
                    self._fast_models.add(model)  # the mismatch is silenced: see __init__
                    if self._fast is not None:
                        url, first = self._fast[:2]
                        self._fast_line = self._line_struct(self.profile.urls[url], url, first)
                what = "deployment" if self.profile.model_is_deployment else "model"
                self._add(
                    "model_mismatch",
                    number,
                    f"{what} {model!r} differs from {self._first_model[0]!r} on line "
                    f"{self._first_model[1]}",
                    "body.model",
                )
        if _truthy(body.get("stream"), self.profile.lax_types):
            self._add(
                "stream_not_supported", number, "stream is not supported in batch", "body.stream"
            )
        if endpoint is None:
            return
        self._check_schema(number, endpoint, body)
        if endpoint == "embeddings" and self.profile.max_embedding_inputs is not None:
            inputs = body.get("input")
            self._embedding_inputs += (
                len(inputs)
                if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int)
                else 1
            )
        if self.token_check is not None:
            for code, path, message in self.token_check(line, endpoint, body):
                self._add(code, number, message, path)
        elif (
            self._fast is None
            and self._first_url is not None
            and self._first_model is not None
            and endpoint == self.profile.urls.get(self._first_url[0])
            and (endpoint != "embeddings" or self.profile.max_embedding_inputs is None)
        ):
            url, model = self._first_url[0], self._first_model[0]
            accepts = quick_check(BODY_MODELS[endpoint])
            self._fast = (url, model, accepts)
            self._fast_line = self._line_struct(endpoint, url, model)

    def _line_struct(self, endpoint: str, url: str, model: str) -> Any:
        """The msgspec type of a line :meth:`_fast_accepts` would accept, or None when the
        body model has no msgspec form, no ``stream`` field to see, or the target forbids
        unknown body fields (the struct ignores them)."""
        model_cls = BODY_MODELS[endpoint]
        if self.profile.forbid_unknown_body_fields or "stream" not in model_cls.model_fields:
            return None
        models = tuple(sorted({model, *(self._fast_models or ())}))
        body = quick_struct(model_cls, model=models, stream=(False, None))
        if body is None:
            return None
        custom_id = msgspec.Meta(min_length=1, max_length=self._max_id or None)
        return msgspec.defstruct(
            "FastRequestLine",
            [
                ("custom_id", Annotated[str, custom_id]),
                ("method", Literal["POST"]),
                ("url", Literal[url]),
                ("body", body),
            ],
            forbid_unknown_fields=True,
            gc=False,
        )

    def _check_schema(self, number: int, endpoint: str, body: dict[str, Any]) -> None:
        model_cls = BODY_MODELS[endpoint]
        if not quick_check(model_cls)(body):
            self._check_with_model(number, model_cls, body)
        if self.profile.forbid_unknown_body_fields:
            unknown = body.keys() - model_cls.model_fields.keys()
            for key in sorted(unknown):
                self._add(
                    "invalid_body",
                    number,
                    f"body.{key}: not a parameter this target accepts",
                    f"body.{key}",
                )

    def _check_with_model(
        self, number: int, model_cls: type[BaseModel], body: dict[str, Any]
    ) -> None:
        try:
            model_cls.model_validate(body)
        except ValidationError as exc:
            seen: set[str] = set()
            for error in exc.errors(include_url=False):
                loc = error["loc"]
                if loc == ("model",) and error["type"] == "missing":
                    continue  # reported as missing_model
                path = _json_path(loc)
                if path in seen or (
                    path == "body.stream"
                    and self.profile.lax_types
                    and _lax_bool(body.get("stream")) is not None
                ):
                    continue  # a lax target reads "true"/"false" as booleans
                seen.add(path)
                self._add("invalid_body", number, f"{path}: {_describe(error)}", path)

    # -- file level -------------------------------------------------------------------

    def finish(self) -> ValidationReport:
        """Add the file-level findings and return the report."""
        report = self.report
        profile = self.profile
        if self._crlf_lines:
            self._add(
                "crlf_line_ending",
                self._first_crlf,
                f"{self._crlf_lines} line(s) end with CRLF (\\r\\n), first on this line",
            )
        last = self._last_line
        if last is not None and NO_FINAL_NEWLINE in last.notices:
            self._add("missing_final_newline", last.number, "the last line has no newline")
        if report.requests == 0 and not report.truncated:
            self._add("empty_file", None, "the file has no requests")
        if profile.max_requests is not None and report.requests > profile.max_requests:
            self._add(
                "too_many_tasks",
                self._limit_lines.get("requests"),
                f"{report.requests:,} requests; target {profile.name!r} allows "
                f"{profile.max_requests:,} per file (first extra request on this line)",
            )
        if profile.max_bytes is not None and report.bytes > profile.max_bytes:
            self._add(
                "file_too_large",
                self._limit_lines.get("bytes"),
                f"{report.bytes:,} bytes; target {profile.name!r} allows "
                f"{profile.max_bytes:,} per file (limit crossed on this line)",
            )
        if (
            profile.max_embedding_inputs is not None
            and self._embedding_inputs > profile.max_embedding_inputs
        ):
            self._add(
                "too_many_embedding_inputs",
                None,
                f"{self._embedding_inputs:,} embedding inputs; target {profile.name!r} "
                f"allows {profile.max_embedding_inputs:,} per batch",
            )
        report.findings.sort(key=lambda f: f.line or 0)
        return report


def validate_file(
    path: str | os.PathLike[str] | IO[bytes],
    *,
    target: Profile | str = "azure",
    max_errors: int | None = None,
    tokens: bool = False,
    deployment_map: Mapping[str, str] | None = None,
    prices: PriceTable | str | os.PathLike[str] | None = None,
    region: str = "global",
    counter: TokenCounter | None = None,
    fetch_image_sizes: bool = False,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    on_progress: Callable[[int], None] | None = None,
) -> ValidationReport:
    """Validate one file (a path, a ``.jsonl.gz``, ``-`` for stdin, or a binary stream).

    A line over ``max_line_bytes`` is one ``line_too_long`` error, and reading goes on.
    ``tokens=True`` also counts every request's tokens: requests over the model's context
    window, output caps above its maximum and models with no known limits are findings.
    The model is ``body.model`` through ``deployment_map``; its limits come from ``prices``
    (a table or a price file; the bundled table by default) for ``region``. ``counter``
    counts (one shared by several files saves loading the tokenizer again);
    ``fetch_image_sizes`` reads remote image sizes over the network so they count exactly.
    """
    token_check = None
    if tokens:
        from .pricing import PriceTable
        from .tokens import RemoteImageSizes, TokenCounter

        if counter is None:
            sizes = RemoteImageSizes() if fetch_image_sizes else None
            counter = TokenCounter(deployment_map, image_size=sizes)
        table = prices if isinstance(prices, PriceTable) else PriceTable.load(prices)
        token_check = token_limit_check(
            counter, table, region=region, target=as_profile(target).name
        )
    validator = Validator(source_name(path), target, max_errors=max_errors, token_check=token_check)
    pending = 0  # bytes not yet reported to on_progress (reported per MiB, not per line)
    fast = validator.accepts_parsed
    if on_progress is not None:

        def fast(number: int, raw: bytes, obj: Any) -> bool:
            nonlocal pending
            if not validator.accepts_parsed(number, raw, obj):
                return False
            pending += len(raw)
            if pending >= _PROGRESS_BYTES:
                on_progress(pending)
                pending = 0
            return True

    for line in read_lines(path, max_line_bytes=max_line_bytes, fast=fast):
        validator.check(line)
        if on_progress is not None:
            pending += len(line.raw) or line.dropped
            if pending >= _PROGRESS_BYTES:
                on_progress(pending)
                pending = 0
        if max_errors is not None and validator.stopped:
            validator.report.truncated = True
            break
    if on_progress is not None and pending:
        on_progress(pending)
    return validator.finish()


def token_limit_check(
    counter: TokenCounter | None = None,
    prices: PriceTable | None = None,
    *,
    region: str = "global",
    target: str = "azure",
) -> TokenCheck:
    """A per-request check for :class:`Validator` (``validate_file(tokens=True)``).

    Finds requests over the model's context window (``context_window_exceeded``) and output
    caps above the model's maximum output (``max_tokens_too_large``), flags counts that are
    ranges or estimates (``token_count_approximate``), and names a model with no price (so
    no known limits) once (``no_price``). Make one check per file.
    """
    from .pricing import PriceTable, no_price_hint
    from .tokens import FLAG_REMOTE_IMAGE, TokenCounter

    tokens = counter if counter is not None else TokenCounter()
    table = prices if prices is not None else PriceTable.load()
    limits: dict[str, ModelPrice | None] = {}

    def check(line: Line, endpoint: str, body: dict[str, Any]) -> list[tuple[str, str, str]]:
        count = tokens.count_body(endpoint, body)
        found: list[tuple[str, str, str]] = []
        if count.model not in limits:
            try:
                limits[count.model] = table.lookup(count.model, region=region, target=target)
            except PriceNotFound:
                limits[count.model] = None
                found.append(
                    (
                        "no_price",
                        "body.model",
                        f"no price or limits for model {count.model!r}: its requests are "
                        f"counted but not checked against a context window; "
                        f"{no_price_hint(count.model)}",
                    )
                )
        price = limits[count.model]
        low = high = count.input_tokens
        if count.input_tokens_range is not None:
            low, high = count.input_tokens_range
        limit = price.max_input_tokens if price is not None else None
        if count.input_tokens_range is not None:
            over = (
                f"; may exceed {count.model}'s {limit:,}" if limit and high > limit >= low else ""
            )
            found.append(
                (
                    "token_count_approximate",
                    "body",
                    f"between {low:,} and {high:,} input tokens (a remote image's size, a "
                    f"file's extracted text or server-side text is unknown offline; "
                    f"fetch_image_sizes=True reads image sizes){over}",
                )
            )
        elif FLAG_REMOTE_IMAGE in count.flags:
            found.append(
                (
                    "token_count_approximate",
                    "body",
                    "an image URL's size is unknown offline; counted at the model's maximum "
                    "(fetch_image_sizes=True reads image sizes)",
                )
            )
        if price is None:
            return found
        if limit and low > limit:
            found.append(
                (
                    "context_window_exceeded",
                    "body",
                    f"{low:,} input tokens; {count.model} takes {limit:,}",
                )
            )
        cap = count.max_output_tokens
        if cap is not None and price.max_output_tokens and cap > price.max_output_tokens:
            field_name = next(
                (
                    k
                    for k in ("max_completion_tokens", "max_tokens", "max_output_tokens")
                    if k in body
                ),
                "max_tokens",
            )
            found.append(
                (
                    "max_tokens_too_large",
                    f"body.{field_name}",
                    f"asks for up to {cap:,} output tokens; {count.model} writes at most "
                    f"{price.max_output_tokens:,}",
                )
            )
        return found

    return check


def _lax_bool(value: Any) -> bool | None:
    """The boolean pydantic's lax mode reads from ``value``, or None when it reads none."""
    if type(value) is bool:
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    if type(value) is str:
        lowered = value.strip().lower()
        if lowered in _LAX_TRUE:
            return True
        if lowered in _LAX_FALSE:
            return False
    return None


def _truthy(value: Any, lax: bool) -> bool:
    """``body.stream`` asks for streaming: ``true``, or on a lax target ``"True"``, ``1``..."""
    return value is True or (lax and _lax_bool(value) is True)


def _is_placeholder(model: str, placeholders: frozenset[str]) -> bool:
    lowered = model.strip().lower()
    return (
        lowered in placeholders
        or lowered.startswith("replace-with")
        or lowered.startswith("your-")
        or (lowered.startswith("<") and lowered.endswith(">"))
    )


def _json_path(loc: tuple[int | str, ...]) -> str:
    """``("messages", 3, "role")`` → ``body.messages[3].role`` (union tags dropped)."""
    path = "body"
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in _UNION_TAGS or "[" in part or "-" in part or part[:1].isupper():
            continue
        else:
            path += f".{part}"
    return path


def _describe(error: Any) -> str:
    if error["type"] == "missing":
        return "required field is missing"
    if error["type"] == "extra_forbidden":
        return "unknown field"
    got = error.get("input")
    message = str(error["msg"])
    if error["type"] in {"string_type", "int_type", "list_type", "dict_type", "model_type"}:
        return f"{message} (got {_json_type(got)})"
    return message


def _json_type(value: Any) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
        type(None): "null",
    }.get(type(value), type(value).__name__)


__all__ = [
    "MAX_FINDINGS_PER_CODE",
    "RULES",
    "Finding",
    "ValidationReport",
    "Validator",
    "endpoint_of",
    "validate_file",
]
