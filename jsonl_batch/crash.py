"""A test hook: exit the process on the spot at a named step, to test what a crash leaves.

``JSONL_BATCH_CRASH_AFTER=<step>`` (or ``<step>:<n>``) makes :func:`crash_point` call
``os._exit`` at that step: no cleanup runs, as after a kill or a power cut. Tests run a real
process once per step and check that running the same command again ends as a clean run
would. Steps: the job steps in ``service.job.CRASH_STEPS``; in :mod:`jsonl_batch.publish`,
``staged`` (a set written, not committed) and ``published:<n>`` (committed, ``n`` files
moved).
"""

from __future__ import annotations

import os

CRASH_ENV = "JSONL_BATCH_CRASH_AFTER"
CRASH_EXIT_CODE = 86


def crash_point(step: str, number: int | None = None) -> None:
    """Exit the process at once when ``JSONL_BATCH_CRASH_AFTER`` names this step."""
    wanted = os.environ.get(CRASH_ENV)
    if wanted and wanted in (step, f"{step}:{number}"):
        os._exit(CRASH_EXIT_CODE)
