"""A batch job's report: one self-contained HTML file (inline SVG and tables, no script, no
network) that shows where the money goes, how each shard went and which errors came back.

:func:`find_sources` works out what to read from a job file, a split manifest, a request
file or a merge summary; :func:`build_report` streams the requests through the estimate
(token histogram, the costliest requests, cost per model and shard) and adds the merge
summary (actual cost, statuses, error codes) and the job file (the shards' timeline);
:func:`write_report` renders it (:mod:`.html`). Memory stays fixed whatever the number of
requests (:mod:`.collect`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..estimate import estimate_file
from ..formats import naming
from ..jsonl import DEFAULT_MAX_LINE_BYTES, atomic_write_bytes, read_json
from ..pricing import TARGETS as PRICED_TARGETS
from ..pricing import PriceTable
from .collect import Report, ReportBuilder
from .html import render_html


@dataclass(slots=True)
class ReportSources:
    """What a report reads: request files to estimate (with the shard or file each is), a
    merge summary and a job file, each only where it exists."""

    path: Path
    kind: str  # "job", "manifest", "requests" or "merge"
    files: list[tuple[str, Path]] = field(default_factory=list)  # (row name, request file)
    merge_summary: Path | None = None
    job: Any = None  # JobFile
    job_path: Path | None = None
    manifest_path: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def group_kind(self) -> str:
        return "shard" if self.kind in ("job", "manifest") and self.files else "file"

    @property
    def total_bytes(self) -> int:
        """Bytes the estimate reads (for a progress bar)."""
        return sum(path.stat().st_size for _, path in self.files if path.is_file())


def find_sources(
    path: str | os.PathLike[str], *, merge_summary: str | os.PathLike[str] | None = None
) -> ReportSources:
    """What to read for a report on ``path``: a job file (``*.job.json``), a split manifest,
    a request file or a merge summary (``*.merge.json``, with the job file or manifest of
    the same stem next to it when there is one). The merge summary is ``merge_summary`` or,
    when it exists, ``<stem>.merge.json`` next to ``path`` (where merge writes it)."""
    given = Path(path)
    if not given.exists():
        raise InputError(
            f"{given}: no such file",
            hint="pass a job file (*.job.json), a manifest, a request file or a *.merge.json",
        )
    if given.name.endswith(naming.MERGE_SUMMARY_SUFFIX):
        merge_summary = merge_summary or given
        stem = naming.stem(given.name[: -len(naming.MERGE_SUMMARY_SUFFIX)])
        for suffix in (naming.JOB_SUFFIX, naming.MANIFEST_SUFFIX):
            sibling = given.with_name(stem + suffix)
            if sibling.exists():
                given = sibling
                break
    summary = Path(merge_summary) if merge_summary is not None else None
    if summary is None:
        sibling = naming.merge_summary_path(given, given.parent)
        summary = sibling if sibling.exists() else None
    if given.name.endswith(naming.MERGE_SUMMARY_SUFFIX):
        sources = ReportSources(given, "merge", merge_summary=summary)
        sources.notes.append(
            "no request file next to the merge summary: no estimate, histogram or costliest"
            " requests (pass the job file, manifest or request file instead)"
        )
        return sources
    if given.name.endswith(naming.JOB_SUFFIX):
        sources = _job_sources(given)
    elif given.name.endswith(naming.MANIFEST_SUFFIX):
        sources = _manifest_sources(given)
    else:
        sources = ReportSources(given, "requests", files=[(str(given), given)])
    sources.merge_summary = summary
    return sources


def _job_sources(path: Path) -> ReportSources:
    from ..formats.jobfile import read_job_file

    job = read_job_file(path)
    base = path.parent
    sources = ReportSources(path, "job", job=job, job_path=path)
    manifest = None
    if job.manifest is not None and (base / job.manifest).is_file():
        sources.manifest_path = base / job.manifest
        manifest = _read_manifest(sources.manifest_path)
    shards = sorted(job.shards, key=lambda shard: shard.index)
    files = [(f"shard {shard.index}", base / shard.path) for shard in shards]
    if files and all(file.is_file() for _, file in files):
        sources.files = files
    elif job.source is not None:
        _fall_back_to_source(sources, base / job.source)
    else:
        _fall_back_to_source(sources, manifest.source_path() if manifest else None)
    return sources


def _manifest_sources(path: Path) -> ReportSources:
    manifest = _read_manifest(path)
    sources = ReportSources(path, "manifest", manifest_path=path)
    shards = sorted(manifest.shards, key=lambda shard: shard.index)
    files = [(f"shard {shard.index}", manifest.shard_path(shard)) for shard in shards]
    if files and all(file.is_file() for _, file in files):
        sources.files = files
    else:
        _fall_back_to_source(sources, manifest.source_path())
    return sources


def _read_manifest(path: Path) -> Any:
    from ..formats.manifest import read_manifest

    return read_manifest(path)


def _fall_back_to_source(sources: ReportSources, source: Path | None) -> None:
    if source is not None and source.is_file():
        sources.files = [(str(source), source)]
        sources.notes.append(
            f"shard files missing: the estimate covers the request file {source}, not each shard"
        )
    else:
        sources.notes.append(
            "neither the shard files nor the request file are there: no estimate, histogram"
            " or costliest requests"
        )


def read_merge_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A ``<stem>.merge.json``; a clear error when the file is something else."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("counts"), dict):
        raise InputError(
            f"{path}: not a merge summary",
            hint="pass the <stem>.merge.json that merge wrote",
        )
    return data


def build_report(
    sources: ReportSources,
    *,
    merge: Mapping[str, Any] | None = None,
    estimate: bool = True,
    prices: PriceTable | str | Path | None = None,
    deployment_map: Mapping[str, str] | None = None,
    target: str | None = None,
    region: str = "global",
    expected_output_tokens: int | None = None,
    output_ratio: float | None = None,
    cached_fraction: float = 0.0,
    jobs: int | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    on_progress: Callable[[int], None] | None = None,
    now: float | None = None,
) -> Report:
    """Collect the report of ``sources`` in one streaming pass over its request files.

    ``merge`` is a merge summary already in hand (``MergeResult.to_dict()``); otherwise the
    one in ``sources`` is read. ``estimate=False`` skips counting tokens (no estimate,
    histogram or costliest requests, but quick). ``target`` defaults to the job's, else
    ``azure``. The other options are ``estimate_file``'s.
    """
    job = sources.job
    target = target or (job.target if job is not None else None) or "azure"
    priced = target in PRICED_TARGETS
    builder = ReportBuilder(
        f"Batch report: {naming.stem(sources.path)}",
        group_kind=sources.group_kind,
        now=now,
    )
    for what, where in (
        ("job file", sources.job_path),
        ("split manifest", sources.manifest_path),
    ):
        if where is not None:
            builder.add_input(what, str(where))
    if sources.files:
        first = sources.files[0][1]
        total = sources.total_bytes
        shown = str(first) if len(sources.files) == 1 else f"{len(sources.files)} shard files"
        builder.add_input("requests", f"{shown} ({total:,} bytes)")
    if not priced and estimate and sources.files:
        builder.note(f"target {target} has no prices: no estimate, histogram or costliest requests")
    if priced and estimate and sources.files:
        table = prices if isinstance(prices, PriceTable) else PriceTable.load(prices)
        builder.report.prices = table.describe()
        for name, path in sources.files:
            builder.reading(path.name)
            result = estimate_file(
                path,
                prices=table,
                deployment_map=deployment_map,
                target=target,
                region=region,
                expected_output_tokens=expected_output_tokens,
                output_ratio=output_ratio,
                cached_fraction=cached_fraction,
                jobs=jobs,
                max_line_bytes=max_line_bytes,
                on_progress=on_progress,
                on_request=builder.request,
            )
            builder.add_estimate(result, name)
        builder.add_deployment_map(deployment_map)
    elif sources.files and not estimate:
        builder.note("estimate skipped: no token counts, histogram or costliest requests")
    for text in sources.notes:
        builder.note(text)
    if job is not None:
        builder.add_job(job)
    if merge is None and sources.merge_summary is not None:
        merge = read_merge_summary(sources.merge_summary)
    if merge is not None:
        if sources.merge_summary is not None:
            builder.add_input("merge summary", str(sources.merge_summary))
        if merge.get("results"):
            builder.add_input("merge results", str(merge["results"]))
        builder.add_merge(merge)
    return builder.build()


def write_report(report: Report, path: str | os.PathLike[str]) -> int:
    """Render the report to ``path`` (atomically); returns its size in bytes."""
    data = render_html(report).encode("utf-8")
    atomic_write_bytes(path, data)
    return len(data)


__all__ = [
    "Report",
    "ReportBuilder",
    "ReportSources",
    "build_report",
    "find_sources",
    "read_merge_summary",
    "write_report",
]
