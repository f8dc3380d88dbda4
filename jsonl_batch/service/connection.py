"""Where batches go and how to sign in: Azure OpenAI, a LiteLLM proxy or any OpenAI-compatible
base URL, and one clear message when the service refuses.

Settings come from flags, then the environment (the names the ``openai`` SDK and LiteLLM use),
then the connection saved in a job file, so ``status``/``wait`` on an existing job need only
the key. The secret itself is never part of :meth:`ConnectionSettings.public`, which is what a
job file stores.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError, ServiceError
from ..formats.resources import Resource, is_azure_endpoint
from ..profiles import load_profile

if TYPE_CHECKING:  # the SDK takes a second to import: only commands that talk to a service do
    import openai

# Scope of Azure OpenAI tokens for Microsoft Entra ID sign-in (Azure batch how-to).
ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"
DEFAULT_MAX_RETRIES = 5
DEFAULT_TIMEOUT_SECONDS = 600.0

Kind = Literal["azure", "openai"]
Auth = Literal["api_key", "entra"]
T = TypeVar("T")

AZURE_ENDPOINT_VARS = ("AZURE_OPENAI_ENDPOINT", "AZURE_API_BASE")
AZURE_KEY_VARS = ("AZURE_OPENAI_API_KEY", "AZURE_API_KEY")
AZURE_VERSION_VARS = ("OPENAI_API_VERSION", "AZURE_API_VERSION")
OPENAI_BASE_VARS = ("OPENAI_BASE_URL",)
OPENAI_KEY_VARS = ("OPENAI_API_KEY", "LITELLM_API_KEY")


@dataclass(frozen=True)
class ConnectionSettings:
    """Everything needed to build a client. ``api_key`` is kept out of repr and job files."""

    kind: Kind
    """``azure``: the ``AzureOpenAI`` client on a resource endpoint; ``openai``: the ``OpenAI``
    client on a base URL (OpenAI itself, a LiteLLM proxy, Azure's ``/openai/v1``)."""
    endpoint: str
    target: str
    """The profile that decides limits and url forms: ``azure``, ``openai`` or ``litellm``."""
    api_version: str | None = None
    auth: Auth = "api_key"
    custom_llm_provider: str | None = None
    max_retries: int = DEFAULT_MAX_RETRIES
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    api_key: str | None = field(default=None, repr=False, compare=False)

    def public(self) -> dict[str, Any]:
        """What a job file records: enough to reconnect, never the secret."""
        return {
            "kind": self.kind,
            "endpoint": self.endpoint,
            "target": self.target,
            "api_version": self.api_version,
            "auth": self.auth,
            "custom_llm_provider": self.custom_llm_provider,
        }

    @property
    def where(self) -> str:
        """The endpoint as messages name it."""
        if self.kind == "azure" and self.api_version:
            return f"{self.endpoint} (api-version {self.api_version})"
        return self.endpoint


def _first(environ: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def strip_credentials(url: str) -> tuple[str, str | None]:
    """``(url without credentials, the secret it carried)``: ``http://user:KEY@host/x?k=v``
    → ``(http://host/x, KEY)``. User info, query and fragment are dropped (an endpoint or
    base URL needs none of them: the SDK adds the api-version itself), so no secret in a URL
    is ever stored in a job file or printed."""
    parts = urlsplit(url)
    secret = parts.password or parts.username or None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(
            f"{host or 'the URL'}: the port is not a number",
            hint="write it as https://NAME.openai.azure.com or http://localhost:4000",
        ) from None
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")), secret


def _guess_target(kind: Kind, endpoint: str, custom_llm_provider: str | None) -> str:
    if kind == "azure":
        return "azure"
    if is_azure_endpoint(endpoint):
        return "azure"
    if urlsplit(endpoint).hostname == "api.openai.com":
        return "openai"
    return "litellm"


def resolve_connection(
    *,
    endpoint: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    api_version: str | None = None,
    target: str | None = None,
    auth: Auth | None = None,
    custom_llm_provider: str | None = None,
    max_retries: int | None = None,
    saved: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ConnectionSettings:
    """Settings from flags, then environment variables, then a job file's saved connection.

    ``endpoint`` is an Azure resource (``https://NAME.openai.azure.com``) used through
    ``AzureOpenAI`` with an api-version; ``base_url`` is any OpenAI-compatible URL (a LiteLLM
    proxy ``http://localhost:4000``, ``https://api.openai.com/v1``, Azure's ``.../openai/v1``).
    """
    env = os.environ if environ is None else environ
    saved = saved or {}
    kind: Kind
    if base_url:
        kind, url = "openai", base_url
    elif endpoint:
        kind, url = "azure", endpoint
    elif saved.get("endpoint"):
        kind, url = saved.get("kind", "azure"), saved["endpoint"]
    elif found := _first(env, AZURE_ENDPOINT_VARS):
        kind, url = "azure", found
    elif found := _first(env, OPENAI_BASE_VARS):
        kind, url = "openai", found
    elif _first(env, OPENAI_KEY_VARS) or api_key:
        kind, url = "openai", "https://api.openai.com/v1"
    else:
        raise ConfigError(
            "no service to talk to: no endpoint or base URL given",
            hint="pass endpoint=https://NAME.openai.azure.com (or set AZURE_OPENAI_ENDPOINT),"
            " or base_url=http://localhost:4000 for a LiteLLM proxy",
        )
    url, url_secret = strip_credentials(url.strip())
    url = url.rstrip("/")
    if not urlsplit(url).scheme.startswith("http"):
        raise ConfigError(
            f"{url!r} is not an http(s) URL", hint="write it as https://NAME.openai.azure.com"
        )
    api_key = api_key or url_secret
    if kind == "azure" and urlsplit(url).path.rstrip("/").endswith("/openai/v1"):
        kind = "openai"  # Azure's v1 API is plain OpenAI on a base URL, no api-version
    auth = auth or saved.get("auth") or "api_key"
    provider = custom_llm_provider or saved.get("custom_llm_provider")
    target = target or saved.get("target") or _guess_target(kind, url, provider)
    version = None
    if kind == "azure":
        version = (
            api_version
            or saved.get("api_version")
            or _first(env, AZURE_VERSION_VARS)
            or load_profile("azure").api_version
        )
    key = api_key
    if auth == "api_key" and not key:
        names = AZURE_KEY_VARS if kind == "azure" or target == "azure" else OPENAI_KEY_VARS
        key = _first(env, names)
        if not key:
            raise ConfigError(
                f"no API key for {url}",
                hint=f"pass api_key=KEY or set {' or '.join(names)}"
                + (' (or sign in with auth="entra")' if kind == "azure" else ""),
            )
    return ConnectionSettings(
        kind=kind,
        endpoint=url,
        target=target,
        api_version=version,
        auth=auth,
        custom_llm_provider=provider,
        max_retries=DEFAULT_MAX_RETRIES if max_retries is None else max_retries,
        api_key=key,
    )


def resource_settings(
    resource: Resource,
    *,
    max_retries: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> ConnectionSettings:
    """Settings for one resource of a resources file; its key from the variable it names."""
    env = os.environ if environ is None else environ
    key = None
    if resource.auth == "api_key":
        key = (env.get(resource.api_key_env or "") or "").strip() or None
        if key is None:
            raise ConfigError(
                f"resource {resource.name}: no API key: {resource.api_key_env} is not set",
                hint=f"export {resource.api_key_env}=KEY (the key of {resource.endpoint})",
            )
    common: dict[str, Any] = {
        "api_key": key,
        "auth": resource.auth,
        "target": resource.target,
        "custom_llm_provider": resource.custom_llm_provider,
        "max_retries": max_retries,
        "environ": {},  # nothing else from the environment: the resource says it all
    }
    if resource.kind == "azure":
        return resolve_connection(
            endpoint=resource.endpoint,
            api_version=resource.api_version or load_profile("azure").api_version,
            **common,
        )
    return resolve_connection(base_url=resource.endpoint, **common)


def _entra_token_provider() -> Callable[[], str]:
    """A bearer-token provider from ``azure-identity`` (an optional extra, imported lazily)."""
    try:
        from azure.identity import (
            DefaultAzureCredential,
            get_bearer_token_provider,
        )
    except ImportError:
        raise ConfigError(
            "Microsoft Entra ID sign-in needs the azure-identity package, which is not installed",
            hint="pip install azure-identity, or use an API key (api_key=KEY)",
        ) from None
    provider: Callable[[], str] = get_bearer_token_provider(DefaultAzureCredential(), ENTRA_SCOPE)
    return provider


def build_client(settings: ConnectionSettings) -> openai.OpenAI:
    """The SDK client for ``settings``; LiteLLM's provider routing rides on a default header."""
    import openai

    headers: dict[str, str] = {}
    if settings.custom_llm_provider:
        headers["custom-llm-provider"] = settings.custom_llm_provider
    if settings.kind == "openai" and settings.target == "azure" and settings.auth == "api_key":
        headers["api-key"] = settings.api_key or ""  # Azure's v1 API reads the key from here
    common: dict[str, Any] = {
        "max_retries": settings.max_retries,
        "timeout": settings.timeout,
        "default_headers": headers or None,
    }
    if settings.kind == "azure":
        credentials: dict[str, Any] = (
            {"azure_ad_token_provider": _entra_token_provider()}
            if settings.auth == "entra"
            else {"api_key": settings.api_key}
        )
        return openai.AzureOpenAI(
            azure_endpoint=settings.endpoint,
            api_version=settings.api_version,
            **credentials,
            **common,
        )
    if settings.auth == "entra":
        provider = _entra_token_provider()
        return openai.OpenAI(base_url=settings.endpoint, api_key=provider, **common)
    return openai.OpenAI(base_url=settings.endpoint, api_key=settings.api_key, **common)


# --- error translation ----------------------------------------------------------------


def _service_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            code = error.get("code")
            return f"{error['message']}" + (f" [{code}]" if code else "")
    return str(exc.message)


def error_code(exc: BaseException) -> str | None:
    """The service's error code of an API error (``token_limit_exceeded``, ...)."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            return error["code"]
    return None


def is_token_limit_error(exc: BaseException) -> bool:
    """Azure's fail-fast quota refusal: a 400 whose text contains ``token_limit_exceeded``."""
    import openai

    return isinstance(exc, openai.BadRequestError) and (
        error_code(exc) == "token_limit_exceeded" or "token_limit_exceeded" in str(exc)
    )


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: connection trouble, 408/409/429 and 5xx."""
    import openai

    if isinstance(exc, openai.APIConnectionError):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return False


def is_outage(exc: BaseException) -> bool:
    """A resource to leave for others (issue 18): credentials refused, unreachable, or a 5xx
    still there after the client's retries. A ServiceError counts by the SDK error under it."""
    import openai

    cause = exc.__cause__ if isinstance(exc, ServiceError) else exc
    if isinstance(cause, openai.AuthenticationError | openai.PermissionDeniedError):
        return True
    if isinstance(cause, openai.APIConnectionError):
        return True
    return isinstance(cause, openai.APIStatusError) and cause.status_code >= 500


def retry_after_seconds(exc: BaseException) -> float | None:
    """The ``Retry-After`` (or ``retry-after-ms``) a 429/503 carried, in seconds."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
        if headers.get("retry-after"):
            return float(headers["retry-after"])
    except ValueError:
        return None
    return None


def translate_error(
    exc: openai.OpenAIError, settings: ConnectionSettings, action: str
) -> ServiceError:
    """One message that names the endpoint and what to check, for any SDK error."""
    import openai

    where = settings.where
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        if settings.auth == "entra":
            check = "sign in (az login) with an identity that has 'Cognitive Services OpenAI User'"
        elif settings.kind == "azure":
            check = (
                "check the key belongs to this resource (api_key, AZURE_OPENAI_API_KEY or"
                " AZURE_API_KEY) and the endpoint is the resource's own"
            )
        else:
            check = "check api_key (OPENAI_API_KEY / LITELLM_API_KEY) is valid for this URL"
        return ServiceError(
            f"{where} refused the credentials while {action}"
            f" (HTTP {exc.status_code}: {_service_message(exc)})",
            hint=check,
        )
    if isinstance(exc, openai.NotFoundError):
        if settings.kind == "azure":
            check = (
                "check the endpoint is https://NAME.openai.azure.com (no /openai/deployments"
                f" path) and that api-version {settings.api_version} supports batch"
                " (api_version or OPENAI_API_VERSION, e.g. 2024-10-21 or 2025-04-01-preview)"
            )
        else:
            check = (
                "check the base URL (a LiteLLM proxy is http://HOST:4000; OpenAI is"
                " https://api.openai.com/v1) and that the id exists there"
            )
        return ServiceError(
            f"{where}: not found while {action} (HTTP 404: {_service_message(exc)})", hint=check
        )
    if isinstance(exc, openai.BadRequestError):
        text = _service_message(exc)
        lowered = text.lower()
        if "deployment" in lowered or "model_not_found" in lowered or "model" in lowered:
            check = (
                "check body.model names a Global Batch (or Data Zone Batch) deployment of this"
                " resource, or pass deployments=[NAME]"
            )
        elif "api-version" in lowered or "api version" in lowered:
            check = "use an api-version that supports batch, e.g. api_version=2025-04-01-preview"
        else:
            check = "check the request file with validate_file for this target"
        return ServiceError(f"{where} rejected {action}: {text}", hint=check)
    if isinstance(exc, openai.APIConnectionError):
        return ServiceError(
            f"cannot reach {where} while {action}: {exc.message}",
            hint="check the URL, the network, or that the proxy is running; run the same step"
            " again to resume",
        )
    if isinstance(exc, openai.APIStatusError):
        return ServiceError(
            f"{where} failed while {action} (HTTP {exc.status_code}: {_service_message(exc)})",
            hint="the service is busy or failing; run the same step again later to resume",
        )
    return ServiceError(f"{where}: {action} failed: {exc}")


def connect(
    endpoint: str | None = None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    api_version: str | None = None,
    target: str | None = None,
    auth: Auth | None = None,
    custom_llm_provider: str | None = None,
    max_retries: int | None = None,
    client: openai.OpenAI | None = None,
) -> Connection:
    """A :class:`Connection` in one call: from the arguments, else the environment.

    ``endpoint`` is an Azure OpenAI resource (``https://NAME.openai.azure.com``, or
    ``AZURE_OPENAI_ENDPOINT``); ``base_url`` any OpenAI-compatible URL (OpenAI, a LiteLLM
    proxy, Azure's ``.../openai/v1``; or ``OPENAI_BASE_URL``). The key is ``api_key``, else
    ``AZURE_OPENAI_API_KEY`` / ``OPENAI_API_KEY`` (see :func:`resolve_connection`).
    ``client`` hands over an ``openai.OpenAI`` or ``AzureOpenAI`` client you already have
    instead (see :meth:`Connection.from_client`).

    >>> connection = connect("https://NAME.openai.azure.com", api_key="...")  # doctest: +SKIP
    """
    if client is not None:
        return Connection.from_client(
            client, target=target, custom_llm_provider=custom_llm_provider
        )
    settings = resolve_connection(
        endpoint=endpoint,
        base_url=base_url,
        api_key=api_key,
        api_version=api_version,
        target=target,
        auth=auth,
        custom_llm_provider=custom_llm_provider,
        max_retries=max_retries,
    )
    return Connection(settings)


def as_connection(
    value: Connection | openai.OpenAI | None, saved: Mapping[str, Any] | None = None
) -> Connection:
    """What every ``connection`` parameter takes: a :class:`Connection`, an SDK client, or
    None for :func:`connect` from the environment (and a job file's ``saved`` connection)."""
    if isinstance(value, Connection):
        return value
    if value is not None:
        saved = saved or {}
        return Connection.from_client(
            value, target=saved.get("target"), custom_llm_provider=saved.get("custom_llm_provider")
        )
    return Connection(resolve_connection(saved=saved))


class Connection:
    """A client plus its settings; every call goes through :meth:`call` for clear errors.

    Make one with :func:`connect` (from arguments or the environment) or
    :meth:`from_client` (around an ``openai.OpenAI`` / ``AzureOpenAI`` you already have).
    """

    def __init__(self, settings: ConnectionSettings, client: openai.OpenAI | None = None) -> None:
        self.settings = settings
        self._client = client

    @classmethod
    def from_client(
        cls,
        client: openai.OpenAI,
        *,
        target: str | None = None,
        custom_llm_provider: str | None = None,
    ) -> Connection:
        """Use an existing SDK client as it is (its key, retries, timeouts, HTTP client).

        Its endpoint, api-version and sign-in are read from it, for messages and for the job
        file (which never holds the key). ``target`` defaults as in :func:`resolve_connection`.
        """
        import openai

        url, _secret = strip_credentials(str(client.base_url))
        url = url.rstrip("/")
        kind: Kind = "openai"
        version = None
        auth: Auth = "api_key"
        if isinstance(client, openai.AzureOpenAI):
            from openai.lib.azure import API_KEY_SENTINEL

            kind = "azure"
            url = url.split("/openai", 1)[0]  # {endpoint}/openai[/deployments/NAME]
            query_version = client.default_query.get("api-version")
            version = query_version if isinstance(query_version, str) else None
            auth = "entra" if client.api_key == API_KEY_SENTINEL else "api_key"
        settings = ConnectionSettings(
            kind=kind,
            endpoint=url,
            target=target or _guess_target(kind, url, custom_llm_provider),
            api_version=version,
            auth=auth,
            custom_llm_provider=custom_llm_provider,
            max_retries=client.max_retries,
        )
        return cls(settings, client)

    @property
    def client(self) -> openai.OpenAI:
        if self._client is None:
            self._client = build_client(self.settings)
        return self._client

    def call(self, action: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one SDK call; translate any SDK error into a :class:`ServiceError`."""
        import openai

        try:
            return func(*args, **kwargs)
        except openai.OpenAIError as exc:
            raise translate_error(exc, self.settings, action) from exc

    @property
    def extra_body(self) -> dict[str, Any] | None:
        """LiteLLM's older routing field, sent on POSTs alongside the header."""
        if self.settings.custom_llm_provider:
            return {"custom_llm_provider": self.settings.custom_llm_provider}
        return None
