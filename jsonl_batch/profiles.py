"""Target profiles: what each batch service (Azure OpenAI, OpenAI, a LiteLLM proxy) accepts.

The numbers live in ``data/profiles.json`` with their source and date, so a change in a
vendor's limits is a data change, not a code change.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import orjson

from .errors import ConfigError

TARGETS = ("azure", "openai", "litellm")


@dataclass(frozen=True)
class Profile:
    """Limits and rules of one target service."""

    name: str
    description: str
    max_requests: int
    max_bytes: int
    max_embedding_inputs: int | None
    urls: dict[str, str]
    """Allowed line ``url`` → endpoint (``chat/completions``, ``responses``, ...)."""
    default_urls: dict[str, str]
    """Endpoint → the ``url`` the builder writes."""
    create_endpoint: str | None
    """The ``endpoint`` to pass at batch create; None means "the line url"."""
    api_version: str | None
    """Default ``api-version`` for classic (``/openai/...?api-version=``) Azure paths."""
    model_is_deployment: bool
    bom_is_error: bool
    file_expiry_seconds: int | None
    forbid_unknown_body_fields: bool
    service_codes: dict[str, str]
    placeholder_models: frozenset[str]
    date: str
    sources: dict[str, str] = field(default_factory=dict)

    def service_code(self, code: str) -> str:
        """The code the service itself reports for one of our rule codes."""
        return self.service_codes.get(code, code)

    def batch_endpoint(self, url: str) -> str:
        """The ``endpoint`` argument of batch create for lines with this ``url``."""
        return self.create_endpoint or url


@functools.cache
def _raw_profiles() -> dict[str, Any]:
    data = resources.files("jsonl_batch").joinpath("data/profiles.json").read_bytes()
    return orjson.loads(data)


@functools.cache
def load_profile(name: str) -> Profile:
    """Load a bundled target profile by name (``azure``, ``openai``, ``litellm``)."""
    raw = _raw_profiles()
    try:
        entry = raw["profiles"][name]
    except KeyError:
        raise ConfigError(
            f"unknown target {name!r}", hint=f"choose one of: {', '.join(TARGETS)}"
        ) from None

    def value(key: str) -> Any:
        item = entry[key]
        return item["value"] if isinstance(item, dict) and "value" in item else item

    sources = {
        key: item["source"]
        for key, item in entry.items()
        if isinstance(item, dict) and "source" in item
    }
    return Profile(
        name=name,
        description=entry["description"],
        max_requests=value("max_requests"),
        max_bytes=value("max_bytes"),
        max_embedding_inputs=value("max_embedding_inputs"),
        urls=value("urls"),
        default_urls=entry["default_urls"],
        create_endpoint=value("create_endpoint"),
        api_version=value("api_version"),
        model_is_deployment=value("model_is_deployment"),
        bom_is_error=value("bom_is_error"),
        file_expiry_seconds=value("file_expiry_seconds"),
        forbid_unknown_body_fields=entry["forbid_unknown_body_fields"],
        service_codes=entry.get("service_codes", {}),
        placeholder_models=frozenset(m.lower() for m in raw["placeholder_models"]["value"]),
        date=raw["date"],
        sources=sources,
    )
