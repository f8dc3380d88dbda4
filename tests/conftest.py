"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SHARED = ROOT.parent / "shared"


@pytest.fixture(autouse=True)
def _pinned_today(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retirement warnings depend on the date: pin it so tests don't expire with the models."""
    import datetime as dt

    from jsonl_batch import estimate

    monkeypatch.setattr(estimate, "_today", lambda: dt.date(2026, 11, 25))


@pytest.fixture
def samples() -> Path:
    return SAMPLES


@pytest.fixture
def emulator():
    """A running batch emulator on a free loopback port, fresh state, fast clock.

    ``AzureOpenAI(azure_endpoint=emulator.base_url, api_key=emulator.api_key,
    api_version=...)`` or ``OpenAI(base_url=emulator.openai_base_url, ...)``; control it with
    ``emulator.set_faults(...)``, ``.advance(seconds)``, ``.state()``, ``.reset()``.
    """
    from jsonl_batch.emulator import Emulator, EmulatorConfig

    server = Emulator(EmulatorConfig(speed=2000)).start()
    yield server
    server.close()
