"""The report as one self-contained HTML page: hand-written inline SVG charts, each next to a
table with its numbers (readable without JavaScript, which the page has none of, and by
screen readers), and a stylesheet in the page. Nothing is loaded from anywhere.

Every string that comes from the user's files (custom_ids, model names, error messages,
paths) goes through :func:`text`, which escapes it for HTML and replaces characters that
could disguise it (control characters, bidirectional overrides, lone surrogates).
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from .. import display
from .collect import CostRow, Report, ShardTimeline

WIDTH = 760
MAX_TIMELINE_ROWS = 100
MAX_CHART_ROWS = 40
MIN_CHART_BINS = 16

STATUS_COLOURS = {
    "succeeded": "#2f9e44",
    "failed": "#e03131",
    "expired": "#f08c00",
    "cancelled": "#868e96",
    "missing": "#7048e8",
    "pending": "#ced4da",
}
PHASE_COLOURS = {
    "validating": "#adb5bd",
    "in_progress": "#1c7ed6",
    "finalizing": "#7048e8",
    "cancelling": "#f08c00",
    "running": "#1c7ed6",
}
PHASE_NAMES = {"in_progress": "in progress"}
ESTIMATE_BAND = "#a5d8ff"
ESTIMATE_MARK = "#1864ab"
ACTUAL = "#e8590c"

# C0/C1 controls (but tab and newline), bidirectional embeddings, overrides and isolates,
# and lone surrogates: shown as U+FFFD so a custom_id cannot hide or reorder what follows.
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)

_CSS = """
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Liberation Sans",
sans-serif;color:#212529;background:#fff}
main{max-width:1120px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.25em;margin:36px 0 8px;padding-top:8px;
border-top:1px solid #dee2e6}h3{font-size:1.05em;margin:20px 0 6px}
p.sub,.muted{color:#495057}p.sub{margin:0 0 16px}
nav ul{list-style:none;padding:0;margin:12px 0;display:flex;flex-wrap:wrap;gap:6px 18px}
a{color:#1864ab}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{flex:1 1 180px;border:1px solid #dee2e6;border-radius:8px;padding:10px 14px;
background:#f8f9fa}
.card .label{display:block;color:#495057;font-size:.85em}
.card .value{display:block;font-size:1.45em;font-weight:600;font-variant-numeric:tabular-nums}
.card .detail{display:block;color:#495057;font-size:.85em}
table{border-collapse:collapse;width:100%;margin:8px 0 4px;font-size:.92em}
caption{text-align:left;color:#495057;padding:2px 0 6px;font-size:.95em}
th,td{padding:5px 8px;border-bottom:1px solid #dee2e6;text-align:left;vertical-align:top}
th{background:#f8f9fa;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.id,td.code{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.92em}
td.id{overflow-wrap:anywhere;max-width:28em}
td.msg{overflow-wrap:anywhere;max-width:34em}
td.nowrap{white-space:nowrap}
tbody tr:nth-child(even){background:#fcfcfd}
tr.total td{font-weight:600;border-top:2px solid #dee2e6}
svg{display:block;width:100%;max-width:980px;height:auto;margin:8px 0}
.scroll{overflow-x:auto}
svg text{font:12px system-ui,-apple-system,"Segoe UI",Roboto,"Liberation Sans",sans-serif;
fill:#343a40}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;padding:0;margin:4px 0;list-style:none;
font-size:.9em}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:5px;
vertical-align:-1px}
td.share{width:100px;min-width:100px}
.bar{display:inline-block;height:8px;background:#1864ab;border-radius:2px;
min-width:1px;vertical-align:middle}
.empty{color:#495057;font-style:italic}
footer{margin-top:40px;color:#495057;font-size:.85em}
@media print{main{padding:0}h2{break-after:avoid}svg,table{break-inside:avoid}}
"""


# --- formatting -----------------------------------------------------------------------


def text(value: Any, limit: int | None = None) -> str:
    """A user string, made safe and escaped for HTML text or an attribute value."""
    raw = value if isinstance(value, str) else str(value)
    if limit is not None and len(raw) > limit:
        raw = raw[: limit - 1] + "…"
    return html.escape(_UNSAFE.sub("\ufffd", raw), quote=True)


# Money as every command writes it (``display``); "—" where a figure is unknown.
usd = functools.partial(display.usd, unknown="—")


def count(value: int | None) -> str:
    return "—" if value is None else display.number(value)


def token_range(low: int, expected: int, high: int) -> str:
    return f"{expected:,}" if low == high else f"{expected:,} ({low:,}–{high:,})"


def short_tokens(value: int) -> str:
    """1, 724, 1k, 1.4k, 256k, 1M: an axis label (binary k and M, as the bins double)."""
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("k", 1 << 10)):
        if value >= size:
            amount = value / size
            shown = f"{amount:.1f}".rstrip("0").rstrip(".") if amount < 10 else f"{amount:.0f}"
            return shown + unit
    return str(value)


def percent(part: float, whole: float) -> str:
    if not whole:
        return "—"
    share = part / whole
    return "<0.1%" if 0 < share < 0.001 else display.percent(share)


def when(seconds: float | None) -> dt.datetime | None:
    """A timestamp in the local time zone, with its offset."""
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).astimezone()


def time_tag(seconds: float | None, shown: str = "%Y-%m-%d %H:%M:%S %z") -> str:
    """``<time>`` with the ISO 8601 instant (with offset) for machines, ``shown`` for people."""
    moment = when(seconds)
    if moment is None:
        return "—"
    iso = moment.isoformat(timespec="seconds")
    offset = iso[-6:]  # ±HH:MM, which strftime's %z writes without the colon
    return f'<time datetime="{iso}">{moment.strftime(shown.replace("%z", offset))}</time>'


def duration(seconds: float | None) -> str:
    return "—" if seconds is None else display.duration(seconds)


def _num(value: float) -> str:
    """A coordinate for SVG."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


# --- page ------------------------------------------------------------------------------


def render_html(report: Report) -> str:
    """The whole page."""
    sections = [
        ("cost", "Cost by model", _cost_by_model(report)),
        ("groups", f"Cost by {report.group_kind}", _cost_by_group(report)),
        ("resources", "Cost and usage by resource", _resources_section(report)),
        ("tokens", "Input tokens per request", _histogram_section(report)),
        ("top", f"The {len(report.top) or ''} most expensive requests", _top_section(report)),
        ("status", "Status", _status_section(report)),
        ("timeline", "Timeline", _timeline_section(report)),
        ("notes", "Notes", _notes_section(report)),
        ("inputs", "Inputs", _inputs_section(report)),
    ]
    shown = [(anchor, title, body) for anchor, title, body in sections if body]
    nav = "".join(f'<li><a href="#{anchor}">{title}</a></li>' for anchor, title, _ in shown)
    body = "".join(
        f'<section id="{anchor}" aria-labelledby="{anchor}-h"><h2 id="{anchor}-h">{title}</h2>'
        f"{content}</section>\n"
        for anchor, title, content in shown
    )
    generated = time_tag(report.generated_at)
    prices = f" · prices: {text(report.prices)}" if report.prices else ""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="jsonl-batch {text(report.version)}">\n'
        f"<title>{text(report.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<header><h1>{text(report.title)}</h1>"
        f'<p class="sub">Generated {generated} by jsonl-batch {text(report.version)}{prices}'
        "</p></header>\n"
        f"{_cards(report)}\n"
        f'<nav aria-label="sections"><ul>{nav}</ul></nav>\n'
        f"{body}"
        "<footer>A self-contained page: no scripts, nothing loaded from the network. Costs"
        " are US dollars at Batch prices.</footer>\n</main>\n</body>\n</html>\n"
    )


def _cards(report: Report) -> str:
    cards: list[tuple[str, str, str]] = []
    requests = report.requests
    if requests is not None:
        cards.append(("Requests", count(requests), ""))
    estimate = report.estimate
    if estimate is not None:
        cards.append(
            (
                "Estimated cost",
                usd(estimate.expected),
                f"low {usd(estimate.low)} · high {usd(estimate.high)}",
            )
        )
    if report.counts_from == "merge":
        usage = report.usage or {}
        tokens = (
            f"{usage['prompt_tokens']:,} input · {usage['completion_tokens']:,} output tokens"
            if "prompt_tokens" in usage and "completion_tokens" in usage
            else "from the merged usage"
        )
        cards.append(("Actual cost", usd(report.actual_usd), tokens))
    counts = report.counts
    if counts:
        total = sum(counts.values())
        done = counts.get("succeeded", 0)
        detail = "merged results" if report.counts_from == "merge" else "batch request counts"
        cards.append(("Succeeded", f"{done:,} of {total:,}", f"{percent(done, total)} · {detail}"))
    if report.timeline:
        ended = sum(1 for shard in report.timeline if shard.ended is not None)
        cards.append(("Shards finished", f"{ended} of {len(report.timeline)}", ""))
    items = "".join(
        f'<div class="card"><span class="label">{label}</span><span class="value">{value}</span>'
        + (f'<span class="detail">{detail}</span>' if detail else "")
        + "</div>"
        for label, value, detail in cards
    )
    return f'<section class="cards" aria-label="headline figures">{items}</section>'


def _table(
    caption: str,
    header: Sequence[tuple[str, bool]],
    rows: Iterable[Sequence[str]],
    *,
    total: Sequence[str] | None = None,
    classes: Sequence[str] = (),
) -> str:
    """A table; ``header`` is (label, numeric); cells are already HTML."""
    head = "".join(
        f'<th scope="col"{" class=num" if num else ""}>{label}</th>' for label, num in header
    )
    kinds = list(classes) or ["num" if num else "" for _, num in header]

    def cells(row: Sequence[str]) -> str:
        return "".join(
            f"<td{f' class={kind}' if kind else ''}>{cell}</td>"
            for cell, kind in zip(row, kinds, strict=True)
        )

    body = "".join(f"<tr>{cells(row)}</tr>" for row in rows)
    foot = f'<tr class="total">{cells(total)}</tr>' if total is not None else ""
    return (
        f'<div class="scroll"><table><caption>{caption}</caption><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}{foot}</tbody></table></div>"
    )


def _legend(items: Iterable[tuple[str, str]]) -> str:
    entries = "".join(
        f'<li><span class="swatch" style="background:{colour}"></span>{label}</li>'
        for label, colour in items
    )
    return f'<ul class="legend">{entries}</ul>'


def _svg(height: float, label: str, content: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {_num(height)}" '
        f'width="{WIDTH}" height="{_num(height)}" role="img" aria-label="{label}">'
        f"{content}</svg>"
    )


# --- cost by model and by shard -------------------------------------------------------


def _cost_by_model(report: Report) -> str:
    if not report.models:
        return ""
    total = None
    if report.estimate is not None or report.actual_usd is not None:
        estimate = report.estimate
        total = _cost_cells(
            CostRow(
                "total",
                estimate=estimate,
                actual_usd=report.actual_usd,
                requests=estimate.requests if estimate else report.requests,
            ),
            with_status=False,
            merged=report.counts_from == "merge",
        )
    return _cost_block(report, report.models, "model", total)


def _cost_by_group(report: Report) -> str:
    rows = report.groups
    if not rows or not any(row.estimate or row.actual_usd is not None for row in rows):
        return ""
    return _cost_block(report, rows, report.group_kind, None)


def _resources_section(report: Report) -> str:
    """Where a multi-resource job ran: requests, outcomes, tokens and cost per resource."""
    if not report.resources:
        return ""
    header = [
        ("resource", False),
        ("requests", True),
        ("succeeded", True),
        ("failed", True),
        ("other", True),
        ("input tokens", True),
        ("output tokens", True),
        ("actual", True),
    ]
    rows = (
        [
            text(row.name),
            count(row.requests),
            count(row.counts.get("succeeded", 0)),
            count(row.counts.get("failed", 0)),
            count(row.requests - row.counts.get("succeeded", 0) - row.counts.get("failed", 0)),
            count(row.prompt_tokens),
            count(row.completion_tokens),
            usd(row.actual_usd),
        ]
        for row in report.resources
    )
    caption = (
        "Per resource, from the merge summary: requests, how they ended (other: expired,"
        " cancelled or missing), token usage and the actual cost, US dollars at Batch prices."
    )
    return _table(caption, header, rows)


def _cost_block(report: Report, rows: list[CostRow], kind: str, total: list[str] | None) -> str:
    merged = report.counts_from == "merge"
    with_status = kind == "shard"
    chart = _cost_chart(rows, merged) if len(rows) <= MAX_CHART_ROWS else ""
    if not chart:
        chart = f'<p class="muted">{len(rows):,} rows: the table has them all.</p>'
    header = [
        (kind, False),
        *([("status", False)] if with_status else []),
        ("requests", True),
        ("input tokens (estimate)", True),
        ("low", True),
        ("expected", True),
        ("high", True),
        ("actual", True),
        ("actual vs expected", True),
    ]
    caption = (
        "Estimated cost (low, expected, high) and the actual cost from the merged usage, "
        "US dollars at Batch prices."
    )
    if not merged:
        caption = "Estimated cost (low, expected, high), US dollars at Batch prices; the actual "
        caption += "cost appears once the job is merged."
    table = _table(
        caption,
        header,
        (_cost_cells(row, with_status=with_status, merged=merged) for row in rows),
        total=[*total[:1], *([""] if with_status else []), *total[1:]] if total else None,
    )
    legend = _legend(
        [
            ("estimate, low to high", ESTIMATE_BAND),
            ("expected", ESTIMATE_MARK),
            *([("actual", ACTUAL)] if merged else []),
        ]
    )
    return legend + chart + table


def _cost_cells(row: CostRow, *, with_status: bool, merged: bool) -> list[str]:
    estimate = row.estimate
    name = text(row.name)
    if row.aliases:
        name += '<br><span class="muted">' + ", ".join(text(a) for a in row.aliases) + "</span>"
    if row.unpriced:
        name += '<br><span class="muted">no price</span>'
    cells = [name]
    if with_status:
        cells.append(text(row.status or "—"))
    cells.append(count(row.requests))
    if estimate is None:
        cells += ["—"] * 4
    else:
        cells.append(
            token_range(
                estimate.input_tokens_low, estimate.input_tokens, estimate.input_tokens_high
            )
        )
        cells += [usd(estimate.low), usd(estimate.expected), usd(estimate.high)]
    cells.append(usd(row.actual_usd) if merged else "—")
    expected = estimate.expected if estimate else None
    if merged and row.actual_usd is not None and expected:
        change = 100 * (row.actual_usd - expected) / expected
        cells.append(f"{change:+.0f}%")
    else:
        cells.append("—")
    return cells


def _cost_chart(rows: list[CostRow], merged: bool) -> str:
    """Per row: the estimate as a band from low to high with a mark at expected, and the
    actual cost as a bar; one scale, fitted to expected and actual (a high far beyond them is
    cut at the edge and its value written there)."""
    label_w, right_w = 190, 170
    x0, x1 = label_w, WIDTH - right_w
    base = max(
        [0.0]
        + [
            value or 0.0
            for row in rows
            for value in (
                row.actual_usd,
                row.estimate.expected if row.estimate else None,
                row.estimate.low if row.estimate else None,
            )
        ]
    )
    highest = max([0.0] + [row.estimate.high or 0.0 for row in rows if row.estimate])
    scale = max(base * 1.1, min(highest, base * 3)) or 1.0
    row_h = 30
    parts: list[str] = []
    for i, row in enumerate(rows):
        y = 6 + i * row_h
        mid = y + row_h / 2

        def x(value: float) -> float:
            return x0 + (x1 - x0) * min(value / scale, 1.0)

        parts.append(
            f'<text x="{label_w - 8}" y="{_num(mid + 4)}" text-anchor="end">'
            f"{text(row.name, 28)}</text>"
        )
        parts.append(
            f'<line x1="{x0}" x2="{x0}" y1="{y + 3}" y2="{y + row_h - 3}" stroke="#adb5bd"/>'
        )
        estimate = row.estimate
        tail = ""
        if estimate is not None and estimate.high is not None:
            low, high = estimate.low or 0.0, estimate.high
            title = (
                f"{text(row.name)}: estimate {usd(estimate.low)} to {usd(high)}, "
                f"expected {usd(estimate.expected)}"
            )
            parts.append(
                f'<rect x="{_num(x(low))}" y="{y + 5}" width="{_num(max(x(high) - x(low), 1))}" '
                f'height="{row_h - 10}" fill="{ESTIMATE_BAND}" rx="2"><title>{title}</title></rect>'
            )
            expected_x = x(estimate.expected or 0.0)
            parts.append(
                f'<line x1="{_num(expected_x)}" x2="{_num(expected_x)}" y1="{y + 3}" '
                f'y2="{y + row_h - 3}" stroke="{ESTIMATE_MARK}" stroke-width="2.5"/>'
            )
            if high > scale:  # cut at the edge: say where it ends
                parts.append(
                    f'<text x="{x1 - 4}" y="{_num(mid + 4)}" text-anchor="end" '
                    f'fill="{ESTIMATE_MARK}">high {usd(high)} →</text>'
                )
            tail = f"expected {usd(estimate.expected)}"
        if merged and row.actual_usd is not None:
            parts.append(
                f'<rect x="{x0}" y="{_num(mid - 4)}" width="{_num(max(x(row.actual_usd) - x0, 1))}"'
                f' height="8" fill="{ACTUAL}" rx="1"><title>{text(row.name)}: actual '
                f"{usd(row.actual_usd)}</title></rect>"
            )
            tail = f"actual {usd(row.actual_usd)}"
        parts.append(f'<text x="{x1 + 6}" y="{_num(mid + 4)}">{tail}</text>')
    height = 12 + len(rows) * row_h
    return _svg(height, "cost chart; the table below has the numbers", "".join(parts))


# --- input tokens ----------------------------------------------------------------------


def _histogram_section(report: Report) -> str:
    histogram = report.histogram
    if histogram is None or not histogram.requests:
        return ""
    rows = histogram.rows()
    total_cost = sum(row[3] for row in rows)
    table = _table(
        "Requests per input-token range (two ranges per doubling; empty ones left out) and"
        " their share of the expected cost.",
        [
            ("input tokens", False),
            ("requests", True),
            ("share", True),
            ("expected cost", True),
            ("share of cost", True),
        ],
        (
            [
                f"{low:,}" if low == high else f"{low:,}–{high:,}",
                count(n),
                percent(n, histogram.requests),
                usd(cost),
                percent(cost, total_cost),
            ]
            for low, high, n, cost in rows
            if n
        ),
    )
    return _histogram_chart(histogram.rows(at_least=MIN_CHART_BINS)) + table


def _histogram_chart(rows: list[tuple[int, int, int, float]]) -> str:
    """Bars on a log scale of tokens (a narrow distribution comes with empty bins either
    side, so one bar does not fill the chart)."""
    left, bottom, top, height = 56, 34, 10, 230
    plot_h = height - bottom - top
    most = max(n for _, _, n, _ in rows) or 1
    bar_w = (WIDTH - left - 10) / len(rows)
    parts = [
        f'<line x1="{left}" x2="{WIDTH - 10}" y1="{height - bottom}" y2="{height - bottom}" '
        'stroke="#868e96"/>'
    ]
    for value in sorted({0, most // 2, most}):  # whole numbers, each at its true height
        y = height - bottom - plot_h * value / most
        parts.append(
            f'<text x="{left - 6}" y="{_num(y + 4)}" text-anchor="end">{count(round(value))}</text>'
            f'<line x1="{left}" x2="{WIDTH - 10}" y1="{_num(y)}" y2="{_num(y)}" stroke="#e9ecef"/>'
        )
    every = max(1, math.ceil(34 / bar_w))
    for i, (low, high, n, cost) in enumerate(rows):
        x = left + i * bar_w
        h = plot_h * n / most
        title = f"{low:,}–{high:,} input tokens: {n:,} requests, {usd(cost)} expected"
        if n:
            parts.append(
                f'<rect x="{_num(x + 1)}" y="{_num(height - bottom - h)}" '
                f'width="{_num(max(bar_w - 2, 1))}" height="{_num(max(h, 1))}" '
                f'fill="{ESTIMATE_MARK}"><title>{title}</title></rect>'
            )
        if i % every == 0:
            parts.append(
                f'<text x="{_num(x + bar_w / 2)}" y="{height - bottom + 16}" '
                f'text-anchor="middle">{short_tokens(low)}</text>'
            )
    parts.append(
        f'<text x="{_num(left + (WIDTH - left) / 2)}" y="{height - 2}" text-anchor="middle">'
        "input tokens per request (each bar: from this count to just below the next)</text>"
    )
    return _svg(
        height,
        "histogram of input tokens per request; the table below has the numbers",
        "".join(parts),
    )


def _top_section(report: Report) -> str:
    if not report.top:
        return ""
    most = max((item.cost or 0.0) for item in report.top) or 1.0
    rows = []
    for rank, item in enumerate(report.top, 1):
        share = 100 * (item.cost or 0.0) / most
        rows.append(
            [
                str(rank),
                f"<bdi>{text(item.custom_id)}</bdi>",
                text(item.where),
                text(item.model),
                token_range(item.input_tokens_low, item.input_tokens, item.input_tokens_high),
                count(item.max_output_tokens),
                usd(item.cost),
                usd(item.cost_high),
                f'<span class="bar" style="width:{share:.1f}%"></span>',
            ]
        )
    return _table(
        "Ranked by expected cost (then input tokens): look at these before paying for them.",
        [
            ("#", True),
            ("custom_id", False),
            ("file:line", False),
            ("model", False),
            ("input tokens", True),
            ("output cap", True),
            ("expected", True),
            ("high", True),
            ("", False),
        ],
        rows,
        classes=["num", "id", "id", "", "num", "num", "num", "num", "share"],
    )


# --- status and errors ----------------------------------------------------------------


def _status_section(report: Report) -> str:
    counts = report.counts
    if not counts:
        return ""
    total = sum(counts.values())
    source = (
        "From the merged results."
        if report.counts_from == "merge"
        else "From the batches' request counts; merge the job for exact statuses per request "
        "and error codes."
    )
    shown = [(status, n) for status, n in counts.items() if n]
    parts: list[str] = []
    x = 0.0
    for status, n in shown:
        w = WIDTH * n / total if total else 0
        colour = STATUS_COLOURS.get(status, "#495057")
        parts.append(
            f'<rect x="{_num(x)}" y="2" width="{_num(max(w, 1))}" height="30" fill="{colour}">'
            f"<title>{text(status)}: {n:,} ({percent(n, total)})</title></rect>"
        )
        x += w
    chart = _svg(34, "status of the requests; the table below has the numbers", "".join(parts))
    legend = _legend((f"{text(s)} {n:,}", STATUS_COLOURS.get(s, "#495057")) for s, n in shown)
    table = _table(
        source,
        [("status", False), ("requests", True), ("share", True)],
        ([text(status), count(n), percent(n, total)] for status, n in counts.items()),
        total=["total", count(total), percent(total, total) if total else "—"],
    )
    return (chart if total else "") + legend + table + _errors_table(report)


def _errors_table(report: Report) -> str:
    if not report.errors:
        return ""
    rows = [
        [
            f"<bdi>{text(row.code)}</bdi>",
            text(row.status),
            count(row.count),
            f"<bdi>{text(row.custom_id)}</bdi>" if row.custom_id is not None else "—",
            text(row.message) if row.message else "—",
            text(row.where) if row.where else "—",
        ]
        for row in report.errors
    ]
    more = (
        f'<p class="muted">and {report.more_error_codes:,} more codes (see the merge summary)</p>'
        if report.more_error_codes
        else ""
    )
    return (
        "<h3>Failures by error code</h3>"
        + _table(
            "Each code with how many requests got it and one example.",
            [
                ("code", False),
                ("status", False),
                ("count", True),
                ("example custom_id", False),
                ("example message", False),
                ("where", False),
            ],
            rows,
            classes=["code", "", "num", "id", "msg", "id"],
        )
        + more
    )


# --- timeline --------------------------------------------------------------------------


def _timeline_section(report: Report) -> str:
    shards = report.timeline
    if not shards:
        return ""
    drawn = [shard for shard in shards if shard.phases][:MAX_TIMELINE_ROWS]
    clock = shards[0].clock
    note = (
        "Times are the batches' own timestamps, as the service reported them."
        if clock == "service"
        else "Times are when this machine submitted each batch and saw it finish (the job file"
        " predates the batches' own timestamps)."
    )
    chart = _timeline_chart(drawn, report.as_of or report.generated_at) if drawn else ""
    if len(drawn) < len([shard for shard in shards if shard.phases]):
        note += f" The chart shows the first {MAX_TIMELINE_ROWS} shards; the table has all."
    legend = _legend(
        [
            *((PHASE_NAMES.get(p, p), PHASE_COLOURS[p]) for p in _phases_in(drawn)),
            *((f"ended {s}", STATUS_COLOURS[_end_colour(s)]) for s in _ends_in(drawn)),
        ]
    )
    moments = [
        when(t)
        for shard in shards
        for t in (*(start for _, start, _ in shard.phases), shard.ended, shard.expected_end)
        if t is not None
    ]
    shown = "%Y-%m-%d %H:%M:%S"
    if moments and len({moment.date() for moment in moments if moment}) == 1:
        shown = "%H:%M:%S"
        first_moment = moments[0]
        if first_moment is not None:
            offset = first_moment.isoformat()[-6:]
            note += f" All on {first_moment:%Y-%m-%d} (UTC{offset})."
    running = any(shard.ended is None for shard in shards)
    rows = []
    for shard in shards:
        starts = {phase: start for phase, start, _ in shard.phases}
        first = shard.phases[0][1] if shard.phases else None
        row = [
            text(shard.name),
            text(shard.deployment or "—"),
            text(shard.status),
            f"{shard.done:,} of {shard.requests:,}"
            + (f" ({shard.failed:,} failed)" if shard.failed else ""),
            time_tag(first, shown),
            time_tag(starts.get("in_progress"), shown),
            time_tag(starts.get("finalizing"), shown),
            time_tag(shard.ended, shown),
            duration(shard.ended - first if shard.ended is not None and first else None),
        ]
        if running:
            row.append(time_tag(shard.expected_end, shown))
            row.append(time_tag(shard.expires_at, "%m-%d %H:%M"))
        rows.append(row)
    header = [
        ("shard", False),
        ("deployment", False),
        ("status", False),
        ("requests back", True),
        ("created", True),
        ("in progress", True),
        ("finalizing", True),
        ("ended", True),
        ("took", True),
    ]
    if running:
        header += [("expected end", True), ("expires", True)]
    kinds = ["nowrap", "", "", *(["num"] * (len(header) - 3))]
    return legend + chart + _table(note, header, rows, classes=kinds)


def _phases_in(shards: list[ShardTimeline]) -> list[str]:
    seen = dict.fromkeys(phase for shard in shards for phase, _, _ in shard.phases)
    return [phase for phase in PHASE_COLOURS if phase in seen]


def _ends_in(shards: list[ShardTimeline]) -> list[str]:
    return list(dict.fromkeys(shard.status for shard in shards if shard.ended is not None))


def _end_colour(status: str) -> str:
    return {"completed": "succeeded"}.get(status, status if status in STATUS_COLOURS else "failed")


def _timeline_chart(shards: list[ShardTimeline], as_of: float) -> str:
    label_w, right = 90, 16
    x0, x1 = label_w, WIDTH - right
    latest = max(
        t
        for shard in shards
        for t in (
            *(start for _, start, _ in shard.phases),
            *(end for _, _, end in shard.phases if end is not None),
            shard.ended,
        )
        if t is not None
    )
    open_end = max(as_of, latest)  # a phase still running is drawn up to the job's last update
    start = min(shard.phases[0][1] for shard in shards)
    ends = [latest, *(shard.expected_end or latest for shard in shards)]
    if any(shard.ended is None for shard in shards):
        ends.append(open_end)
    end = max(ends)
    span = max(end - start, 1.0)

    def x(t: float) -> float:
        return x0 + (x1 - x0) * (t - start) / span

    axis_y, row_h = 22, 22
    parts: list[str] = []
    step = _tick_step(span)
    first_tick = math.ceil(start / step) * step
    with_date = span >= 86400 or when(start).date() != when(end).date()  # type: ignore[union-attr]
    pattern = "%m-%d %H:%M" if with_date else ("%H:%M:%S" if step < 60 else "%H:%M")
    height = axis_y + len(shards) * row_h + 8
    tick = first_tick
    while tick <= end:
        tx = x(tick)
        label = when(tick).strftime(pattern)  # type: ignore[union-attr]
        anchor = "end" if tx > x1 - 40 else "middle"  # the last label stays inside the chart
        parts.append(
            f'<line x1="{_num(tx)}" x2="{_num(tx)}" y1="{axis_y - 4}" y2="{height - 4}" '
            f'stroke="#e9ecef"/><text x="{_num(tx)}" y="{axis_y - 8}" text-anchor="{anchor}">'
            f"{label}</text>"
        )
        tick += step
    for i, shard in enumerate(shards):
        y = axis_y + i * row_h
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{text(shard.name, 14)}</text>'
        )
        for phase, begin, finish in shard.phases:
            stop = finish if finish is not None else open_end
            title = (
                f"{text(shard.name)} {PHASE_NAMES.get(phase, phase)}: {duration(stop - begin)}"
                + ("" if finish is not None else " so far")
            )
            parts.append(
                f'<rect x="{_num(x(begin))}" y="{y + 4}" width="{_num(max(x(stop) - x(begin), 1))}"'
                f' height="{row_h - 8}" fill="{PHASE_COLOURS.get(phase, "#1c7ed6")}">'
                f"<title>{title}</title></rect>"
            )
        if shard.expected_end is not None and shard.expected_end > open_end:
            parts.append(
                f'<rect x="{_num(x(open_end))}" y="{y + 4}" '
                f'width="{_num(x(shard.expected_end) - x(open_end))}" height="{row_h - 8}" '
                f'fill="none" stroke="{PHASE_COLOURS["in_progress"]}" stroke-dasharray="4 3">'
                f"<title>{text(shard.name)}: expected to end around "
                f"{when(shard.expected_end).isoformat(timespec='minutes')}</title></rect>"  # type: ignore[union-attr]
            )
        if shard.ended is not None:
            colour = STATUS_COLOURS[_end_colour(shard.status)]
            parts.append(
                f'<circle cx="{_num(x(shard.ended))}" cy="{y + row_h / 2}" r="5" fill="{colour}" '
                f'stroke="#fff"><title>{text(shard.name)} {text(shard.status)} at '
                f"{when(shard.ended).isoformat(timespec='seconds')}</title></circle>"  # type: ignore[union-attr]
            )
    return _svg(
        height, "timeline of the shards' batches; the table below has the times", "".join(parts)
    )


def _tick_step(span: float) -> float:
    for step in (
        1,
        2,
        5,
        10,
        15,
        30,
        60,
        120,
        300,
        600,
        900,
        1800,
        3600,
        7200,
        10800,
        21600,
        43200,
        86400,
    ):
        if span / step <= 8:
            return float(step)
    return 86400.0 * math.ceil(span / 86400 / 8)


# --- notes and inputs ------------------------------------------------------------------


def _notes_section(report: Report) -> str:
    if not report.notes:
        return ""
    items = "".join(f"<li>{text(note)}</li>" for note in report.notes)
    return f"<ul>{items}</ul>"


def _inputs_section(report: Report) -> str:
    rows = [[text(what), text(value)] for what, value in report.inputs]
    rows += [[text(what), text(value)] for what, value in report.settings]
    if report.prices:
        rows.append(["price table", text(report.prices)])
    rows.append(["jsonl-batch version", text(report.version)])
    rows.append(["generated", time_tag(report.generated_at)])
    return _table(
        "What this report was made from.",
        [("what", False), ("value", False)],
        rows,
        classes=["", "id"],
    )


__all__ = ["render_html", "text", "usd"]
