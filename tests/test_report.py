"""The HTML report: its numbers equal the estimate and merge summaries, user strings are
escaped, it needs no script and no network, it is built in bounded memory, and (where
headless Chromium is installed) it renders to a page that is not blank."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import tracemalloc
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from jsonl_batch.cli import main
from jsonl_batch.formats.jobfile import ConnectionInfo, JobFile, ShardState, write_job_file
from jsonl_batch.report import find_sources
from jsonl_batch.report.collect import Histogram, ReportBuilder, TopRequests
from jsonl_batch.report.html import render_html, text, usd

CHROMIUM = Path("/usr/bin/chromium")
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")
HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "evil\u202egnp.exe",
    "nul\x00byte",
    "</svg><svg onload=alert(1)>",
    "& &amp; ]]> <!--",
]


# --- reading the page back ---------------------------------------------------------------


class Page(HTMLParser):
    """Tables per section (rows of cell texts), tags and attributes, as a browser sees them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[list[str]]]] = {}
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._section = ""
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "section" and attributes.get("id"):
            self._section = attributes["id"] or ""
        elif tag == "table":
            self.tables.setdefault(self._section, []).append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._section][-1].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def table(self, section: str, index: int = 0) -> list[list[str]]:
        return self.tables[section][index]

    def column(self, section: str, name: str, index: int = 0) -> list[str]:
        header, *rows = self.table(section, index)
        return [row[header.index(name)] for row in rows]

    def row(self, section: str, first_cell: str, index: int = 0) -> dict[str, str]:
        header, *rows = self.table(section, index)
        found = [row for row in rows if row[0] == first_cell]
        assert found, f"no row {first_cell!r} in {section}"
        return dict(zip(header, found[0], strict=True))

    def count(self, tag: str) -> int:
        return sum(1 for name, _ in self.tags if name == tag)


def assert_self_contained(page: Page, html: str) -> None:
    assert page.count("script") == 0 and "<script" not in html.lower()
    for name, attributes in page.tags:
        assert not any(key.startswith("on") for key in attributes), (name, attributes)
        assert name not in ("img", "iframe", "link", "object", "embed")
        for key in ("src", "href"):
            value = attributes.get(key)
            assert value is None or value.startswith("#"), (name, key, value)
    assert "url(" not in html and "@import" not in html
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", html)


# --- inputs --------------------------------------------------------------------------------


def request(custom_id: str, model: str, words: int, max_tokens: int = 100) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": model,
            "messages": [{"role": "user", "content": " ".join(["word"] * words)}],
            "max_tokens": max_tokens,
        },
    }


def success(custom_id: str, model: str, prompt: int, completion: int) -> dict[str, Any]:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    return {
        "id": f"r-{custom_id}",
        "custom_id": custom_id,
        "response": {
            "status_code": 200,
            "request_id": "q",
            "body": {"object": "chat.completion", "model": model, "choices": [], "usage": usage},
        },
        "error": None,
    }


def failure(custom_id: str, code: str, message: str, status: int = 429) -> dict[str, Any]:
    body = {"error": {"code": code, "message": message}}
    return {
        "id": f"r-{custom_id}",
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": "q", "body": body},
        "error": None,
    }


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), "utf-8")
    return path


def run(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output + result.stderr
    return result


@pytest.fixture
def merged_batch(tmp_path: Path) -> dict[str, Path]:
    """30 requests over two models (one huge outlier), outputs, errors and a merge."""
    requests = [
        request(f"r{i:02d}", "gpt-4o" if i % 3 else "gpt-4o-mini", 5 + 7 * i) for i in range(29)
    ]
    requests.append(request("huge", "gpt-4o", 6000, max_tokens=4000))
    source = write_jsonl(tmp_path / "batch.jsonl", requests)
    outputs = [
        success(r["custom_id"], r["body"]["model"], 10 + i, 20) for i, r in enumerate(requests)
    ]
    del outputs[3]  # r03 never comes back: missing
    errors = [
        failure("r01", "rate_limit_exceeded", "Slow down"),
        failure("r02", "rate_limit_exceeded", "Slow down"),
        failure("r04", "server_error", "Try again", 500),
    ]
    kept = [o for o in outputs if o["custom_id"] not in ("r01", "r02", "r04")]
    output = write_jsonl(tmp_path / "batch.output.jsonl", kept)
    error = write_jsonl(tmp_path / "batch.errors.jsonl", errors)
    return {"source": source, "output": output, "errors": error}


# --- the numbers ---------------------------------------------------------------------------


def test_report_numbers_equal_the_estimate_and_merge_summaries(
    merged_batch: dict[str, Path], tmp_path: Path
) -> None:
    source = str(merged_batch["source"])
    estimate = json.loads(
        run("estimate", source, "--output-ratio", "0.5", "--format", "json").stdout
    )["total"]
    merged = json.loads(
        run(
            "merge", "--input", source, "--output-file", str(merged_batch["output"]),
            "--error-file", str(merged_batch["errors"]), "--format", "json", code=1,
        ).stdout
    )  # fmt: skip
    out = tmp_path / "report.html"
    headline = json.loads(
        run("report", source, "--output-ratio", "0.5", "-o", str(out), "--format", "json").stdout
    )
    assert headline["report"] == str(out) and headline["bytes"] == out.stat().st_size
    assert headline["requests"] == 30 and headline["counts"] == merged["counts"]
    assert headline["actual_usd"] == pytest.approx(merged["cost"]["actual_usd"])
    assert headline["estimate_usd"] == estimate["cost_usd"]

    html = out.read_text("utf-8")
    page = Page(html)
    assert_self_contained(page, html)
    for section in ("cost", "tokens", "top", "status", "inputs"):
        assert section in page.tables, section
    assert page.count("svg") >= 3  # cost, histogram, status
    assert page.count("rect") > 10

    # cost by model: the rows and the total equal the estimate's and the merge's
    total = page.row("cost", "total")
    cost = estimate["cost_usd"]
    assert [total["low"], total["expected"], total["high"]] == [
        usd(cost["low"]),
        usd(cost["expected"]),
        usd(cost["high"]),
    ]
    assert total["actual"] == usd(merged["cost"]["actual_usd"])
    assert total["requests"] == "30"
    assert total["input tokens (estimate)"] == f"{estimate['input_tokens']:,}"
    actual_by_model = {m["priced_as"]: m["cost"]["actual_usd"] for m in merged["models"]}
    for name, actual in actual_by_model.items():
        assert page.row("cost", name)["actual"] == usd(actual)
    assert sorted(actual_by_model) == sorted(page.column("cost", "model")[:-1])

    # statuses and errors, as merge counted them
    for status, n in merged["counts"].items():
        assert page.row("status", status)["requests"] == f"{n:,}"
    codes = {row[0]: row[2] for row in page.table("status", 1)[1:]}
    assert codes == {e["code"]: str(e["count"]) for e in merged["errors"]}
    assert page.row("status", "rate_limit_exceeded", 1)["example message"] == "Slow down"

    # the histogram counts every request; the costliest request comes first
    counts = [int(n.replace(",", "")) for n in page.column("tokens", "requests")]
    assert sum(counts) == 30
    top = page.table("top")
    assert len(top) == 21  # header + 20
    assert top[1][1] == "huge" and top[1][2] == "batch.jsonl:30"
    expected = [row[6] for row in top[1:]]
    values = [float(v.strip("$").replace(",", "")) for v in expected]
    assert values == sorted(values, reverse=True)
    # what it was made from
    inputs = dict(page.table("inputs")[1:])  # type: ignore[arg-type]
    assert inputs["price table"].startswith("the bundled price table of 20")
    assert inputs["expected output"] == "0.5 × input tokens"
    assert "jsonl-batch version" in inputs


def test_estimate_and_merge_write_the_report_too(
    merged_batch: dict[str, Path], tmp_path: Path
) -> None:
    source = str(merged_batch["source"])
    estimated = tmp_path / "estimate.html"
    result = run("estimate", source, "--report", str(estimated))
    assert f"report written to {estimated}" in result.stdout
    page = Page(estimated.read_text("utf-8"))
    assert "status" not in page.tables  # nothing merged: no statuses, no actual cost
    assert page.row("cost", "total")["actual"] == "—"

    merged = tmp_path / "merge.html"
    out = json.loads(
        run(
            "merge", "--input", source, "--output-file", str(merged_batch["output"]),
            "--error-file", str(merged_batch["errors"]), "-o", str(tmp_path / "m"),
            "--report", str(merged), "--format", "json", code=1,
        ).stdout
    )  # fmt: skip
    assert out["report"] == str(merged)
    page = Page(merged.read_text("utf-8"))
    assert page.row("cost", "total")["actual"] == usd(out["cost"]["actual_usd"])
    assert page.row("status", "missing")["requests"] == "1"

    # the merge summary alone (merge wrote it in --out-dir): statuses and cost, no estimate
    alone = tmp_path / "alone.html"
    run("report", str(tmp_path / "m" / "batch.merge.json"), "-o", str(alone))
    page = Page(alone.read_text("utf-8"))
    assert page.row("status", "succeeded")["requests"] == str(out["counts"]["succeeded"])
    assert "top" not in page.tables


def test_usage_errors_and_unreadable_inputs_get_a_message_not_a_traceback(
    tmp_path: Path,
) -> None:
    missing = run("report", str(tmp_path / "nope.job.json"), code=2)
    assert "does not exist" in missing.stderr and "Traceback" not in missing.output
    source = write_jsonl(tmp_path / "a.jsonl", [request("x", "gpt-4o", 3)])
    not_merge = write_jsonl(tmp_path / "other.json", [{"counts": 1}])
    bad = run("report", str(source), "--merged", str(not_merge), code=1)
    assert "not a merge summary" in bad.stderr
    both = run(
        "report", str(source), "--output-ratio", "1", "--expected-output-tokens", "5", code=2
    )
    assert "not both" in both.stderr
    # without -o it lands next to the input, named after its stem; -o DIR puts it there
    assert "a.report.html" in run("report", str(source)).stdout
    assert (tmp_path / "a.report.html").is_file()
    run("report", str(source), "-o", str(tmp_path / "pages") + "/")
    assert (tmp_path / "pages" / "a.report.html").is_file()


# --- user strings --------------------------------------------------------------------------


def test_hostile_strings_are_escaped_and_cannot_hide_text(tmp_path: Path) -> None:
    requests = [request(name, "gpt-4o", 50 + i) for i, name in enumerate(HOSTILE)]
    requests.append(request("surrogate", "<b>model</b>", 3))
    source = write_jsonl(tmp_path / "hostile.jsonl", requests)
    outputs = [failure(name, name, f"message {name}") for name in HOSTILE]
    output = write_jsonl(tmp_path / "hostile.output.jsonl", outputs)
    run("merge", "--input", str(source), "--output-file", str(output), code=1)
    out = tmp_path / "hostile.html"
    run("report", str(source), "-o", str(out))

    html = out.read_bytes().decode("utf-8")
    page = Page(html)
    assert_self_contained(page, html)
    assert "<img" not in html and "<b>" not in html and "\u202e" not in html and "\x00" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    custom_ids = page.column("top", "custom_id")
    assert "<script>alert(1)</script>" in custom_ids  # shown as text, exactly
    assert "evil\ufffdgnp.exe" in custom_ids and "nul\ufffdbyte" in custom_ids
    codes = page.column("status", "code", 1)
    assert '"><img src=x onerror=alert(1)>' in codes
    assert any(name.startswith("<b>model</b>") for name in page.column("cost", "model"))
    # JSON readers refuse lone surrogates before they get here; the page would show U+FFFD
    assert text("a\ud800b") == "a\ufffdb"


# --- the job file: statuses and timeline before any merge ---------------------------------


def make_job(tmp_path: Path) -> Path:
    def shard(index: int, status: str, **extra: Any) -> ShardState:
        path = write_jsonl(
            tmp_path / f"job.part-{index}.jsonl",
            [request(f"s{index}-{i}", "gpt-4o", 10 * index + i) for i in range(10)],
        )
        return ShardState(
            index=index, path=path.name, upload_path=path.name, sha256="0" * 64, requests=10,
            bytes=path.stat().st_size, url="/v1/chat/completions", endpoint="/chat/completions",
            status=status, deployment="gpt-4o", **extra,
        )  # fmt: skip

    t0 = 1_790_000_000.0
    shards = [
        shard(
            1, "completed", batch_id="batch_1",
            request_counts={"total": 10, "completed": 9, "failed": 1},
            batch_times={"created_at": t0, "in_progress_at": t0 + 60,
                         "finalizing_at": t0 + 1800, "completed_at": t0 + 1900,
                         "expires_at": t0 + 86400},
        ),
        shard(
            2, "in_progress", batch_id="batch_2",
            request_counts={"total": 10, "completed": 4, "failed": 0},
            batch_times={"created_at": t0 + 30, "in_progress_at": t0 + 100,
                         "expires_at": t0 + 86430},
        ),
        shard(
            3, "failed", batch_id="batch_3",
            errors=[{"code": "model_not_found", "message": "<no> such deployment"}],
            batch_times={"created_at": t0 + 40, "failed_at": t0 + 50},
        ),
        shard(4, "pending"),
    ]  # fmt: skip
    job = JobFile(
        job_id="job_x",
        created_at=t0 - 10,
        updated_at=t0 + 1000,
        target="azure",
        connection=ConnectionInfo(kind="azure", endpoint="http://127.0.0.1:1", target="azure"),
        shards=shards,
    )
    path = tmp_path / "job.job.json"
    write_job_file(path, job)
    return path


def test_job_report_shows_statuses_errors_and_the_timeline(tmp_path: Path) -> None:
    job = make_job(tmp_path)
    out = tmp_path / "job.html"
    headline = json.loads(run("report", str(job), "-o", str(out), "--format", "json").stdout)
    assert headline["counts"] == {
        "succeeded": 9 + 4,
        "failed": 1 + 10,
        "expired": 0,
        "cancelled": 0,
        "missing": 0,
        "pending": 6 + 10,
    }
    html = out.read_text("utf-8")
    page = Page(html)
    assert_self_contained(page, html)
    shards = page.column("groups", "shard")
    assert shards == ["shard 1", "shard 2", "shard 3", "shard 4"]
    assert page.column("groups", "status") == ["completed", "in_progress", "failed", "pending"]
    error = page.row("status", "model_not_found", 1)
    assert error["example message"] == "<no> such deployment" and error["where"] == "shard 3"

    timeline = page.table("timeline")
    assert [row[0] for row in timeline[1:]] == shards
    assert page.row("timeline", "shard 1")["took"] == "31m40s"
    # a running shard gets an expected end from its pace: 4 of 10 in 900 s
    assert page.row("timeline", "shard 2")["expected end"] != "—"
    times = [attrs["datetime"] for name, attrs in page.tags if name == "time"]
    assert times and all(ISO_WITH_OFFSET.match(t or "") for t in times)
    svg = html[html.index('<section id="timeline"') :]
    assert svg.count("<rect") >= 4 and "stroke-dasharray" in svg  # phases and the expected end


def test_timestamps_in_the_same_second_keep_the_batch_order() -> None:
    from jsonl_batch.report.collect import _timeline

    t = 1_790_000_000.0
    shard = ShardState(
        index=1, path="p", upload_path="p", sha256="0" * 64, requests=1, bytes=1,
        url="/v1/chat/completions", endpoint="/chat/completions", status="completed",
        batch_times={"created_at": t, "in_progress_at": t, "finalizing_at": t + 1,
                     "completed_at": t + 1},
    )  # fmt: skip
    timeline = _timeline(shard, True, t + 5)
    assert [phase for phase, _, _ in timeline.phases] == [
        "validating",
        "in_progress",
        "finalizing",
    ]
    assert timeline.ended == t + 1


def test_a_manifest_of_many_shards_gives_a_small_report(tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "many.jsonl", [request(f"id-{i}", "gpt-4o", 1 + i % 400) for i in range(3000)]
    )
    run("split", str(source), "-o", str(tmp_path / "split"), "--max-requests", "50")
    out = tmp_path / "many.html"
    headline = json.loads(
        run(
            "report", str(tmp_path / "split" / "many.manifest.json"), "-o", str(out),
            "--format", "json",
        ).stdout
    )  # fmt: skip
    assert headline["requests"] == 3000
    assert 10_000 < out.stat().st_size < 100_000
    page = Page(out.read_text("utf-8"))
    assert len(page.table("groups")) == 61  # header + 60 shards, each with its estimate
    assert "rows: the table has them all" in out.read_text("utf-8")  # no chart of 60 rows


# --- bounded memory and the aggregates -------------------------------------------------------


def test_collecting_records_needs_fixed_memory_whatever_their_number() -> None:
    builder = ReportBuilder("big")
    builder.reading("big.jsonl")
    record: dict[str, Any] = {"custom_id": "x", "model": "gpt-4o", "line": 0}

    def feed(n: int, start: int) -> int:
        tracemalloc.start()
        for i in range(start, start + n):
            record["custom_id"] = f"id-{i}"
            record["input_tokens"] = (i * 7919) % 100_000
            record["cost"] = record["input_tokens"] * 1e-6
            record["line"] = i
            builder.request(record)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    first = feed(20_000, 0)
    second = feed(80_000, 20_000)  # four times as many: no more memory
    assert second < 200_000 and second < 2 * first + 50_000
    assert builder.histogram.requests == 100_000
    assert len(builder.top.items()) == 20


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3_000_000), st.floats(0, 50)), max_size=80))
def test_top_requests_and_histogram_match_sorting_everything(
    items: list[tuple[int, float]],
) -> None:
    top = TopRequests(5)
    histogram = Histogram()
    for i, (tokens, cost) in enumerate(items):
        top.add({"custom_id": f"c{i}", "input_tokens": tokens, "cost": cost, "line": i}, "f")
        histogram.add(tokens, cost)
    ranked = sorted(range(len(items)), key=lambda i: (items[i][1], items[i][0], -i), reverse=True)[
        :5
    ]
    assert [item.custom_id for item in top.items()] == [f"c{i}" for i in ranked]
    rows = histogram.rows()
    assert sum(n for _, _, n, _ in rows) == len(items)
    for tokens, _ in items:
        assert any(low <= tokens <= high and n for low, high, n, _ in rows)


def test_a_summary_from_before_per_model_costs_gives_its_one_model_the_total(
    tmp_path: Path,
) -> None:
    source = write_jsonl(tmp_path / "one.jsonl", [request("a", "gpt-4o", 3)])
    summary = {"counts": {"succeeded": 1}, "cost": {"actual_usd": 0.25}, "usage": {}}
    path = tmp_path / "one.merge.json"
    path.write_text(json.dumps(summary))
    from jsonl_batch.report import build_report

    report = build_report(find_sources(source))
    assert report.models[0].actual_usd == 0.25
    assert "$0.25" in render_html(report)


def test_a_merge_summary_edited_by_hand_is_read_for_what_it_holds(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "odd.jsonl", [request("a", "gpt-4o", 3)])
    summary = {
        "counts": {"succeeded": "x", "failed": 2},
        "cost": "nope",
        "usage": [],
        "errors": [1, {"code": "<x>", "count": "9", "example": None}],
        "models": "m",
        "shards": [{"name": 5, "cost": {"actual_usd": "1"}}],
        "warnings": "w",
    }
    (tmp_path / "odd.merge.json").write_text(json.dumps(summary))
    out = tmp_path / "odd.html"
    headline = json.loads(run("report", str(source), "-o", str(out), "--format", "json").stdout)
    assert headline["counts"] == {"failed": 2} and headline["actual_usd"] is None
    page = Page(out.read_text("utf-8"))
    assert page.row("status", "<x>", 1)["count"] == "0"


# --- a real browser ---------------------------------------------------------------------------


def png_colours(data: bytes, rows: int) -> set[bytes]:
    """Distinct pixel values of the first ``rows`` rows of an 8-bit RGB/RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    previous = bytearray(stride)
    colours: set[bytes] = set()
    for y in range(min(rows, height)):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up = previous[x]
            corner = previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 255
            elif kind == 2:
                line[x] = (line[x] + up) & 255
            elif kind == 3:
                line[x] = (line[x] + ((left + up) >> 1)) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                guess = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[x] = (line[x] + guess) & 255
        colours.update(bytes(line[i : i + 3]) for i in range(0, stride, channels * 4))
        previous = line
    return colours


@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="headless Chromium (Debian package chromium, /usr/bin/chromium) is not installed",
)
def test_chromium_renders_the_report_as_a_page_that_is_not_blank(tmp_path: Path) -> None:
    job = make_job(tmp_path)
    out = tmp_path / "job.html"
    run("report", str(job), "-o", str(out))
    png = tmp_path / "job.png"
    profile = tmp_path / "profile"
    profile.mkdir()
    subprocess.run(
        [
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", "--hide-scrollbars",
            f"--screenshot={png}", "--window-size=800,700", out.as_uri(),
        ],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    shutil.rmtree(profile, ignore_errors=True)
    assert png.is_file() and png.stat().st_size > 5_000, "Chromium wrote no screenshot"
    colours = png_colours(png.read_bytes(), rows=700)
    # text, the cards, the status colours and the timeline's phases: many colours, not blank
    assert len(colours) >= 20, len(colours)
