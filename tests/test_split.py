"""split: limits hold, lines are copied byte for byte, the manifest is right, all or nothing."""

from __future__ import annotations

import dataclasses
import errno
import gzip
import hashlib
import json
import os
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jsonl_batch import split as split_module
from jsonl_batch.cli import main
from jsonl_batch.errors import ConfigError, InputError, SplitError, StorageError
from jsonl_batch.formats import naming
from jsonl_batch.formats.manifest import Manifest, read_manifest
from jsonl_batch.publish import JOURNAL, sha256_file
from jsonl_batch.schemas import generate, render
from jsonl_batch.split import SplitRefused, split_file
from jsonl_batch.tokens import TokenCounter

from .conftest import ROOT, SAMPLES

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"


def request(custom_id: str, model: str = "gpt-4o-batch", url: str = CHAT, text: str = "hi") -> dict:
    if url == RESPONSES:
        body: dict = {"model": model, "input": text}
    else:
        body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    return path


def line_of(obj: dict) -> bytes:
    return orjson.dumps(obj) + b"\n"


def source_lines(path: Path) -> list[bytes]:
    """Lines split on \\n only, terminators kept (as the reader does)."""
    parts = path.read_bytes().split(b"\n")
    lines = [p + b"\n" for p in parts[:-1]]
    return [*lines, parts[-1]] if parts[-1] else lines


def route(raw: bytes, number: int) -> tuple[str, str, str]:
    text = raw[3:] if number == 1 and raw.startswith(b"\xef\xbb\xbf") else raw
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return "", "", ""
    if not isinstance(obj, dict):
        return "", "", ""
    body = obj.get("body")
    model = body.get("model") if isinstance(body, dict) else None
    return (
        model if isinstance(model, str) else "",
        obj.get("url") if isinstance(obj.get("url"), str) else "",
        obj.get("custom_id") if isinstance(obj.get("custom_id"), str) else "",
    )


def check_split(source: Path, out_dir: Path, manifest: Manifest, counter: TokenCounter | None):
    """Every promise of split, checked against the files on disk."""
    limits = manifest.limits
    on_disk = read_manifest(out_dir / f"{naming.stem(source)}.manifest.json")
    assert on_disk.model_dump() == manifest.model_dump()
    # nothing but the shards and the manifest in the output folder
    expected_names = {s.path for s in manifest.shards} | {f"{naming.stem(source)}.manifest.json"}
    assert {p.name for p in out_dir.iterdir()} == expected_names

    lines = source_lines(source)
    assert b"".join(lines) == source.read_bytes()
    assert manifest.source.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert manifest.source.bytes == source.stat().st_size
    groups: dict[tuple[str, str], list[tuple[int, bytes, str]]] = defaultdict(list)
    blank = 0
    for number, raw in enumerate(lines, start=1):
        content = raw[3:] if number == 1 and raw.startswith(b"\xef\xbb\xbf") else raw
        if not content.strip():
            blank += 1
            continue
        model, url, custom_id = route(raw, number)
        groups[(model, url)].append((number, raw, custom_id))
    assert manifest.source.blank_lines == blank
    assert manifest.source.requests == len(lines) - blank
    assert sum(s.requests for s in manifest.shards) == manifest.source.requests

    by_group: dict[tuple[str, str], list] = defaultdict(list)
    for position, shard in enumerate(manifest.shards, start=1):
        assert shard.index == position
        data = (out_dir / shard.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == shard.sha256
        assert len(data) == shard.bytes
        assert 1 <= shard.requests <= limits.max_requests
        assert shard.bytes <= limits.max_bytes
        if limits.max_tokens is not None:
            assert shard.input_tokens is not None
            assert shard.input_tokens * (1 + limits.token_margin / 100) <= limits.max_tokens
        else:
            assert shard.input_tokens is None
        by_group[(shard.model, shard.url)].append(shard)

    assert by_group.keys() == groups.keys()
    for key, shards in by_group.items():
        expected = groups[key]
        # concatenating the group's shards gives the group's input lines, in order
        assert b"".join((out_dir / s.path).read_bytes() for s in shards) == b"".join(
            raw for _n, raw, _c in expected
        )
        position = 0
        for part, shard in enumerate(shards, start=1):
            assert shard.part == part
            assert shard.path.endswith(f".part-{part:04d}.jsonl")
            members = expected[position : position + shard.requests]
            position += shard.requests
            assert (shard.first_line, shard.last_line) == (members[0][0], members[-1][0])
            assert (shard.first_custom_id, shard.last_custom_id) == (members[0][2], members[-1][2])
            if counter is not None:
                tokens = [_tokens(counter, raw, n) for n, raw, _c in members]
                assert shard.input_tokens == sum(tokens)
            # greedy: the next line of the group did not fit into this shard
            if position < len(expected):
                number, raw, _c = expected[position]
                fits = shard.requests < limits.max_requests and shard.bytes + len(raw) <= (
                    limits.max_bytes
                )
                if counter is not None and limits.token_budget is not None:
                    fits = fits and shard.input_tokens + _tokens(counter, raw, number) <= (
                        limits.token_budget
                    )
                assert not fits
        assert position == len(expected)


def _tokens(counter: TokenCounter, raw: bytes, number: int) -> int:
    text = raw[3:] if number == 1 and raw.startswith(b"\xef\xbb\xbf") else raw
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return 0
    return counter.count_line(obj).input_tokens if isinstance(obj, dict) else 0


# --- property tests -------------------------------------------------------------------------

MODELS = ["gpt-4o-batch", "gpt-4o-mini-batch", "dep/a", "dep:a"]
WORDS = st.text(alphabet="abc xyz\u00e9\u2028\u4e2d", min_size=0, max_size=120)


@st.composite
def request_files(draw: st.DrawFn) -> tuple[list[bytes], bool]:
    n = draw(st.integers(min_value=1, max_value=30))
    lines: list[bytes] = []
    for i in range(n):
        obj = request(
            f"r{i}",
            model=draw(st.sampled_from(MODELS)),
            url=draw(st.sampled_from([CHAT, RESPONSES])),
            text=draw(WORDS),
        )
        raw = line_of(obj)
        if draw(st.integers(0, 9)) == 0:
            raw = raw[:-1] + b"\r\n"
        lines.append(raw)
        if draw(st.integers(0, 9)) == 0:
            lines.append(draw(st.sampled_from([b"\n", b"  \n", b"\t\r\n"])))
    if draw(st.booleans()) and not lines[-1].isspace():
        lines[-1] = lines[-1].rstrip(b"\r\n")  # no final newline
    bom = draw(st.integers(0, 5)) == 0
    if bom:
        lines[0] = b"\xef\xbb\xbf" + lines[0]
    return lines, bom


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    files=request_files(),
    max_requests=st.integers(1, 8),
    bytes_slack=st.integers(0, 600),
    use_tokens=st.booleans(),
    token_slack=st.integers(0, 200),
    margin=st.sampled_from([0.0, 10.0, 33.3]),
    validate=st.booleans(),
)
def test_every_limit_holds_and_nothing_is_lost_duplicated_or_reordered(
    files: tuple[list[bytes], bool],
    max_requests: int,
    bytes_slack: int,
    use_tokens: bool,
    token_slack: int,
    margin: float,
    validate: bool,
) -> None:
    lines, bom = files
    counter = TokenCounter() if use_tokens else None
    max_bytes = max(len(raw) for raw in lines) + bytes_slack
    max_tokens = None
    if counter is not None:
        biggest = max(_tokens(counter, raw, n) for n, raw in enumerate(lines, start=1))
        max_tokens = int((biggest + token_slack) * (1 + margin / 100)) + 1
    tmp = Path(tempfile.mkdtemp(prefix="split-prop-"))
    try:
        source = write_lines(tmp / "in.jsonl", lines)
        out_dir = tmp / "out"
        manifest = split_file(
            source,
            out_dir,
            max_requests=max_requests,
            max_bytes=max_bytes,
            max_tokens=max_tokens,
            token_margin=margin if counter is not None else 0.0,
            validate=validate,
            force=bom,
        ).manifest
        check_split(source, out_dir, manifest, counter)
    finally:
        shutil.rmtree(tmp)


# --- library --------------------------------------------------------------------------------


def _sample_file(tmp_path: Path, n: int = 10, models: tuple[str, ...] = ("gpt-4o-batch",)) -> Path:
    objs = [request(f"r{i}", model=models[i % len(models)], text="x" * i) for i in range(n)]
    return write_lines(tmp_path / "reqs.jsonl", [line_of(o) for o in objs])


def test_defaults_come_from_the_target_profile(tmp_path: Path) -> None:
    source = _sample_file(tmp_path)
    azure = split_file(source, tmp_path / "a").manifest
    openai = split_file(source, tmp_path / "o", target="openai").manifest
    assert (azure.limits.max_requests, azure.limits.max_bytes) == (100_000, 200_000_000)
    assert (openai.limits.max_requests, openai.limits.max_bytes) == (50_000, 200_000_000)
    assert azure.target == "azure" and azure.limits.by_model is True
    assert [s.path for s in azure.shards] == ["reqs.gpt-4o-batch.part-0001.jsonl"]


def test_shards_are_named_per_model_and_the_manifest_is_complete(tmp_path: Path) -> None:
    source = _sample_file(tmp_path, 7, models=("gpt-4o-batch", "gpt-4o-mini-batch"))
    out = tmp_path / "out"
    manifest = split_file(source, out, max_requests=2).manifest
    assert [s.path for s in manifest.shards] == [
        "reqs.gpt-4o-batch.part-0001.jsonl",
        "reqs.gpt-4o-batch.part-0002.jsonl",
        "reqs.gpt-4o-mini-batch.part-0001.jsonl",
        "reqs.gpt-4o-mini-batch.part-0002.jsonl",
    ]
    first = manifest.shards[0]
    assert (first.first_custom_id, first.last_custom_id) == ("r0", "r2")
    assert (first.first_line, first.last_line) == (1, 3)
    data = json.loads((out / "reqs.manifest.json").read_text())
    assert set(data) >= {"version", "source", "target", "limits", "created_at", "shards"}
    assert data["source"]["path"] == str(source.resolve())  # not under the output folder
    assert set(data["shards"][0]) >= {
        "index", "path", "model", "url", "requests", "bytes", "input_tokens", "sha256",
        "first_custom_id", "last_custom_id", "first_line", "last_line",
    }  # fmt: skip
    check_split(source, out, manifest, None)


def test_source_path_is_relative_when_under_the_manifest_folder(tmp_path: Path) -> None:
    source = _sample_file(tmp_path)
    manifest = split_file(source, tmp_path).manifest
    assert manifest.source.path == "reqs.jsonl"
    assert read_manifest(tmp_path / "reqs.manifest.json").source_path() == source


def test_filename_safe_names_never_collide(tmp_path: Path) -> None:
    lines = [
        line_of(request("a", model="dep/a")),
        line_of(request("b", model="dep:a")),
        line_of(request("c", model="gpt-4o-batch", url=CHAT)),
        line_of(request("d", model="gpt-4o-batch", url=RESPONSES)),
    ]
    source = write_lines(tmp_path / "mixed.jsonl", lines)
    manifest = split_file(source, tmp_path / "out").manifest
    names = [s.path for s in manifest.shards]
    assert len(set(names)) == 4
    assert "mixed.gpt-4o-batch.v1-chat-completions.part-0001.jsonl" in names
    assert "mixed.gpt-4o-batch.v1-responses.part-0001.jsonl" in names
    assert all(name.startswith("mixed.dep-a") for name in names[:2])
    assert naming.safe_label("../../etc/passwd") == "etc-passwd"
    assert naming.safe_label("") == "no-model"


def test_blank_lines_are_dropped_and_counted(tmp_path: Path) -> None:
    lines = [line_of(request("a")), b"\n", b"   \n", line_of(request("b"))]
    source = write_lines(tmp_path / "b.jsonl", lines)
    manifest = split_file(source, tmp_path / "out").manifest
    assert manifest.source.blank_lines == 2
    assert manifest.shards[0].requests == 2
    assert (manifest.shards[0].first_line, manifest.shards[0].last_line) == (1, 4)
    assert (tmp_path / "out" / manifest.shards[0].path).read_bytes() == lines[0] + lines[3]


def test_gzip_input_is_split(tmp_path: Path) -> None:
    plain = _sample_file(tmp_path, 5)
    gz = tmp_path / "reqs.jsonl.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    manifest = split_file(gz, tmp_path / "out", max_requests=2).manifest
    assert [s.requests for s in manifest.shards] == [2, 2, 1]
    assert manifest.source.sha256 == hashlib.sha256(plain.read_bytes()).hexdigest()
    shards = b"".join((tmp_path / "out" / s.path).read_bytes() for s in manifest.shards)
    assert shards == plain.read_bytes()


def test_a_request_over_the_byte_limit_names_its_line(tmp_path: Path) -> None:
    lines = [line_of(request("a")), line_of(request("big", text="x" * 500))]
    source = write_lines(tmp_path / "r.jsonl", lines)
    with pytest.raises(SplitError, match=r"r\.jsonl:2: this request alone is"):
        split_file(source, tmp_path / "out", max_bytes=200)
    assert not (tmp_path / "out").exists()


def test_a_request_over_the_token_limit_names_its_line(tmp_path: Path) -> None:
    lines = [line_of(request("a")), line_of(request("b")), line_of(request("c", text="x " * 400))]
    source = write_lines(tmp_path / "r.jsonl", lines)
    (tmp_path / "out").mkdir()
    with pytest.raises(SplitError, match=r"r\.jsonl:3: .*input tokens"):
        split_file(source, tmp_path / "out", max_tokens=100, token_margin=5)
    assert list((tmp_path / "out").iterdir()) == []


def test_token_margin_shrinks_the_budget(tmp_path: Path) -> None:
    source = _sample_file(tmp_path, 20)
    plain = split_file(source, tmp_path / "a", max_tokens=100).manifest
    margin = split_file(source, tmp_path / "b", max_tokens=100, token_margin=25).manifest
    assert plain.limits.token_budget == 100 and margin.limits.token_budget == 80
    assert len(margin.shards) > len(plain.shards)
    assert sum(s.input_tokens or 0 for s in margin.shards) == sum(
        s.input_tokens or 0 for s in plain.shards
    )


def test_bad_limits_are_config_errors(tmp_path: Path) -> None:
    source = _sample_file(tmp_path)
    with pytest.raises(ConfigError):
        split_file(source, tmp_path / "o", max_requests=0)
    with pytest.raises(ConfigError, match="one model per file"):
        split_file(source, tmp_path / "o", by_model=False)
    with pytest.raises(ConfigError, match="no room"):
        split_file(source, tmp_path / "o", max_tokens=1, token_margin=200)


def test_a_file_with_errors_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(SplitRefused) as refused:
        split_file(SAMPLES / "broken.jsonl", out)
    assert refused.value.report.errors > 0
    codes = {f.code for f in refused.value.report.findings}
    assert "duplicate_custom_id" in codes
    assert not {"model_mismatch", "url_mismatch", "too_many_tasks"} & codes
    assert not out.exists()


def test_force_splits_a_broken_file_byte_for_byte(tmp_path: Path) -> None:
    source = tmp_path / "broken.jsonl"
    shutil.copy(SAMPLES / "broken.jsonl", source)
    result = split_file(source, tmp_path / "out", force=True)
    manifest = result.manifest
    assert manifest.validation is not None and manifest.validation.forced
    assert result.report is not None and result.report.errors > 0
    check_split(source, tmp_path / "out", manifest, None)
    first = manifest.shards[0]
    assert (tmp_path / "out" / first.path).read_bytes().startswith(b"\xef\xbb\xbf")


def test_mixed_models_and_urls_are_not_errors_for_split(tmp_path: Path) -> None:
    lines = [line_of(request("a")), line_of(request("b", model="other", url=RESPONSES))]
    manifest = split_file(write_lines(tmp_path / "m.jsonl", lines), tmp_path / "out").manifest
    assert manifest.validation is not None and manifest.validation.errors == 0
    assert len(manifest.shards) == 2


def test_no_validate_gives_the_same_shards(tmp_path: Path) -> None:
    source = tmp_path / "broken.jsonl"
    shutil.copy(SAMPLES / "broken.jsonl", source)
    checked = split_file(source, tmp_path / "a", force=True).manifest
    fast = split_file(source, tmp_path / "b", validate=False).manifest
    assert [s.model_dump() for s in fast.shards] == [s.model_dump() for s in checked.shards]
    assert fast.source == checked.source
    assert fast.validation is not None and not fast.validation.checked


def test_an_existing_manifest_is_kept_without_overwrite(tmp_path: Path) -> None:
    source = _sample_file(tmp_path, 6)
    out = tmp_path / "out"
    split_file(source, out, max_requests=2)
    before = (out / "reqs.manifest.json").read_bytes()
    with pytest.raises(InputError, match="already exists"):
        split_file(source, out, max_requests=3)
    assert (out / "reqs.manifest.json").read_bytes() == before
    manifest = split_file(source, out, max_requests=3, overwrite=True).manifest
    # the old third shard is gone, the new two are in place
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [s.path for s in manifest.shards] + ["reqs.manifest.json"]
    )


def test_an_existing_shard_is_not_overwritten_without_overwrite(tmp_path: Path) -> None:
    source = _sample_file(tmp_path, 3)
    out = tmp_path / "out"
    out.mkdir()
    (out / "reqs.gpt-4o-batch.part-0001.jsonl").write_bytes(b"keep me\n")
    with pytest.raises(InputError, match="already exists"):
        split_file(source, out)
    assert sorted(p.name for p in out.iterdir()) == ["reqs.gpt-4o-batch.part-0001.jsonl"]
    assert (out / "reqs.gpt-4o-batch.part-0001.jsonl").read_bytes() == b"keep me\n"


@pytest.mark.parametrize("exception", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_an_error_in_the_middle_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exception: BaseException
) -> None:
    source = _sample_file(tmp_path, 50, models=("a", "b", "c"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "unrelated.txt").write_text("mine")
    real_next_shard = split_module._ShardSet._next_shard
    calls = {"n": 0}

    def failing_next_shard(self: object, *args: object) -> object:
        calls["n"] += 1  # the 10th of about 17 shards
        if calls["n"] == 10:
            raise exception
        return real_next_shard(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(split_module._ShardSet, "_next_shard", failing_next_shard)
    with pytest.raises(type(exception)):
        split_file(source, out, max_requests=3)
    assert calls["n"] == 10
    assert [p.name for p in out.iterdir()] == ["unrelated.txt"]


def test_a_full_disk_before_the_commit_point_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _sample_file(tmp_path, 9)
    out = tmp_path / "out"
    real_replace = os.replace

    def full_at_the_journal(src: object, dst: object) -> None:
        if str(dst).endswith(JOURNAL):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", full_at_the_journal)
    with pytest.raises(StorageError, match="No space left") as caught:
        split_file(source, out, max_requests=2)
    assert str(out) in caught.value.message and "free some space" in str(caught.value.hint)
    assert not out.exists() or list(out.iterdir()) == []


def test_a_failed_rename_after_the_commit_point_is_finished_by_the_next_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _sample_file(tmp_path, 9)
    out = tmp_path / "out"
    real_replace = os.replace
    calls = {"moves": 0}

    def flaky_replace(src: object, dst: object) -> None:
        if Path(str(dst)).parent == out:
            calls["moves"] += 1
            if calls["moves"] == 3:
                raise OSError(errno.EIO, "Input/output error")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(StorageError, match="finishes publishing"):
        split_file(source, out, max_requests=2)
    monkeypatch.setattr(os, "replace", real_replace)
    manifest = read_manifest(naming.manifest_path(source, out))  # finishes the committed set
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
    for shard in manifest.shards:
        assert sha256_file(manifest.shard_path(shard)) == shard.sha256


def test_load_manifest_errors_are_clear(tmp_path: Path) -> None:
    path = tmp_path / "x.manifest.json"
    with pytest.raises(InputError, match="no such file"):
        read_manifest(path)
    path.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_manifest(path)
    path.write_text('{"version": 1}')
    with pytest.raises(InputError, match="not a split manifest"):
        read_manifest(path)
    path.write_text('{"version": 2, "shards": []}')
    with pytest.raises(InputError, match="version 2"):
        read_manifest(path)
    path.write_text('{"version": 1, "shards": [{"index": "one"}]}')
    with pytest.raises(InputError, match="invalid manifest"):
        read_manifest(path)


def test_load_manifest_resolves_paths_against_its_folder(tmp_path: Path) -> None:
    source = _sample_file(tmp_path, 4)
    split_file(source, tmp_path / "out", max_requests=2)
    manifest = read_manifest(tmp_path / "out" / "reqs.manifest.json")
    assert manifest.base_dir == tmp_path / "out"
    assert [manifest.shard_path(s).exists() for s in manifest.shards] == [True, True]
    assert manifest.source_path().resolve() == source.resolve()


def test_schema_file_matches_the_model() -> None:
    on_disk = (ROOT / "schemas" / "manifest.schema.json").read_bytes()
    assert on_disk == render(generate()["manifest"])


# --- CLI ------------------------------------------------------------------------------------


def test_cli_prints_a_table_and_writes_the_shards(tmp_path: Path) -> None:
    source = _sample_file(tmp_path, 5, models=("gpt-4o-batch", "gpt-4o-mini-batch"))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["split", str(source), "--out-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert "reqs.gpt-4o-batch.part-0001.jsonl" in result.output
    assert "5 requests -> 2 shards" in result.output
    assert (out / "reqs.manifest.json").exists()


def test_cli_json_prints_the_manifest(tmp_path: Path) -> None:
    source = _sample_file(tmp_path, 5)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["split", str(source), "-o", str(out), "--max-requests", "2", "--format", "json"],
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed == json.loads((out / "reqs.manifest.json").read_text())
    assert [s["requests"] for s in printed["shards"]] == [2, 2, 1]


def test_cli_size_units_and_tokens(tmp_path: Path) -> None:
    source = _sample_file(tmp_path, 5)
    limits = ["--max-bytes", "1KB", "--max-tokens", "1k", "--token-margin", "10"]
    result = CliRunner().invoke(main, ["split", str(source), "-o", str(tmp_path / "o"), *limits])
    assert result.exit_code == 0, result.output
    assert "tokens" in result.output.splitlines()[0]
    manifest = read_manifest(tmp_path / "o" / "reqs.manifest.json")
    assert manifest.limits.max_bytes == 1000 and manifest.limits.max_tokens == 1000


def test_cli_refuses_a_broken_file_with_exit_1_and_findings(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["split", str(SAMPLES / "broken.jsonl"), "-o", str(out)])
    assert result.exit_code == 1
    assert "error[duplicate_custom_id]" in result.output
    assert "not split, nothing written" in result.output
    assert "--force" in result.output
    assert not out.exists()


def test_cli_force_splits_and_still_reports(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["split", str(SAMPLES / "broken.jsonl"), "-o", str(out), "--force", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "FAILED" in result.output and "split anyway" in result.output
    assert (out / "broken.manifest.json").exists()


def test_cli_usage_errors_exit_2(tmp_path: Path) -> None:
    source = _sample_file(tmp_path, 2)
    runner = CliRunner()
    assert runner.invoke(main, ["split", str(source)]).exit_code == 2  # no --out-dir
    bad = runner.invoke(main, ["split", str(source), "-o", str(tmp_path), "--max-bytes", "lots"])
    assert bad.exit_code == 2 and "200MB" in bad.output
    missing = runner.invoke(main, ["split", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path)])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    a_file = runner.invoke(main, ["split", str(source), "-o", str(source)])
    assert a_file.exit_code == 2 and "is a file, not a folder" in a_file.output


def test_cli_existing_manifest_exit_1_then_overwrite(tmp_path: Path) -> None:
    source = _sample_file(tmp_path, 2)
    args = ["split", str(source), "-o", str(tmp_path / "o")]
    runner = CliRunner()
    assert runner.invoke(main, args).exit_code == 0
    same = runner.invoke(main, args)  # the very same split again: nothing to do
    assert same.exit_code == 0 and "already split with these limits" in same.output
    other = runner.invoke(main, [*args, "--max-requests", "1"])
    assert other.exit_code == 1 and "--overwrite" in other.output
    assert runner.invoke(main, [*args, "--max-requests", "1", "--overwrite"]).exit_code == 0


def test_embedding_inputs_are_capped_per_shard_for_openai(tmp_path: Path) -> None:
    def embedding(i: int, n: int) -> dict:
        body = {"model": "text-embedding-3-small", "input": [f"text {k}" for k in range(n)]}
        return {"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings", "body": body}

    source = write_lines(tmp_path / "e.jsonl", [line_of(embedding(i, 3)) for i in range(5)])
    profile = split_module.as_profile("openai")
    small_cap = dataclasses.replace(profile, max_embedding_inputs=7)
    manifest = split_file(source, tmp_path / "out", target=small_cap).manifest
    assert [s.embedding_inputs for s in manifest.shards] == [6, 6, 3]
    assert manifest.validation is not None and manifest.validation.errors == 0
    with pytest.raises(SplitError, match=r"e\.jsonl:1: .*4 embedding inputs"):
        split_file(
            write_lines(tmp_path / "e.jsonl", [line_of(embedding(0, 4))]),
            tmp_path / "out2",
            target=dataclasses.replace(profile, max_embedding_inputs=3),
        )


def test_a_file_that_changes_while_it_is_split_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest's sha256 is read on a second pass: a file that grew meanwhile is an error,
    never a manifest whose hash is not of the lines split."""
    source = _sample_file(tmp_path, 9)
    real_run = split_module._FileHash._run

    def grown_after_the_pass(self: split_module._FileHash, path: Path) -> None:
        real_run(self, path)
        self._bytes += 1  # as if a line was appended between the two reads

    monkeypatch.setattr(split_module._FileHash, "_run", grown_after_the_pass)
    with pytest.raises(InputError, match="changed while it was being split"):
        split_file(source, tmp_path / "out", max_requests=2, validate=False)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_a_failed_fsync_of_a_full_shard_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Full shards are synced while the next ones fill: an error there (reported once by the
    kernel) is a StorageError and nothing is published, not a lost error."""
    source = _sample_file(tmp_path, 9)
    out = tmp_path / "out"

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(StorageError, match="Input/output error"):
        split_file(source, out, max_requests=2)
    assert not out.exists() or list(out.iterdir()) == []
