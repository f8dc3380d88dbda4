"""The library as a user of the openai SDK meets it: one import, one call to connect, an SDK
client handed over, one vocabulary across the steps, hints in library terms."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import openai
import pytest

import jsonl_batch
from jsonl_batch import Job, connect, read_job_file, read_results
from jsonl_batch.cli import COMMANDS
from jsonl_batch.cli._common import cli_terms

from .conftest import ROOT, SAMPLES


def test_every_public_name_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Library") :]
    section = section[: section.index("\n## ", 1)]
    missing = [
        name for name in jsonl_batch.__all__ if name != "__version__" and f"`{name}" not in section
    ]
    assert not missing, f"not in the README's Library section: {missing}"


def test_the_steps_share_one_vocabulary() -> None:
    steps = [
        jsonl_batch.validate_file,
        jsonl_batch.estimate_file,
        jsonl_batch.split_file,
        jsonl_batch.merge,
        jsonl_batch.read_results,
    ]
    for step in steps:
        parameters = inspect.signature(step).parameters
        assert next(iter(parameters)) == "path", step.__name__
        for name in ("target", "deployment_map", "max_line_bytes"):
            assert name in parameters, f"{step.__name__} has no {name}"
        assert "Profile | str" in str(parameters["target"].annotation), step.__name__
    for step in (jsonl_batch.estimate_file, jsonl_batch.merge):
        assert "jobs" in inspect.signature(step).parameters


def test_validate_file_checks_token_limits_through_a_deployment_map() -> None:
    path = SAMPLES / "azure-chat.jsonl"
    unmapped = jsonl_batch.validate_file(path, tokens=True)
    assert [f.code for f in unmapped.findings] == ["no_price"]
    assert 'deployment_map={"gpt-4o-batch": ' in unmapped.findings[0].message
    mapped = jsonl_batch.validate_file(path, tokens=True, deployment_map={"gpt-4o-batch": "gpt-4o"})
    assert mapped.ok and not mapped.findings


# Flags of other programs that library hints may name.
_FOREIGN_FLAGS = {"--force-reinstall"}
_COMMAND = re.compile(r"jsonl-batch (?:" + "|".join(COMMANDS) + r")\b")


def _messages(path: Path) -> list[tuple[int, str]]:
    """String constants of a module that are not docstrings."""
    tree = ast.parse(path.read_text("utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_library_messages_name_parameters_not_flags() -> None:
    package = Path(jsonl_batch.__file__).parent
    found = []
    for path in package.rglob("*.py"):
        if "cli" in path.relative_to(package).parts:
            continue
        for line, text in _messages(path):
            flags = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", text)) - _FOREIGN_FLAGS
            if flags or _COMMAND.search(text):
                found.append(f"{path.relative_to(package)}:{line}: {text!r}")
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    ("library", "cli"),
    [
        ("pass overwrite=True to replace it", "pass --overwrite to replace it"),
        ("choose another out_dir", "choose another --output"),
        ("raise max_line_bytes", "raise --max-line-bytes"),
        ('deployment_map={"dep": "gpt-4o"}', "--deployment-map dep=gpt-4o"),
        (
            "pass outputs=[FILE] and/or errors=[FILE]",
            "pass --output-file FILE and/or --error-file FILE",
        ),
        ("pass job_path=NEW.job.json", "pass --job NEW.job.json"),
        ("split the file (split_file)", "split the file (`jsonl-batch split`)"),
        # words that are only parameters with "=", and fields that only look like them
        ("the prices of errors; force it", "the prices of errors; force it"),
        ("lower body.max_tokens", "lower body.max_tokens"),
    ],
)
def test_the_cli_shows_flags_where_the_library_names_parameters(library: str, cli: str) -> None:
    assert cli_terms(library) == cli


def test_submit_with_an_sdk_client_and_read_the_results(
    emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AZURE_OPENAI_ENDPOINT", "AZURE_API_BASE", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    source = tmp_path / "chat.jsonl"
    source.write_bytes((SAMPLES / "azure-chat.jsonl").read_bytes())
    client = openai.AzureOpenAI(
        azure_endpoint=emulator.base_url, api_key=emulator.api_key, api_version="2024-10-21"
    )
    job = Job.submit(source, client)
    assert job.connection.client is client  # used as it is: its key, retries, HTTP client
    saved = read_job_file(job.path).connection
    assert (saved.kind, saved.endpoint, saved.api_version) == (
        "azure",
        emulator.base_url.rstrip("/"),
        "2024-10-21",
    )
    assert emulator.api_key not in job.path.read_text()

    # later, elsewhere: the job file names the endpoint, the environment has the key
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", emulator.api_key)
    later = Job.load(job.path)
    assert later.wait(poll_interval=0.05, timeout=60)
    result = jsonl_batch.merge(job.path)
    rows = list(read_results(result.results_path))
    assert len(rows) == 5 and all(row.succeeded and row.text and row.usage for row in rows)
    # the emulator answers with the deployment's name: priced once it is mapped to its model
    assert {row.model for row in rows} == {"gpt-4o-batch"}
    assert all(row.cost_usd is None for row in rows)
    priced = read_results(result.results_path, deployment_map={"gpt-4o-batch": "gpt-4o"})
    assert all(row.cost_usd for row in priced)


def test_connect_from_arguments_the_environment_or_a_client(
    emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AZURE_OPENAI_ENDPOINT", "AZURE_API_BASE", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    by_arguments = connect(emulator.base_url, api_key=emulator.api_key)
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", emulator.base_url)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", emulator.api_key)
    from_environment = connect()
    v1 = openai.OpenAI(base_url=f"{emulator.base_url}/openai/v1", api_key=emulator.api_key)
    from_client = connect(client=v1)
    assert from_client.settings.target == "litellm"  # a plain base URL: OpenAI-compatible
    for connection in (by_arguments, from_environment, from_client):
        page = connection.call("listing batches", connection.client.batches.list, limit=1)
        assert page.data == []
    with pytest.raises(jsonl_batch.ServiceError, match="refused the credentials"):
        bad = connect(emulator.base_url, api_key="wrong", max_retries=0)
        bad.call("listing batches", bad.client.batches.list)
