"""The request-file builder."""

from __future__ import annotations

from pathlib import Path

import pytest

from jsonl_batch.build import BuildError, RequestFileBuilder
from jsonl_batch.jsonl import read_lines
from jsonl_batch.validate import validate_file


def test_builds_a_file_the_validator_accepts(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    with RequestFileBuilder(path, model="gpt-4o-batch") as build:
        first = build.add_chat([{"role": "user", "content": "Hello"}], max_tokens=50)
        build.add_chat([{"role": "user", "content": "Bye"}], custom_id="bye")
    assert first == "request-1"
    lines = [line.obj for line in read_lines(path)]
    assert lines[0] == {
        "custom_id": "request-1",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": "gpt-4o-batch",
            "messages": [{"role": "user", "content": "Hello"}],
            "max_tokens": 50,
        },
    }
    assert lines[1]["custom_id"] == "bye"
    assert validate_file(path).ok


def test_responses_and_embeddings_use_the_target_url(tmp_path: Path) -> None:
    with RequestFileBuilder(tmp_path / "r.jsonl", model="gpt-4.1-batch") as build:
        build.add_response("Hi", instructions="Be brief")
    (line,) = read_lines(tmp_path / "r.jsonl")
    assert line.obj["url"] == "/v1/responses"
    assert line.obj["body"]["instructions"] == "Be brief"

    with RequestFileBuilder(tmp_path / "e.jsonl", target="openai") as build:
        build.add_embedding(["a", "b"], model="text-embedding-3-small")
    (line,) = read_lines(tmp_path / "e.jsonl")
    assert line.obj["url"] == "/v1/embeddings"
    assert validate_file(tmp_path / "e.jsonl", target="openai").ok


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda b: b.add_embedding("x"), "no batch endpoint for 'embeddings'"),
        (lambda b: b.add_chat([{"role": "robot", "content": "x"}]), "invalid chat/completions"),
        (lambda b: b.add_chat([{"role": "user", "content": "x"}], stream=True), "stream"),
        (lambda b: b.add_chat([{"role": "user", "content": "x"}], model="other"), "differs"),
        (
            lambda b: b.add_chat([{"role": "user", "content": "x"}], custom_id="request-1"),
            "already in this file",
        ),
        (lambda b: b.add_response("x"), "one endpoint per file"),
    ],
)
def test_bad_requests_are_refused_before_they_are_written(
    tmp_path: Path, call, message: str
) -> None:
    path = tmp_path / "f.jsonl"
    with RequestFileBuilder(path, model="gpt-4o-batch") as build:
        build.add_chat([{"role": "user", "content": "ok"}])
        with pytest.raises(BuildError, match=message):
            call(build)
    assert len(list(read_lines(path))) == 1


def test_an_exception_leaves_no_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text("previous\n")
    with pytest.raises(RuntimeError), RequestFileBuilder(path, model="m") as build:
        build.add_chat([{"role": "user", "content": "ok"}])
        raise RuntimeError("boom")
    assert path.read_text() == "previous\n"
    assert list(tmp_path.iterdir()) == [path]


def test_an_empty_builder_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="no requests"), RequestFileBuilder(tmp_path / "f.jsonl"):
        pass
    assert not (tmp_path / "f.jsonl").exists()
