"""``python -m jsonl_batch`` runs the CLI."""

from .cli import main

main()
