"""Image input tokens: tiles (gpt-4o, gpt-4.1, o-series, gpt-5) or 32 px patches times a
model multiplier (mini/nano and newer models), with the size read from an image's header
bytes, never by decoding pixels; and the most a file input (PDF, text) can add."""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct
from typing import Any

from .model_table import base_model_of, longest_prefix, longest_prefix_len
from .rules import token_rules


def image_size_from_bytes(data: bytes) -> tuple[int, int] | None:
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
    payload_start = _base64_payload_start(url)
    if payload_start is None:
        return None
    chunk = 4096
    while True:
        piece = "".join(url[payload_start : payload_start + chunk].split())  # line breaks
        piece = piece[: len(piece) - len(piece) % 4]
        try:
            data = base64.b64decode(piece)
        except (binascii.Error, ValueError):
            return None
        size = image_size_from_bytes(data)
        if size is not None or payload_start + chunk >= len(url) or data[:2] != b"\xff\xd8":
            return size
        chunk *= 8


def _base64_payload_start(url: str) -> int | None:
    """Where the payload of a base64 ``data:`` URL starts; None for anything else."""
    if not url.startswith("data:"):
        return None
    comma = url.find(",", 0, 256)
    if comma < 0 or ";base64" not in url[:comma].lower():
        return None
    return comma + 1


def _tile_tokens(width: float, height: float, detail: str, base: int, tile: int) -> int:
    rules = token_rules()["images"]
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


def patch_count(width: float, height: float, budget: int, max_side: int | None) -> int:
    patch = token_rules()["images"]["patch_size"]
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
    rules = token_rules()["images"]
    base_model = base_model_of(model)
    detail = (detail or "auto").lower()
    patch_rule = longest_prefix(base_model, rules["patch"])
    tile_rule = longest_prefix(base_model, rules["tile"])
    if patch_rule is not None and (
        tile_rule is None or longest_prefix_len(base_model, rules["patch"]) >= _tile_len(model)
    ):
        budget = patch_rule["budget"]
        max_side: int | None = rules["patch_max_side"]
        original = detail == "original" or (detail == "auto" and patch_rule.get("auto_is_original"))
        if original:
            budget = patch_rule.get("original_budget", budget)
            max_side = rules["original_max_side"]
        if width is None or height is None:
            patches = budget  # an unresized original is counted up to the original budget
        elif original and patch_rule.get("original_unresized"):
            side = rules["patch_size"]
            patches = math.ceil(width / side) * math.ceil(height / side)
        else:
            patches = patch_count(width, height, budget, max_side)
        # the product is rounded up as a float, like the service does (300 x 1.62 -> 487),
        # and each image costs one token more (rules file, ``_patch_extra``)
        return math.ceil(patches * patch_rule["multiplier"]) + rules["patch_extra"]
    rule = tile_rule or rules["tile_default"]
    if width is None or height is None:
        width, height = rules["tile_short_side"], rules["tile_fit"]
    return _tile_tokens(width, height, detail, rule["base"], rule["tile"])


def _tile_len(model: str) -> int:
    return longest_prefix_len(base_model_of(model), token_rules()["images"]["tile"])


def least_image_tokens(model: str, detail: str | None) -> int:
    """The least ``model`` charges for one image: a 1 x 1 image, at low detail when the
    request leaves the detail to the service."""
    least = image_tokens(model, 1, 1, detail)
    if (detail or "auto").lower() == "auto":
        least = min(least, image_tokens(model, 1, 1, "low"))
    return least


_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def file_most_tokens(model: str, part: dict[str, Any]) -> int:
    """The most a file part (``file`` / ``input_file``) can add to a request for ``model``.

    The service extracts a file's text, and for a PDF on a vision model an image of each
    page; neither is countable offline, so a file counts as nothing and this bounds the
    range (rules file, ``images.files``): per page the model's largest image and a page of
    dense text, pages read from an inline PDF; an inline non-PDF file at most a token a byte.
    """
    rules = token_rules()["images"]["files"]
    inner = part.get("file")
    inner = inner if isinstance(inner, dict) else part
    data = inner.get("file_data")
    pages = rules["unknown_pages"]
    if isinstance(data, str):
        start = _base64_payload_start(data)
        try:
            raw = base64.b64decode(data[start:] if start is not None else data)
        except (binascii.Error, ValueError):
            raw = b""
        if raw and not raw.startswith(b"%PDF"):
            return len(raw) + rules["wrapper_most"]
        pages = len(_PDF_PAGE.findall(raw)) or pages
    per_page = image_tokens(model, None, None, "high") + rules["page_text_most"]
    return pages * per_page + rules["wrapper_most"]
