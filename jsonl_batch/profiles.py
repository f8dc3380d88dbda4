"""Target profiles: what each batch service (Azure OpenAI, OpenAI, a LiteLLM proxy, vLLM's
run-batch) accepts.

The numbers and the severity of every validation rule live in ``data/profiles.json`` with
their source and date, so a change in a vendor's limits is a data change, not a code change.
A rule with no source is at most a warning there.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

import orjson

from .errors import ConfigError

TARGETS = ("azure", "openai", "litellm", "vllm")
RuleSeverity = Literal["error", "warning", "off"]


@dataclass(frozen=True, slots=True)
class Rule:
    """How a target treats one validation code, and where that comes from."""

    severity: RuleSeverity
    source: str


@dataclass(frozen=True)
class Profile:
    """Limits and rules of one target service."""

    name: str
    description: str
    max_requests: int | None
    """None: the target has no per-file limit."""
    max_bytes: int | None
    max_embedding_inputs: int | None
    max_custom_id_length: int | None
    methods: frozenset[str] | None
    """Allowed ``method`` values; None: any string."""
    urls: dict[str, str]
    """Allowed line ``url`` → endpoint (``chat/completions``, ``responses``, ...)."""
    default_urls: dict[str, str]
    """Endpoint → the ``url`` the builder writes."""
    create_endpoint: str | None
    """The ``endpoint`` to pass at batch create; None means "the line url"."""
    api_version: str | None
    """Default ``api-version`` for classic (``/openai/...?api-version=``) Azure paths."""
    model_is_deployment: bool
    lax_types: bool
    """The service coerces JSON types the way pydantic's lax mode does ("True" is true)."""
    priced: bool
    file_expiry_seconds: int | None
    forbid_unknown_body_fields: bool
    service_codes: dict[str, str]
    placeholder_models: frozenset[str]
    rules: dict[str, Rule]
    date: str
    sources: dict[str, str] = field(default_factory=dict)

    def rule(self, code: str) -> Rule:
        """Severity and source of a validation code for this target."""
        return self.rules[code]

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


def as_profile(target: Profile | str) -> Profile:
    """``target`` as a profile: a name is loaded, a profile is kept (every step takes both)."""
    return load_profile(target) if isinstance(target, str) else target


@functools.cache
def load_profile(name: str) -> Profile:
    """Load a bundled target profile by name (``azure``, ``openai``, ``litellm``, ``vllm``)."""
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
    rules = {
        code: Rule(item["severity"], item["source"])
        for code, item in {**raw["rules"], **entry.get("rules", {})}.items()
        if isinstance(item, dict)
    }
    methods = value("methods")
    return Profile(
        name=name,
        description=entry["description"],
        max_requests=value("max_requests"),
        max_bytes=value("max_bytes"),
        max_embedding_inputs=value("max_embedding_inputs"),
        max_custom_id_length=value("max_custom_id_length"),
        methods=None if methods is None else frozenset(methods),
        urls=value("urls"),
        default_urls=entry["default_urls"],
        create_endpoint=value("create_endpoint"),
        api_version=value("api_version"),
        model_is_deployment=value("model_is_deployment"),
        lax_types=value("lax_types"),
        priced=value("priced"),
        file_expiry_seconds=value("file_expiry_seconds"),
        forbid_unknown_body_fields=entry["forbid_unknown_body_fields"],
        service_codes=entry.get("service_codes", {}),
        placeholder_models=frozenset(m.lower() for m in raw["placeholder_models"]["value"]),
        rules=rules,
        date=raw["date"],
        sources=sources,
    )
