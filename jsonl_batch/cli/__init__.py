"""The ``jsonl-batch`` command line: thin wrappers that parse options, call the library
and format its results.

Commands are imported only when they run, so ``jsonl-batch validate`` (the pre-commit hook)
does not pay for the tokenizer or the HTTP client.
"""

from __future__ import annotations

import importlib

import click

from .._version import __version__

# command name → "module:attribute" under jsonl_batch.cli, in the order of the trip
COMMANDS: dict[str, str] = {
    "validate": "validate:validate",
    "estimate": "estimate:estimate",
    "split": "split:split",
    "submit": "jobs:submit",
    "recover": "jobs:recover",
    "status": "jobs:status",
    "wait": "jobs:wait",
    "cancel": "jobs:cancel",
    "list": "jobs:list_batches",
    "download": "jobs:download",
    "merge": "merge:merge_command",
    "report": "report:report",
    "emulator": "emulator:emulator",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        module = importlib.import_module(f"{__name__}.{module_name}")
        command: click.Command = getattr(module, attribute)
        return command


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="jsonl-batch")
def main() -> None:
    """Build, validate, estimate, split, submit and merge OpenAI / Azure OpenAI Batch API
    JSONL files.

    \b
    A typical trip:
      jsonl-batch validate requests.jsonl
      jsonl-batch estimate requests.jsonl --deployment-map gpt-4o-batch=gpt-4o
      jsonl-batch submit requests.jsonl --deployment gpt-4o-batch   # splits, uploads, creates
      jsonl-batch wait requests.job.json                            # polls and downloads
      jsonl-batch merge requests.job.json                           # results + retry file

    Exit codes: 0 ok, 1 problems found (or a service/input error), 2 usage error.
    """
