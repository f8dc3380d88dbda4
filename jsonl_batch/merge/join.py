"""Pass 2: stream the requests in input order, look each one up, write its row.

Every request line is parsed once, to check it the way validate does: a line that is not
exactly one JSON object with a string custom_id is reported and never joined nor retried.
The fast path (full rows, the usual case): a success line as the services write it
(``PLAIN`` in the index) is not parsed: the row is assembled from byte spans of the output
line (the response body and its usage block) and only the usage numbers and the model are
read. Everything else
(failures, other layouts, the text/embedding/csv formats, ``--include-request``,
``--estimate``) parses the output line and serialises a dict: the same row. The fast path
does not look inside the body, so a success line broken in the middle (but whole at both
ends) is copied as it is rather than reported.
"""

from __future__ import annotations

import bisect
import io
import itertools
import os
import queue
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..formats.output_lines import PLAIN_END, UNRECOGNIZED, classify
from ..formats.response_body import add_usage, request_model
from ..formats.results import PLAIN_ROW, RowEncoder
from ..jsonl import BOM, DEFAULT_MAX_LINE_BYTES, AtomicWriter, finish_line, open_binary
from .index import NOT_A_REQUEST, ResultFiles, parse_request_key, request_keys, text_of_key
from .packed import (
    FIELD16,
    FILE_BITS,
    FILE_SHIFT,
    LEN_MASK,
    LEN_SHIFT,
    OFF_SHIFT,
    PLAIN,
    USED,
    file_of,
    length_of,
    offset_of,
    shard_of,
)
from .plan import MergePlan
from .summary import (
    CANCELLED,
    EXAMPLES,
    EXPIRED,
    FAILED,
    MISSING,
    PROBLEM_KINDS,
    SUCCEEDED,
    ErrorStat,
    GroupSummary,
    MergeResult,
    Pricing,
    Problem,
    Problems,
    Tally,
    by_resource,
    count_input,
    price_tallies,
    token_counter,
)

_KICK_BYTES = 64 << 20  # results written between two starts of the disk write-back
_CHUNK = 1 << 22  # bytes of requests read at once (one SQLite lookup per chunk when spilled)
_LONG_LINE = 8 << 20  # a line without its end this long is finished by the reader
Span = tuple[int, int, int]  # a part of the source: first byte, end byte, lines before it
# Status of a request with no output line, by the status of the batch (shard) it was in.
_NEVER_CAME_BACK = {EXPIRED: EXPIRED, CANCELLED: CANCELLED}
_PLAIN_BITS = PLAIN | FILE_BITS
_BODY_START = len(b'"body":')
_BODY_END = -len(PLAIN_END)
# Chat completion usage as the services write it; other shapes (Responses, embeddings) take
# the general path.
_CHAT_USAGE = re.compile(
    rb'\{"prompt_tokens":(\d+),"completion_tokens":(\d+),"total_tokens":\d+'
    rb'(?:,"prompt_tokens_details":\{"cached_tokens":(\d+)[^{}]*\})?'
    rb'(?:,"completion_tokens_details":\{"reasoning_tokens":(\d+)[^{}]*\})?\}'
)
# Bytes a custom_id may not hold to go into a row as it is (else the row is serialised).
_UNSAFE_ID = re.compile(rb'["\\\x00-\x1f]')


@dataclass(slots=True)
class JoinPart:
    """What a worker's join of one span counted, handed back to :meth:`Join.absorb`."""

    counts: dict[str, int]
    groups: list[tuple[int, dict[str, int]]]
    tallies: dict[tuple[int | None, str | None], Tally]
    error_stats: dict[str, ErrorStat]
    error_where: dict[str, int | str]
    bad_outputs: list[int]
    unrecognized: list[tuple[int, str, str]]
    retry_count: int
    problem_counts: dict[str, int]
    problems: list[Problem]
    claims: tuple[int, int]


@dataclass(slots=True, frozen=True)
class Options:
    results_format: str
    include_request: bool
    should_retry: Callable[[str, int | None, str | None], bool]
    deployment_map: dict[str, str]
    pricing: Pricing
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES


def shard_ranges(plan: MergePlan) -> tuple[list[int], list[int], list[int]] | None:
    """Sorted (first_line, last_line, shard position) when shards are cut in line order."""
    shards = plan.shards
    if not shards or plan.source is None:
        return None
    ranges = []
    for pos, shard in enumerate(shards):
        if not isinstance(shard.first_line, int) or not isinstance(shard.last_line, int):
            return None
        ranges.append((shard.first_line, shard.last_line, pos))
    ranges.sort()
    for (_, last, _), (first, _, _) in itertools.pairwise(ranges):
        if first <= last:
            return None  # overlapping ranges: shards were regrouped, not cut in order
    return [r[0] for r in ranges], [r[1] for r in ranges], [r[2] for r in ranges]


class Join:
    """Joins every request to its output line and keeps the counts for the summary."""

    def __init__(
        self,
        plan: MergePlan,
        outputs: ResultFiles,
        problems: Problems,
        options: Options,
        ranges: tuple[list[int], list[int], list[int]] | None,
        on_progress: Callable[[int], None],
    ) -> None:
        self.plan = plan
        self.outputs = outputs
        self.problems = problems
        self.options = options
        self.ranges = ranges
        self.on_progress = on_progress
        self.fast = (
            options.results_format == "full"
            and not options.include_request
            and not options.pricing.estimate
        )
        self.shard_status = [shard.status for shard in plan.shards]
        self.shard_error = [shard.error for shard in plan.shards]
        self.total = GroupSummary("total")
        self.groups = [
            GroupSummary(
                f"shard {shard.index}",
                shard_status=shard.status,
                manifest_input_tokens=shard.input_tokens,
            )
            for shard in plan.shards
        ]
        self.tallies: dict[tuple[int | None, str | None], Tally] = {}
        self.models: dict[bytes, str] = {}  # model bytes of plain lines -> mapped name
        self.error_stats: dict[str, ErrorStat] = {}
        self.error_where: dict[str, int | str] = {}  # packed output entry, or file:line
        self.bad_outputs: list[int] = []  # packed entries whose line is not JSON after all
        # (packed entry, custom_id, start of the line) of output lines of no known shape
        self.unrecognized: list[tuple[int, str, str]] = []
        self.counter = token_counter(options.deployment_map) if options.pricing.estimate else None
        self.retry_count = 0
        self.first_uses = 0  # outputs claimed by this join, and the sum of their keys' hashes
        self.first_use_hash = 0
        self.all_outputs_used = False  # set by a parallel run when the sums prove it
        self.encoder = RowEncoder(options.results_format, include_request=options.include_request)

    def _shard_of(self, number: int, raw: bytes) -> int | None:
        """The shard a source line went to, from the manifest's line ranges (and the model,
        where shards of several models overlap); None when there are no shards."""
        candidates = [
            pos
            for pos, shard in enumerate(self.plan.shards)
            if shard.first_line is not None
            and shard.last_line is not None
            and shard.first_line <= number <= shard.last_line
        ]
        if len(candidates) > 1:
            try:
                model = request_model(orjson.loads(raw))
            except orjson.JSONDecodeError:
                return None
            candidates = [pos for pos in candidates if self.plan.shards[pos].model == model]
        return candidates[0] if len(candidates) == 1 else None

    def run(self, results: Any, retry: Any, span: Span | None = None) -> None:
        """Join every request (or those in ``span`` of the source), writing rows to
        ``results`` and lines to ``retry``."""
        plan = self.plan
        behind = _WriteBehind(results)
        header = self.encoder.header()
        if header and (span is None or span[0] == 0):
            behind.write_raw(header)
        try:
            if plan.source is not None:
                self._join_file(plan.source, None, behind, retry, span)
            else:
                for pos, shard in enumerate(plan.shards):
                    assert shard.path is not None
                    self._join_file(shard.path, pos, behind, retry, None)
        finally:
            behind.close()

    def _join_file(
        self, path: Path, shard: int | None, results: Any, retry: Any, span: Span | None
    ) -> None:
        """Join a file (or a span of it) chunk by chunk; lines are never copied out unless
        they are retried or parsed."""
        start, stop, number = span or (0, -1, 0)
        progress = self.on_progress
        max_line = self.options.max_line_bytes
        long_line = min(max_line, _LONG_LINE)
        with open_binary(path) as stream:
            plain = stream.seekable()  # a file, not gzip or a pipe
            if start:
                stream.seek(start)
            remaining = stop - start if stop >= 0 else -1
            rest = b""
            at = 0  # where the first line starts: after a BOM
            while True:
                size = _CHUNK if remaining < 0 else min(_CHUNK, remaining)
                data = stream.read(size) if size else b""
                remaining -= len(data)
                if not data and not rest:
                    break
                chunk = rest + data if rest else data
                if number == 0 and at == 0 and chunk.startswith(BOM):
                    at = 3
                cut = chunk.rfind(b"\n") + 1 if data else len(chunk)
                if not cut and len(chunk) > long_line:
                    # a long line: read the rest of it through the reader, which drops it when
                    # over the cap and keeps at most 16 MiB of it in memory meanwhile
                    line = finish_line(stream, chunk, max_line)
                    got = line if isinstance(line, int) else len(line)
                    if remaining >= 0:  # a span ends at a line end: never read past it
                        remaining -= got - len(chunk)
                    if isinstance(line, int):
                        number += 1
                        self._too_long(path, number)
                        progress(got)
                        rest, at = b"", 0
                        continue
                    chunk, cut, data = line, len(line), line
                if cut:
                    rows, retries, number = self._join_block(chunk, at, cut, number, path, shard)
                    results.write_raw(b"".join(rows))
                    if retries:
                        self.retry_count += len(retries)
                        retry.write_raw(b"".join(retries))
                    progress(cut - at)
                left = len(chunk) - cut
                if cut and left and data and plain:
                    stream.seek(-left, io.SEEK_CUR)  # read the cut line again: no chunk copy
                    remaining += left if remaining >= 0 else 0
                    rest, at = b"", 0
                else:
                    rest, at = chunk[cut:], 0

    def _join_block(
        self, chunk: bytes, pos: int, end: int, number: int, path: Path, line_shard: int | None
    ) -> tuple[list[bytes], list[bytes], int]:
        """The hot loop, kept flat on purpose: one iteration per request line
        ``chunk[pos:end]``; returns the row pieces, the retry lines, the last line number."""
        index = self.outputs.index
        view = memoryview(chunk)
        spilled = index.spilled
        if spilled:  # a chunk-sized copy of the entries, written back at the end
            keys = []
            line_at = pos
            while line_at < end:
                line_end = chunk.find(b"\n", line_at, end) + 1 or end
                keys.append(parse_request_key(view[line_at:line_end])[0])
                line_at = line_end
            found = index.lookup_many([key for key in keys if key is not None])
            changed: dict[bytes, int] = {}
        else:
            found = index.entries
        fds = self.outputs.fds
        pread = os.pread
        loads, bad_json = orjson.loads, orjson.JSONDecodeError
        unsafe = _UNSAFE_ID.search
        fast = self.fast
        problems = self.problems
        counts = self.total.counts
        groups = self.groups
        ranges = self.ranges
        models = self.models
        chat_usage = _CHAT_USAGE.match
        chat_numbers: dict[tuple[int | None, str], list[tuple[bytes, ...]]] = {}
        numbers: list[tuple[bytes, ...]] = []
        rows: list[bytes] = []  # pieces of rows, joined once per block
        retries: list[bytes] = []
        last_name, last_model = b'"', None  # the model of the last plain line
        tally_model: str | None = None  # and the (model, shard) its numbers went to
        tally_shard: int | None = None
        succeeded = 0
        find = chunk.find
        first_uses = first_use_hash = 0
        max_line = self.options.max_line_bytes
        while pos < end:
            line_end = find(b"\n", pos, end) + 1 or end
            number += 1
            if line_end - pos > max_line:
                self._too_long(path, number)
                pos = line_end
                continue
            # every line is parsed: exactly one JSON object with a string custom_id, as
            # validate checks it; any other line (more after the object included) is
            # reported, and never joined nor copied into the retry file
            try:
                request = loads(view[pos:line_end])
                custom_id = request.get("custom_id") if request.__class__ is dict else None
            except bad_json:
                custom_id = None
            if custom_id.__class__ is not str:
                why = parse_request_key(view[pos:line_end])[1] or NOT_A_REQUEST
                if chunk[pos:line_end].strip():
                    problems.add("invalid_input_line", why, where=f"{path}:{number}")
                pos = line_end
                continue
            key = custom_id.encode("utf-8", "surrogatepass")  # key_of(), inlined
            packed = found.get(key, 0)
            if packed & USED:
                problems.add(
                    "duplicate_input",
                    "custom_id appears more than once in the input; every copy gets the"
                    " same result",
                    custom_id=text_of_key(key),
                    where=f"{path}:{number}",
                )
            elif packed & FILE_BITS:
                packed |= USED
                found[key] = packed
                first_uses += 1
                first_use_hash += hash(key)
                if spilled:
                    changed[key] = packed
            shard = line_shard
            if groups and shard is None:
                shard = shard_of(packed)
                if shard is None and ranges is not None:
                    shard = _shard_at(ranges, number)
            if fast and packed & _PLAIN_BITS > PLAIN and unsafe(key) is None:
                data = pread(
                    fds[((packed >> FILE_SHIFT) & FIELD16) - 1],
                    (packed >> LEN_SHIFT) & LEN_MASK,
                    packed >> OFF_SHIFT,
                )
                body = data.find(b'"body":{') + _BODY_START
                at = data.rfind(b',"usage":{', body) + 9
                model_at = data.find(b'"model":"', body) + 9
                if model_at > 9 and data.startswith(last_name, model_at):
                    model = last_model  # consecutive lines mostly share the model
                else:
                    name = data[model_at : data.find(b'"', model_at)]
                    model = models.get(name)
                    if model is None and model_at > 9:
                        model = self._learn_model(name)
                    if model is not None:
                        last_name, last_model = name + b'"', model
                if at > 9 and model is not None:
                    if model is not tally_model or shard != tally_shard:
                        tally_model, tally_shard = model, shard
                        numbers = chat_numbers.setdefault((shard, model), [])
                    usage = chat_usage(data, at)
                    if usage is not None:
                        numbers.append(usage.groups())
                        succeeded += 1
                        if shard is not None and groups:
                            group = groups[shard]
                            group.requests += 1
                            group.counts[SUCCEEDED] += 1
                        rows.append(PLAIN_ROW % (key, number, usage.group(), data[body:_BODY_END]))
                        pos = line_end
                        continue
            self._join_slow(key, chunk[pos:line_end], number, path, packed, shard, rows, retries)
            pos = line_end
        counts[SUCCEEDED] += succeeded
        thresholds = self.options.pricing.thresholds
        for tally_key, numbers in chat_numbers.items():
            if numbers:
                tally = self._tally(*tally_key)
                usage_total = tally.usage
                prompt, completion, cached, reasoning = zip(*numbers, strict=True)
                prompts = list(map(int, prompt))
                usage_total.prompt_tokens += sum(prompts)
                usage_total.completion_tokens += sum(map(int, completion))
                usage_total.cached_tokens += sum(map(int, filter(None, cached)))
                usage_total.reasoning_tokens += sum(map(int, filter(None, reasoning)))
                if thresholds and max(prompts) > thresholds[0]:
                    for i, tokens in enumerate(prompts):
                        long_usage = tally.long_usage(thresholds, tokens)
                        if long_usage is not None:
                            long_usage.prompt_tokens += tokens
                            long_usage.completion_tokens += int(completion[i])
                            long_usage.cached_tokens += int(cached[i] or 0)
                            long_usage.reasoning_tokens += int(reasoning[i] or 0)
        if spilled and changed:
            index.store(changed)
        self.first_uses += first_uses
        self.first_use_hash += first_use_hash
        return rows, retries, number

    def _too_long(self, path: Path, number: int) -> None:
        self.problems.add(
            "invalid_input_line",
            f"line is longer than {self.options.max_line_bytes:,} bytes (max_line_bytes); skipped",
            where=f"{path}:{number}",
        )

    def _tally(self, shard: int | None, model: str | None) -> Tally:
        tally = self.tallies.get((shard, model))
        if tally is None:
            tally = self.tallies[(shard, model)] = Tally()
        return tally

    def _learn_model(self, name: bytes) -> str | None:
        """How a plain line's model is counted (deployment map applied); None: parse it."""
        if not name or b"\\" in name:
            return None
        text = name.decode("utf-8", "surrogateescape")
        self.models[name] = self.options.deployment_map.get(text, text)
        return self.models[name]

    def _join_slow(
        self,
        key: bytes,
        raw: bytes,
        number: int,
        path: Path,
        packed: int,
        shard: int | None,
        rows: list[bytes],
        retries: list[bytes],
    ) -> None:
        """One request the general way: parse its output line, build the row as a dict."""
        output: Any = None
        file_index = file_of(packed)
        if file_index >= 0:
            offset = offset_of(packed)
            data = os.pread(self.outputs.fds[file_index], length_of(packed), offset)
            if offset == 0 and data.startswith(BOM):
                data = data[3:]
            try:
                output = orjson.loads(data)
            except orjson.JSONDecodeError:
                self.problems.counts["invalid_output_line"] += 1
                self.bad_outputs.append(packed)
        body: Any = None
        http_status: int | None
        if output.__class__ is dict:
            outcome = classify(output)
            status, http_status = outcome.status, outcome.http_status
            code, message, body = outcome.code, outcome.message, outcome.body
            if code == UNRECOGNIZED:
                self._note_unrecognized(packed, key, data)
        else:
            status = MISSING
            http_status = code = message = None
            origin = shard if shard is not None else self._shard_of(number, raw)
            if origin is not None:
                shard_status = self.shard_status[origin]
                status = _NEVER_CAME_BACK.get(shard_status, MISSING) if shard_status else MISSING
                batch_error = self.shard_error[origin]
                if batch_error is not None:  # the whole batch failed
                    status = FAILED
                    code, message = batch_error
        self.total.counts[status] += 1
        if shard is not None and self.groups:
            group = self.groups[shard]
            group.requests += 1
            group.counts[status] += 1
        cid = text_of_key(key)
        if code is not None:
            self._count_error(code, status, cid, message, packed, f"{path}:{number}")
        usage = body.get("usage") if body.__class__ is dict else None
        request: Any = None
        if usage.__class__ is dict:
            model = body.get("model")
            if model.__class__ is not str or not model:
                request = _request_of(raw)
                model = request_model(request)
            model = self.options.deployment_map.get(model, model)
            tally = self._tally(shard, model)
            add_usage(tally.usage, usage)
            thresholds = self.options.pricing.thresholds
            prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
            if thresholds and prompt.__class__ is int:
                long_usage = tally.long_usage(thresholds, prompt)
                if long_usage is not None:
                    add_usage(long_usage, usage)
            if self.counter is not None:
                if request is None:
                    request = _request_of(raw)
                if request.__class__ is dict:
                    tally.add_estimate(thresholds, count_input(self.counter, request))
        else:
            usage = None
        if status != SUCCEEDED and self.options.should_retry(status, http_status, code):
            retries.append(raw if raw.endswith(b"\n") else raw + b"\n")
        if self.options.include_request and request is None:
            request = _request_of(raw)
        encode = self.encoder.encode
        rows.append(encode(cid, status, number, http_status, code, message, body, usage, request))

    def _note_unrecognized(self, packed: int, key: bytes, line: bytes) -> None:
        self.problems.counts[UNRECOGNIZED] += 1
        if len(self.unrecognized) < EXAMPLES:
            snippet = line[:160].decode("utf-8", "replace").rstrip()
            self.unrecognized.append((packed, text_of_key(key), snippet))

    def _count_error(
        self,
        code: str,
        status: str,
        cid: str,
        message: str | None,
        packed: int,
        input_where: str,
    ) -> None:
        stat = self.error_stats.get(code)
        if stat is not None:
            stat.count += 1
            return
        self.error_stats[code] = ErrorStat(code, 1, status, cid, message, "")
        self.error_where[code] = packed if packed else input_where

    # --- several processes: a worker's join hands its counts to this one --------------

    def part(self) -> JoinPart:
        """What this (worker's) join counted, to send to the parent."""
        return JoinPart(
            counts=self.total.counts,
            groups=[(group.requests, group.counts) for group in self.groups],
            tallies=self.tallies,
            error_stats=self.error_stats,
            error_where=self.error_where,
            bad_outputs=self.bad_outputs,
            unrecognized=self.unrecognized,
            retry_count=self.retry_count,
            problem_counts=dict(self.problems.counts),
            problems=self.problems.examples,
            claims=(self.first_uses, self.first_use_hash),
        )

    def absorb(self, part: JoinPart) -> None:
        """Add a worker's counts; parts come in input order, so first examples stay first."""
        for status, count in part.counts.items():
            self.total.counts[status] += count
        for mine, (requests, counts) in zip(self.groups, part.groups, strict=True):
            mine.requests += requests
            for status, count in counts.items():
                mine.counts[status] += count
        for key, tally in part.tallies.items():
            self._tally(*key).absorb(tally)
        for code, stat in part.error_stats.items():
            if code in self.error_stats:
                self.error_stats[code].count += stat.count
            else:
                self.error_stats[code] = stat
                self.error_where[code] = part.error_where[code]
        self.bad_outputs.extend(part.bad_outputs)
        self.unrecognized.extend(part.unrecognized[: EXAMPLES - len(self.unrecognized)])
        self.retry_count += part.retry_count
        self.problems.absorb(part.problem_counts, part.problems)
        self.first_uses += part.claims[0]
        self.first_use_hash += part.claims[1]

    def settle_claims(self, expected: tuple[int, int]) -> None:
        """Workers cannot mark the entries they used in this process's index; their counts
        and hash sums prove that every output line was claimed once (``expected`` is the
        index's :meth:`~OutputIndex.claim_totals`). When they do not add up (unknown
        custom_ids, or one custom_id in two parts of the input), one quick pass over the
        input's custom_ids marks the entries and finds duplicates exactly."""
        if expected == (self.first_uses, self.first_use_hash):
            self.all_outputs_used = True
            return
        index = self.outputs.index
        self.problems.forget("duplicate_input")
        index.clear_claims()
        source = self.plan.source
        assert source is not None
        for number, key in request_keys(source):
            if index.claim(key) is False:
                self.problems.add(
                    "duplicate_input",
                    "custom_id appears more than once in the input; every copy gets the same"
                    " result",
                    custom_id=text_of_key(key),
                    where=f"{source}:{number}",
                )

    def finish(self, results_path: Path, retry_path: Path) -> MergeResult:
        """Report what pass 2 could not: unknown custom_ids, duplicates, costs."""
        outputs = self.outputs
        problems = self.problems
        unknown: list[tuple[bytes, int]] = []
        unused = () if self.all_outputs_used else outputs.index.unused_outputs()
        for key, packed in unused:
            problems.counts["unknown_custom_id"] += 1
            if len(unknown) < EXAMPLES:
                unknown.append((key, packed))
        bad = self.bad_outputs[:EXAMPLES]
        outputs.locate(
            [packed for _, packed in unknown]
            + bad
            + [packed for packed, _, _ in self.unrecognized]
            + [p for p in self.error_where.values() if isinstance(p, int)]
            + [p for _, kept, lost, _ in outputs.duplicate_examples for p in (kept, lost)]
        )
        for packed in bad:
            problems.examples.append(
                Problem(
                    "invalid_output_line",
                    "not valid JSON; its request counts as missing",
                    where=outputs.where(packed),
                )
            )
        for packed, custom_id, snippet in self.unrecognized:
            problems.examples.append(
                Problem(
                    UNRECOGNIZED,
                    f"not a line shape merge knows; its request counts as failed and is"
                    f" retried: {snippet}",
                    custom_id=custom_id,
                    where=outputs.where(packed),
                )
            )
        for key, packed in unknown:
            problems.examples.append(
                Problem(
                    "unknown_custom_id",
                    "output line for a custom_id that is not in the input",
                    custom_id=text_of_key(key),
                    where=outputs.where(packed),
                )
            )
        for code, where in self.error_where.items():
            self.error_stats[code].example_where = (
                where if isinstance(where, str) else outputs.where(where)
            )
        outputs.describe_duplicates()
        self.total.requests = sum(self.total.counts.values())
        warnings: list[str] = []
        models = price_tallies(
            self.tallies, self.total, self.groups, self.options.pricing, warnings
        )
        examples = sorted(problems.examples, key=lambda p: PROBLEM_KINDS.index(p.kind))
        return MergeResult(
            results_path=results_path,
            retry_path=retry_path if self.retry_count else None,
            retry_count=self.retry_count,
            total=self.total,
            shards=self.groups,
            errors=sorted(self.error_stats.values(), key=lambda s: (-s.count, s.code)),
            problem_counts={kind: problems.counts[kind] for kind in PROBLEM_KINDS},
            problems=examples,
            notes=list(self.plan.notes),
            warnings=warnings,
            index_spilled=outputs.index.spilled,
            output_files=[str(path) for path in outputs.files],
            models=models,
            resources=by_resource(self.groups, [shard.resource for shard in self.plan.shards]),
        )


class _WriteBehind:
    """Writes blocks of rows in a thread: a merge writes about as many bytes as it reads, and
    the write system calls (which release the GIL) then overlap the join on a second core.

    Every ``_KICK_BYTES`` the disk write-back of an ``AtomicWriter``'s file is started, so
    that the final fsync has little left to wait for."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer
        self.fd = writer.fileno() if isinstance(writer, AtomicWriter) else -1
        self.blocks: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._drain, name="merge-writer", daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        unsynced = 0
        while (data := self.blocks.get()) is not None:
            if self.error is None:
                try:
                    self.writer.write_raw(data)
                    unsynced += len(data)
                    if unsynced >= _KICK_BYTES and self.fd >= 0:
                        unsynced = 0
                        os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_DONTNEED)
                except BaseException as exc:  # handed to the joining thread
                    self.error = exc

    def write_raw(self, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.blocks.put(data)

    def close(self) -> None:
        """Wait for every block to be written; re-raise a write error here."""
        self.blocks.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


def _request_of(raw: bytes) -> Any:
    """A request line parsed, or None when it is not JSON (its custom_id was still found at
    its start, so it gets its row)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _shard_at(ranges: tuple[list[int], list[int], list[int]], number: int) -> int | None:
    firsts, lasts, positions = ranges
    at = bisect.bisect_right(firsts, number) - 1
    return positions[at] if at >= 0 and number <= lasts[at] else None
