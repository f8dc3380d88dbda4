"""Wire models: the Batch API's request, output and error lines, and the request bodies.

Known fields are type-checked; unknown body fields are allowed, because providers keep
adding parameters (a target profile may forbid them). ``schemas/`` holds the JSON Schemas
generated from these models (``python -m jsonl_batch.schemas``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

ENDPOINT_CHAT = "chat/completions"
ENDPOINT_RESPONSES = "responses"
ENDPOINT_EMBEDDINGS = "embeddings"
ENDPOINT_COMPLETIONS = "completions"
ENDPOINTS = (ENDPOINT_CHAT, ENDPOINT_RESPONSES, ENDPOINT_EMBEDDINGS, ENDPOINT_COMPLETIONS)


def endpoint_of(url: str) -> str | None:
    """Map a line ``url`` (``/v1/chat/completions``, ``/chat/completions``, ...) to its endpoint.

    Returns None for a url that names no endpoint we know.
    """
    path = url.split("?", 1)[0].strip("/")
    if path.startswith("v1/"):
        path = path[3:]
    elif path.startswith("openai/v1/"):
        path = path[10:]
    return path if path in ENDPOINTS else None


class _Open(BaseModel):
    """Base for bodies: known fields checked, unknown fields kept."""

    model_config = ConfigDict(extra="allow")


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- chat completions ---------------------------------------------------------------


class ImageURL(_Open):
    url: StrictStr
    detail: Literal["auto", "low", "high", "original"] | None = None


class ContentPart(_Open):
    """A part of a message's content: ``text``, ``image_url``, ``input_audio``, ``file``..."""

    type: StrictStr
    text: StrictStr | None = None
    image_url: ImageURL | None = None


class FunctionCall(_Open):
    name: StrictStr
    arguments: StrictStr


class ToolCall(_Open):
    id: StrictStr | None = None
    type: StrictStr = "function"
    function: FunctionCall | None = None


class ChatMessage(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: StrictStr | list[ContentPart] | None = None
    name: StrictStr | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: StrictStr | None = None


class FunctionDefinition(_Open):
    name: StrictStr
    description: StrictStr | None = None
    parameters: dict[str, Any] | None = None
    strict: StrictBool | None = None


class ChatTool(_Open):
    type: StrictStr
    function: FunctionDefinition | None = None


PositiveInt = Annotated[StrictInt, Field(ge=1)]


class ChatCompletionsBody(_Open):
    """Body of a ``/v1/chat/completions`` line."""

    model: StrictStr
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    n: PositiveInt | None = None
    stream: StrictBool | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    tools: list[ChatTool] | None = None
    functions: list[FunctionDefinition] | None = None
    response_format: dict[str, Any] | None = None


# --- responses ----------------------------------------------------------------------


class ResponsesBody(_Open):
    """Body of a ``/v1/responses`` line."""

    model: StrictStr
    input: StrictStr | list[dict[str, Any]]
    instructions: StrictStr | None = None
    max_output_tokens: PositiveInt | None = None
    stream: StrictBool | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    tools: list[dict[str, Any]] | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None


# --- embeddings and completions -----------------------------------------------------

EmbeddingInput = (
    Annotated[StrictStr, Field(min_length=1)]
    | Annotated[list[Annotated[StrictStr, Field(min_length=1)]], Field(min_length=1)]
    | Annotated[list[StrictInt], Field(min_length=1)]
    | Annotated[list[Annotated[list[StrictInt], Field(min_length=1)]], Field(min_length=1)]
)


class EmbeddingsBody(_Open):
    """Body of a ``/v1/embeddings`` line."""

    model: StrictStr
    input: EmbeddingInput
    dimensions: PositiveInt | None = None
    encoding_format: Literal["float", "base64"] | None = None


class CompletionsBody(_Open):
    """Body of a legacy ``/v1/completions`` line."""

    model: StrictStr
    prompt: StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]]
    max_tokens: PositiveInt | None = None
    n: PositiveInt | None = None
    stream: StrictBool | None = None


BODY_MODELS: dict[str, type[BaseModel]] = {
    ENDPOINT_CHAT: ChatCompletionsBody,
    ENDPOINT_RESPONSES: ResponsesBody,
    ENDPOINT_EMBEDDINGS: EmbeddingsBody,
    ENDPOINT_COMPLETIONS: CompletionsBody,
}


# --- lines --------------------------------------------------------------------------


class RequestLine(_Closed):
    """One line of a batch input file."""

    custom_id: Annotated[StrictStr, Field(min_length=1)]
    method: Literal["POST"]
    url: StrictStr
    body: dict[str, Any]


class ResponseEnvelope(_Open):
    status_code: StrictInt
    request_id: StrictStr | None = None
    body: dict[str, Any] | None = None


class OutputError(_Open):
    """The ``error`` object of an output or error line."""

    code: StrictStr | None = None
    message: StrictStr | None = None


class OutputLine(_Open):
    """One line of a finished batch's output file (or error file: same shape).

    A success has ``response.status_code == 200``; an HTTP failure has another status code
    and the error in ``response.body.error``; a non-HTTP failure (``batch_expired``) has
    ``response: null`` and ``error``.
    """

    id: StrictStr | None = None
    custom_id: StrictStr
    response: ResponseEnvelope | None = None
    error: OutputError | None = None


class ErrorLine(OutputLine):
    """One line of a finished batch's error file."""


LINE_MODELS: dict[str, type[BaseModel]] = {
    "request_line": RequestLine,
    "chat_completions_body": ChatCompletionsBody,
    "responses_body": ResponsesBody,
    "embeddings_body": EmbeddingsBody,
    "completions_body": CompletionsBody,
    "output_line": OutputLine,
    "error_line": ErrorLine,
}
