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
        kind = rng.randrange(16)
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
