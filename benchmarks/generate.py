"""Synthetic, realistic batch request files for benchmarks.

Varied prompt lengths, a few shared system prompts (as real jobs have), some requests with
tools and some with images (small PNG data URLs whose header carries real dimensions).
Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import base64
import random
import struct
import zlib
from pathlib import Path

import orjson

WORDS = (
    "the of and to in is was for on that with as by at from his an were are which this be "
    "batch model token request response file deployment azure openai quota limit shard merge "
    "customer invoice shipment delayed refund product review summary translate classify "
    "extract entity sentiment positive negative neutral question answer context document "
    "paragraph sentence report analysis revenue growth quarter market strategy risk"
).split()

SYSTEM_PROMPTS = [
    "You are a meticulous data-labelling assistant. Classify the customer message into one of "
    "the categories billing, shipping, product, account or other, and answer with JSON. " * 6,
    "You are a helpful assistant that summarises documents for busy executives. Keep the "
    "summary under 120 words, use plain language and list the three key risks. " * 8,
    "Extract every named entity (person, organisation, location, date, amount) from the "
    "text and return them as a JSON array of objects with type and value. " * 4,
]

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "record_label",
            "description": "Record the label chosen for a message",
            "parameters": {
                "type": "object",
                "properties": {
                    "label": {
                        "type": "string",
                        "enum": ["billing", "shipping", "product", "account", "other"],
                    },
                    "confidence": {"type": "number", "description": "0 to 1"},
                },
                "required": ["label"],
            },
        },
    }
]


def tiny_png(width: int, height: int) -> bytes:
    """A valid 1-row PNG whose IHDR says width x height (enough for size sniffing)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 4))
        + chunk(b"IEND", b"")
    )


def _text(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def generate_requests(
    path: str | Path,
    n_lines: int,
    *,
    seed: int = 0,
    models: tuple[str, ...] = ("gpt-4o-batch",),
    url: str = "/v1/chat/completions",
    shared_prompts: bool = True,
    tools_fraction: float = 0.1,
    image_fraction: float = 0.03,
    mean_words: int = 120,
) -> int:
    """Write ``n_lines`` chat requests to ``path``; returns the file size in bytes."""
    rng = random.Random(seed)
    images = [
        "data:image/png;base64," + base64.b64encode(tiny_png(w, h)).decode()
        for w, h in ((640, 480), (1024, 1024), (3008, 2000))
    ]
    size = 0
    with open(path, "wb", buffering=1 << 20) as out:
        for i in range(n_lines):
            system = (
                rng.choice(SYSTEM_PROMPTS) if shared_prompts else _text(rng, rng.randint(40, 160))
            )
            words = max(5, int(rng.expovariate(1 / mean_words)))
            user: object = _text(rng, words)
            if rng.random() < image_fraction:
                user = [
                    {"type": "text", "text": user},
                    {
                        "type": "image_url",
                        "image_url": {"url": rng.choice(images), "detail": "auto"},
                    },
                ]
            body: dict[str, object] = {
                "model": models[i % len(models)],
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": user},
                ],
                "max_tokens": rng.choice((100, 200, 500, 1000)),
            }
            if rng.random() < tools_fraction:
                body["tools"] = TOOLS
            line = orjson.dumps(
                {"custom_id": f"req-{i:08d}", "method": "POST", "url": url, "body": body},
                option=orjson.OPT_APPEND_NEWLINE,
            )
            out.write(line)
            size += len(line)
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path")
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default="gpt-4o-batch", help="comma-separated")
    parser.add_argument("--no-shared-prompts", action="store_true")
    args = parser.parse_args()
    size = generate_requests(
        args.path,
        args.lines,
        seed=args.seed,
        models=tuple(args.models.split(",")),
        shared_prompts=not args.no_shared_prompts,
    )
    print(f"{args.path}: {args.lines:,} lines, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
