"""Token counter rules: cookbook and documentation worked examples, offline loading, maps."""

from __future__ import annotations

import base64
import gzip
import socket
import struct
from pathlib import Path
from typing import Any

import pytest

from jsonl_batch import tokens
from jsonl_batch.deployments import parse_deployment_map
from jsonl_batch.errors import ConfigError, EncodingUnavailable
from jsonl_batch.tokens import (
    TokenCounter,
    count_request_tokens,
    encoding_name_for_model,
    encodings,
    get_encoding,
    image_size_from_data_url,
    image_tokens,
)
from jsonl_batch.tokens.images import patch_count
from jsonl_batch.tokens.rules import token_rules

COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities "
        "for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client "
        "deliverable.",
    },
]

WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": "The city and state, e.g. San Francisco, CA",
                    },
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]
WEATHER_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful assistant that can answer to questions about the weather.",
    },
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


def chat(model: str, messages: list[dict[str, Any]], **extra: Any) -> int:
    body = {"model": model, "messages": messages, **extra}
    return TokenCounter().count_body("chat/completions", body).input_tokens


def png_data_url(width: int, height: int) -> str:
    header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR"
    header += struct.pack(">II", width, height) + b"\x08\x02\x00\x00\x00" + b"\x00" * 4
    return "data:image/png;base64," + base64.b64encode(header).decode()


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-3.5-turbo", 129),
        ("gpt-4-0613", 129),
        ("gpt-4", 129),
        ("gpt-4o", 124),
        ("gpt-4o-mini", 124),
        ("gpt-3.5-turbo-0301", 127),
    ],
)
def test_cookbook_chat_example_matches_the_api(model: str, expected: int) -> None:
    assert chat(model, COOKBOOK_MESSAGES) == expected


@pytest.mark.parametrize(("model", "expected"), [("gpt-4", 105), ("gpt-4o", 101)])
def test_cookbook_tools_example_is_within_one_token(model: str, expected: int) -> None:
    # The rendering is fitted on 40+ real requests; the cookbook case itself is 1 over.
    assert abs(chat(model, WEATHER_MESSAGES, tools=WEATHER_TOOLS) - expected) <= 1


def test_reasoning_models_prime_the_reply_with_one_token_less() -> None:
    messages = [{"role": "user", "content": "How do I cross the street?"}]
    assert chat("o3-mini", messages) == chat("gpt-4o", messages) - 1


def test_tool_call_arguments_count_the_same_compact_or_spaced() -> None:
    def with_args(arguments: str) -> int:
        call = {
            "id": "c1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": arguments},
        }
        messages = [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ]
        return chat("gpt-4o", messages)

    assert with_args('{"city":"Paris"}') == with_args('{"city": "Paris"}')


def test_results_of_parallel_calls_are_billed_as_one_json_list() -> None:
    # After a turn with several calls the results reach the model as one JSON list (fitted
    # on recorded parallel calls): text is JSON-escaped, so Korean costs several times more
    # than after a single call, and JSON results are re-serialised, so indentation is free.
    def turn(result: str, calls: int) -> int:
        tool_calls = [
            {"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            for i in range(calls)
        ]
        results = [{"role": "tool", "tool_call_id": c["id"], "content": result} for c in tool_calls]
        messages = [{"role": "assistant", "content": None, "tool_calls": tool_calls}, *results]
        return chat("gpt-4o", messages)

    korean = "테스트 " * 50
    assert turn(korean, 2) - turn("", 2) > 5 * 2 * (turn(korean, 1) - turn("", 1))
    pretty = '{\n  "city": "Paris",\n  "temperature": 21\n}'
    compact = '{"city":"Paris","temperature":21}'
    assert turn(pretty, 2) == turn(compact, 2)
    assert turn(pretty, 1) > turn(compact, 1)


@pytest.mark.parametrize(
    ("size", "detail", "expected"),
    [
        ((1024, 1024), "high", 765),
        ((2048, 4096), "high", 1105),
        ((4096, 8192), "low", 85),
        ((640, 480), "auto", 425),
    ],
)
def test_tile_formula_doc_examples(size: tuple[int, int], detail: str, expected: int) -> None:
    assert image_tokens("gpt-4o", size[0], size[1], detail) == expected


def test_gpt_4o_mini_tiles_cost_more() -> None:
    assert image_tokens("gpt-4o-mini", 640, 480, None) == 2833 + 5667 * 2


@pytest.mark.parametrize(("size", "patches"), [((1024, 1024), 1024), ((1800, 2400), 1452)])
def test_patch_formula_doc_examples(size: tuple[int, int], patches: int) -> None:
    assert patch_count(size[0], size[1], 1536, 2048) == patches
    # o4-mini: patches x 1.72, rounded up, plus the one extra token measured on the 2025-04
    # patch models (gpt-4.1-mini/nano, o4-mini)
    assert image_tokens("o4-mini", size[0], size[1], "high") == -(-patches * 172 // 100) + 1
    assert image_tokens("gpt-5-mini", size[0], size[1], "high") == -(-patches * 12 // 10) + 1


@pytest.mark.parametrize(
    ("model", "size", "expected"),
    [
        # measured (fit cases, rules file images._patch_extra): ceil(patches x multiplier) + 1
        ("gpt-4.1-mini", (640, 480), 488),  # 300 x 1.62 is 486.00000000000006 in floats
        ("gpt-4.1-nano", (540, 360), 503),
        ("o4-mini", (640, 480), 517),
        ("gpt-5-mini", (640, 480), 361),
        ("gpt-5-nano", (640, 480), 451),
        ("gpt-5.4", (60, 30), 4),
        # the guide's patch-model list, and what the API bills for them
        ("codex-mini-latest", (640, 480), 517),
        ("gpt-5.1-codex-mini", (640, 480), 361),
        ("gpt-5.2-chat-latest", (640, 480), 361),
        ("ft:gpt-4.1-mini-2025-04-14:org::abc", (640, 480), 488),
        # tile models: base + tiles (gpt-5 and the gpt-5.1 family 70/140, o-series 75/150)
        ("gpt-5.1", (1024, 1024), 70 + 140 * 4),
        ("gpt-5-codex", (1024, 1024), 70 + 140 * 4),
        ("o3", (1024, 1024), 75 + 150 * 4),
        ("computer-use-preview", (1024, 1024), 65 + 129 * 4),
    ],
)
def test_each_model_family_takes_its_image_rule(
    model: str, size: tuple[int, int], expected: int
) -> None:
    assert image_tokens(model, size[0], size[1], None) == expected


def test_detail_low_auto_high_and_original() -> None:
    # tiles: low is the base cost whatever the size; omitted means auto, which is high
    assert image_tokens("gpt-4o", 4096, 8192, "low") == 85
    assert image_tokens("gpt-4o", 1024, 1024, None) == image_tokens("gpt-4o", 1024, 1024, "auto")
    assert image_tokens("gpt-4o", 1024, 1024, "auto") == 765
    # patches: low changes nothing (measured on o4-mini and gpt-4.1-mini/nano)
    assert image_tokens("gpt-4.1-mini", 640, 480, "low") == 488
    # gpt-5.4: 2,500 patches at high and auto; original 10,000 patches or 6,000 px
    assert image_tokens("gpt-5.4", 1600, 1600, "auto") == 2500 * 12 // 10 + 1
    assert image_tokens("gpt-5.4", 3200, 3200, "original") == 10000 * 12 // 10 + 1
    # gpt-5.5: auto and omitted detail take the original sizing
    assert image_tokens("gpt-5.5", 3200, 3200, None) == image_tokens(
        "gpt-5.5", 3200, 3200, "original"
    )
    assert image_tokens("gpt-5.5", 3200, 3200, "high") == 2500 * 12 // 10 + 1
    # gpt-5.6 and gpt-6 models: original (and auto) takes the image as sent, unresized
    assert image_tokens("gpt-5.6-luna", 4000, 3000, None) == 125 * 94 * 12 // 10 + 1
    assert image_tokens("gpt-6-sol", 1600, 1600, "high") == 2500 * 12 // 10 + 1


def test_image_size_is_read_from_the_data_url_header() -> None:
    assert image_size_from_data_url(png_data_url(3008, 2000)) == (3008, 2000)
    gif = "data:image/gif;base64," + base64.b64encode(b"GIF89a" + struct.pack("<HH", 7, 9)).decode()
    assert image_size_from_data_url(gif) == (7, 9)
    jpeg = (
        b"\xff\xd8" + b"\xff\xe0\x00\x04ab" + b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", 48, 64)
    )
    assert image_size_from_data_url(
        "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    ) == (64, 48)
    webp = (
        b"RIFF\x00\x00\x00\x00WEBPVP8X"
        + b"\x00" * 8
        + (99).to_bytes(3, "little")
        + (49).to_bytes(3, "little")
    )
    assert image_size_from_data_url(
        "data:image/webp;base64," + base64.b64encode(webp).decode()
    ) == (100, 50)
    assert image_size_from_data_url("https://example.com/cat.png") is None


def _jpeg(width: int, height: int, *, padding: int = 0) -> bytes:
    """A JPEG header: SOI, an APP1 segment of ``padding`` bytes, fill bytes, a DQT, then SOF2."""
    app1 = b"\xff\xe1" + struct.pack(">H", padding + 2) + b"E" * padding
    dqt = b"\xff\xdb\x00\x43" + b"\x01" * 65
    sof = b"\xff\xc2\x00\x11\x08" + struct.pack(">HH", height, width) + b"\x03" + b"\x00" * 9
    return b"\xff\xd8" + app1 + b"\xff\xff" + dqt + sof


def test_data_url_sizes_of_every_accepted_format() -> None:
    def url(kind: str, data: bytes, wrap: int = 0) -> str:
        text = base64.b64encode(data).decode()
        if wrap:  # Ruby's Base64.encode64 and MIME encoders break lines
            text = "\n".join(text[i : i + wrap] for i in range(0, len(text), wrap))
        return f"data:image/{kind};base64,{text}"

    # a progressive JPEG whose frame header sits 20 kB in, behind a large EXIF segment
    assert image_size_from_data_url(url("jpeg", _jpeg(4032, 3024, padding=20000))) == (4032, 3024)
    assert image_size_from_data_url(url("jpeg", _jpeg(800, 600, padding=9000), 60)) == (800, 600)
    assert image_size_from_data_url(png_data_url(640, 480).replace(";base64", ";BASE64")) == (
        640,
        480,
    )
    vp8 = b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 4 + b"\x00\x00\x00\x9d\x01\x2a"
    vp8 += struct.pack("<HH", 320, 200)
    assert image_size_from_data_url(url("webp", vp8)) == (320, 200)
    bits = (320 - 1) | ((200 - 1) << 14)
    vp8l = b"RIFF\x00\x00\x00\x00WEBPVP8L" + b"\x00" * 4 + b"\x2f" + bits.to_bytes(4, "little")
    assert image_size_from_data_url(url("webp", vp8l + b"\x00" * 8)) == (320, 200)
    assert image_size_from_data_url(url("gif", b"GIF87a" + struct.pack("<HH", 1, 1))) == (1, 1)
    assert image_size_from_data_url(url("bmp", b"BM" + b"\x00" * 40)) is None


def test_images_in_responses_parts_tool_results_and_several_per_message() -> None:
    image = {"type": "input_image", "image_url": png_data_url(640, 480)}
    text = {"type": "input_text", "text": "What is this?"}

    def responses(model: str, items: list[Any]) -> int:
        return _responses_tokens(model=model, input=items).input_tokens

    def message(*parts: Any) -> dict[str, Any]:
        return {"role": "user", "content": list(parts)}

    base = responses("gpt-4o", [message(text)])
    assert responses("gpt-4o", [message(text, image)]) == base + 425
    assert responses("gpt-4o", [message(text, image, image)]) == base + 2 * 425
    # a message that opens with the image costs one token more on non-reasoning models
    # (fitted: chatlas gpt-4.1); reasoning models and Chat Completions take no extra token
    alone = responses("gpt-4o", [message(text), message()])
    assert responses("gpt-4o", [message(text), message(image)]) == alone + 425 + 1
    alone = responses("gpt-5.4", [message(text), message()])
    assert responses("gpt-5.4", [message(text), message(image)]) == alone + 20 * 15 * 12 // 10 + 1
    # an image a tool returned counts as an image
    call = {"type": "function_call", "call_id": "c1", "name": "get_photo", "arguments": "{}"}
    output = {"type": "function_call_output", "call_id": "c1"}
    plain = responses("gpt-4.1", [message(text), call, {**output, "output": [text]}])
    with_image = responses("gpt-4.1", [message(text), call, {**output, "output": [text, image]}])
    assert with_image == plain + 425


def test_images_by_file_id_and_file_inputs_are_ranges() -> None:
    by_id = _responses_tokens(
        model="gpt-4.1-mini",
        input=[{"role": "user", "content": [{"type": "input_image", "file_id": "file-abc"}]}],
    )
    assert "remote_image_size_unknown" in by_id.flags
    assert by_id.input_tokens_range is not None
    # a PDF: its text and page images are not counted; the range reaches the most per page
    pdf = b"%PDF-1.7\n1 0 obj <</Type /Pages /Count 2>> 2 0 obj <</Type /Page>> "
    pdf += b"3 0 obj <</Type/Page /Parent 1 0 R>>"
    part = {
        "type": "file",
        "file": {
            "filename": "a.pdf",
            "file_data": "data:application/pdf;base64," + base64.b64encode(pdf).decode(),
        },
    }
    text = {"type": "text", "text": "Summarise this."}
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": [text, part]}]}
    result = TokenCounter().count_body("chat/completions", body)
    assert result.flags == ("file_input_not_counted",)
    assert result.input_tokens == chat("gpt-4o", [{"role": "user", "content": [text]}])
    files = token_rules()["images"]["files"]
    most = 2 * (85 + 170 * 8 + files["page_text_most"]) + files["wrapper_most"]
    assert result.input_tokens_range == (result.input_tokens, result.input_tokens + most)


def test_image_message_adds_image_tokens() -> None:
    text_only = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}]}]
    with_image = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": png_data_url(640, 480)}},
            ],
        }
    ]
    assert chat("gpt-4o", with_image) - chat("gpt-4o", text_only) == 425


def test_remote_image_counts_the_maximum_and_is_flagged() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/x.png", "detail": "high"},
                    }
                ],
            }
        ],
    }
    result = TokenCounter().count_body("chat/completions", body)
    assert "remote_image_size_unknown" in result.flags
    assert result.input_tokens >= 85 + 170 * 8
    # the range runs from a 1 x 1 image (one tile) up to the count
    text_only = result.input_tokens - (85 + 170 * 8)
    assert result.input_tokens_range == (text_only + 85 + 170, result.input_tokens)
    sized = TokenCounter(image_size=lambda url: (512, 512)).count_body("chat/completions", body)
    assert sized.input_tokens_range is None
    assert sized.input_tokens == text_only + 85 + 170


def test_exact_counts_carry_no_range() -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
    assert TokenCounter().count_body("chat/completions", body).input_tokens_range is None


def test_hosted_tools_add_their_measured_hidden_text_and_a_range() -> None:
    plain = _responses_tokens(model="gpt-4.1", input="What's new?")
    search = [{"type": "web_search"}]
    searched = _responses_tokens(model="gpt-4.1", input="What's new?", tools=search)
    assert "hosted_tool_estimated" in searched.flags
    assert searched.input_tokens == plain.input_tokens + 294
    assert searched.input_tokens_range == (searched.input_tokens, plain.input_tokens + 17469)
    other = _responses_tokens(model="gpt-4.1", input="Hi", tools=[{"type": "code_interpreter"}])
    assert other.input_tokens_range is not None
    assert other.input_tokens_range[0] == other.input_tokens < other.input_tokens_range[1]


def test_encrypted_reasoning_items_are_estimated_from_their_length() -> None:
    reasoning = {"type": "reasoning", "summary": [], "encrypted_content": "x" * 2950}
    ask = {"role": "user", "content": "Go on"}
    base = _responses_tokens(input=[ask])
    kept = _responses_tokens(input=[ask, reasoning])
    dropped = _responses_tokens(input=[reasoning, ask])
    assert "hidden_text_estimated" in kept.flags
    assert kept.input_tokens == base.input_tokens + 340  # 0.17 x (2950 - 950)
    assert kept.input_tokens_range == (base.input_tokens, base.input_tokens + 680)
    # reasoning from before the last user message is dropped by the service
    assert dropped.input_tokens == base.input_tokens
    assert dropped.input_tokens_range == (base.input_tokens, base.input_tokens + 680)


def test_retired_models_count_with_cl100k_and_are_flagged_not_raised() -> None:
    # Azure names text-embedding-ada-002 deployments "ada"; tiktoken maps "ada" to r50k_base,
    # whose rank file does not ship
    result = TokenCounter({"embedding": "ada"}).count_body(
        "embeddings", {"model": "embedding", "input": "South Atlantic Ocean."}
    )
    assert result.flags == ("encoding_unavailable",)
    assert (result.encoding, result.input_tokens) == ("cl100k_base", 4)
    assert count_request_tokens(
        {"url": "/v1/completions", "body": {"model": "davinci", "prompt": "Hi"}}
    ).flags == ("encoding_unavailable",)


def test_a_name_follows_the_role_after_a_colon() -> None:
    # harmony renders the author as role + ":" + name; ":user" is a single token
    messages = [{"role": "user", "content": "Write a poem."}]
    named = [{**messages[0], "name": "user"}]
    assert chat("gpt-4o", named) == chat("gpt-4o", messages) + 1


def _call(i: int) -> dict[str, Any]:
    return {"type": "function_call", "call_id": f"c{i}", "name": "f", "arguments": "{}"}


def _output(i: int) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": f"c{i}", "output": "ok"}


def test_responses_calls_are_one_message_each() -> None:
    ask = {"role": "user", "content": "Go"}
    none = _responses_tokens(model="gpt-4.1", input=[ask]).input_tokens
    one = _responses_tokens(model="gpt-4.1", input=[ask, _call(1), _output(1)]).input_tokens
    two = _responses_tokens(
        model="gpt-4.1", input=[ask, _call(1), _call(2), _output(1), _output(2)]
    ).input_tokens
    assert two - none == 2 * (one - none)


def test_functions_without_property_comments_cost_a_token_less() -> None:
    def tool(properties: dict[str, Any]) -> dict[str, Any]:
        parameters = {"type": "object", "properties": properties}
        return {"type": "function", "function": {"name": "f", "parameters": parameters}}

    messages = [{"role": "user", "content": "Hi"}]
    bare = tool({"city": {"type": "string"}})
    commented = tool({"city": {"type": "string", "description": "A city"}})
    rendered = tokens.render_functions
    comment_tokens = get_encoding("o200k_base").encode_ordinary
    extra = len(comment_tokens(rendered([("f", "", commented["function"]["parameters"], False)])))
    extra -= len(comment_tokens(rendered([("f", "", bare["function"]["parameters"], False)])))
    assert chat("gpt-4o", messages, tools=[commented]) - chat("gpt-4o", messages, tools=[bare]) == (
        extra + 1
    )


def test_embeddings_sum_inputs_and_token_arrays() -> None:
    counter = TokenCounter()
    body = {"model": "text-embedding-3-small", "input": ["Hello, world!"]}
    assert counter.count_body("embeddings", body).input_tokens == 4
    body = {"model": "text-embedding-3-small", "input": ["hello", "world", [1, 2, 3]]}
    assert counter.count_body("embeddings", body).input_tokens == 5


def test_responses_instructions_count_as_a_system_message() -> None:
    body = {
        "model": "gpt-4.1-mini",
        "instructions": "Follow the system instructions.",
        "input": [{"role": "user", "content": ""}],
    }
    assert TokenCounter().count_body("responses", body).input_tokens == 16


def test_max_output_tokens_from_the_body_times_n() -> None:
    counter = TokenCounter()
    body = {"model": "gpt-4o", "messages": [], "max_tokens": 100, "n": 3}
    assert counter.count_body("chat/completions", body).max_output_tokens == 300
    body = {"model": "gpt-4o", "messages": [], "max_completion_tokens": 50}
    assert counter.count_body("chat/completions", body).max_output_tokens == 50
    assert (
        counter.count_body("responses", {"model": "gpt-4o", "input": "x"}).max_output_tokens is None
    )


@pytest.mark.parametrize(
    "body",
    [
        {"model": 5, "messages": "x"},
        {"model": "gpt-4o", "messages": [1, {"role": 2}]},
        {"model": "gpt-4o", "messages": [{"role": "user", "content": {"a": 1}}], "tools": "x"},
        {"model": "gpt-4o", "messages": [{"role": "assistant", "tool_calls": [None]}]},
    ],
)
def test_malformed_bodies_never_raise(body: dict[str, Any]) -> None:
    result = TokenCounter().count_body("chat/completions", body)
    assert "not_countable" in result.flags


def test_models_follow_tiktokens_table_and_fall_back_to_o200k() -> None:
    assert encoding_name_for_model("gpt-4o-2024-08-06") == "o200k_base"
    assert encoding_name_for_model("ft:gpt-4o-mini:org::abc") == "o200k_base"
    assert encoding_name_for_model("gpt-35-turbo") == "cl100k_base"
    assert encoding_name_for_model("my-deployment") == "o200k_base"


def test_deployment_map_resolves_azure_names(tmp_path: Path) -> None:
    assert parse_deployment_map(["prod=gpt-4o-mini", " dev = gpt-35-turbo "]) == {
        "prod": "gpt-4o-mini",
        "dev": "gpt-35-turbo",
    }
    lines = tmp_path / "map.txt"
    lines.write_text("# comment\nprod=gpt-4o\n\n")
    assert parse_deployment_map(str(lines)) == {"prod": "gpt-4o"}
    as_json = tmp_path / "map.json"
    as_json.write_text('{"prod": "gpt-4.1"}')
    assert parse_deployment_map(as_json) == {"prod": "gpt-4.1"}
    with pytest.raises(ConfigError):
        parse_deployment_map(["no-equals-sign"])
    counter = TokenCounter({"prod": "gpt-35-turbo"})
    assert counter.resolve_model("prod") == ("gpt-35-turbo", ())
    assert counter.resolve_model("other") == ("other", ("unknown_model",))
    line = {
        "custom_id": "a",
        "method": "POST",
        "url": "/chat/completions",
        "body": {"model": "prod", "messages": [{"role": "user", "content": "hi"}]},
    }
    result = count_request_tokens(line, deployment_map=["prod=gpt-35-turbo"])
    assert (result.model, result.encoding) == ("gpt-35-turbo", "cl100k_base")


def test_repeated_long_strings_are_cached_with_a_bound() -> None:
    counter = TokenCounter(cache_size=2)
    texts = [f"{i} " + "long shared system prompt " * 10 for i in range(5)]
    first = [counter.count_text(t, "gpt-4o") for t in texts]
    assert [counter.count_text(t, "gpt-4o") for t in texts] == first
    assert all(len(cache) <= 2 for cache in counter._caches["o200k_base"])
    assert counter.count_text("\ud800 lone surrogate", "gpt-4o") > 0


def test_encodings_load_offline_without_the_tiktoken_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(encodings, "_ENCODINGS", {})

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("network used")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    assert get_encoding("cl100k_base").encode_ordinary("tiktoken is great!") == [
        83,
        1609,
        5963,
        374,
        2294,
        0,
    ]
    assert get_encoding("o200k_base").encode_ordinary("tiktoken is great!") == [
        83,
        8251,
        2488,
        382,
        2212,
        0,
    ]
    assert list(tmp_path.iterdir()) == []


def test_corrupted_rank_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "o200k_base.tiktoken.gz"
    bad.write_bytes(gzip.compress(b"aGVsbG8= 0\n"))
    monkeypatch.setattr(encodings, "_ENCODINGS", {})
    monkeypatch.setattr(encodings, "_rank_file", lambda basename: tmp_path / (basename + ".gz"))
    with pytest.raises(EncodingUnavailable, match="sha256"):
        get_encoding("o200k_base")
    monkeypatch.setattr(encodings, "_rank_file", lambda basename: tmp_path / "missing.gz")
    with pytest.raises(EncodingUnavailable, match="missing"):
        get_encoding("cl100k_base")


def test_recursive_tool_schemas_are_rendered_once() -> None:
    node = {
        "type": "object",
        "properties": {f"child{i}": {"$ref": "#/$defs/Node"} for i in range(8)},
    }
    tool = {
        "type": "function",
        "function": {
            "name": "tree",
            "parameters": {
                "$defs": {"Node": node},
                "type": "object",
                "properties": {"root": {"$ref": "#/$defs/Node"}},
            },
        },
    }
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "tools": [tool]}
    assert 0 < TokenCounter().count_body("chat/completions", body).input_tokens < 500


def test_strict_functions_render_inline_object_items_as_json() -> None:
    # Fitted on crewAI's create_reasoning_plan tool (dev cases): in a strict function an array
    # of inline objects is echoed as the items' JSON schema; non-strict ones stay TypeScript.
    items = {
        "type": "object",
        "properties": {"n": {"type": "integer", "description": "Step number"}},
        "required": ["n"],
        "additionalProperties": False,
    }
    parameters = {"type": "object", "properties": {"steps": {"type": "array", "items": items}}}
    strict = tokens.render_functions([("plan", "", parameters, True)])
    assert 'steps?: {"properties":{"n":{"description":"Step number","type":"integer"}},' in strict
    assert "required" not in strict and "additionalProperties" not in strict
    loose = tokens.render_functions([("plan", "", parameters, False)])
    assert "steps?: {\n    // Step number\n    n: number,\n    }[]," in loose


def test_responses_function_tools_are_strict_unless_they_say_otherwise() -> None:
    steps = {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}}}}
    function = {
        "type": "function",
        "name": "plan",
        "parameters": {"type": "object", "properties": {"steps": steps}},
    }

    def count(**extra: object) -> int:
        body = {"model": "gpt-4o", "input": "x", "tools": [{**function, **extra}]}
        return TokenCounter().count_body("responses", body).input_tokens

    assert count() == count(strict=True) > count(strict=False)


SCORE_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "ScoreOutput",
        "strict": True,
        "schema": {
            "properties": {"score": {"title": "Score", "type": "integer"}},
            "required": ["score"],
            "title": "ScoreOutput",
            "type": "object",
            "additionalProperties": False,
        },
    },
}


def test_response_format_schema_is_rendered_without_enforced_keywords() -> None:
    # The decoder enforces required/additionalProperties/defaults/bounds, so the prompt copy
    # of the schema leaves them out: adding them to the body costs nothing.
    messages = [{"role": "system", "content": "Score the title"}, {"role": "user", "content": "x"}]
    plain = chat("gpt-4o", messages, response_format=SCORE_FORMAT)
    decorated = {**SCORE_FORMAT["json_schema"]["schema"]}  # type: ignore[index]
    decorated["properties"] = {
        "score": {"title": "Score", "type": "integer", "default": 5, "minimum": 0, "maximum": 9}
    }
    response_format = {**SCORE_FORMAT, "json_schema": {"name": "ScoreOutput", "schema": decorated}}
    assert chat("gpt-4o", messages, response_format=response_format) == plain


def test_echoed_schemas_sort_keywords_but_keep_property_order() -> None:
    properties = {"b": {"type": "string", "description": "B"}, "a": {}}
    schema = {"type": "object", "properties": properties}
    assert tokens.schema_json(schema) == (
        '{"properties":{"b":{"description":"B","type":"string"},"a":{}},"type":"object"}'
    )


def test_response_format_schema_escapes_non_ascii() -> None:
    # Measured: an em dash in a schema description costs as "\u2014" (6 characters of JSON).
    def with_description(text: str) -> int:
        schema = {"type": "object", "properties": {"a": {"type": "string", "description": text}}}
        response_format = {"type": "json_schema", "json_schema": {"name": "R", "schema": schema}}
        return chat("gpt-4o", [{"role": "user", "content": "x"}], response_format=response_format)

    assert with_description("one — two") > with_description("one - two") + 2


def test_reasoning_models_frame_tool_traffic_with_channels() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
    ]

    def traffic(model: str) -> int:
        return chat(model, messages) - chat(model, messages[:1])

    # <|channel|>commentary on the call, " to=assistant<|channel|>commentary" on the result,
    # 3 tokens less on Chat Completions (fitted on recorded gpt-5.1 and gpt-5.4 requests)
    assert traffic("gpt-5-mini") == traffic("gpt-4o") + 6


LOOKUP_TOOL = {
    "type": "function",
    "name": "lookup_refund_policy",
    "description": "Look up the refund policy for an order.",
    "parameters": {
        "type": "object",
        "properties": {"order_id": {"type": "string"}},
        "required": ["order_id"],
    },
}
QUESTION = {"role": "user", "content": "Can I get a refund on order-123?"}


def _responses_tokens(**body: Any) -> tokens.RequestTokens:
    return TokenCounter().count_body("responses", {"model": "gpt-5.4", **body})


def test_responses_additional_tools_items_are_a_tools_section_plus_hidden_text() -> None:
    # An additional_tools input item (OpenAI API spec: tools made available from that point
    # of the conversation) costs a tools section of its own plus the text the service adds
    # when it loads tools (about 100 tokens on gpt-5.4, fitted on recorded requests).
    extra = {"type": "additional_tools", "role": "developer", "tools": [LOOKUP_TOOL]}
    with_tools = _responses_tokens(input=[QUESTION, extra])
    upfront = _responses_tokens(input=[QUESTION], tools=[LOOKUP_TOOL])
    hidden = token_rules()["tool_search"]["additional_tools"]
    assert with_tools.input_tokens == upfront.input_tokens + hidden
    assert "unsupported_input_not_counted" not in with_tools.flags


def test_deferred_tools_cost_nothing_until_a_tool_search_loads_them() -> None:
    deferred = {**LOOKUP_TOOL, "defer_loading": True}
    assert (
        _responses_tokens(input=[QUESTION], tools=[deferred]).input_tokens
        == _responses_tokens(input=[QUESTION]).input_tokens
    )


def test_a_client_tool_search_is_counted_as_a_function_plus_hidden_text() -> None:
    search = {
        "type": "tool_search",
        "execution": "client",
        "description": "Search for relevant tools.",
        "parameters": {
            "type": "object",
            "properties": {"queries": {"type": "array", "items": {"type": "string"}}},
            "required": ["queries"],
        },
    }
    as_function = {**search, "type": "function", "name": "tool_search", "strict": False}
    counted = _responses_tokens(input=[QUESTION], tools=[search])
    hidden = token_rules()["tool_search"]["search_tool"]
    assert counted.input_tokens == (
        _responses_tokens(input=[QUESTION], tools=[as_function]).input_tokens + hidden
    )
    assert counted.flags == ()


def test_tool_search_results_load_their_tools_and_repeat_the_search_description() -> None:
    def searched(found: list[dict[str, Any]], description: str) -> int:
        call = {"type": "tool_search_call", "arguments": {"queries": ["refunds"]}}
        result = {"type": "tool_search_output", "tools": found}
        search = {"type": "tool_search", "execution": "client", "description": description}
        return _responses_tokens(input=[QUESTION, call, result], tools=[search]).input_tokens

    loaded = {**LOOKUP_TOOL, "defer_loading": True}
    section = (
        _responses_tokens(input=[QUESTION], tools=[LOOKUP_TOOL]).input_tokens
        - _responses_tokens(input=[QUESTION]).input_tokens
    )
    hidden = token_rules()["tool_search"]["loaded_tools"]
    assert searched([loaded], "Find tools.") == searched([], "Find tools.") + section + hidden
    longer = "Find tools by keyword; if none are found, they do not exist."
    assert searched([], longer) - searched([], "Find tools.") == (
        len(get_encoding("o200k_base").encode(longer)) - 3
    )


def test_calls_to_a_loaded_tool_go_to_its_namespace() -> None:
    call = {"type": "function_call", "name": "lookup_refund_policy", "arguments": "{}"}
    in_namespace = {**call, "namespace": "lookup_refund_policy"}
    encoding = get_encoding("o200k_base")
    assert (
        _responses_tokens(input=[QUESTION, in_namespace]).input_tokens
        - _responses_tokens(input=[QUESTION, call]).input_tokens
    ) == len(encoding.encode(" to=lookup_refund_policy.lookup_refund_policy")) - len(
        encoding.encode(" to=functions.lookup_refund_policy")
    )


def test_reasoning_models_put_assistant_messages_on_a_channel() -> None:
    # harmony format: <|start|>assistant<|channel|>final<|message|>..., or commentary for a
    # preamble (Responses "phase": "commentary")
    reply = {"role": "assistant", "content": "Refunds are allowed for 30 days."}
    preamble = {**reply, "type": "message", "phase": "commentary"}

    def added(model: str, message: dict[str, Any]) -> int:
        counter = TokenCounter()
        return (
            counter.count_body(
                "responses", {"model": model, "input": [QUESTION, message]}
            ).input_tokens
            - counter.count_body("responses", {"model": model, "input": [QUESTION]}).input_tokens
        )

    encoding = get_encoding("o200k_base")
    for message, channel in ((reply, "final"), (preamble, "commentary")):
        header = 1 + len(encoding.encode(channel))  # <|channel|> and the channel's name
        assert added("gpt-5.4", message) == added("gpt-4.1", message) + header


def test_a_parameters_schemas_title_and_description_are_billed_as_comments() -> None:
    # pydantic puts the model's name and docstring on the schema; the service bills them as
    # comment lines before the object's "{" (fitted on the recorded requests)
    parameters = {"type": "object", "properties": {"author": {"type": "string"}}}
    named = {**parameters, "title": "Book", "description": "A book."}
    rendered = tokens.render_functions([("f", "", named, False)])
    assert "type f = (_: // Book\n// A book.\n{\nauthor?: string," in rendered

    def with_parameters(schema: dict[str, Any]) -> int:
        tool = {"type": "function", "function": {"name": "f", "parameters": schema}}
        return chat("gpt-4o", [{"role": "user", "content": "Hi"}], tools=[tool])

    assert with_parameters(named) - with_parameters(parameters) >= 6


def test_assistant_text_parts_are_billed_as_one_string() -> None:
    def ask(content: Any) -> int:
        return chat("gpt-4o", [{"role": "assistant", "content": content}])

    parts = [{"type": "text", "text": "There once was a robot named Demerzel, "}]
    parts.append({"type": "text", "text": "who served the Cleonic dynasty"})
    assert ask(parts) == ask(
        "There once was a robot named Demerzel, who served the Cleonic dynasty"
    )


def test_earlier_structured_answers_cost_the_constrain_header() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}
    question = {"role": "user", "content": "Pick a number"}
    answer = {"role": "assistant", "content": '{"n":7}'}

    def added_by_answer(**extra: Any) -> int:
        return chat("gpt-4o", [question, answer, question], **extra) - chat(
            "gpt-4o", [question, question], **extra
        )

    rule = token_rules()["response_format"]["assistant_turn"]
    assert (
        added_by_answer(response_format=response_format)
        == added_by_answer() + rule
        == (added_by_answer() + 3)
    )


def test_text_and_tool_calls_in_one_message_are_billed_as_two_messages() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    result = {"role": "tool", "tool_call_id": "c1", "content": "ok"}
    together = [{"role": "assistant", "content": "Let me look.", "tool_calls": [call]}, result]
    apart = [
        {"role": "assistant", "content": "Let me look."},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        result,
    ]
    assert chat("gpt-4o", together) == chat("gpt-4o", apart)


def test_responses_call_arguments_are_billed_as_sent_except_on_reasoning_models() -> None:
    def with_arguments(model: str, arguments: str) -> int:
        call = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": arguments}
        items = [{"role": "user", "content": "Go"}, call]
        return _responses_tokens(model=model, input=items).input_tokens

    spaced, compact = '{"n": 100, "unit": "m"}', '{"n":100,"unit":"m"}'
    assert with_arguments("gpt-4o", spaced) > with_arguments("gpt-4o", compact)
    assert with_arguments("gpt-5.4", spaced) == with_arguments("gpt-5.4", compact)


def test_reasoning_models_bill_parallel_calls_more_than_one_after_another() -> None:
    ask = {"role": "user", "content": "Go"}

    def tokens_of(model: str, items: list[dict[str, Any]]) -> int:
        return _responses_tokens(model=model, input=[ask, *items]).input_tokens

    parallel, serial = (
        [_call(1), _call(2), _output(1), _output(2)],
        [_call(1), _output(1), _call(2), _output(2)],
    )
    extra = token_rules()["tools"]["reasoning_parallel_call"]
    assert tokens_of("gpt-5.4", parallel) == tokens_of("gpt-5.4", serial) + extra
    assert tokens_of("gpt-4.1", parallel) == tokens_of("gpt-4.1", serial)


def test_stored_responses_and_items_are_a_range_from_what_the_request_shows() -> None:
    # previous_response_id, conversation and item_reference make the service add stored text
    # the request does not show: counted as shown, with a range up to a whole context window
    ask = {"role": "user", "content": "And grass?"}
    shown = _responses_tokens(model="gpt-4o-mini", input=[ask])
    most = token_rules()["stored_items"]["most"]
    for extra in (
        {"previous_response_id": "resp_123"},
        {"conversation": "conv_123"},
        {"input": [{"type": "item_reference", "id": "msg_1"}, ask, {"type": "item_reference"}]},
    ):
        stored = _responses_tokens(**{"model": "gpt-4o-mini", "input": [ask], **extra})
        assert "hidden_text_estimated" in stored.flags
        assert "unsupported_input_not_counted" not in stored.flags
        assert stored.input_tokens == shown.input_tokens
        assert stored.input_tokens_range == (shown.input_tokens, shown.input_tokens + most)


def test_tool_choice_none_costs_a_token_more_than_auto() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    ask = [{"role": "user", "content": "Hi"}]
    auto = chat("gpt-4o", ask, tools=[tool], tool_choice="auto")
    assert chat("gpt-4o", ask, tools=[tool], tool_choice="required") == auto
    assert chat("gpt-4o", ask, tools=[tool], tool_choice="none") == auto + 1


def test_a_top_level_propertys_title_and_description_are_parted_by_an_empty_comment() -> None:
    # harmony's renderer writes "// {title}\n//\n" before a description; the service does so
    # for top-level properties that have both (fitted: cl100k_base requests are one under
    # per such property without it)
    label = {"title": "Label", "description": "The label.", "type": "string"}
    item = {"type": "object", "properties": {"label": label}}
    schema = {"type": "object", "properties": {"label": label, "item": item}}
    rendered = tokens.render_functions([("f", "", schema, False)])
    assert "{\n// Label\n//\n// The label.\nlabel?: string," in rendered
    assert "    // Label\n    // The label.\n    label?: string," in rendered
    alone = tokens.render_functions(
        [("f", "", {**schema, "properties": {"x": {"title": "X"}}}, False)]
    )
    assert "// X\nx?: any," in alone


def test_a_single_allof_is_the_schema_it_wraps() -> None:
    # pydantic writes a described enum field as {"allOf": [{"$ref": ...}], "description": ...}
    defs = {"Labels": {"enum": ["happy", "sad"], "type": "string"}}
    field = {"allOf": [{"$ref": "#/$defs/Labels"}], "description": "The label"}
    schema = {"$defs": defs, "type": "object", "properties": {"label": field}}
    rendered = tokens.render_functions([("f", "", schema, False)])
    assert "// The label\nlabel?: Labels," in rendered  # the enum is declared as an alias
    inline = {"allOf": [{"type": "string"}], "description": "A name"}
    schema = {"type": "object", "properties": {"name": inline}}
    assert "// A name\nname?: string," in tokens.render_functions([("f", "", schema, False)])


def test_enum_definitions_are_declared_as_type_aliases() -> None:
    # a $ref to a non-object definition renders as its name, declared before the function
    # (fitted on recorded pydantic enum fields); object definitions stay inline
    defs = {
        "Labels": {"enum": ["happy", "sad"], "type": "string"},
        "Address": {"type": "object", "properties": {"city": {"type": "string"}}},
        "Unused": {"enum": ["x"], "type": "string"},
    }
    properties = {"label": {"$ref": "#/$defs/Labels"}, "address": {"$ref": "#/$defs/Address"}}
    schema = {"$defs": defs, "type": "object", "properties": properties}
    rendered = tokens.render_functions([("f", "Files it.", schema, False)])
    assert 'type Labels = "happy" | "sad";\n\n// Files it.\ntype f = (_: {' in rendered
    assert "label?: Labels,\naddress?: {\n    city?: string,\n    }," in rendered
    assert "Unused" not in rendered


def test_numeric_bounds_trail_a_property_like_its_default() -> None:
    # harmony writes a default as " // default: ..." after the property; bounds are billed
    # the same way (fitted on the recorded requests with bounds)
    rating = {"type": "integer", "minimum": 0, "maximum": 5, "default": 3}
    schema = {"type": "object", "properties": {"rating": rating, "note": {"type": "string"}}}
    rendered = tokens.render_functions([("f", "", schema, False)])
    assert "rating?: number, // default: 3, minimum: 0, maximum: 5\nnote?: string," in rendered


def test_the_2023_function_models_bill_no_titles_and_a_shorter_forced_choice() -> None:
    # gpt-4-0613 renders schemas as hmarr/openai-chat-tokens does: no titles, no description
    # of the parameters object; a forced function costs 4 + its name's tokens
    parameters = {
        "type": "object",
        "title": "Book",
        "description": "A book.",
        "properties": {"author": {"title": "Author", "description": "Who.", "type": "string"}},
    }
    bare = {"type": "object", "properties": {"author": {"description": "Who.", "type": "string"}}}

    def tokens_with(model: str, schema: dict[str, Any], **extra: Any) -> int:
        tool = {"type": "function", "function": {"name": "f", "parameters": schema}}
        return chat(model, [{"role": "user", "content": "Hi"}], tools=[tool], **extra)

    assert tokens_with("gpt-4-0613", parameters) == tokens_with("gpt-4-0613", bare)
    assert tokens_with("gpt-4", parameters) == tokens_with("gpt-4-0613", parameters)
    assert tokens_with("gpt-4-0125-preview", parameters) > tokens_with("gpt-4-0125-preview", bare)
    forced = {"type": "function", "function": {"name": "f"}}
    assert tokens_with("gpt-4-0613", bare, tool_choice=forced) == tokens_with(
        "gpt-4-0613", bare
    ) + 4 + len(get_encoding("cl100k_base").encode("f"))


def test_only_gpt_5_models_bill_a_hidden_preamble_for_chat_tools() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    ask = [{"role": "user", "content": "Hi"}]

    def tools_cost(model: str) -> int:
        return chat(model, ask, tools=[tool]) - chat(model, ask)

    preamble = token_rules()["tools"]["reasoning_chat_overhead"]
    assert tools_cost("gpt-5.4") == tools_cost("o3-mini") + preamble
