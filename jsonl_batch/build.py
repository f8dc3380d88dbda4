"""Write request files from code: chat completions, Responses and embeddings requests.

Each request is checked before it is written (body schema, one url and one model per
file, unique ``custom_id``), and the file appears only when the builder closes without
an error, so a half-built file never reaches the service.

>>> with RequestFileBuilder("requests.jsonl", model="gpt-4o-batch") as build:  # doctest: +SKIP
...     build.add_chat([{"role": "user", "content": "Hello"}], max_tokens=50)
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import ValidationError

from .errors import JsonlBatchError, first_problem
from .formats.wire import (
    BODY_MODELS,
    ENDPOINT_CHAT,
    ENDPOINT_COMPLETIONS,
    ENDPOINT_EMBEDDINGS,
    ENDPOINT_RESPONSES,
)
from .jsonl import AtomicWriter
from .profiles import Profile, as_profile


class BuildError(JsonlBatchError):
    """A request cannot be added to the file being built."""


class RequestFileBuilder:
    """Streaming, atomic writer of batch request lines for one target.

    ``custom_id`` defaults to ``f"{id_prefix}{n}"`` with ``n`` counting from 1.
    Memory: one entry per ``custom_id`` (to refuse duplicates).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        target: Profile | str = "azure",
        model: str | None = None,
        id_prefix: str = "request-",
        overwrite: bool = True,
    ) -> None:
        self.profile = as_profile(target)
        self.model = model
        self.id_prefix = id_prefix
        self.path = os.fspath(path)
        self._writer = AtomicWriter(path, overwrite=overwrite)
        self._ids: set[str] = set()
        self._url: str | None = None
        self._file_model: str | None = None

    @property
    def count(self) -> int:
        """Requests written so far."""
        return len(self._ids)

    def __enter__(self) -> RequestFileBuilder:
        self._writer.open()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None and not self._ids:
            self._writer.abort()
            raise BuildError(f"{self.path}: no requests were added; nothing written")
        self._writer.__exit__(exc_type, exc, tb)

    def add_chat(
        self,
        messages: list[dict[str, Any]],
        *,
        custom_id: str | None = None,
        model: str | None = None,
        **params: Any,
    ) -> str:
        """Add a ``/chat/completions`` request; ``params`` go into the body as they are."""
        return self.add(ENDPOINT_CHAT, {"messages": messages, **params}, custom_id, model)

    def add_response(
        self,
        input: str | list[dict[str, Any]],
        *,
        custom_id: str | None = None,
        model: str | None = None,
        instructions: str | None = None,
        **params: Any,
    ) -> str:
        """Add a ``/responses`` request."""
        body: dict[str, Any] = {"input": input, **params}
        if instructions is not None:
            body["instructions"] = instructions
        return self.add(ENDPOINT_RESPONSES, body, custom_id, model)

    def add_embedding(
        self,
        input: str | list[str] | list[int] | list[list[int]],
        *,
        custom_id: str | None = None,
        model: str | None = None,
        **params: Any,
    ) -> str:
        """Add an ``/embeddings`` request (OpenAI and LiteLLM targets; Azure has none)."""
        return self.add(ENDPOINT_EMBEDDINGS, {"input": input, **params}, custom_id, model)

    def add_completion(
        self,
        prompt: str | list[str],
        *,
        custom_id: str | None = None,
        model: str | None = None,
        **params: Any,
    ) -> str:
        """Add a legacy ``/completions`` request."""
        return self.add(ENDPOINT_COMPLETIONS, {"prompt": prompt, **params}, custom_id, model)

    def add(
        self,
        endpoint: str,
        body: dict[str, Any],
        custom_id: str | None = None,
        model: str | None = None,
    ) -> str:
        """Check and write one request; returns its ``custom_id``."""
        url = self.profile.default_urls.get(endpoint)
        if url is None:
            raise BuildError(
                f"target {self.profile.name!r} has no batch endpoint for {endpoint!r}",
                hint="choose another target, e.g. target='openai'",
            )
        if self._url is not None and url != self._url:
            raise BuildError(
                f"this file already holds {self._url} requests; one endpoint per file",
                hint="write other endpoints to another builder",
            )
        chosen = model or body.get("model") or self.model
        body = {"model": chosen, **{k: v for k, v in body.items() if k != "model"}}
        if not chosen:
            raise BuildError("no model: pass model= to the builder or to this call")
        if self._file_model is not None and body["model"] != self._file_model:
            raise BuildError(
                f"model {body['model']!r} differs from {self._file_model!r}; "
                "one model/deployment per file"
            )
        if body.get("stream"):
            raise BuildError("stream=True is not supported in batch requests")
        try:
            BODY_MODELS[endpoint].model_validate(body)
        except ValidationError as exc:
            raise BuildError(f"invalid {endpoint} body at {first_problem(exc)}") from None
        if custom_id is None:
            custom_id = f"{self.id_prefix}{len(self._ids) + 1}"
        if custom_id in self._ids:
            raise BuildError(f"custom_id {custom_id!r} is already in this file")
        if self.profile.max_requests is not None and len(self._ids) >= self.profile.max_requests:
            raise BuildError(
                f"target {self.profile.name!r} allows {self.profile.max_requests:,} "
                "requests per file",
                hint="write to several files, or build one and split it (split_file)",
            )
        self._writer.write({"custom_id": custom_id, "method": "POST", "url": url, "body": body})
        self._ids.add(custom_id)
        self._url = url
        self._file_model = body["model"]
        return custom_id
