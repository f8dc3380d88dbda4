"""HTTP error answers in the two shapes the real services use.

OpenAI-style ``{"error": {"message", "type", "param", "code"}}`` for API-level refusals
(both services use it for files and batches), and Azure's gateway shape
``{"error": {"code", "message"}}`` for auth, routing and throttling.
"""

from __future__ import annotations

from typing import Any

AZURE_401_MESSAGE = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
    "a valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)


class ApiError(Exception):
    """An HTTP error response: status, JSON body and extra headers."""

    def __init__(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}


def invalid_request(
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    status: int = 400,
) -> ApiError:
    return ApiError(
        status,
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": param,
                "code": code,
            }
        },
    )


def azure_error(status: int, code: str, message: str) -> ApiError:
    return ApiError(status, {"error": {"code": code, "message": message}})


def unauthorized(flavor: str) -> ApiError:
    """Wrong or missing key, as each service words it."""
    if flavor == "openai":
        return invalid_request(
            "Incorrect API key provided. You can find your API key in your emulator's "
            "startup output.",
            code="invalid_api_key",
            status=401,
        )
    return azure_error(401, "401", AZURE_401_MESSAGE)


def not_found_route() -> ApiError:
    return azure_error(404, "404", "Resource not found")
