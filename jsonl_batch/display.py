"""How numbers, money, times and ids are written for people: one rule each, used by every
command and by the HTML report, so ``100000 requests`` never stands next to
``35,761,833 prompt``.

Text is for people: thousands separators, dollars to cents (three significant digits below
a dollar, so a cheap file never shows ``$0.00``), local time, long ids shortened in the
middle. JSON is for machines: whole ids, times in ISO 8601 with their offset, money from
:func:`round_usd` (never rounded to zero).
"""

from __future__ import annotations

from datetime import UTC, datetime

# Ids longer than this are shortened in text: Azure's and OpenAI's own ids (``batch_`` and a
# UUID, 42 characters) stay whole to be copied, LiteLLM's encoded ones (~120) are cut. JSON
# always carries them whole.
ID_WIDTH = 48


def number(value: int) -> str:
    """``1234567`` → ``1,234,567``."""
    return f"{value:,}"


def count(value: int, noun: str, plural: str | None = None) -> str:
    """``1 request``, ``100,000 requests`` (``plural`` for nouns that do not take an s)."""
    return f"{value:,} {noun if value == 1 else (plural or noun + 's')}"


def percent(share: float) -> str:
    """``0.125`` → ``12.5%``; whole numbers without decimals."""
    value = share * 100
    return f"{value:.0f}%" if value == round(value) else f"{value:.1f}%"


def usd(value: float | None, *, unknown: str = "-") -> str:
    """Money in text: ``$1,234.57`` from a dollar up; below a dollar three significant digits
    (``$0.0123``, ``$0.000000125``) and at least cents (``$0.50``); ``$0.00`` only for zero."""
    if value is None:
        return unknown
    sign, value = ("-", -value) if value < 0 else ("", value)
    if value >= 1 or value == 0:
        return f"{sign}${value:,.2f}"
    text = f"{value:.3g}"
    if "e" in text:  # below 0.0001 Python switches to exponent notation
        digits, exponent = text.split("e")
        decimals = -int(exponent) + max(0, len(digits.replace(".", "")) - 1)
        text = f"{value:.{decimals}f}"
    whole, _, fraction = text.partition(".")
    return f"{sign}${whole}.{fraction.ljust(2, '0')}"


def local_time(unix: float | None, *, seconds: bool = True) -> str:
    """``2026-12-02 22:57:26`` in the machine's time zone (text output); ``-`` when unknown."""
    if unix is None:
        return "-"
    return datetime.fromtimestamp(unix).strftime(
        "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    )


def clock_time(unix: float) -> str:
    """``22:57:26`` local: the stamp of a progress line."""
    return datetime.fromtimestamp(unix).strftime("%H:%M:%S")


def iso_time(unix: float | None) -> str | None:
    """``2026-12-02T21:57:26+00:00``: JSON times carry their offset (UTC)."""
    if unix is None:
        return None
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")


def duration(seconds: float | None) -> str:
    """``45s``, ``3m05s``, ``1h02m``, ``2d03h``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    whole = max(0, round(seconds))
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def size(n_bytes: int) -> str:
    """``532 B``, ``1.5 MB``, ``2.3 GB`` (decimal units, as the services state limits)."""
    value = float(n_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{n_bytes:,} B" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def short_id(value: str | None, width: int = ID_WIDTH) -> str:
    """An id that fits ``width`` characters: its start and its end (where the encoded ids of a
    LiteLLM proxy differ) around an ellipsis. Text only; JSON keeps ids whole."""
    if not value:
        return "-"
    if len(value) <= width:
        return value
    head = (width - 1) // 2
    tail = width - 1 - head
    return f"{value[:head]}…{value[-tail:]}"


USD_SIGNIFICANT_DIGITS = 10


def round_usd(value: float | None) -> float | None:
    """A cost for machine output (JSON, per-request lines): never rounded to zero."""
    return None if value is None else float(f"{value:.{USD_SIGNIFICANT_DIGITS}g}")
