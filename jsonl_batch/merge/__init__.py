"""Join a finished batch's output and error files back to its input requests.

The service writes results in any order, split over an output file (successes) and an error
file (failures), and sometimes not at all (expired, cancelled, all-failed batches). A user
needs one row per *input* request, in input order, with a status, plus a retry file.

Two passes, memory bounded by the number of custom_ids (``index``): pass 1 reads every
output/error line once and keeps only where it is; pass 2 (``join``) streams the requests in
order, reads each one's output line back with one pread and writes its row. On Linux, big
files are cut in parts for forked workers in both passes (``parallel``); the results are
byte-identical to a one-process run.

The results, the retry file and the summary (``<stem>.merge.json``, which names the other
two with their sha256) are published as one set (:mod:`jsonl_batch.publish`): a kill or a
full disk never leaves a results file and a retry file from different runs, and every
temporary file lives in the set's staging folder, removed by the next run.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import MergeError
from ..formats import naming
from ..formats.output_lines import Outcome, classify
from ..formats.response_body import embedding_of, text_of, usage_of
from ..jsonl import DEFAULT_MAX_LINE_BYTES, AtomicWriter, atomic_write_json
from ..profiles import Profile, as_profile
from ..publish import FileSet, describe
from .index import ResultFiles
from .join import Join, Options, shard_ranges
from .parallel import default_workers, index_result_files, input_spans, run_parallel
from .plan import MergePlan, ShardRef, plan_merge, retry_selector
from .read import read_results
from .summary import (
    CANCELLED,
    DEFAULT_MEMORY_MB,
    DEFAULT_RETRY_ON,
    EXPIRED,
    FAILED,
    MISSING,
    RESULTS_FORMATS,
    STATUSES,
    SUCCEEDED,
    Cost,
    ErrorStat,
    GroupSummary,
    MergeResult,
    ModelSummary,
    Problem,
    Problems,
    Usage,
    load_pricing,
)

if TYPE_CHECKING:
    from ..pricing import PriceTable


def merge(
    path: str | os.PathLike[str],
    outputs: Sequence[str | os.PathLike[str]] = (),
    errors: Sequence[str | os.PathLike[str]] = (),
    *,
    out_dir: str | os.PathLike[str] | None = None,
    results_format: str = "full",
    include_request: bool = False,
    retry_on: Sequence[str] = DEFAULT_RETRY_ON,
    deployment_map: Mapping[str, str] | None = None,
    prices: PriceTable | str | os.PathLike[str] | None = None,
    estimate: bool = False,
    target: Profile | str = "azure",
    region: str = "global",
    memory_mb: float = DEFAULT_MEMORY_MB,
    jobs: int | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    on_progress: Callable[[int], None] | None = None,
) -> MergeResult:
    """Join outputs and errors to the input requests; write results and a retry file.

    ``path`` is a job file (``*.job.json``), a split manifest (``*.manifest.json``) or
    the request file itself. Writes ``<stem>.results.jsonl`` (``.results.csv`` for
    ``results_format="csv"``) and ``<stem>.retry.jsonl`` next to the input or in
    ``out_dir``, replacing earlier ones (they are derived files; a results file of the other
    suffix is removed, so one merge leaves one results file). ``prices`` is a
    ``PriceTable``, a path to a price file, or None for the bundled table; ``target`` and
    ``region`` choose the price row as in ``estimate``. ``estimate`` counts the input tokens
    of every request that came back with usage, to put an estimate next to the actual cost.
    ``jobs`` processes share both passes (default: ``default_workers``; 1 = no fork). Lines
    longer than ``max_line_bytes`` are skipped and reported.
    """
    if results_format not in RESULTS_FORMATS:
        raise MergeError(
            f"unknown results format {results_format!r}",
            hint="use one of " + ", ".join(RESULTS_FORMATS),
        )
    profile = as_profile(target)
    options = Options(
        results_format=results_format,
        include_request=include_request,
        should_retry=retry_selector(retry_on),
        deployment_map=dict(deployment_map or {}),
        pricing=load_pricing(prices, profile.name, region, estimate, priced=profile.priced),
        max_line_bytes=max_line_bytes,
    )
    plan = plan_merge(path, outputs, errors)
    if not profile.priced:
        plan.notes.append(f"target {profile.name!r} has no batch prices: costs are left out")
    target_dir = Path(out_dir) if out_dir is not None else plan.stem_path.parent
    results_path = naming.results_path(plan.stem_path, target_dir, results_format)
    retry_path = naming.retry_path(plan.stem_path, target_dir)
    summary_path = naming.merge_summary_path(plan.stem_path, target_dir)
    problems = Problems()
    progress = on_progress or (lambda _n: None)
    with FileSet(target_dir, naming.merge_set(plan.stem_path)) as files:
        found = ResultFiles(
            plan,
            problems,
            memory_mb=memory_mb,
            spill_dir=files.staging,
            on_progress=progress,
            max_line_bytes=max_line_bytes,
        )
        staged_results = files.path(results_path.name)
        try:
            result, digests = _join(
                plan, found, problems, options, jobs, progress, staged_results, target_dir
            )
        finally:
            found.close()
        staged_retry = files.path(retry_path.name) if result.retry_count else None
        result.results_path = files.publish(results_path.name)
        for stale in naming.results_paths(plan.stem_path, target_dir):
            if stale != results_path:
                files.remove(stale.name)  # one merge, one results file: never an older format
        if staged_retry is None:
            files.remove(retry_path.name)  # no stale retry file from an earlier merge
        else:
            result.retry_path = files.publish(retry_path.name)
        result.summary_path = summary_path
        marker = result.to_dict()
        marker["files"] = describe(
            {"results": staged_results, "retry": staged_retry}, known=digests
        )
        atomic_write_json(files.path(summary_path.name), marker)
        files.publish(summary_path.name)
        files.commit()
    return result


def _join(
    plan: MergePlan,
    found: ResultFiles,
    problems: Problems,
    options: Options,
    workers: int | None,
    progress: Callable[[int], None],
    results_path: Path,
    target_dir: Path,
) -> tuple[MergeResult, dict[str, str | None]]:
    """Both passes, writing the results and the retry file into the staging folder that
    ``results_path`` is in (errors name them in ``target_dir``); also their sha256."""
    # Millions of short-lived, acyclic objects: the cyclic garbage collector would scan the
    # big index again and again for nothing. Reference counting frees everything.
    collecting = gc.isenabled()
    gc.disable()
    try:
        ranges = shard_ranges(plan)
        if plan.shards and plan.source is not None and ranges is None:
            found.index_membership(plan)
        if workers is None:
            size = plan.source.stat().st_size if plan.source and plan.source.is_file() else 0
            workers = default_workers(size)
        # Forking a process that runs other threads can deadlock them: stay serial then.
        if threading.active_count() > 1:
            workers = 1
        index_result_files(found, workers)

        def make_join(
            own_problems: Problems | None = None, own_progress: Callable[[int], None] | None = None
        ) -> Join:
            return Join(
                plan, found, own_problems or problems, options, ranges, own_progress or progress
            )

        spans = None
        if workers > 1 and plan.source is not None and not found.index.spilled:
            spans = input_spans(plan.source, workers)
        retry_path = results_path.with_name(naming.retry_path(plan.stem_path, ".").name)
        with (
            AtomicWriter(results_path, shown_as=target_dir / results_path.name) as results,
            AtomicWriter(retry_path, shown_as=target_dir / retry_path.name) as retry,
        ):
            if spans is None:
                join = make_join()
                join.run(results, retry)
            else:
                join = run_parallel(make_join, spans, results, retry)
            if join.retry_count == 0:
                retry.abort()
        digests = {"results": results.sha256, "retry": retry.sha256}
        return join.finish(results_path, retry_path), digests
    finally:
        if collecting:
            gc.enable()


__all__ = [
    "CANCELLED",
    "DEFAULT_MEMORY_MB",
    "EXPIRED",
    "FAILED",
    "MISSING",
    "RESULTS_FORMATS",
    "STATUSES",
    "SUCCEEDED",
    "Cost",
    "ErrorStat",
    "GroupSummary",
    "MergePlan",
    "MergeResult",
    "ModelSummary",
    "Outcome",
    "Problem",
    "ShardRef",
    "Usage",
    "classify",
    "default_workers",
    "embedding_of",
    "merge",
    "plan_merge",
    "read_results",
    "retry_selector",
    "text_of",
    "usage_of",
]
