"""Wire models: the Batch API's request, output and error lines, and the request bodies.

Known fields are type-checked; unknown body fields are allowed, because providers keep
adding parameters (a target profile may forbid them). ``schemas/`` holds the JSON Schemas
generated from these models (``python -m jsonl_batch.schemas``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)

ENDPOINT_CHAT = "chat/completions"
ENDPOINT_RESPONSES = "responses"
ENDPOINT_EMBEDDINGS = "embeddings"
ENDPOINT_COMPLETIONS = "completions"
ENDPOINT_MODERATIONS = "moderations"
ENDPOINT_IMAGES = "images/generations"
ENDPOINT_IMAGE_EDITS = "images/edits"
ENDPOINT_VIDEOS = "videos"
ENDPOINTS = (
    ENDPOINT_CHAT,
    ENDPOINT_RESPONSES,
    ENDPOINT_EMBEDDINGS,
    ENDPOINT_COMPLETIONS,
    ENDPOINT_MODERATIONS,
    ENDPOINT_IMAGES,
    ENDPOINT_IMAGE_EDITS,
    ENDPOINT_VIDEOS,
)
"""The endpoints of OpenAI's Batch API (openai-python ``BatchCreateParams.endpoint``)."""
# vLLM's run-batch serves these too (vllm/entrypoints/openai/run_batch.py).
ENDPOINT_SCORE = "score"
ENDPOINT_RERANK = "rerank"
ENDPOINT_TRANSCRIPTIONS = "audio/transcriptions"
ENDPOINT_TRANSLATIONS = "audio/translations"


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


# --- moderations, images, videos ---------------------------------------------------------
# Fields, required fields and limits from openai-openapi (CreateModerationRequest,
# CreateImageRequest, EditImageBodyJsonParam, CreateVideoJsonBody, ImageRefParam) as the
# openai-python snapshot e43b422 (2026-08-21) ships them. ``model`` is optional on these
# endpoints: each has a default model.

Prompt = Annotated[StrictStr, Field(min_length=1, max_length=32000)]
ImageCount = Annotated[StrictInt, Field(ge=1, le=10)]


class ModerationPart(_Open):
    """One part of a multi-modal moderation input."""

    type: Literal["text", "image_url"]


class ModerationsBody(_Open):
    """Body of a ``/v1/moderations`` line."""

    input: StrictStr | list[StrictStr] | list[ModerationPart]
    model: StrictStr | None = None


class ImageRef(_Closed):
    """An input image by URL (or data URL) or by uploaded file id: exactly one of the two."""

    image_url: StrictStr | None = None
    file_id: StrictStr | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ImageRef:
        if (self.image_url is None) == (self.file_id is None):
            raise ValueError("give exactly one of image_url and file_id")
        return self


class ImagesBody(_Open):
    """Body of a ``/v1/images/generations`` line."""

    prompt: Prompt
    model: StrictStr | None = None
    n: ImageCount | None = None
    stream: StrictBool | None = None


class ImageEditsBody(_Open):
    """Body of a ``/v1/images/edits`` line: the JSON form (images by reference, no upload)."""

    images: Annotated[list[ImageRef], Field(min_length=1, max_length=16)]
    prompt: Prompt
    mask: ImageRef | None = None
    model: StrictStr | None = None
    n: ImageCount | None = None
    stream: StrictBool | None = None


class VideosBody(_Open):
    """Body of a ``/v1/videos`` line."""

    prompt: Prompt
    model: StrictStr | None = None
    seconds: Literal["4", "8", "12"] | None = None
    size: Literal["720x1280", "1280x720", "1024x1792", "1792x1024"] | None = None
    input_reference: ImageRef | None = None


# --- vLLM's own endpoints -------------------------------------------------------------
# vLLM checks these bodies with its own pydantic models (vllm/entrypoints/openai/run_batch.py
# ``BatchRequestInput.check_type_for_url``); only what every version we read requires is
# checked here, the rest is left to vLLM.


class ScoreBody(_Open):
    """Body of a vLLM ``/score`` (``/v1/score``) line."""

    model: StrictStr | None = None


class RerankBody(_Open):
    """Body of a vLLM ``/rerank`` (``/v1/rerank``, ``/v2/rerank``) line."""

    model: StrictStr | None = None


class AudioBody(_Open):
    """Body of a vLLM ``/v1/audio/transcriptions`` or ``/v1/audio/translations`` line: the
    audio comes by ``file_url`` (a URL or a base64 data URL); an uploaded ``file`` is refused
    (``BatchTranscriptionRequest`` / ``BatchTranslationRequest`` in vLLM's run_batch.py)."""

    file_url: StrictStr
    model: StrictStr | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_file(cls, data: Any) -> Any:
        if isinstance(data, dict) and "file" in data:
            raise ValueError("'file' is not supported in batch requests; use file_url")
        return data


BODY_MODELS: dict[str, type[BaseModel]] = {
    ENDPOINT_CHAT: ChatCompletionsBody,
    ENDPOINT_RESPONSES: ResponsesBody,
    ENDPOINT_EMBEDDINGS: EmbeddingsBody,
    ENDPOINT_COMPLETIONS: CompletionsBody,
    ENDPOINT_MODERATIONS: ModerationsBody,
    ENDPOINT_IMAGES: ImagesBody,
    ENDPOINT_IMAGE_EDITS: ImageEditsBody,
    ENDPOINT_VIDEOS: VideosBody,
    ENDPOINT_SCORE: ScoreBody,
    ENDPOINT_RERANK: RerankBody,
    ENDPOINT_TRANSCRIPTIONS: AudioBody,
    ENDPOINT_TRANSLATIONS: AudioBody,
}


def model_required(endpoint: str | None) -> bool:
    """Whether a body of this endpoint must name its model (unknown endpoints: yes)."""
    model_cls = BODY_MODELS.get(endpoint or "")
    return model_cls is None or model_cls.model_fields["model"].is_required()


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
    "moderations_body": ModerationsBody,
    "images_body": ImagesBody,
    "image_edits_body": ImageEditsBody,
    "videos_body": VideosBody,
    "output_line": OutputLine,
    "error_line": ErrorLine,
}
