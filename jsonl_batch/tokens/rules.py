"""The counting rules and constants, with their sources: ``data/token_rules.json``."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def token_rules() -> dict[str, Any]:
    """The bundled constants (dated, with sources), read once."""
    text = resources.files("jsonl_batch").joinpath("data/token_rules.json").read_text("utf-8")
    return json.loads(text)
