"""The split manifest (``<stem>.manifest.json``): the shards ``split`` wrote, for ``submit``
and ``merge``.

This module owns the format: ``split`` writes it with :func:`write_manifest` and every
reader goes through :func:`read_manifest`. Paths inside are relative to the manifest's
folder (:attr:`Manifest.base_dir`). The manifest is the marker of the split's file set: it
is published last and names every shard with its sha256 (:mod:`jsonl_batch.publish`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError

from ..errors import InputError, first_problem
from ..jsonl import atomic_write_json, read_json
from ..publish import settle
from . import naming

MANIFEST_VERSION: Literal[1] = 1


class _Documented(BaseModel):
    """Field docstrings become descriptions in ``schemas/manifest.schema.json``."""

    model_config = ConfigDict(use_attribute_docstrings=True)


class SourceInfo(_Documented):
    """The file that was split."""

    path: str
    """Relative to the manifest's folder, or absolute when the file is not under it."""
    sha256: str
    """Of the bytes read (after gunzip for a ``.gz`` input)."""
    bytes: int
    requests: int
    blank_lines: int


class SplitLimits(_Documented):
    """The limits every shard was cut to."""

    max_requests: int
    max_bytes: int
    max_tokens: int | None = None
    token_margin: float = 0.0
    """Safety margin in percent: a shard's estimated input tokens times (1 + margin/100)
    stays within ``max_tokens``."""
    by_model: bool = True
    token_budget: int | None = None
    """The estimated input tokens a shard may hold: ``max_tokens`` less the margin."""
    max_embedding_inputs: int | None = None
    """Embedding inputs per shard (the target's per-batch cap; None: no cap)."""


class ShardInfo(_Documented):
    """One shard file."""

    index: int
    """1-based position in the manifest."""
    path: str
    """Relative to the manifest's folder."""
    model: str
    """``body.model`` of every line ("" when they have none: only a ``force`` split)."""
    url: str
    requests: int
    bytes: int
    input_tokens: int | None
    """Estimated input tokens; None unless the split had a token limit."""
    embedding_inputs: int | None = None
    """Inputs of an embeddings shard when the target caps them; None otherwise."""
    sha256: str
    first_custom_id: str
    last_custom_id: str
    first_line: int
    """Line numbers in the source file (1-based, blank lines counted)."""
    last_line: int
    part: int = 1
    """1-based part number within the shard's (model, url) group."""


class ValidationSummary(_Documented):
    """What the validation pass found (``checked`` is False with ``--no-validate``)."""

    checked: bool
    errors: int = 0
    warnings: int = 0
    forced: bool = False
    counts: dict[str, int] = {}


class Manifest(_Documented):
    """``<stem>.manifest.json``: what ``split`` wrote, read by ``submit`` and ``merge``."""

    version: Literal[1] = MANIFEST_VERSION
    source: SourceInfo
    target: str
    limits: SplitLimits
    created_at: str
    shards: list[ShardInfo]
    validation: ValidationSummary | None = None
    _base_dir: Path = PrivateAttr(default_factory=Path)

    @property
    def base_dir(self) -> Path:
        """The folder the manifest lives in; the paths inside are relative to it."""
        return self._base_dir

    def located_in(self, folder: str | os.PathLike[str]) -> Manifest:
        """This manifest, with its relative paths resolving against ``folder``."""
        self._base_dir = Path(folder)
        return self

    def source_path(self) -> Path:
        """Where the source file is (it may have moved or been deleted since)."""
        return self._base_dir / self.source.path

    def shard_path(self, shard: ShardInfo) -> Path:
        return self._base_dir / shard.path

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and check a manifest written by ``split``; paths in it resolve against its folder.

    A split that was killed after committing its set is finished first, so the manifest and
    the shards read are those of one split."""
    manifest_path = Path(path)
    settle(manifest_path.parent, naming.split_set(naming.stem(manifest_path)))
    data = read_json(manifest_path)
    if not isinstance(data, dict) or "shards" not in data:
        raise InputError(
            f"{manifest_path}: not a split manifest (no 'shards' list)",
            hint="pass the <stem>.manifest.json that split_file wrote",
        )
    if data.get("version") != MANIFEST_VERSION:
        raise InputError(
            f"{manifest_path}: manifest version {data.get('version')!r} is not supported "
            f"(this jsonl-batch reads version {MANIFEST_VERSION})",
            hint="split again with this version (split_file)",
        )
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        raise InputError(
            f"{manifest_path}: invalid manifest: {first_problem(exc)}",
            hint="the file was edited or truncated; split again with overwrite=True (split_file)",
        ) from None
    return manifest.located_in(manifest_path.parent)


def write_manifest(path: str | os.PathLike[str], manifest: Manifest) -> None:
    """Replace the manifest atomically; its paths are taken as relative to ``path``'s folder."""
    atomic_write_json(path, manifest.to_json())
    manifest.located_in(Path(path).parent)
