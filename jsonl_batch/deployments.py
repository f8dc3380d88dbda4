"""Azure deployment maps: deployment name → the model it serves.

Azure's ``body.model`` is a deployment name that says nothing about the model behind it;
counting and pricing need the model. Kept apart from the tokenizer so the command line
parses ``--deployment-map`` without loading tiktoken.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError


def parse_deployment_map(
    items: Iterable[str] | str | Path | Mapping[str, str] | None,
) -> dict[str, str]:
    """Azure deployment name -> model name, from NAME=MODEL items, a mapping or a file.

    A file is either a JSON object or lines ``NAME=MODEL`` (blank lines and ``#`` comments
    ignored). A string that names an existing file is read as one; otherwise it is an item.
    """
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return _checked_map(dict(items), "deployment map")
    if isinstance(items, (str, Path)):
        items = [items]  # type: ignore[list-item]
    result: dict[str, str] = {}
    for item in items:
        path = Path(item)
        if isinstance(item, Path) or ("=" not in str(item) and path.is_file()):
            result.update(_read_deployment_file(path))
            continue
        result.update(_parse_item(str(item), "deployment map item"))
    return result


def _checked_map(mapping: dict[Any, Any], where: str) -> dict[str, str]:
    for name, model in mapping.items():
        if not isinstance(name, str) or not isinstance(model, str) or not name or not model:
            raise ConfigError(
                f"{where}: entry {name!r}: {model!r} is not a NAME: MODEL pair of strings",
                hint='use {"my-deployment": "gpt-4o-mini"}',
            )
    return {name.strip(): model.strip() for name, model in mapping.items()}


def _parse_item(item: str, where: str) -> dict[str, str]:
    name, sep, model = item.partition("=")
    if not sep or not name.strip() or not model.strip():
        raise ConfigError(
            f"{where}: {item!r} is not NAME=MODEL",
            hint="write the Azure deployment name, '=', and the model it serves, "
            "e.g. my-gpt4o=gpt-4o-2024-08-06",
        )
    return {name.strip(): model.strip()}


def _read_deployment_file(path: Path) -> dict[str, str]:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read deployment map {path}: {exc}") from exc
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{path}:{exc.lineno}: deployment map is not valid JSON ({exc.msg})"
            ) from exc
        return _checked_map(data, str(path))
    result: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            result.update(_parse_item(line, f"{path}:{number}"))
    return result
