"""Collect the token-count ground truth (``tests/data/token_cases/cases.jsonl.gz``).

Usage::

    python scripts/token_cases/collect.py MIRRORS --out cases.jsonl.gz      # every project
    python scripts/token_cases/collect.py MIRRORS --check -p charmbracelet/fantasy

``MIRRORS`` holds one bare git snapshot per project as ``<owner>+<name>/repo`` (the layout of
the snapshots the ``fetch`` tool makes); each needs the commit named in ``projects.toml``.
No network, and nothing from a mirrored repository is run: files are read with ``git``.

For each project of ``projects.toml``, in its order, it reads every version of every
recording file (``RECORDING_FILES``) in the history of the named commit (oldest first),
parses the recorded interactions (formats in ``extract.py``) and keeps each POST to
api.openai.com or an Azure OpenAI endpoint (Chat Completions, Responses, input_tokens,
embeddings) answered with HTTP 200 and a usage block. What it guarantees of every case it writes:

- the body and the count are the recorded ones, never computed or edited (key order and
  every string as recorded);
- evidence that the response came from the real API: OpenAI / Azure server headers, a
  realistic response id, a full embedding vector or a Batch output file;
- the body is what was sent: where the request's Content-Length was recorded the body has
  that length (or the same after whitespace-only re-serialisation, ``body_check``); when one
  recorded response (same id, same usage) appears under different bodies, only the earliest
  body is kept (edited cassettes); bodies holding VCR placeholders, streamed chat replies
  with usage the request did not ask for, and zero counts are left out;
- one case per (endpoint, body up to key order, count): a repeat is kept in the first
  project (``--out``) or dropped when the committed file already has it (``--check``);
- ``split`` follows the held-out rule (``projects.toml``: non-Python clients are held out).

``--out`` writes the dev-set cases of the committed file unchanged, then every project's
cases. The committed file was made in rounds (README), so ``--out`` does not reproduce it
byte for byte: later rounds dropped repeats of earlier cases without raising their
``duplicate_count``, and the first round compared bodies with key order when it marked
``same_request_body_seen_with_different_count``. ``--check`` regenerates the named projects
(default: all) the way their round did, against the committed cases that preceded them,
and compares case by case: the same ids, every field equal except those that count repeats
in other projects (``RUN_DEPENDENT``). Exit 0 when equal, 1 otherwise, 2 on a usage error.
Needs PyYAML and brotli (``pip install brotli``: older versions of some cassettes store
brotli-encoded replies). A few minutes for every project.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import gzip
import hashlib
import json
import re
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
for entry in (str(HERE), str(ROOT)):
    if entry not in sys.path:
        sys.path.insert(0, entry)  # run from a checkout without installing

import extract  # noqa: E402

from jsonl_batch.tokens.images import image_size_from_bytes, image_size_from_data_url  # noqa: E402

CASES_DIR = ROOT / "tests" / "data" / "token_cases"
PROJECTS = HERE / "projects.toml"
# The files read: every YAML, JSON, JSON lines, HAR, httprr and gzip file, wherever it sits.
RECORDING_FILES = r"(?i)\.(ya?ml|json|jsonl|har|httprr|gz)$"
HOST_NEEDLES = (b"openai.com", b"openai.azure.com", b"cognitiveservices.azure.com")
REALISTIC_ID = re.compile(r"^(chatcmpl-[A-Za-z0-9]{20,}|resp_[0-9a-f]{40,})$")
# AutoGPT's VCR filter freezes the date in prompts; Ruby VCR filter_sensitive_data placeholders.
AUTOGPT = "Significant-Gravitas/Auto-GPT-test-cassettes"
AUTOGPT_FROZEN_DATE = "Tue Jan  1 00:00:00 2000"
FILTER_PLACEHOLDER = re.compile(
    r"<[A-Z][A-Z0-9]*_(?:API_KEY|TOKEN|KEY|SECRET|ID|REGION|RESOURCE|DEPLOYMENT)>"
    r"|\bGITHUB_MCP_TOKEN\b"
)
BODY_CHECK = {
    "match": "content_length_header_matches_recorded_body",
    "match_after_whitespace_normalisation": "content_length_matches_after_whitespace_normalisation",
    None: "not_checkable",
}
FIELD_ORDER = (
    "id repo path commit recorded license source endpoint kind model request_body "
    "expected_prompt_tokens expected_field expected_from response_model features caveats "
    "cached_tokens images custom_id body_check notes split origin recording_slot slot_versions "
    "duplicate_count also_seen_in duplicate_sources"
).split()
# What depends on the other cases of the run (repeats, the same body with another count).
RUN_DEPENDENT = ("duplicate_count", "also_seen_in", "slot_versions")
RUN_DEPENDENT_CAVEAT = "same_request_body_seen_with_different_count"

Row = dict[str, Any]


def load_projects(path: Path = PROJECTS) -> list[dict[str, Any]]:
    with path.open("rb") as handle:
        projects: list[dict[str, Any]] = tomllib.load(handle)["project"]
    return projects


def split_of(project: dict[str, Any]) -> str:
    """The held-out rule: recordings made by a non-Python client are held out."""
    return "fit" if project["client"] == "python" else "heldout"


def _date(timestamp: Any) -> str | None:
    if isinstance(timestamp, int | float):
        return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d")
    return None


def candidates(mirror: str, project: dict[str, Any]) -> tuple[list[Row], collections.Counter[str]]:
    """Every recorded request with a usage block in the project's history, oldest first.

    Not deduplicated: one row per (file version, interaction), with what the checks need.
    """
    repo = project["repo"]
    extract.decode_brotli(project.get("brotli", True))
    stats: collections.Counter[str] = collections.Counter()
    first: dict[tuple[str, str], tuple[str, str]] = {}
    for commit, date, path, blob in extract.history_blobs(
        mirror, RECORDING_FILES, project["commit"]
    ):
        first.setdefault((path, blob), (commit, date))  # each file version at its oldest commit
    blobs = extract.cat_blobs(mirror, [blob for _, blob in first])
    out: list[Row] = []
    for (path, blob), (commit, date) in first.items():
        data = blobs.get(blob)
        if data is None:
            stats["blob_missing"] += 1
            continue
        if data[:2] != b"\x1f\x8b" and not any(n in data for n in HOST_NEEDLES):
            continue
        stats["files_with_openai_host"] += 1
        base = {"repo": repo, "path": path, "commit": commit, "commit_date": date}
        out.extend(rows_of(data, base, stats))
    return out, stats


def rows_of(data: bytes, base: Row, stats: collections.Counter[str]) -> list[Row]:
    """Candidate rows of one recording file; ``base`` names its repo, path, commit and date."""
    try:
        interactions = extract.parse_cassette(data, base["path"])
    except Exception:  # a file no parser reads is skipped and counted, never fatal
        stats["parse_error"] += 1
        return []
    return _batch_rows(interactions, base, stats) + _interaction_rows(interactions, base, stats)


def _batch_rows(interactions: list[Row], base: Row, stats: collections.Counter[str]) -> list[Row]:
    rows = []
    for pair in extract.batch_pairs(interactions):
        line, output = pair["input_line"], pair["output_line"]
        endpoint, body = line.get("url"), line.get("body")
        response = output.get("response") or {}
        if response.get("status_code") != 200 or endpoint not in (
            "/v1/chat/completions",
            "/v1/responses",
            "/v1/embeddings",
        ):
            stats["excl:batch_line_not_ok"] += 1
            continue
        usage = extract.get_usage("json", response.get("body"), endpoint)
        if usage is None or not isinstance(body, dict):
            stats["excl:batch_line_no_usage"] += 1
            continue
        request = _request(endpoint, body, usage, stats)
        if request is None:
            continue
        reply = response.get("body") or {}
        index = f"batch:{pair['upload_index']}:{line.get('custom_id')}"
        rows.append(
            base
            | request
            | {
                "index": index,
                "service": "openai",
                "azure_deployment": None,
                "features": [*request["features"], "batch_line"],
                "created": _date(reply.get("created") or reply.get("created_at")),
                "streamed": False,
                "auth": ["batch_output_file"],
                "custom_id": line.get("custom_id"),
                "batch_id": pair["batch_id"],
            }
        )
        stats["candidates_batch"] += 1
    return rows


def _interaction_rows(
    interactions: list[Row], base: Row, stats: collections.Counter[str]
) -> list[Row]:
    rows = []
    for index, it in enumerate(interactions):
        where = extract.classify_uri(it["uri"])
        if not where:
            continue
        service, endpoint, deployment = where
        stats["openai_interactions"] += 1
        if it["method"] != "POST":
            continue
        body, note = extract.load_request_json(it["req_body"])
        if not isinstance(body, dict):
            stats["excl:request_not_json:" + note] += 1
            continue
        reply_kind, reply = extract.parse_json_or_sse(it["resp_raw"])
        usage = extract.get_usage(reply_kind, reply, endpoint)
        status = it.get("status")
        if usage is None:
            if body.get("stream"):
                stats["excl:stream_without_usage_or_unparsed"] += 1
            elif status not in (None, 200, "200"):
                stats[f"excl:status_{status}"] += 1
            else:
                stats["excl:no_usage_in_response"] += 1
            continue
        if status not in (None, 200, "200", 201):
            stats["excl:non200_with_usage"] += 1
            continue
        request = _request(endpoint, body, usage, stats)
        if request is None:
            continue
        options = body.get("stream_options")
        asked_usage = isinstance(options, dict) and options.get("include_usage")
        rows.append(
            base
            | request
            | {
                "index": index,
                "service": service,
                "azure_deployment": deployment,
                "body_note": note,
                "created": _created(reply_kind, reply),
                "streamed": reply_kind == "sse",
                "auth": extract.authenticity(it.get("resp_headers"), reply),
                "content_length": extract.content_length_check(
                    it.get("req_headers"), it["req_body"]
                ),
                "stream_usage_unrequested": (
                    endpoint == "/v1/chat/completions" and reply_kind == "sse" and not asked_usage
                ),
                "req_content_length": extract.header_get(it.get("req_headers"), "content-length"),
            }
        )
        stats["candidates"] += 1
    return rows


def _request(
    endpoint: str, body: dict[str, Any], usage: extract.Usage, stats: collections.Counter[str]
) -> Row | None:
    """What a row says of the request and its count; None when the request is left out."""
    count, field, cached, response_model, response_id, usage_block = usage
    kind, features, caveats, excluded, images = extract.analyse_body(endpoint, body)
    if excluded:
        stats["excl:" + excluded] += 1
        return None
    return {
        "endpoint": endpoint,
        "body": body,
        "count": count,
        "field": field,
        "cached": cached,
        "response_model": response_model,
        "response_id": response_id,
        "usage": usage_block,
        "kind": kind,
        "features": features,
        "caveats": caveats,
        "images": images,
    }


def _created(reply_kind: str | None, reply: Any) -> str | None:
    """Date of the response's ``created`` / ``created_at`` (first stream event carrying one)."""
    if reply_kind == "json" and isinstance(reply, dict):
        return _date(reply.get("created") or reply.get("created_at"))
    if reply_kind == "sse":
        for event in reply:
            if not isinstance(event, dict):
                continue
            response = event.get("response")
            if event.get("created"):
                created = event["created"]
            elif isinstance(response, dict):
                created = response.get("created_at")
            else:
                continue
            if isinstance(created, int | float):
                return _date(created)
    return None


# ---------------------------------------------------------------------------- selection


def _leave_out(row: Row) -> str | None:
    """Why a candidate is not taken (no evidence, edited, placeholder, ...), or None."""
    repo = row["repo"]
    text = json.dumps(row["body"], ensure_ascii=False)
    llama_stack_id = repo == "llamastack/llama-stack" and str(row.get("response_id")).startswith(
        "rec-"
    )
    if not row.get("auth") and not llama_stack_id:
        return "no_evidence_of_real_api_response(handwritten_or_proxy)"
    if row["count"] <= 0:
        return "zero_prompt_tokens_reported"
    if FILTER_PLACEHOLDER.search(text):
        return "request_altered_by_vcr_sensitive_data_filter"
    if repo == AUTOGPT and row["endpoint"] == "/v1/chat/completions":
        # AutoGPT's cassette formatter sorts keys and strips max_tokens: check for exactly that.
        stripped = {k: v for k, v in row["body"].items() if k != "max_tokens"}
        gap = int(row.get("req_content_length") or -1) - len(json.dumps(stripped).encode())
        if gap == 0 or gap in [len(', "max_tokens": ') + k for k in range(1, 6)]:
            row["content_length"] = "match_after_known_formatter(sort_keys,max_tokens_removed)"
    if row.get("content_length") == "mismatch":
        return "request_body_length_differs_from_recorded_content_length(edited)"
    if row.get("stream_usage_unrequested"):
        return "stream_usage_present_but_not_requested(hand_assembled)"
    if repo == AUTOGPT and AUTOGPT_FROZEN_DATE in text:
        return "request_rewritten_by_vcr_filter(frozen_timestamp)"
    return None


def _edited(rows: list[Row]) -> set[int]:
    """Rows whose body differs from the earliest one recorded with the same response."""
    groups: dict[tuple[str, str, str], list[tuple[int, Row]]] = collections.defaultdict(list)
    for order, row in enumerate(rows):
        response_id = row.get("response_id")
        if response_id and REALISTIC_ID.match(response_id):
            key = (row["endpoint"], response_id, extract.canon(row["usage"]))
            groups[key].append((order, row))
    drop: set[int] = set()
    for members in groups.values():
        members.sort(key=lambda m: (m[1]["commit_date"], m[1]["repo"], m[0]))
        first = extract.canon(members[0][1]["body"])
        drop.update(id(row) for _, row in members if extract.canon(row["body"]) != first)
    return drop


def dedupe_key(endpoint: str, body: Any, count: int) -> tuple[str, str, int]:
    """Same endpoint, same body up to JSON key order, same count."""
    return (
        endpoint,
        json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")),
        count,
    )


def build(
    projects: list[dict[str, Any]],
    rows: list[Row],
    mirrors: Path,
    earlier: Iterable[Row] = (),
) -> tuple[list[Row], dict[str, collections.Counter[str]]]:
    """Cases from candidate ``rows`` (in project order), dropping repeats of ``earlier`` cases."""
    by_repo = {p["repo"]: p for p in projects}
    excluded: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    kept = []
    for row in rows:
        reason = _leave_out(row)
        if reason:
            excluded[row["repo"]][reason] += 1
        else:
            kept.append(row)
    edited = _edited(kept)
    seen: dict[tuple[str, str, int], Row | None] = {
        dedupe_key(c["endpoint"], c["request_body"], c["expected_prompt_tokens"]): None
        for c in earlier
    }
    cases: list[Row] = []
    for row in kept:
        repo = row["repo"]
        if id(row) in edited:
            excluded[repo]["body_changed_under_same_recorded_response(edited_cassette)"] += 1
            continue
        key = dedupe_key(row["endpoint"], row["body"], row["count"])
        if key in seen:
            previous = seen[key]
            if previous is None:
                excluded[repo]["exact_duplicate_of_existing_case"] += 1
                continue
            previous["duplicate_count"] = previous.get("duplicate_count", 0) + 1
            if previous["repo"] != repo and repo not in previous.setdefault("also_seen_in", []):
                previous["also_seen_in"].append(repo)
            excluded[repo]["exact_duplicate(endpoint+body+count)"] += 1
            continue
        case = _case(row, by_repo[repo], mirrors)
        if case is None:
            excluded[repo]["azure_model_unknowable(deployment_name_filtered_out_of_response)"] += 1
            continue
        seen[key] = case
        cases.append(case)
    _mark_repeats(cases)
    return [{k: c[k] for k in FIELD_ORDER if k in c} for c in cases], excluded


def _case(row: Row, project: dict[str, Any], mirrors: Path) -> Row | None:
    repo, body, service = row["repo"], row["body"], row["service"]
    caveats = list(row["caveats"]) + _project_caveats(row)
    model = body.get("model")
    response_model = row.get("response_model") or ""
    if service != "openai" and "AZURE_DEPLOYMENT" in response_model:
        return None
    renamed = response_model and not response_model.lower().startswith(str(model).lower())
    if model and service != "openai" and renamed:
        model = response_model
        caveats.append("model_taken_from_response")
    if not model:
        if row.get("response_model"):
            model = row["response_model"]
            caveats.append("model_taken_from_response")
        elif row.get("azure_deployment"):
            model = row["azure_deployment"]
            caveats.append("model_taken_from_azure_deployment_name")
    if service != "openai":
        caveats.append("azure_openai" if service == "azure" else "azure_cognitiveservices_openai")
        named = body.get("model")
        if named and response_model and not response_model.lower().startswith(str(named).lower()):
            caveats.append("azure_model_field_is_deployment_name")
    images, image_caveats = _images(mirrors, project, row["images"])
    caveats += image_caveats
    features = list(row["features"])
    if row.get("streamed") and "stream" not in features:
        features.append("stream")
    index = row["index"]
    case: Row = {
        "id": hashlib.sha256(f"{repo}|{row['path']}|{row['commit']}|{index}".encode()).hexdigest()[
            :16
        ],
        "repo": repo,
        "path": row["path"],
        "commit": row["commit"],
        "recorded": row.get("created") or row["commit_date"],
        "license": project["licence"],
        "source": f"github:{repo}@{row['commit']}:{row['path']}#interaction={index}",
        "endpoint": row["endpoint"],
        "kind": row["kind"],
        "model": model,
        "request_body": body,
        "expected_prompt_tokens": row["count"],
        "expected_field": row["field"],
        "expected_from": "api",
        "response_model": row.get("response_model"),
        "features": features,
        "caveats": sorted(set(caveats)),
    }
    if images:
        case["images"] = images
    if row.get("cached") is not None:
        case["cached_tokens"] = row["cached"]
    if row.get("custom_id") is not None:
        case["custom_id"] = row["custom_id"]
    notes = []
    if service != "openai" and row.get("azure_deployment"):
        notes.append(f"Azure deployment {row['azure_deployment']}")
    if row.get("batch_id"):
        notes.append(
            "Batch API line: input file upload paired with output file line by custom_id "
            f"(batch {row['batch_id']})"
        )
    case["notes"] = "; ".join(notes) or None
    check = row.get("content_length")
    case["body_check"] = BODY_CHECK.get(check, check)
    if check == "match_after_whitespace_normalisation":
        caveats.append("body_whitespace_reformatted_by_cassette_serializer")
        case["caveats"] = sorted(set(caveats))
    case["split"] = split_of(project)
    case["origin"] = "collected"
    return case


def _project_caveats(row: Row) -> list[str]:
    """What each project's recorder or serializer is known to do to a body."""
    repo, caveats = row["repo"], []
    if repo == AUTOGPT:
        caveats += [
            "body_keys_sorted_by_cassette_formatter",
            "max_tokens_stripped_by_cassette_formatter",
        ]
        if row["endpoint"] == "/v1/chat/completions":
            caveats.append("autogpt_vcr_filter_may_rewrite_message_content")
    if row.get("body_note") == "testproxy_parsed_body":
        caveats.append("body_stored_as_parsed_json_by_test_proxy")
    if row.get("body_note") == "nock_parsed_body":
        caveats.append("body_stored_as_parsed_json_by_nock")
    if repo == "llamastack/llama-stack":
        caveats.append("body_is_client_kwargs_recorded_by_llama_stack_recorder")
        if str(row.get("response_id") or "").startswith("rec-"):
            caveats.append("response_id_normalized_by_recorder")
    return caveats


def _mark_repeats(cases: list[Row]) -> None:
    """Same body with different counts; the same test interaction re-recorded over history."""
    counts: dict[tuple[str, str], set[int]] = collections.defaultdict(set)
    for c in cases:
        key = dedupe_key(c["endpoint"], c["request_body"], 0)[:2]
        counts[key].add(c["expected_prompt_tokens"])
    slots: collections.Counter[str] = collections.Counter()
    for c in cases:
        if len(counts[dedupe_key(c["endpoint"], c["request_body"], 0)[:2]]) > 1:
            c["caveats"] = [*c["caveats"], "same_request_body_seen_with_different_count"]
        index = c["source"].rsplit("#interaction=", 1)[-1]
        c["recording_slot"] = f"{c['repo']}:{c['path']}#{index}"
        slots[c["recording_slot"]] += 1
    for c in cases:
        c["slot_versions"] = slots[c["recording_slot"]]


# ---------------------------------------------------------------------------- images

_FILES_BY_NAME: dict[str, dict[str, list[tuple[str, str]]]] = {}


def _files_by_name(mirror: str, commit: str) -> dict[str, list[tuple[str, str]]]:
    if mirror not in _FILES_BY_NAME:
        found: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
        listing = extract.git(mirror, "ls-tree", "-r", "--full-tree", commit)
        for line in listing.decode("utf-8", "replace").splitlines():
            meta, _, path = line.partition("\t")
            parts = meta.split()
            if len(parts) == 3 and parts[1] == "blob":
                found[path.rsplit("/", 1)[-1].lower()].append((path, parts[2]))
        _FILES_BY_NAME[mirror] = found
    return _FILES_BY_NAME[mirror]


def _remote_size(mirror: str, commit: str, repo: str, url: str) -> tuple[int, int, str] | None:
    """Size of an image given by URL from the same file in the repository, when it holds it."""
    name = unquote(urlparse(url).path).rsplit("/", 1)[-1]
    if "." not in name:
        return None
    for path, blob in _files_by_name(mirror, commit).get(name.lower(), []):
        same_repo_url = repo.lower() in url.lower() and path in unquote(url)
        test_copy = path.rsplit("/", 1)[-1] == name and re.search(
            r"(?i)(^|/)(tests?|spec|fixtures?|assets?)/", path
        )
        if same_repo_url or test_copy:
            size = image_size_from_bytes(extract.git(mirror, "cat-file", "blob", blob))
            if size:
                return size[0], size[1], path
    return None


def _images(
    mirrors: Path, project: dict[str, Any], images: list[Row]
) -> tuple[list[Row], list[str]]:
    repo = project["repo"]
    out, caveats = [], []
    for image in images:
        url, detail = image.get("url") or "", image.get("detail")
        if isinstance(url, str) and url.startswith("data:"):
            entry: Row = {"source": "data_url", "detail": detail}
            size = image_size_from_data_url(url)
            if size:
                entry["width"], entry["height"] = size
            else:
                caveats.append("data_url_image_undecodable")
        else:
            entry = {"source": "url", "url": url, "detail": detail}
            mirror = str(mirrors / repo.replace("/", "+") / "repo")
            found = _remote_size(mirror, project["commit"], repo, url) if url else None
            if found:
                entry["width"], entry["height"] = found[0], found[1]
                entry["sized_from"] = f"same-named file in repo: {found[2]}"
            elif "remote_image_dims_unknown" not in caveats:
                caveats.append("remote_image_dims_unknown")
        out.append(entry)
    return out, caveats


# ---------------------------------------------------------------------------- command line


def read_cases(path: Path) -> list[Row]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def write_cases(path: Path, cases: list[Row]) -> None:
    """Write gzip JSON lines through a temporary sibling, then rename."""
    temporary = path.with_name(path.name + ".tmp")
    with gzip.GzipFile(temporary, "wb", mtime=0) as handle:
        for case in cases:
            handle.write((json.dumps(case, ensure_ascii=False) + "\n").encode())
    temporary.replace(path)


def collect(mirrors: Path, projects: list[dict[str, Any]], earlier: list[Row]) -> list[Row]:
    rows: list[Row] = []
    for project in projects:
        mirror = mirrors / project["repo"].replace("/", "+") / "repo"
        found, stats = candidates(str(mirror), project)
        print(
            f"{project['repo']}: {stats['candidates'] + stats['candidates_batch']} candidates",
            file=sys.stderr,
        )
        rows.extend(found)
    cases, _ = build(projects, rows, mirrors, earlier)
    return cases


def check(mirrors: Path, projects: list[dict[str, Any]], names: list[str]) -> int:
    """Regenerate each named project against the committed cases before it; compare."""
    committed = read_cases(CASES_DIR / "cases.jsonl.gz")
    images = read_cases(CASES_DIR / "cases_images.jsonl.gz")
    problems = 0
    for name in names:
        project = next(p for p in projects if p["repo"] == name)
        start = next(
            (
                i
                for i, c in enumerate(committed)
                if c["repo"] == name and c["origin"] == "collected"
            ),
            len(committed),
        )
        mine = [c for c in committed if c["repo"] == name and c["origin"] == "collected"]
        earlier = committed[:start] + images  # with the dev set's cases of the project
        if project["round"] >= 3:  # later rounds deduplicated against the whole file then
            later = [c for c in committed[start:] if c["repo"] != name]
            earlier += [c for c in later if _round(projects, c["repo"]) < project["round"]]
        made = collect(mirrors, [project], earlier)
        problems += _compare(name, made, mine)
    return 1 if problems else 0


def _round(projects: list[dict[str, Any]], repo: str) -> int:
    return next((p["round"] for p in projects if p["repo"] == repo), 0)


def _compare(name: str, made: list[Row], committed: list[Row]) -> int:
    def strip(case: Row) -> str:
        kept = {k: v for k, v in case.items() if k not in RUN_DEPENDENT}
        kept["caveats"] = [c for c in case["caveats"] if c != RUN_DEPENDENT_CAVEAT]
        return json.dumps(kept, sort_keys=True)

    def flagged(cases: list[Row]) -> set[str]:
        return {c["id"] for c in cases if RUN_DEPENDENT_CAVEAT in c["caveats"]}

    ours = {c["id"]: strip(c) for c in made}
    theirs = {c["id"]: strip(c) for c in committed}
    only_ours = sorted(set(ours) - set(theirs))
    only_theirs = sorted(set(theirs) - set(ours))
    changed = sorted(i for i in set(ours) & set(theirs) if ours[i] != theirs[i])
    slots = {c["id"]: c.get("slot_versions") for c in committed}
    same_slots = sum(1 for c in made if slots.get(c["id"], -1) == c.get("slot_versions"))
    status = "same" if not (only_ours or only_theirs or changed) else "DIFFERENT"
    print(
        f"{name}: {status}: {len(made)} regenerated, {len(committed)} committed, "
        f"{len(only_ours)} only regenerated, {len(only_theirs)} only committed, "
        f"{len(changed)} with other fields; slot_versions equal in {same_slots}, "
        f"{RUN_DEPENDENT_CAVEAT} differs in {len(flagged(made) ^ flagged(committed))}"
    )
    for case_id in (only_ours + only_theirs + changed)[:5]:
        print(f"  e.g. {case_id}")
    return len(only_ours) + len(only_theirs) + len(changed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: python scripts/token_cases/collect.py /work/.mirror --check "
        "-p charmbracelet/fantasy",
    )
    parser.add_argument("mirrors", type=Path, help="folder of <owner>+<name>/repo snapshots")
    parser.add_argument("-p", "--project", action="append", help="only this project (repeatable)")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--out", type=Path, help="write the cases here (.jsonl.gz)")
    action.add_argument("--check", action="store_true", help="compare with the committed cases")
    args = parser.parse_args(argv)
    projects = load_projects()
    known = {p["repo"] for p in projects}
    names = args.project or [p["repo"] for p in projects]
    unknown = sorted(set(names) - known)
    if unknown:
        parser.error(f"not in {PROJECTS.name}: {', '.join(unknown)}")
    missing = [n for n in names if not (args.mirrors / n.replace("/", "+") / "repo").is_dir()]
    if missing:
        parser.error(f"no snapshot under {args.mirrors} for: {', '.join(missing)}")
    if not extract.HAS_BROTLI:  # older cassette versions hold brotli-encoded replies
        parser.error("needs the brotli package (pip install brotli): without it cases differ")
    if args.check:
        return check(args.mirrors, projects, names)
    selected = [p for p in projects if p["repo"] in names]
    dev_set = [c for c in read_cases(CASES_DIR / "cases.jsonl.gz") if c["origin"] == "dev_set"]
    write_cases(args.out, dev_set + collect(args.mirrors, selected, dev_set))
    return 0


if __name__ == "__main__":
    sys.exit(main())
