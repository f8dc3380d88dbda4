"""estimate: token sums, cost ranges, warnings, parallel counting and the CLI."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import itertools
import json
import struct
import tempfile
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from jsonl_batch.cli import main
from jsonl_batch.estimate import EstimateResult, combine_results, estimate_file, line_ranges
from jsonl_batch.pricing import PriceTable
from jsonl_batch.tokens import RequestTokens, TokenCounter

TODAY = dt.date(2026, 11, 24)


def _chat(custom_id: str, model: str, text: str, **extra: Any) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def _embedding(custom_id: str, model: str, n_tokens: int) -> dict[str, Any]:
    """Token-id input: the service bills exactly len(input) tokens, so costs are exact."""
    body = {"model": model, "input": [list(range(n_tokens))]}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings", "body": body}


def _write(path: Path, lines: list[Any]) -> Path:
    with path.open("w") as out:
        for line in lines:
            out.write(line if isinstance(line, str) else json.dumps(line))
            out.write("\n")
    return path


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


def _warnings(result: EstimateResult, code: str | None = None) -> str:
    return "\n".join(w.message for w in result.warnings if code in (None, w.code))


# --- library ----------------------------------------------------------------------------


def test_embedding_cost_is_exact(tmp_path: Path, table: PriceTable) -> None:
    path = _write(
        tmp_path / "emb.jsonl",
        [
            _embedding("a", "text-embedding-3-small", 1000),
            _embedding("b", "text-embedding-3-small", 3000),
        ],
    )
    result = estimate_file(path, prices=table, target="openai", today=TODAY)
    (row,) = result.rows
    assert (row.requests, row.input_tokens, row.max_output_tokens) == (2, 4000, 0)
    # 4,000 tokens at the $0.01 / 1M batch rate
    assert row.cost_low == row.cost_expected == row.cost_high == pytest.approx(0.00004)
    assert result.ok


def test_output_range_gpt_4o(tmp_path: Path, table: PriceTable) -> None:
    path = _write(
        tmp_path / "chat.jsonl",
        [
            _chat("a", "gpt-4o-2024-08-06", "Say hi", max_tokens=1000),
            _chat("b", "gpt-4o-2024-08-06", "Say hi"),  # no cap: the model's 16,384
            _chat("c", "gpt-4o-2024-08-06", "Say hi", max_completion_tokens=10),
        ],
    )
    result = estimate_file(path, prices=table, expected_output_tokens=50, today=TODAY)
    (row,) = result.rows
    assert row.priced_as == "gpt-4o"
    assert row.max_output_tokens == 1000 + 16384 + 10
    assert row.expected_output_tokens == 50 + 50 + 10  # capped at the request's max
    # output differences at the gpt-4o batch output rate ($5 / 1M)
    assert row.cost_high - row.cost_expected == pytest.approx((17394 - 110) * 5 / 1e6)
    assert row.cost_expected == pytest.approx((row.input_tokens * 1.25 + 110 * 5) / 1e6)


def test_output_ratio_and_cached_fraction(tmp_path: Path, table: PriceTable) -> None:
    path = _write(tmp_path / "r.jsonl", [_chat("a", "gpt-4.1", "word " * 200, max_tokens=4000)])
    result = estimate_file(path, prices=table, output_ratio=0.5, cached_fraction=0.5, today=TODAY)
    (row,) = result.rows
    assert row.expected_output_tokens == round(0.5 * row.input_tokens)
    assert row.cached_input_tokens == row.input_tokens // 2
    # gpt-4.1: cached tokens at $0.50 instead of $1.00 batch input
    saving = row.cached_input_tokens * (1.0 - 0.5) / 1e6
    assert row.cost_expected - row.cost_low == pytest.approx(saving)


def test_bad_lines_are_skipped_with_file_and_line(tmp_path: Path, table: PriceTable) -> None:
    path = _write(
        tmp_path / "bad.jsonl",
        [
            _chat("a", "gpt-4o", "hi"),
            "{not json",
            "",
            "[1, 2]",
            {"custom_id": "x", "method": "POST", "url": "/v1/chat/completions"},
            _chat("b", "gpt-4o", "hi"),
        ],
    )
    result = estimate_file(path, prices=table, today=TODAY)
    assert result.total.requests == 2
    assert result.bad_lines == 3
    joined = _warnings(result, "invalid_line")
    assert f"{path}:2: skipped" in joined
    assert f"{path}:4: skipped" in joined
    assert f"{path}:5: skipped" in joined
    assert not result.ok


def test_context_window_and_enqueued_limit(tmp_path: Path, table: PriceTable) -> None:
    path = _write(
        tmp_path / "big.jsonl",
        [
            _embedding("a", "text-embedding-3-large", 100),
            _embedding("b", "text-embedding-3-large", 9000),
        ],
    )
    result = estimate_file(path, prices=table, enqueued_limit=5000, today=TODAY)
    assert result.rows[0].over_context == 1
    assert "8,191-token input limit" in _warnings(result, "context_window_exceeded")
    assert "line 2" in _warnings(result, "context_window_exceeded")
    assert "enqueued limit of 5,000" in _warnings(result, "enqueued_limit_exceeded")


def test_retired_model_warns(tmp_path: Path, table: PriceTable) -> None:
    path = _write(tmp_path / "o1.jsonl", [_chat("a", "o1", "hi")])
    result = estimate_file(path, prices=table, today=TODAY)
    assert "retired on 2026-11-19" in _warnings(result, "model_retired")
    assert any("reasoning tokens bill as output" in n for n in result.notes)
    result = estimate_file(path, prices=table, today=dt.date(2026, 11, 1))
    assert result.ok and any("retires on 2026-11-19" in n for n in result.notes)


def test_deployment_names_need_a_map(tmp_path: Path, table: PriceTable) -> None:
    path = _write(
        tmp_path / "dep.jsonl", [_chat("a", "prod-4o", "hi"), _chat("b", "prod-4o", "yo")]
    )
    result = estimate_file(path, prices=table, today=TODAY)
    (row,) = result.rows
    assert (row.model, row.priced_as, row.requests, row.cost_expected) == ("prod-4o", None, 2, None)
    assert "no price for model 'prod-4o' (2 request(s), first on line 1)" in _warnings(
        result, "no_price"
    )
    result = estimate_file(
        path, prices=table, deployment_map={"prod-4o": "gpt-4o-mini"}, today=TODAY
    )
    (row,) = result.rows
    assert (row.model, row.priced_as, row.requests) == ("prod-4o", "gpt-4o-mini", 2)
    result = estimate_file(path, prices=table, deployment_map={"prod-4o": "gpt-4o-mimi"})
    assert "no price for model 'gpt-4o-mimi' (what the deployment map makes of 'prod-4o')" in (
        _warnings(result, "no_price")
    )


def test_line_ranges_cut_at_line_boundaries(tmp_path: Path) -> None:
    path = tmp_path / "lines.jsonl"
    data = b"".join(b'{"n": %d, "pad": "%s"}\n' % (i, b"x" * (i % 37)) for i in range(500))
    path.write_bytes(data)
    ranges = line_ranges(path, 1000)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(data)
    for (_, end), (start, _) in itertools.pairwise(ranges):
        assert end == start and data[end - 1 : end] == b"\n"


def test_jobs_2_gives_the_same_totals_as_jobs_1(tmp_path: Path, table: PriceTable) -> None:
    lines: list[Any] = []
    for i in range(400):
        model = ["gpt-4o", "gpt-4.1-mini", "text-embedding-3-small"][i % 3]
        if model.startswith("text-"):
            lines.append(_embedding(f"r{i}", model, 10 + i))
        else:
            lines.append(_chat(f"r{i}", model, "hello " * (i % 50), max_tokens=100 + i))
        if i % 97 == 0:
            lines.append("{broken")
    path = _write(tmp_path / "many.jsonl", lines)
    runs = []
    for jobs in (1, 2):
        records: list[dict[str, Any]] = []
        result = estimate_file(
            path,
            prices=table,
            output_ratio=0.3,
            jobs=jobs,
            chunk_bytes=4096,
            on_request=records.append,
            today=TODAY,
        )
        runs.append((result.to_dict(), records))
    (one, records_one), (two, records_two) = runs
    assert one == two
    assert records_one == records_two
    assert [r["custom_id"] for r in records_one] == [f"r{i}" for i in range(400)]


def test_combine_results_sums_files(tmp_path: Path, table: PriceTable) -> None:
    a = _write(tmp_path / "a.jsonl", [_embedding("a", "text-embedding-3-small", 100)])
    b = _write(tmp_path / "b.jsonl", [_embedding("b", "text-embedding-3-small", 300)])
    results = [estimate_file(p, prices=table, today=TODAY) for p in (a, b)]
    total = combine_results(results)
    assert total.total.input_tokens == 400
    assert total.total.cost_high == pytest.approx(400 * 0.01 / 1e6)


class _RangeCounter(TokenCounter):
    """Counts as usual, then says each input could be 100 tokens fewer or 1,000 more (what
    the counter reports when a remote image's size is unknown); a body with
    ``"user": "long"`` counts 300,000."""

    def count_body(self, endpoint: str, body: dict[str, Any]) -> RequestTokens:
        tokens = super().count_body(endpoint, body)
        if body.get("user") == "long":
            tokens = dataclasses.replace(tokens, input_tokens=300_000)
        elif str(body.get("user", "")).isdigit():
            tokens = dataclasses.replace(tokens, input_tokens=int(body["user"]))
        spread = (max(0, tokens.input_tokens - 100), tokens.input_tokens + 1000)
        return dataclasses.replace(tokens, input_tokens_range=spread)


def test_unpriced_models_are_counted_everywhere(tmp_path: Path, table: PriceTable) -> None:
    lines = [
        _chat("a", "gpt-4.1", "hello there", max_tokens=50),
        _chat("b", "my-model", "hello there", max_tokens=50),
        _embedding("c", "mystery-embedder", 40),
    ] * 30
    path = _write(tmp_path / "mixed.jsonl", lines)
    runs = []
    for jobs in (1, 2):
        records: list[dict[str, Any]] = []
        result = estimate_file(
            path, prices=table, jobs=jobs, chunk_bytes=1024, on_request=records.append, today=TODAY
        )
        runs.append((result.to_dict(), records))
    assert runs[0] == runs[1]
    report, records = runs[0]
    models = {m["model"]: m for m in report["models"]}
    assert models["my-model"]["requests"] == 30 and models["my-model"]["input_tokens"] > 0
    assert models["my-model"]["cost_usd"] is None and models["my-model"]["priced_as"] is None
    assert models["mystery-embedder"]["input_tokens"] == 30 * 40
    assert report["total"]["requests"] == 90 and report["total"]["unpriced_requests"] == 60
    # the total prices what has a price
    assert report["total"]["cost_usd"] == models["gpt-4.1"]["cost_usd"]
    unpriced = [r for r in records if r["model"] == "my-model"]
    assert len(unpriced) == 30 and unpriced[0]["cost"] is None and unpriced[0]["input_tokens"]
    no_price = [w for w in report["warnings"] if w["code"] == "no_price"]
    assert len(no_price) == 2
    assert "'my-model'" in no_price[0]["message"] and "deployment_map=" in no_price[0]["message"]
    assert "first on line 2" in no_price[0]["message"] and "prices=" in no_price[0]["message"]


def test_input_ranges_carry_into_low_and_high(tmp_path: Path, table: PriceTable) -> None:
    path = _write(
        tmp_path / "ranged.jsonl",
        [
            _chat("a", "gpt-4.1", "word " * 300, max_tokens=100),
            _chat("b", "gpt-4.1", "word " * 200),
        ],
    )
    records: list[dict[str, Any]] = []
    result = estimate_file(
        path,
        counter=_RangeCounter(),
        prices=table,
        expected_output_tokens=10,
        on_request=records.append,
        today=TODAY,
    )
    (row,) = result.rows
    assert row.input_tokens_low == row.input_tokens - 200
    assert row.input_tokens_high == row.input_tokens + 2000
    # gpt-4.1 batch input $1.00 / 1M: low and high move by the range's ends
    exact = estimate_file(path, prices=table, expected_output_tokens=10, today=TODAY).rows[0]
    assert row.cost_expected == pytest.approx(exact.cost_expected)
    assert exact.cost_low - row.cost_low == pytest.approx(200 * 1.0 / 1e6)
    assert row.cost_high - exact.cost_high == pytest.approx(2000 * 1.0 / 1e6)
    assert records[0]["input_tokens_high"] - records[0]["input_tokens_low"] == 1100
    assert records[0]["cost_high"] > records[0]["cost"] > records[0]["cost_low"]
    assert any("is a range" in note for note in result.notes)


def test_long_context_tier_applies_per_request(tmp_path: Path, table: PriceTable) -> None:
    path = _write(
        tmp_path / "long.jsonl",
        [_chat("long", "gpt-5.4", "x", user="long"), _chat("short", "gpt-5.4", "x")],
    )
    records: list[dict[str, Any]] = []
    result = estimate_file(
        path,
        counter=_RangeCounter(),
        prices=table,
        target="openai",
        on_request=records.append,
        today=TODAY,
    )
    (row,) = result.rows
    short = records[1]["input_tokens"]
    # gpt-5.4 batch input: $1.25 / 1M up to 272k tokens, $2.50 for a whole longer request
    assert row.cost_expected == pytest.approx((300_000 * 2.5 + short * 1.25) / 1e6)
    assert records[0]["cost"] == pytest.approx(300_000 * 2.5 / 1e6, abs=1e-8)
    # the long request's range (299,900 .. 301,000) stays above the threshold at both ends
    low_short = max(0, short - 100)
    assert row.cost_low == pytest.approx(((300_000 - 100) * 2.5 + low_short * 1.25) / 1e6)
    assert any("long-context" in note for note in result.notes)


@settings(max_examples=25, deadline=None)
@given(
    requests=st.lists(
        st.tuples(
            st.one_of(st.integers(0, 600_000), st.integers(270_000, 274_000)),
            st.integers(1, 5000),
        ),
        min_size=1,
        max_size=12,
    ),
    cached=st.sampled_from([0.0, 0.3]),
)
def test_property_priced_sums_equal_the_sum_of_request_costs(
    requests: list[tuple[int, int]], cached: float
) -> None:
    """However requests fall around the 272k threshold (and their ranges across it), the
    figures priced from per-tier sums equal the per-request costs added up."""
    table = PriceTable.load()
    with tempfile.TemporaryDirectory() as tmp:
        lines = [
            _chat(f"r{i}", "gpt-5.4", "x", user=str(tokens), max_tokens=cap)
            for i, (tokens, cap) in enumerate(requests)
        ]
        path = _write(Path(tmp) / "p.jsonl", lines)
        records: list[dict[str, Any]] = []
        result = estimate_file(
            path,
            counter=_RangeCounter(),
            prices=table,
            target="openai",
            output_ratio=0.01,
            cached_fraction=cached,
            on_request=records.append,
            today=TODAY,
        )
    (row,) = result.rows
    for figure, key in (("low", "cost_low"), ("expected", "cost"), ("high", "cost_high")):
        assert getattr(row, f"cost_{figure}") == pytest.approx(
            sum(r[key] for r in records), rel=1e-6, abs=1e-6
        )


def test_cache_writes_raise_the_high_figure(tmp_path: Path, table: PriceTable) -> None:
    path = _write(tmp_path / "cw.jsonl", [_chat("a", "gpt-5.6", "word " * 2000, max_tokens=10)])
    result = estimate_file(path, prices=table, target="openai", today=TODAY)
    (row,) = result.rows
    # batch: input $2.00, cache writes $2.50, output $10.00 per 1M (gpt-5.6, LiteLLM)
    assert row.cost_high == pytest.approx((row.input_tokens * 2.5 + 10 * 10.0) / 1e6)
    assert row.cost_expected == pytest.approx(row.input_tokens * 2.0 / 1e6)
    assert any("cache writes" in note for note in result.notes)


# --- CLI -------------------------------------------------------------------------------------


@pytest.fixture
def clean_file(tmp_path: Path) -> Path:
    return _write(
        tmp_path / "clean.jsonl",
        [
            _chat("req-1", "gpt-4o", "Translate to French: good morning", max_tokens=200),
            _chat("req-2", "gpt-4o", "Translate to French: good night", max_tokens=200),
            _embedding("req-3", "text-embedding-3-small", 500),
        ],
    )


def test_cli_text_output(clean_file: Path) -> None:
    result = CliRunner().invoke(
        main, ["estimate", str(clean_file), "--expected-output-tokens", "20"]
    )
    assert result.exit_code == 0, result.output
    assert "gpt-4o" in result.output and "text-embedding-3-small" in result.output
    assert "3 requests" in result.output
    assert "total" in result.output
    assert "bundled price table of 2026-11-24" in result.output


def test_cli_json_output_and_per_request_file(clean_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "costs.jsonl"
    result = CliRunner().invoke(
        main,
        ["estimate", str(clean_file), "--format", "json", "--per-request", str(out), "-j", "1"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["total"]["requests"] == 3
    (file_report,) = report["files"]
    assert {m["model"] for m in file_report["models"]} == {"gpt-4o", "text-embedding-3-small"}
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["custom_id"] for r in records] == ["req-1", "req-2", "req-3"]
    assert records[0]["max_output_tokens"] == 200
    assert records[2]["input_tokens"] == 500
    assert records[2]["cost"] == pytest.approx(500 * 0.01 / 1e6)
    assert sum(r["cost_high"] for r in records) == pytest.approx(
        report["total"]["cost_usd"]["high"], abs=1e-6
    )


def test_cli_missing_model_message(tmp_path: Path) -> None:
    path = _write(tmp_path / "dep.jsonl", [_chat("a", "my-deployment", "hi")])
    result = CliRunner().invoke(main, ["estimate", str(path)])
    assert result.exit_code == 0, result.output
    assert "warning[no_price]" in result.output
    assert "no price for model 'my-deployment'" in result.output
    assert "--deployment-map" in result.output and "--prices" in result.output
    assert "my-deployment  (no price)" in result.output  # still counted, in the table
    assert CliRunner().invoke(main, ["estimate", "--strict", str(path)]).exit_code == 1
    result = CliRunner().invoke(
        main, ["estimate", str(path), "--deployment-map", "my-deployment=gpt-4.1-mini"]
    )
    assert result.exit_code == 0, result.output
    assert "gpt-4.1-mini" in result.output and "warning" not in result.output


def test_cli_warnings_exit_0_unless_strict(tmp_path: Path, clean_file: Path) -> None:
    path = _write(tmp_path / "bad.jsonl", [_chat("a", "gpt-4o", "hi"), "nope"])
    result = CliRunner().invoke(main, ["estimate", str(path)])
    assert result.exit_code == 0
    assert "bad.jsonl:2: skipped" in result.output
    assert CliRunner().invoke(main, ["estimate", "--strict", str(path)]).exit_code == 1
    assert CliRunner().invoke(main, ["estimate", "--strict", str(clean_file)]).exit_code == 0
    both = ["estimate", str(clean_file), "--output-ratio", "1", "--expected-output-tokens", "5"]
    assert CliRunner().invoke(main, both).exit_code == 2
    assert CliRunner().invoke(main, ["estimate", str(tmp_path / "missing.jsonl")]).exit_code == 2


def test_cli_bad_price_file_entries_are_warnings(tmp_path: Path, clean_file: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"gpt-4o": {"input_cost_per_token": "cheap"}}))
    args = ["estimate", str(clean_file), "--prices", str(prices)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "warning[price_file]" in result.output and "'gpt-4o'" in result.output
    assert "3 requests" in result.output  # gpt-4o priced from the bundled table instead
    assert CliRunner().invoke(main, [*args, "--strict"]).exit_code == 1
    prices.write_text("{broken")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "prices.json" in result.output
    assert "Traceback" not in result.output


def test_cli_litellm_prices_and_region(tmp_path: Path, clean_file: Path) -> None:
    prices = tmp_path / "litellm.json"
    prices.write_text(
        json.dumps(
            {
                "azure/eu/gpt-4o": {
                    "input_cost_per_token": 2.75e-06,
                    "output_cost_per_token": 1.1e-05,
                },
                "azure/gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05},
                "text-embedding-3-small": {"input_cost_per_token": 2e-08, "mode": "embedding"},
            }
        )
    )
    args = ["estimate", str(clean_file), "--prices", str(prices), "--format", "json"]
    glob = json.loads(CliRunner().invoke(main, args).output)
    zone = json.loads(CliRunner().invoke(main, [*args, "--region", "data-zone"]).output)
    assert "LiteLLM price file" in glob["prices"]
    high_global = glob["files"][0]["models"][0]["cost_usd"]["high"]
    high_zone = zone["files"][0]["models"][0]["cost_usd"]["high"]
    assert high_zone == pytest.approx(high_global * 1.1, rel=1e-3)


# --- --fetch-image-sizes (a local HTTP server; the only network use) ------------------------


def _png(width: int, height: int) -> bytes:
    """A PNG header (the size is in its first 24 bytes) and a body nobody needs to read."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    ihdr = struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return b"\x89PNG\r\n\x1a\n" + ihdr + b"\x00" * 100_000


class _ImageServer(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []
    image = _png(2048, 1024)

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.image)))
        self.end_headers()
        self.wfile.write(self.image)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def image_url() -> Iterator[str]:
    _ImageServer.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ImageServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/photo.png"
    server.shutdown()
    server.server_close()


def test_fetch_image_sizes_counts_remote_images_exactly(tmp_path: Path, image_url: str) -> None:
    content = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": image_url, "detail": "high"}},
    ]
    line = _chat("img", "gpt-4o", "", max_tokens=10)
    line["body"]["messages"] = [{"role": "user", "content": content}]
    path = _write(tmp_path / "images.jsonl", [line])
    known = TokenCounter(image_size=lambda url: (2048, 1024)).count_line(line).input_tokens

    args = ["estimate", "--format", "json", "--target", "openai", str(path)]
    offline = json.loads(CliRunner().invoke(main, args).output)
    assert _ImageServer.hits == []  # no network unless asked
    fetched = json.loads(CliRunner().invoke(main, [*args, "--fetch-image-sizes"]).output)
    assert _ImageServer.hits == ["/photo.png"]
    (row,) = fetched["files"][0]["models"]
    assert row["input_tokens"] == row["input_tokens_low"] == row["input_tokens_high"] == known
    assert offline["files"][0]["models"][0]["input_tokens_high"] != known

    result = CliRunner().invoke(
        main, ["validate", "--tokens", "--fetch-image-sizes", "--target", "openai", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert "token_count_approximate" not in result.output
    assert (
        "token_count_approximate"
        in CliRunner()
        .invoke(main, ["validate", "--tokens", "--target", "openai", str(path)])
        .output
    )


def test_a_pdf_input_is_a_flagged_range_in_estimate_and_validate(tmp_path: Path) -> None:
    # the service adds a PDF's text and page images, which cannot be counted offline
    pdf = base64.b64encode(b"%PDF-1.7\n1 0 obj <</Type /Page>>").decode()
    content = [
        {"type": "text", "text": "Summarise."},
        {
            "type": "file",
            "file": {"filename": "a.pdf", "file_data": f"data:application/pdf;base64,{pdf}"},
        },
    ]
    line = _chat("pdf", "gpt-4o", "", max_tokens=10)
    line["body"]["messages"] = [{"role": "user", "content": content}]
    path = _write(tmp_path / "pdf.jsonl", [line])
    args = ["estimate", "--format", "json", "--target", "openai", str(path)]
    report = json.loads(CliRunner().invoke(main, args).output)["files"][0]
    (row,) = report["models"]
    assert row["input_tokens"] == row["input_tokens_low"] < row["input_tokens_high"]
    assert any("file_input_not_counted" in note for note in report["notes"])
    result = CliRunner().invoke(main, ["validate", "--tokens", "--target", "openai", str(path)])
    assert result.exit_code == 0, result.output
    assert "a file's extracted text" in result.output


# --- validate --tokens ------------------------------------------------------------------------


def test_validate_tokens_warns_once_per_file_about_unpriced_models(tmp_path: Path) -> None:
    lines = [_chat(f"r{i}", "my-deployment", "hello", max_tokens=10) for i in range(3)]
    first = _write(tmp_path / "a.jsonl", lines)
    second = _write(tmp_path / "b.jsonl", lines)
    args = ["validate", "--tokens", "--format", "json", str(first), str(second)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    for report in json.loads(result.output)["files"]:
        (finding,) = [f for f in report["findings"] if f["code"] == "no_price"]
        assert finding["severity"] == "warning" and finding["line"] == 1
        assert "'my-deployment'" in finding["message"] and "--deployment-map" in finding["message"]
    assert CliRunner().invoke(main, [*args, "--strict"]).exit_code == 1
    mapped = [*args, "--deployment-map", "my-deployment=gpt-4o"]
    assert "no_price" not in CliRunner().invoke(main, mapped).output
    assert CliRunner().invoke(main, ["validate", "--fetch-image-sizes", str(first)]).exit_code == 2


def test_validate_tokens_reports_ranges(tmp_path: Path, table: PriceTable) -> None:
    from jsonl_batch.jsonl import read_lines
    from jsonl_batch.validate import token_limit_check

    path = _write(tmp_path / "r.jsonl", [_chat("a", "gpt-4", "word " * 7700, max_tokens=10)])
    check = token_limit_check(_RangeCounter(), table)
    (line,) = list(read_lines(path))
    findings = check(line, "chat/completions", line.obj["body"])
    # gpt-4 takes 8,192 input tokens: the range's high end is over it, its low end is not
    assert [code for code, _, _ in findings] == ["token_count_approximate"]
    assert "may exceed gpt-4's 8,192" in findings[0][2]
