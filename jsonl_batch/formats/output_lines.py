"""What one line of an output or error file says: its request's status, error and body.

The one reader of every line shape the batch services write (tests/corpus holds a real file
of each):

* **envelope** (OpenAI, Azure, current vLLM): ``"response": {"status_code", "request_id",
  "body"}``. Status 200 is a success; otherwise the error is in ``response.body.error``
  (OpenAI, Azure), or in ``"error"``: an object ``{"code", "message"}``, vLLM's
  ``ErrorResponse`` (flat ``{"object": "error", "message", "type", "code"}`` or nested
  ``{"error": {"message", "type", "code"}}``), or a plain string (vLLM's
  ``make_error_request_output``). Azure lines have no top-level ``id``.
* **bare completion** (vLLM's run-batch before the envelope, still in its README):
  ``"response"`` is the completion itself and ``"error"`` is null: a success.
* **no response** (OpenAI ``batch_expired``): ``"response": null`` and ``"error": {"code",
  "message"}``; ``batch_expired`` and ``batch_cancelled`` give those statuses.

A LiteLLM proxy hands back its provider's lines unchanged, so they are one of the above.
Anything else is :data:`UNRECOGNIZED`, never a guess: its request counts as failed with that
code and a message saying why, so that it is retried and reported.

The byte patterns below let the merge recognise the services' usual lines without parsing
them (pass 1 indexes them by regex, pass 2 copies plain successes as bytes); every other line
goes through :func:`classify`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SUCCEEDED = "succeeded"
FAILED = "failed"
EXPIRED = "expired"
CANCELLED = "cancelled"
UNRECOGNIZED = "unrecognized_output_line"
"""The code of a line whose shape says nothing we can read."""

# An output line as OpenAI (and, without "id", Azure) writes it starts with these keys in this
# order: the custom_id and the status code, read without parsing. Ids with escapes or control
# characters fall back to parsing.
FAST_OUTPUT = re.compile(
    rb'\{\s*(?:"id"\s*:\s*"[^"\\]*"\s*,\s*)?"custom_id"\s*:\s*"([^"\\\x00-\x1f]*)"\s*,\s*'
    rb'"response"\s*:\s*(?:\{\s*"status_code"\s*:\s*(\d+)\s*[,}]|null)'
)
CLOSED_LINE_ENDS = (b"}\n", b"}\r\n", b"}")
"""How a complete line ends (a cheap guard against a truncated last line)."""
# A success exactly as OpenAI writes it: compact, keys id, custom_id, response {status_code,
# request_id, body}, then PLAIN_END. Its body is copied as bytes, never parsed.
PLAIN_SUCCESS = re.compile(
    rb'\{"id":"[^"\\]*","custom_id":"([^"\\\x00-\x1f]*)","response":\{"status_code":200,'
    rb'"request_id":"[^"\\]*","body":\{'
)
PLAIN_END = b'},"error":null}\n'  # after the body: the response closes, no error
_COMPLETION_KEYS = ("choices", "data", "output")


@dataclass(slots=True)
class Outcome:
    """What an output line says about its request."""

    status: str
    http_status: int | None
    code: str | None
    message: str | None
    body: Any = None
    """The response body: the completion of a success (an error's body otherwise)."""


def classify(line: Mapping[str, Any]) -> Outcome:
    """Read one parsed output or error line (see the module doc for the shapes)."""
    response = line.get("response")
    error = line.get("error")
    if type(response) is dict:
        if "status_code" in response:
            http_status = response["status_code"]
            if type(http_status) is not int:
                return _unrecognized("response.status_code is not an integer")
            body = response.get("body")
            if http_status == 200:
                return Outcome(SUCCEEDED, 200, None, None, body)
            return _failure(http_status, body, error)
        if error is None and any(type(response.get(key)) is list for key in _COMPLETION_KEYS):
            return Outcome(SUCCEEDED, None, None, None, response)  # vLLM's bare completion
        if error is None:
            return _unrecognized("response has neither a status_code nor a completion")
        return _failure(None, None, error)
    if response is None and error is not None:
        return _failure(None, None, error)
    if response is None:
        return _unrecognized("no response and no error")
    return _unrecognized(f"response is a {type(response).__name__}, not an object")


def _failure(http_status: int | None, body: Any, error: Any) -> Outcome:
    """A failed request: code and message from the body's error or the line's error."""
    found: list[Mapping[str, Any]] = []
    body_error = body.get("error") if type(body) is dict else None
    if type(body_error) is dict:
        found.append(body_error)
    message: str | None = None
    if type(error) is str:
        message = error  # vLLM: error is the message itself
    elif type(error) is dict:
        nested = error.get("error")
        found.extend([nested, error] if type(nested) is dict else [error])
    elif error is not None:
        return _unrecognized(f"error is a {type(error).__name__}")
    code = next((str(e["code"]) for e in found if e.get("code") not in (None, "")), None)
    if message is None:
        message = next((e["message"] for e in found if type(e.get("message")) is str), None)
    if code == "batch_expired":
        return Outcome(EXPIRED, http_status, code, message, body)
    if code == "batch_cancelled":
        return Outcome(CANCELLED, http_status, code, message, body)
    if code is None and http_status is not None:
        code = f"http_{http_status}"
    if code is None and message is None:
        return _unrecognized("the error has no code and no message")
    return Outcome(FAILED, http_status, code or "unknown_error", message, body)


def _unrecognized(why: str) -> Outcome:
    return Outcome(FAILED, None, UNRECOGNIZED, f"output line not recognised: {why}")
