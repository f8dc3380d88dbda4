"""The ``jsonl-batch`` command line: thin wrappers that parse options, call the library
and format its results."""

from __future__ import annotations

import click

from .._version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="jsonl-batch")
def main() -> None:
    """Build, validate, estimate, split, submit and merge OpenAI / Azure OpenAI Batch API
    JSONL files.

    Exit codes: 0 ok, 1 problems found (or a service/input error), 2 usage error.
    """


from .validate import validate  # noqa: E402

main.add_command(validate)
