"""The quick paths (the validator's msgspec check, split routing straight from the reader)
say exactly what the full checks say: same findings, same shards, same manifest."""

from __future__ import annotations

import contextlib
import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.generate import generate_requests
from jsonl_batch import split as split_module
from jsonl_batch.errors import JsonlBatchError
from jsonl_batch.profiles import load_profile
from jsonl_batch.split import split_file
from jsonl_batch.validate import Validator, validate_file

from .conftest import ROOT, SAMPLES

TARGETS = ("azure", "openai", "litellm", "vllm")


@contextlib.contextmanager
def full_checks_only() -> Iterator[None]:
    """Every line through the full checks: the quick paths turned off."""
    with (
        mock.patch.object(Validator, "accepts_parsed", lambda *_args: False),
        mock.patch.object(Validator, "_fast_accepts", lambda *_args: False),
    ):
        yield


def validated(path: Path, target: str) -> dict[str, Any]:
    return validate_file(path, target=target).to_dict()


def split_outcome(path: Path, out: Path, **options: Any) -> Any:
    """The manifest (less its time) and every shard's bytes, or the error."""
    shutil.rmtree(out, ignore_errors=True)
    try:
        result = split_file(path, out, max_requests=7, **options)
    except JsonlBatchError as exc:
        return f"{type(exc).__name__}: {exc}"
    manifest = json.loads(result.manifest_path.read_text())
    manifest.pop("created_at")
    shards = {p.name: p.read_bytes() for p in sorted(out.glob("*.part-*.jsonl"))}
    report = result.report.to_dict() if result.report is not None else None
    return manifest, shards, report


def assert_same_either_way(path: Path, tmp: Path) -> None:
    quick = {t: validated(path, t) for t in TARGETS}
    quick_split = [split_outcome(path, tmp / "q", force=True), split_outcome(path, tmp / "q")]
    with full_checks_only():
        assert {t: validated(path, t) for t in TARGETS} == quick
        full_split = [split_outcome(path, tmp / "f", force=True), split_outcome(path, tmp / "f")]
    assert full_split == quick_split


def corpus_files() -> list[Path]:
    return sorted((ROOT / "tests" / "corpus" / "files").glob("*/*.jsonl")) + sorted(
        SAMPLES.glob("*.jsonl")
    )


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_quick_and_full_checks_agree_on_real_files(path: Path, tmp_path: Path) -> None:
    assert_same_either_way(path, tmp_path)


def _mutated(base: list[bytes], seed: int) -> bytes:
    """The benchmark generator's requests with one in five lines broken in some way."""
    rng = random.Random(seed)
    lines = list(base)
    for i in rng.sample(range(len(lines)), len(lines) // 5):
        obj = orjson.loads(lines[i])
        body = obj["body"]
        kind = rng.randrange(20)
        if kind == 0:
            obj["custom_id"] = rng.choice(["req-00000001", " ", "", 7, "x" * 80])
        elif kind == 1:
            body["model"] = rng.choice(["other", "your-deployment", None, 3])
        elif kind == 2:
            obj["url"] = rng.choice(["/v1/responses", "/v1/embeddings", "/nope"])
        elif kind == 3:
            body["stream"] = rng.choice([True, "true", 1, False])
        elif kind == 4:
            body["max_tokens"] = rng.choice([0, "5", 1.5, True, None])
        elif kind == 5:
            body["messages"] = rng.choice([[], [{"role": "robot"}], [{"content": "x"}]])
        elif kind == 6:
            body["temperature"] = rng.choice([3, -1, 0.5, 2])
        elif kind == 7:
            obj["extra"] = 1
        elif kind == 8:
            obj["method"] = "GET"
        elif kind == 9:
            obj["body"] = rng.choice([None, [], "x"])
        lines[i] = orjson.dumps(obj) + b"\n"
        if kind == 10:
            lines[i] = lines[i].replace(b'"model":', b'"model":"x","model":', 1)
        elif kind == 11:
            lines[i] = lines[i][:-1] + b"\r\n"
        elif kind == 12:
            lines[i] = b"\n"
        elif kind == 13:
            lines[i] = lines[i][: len(lines[i]) // 2] + b"\n"
        elif kind == 14:
            lines[i] = lines[i][:30] + b"\xff" + lines[i][30:]
        elif kind == 15:
            lines[i] = b"[1]\n"
        elif kind == 16:  # too big for a double: orjson refuses it, msgspec skips it
            big = rng.choice([b"1e999", b"-1E400", b"9" * 400])
            lines[i] = lines[i].replace(b'"body":{', b'"big":' + big + b',"body":{', 1)
        elif kind == 17:
            lines[i] = b'{"custom_id":"a"} {"custom_id":"b"}\n'
        elif kind == 18:
            lines[i] = rng.choice([b" \t\n", b"\r\n", b" " + lines[i]])
        elif kind == 19:  # not UTF-8 in a string msgspec skips
            lines[i] = lines[i].replace(b'"content":"', b'"content":"\xed\xa0\x80', 1)
    return b"".join(lines)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    path = tmp_path_factory.mktemp("gen") / "base.jsonl"
    generate_requests(path, 60, seed=11, models=("gpt-4o-batch", "gpt-4o-mini-batch", "gpt-4.1"))
    return path.read_bytes().splitlines(keepends=True)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(seed=st.integers(0, 10**6), ending=st.sampled_from([b"", b"bom", b"cut"]))
def test_quick_and_full_checks_agree_on_broken_files(
    generated: list[bytes], tmp_path: Path, seed: int, ending: bytes
) -> None:
    data = _mutated(generated, seed)
    if ending == b"bom":
        data = b"\xef\xbb\xbf" + data
    elif ending == b"cut":
        data = data.rstrip(b"\n")
    path = tmp_path / f"broken-{seed}.jsonl"
    path.write_bytes(data)
    assert_same_either_way(path, tmp_path / str(seed))


def test_a_clean_file_goes_the_quick_way(generated: list[bytes], tmp_path: Path) -> None:
    """Guards the speed: every request after the first of each model is taken quickly, by
    validate (one model per file) and by split (every model)."""
    path = tmp_path / "clean.jsonl"
    path.write_bytes(b"".join(generated))
    taken = 0
    accepts = Validator.accepts_parsed

    def counting(self: Validator, number: int, raw: bytes, obj: Any) -> bool:
        nonlocal taken
        ok = accepts(self, number, raw, obj)
        taken += ok
        return ok

    with mock.patch.object(Validator, "accepts_parsed", counting):
        single = tmp_path / "single.jsonl"
        one_model = b"".join(generated).replace(b"gpt-4o-mini-batch", b"gpt-4o-batch")
        single.write_bytes(one_model.replace(b'"gpt-4.1"', b'"gpt-4o-batch"'))
        assert validate_file(single).ok
        assert taken == len(generated) - 1
        taken = 0
        split_file(path, tmp_path / "out", max_requests=7)
        assert taken == len(generated) - 3


def test_limits_crossed_on_the_quick_path_name_the_same_lines(
    generated: list[bytes], tmp_path: Path
) -> None:
    path = tmp_path / "one-model.jsonl"
    path.write_bytes(b"".join(generated).replace(b'"gpt-4.1"', b'"gpt-4o-batch"'))
    for name in ("azure", "vllm"):
        profile = load_profile(name)
        small = type(profile)(**{**profile.__dict__, "max_requests": 7, "max_bytes": 5000})
        quick = validate_file(path, target=small).to_dict()
        with full_checks_only():
            assert validate_file(path, target=small).to_dict() == quick
        assert {"too_many_tasks", "file_too_large"} <= set(quick["counts"])


def split_unvalidated(path: Path, out: Path, **options: Any) -> Any:
    """The manifest (less its time), every shard's bytes and the progress calls, or the
    error, of a split with no validation."""
    shutil.rmtree(out, ignore_errors=True)
    progress: list[int] = []
    try:
        result = split_file(path, out, validate=False, on_progress=progress.append, **options)
    except JsonlBatchError as exc:
        return f"{type(exc).__name__}: {exc}", progress
    manifest = json.loads(result.manifest_path.read_text())
    manifest.pop("created_at")
    shards = {p.name: p.read_bytes() for p in sorted(out.glob("*.part-*.jsonl"))}
    return manifest, shards, progress


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    seed=st.integers(0, 10**6),
    ending=st.sampled_from([b"", b"bom", b"cut", b"long"]),
    block=st.sampled_from([64, 3000, 1 << 16]),
    limits=st.sampled_from(
        [
            {"max_requests": 7},
            {"max_requests": 50, "max_bytes": 9000},
            {"max_requests": 7, "max_line_bytes": 2500},
            {"max_requests": 100_000, "max_bytes": 10**8},
        ]
    ),
)
def test_block_router_and_line_reader_split_alike(
    generated: list[bytes],
    tmp_path: Path,
    seed: int,
    ending: bytes,
    block: int,
    limits: dict[str, int],
) -> None:
    """split --no-validate reads a plain file in blocks (lines that cross blocks, long lines,
    a BOM, blank and broken lines, no final newline): same shards, manifest, errors and
    progress as the line-at-a-time reader (kept for .gz and pipes)."""
    data = _mutated(generated, seed)
    if ending == b"bom":
        data = b"\xef\xbb\xbf" + data
    elif ending == b"cut":
        data = data.rstrip(b"\n")
    elif ending == b"long":  # one line longer than a block (and than a small line cap)
        data = data.replace(b'"messages":', b'"pad":"' + b"x" * 70_000 + b'","messages":', 1)
    path = tmp_path / f"unvalidated-{seed}.jsonl"
    path.write_bytes(data)
    with mock.patch.object(split_module, "_BLOCK_BYTES", block):
        blocks = split_unvalidated(path, tmp_path / f"b{seed}", **limits)
    with mock.patch.object(split_module, "_block_readable", lambda _path: False):
        lines = split_unvalidated(path, tmp_path / f"l{seed}", **limits)
    assert blocks == lines


_ATOMS = (
    b'{"custom_id":"a%d","url":"/v1/chat/completions","body":{"model":"m1","n":1}}\n',
    b'{"custom_id":"b%d","url":"/v1/chat/completions","body":{"model":"m2"}}\n',
    b'{"custom_id":"c%d","url":"/v1/embeddings","body":{"model":"m1","input":["x","y"]}}\n',
    b'{"custom_id":"d%d","body":{"model":"m1","x":"\xc3\xa9"}}\r\n',
    b'{"custom_id":"e%d","url":"/v1/chat/completions","body":{"model":"m1","t":1e999}}\n',
    b'{"custom_id":"f%d","body":{"model":7}}\n',
    b'{"custom_id":"g%d"} {"custom_id":"h"}\n',
    b'{"custom_id":"i%d","body":{"model":"m1","x":"\xff"}}\n',
    b"\n",
    b"  \n",
    b"not json %d\n",
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10**6),
    block=st.sampled_from([16, 80, 200, 1000]),
    limits=st.sampled_from(
        [
            {"max_requests": 3},
            {"max_requests": 1},
            {"max_requests": 100, "max_bytes": 160},  # a few lines a shard, cut at the byte
            {"max_requests": 100, "max_bytes": 144},  # exactly two 'b' lines a shard
            {"max_requests": 5, "max_line_bytes": 78},  # 'a' lines exactly at the cap
        ]
    ),
    ending=st.sampled_from([b"", b"cut"]),
)
def test_whole_blocks_and_single_lines_split_alike(
    tmp_path: Path, seed: int, block: int, limits: dict[str, int], ending: bytes
) -> None:
    """Short lines of every kind the block router reads at once or hands on (mixed models and
    urls, CRLF, non-ASCII, a number too big for a double, two values on a line, blank and
    broken lines), in tiny blocks and at exactly the limits: same shards, manifest, errors and
    progress as the line-at-a-time reader."""
    rng = random.Random(seed)
    lines = []
    for index in range(rng.randint(1, 80)):
        atom = rng.choice(_ATOMS) if rng.random() < 0.1 else _ATOMS[rng.randrange(2)]
        lines.append(atom.replace(b"%d", b"%03d" % index))
    data = b"".join(lines)
    if ending == b"cut":
        data = data.rstrip(b"\n")
    path = tmp_path / "atoms.jsonl"
    path.write_bytes(data)
    with (
        mock.patch.object(split_module, "PROGRESS_EVERY_BYTES", 150),
        mock.patch.object(split_module, "_BLOCK_BYTES", block),
    ):
        blocks = split_unvalidated(path, tmp_path / "b", **limits)
    with (
        mock.patch.object(split_module, "PROGRESS_EVERY_BYTES", 150),
        mock.patch.object(split_module, "_block_readable", lambda _path: False),
    ):
        single = split_unvalidated(path, tmp_path / "l", **limits)
    assert blocks == single
