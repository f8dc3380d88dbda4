"""The streaming reader and the atomic writer."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jsonl_batch.errors import InputError
from jsonl_batch.jsonl import AtomicWriter, read_lines, write_jsonl


def lines_of(data: bytes) -> list:
    return list(read_lines(io.BytesIO(data)))


def test_numbers_offsets_and_raw_bytes_reassemble_the_file() -> None:
    data = b'{"a": 1}\n{"b": 2}\r\n\n{"c": 3}'
    lines = lines_of(data)
    assert [line.number for line in lines] == [1, 2, 3, 4]
    assert [line.offset for line in lines] == [0, 9, 19, 20]
    assert b"".join(line.raw for line in lines) == data
    assert lines[0].obj == {"a": 1}
    assert "crlf" in lines[1].notices
    assert "blank" in lines[2].notices
    assert "no_final_newline" in lines[3].notices


def test_splits_on_newline_only_not_on_unicode_line_separators() -> None:
    text = {"s": "a\u2028b\u2029c\x85d"}
    data = json.dumps(text, ensure_ascii=False).encode() + b"\n"
    (line,) = lines_of(data)
    assert line.obj == text


def test_bom_is_reported_and_the_line_still_parses() -> None:
    (line,) = lines_of(b'\xef\xbb\xbf{"a": 1}\n')
    assert "bom" in line.notices
    assert line.obj == {"a": 1}
    assert line.content == b'{"a": 1}'


@pytest.mark.parametrize(
    ("data", "notice"),
    [
        (b'{"a": \xff}\n', "invalid_utf8"),
        (b'{"a": NaN}\n', "non_standard_number"),
        (b'{"a": Infinity}\n', "non_standard_number"),
        (b'{"a": \n', "invalid_json"),
    ],
)
def test_bad_lines_carry_an_error_not_an_exception(data: bytes, notice: str) -> None:
    (line,) = lines_of(data)
    assert line.error
    assert notice in line.notices
    assert not line.ok


def test_non_object_and_duplicate_keys_are_noticed() -> None:
    array, dup, fine = lines_of(b'[1]\n{"a": 1, "b": {"c": 1, "c": 2}}\n{"a": "x\\":y"}\n')
    assert "not_an_object" in array.notices
    assert "duplicate_key:c" in dup.notices
    assert not any(n.startswith("duplicate_key") for n in fine.notices)


def test_reads_gzip_and_stdin_like_streams(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl.gz"
    with gzip.open(path, "wb") as f:
        f.write(b'{"a": 1}\n{"a": 2}\n')
    assert [line.obj["a"] for line in read_lines(path)] == [1, 2]


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        list(read_lines(tmp_path / "nope.jsonl"))


def test_truncated_gzip_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n' * 1000)[:60])
    with pytest.raises(InputError, match="truncated"):
        list(read_lines(path))


def test_writer_replaces_the_target_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_bytes(b"old\n")
    with pytest.raises(RuntimeError), AtomicWriter(target) as writer:
        writer.write({"a": 1})
        raise RuntimeError("crash in the middle")
    assert target.read_bytes() == b"old\n"
    assert list(tmp_path.iterdir()) == [target], "no temp file left behind"
    write_jsonl(target, [{"a": 1}, {"b": "é"}])
    assert target.read_bytes() == b'{"a":1}\n{"b":"\xc3\xa9"}\n'


def test_writer_refuses_to_overwrite_when_asked(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_bytes(b"x\n")
    with pytest.raises(InputError, match="already exists"):
        AtomicWriter(target, overwrite=False)


def test_writer_gzips_gz_targets(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl.gz"
    write_jsonl(target, [{"a": 1}])
    assert gzip.decompress(target.read_bytes()) == b'{"a":1}\n'


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
requests = st.fixed_dictionaries(
    {
        "custom_id": st.text(min_size=1, max_size=40),
        "method": st.just("POST"),
        "url": st.sampled_from(["/v1/chat/completions", "/v1/responses", "/v1/embeddings"]),
        "body": st.dictionaries(st.text(max_size=10), json_values, max_size=5),
    }
)


@settings(max_examples=150, deadline=None)
@given(st.lists(requests, max_size=20))
def test_round_trip_of_any_valid_request(tmp_path_factory, objects: list[dict]) -> None:
    path = tmp_path_factory.mktemp("rt") / "r.jsonl"
    write_jsonl(path, objects)
    lines = list(read_lines(path))
    assert [line.obj for line in lines] == objects
    assert all(line.ok and not line.notices for line in lines)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_reader_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    lines = lines_of(data)
    assert b"".join(line.raw for line in lines) == data
