"""The token counter: prompt tokens of Batch API request lines, offline, as the service
counts them, with bounded caches for strings that repeat across a file."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ..deployments import parse_deployment_map
from ..formats.wire import endpoint_of
from .chat import ChatRequest
from .context import (
    FLAG_ENCODING_UNAVAILABLE,
    FLAG_NOT_COUNTABLE,
    FLAG_UNKNOWN_MODEL,
    Flags,
    ImageSizeLookup,
    ModelContext,
    RequestTokens,
)
from .encodings import get_encoding, raw_counter
from .model_table import (
    base_model_of,
    encoding_name_for_model,
    encoding_ships,
    is_reasoning,
    lookup_encoding,
)
from .rules import token_rules


class TokenCounter:
    """Counts request tokens; keeps bounded caches of counts of repeated strings.

    One counter per thread (the caches are not locked); encodings are shared process-wide.
    """

    _CACHE_MIN_CHARS = 64
    _SHORT_MAX_CHARS = 24

    def __init__(
        self,
        deployment_map: Mapping[str, str] | None = None,
        *,
        cache_size: int = 4096,
        image_size: ImageSizeLookup | None = None,
    ) -> None:
        self.deployment_map = dict(deployment_map or {})
        self.image_size = image_size
        """Sizes remote images (``RemoteImageSizes``); without it they count as a range."""
        self.cache_size = max(0, cache_size)
        self._caches: dict[str, tuple[dict[str, int], dict[str, int]]] = {}
        self._resolved: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._contexts: dict[str, ModelContext] = {}
        self._endpoints: dict[str, str | None] = {}
        self._functions_caches: dict[str, dict[bytes, int]] = {}

    # models

    def resolve_model(self, model: str) -> tuple[str, tuple[str, ...]]:
        """The model a body's ``model`` names (through the deployment map) and its flags."""
        cached = self._resolved.get(model)
        if cached is not None:
            return cached
        resolved = self.deployment_map.get(model, model)
        flags: tuple[str, ...] = ()
        encoding = lookup_encoding(resolved)
        if encoding is None:
            flags = (FLAG_UNKNOWN_MODEL,)
        elif not encoding_ships(encoding):
            flags = (FLAG_ENCODING_UNAVAILABLE,)
        result = (resolved, flags)
        self._resolved[model] = result
        return result

    # text

    def _counter(self, encoding_name: str) -> Callable[[str], int]:
        """A token-count function for one encoding, with two bounded caches.

        Short strings (roles, names, function names) repeat on nearly every line; long ones
        (shared system prompts, tool blocks) repeat across lines. Strings in between are
        encoded directly: caching them costs more than it saves on distinct prompts.
        """
        tokens_of = raw_counter(get_encoding(encoding_name))
        if self.cache_size == 0:
            return tokens_of
        short_cache, long_cache = self._caches.setdefault(encoding_name, ({}, {}))
        limit = self.cache_size
        short_chars = self._SHORT_MAX_CHARS
        long_chars = self._CACHE_MIN_CHARS

        def count(text: str) -> int:
            size = len(text)
            if size <= short_chars:
                found = short_cache.get(text)
                if found is None:
                    found = tokens_of(text)
                    if len(short_cache) < limit:
                        short_cache[text] = found
                return found
            if size < long_chars:
                return tokens_of(text)
            found = long_cache.get(text)
            if found is not None:
                return found
            found = tokens_of(text)
            if len(long_cache) >= limit:
                # Start over rather than evict one by one: on distinct prompts the cache is
                # pure overhead and a clear is the cheapest bound; prompts shared across a
                # file are back after their next occurrence.
                long_cache.clear()
            long_cache[text] = found
            return found

        return count

    def count_text(self, text: str, model: str) -> int:
        """Tokens of plain text for ``model`` (no message framing)."""
        return self._context(model).text(text)

    # requests

    def count_line(self, line: dict[str, Any]) -> RequestTokens:
        """Count a full request line ``{custom_id, method, url, body}``."""
        url = line.get("url") if isinstance(line, dict) else None
        body = line.get("body") if isinstance(line, dict) else None
        endpoint = None
        if isinstance(url, str):
            endpoint = self._endpoints.get(url)
            if endpoint is None and len(self._endpoints) < 64:
                endpoint = self._endpoints[url] = endpoint_of(url)
            elif endpoint is None:
                endpoint = endpoint_of(url)
        if not isinstance(body, dict) or endpoint is None:
            model = body.get("model") if isinstance(body, dict) else None
            model = model if isinstance(model, str) else ""
            resolved, flags = self.resolve_model(model)
            return RequestTokens(
                0,
                None,
                resolved,
                encoding_name_for_model(resolved),
                (*flags, FLAG_NOT_COUNTABLE),
            )
        return self.count_body(endpoint, body)

    def _context(self, raw_model: str) -> ModelContext:
        """Everything per model that does not depend on the body, computed once."""
        context = self._contexts.get(raw_model)
        if context is None:
            model, flags = self.resolve_model(raw_model)
            encoding_name = encoding_name_for_model(model)
            chat_rules = token_rules()["chat"]
            reasoning = is_reasoning(model)
            framing = chat_rules
            if base_model_of(model) in chat_rules["legacy_0301"]["models"]:
                framing = chat_rules["legacy_0301"]
            context = ModelContext(
                model=model,
                flags=flags,
                encoding=encoding_name,
                text=self._counter(encoding_name),
                reasoning=reasoning,
                per_message=framing["tokens_per_message"],
                per_name=framing["tokens_per_name"],
                name_separator=framing.get("name_separator", ""),
                priming=chat_rules["reasoning_reply_priming" if reasoning else "reply_priming"],
                functions_cache=self._functions_caches.setdefault(encoding_name, {}),
                untitled_schemas=base_model_of(model) in token_rules()["tools"]["untitled_models"],
                image_size=self.image_size,
            )
            self._contexts[raw_model] = context
        return context

    def count_body(self, endpoint: str, body: dict[str, Any]) -> RequestTokens:
        """Count the body of a request to ``endpoint`` (never raises on a malformed body)."""
        raw_model = body.get("model") if isinstance(body, dict) else None
        context = self._context(raw_model if isinstance(raw_model, str) else "")
        flags = Flags(context.flags)
        if not isinstance(raw_model, str):
            flags.add(FLAG_NOT_COUNTABLE)
        if not isinstance(body, dict):
            return RequestTokens(0, None, context.model, context.encoding, flags.as_tuple())
        tokens = 0
        spread: tuple[int, int] | None = None
        try:
            if endpoint in ("chat/completions", "responses"):
                request = ChatRequest(context, flags)
                if endpoint == "responses":
                    tokens = request.count_responses(body)
                else:
                    tokens = request.count_chat(body)
                if request.below or request.above:
                    spread = (max(0, tokens - request.below), tokens + request.above)
            elif endpoint == "embeddings":
                tokens = _count_prompt_like(body.get("input"), context.text, flags)
            elif endpoint == "completions":
                tokens = _count_prompt_like(body.get("prompt"), context.text, flags)
            else:
                flags.add(FLAG_NOT_COUNTABLE)
        except (TypeError, AttributeError, ValueError, KeyError, RecursionError):
            flags.add(FLAG_NOT_COUNTABLE)
        return RequestTokens(
            tokens,
            _max_output_tokens(endpoint, body),
            context.model,
            context.encoding,
            flags.as_tuple(),
            spread,
        )


def _positive_int(value: Any) -> int | None:
    if type(value) is int and value > 0:  # not bool, a subclass of int
        return value
    return None


def _max_output_tokens(endpoint: str, body: dict[str, Any]) -> int | None:
    """The output cap the body sets (× n), 0 for embeddings, None when unset."""
    if endpoint == "embeddings":
        return 0
    if endpoint == "responses":
        return _positive_int(body.get("max_output_tokens"))
    cap = _positive_int(body.get("max_completion_tokens")) or _positive_int(body.get("max_tokens"))
    if cap is None:
        return None
    n = body.get("n")
    return cap * n if type(n) is int and n > 1 else cap


def _count_prompt_like(value: Any, count: Any, flags: Flags) -> int:
    """Embeddings ``input`` / completions ``prompt``: sum over inputs, token arrays as given."""
    if isinstance(value, str):
        return count(value)
    if not isinstance(value, list):
        flags.add(FLAG_NOT_COUNTABLE)
        return 0
    total = 0
    for item in value:
        if isinstance(item, str):
            total += count(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            total += 1
        elif isinstance(item, list):
            total += sum(1 for t in item if isinstance(t, int) and not isinstance(t, bool))
        else:
            flags.add(FLAG_NOT_COUNTABLE)
    return total


_DEFAULT_COUNTERS: dict[tuple[tuple[str, str], ...], TokenCounter] = {}


def count_request_tokens(
    line: dict[str, Any] | bytes | str,
    *,
    deployment_map: Iterable[str] | str | Path | Mapping[str, str] | None = None,
) -> RequestTokens:
    """Count one request line (a dict, or its JSON text) with a shared counter."""
    if isinstance(line, (bytes, str)):
        try:
            line = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            line = {}
    mapping = parse_deployment_map(deployment_map)
    key = tuple(sorted(mapping.items()))
    counter = _DEFAULT_COUNTERS.get(key)
    if counter is None:
        counter = _DEFAULT_COUNTERS.setdefault(key, TokenCounter(mapping))
    return counter.count_line(line if isinstance(line, dict) else {})
