"""The resources file: several Azure OpenAI resources (or LiteLLM proxies, or any
OpenAI-compatible service) that one job spreads its shards over.

This module owns the format, its validation and the same thing built from command-line
items. It is TOML: Python reads it with the standard library (``tomllib``, no new
dependency), it takes comments (people annotate which subscription or region a resource is),
and a syntax error names the line. Example::

    # resources.toml
    [resources.eastus]
    endpoint = "https://my-eastus.openai.azure.com"
    api-key-env = "AZURE_EASTUS_KEY"      # the NAME of the variable holding the key
    api-version = "2025-04-01-preview"     # optional (default: the azure profile's)

    [resources.eastus.deployments]
    gpt-4o-batch = { model = "gpt-4o", enqueued-token-quota = 200_000_000 }
    mini-batch = "gpt-4o-mini"            # short form: no quota configured

    [resources.proxy]
    kind = "litellm"                       # azure | openai-compatible | litellm
    endpoint = "http://localhost:4000"
    api-key-env = "LITELLM_API_KEY"
    deployments = { batch-gpt-4o = "gpt-4o" }   # LiteLLM: model groups

Keys of a resource: ``endpoint`` (required), ``kind`` (default ``azure``), ``auth``
(``api-key``, the default, or ``entra``), ``api-key-env`` (required with ``api-key``),
``api-version`` (azure only), ``custom-llm-provider`` (LiteLLM only) and ``deployments``
(required: deployment name → model, or → ``{model, enqueued-token-quota}``). A secret never
belongs in this file: the key is read from the named variable when a job talks to the
resource, and the job file records only the name.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError

ResourceKind = Literal["azure", "openai-compatible", "litellm"]
KINDS: tuple[str, ...] = ("azure", "openai-compatible", "litellm")
AUTHS = ("api-key", "entra")
RESOURCE_KEYS = (
    "endpoint",
    "kind",
    "auth",
    "api-key-env",
    "api-version",
    "custom-llm-provider",
    "deployments",
)
DEPLOYMENT_KEYS = ("model", "enqueued-token-quota")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9}
# ``--resource NAME=URL`` reads the key of resource NAME from this variable.
CLI_KEY_PREFIX = "AZURE_OPENAI_API_KEY_"


def is_azure_endpoint(endpoint: str) -> bool:
    """An Azure OpenAI or AI Foundry resource's URL (the hosts Azure gives resources)."""
    host = urlsplit(endpoint).hostname or ""
    return host.endswith(("openai.azure.com", "services.ai.azure.com"))


class Deployment(BaseModel):
    """One deployment (a LiteLLM model group) of a resource and the model it serves."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    enqueued_token_quota: int | None = Field(
        None, description="input tokens it may hold queued at once (Azure's enqueued tokens)"
    )


class Resource(BaseModel):
    """One service a job sends batches to: where, how to sign in, what it serves."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    endpoint: str
    kind: ResourceKind = "azure"
    auth: Literal["api_key", "entra"] = "api_key"
    api_key_env: str | None = Field(None, description="the variable holding the key, never it")
    api_version: str | None = None
    custom_llm_provider: str | None = None
    deployments: dict[str, Deployment]

    @property
    def target(self) -> str:
        """The profile (limits, url forms) its batches follow."""
        if self.kind == "litellm":
            return "litellm"
        if self.kind == "azure":
            return "azure"
        return "azure" if is_azure_endpoint(self.endpoint) else "openai"  # v1 API: Azure's limits


class DeploymentEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Deployment")

    model: str = Field(description="the model it serves, e.g. gpt-4o")
    enqueued_token_quota: int | str | None = Field(
        None,
        alias="enqueued-token-quota",
        description="input tokens it may hold queued at once: 200000000 or '200M' (K, M, B)",
    )


class ResourceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Resource")

    endpoint: str = Field(description="https://NAME.openai.azure.com or a proxy URL")
    kind: ResourceKind = "azure"
    auth: Literal["api-key", "entra"] = "api-key"
    api_key_env: str | None = Field(
        None, alias="api-key-env", description="the NAME of the variable holding the key"
    )
    api_version: str | None = Field(None, alias="api-version", description="azure only")
    custom_llm_provider: str | None = Field(
        None, alias="custom-llm-provider", description="litellm only"
    )
    deployments: dict[str, str | DeploymentEntry] = Field(
        description='deployment (LiteLLM: model group) name -> "MODEL" or {model, quota}'
    )


class ResourcesFile(BaseModel):
    """The resources file (TOML) as a JSON schema, ``schemas/resources.schema.json``, for
    editors (Taplo, VS Code's Even Better TOML); :func:`read_resources` is what checks it."""

    model_config = ConfigDict(extra="forbid")

    resources: dict[str, ResourceEntry] = Field(description="name -> resource")


def cli_key_env(name: str) -> str:
    """``--resource east=URL`` → ``AZURE_OPENAI_API_KEY_EAST``."""
    return CLI_KEY_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def parse_quantity(value: Any) -> int | None:
    """``200_000_000``, ``"200M"``, ``"1B"``, ``"30K"`` (the units of Azure's quota table);
    None when it is not a positive whole number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    match = re.fullmatch(r"\s*([0-9][0-9_,]*(?:\.[0-9]+)?)\s*([A-Za-z]?)\s*", str(value))
    unit = match and _UNITS.get(match.group(2).lower())
    if not match or unit is None:
        return None
    amount = int(float(match.group(1).replace("_", "").replace(",", "")) * unit)
    return amount if amount > 0 else None


class _Problems:
    """Every bad key of a resources file, each with where it is and what to write."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.lines: list[str] = []

    def add(self, key: str, text: str) -> None:
        self.lines.append(f"{key}: {text}")

    def unknown_keys(self, key: str, table: Mapping[str, Any], known: tuple[str, ...]) -> None:
        for extra in sorted(set(table) - set(known)):
            self.add(f"{key}.{extra}", "unknown key (known: " + ", ".join(known) + ")")

    def raise_any(self) -> None:
        if not self.lines:
            return
        head = self.lines[0] if len(self.lines) == 1 else f"{len(self.lines)} problems"
        rest = "" if len(self.lines) == 1 else "\n  " + "\n  ".join(self.lines)
        raise ConfigError(
            f"{self.where}: {head}{rest}",
            hint="see the resources file format in the README (jsonl_batch.formats.resources)",
        )


def _check_deployment(key: str, value: Any, problems: _Problems) -> Deployment | None:
    if isinstance(value, str):
        value = {"model": value}
    if not isinstance(value, dict):
        problems.add(key, 'write NAME = "MODEL" or NAME = { model = "MODEL" }')
        return None
    problems.unknown_keys(key, value, DEPLOYMENT_KEYS)
    model = _required_text(value, key, "model", "the model it serves, e.g. gpt-4o", problems)
    quota = None
    if "enqueued-token-quota" in value:
        quota = parse_quantity(value["enqueued-token-quota"])
        if quota is None:
            problems.add(
                f"{key}.enqueued-token-quota",
                f"{value['enqueued-token-quota']!r} is not a positive number of tokens"
                " (200000000 or '200M')",
            )
    if model is None:
        return None
    return Deployment(model=model, enqueued_token_quota=quota)


def _required_text(
    table: Mapping[str, Any], key: str, field: str, what: str, problems: _Problems
) -> str | None:
    value = table.get(field)
    if not isinstance(value, str) or not value.strip():
        problems.add(f"{key}.{field}", f"missing: {what}")
        return None
    return value.strip()


def _check_resource(name: str, table: Any, problems: _Problems) -> Resource | None:
    key = f"resources.{name}"
    if not _NAME.fullmatch(name):
        problems.add(key, "a resource name is letters, digits, '.', '_' or '-'")
    if not isinstance(table, dict):
        problems.add(key, "must be a table: [resources.NAME] with endpoint, deployments, ...")
        return None
    problems.unknown_keys(key, table, RESOURCE_KEYS)
    endpoint = _required_text(
        table, key, "endpoint", "https://NAME.openai.azure.com or a proxy URL", problems
    )
    if endpoint is not None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.add(f"{key}.endpoint", "not an http(s) URL")
        elif parts.username or parts.password or parts.query:
            # never echo it: it may carry the key
            problems.add(
                f"{key}.endpoint",
                "has credentials or a query in it; put the key in a variable (api-key-env)",
            )
    kind = table.get("kind", "azure")
    if kind not in KINDS:
        problems.add(f"{key}.kind", f"{kind!r} is not one of " + ", ".join(KINDS))
    auth = table.get("auth", "api-key")
    if auth not in AUTHS:
        problems.add(f"{key}.auth", f"{auth!r} is not one of " + ", ".join(AUTHS))
    env = table.get("api-key-env")
    if env is not None and (not isinstance(env, str) or not _ENV_NAME.fullmatch(env)):
        # not echoed either: people paste the key itself here
        problems.add(
            f"{key}.api-key-env",
            "must be the NAME of an environment variable (like AZURE_EASTUS_KEY), not a key",
        )
    elif env is None and auth == "api-key":
        problems.add(
            f"{key}.api-key-env",
            'missing: name the environment variable holding the key, or set auth = "entra"',
        )
    optional: dict[str, str | None] = {}
    for option in ("api-version", "custom-llm-provider"):
        value = table.get(option)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            problems.add(f"{key}.{option}", "must be a non-empty string")
            value = None
        optional[option] = value
    if optional["api-version"] is not None and kind != "azure":
        problems.add(f"{key}.api-version", "only an azure resource takes an api-version")
    deployments_table = table.get("deployments")
    deployments: dict[str, Deployment] = {}
    if not isinstance(deployments_table, dict) or not deployments_table:
        problems.add(
            f"{key}.deployments",
            'missing: the deployments it serves, e.g. deployments = { gpt-4o-batch = "gpt-4o" }',
        )
    else:
        for deployment, value in deployments_table.items():
            checked = _check_deployment(f"{key}.deployments.{deployment}", value, problems)
            if checked is not None:
                deployments[deployment] = checked
    if endpoint is None or kind not in KINDS or auth not in AUTHS or not deployments:
        return None
    return Resource(
        name=name,
        endpoint=endpoint.rstrip("/"),
        kind=kind,
        auth="entra" if auth == "entra" else "api_key",
        api_key_env=env if isinstance(env, str) else None,
        api_version=optional["api-version"],
        custom_llm_provider=optional["custom-llm-provider"],
        deployments=deployments,
    )


def check_resources(data: Mapping[str, Any], where: str) -> list[Resource]:
    """The resources of a parsed resources file (a ``{"resources": {NAME: {...}}}`` mapping);
    every bad key is named in one ConfigError."""
    problems = _Problems(where)
    for extra in sorted(set(data) - {"resources"}):
        problems.add(extra, "unknown key: write each resource as [resources.NAME]")
    tables = data.get("resources")
    if not isinstance(tables, dict) or not tables:
        problems.add("resources", "no resources: add a [resources.NAME] table per resource")
        problems.raise_any()
        return []
    resources = [_check_resource(name, table, problems) for name, table in tables.items()]
    problems.raise_any()
    return [resource for resource in resources if resource is not None]


def read_resources(path: str | os.PathLike[str]) -> list[Resource]:
    """Read and check a resources file (TOML, see the module docstring)."""
    path = Path(path)
    try:
        with open(path, "rb") as stream:
            data = tomllib.load(stream)
    except OSError as exc:
        raise ConfigError(f"cannot read resources file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid TOML ({exc})",
            hint="see the resources file format in the README (jsonl_batch.formats.resources)",
        ) from None
    return check_resources(data, str(path))


def resources_from_items(
    resources: Iterable[str],
    deployments: Iterable[str] = (),
    *,
    api_version: str | None = None,
    auth: str = "api-key",
) -> list[Resource]:
    """Azure resources from command-line items: ``NAME=URL`` and
    ``NAME/DEPLOYMENT=MODEL[@QUOTA]``; the key of NAME is in ``AZURE_OPENAI_API_KEY_NAME``."""
    tables: dict[str, dict[str, Any]] = {}
    problems = _Problems("resource items")
    for item in resources:
        name, sep, url = item.partition("=")
        if not sep or not name.strip() or not url.strip():
            problems.add(repr(item), "write NAME=URL, e.g. east=https://E.openai.azure.com")
            continue
        table: dict[str, Any] = {"endpoint": url.strip(), "auth": auth, "deployments": {}}
        if auth == "api-key":
            table["api-key-env"] = cli_key_env(name.strip())
        if api_version:
            table["api-version"] = api_version
        tables[name.strip()] = table
    for item in deployments:
        where, sep, model = item.partition("=")
        name, slash, deployment = where.partition("/")
        if not sep or not slash or not deployment.strip() or not model.strip():
            problems.add(
                repr(item),
                "write RESOURCE/DEPLOYMENT=MODEL[@QUOTA], e.g. east/gpt-4o-batch=gpt-4o@200M",
            )
            continue
        if name.strip() not in tables:
            problems.add(repr(item), f"no resource {name.strip()!r} (NAME=URL) is given")
            continue
        model, at, quota = model.partition("@")
        entry: dict[str, Any] = {"model": model.strip()}
        if at:
            entry["enqueued-token-quota"] = quota.strip()
        tables[name.strip()]["deployments"][deployment.strip()] = entry
    problems.raise_any()
    return check_resources({"resources": tables}, "resource items")
