"""Settings of the emulator: what it is (deployments, key, speed, storage) and which faults
it injects.

Faults are plain data so the CLI flags, the ``POST /_emulator/faults`` control endpoint and
tests all set them the same way, and ``GET /_emulator/state`` can show them back.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

# Simulated durations of each phase, in simulated seconds (Azure's docs show about a
# minute of validating and a few minutes of finalizing for a tiny file).
VALIDATING_SECONDS = 60.0
IN_PROGRESS_BASE_SECONDS = 30.0
IN_PROGRESS_SECONDS_PER_REQUEST = 0.05
FINALIZING_SECONDS = 60.0
CANCELLING_SECONDS = 30.0
COMPLETION_WINDOW_SECONDS = 86_400

DEFAULT_SPEED = 100.0
# A connection that sends nothing for this long (idle keep-alive, half-open) is closed.
DEFAULT_IDLE_TIMEOUT_SECONDS = 30.0
# Largest upload accepted: Azure's and OpenAI's batch input limit.
DEFAULT_MAX_UPLOAD_BYTES = 200_000_000


@dataclass
class Faults:
    """Faults to inject. Rates are fractions in [0, 1]; ``*_next`` counts fire first, exactly.

    Per-request faults (``request_failure_*``) decide which lines of a batch fail, from the
    seed and the line's ``custom_id``, so a given file always fails the same lines.
    API faults hit the HTTP calls themselves (not the ``/_emulator`` control paths).
    """

    request_failure_rate: float = 0.0
    request_failure_statuses: list[int] = field(default_factory=lambda: [500])
    api_error_rate: float = 0.0
    api_errors_next: int = 0
    api_error_statuses: list[int] = field(default_factory=lambda: [429])
    retry_after: int = 1
    drop_rate: float = 0.0
    drop_next: int = 0
    slow_seconds: float = 0.0
    slow_rate: float = 1.0
    expire_rate: float = 0.0
    expire_next: int = 0
    expire_progress: float = 0.5
    token_quota: int | dict[str, int] | None = None

    def quota_for(self, deployment: str) -> int | None:
        """The enqueued-token limit of ``deployment``, or None when it has none."""
        if isinstance(self.token_quota, dict):
            return self.token_quota.get(deployment, self.token_quota.get("*"))
        return self.token_quota

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def updated(self, changes: dict[str, Any]) -> Faults:
        """A copy with ``changes`` applied; raises ConfigError naming an unknown or bad key."""
        known = {f.name: f for f in dataclasses.fields(self)}
        values = self.to_dict()
        for key, value in changes.items():
            if key not in known:
                raise ConfigError(
                    f"unknown fault {key!r}", hint="known faults: " + ", ".join(sorted(known))
                )
            values[key] = _check_fault(key, value)
        return Faults(**values)


def _check_fault(key: str, value: Any) -> Any:
    if key.endswith("_rate") or key == "expire_progress":
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
            raise ConfigError(f"fault {key} must be a number between 0 and 1, got {value!r}")
        return float(value)
    if key.endswith("_statuses"):
        if isinstance(value, int):
            value = [value]
        if not (
            isinstance(value, list)
            and value
            and all(isinstance(v, int) and 400 <= v <= 599 for v in value)
        ):
            raise ConfigError(f"fault {key} must be a list of HTTP error codes, got {value!r}")
        return list(value)
    if key == "slow_seconds":
        if not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"fault slow_seconds must be >= 0, got {value!r}")
        return float(value)
    if key == "token_quota":
        if value is None or (isinstance(value, int) and value > 0):
            return value
        if isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, int) and v > 0 for k, v in value.items()
        ):
            return dict(value)
        raise ConfigError(
            f"fault token_quota must be a positive int, a {{deployment: int}} map or null, "
            f"got {value!r}"
        )
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"fault {key} must be a non-negative integer, got {value!r}")
    return value


@dataclass
class EmulatorConfig:
    """How one emulator instance behaves.

    ``speed`` is simulated seconds per real second: at 100, a minute of ``validating``
    takes 0.6 s. ``deployments`` maps deployment names to the model that chat bodies
    report (as Azure does). ``data_dir`` None keeps metadata in memory and file contents
    in a temporary folder removed on close.
    """

    host: str = "127.0.0.1"
    port: int = 0
    api_key: str = field(default_factory=lambda: secrets.token_hex(16))
    speed: float = DEFAULT_SPEED
    seed: int = 0
    deployments: dict[str, str] = field(default_factory=dict)
    data_dir: Path | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT_SECONDS
    faults: Faults = field(default_factory=Faults)

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ConfigError(f"speed must be > 0, got {self.speed}")
        if self.idle_timeout <= 0:
            raise ConfigError(f"idle timeout must be > 0 seconds, got {self.idle_timeout}")
        if self.data_dir is not None:
            self.data_dir = Path(self.data_dir)


def parse_deployment(text: str) -> tuple[str, str]:
    """``NAME=MODEL`` → (name, model), for ``--deployment``."""
    name, sep, model = text.partition("=")
    if not sep or not name.strip() or not model.strip():
        raise ConfigError(
            f"bad deployment {text!r}", hint="write it as NAME=MODEL, e.g. gpt-4o-batch=gpt-4o"
        )
    return name.strip(), model.strip()


def parse_token_quota(values: tuple[str, ...] | list[str]) -> int | dict[str, int] | None:
    """``--token-quota 30000`` (every deployment) or ``NAME=30000`` (one deployment)."""
    quota: dict[str, int] = {}
    for text in values:
        name, sep, number = text.rpartition("=")
        try:
            limit = int(number.replace("_", ""))
        except ValueError:
            raise ConfigError(
                f"bad token quota {text!r}", hint="write N or DEPLOYMENT=N, e.g. 30000"
            ) from None
        if limit <= 0:
            raise ConfigError(f"token quota must be positive, got {text!r}")
        quota[name.strip() if sep else "*"] = limit
    if not quota:
        return None
    if list(quota) == ["*"]:
        return quota["*"]
    return quota
