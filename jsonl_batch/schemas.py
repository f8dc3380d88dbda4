"""Generate ``schemas/*.schema.json`` from the pydantic models.

Run ``python -m jsonl_batch.schemas`` after changing a model; a test fails when the files
drift from the models.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import orjson

# schema file stem → "module:attribute" of a pydantic model
SCHEMA_MODELS: dict[str, str] = {
    "request_line": "jsonl_batch.formats.wire:RequestLine",
    "chat_completions_body": "jsonl_batch.formats.wire:ChatCompletionsBody",
    "responses_body": "jsonl_batch.formats.wire:ResponsesBody",
    "embeddings_body": "jsonl_batch.formats.wire:EmbeddingsBody",
    "completions_body": "jsonl_batch.formats.wire:CompletionsBody",
    "moderations_body": "jsonl_batch.formats.wire:ModerationsBody",
    "images_body": "jsonl_batch.formats.wire:ImagesBody",
    "image_edits_body": "jsonl_batch.formats.wire:ImageEditsBody",
    "videos_body": "jsonl_batch.formats.wire:VideosBody",
    "output_line": "jsonl_batch.formats.wire:OutputLine",
    "error_line": "jsonl_batch.formats.wire:ErrorLine",
    "manifest": "jsonl_batch.formats.manifest:Manifest",
    "job": "jsonl_batch.formats.jobfile:JobFile",
    "resources": "jsonl_batch.formats.resources:ResourcesFile",
    "prices": "jsonl_batch.pricing:PriceFile",
}


def generate() -> dict[str, dict[str, Any]]:
    """Every schema, keyed by file stem."""
    schemas: dict[str, dict[str, Any]] = {}
    for stem, target in SCHEMA_MODELS.items():
        module_name, attribute = target.split(":")
        model = getattr(importlib.import_module(module_name), attribute)
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://jsonl-batch.dev/schemas/{stem}.schema.json"
        schemas[stem] = schema
    return schemas


def render(schema: dict[str, Any]) -> bytes:
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, schema in generate().items():
        path = directory / f"{stem}.schema.json"
        path.write_bytes(render(schema))
        written.append(path)
    return written


if __name__ == "__main__":
    target_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("schemas")
    for path in write(target_dir):
        print(path)
