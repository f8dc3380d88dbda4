"""A local Azure OpenAI / OpenAI Batch API emulator, for tests and demos without a cloud.

Serves the files and batches endpoints under Azure's ``/openai`` (with ``api-version``),
``/openai/v1`` and OpenAI's ``/v1`` paths, runs batches through the real lifecycle on a fast
simulated clock, writes deterministic results, and injects faults on demand. The core
library never imports this package.

    from jsonl_batch.emulator import Emulator, EmulatorConfig

    with Emulator(EmulatorConfig(deployments={"gpt-4o-batch": "gpt-4o-2024-08-06"})) as emu:
        client = AzureOpenAI(azure_endpoint=emu.base_url, api_key=emu.api_key,
                             api_version="2025-04-01-preview")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import EmulatorConfig, Faults

if TYPE_CHECKING:
    from .server import Emulator

__all__ = ["Emulator", "EmulatorConfig", "Faults"]


def __getattr__(name: str) -> Any:
    # The server (http.server, the validator, the tokenizer) loads on first use, so the
    # CLI can register the command without paying for it on every start.
    if name == "Emulator":
        from .server import Emulator

        return Emulator
    raise AttributeError(name)
