"""The command line speaks one language: the same options for the same things on every
command, help and examples everywhere, usage errors exit 2, and numbers, money, times and
ids written one way."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from jsonl_batch.cli import COMMANDS, main
from jsonl_batch.display import count, duration, iso_time, round_usd, short_id, usd
from jsonl_batch.profiles import TARGETS

from .conftest import SAMPLES


def commands() -> dict[str, click.Command]:
    ctx = click.Context(main)
    found = {name: main.get_command(ctx, name) for name in COMMANDS}
    return {name: command for name, command in found.items() if command is not None}


def options(command: click.Command) -> dict[str, click.Option]:
    """Every option of a command, under each of its flags (``-o`` and ``--output`` alike)."""
    return {
        flag: param
        for param in command.params
        if isinstance(param, click.Option)
        for flag in (*param.opts, *param.secondary_opts)
    }


# The options several commands share: each must mean the same everywhere it appears.
SHARED = {
    "--output": {"flags": ("-o", "--output", "--out-dir"), "dest": "output_dir"},
    "--jobs": {"flags": ("-j", "--jobs"), "dest": "jobs"},
    "--deployment-map": {"flags": ("--deployment-map",), "dest": "deployment_items"},
    "--deployment-map-file": {"flags": ("--deployment-map-file",), "dest": "deployment_map_file"},
    "--format": {"flags": ("--format",), "dest": "output_format"},
    "--target": {"flags": ("--target",), "dest": "target"},
    "--max-line-bytes": {"flags": ("--max-line-bytes",), "dest": "max_line_bytes"},
    "--prices": {"flags": ("--prices",), "dest": "prices_path"},
    "--region": {"flags": ("--region",), "dest": "region"},
}


def test_shared_options_agree_on_every_command() -> None:
    seen: dict[str, list[str]] = {}
    for name, command in commands().items():
        by_flag = options(command)
        for flag, rule in SHARED.items():
            option = by_flag.get(flag)
            if option is None:
                continue
            seen.setdefault(flag, []).append(name)
            assert tuple(option.opts) == rule["flags"], (name, flag, option.opts)
            assert option.name == rule["dest"], (name, flag)
            if flag == "--target":
                assert set(option.type.choices) <= set(TARGETS), name  # type: ignore[attr-defined]
            if flag == "--format":
                assert list(option.type.choices)[:2] == ["text", "json"], name  # type: ignore[attr-defined]
                assert option.default == "text"
            if flag == "--jobs":
                assert option.type.min == 1  # type: ignore[attr-defined]
        # a short flag means one thing across the tool
        for short, meaning in (("-o", "--output"), ("-j", "--jobs"), ("-q", "--quiet")):
            if short in by_flag:
                assert meaning in by_flag[short].opts, (name, short)
        # the two deployment-map options come together
        assert ("--deployment-map" in by_flag) == ("--deployment-map-file" in by_flag), name
    assert {"split", "merge"} <= set(seen["--output"])
    assert {"validate", "estimate", "split", "merge"} <= set(seen["--deployment-map"])
    assert {"estimate", "merge"} <= set(seen["--jobs"])
    assert set(seen["--format"]) == set(commands())


def test_every_option_has_help_and_every_command_examples() -> None:
    for name, command in commands().items():
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.help, f"{name} {param.opts[0]} has no help text"
        text = CliRunner().invoke(main, [name, "--help"]).output
        assert re.search(r"^\s*Examples?:", text, re.M), f"{name} --help shows no example"
        assert "--by-model" not in text  # a flag that did nothing is gone


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "{missing}"],
        ["estimate", "{missing}"],
        ["split", "{missing}", "-o", "{tmp}/s"],
        ["merge", "{missing}"],
        ["merge", "--input", "{missing}", "--output-file", "{missing}"],
        ["submit", "{missing}"],
        ["status", "{missing}"],
        ["wait", "{missing}"],
        ["download", "{missing}"],
        ["estimate", "{sample}", "--deployment-map-file", "{missing}"],
    ],
)
def test_a_missing_input_is_a_usage_error(tmp_path: Path, args: list[str]) -> None:
    values = {
        "missing": tmp_path / "nope.jsonl",
        "tmp": tmp_path,
        "sample": SAMPLES / "azure-chat.jsonl",
    }
    result = CliRunner().invoke(main, [arg.format(**values) for arg in args])
    assert result.exit_code == 2, result.output
    assert "does not exist" in result.output and "Traceback" not in result.output


def test_merge_output_is_the_results_folder_and_says_so_for_a_file(tmp_path: Path) -> None:
    runner = CliRunner()
    source, output = SAMPLES / "azure-chat.jsonl", SAMPLES / "azure-chat.output.jsonl"
    # the old spelling, --output BATCH_OUTPUT_FILE, is caught instead of writing into it
    old = runner.invoke(main, ["merge", "--input", str(source), "--output", str(output)])
    assert old.exit_code == 2 and "--output-file" in old.output
    new = ["merge", "--input", str(source), "--output-file", str(output), "-o", str(tmp_path)]
    assert runner.invoke(main, new).exit_code == 1  # one request has no result: exit 1
    assert (tmp_path / "azure-chat.results.jsonl").exists()


# --- formatting ---------------------------------------------------------------------------


def test_text_formats() -> None:
    assert count(1, "request") == "1 request" and count(100_000, "request") == "100,000 requests"
    assert count(2, "batch", "batches") == "2 batches"
    assert [usd(v) for v in (0, 0.5, 95.0917, 269.21, 1234567.891)] == [
        "$0.00",
        "$0.50",
        "$95.09",
        "$269.21",
        "$1,234,567.89",
    ]
    assert usd(1e-7) == "$0.0000001" and usd(0.000123456) == "$0.000123" and usd(None) == "-"
    assert [duration(s) for s in (45, 185, 3725, 90_000, None)] == [
        "45s",
        "3m05s",
        "1h02m",
        "1d01h",
        "-",
    ]
    litellm_id = "batch_" + "bGl0ZWxsbV9wcm94eTttb2RlbF9pZDo" * 3 + "abc123"
    assert short_id("batch_6c5f9e7c-1b4f-4f39-9ad1-2d1b7d8a3f21").endswith("3f21")  # whole
    shortened = short_id(litellm_id)
    assert len(shortened) == 48 and shortened.endswith("abc123") and "…" in shortened
    stamp = iso_time(0)
    assert (
        stamp == "1970-01-01T00:00:00+00:00"
        and datetime.fromisoformat(stamp).utcoffset() is not None
    )


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=1e-12, max_value=1e9, allow_nan=False))
def test_money_never_rounds_to_zero(value: float) -> None:
    text = usd(value)
    assert text != "$0.00" and re.fullmatch(r"\$[0-9,]+\.[0-9]{2,}", text), text
    assert float(text[1:].replace(",", "")) == pytest.approx(value, rel=0.006)
    rounded = round_usd(value)
    assert rounded is not None and rounded > 0 and rounded == pytest.approx(value, rel=1e-9)


def test_estimate_json_keeps_a_cheap_file_above_zero(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "estimate",
            "--target",
            "openai",
            "--format",
            "json",
            str(SAMPLES / "openai-embeddings.jsonl"),
        ],
    )
    assert result.exit_code == 0, result.output
    cost = json.loads(result.output)["total"]["cost_usd"]
    assert 0 < cost["expected"] < 1e-5  # was 0.0: rounded to 6 decimals
    text = CliRunner().invoke(
        main, ["estimate", "--target", "openai", str(SAMPLES / "openai-embeddings.jsonl")]
    )
    assert "$0.00000" in text.output and "requests" in text.output.splitlines()[1]
