"""The names of every file jsonl-batch writes, derived from the input file's stem.

One rule turns an input path into a stem (``data/requests.jsonl.gz`` → ``requests``); every
file a step writes is named from it, so ``split``, ``submit`` and ``merge`` find each
other's files without being told:

==========================  ===================================================
``<stem>.manifest.json``    the split manifest (in the split's output folder)
``<stem>.<label>.part-NNNN.jsonl``  a shard (same folder)
``<stem>.job.json``         the job file, next to the request file or manifest
``<stem>.split/``           where ``submit`` splits a plain request file
``<stem>.shards/``          shard copies with ``body.model`` set per deployment
``<stem>.downloads/``       output and error files ``wait``/``download`` fetch
``<stem>.results.jsonl``    merge's rows (``.results.csv`` for CSV)
``<stem>.retry.jsonl``      merge's requests to send again
``<stem>.merge.json``       merge's summary: names the results and retry files it wrote
``<stem>.report.html``      the report (``report``, ``merge --report``)
==========================  ===================================================

Files written together (a split's shards and manifest, a merge's results, retry file and
summary, a shard's downloads) are a *set*, published at once by :mod:`jsonl_batch.publish`
from a hidden staging folder named after the set (``.<set>.publish-*``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

MANIFEST_SUFFIX = ".manifest.json"
JOB_SUFFIX = ".job.json"
RESULTS_SUFFIXES = {"csv": ".results.csv"}  # results format → suffix; default below
DEFAULT_RESULTS_SUFFIX = ".results.jsonl"
RETRY_SUFFIX = ".retry.jsonl"
MERGE_SUMMARY_SUFFIX = ".merge.json"
REPORT_SUFFIX = ".report.html"
# What a stem leaves out: a compression suffix, then one of these.
_COMPRESSION = ".gz"
_SUFFIXES = (JOB_SUFFIX, MANIFEST_SUFFIX, ".jsonl", ".ndjson", ".json", ".txt")
_MAX_LABEL_CHARS = 80
# Hidden working folders and files, prefixed so a reader can tell them from results.
MERGE_TEMP_PREFIX = ".jsonl-batch-merge-"

PathLike = str | os.PathLike[str]


def stem(path: PathLike) -> str:
    """``data/requests.jsonl.gz`` → ``requests``; ``x.manifest.json`` and ``x.job.json`` → ``x``."""
    name = Path(path).name
    if name.endswith(_COMPRESSION) and len(name) > len(_COMPRESSION):
        name = name[: -len(_COMPRESSION)]
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def safe_label(text: str) -> str:
    """A model or deployment name made safe for a file name: ``my/dep:1`` → ``my-dep-1``."""
    label = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-")[:_MAX_LABEL_CHARS]
    return label.strip(".-") or "no-model"


# --- split ------------------------------------------------------------------------------


def manifest_path(source: PathLike, out_dir: PathLike) -> Path:
    """Where ``split`` writes the manifest of ``source``."""
    return Path(out_dir) / f"{stem(source)}{MANIFEST_SUFFIX}"


def shard_name(source_stem: str, label: str, part: int) -> str:
    """A shard's file name, relative to the manifest's folder."""
    return f"{source_stem}.{label}.part-{part:04d}.jsonl"


def split_set(source_stem: str) -> str:
    """The name of the set a split publishes (shards + manifest) in its output folder."""
    return f"{source_stem}.split"


# --- submit and download ---------------------------------------------------------------


def job_path(input_path: PathLike) -> Path:
    """``data.jsonl`` / ``data.manifest.json`` → ``data.job.json`` next to it."""
    path = Path(input_path)
    return path.with_name(stem(path) + JOB_SUFFIX)


def split_dir(job: PathLike) -> Path:
    """Where ``submit`` splits a plain request file: ``<stem>.split/`` next to the job file."""
    path = Path(job)
    return path.parent / f"{stem(path)}.split"


def deployment_copy_path(job: PathLike, shard_index: int, deployment: str) -> Path:
    """A shard's copy with ``body.model`` rewritten for one deployment."""
    path = Path(job)
    name = stem(path)
    return (
        path.parent / f"{name}.shards" / f"{name}.{shard_index:04d}.{safe_label(deployment)}.jsonl"
    )


def download_path(job: PathLike, shard_index: int, kind: str) -> Path:
    """Where a shard's ``output`` or ``error`` file is downloaded."""
    path = Path(job)
    name = stem(path)
    return path.parent / f"{name}.downloads" / f"{name}.{shard_index:04d}.{kind}.jsonl"


def download_set(job: PathLike, shard_index: int) -> str:
    """The name of the set a shard's downloads are published as (output + error file)."""
    return f"{stem(job)}.{shard_index:04d}.download"


UPLOAD_PREFIX = "jsonl-batch-"


def upload_name(sha256: str) -> str:
    """The file name an upload carries on the service: its content's hash, and nothing about
    the job, so a run that lost its job file still finds what an earlier run uploaded."""
    return f"{UPLOAD_PREFIX}{sha256[:32]}.jsonl"


# --- merge ------------------------------------------------------------------------------


def results_path(input_path: PathLike, out_dir: PathLike, results_format: str = "full") -> Path:
    """Merge's rows: ``<stem>.results.jsonl`` (``.results.csv`` for CSV)."""
    suffix = RESULTS_SUFFIXES.get(results_format, DEFAULT_RESULTS_SUFFIX)
    return Path(out_dir) / f"{stem(input_path)}{suffix}"


def results_paths(input_path: PathLike, out_dir: PathLike) -> list[Path]:
    """Every name a results file of ``input_path`` can have (one per suffix), so that a merge
    in one format removes the results of another."""
    suffixes = dict.fromkeys((DEFAULT_RESULTS_SUFFIX, *RESULTS_SUFFIXES.values()))
    return [Path(out_dir) / f"{stem(input_path)}{suffix}" for suffix in suffixes]


def retry_path(input_path: PathLike, out_dir: PathLike) -> Path:
    """Merge's requests to send again, byte for byte."""
    return Path(out_dir) / f"{stem(input_path)}{RETRY_SUFFIX}"


def merge_summary_path(input_path: PathLike, out_dir: PathLike) -> Path:
    """Merge's summary, written last: it names the results and retry files of the run."""
    return Path(out_dir) / f"{stem(input_path)}{MERGE_SUMMARY_SUFFIX}"


def merge_set(input_path: PathLike) -> str:
    """The name of the set a merge publishes (results, retry file, summary)."""
    return f"{stem(input_path)}.merge"


# --- report -----------------------------------------------------------------------------


def report_path(input_path: PathLike) -> Path:
    """The report of a job, manifest or request file when no path is given, next to it."""
    path = Path(input_path)
    name = path.name
    if name.endswith(MERGE_SUMMARY_SUFFIX):
        name = name[: -len(MERGE_SUMMARY_SUFFIX)]
    return path.with_name(stem(name) + REPORT_SUFFIX)
