"""What a count works with and yields: the flags it can carry, the per-model context and
the result of counting one request."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

FLAG_UNKNOWN_MODEL = "unknown_model"
FLAG_REMOTE_IMAGE = "remote_image_size_unknown"
FLAG_NOT_COUNTABLE = "not_countable"
FLAG_UNSUPPORTED_ITEM = "unsupported_input_not_counted"
FLAG_FILE_INPUT = "file_input_not_counted"
"""A file input (PDF, text): its extracted text and page images are not countable offline;
the count leaves it out and the range reaches the most it can add."""
FLAG_HOSTED_TOOL = "hosted_tool_estimated"
"""A tool the service runs (web search, file search, ...): its hidden text is an estimate."""
FLAG_HIDDEN_TEXT = "hidden_text_estimated"
"""Text the request only refers to (encrypted reasoning items, stored responses and items):
its tokens are an estimate within ``input_tokens_range``."""
FLAG_ENCODING_UNAVAILABLE = "encoding_unavailable"
"""The model's tokenizer (r50k_base, p50k_base: retired GPT-3 models) does not ship offline;
the request was counted with the fallback encoding instead."""


@dataclass(slots=True)
class RequestTokens:
    """Token estimate of one request: what the service bills as input, and the output cap.

    Not frozen: one is made per request line, and a frozen dataclass takes six times as long
    to build (its ``__init__`` goes through ``object.__setattr__``), 3 % of counting a line.
    """

    input_tokens: int
    max_output_tokens: int | None  # from the body; None when unset
    model: str  # resolved model name (after the deployment map)
    encoding: str  # "o200k_base" ...
    flags: tuple[str, ...] = ()
    input_tokens_range: tuple[int, int] | None = None
    """(least, most) input tokens when part of the request cannot be counted offline (a
    remote image's size, hidden server-side text); None when ``input_tokens`` is exact."""


ImageSizeLookup = Callable[[str], "tuple[int, int] | None"]
"""Finds the (width, height) of a remote image URL, or None (opt-in network use)."""


class Flags:
    """Ordered, de-duplicated flag collector."""

    __slots__ = ("items",)

    def __init__(self, initial: Iterable[str] = ()) -> None:
        self.items: dict[str, None] = dict.fromkeys(initial)

    def add(self, flag: str) -> None:
        self.items[flag] = None

    def as_tuple(self) -> tuple[str, ...]:
        return tuple(self.items)


@dataclass(frozen=True, slots=True)
class ModelContext:
    model: str
    flags: tuple[str, ...]
    encoding: str
    text: Callable[[str], int]
    reasoning: bool
    per_message: int  # framing tokens of every message
    per_name: int  # extra tokens when a message has a name (no separator)
    name_separator: str  # a name follows the role after this ("" : the 0301 format)
    priming: int  # tokens that prime the reply
    functions_cache: dict[bytes, int]
    untitled_schemas: bool  # 2023 function models: no titles, no parameters description
    image_size: ImageSizeLookup | None  # sizes remote images (opt-in), else None
