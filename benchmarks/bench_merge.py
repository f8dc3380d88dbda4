"""merge: join outputs to inputs, against the same join done by DuckDB, in the same run.

The baseline reads the input and the output + error files with ``read_json``, left-joins on
``custom_id``, keeps the input order and writes JSON lines. DuckDB is an optional benchmark
dependency (``pip install -e '.[bench]'``); without it the baseline row is left out.

    python -m benchmarks.bench_merge --requests 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ._util import row
from .generate import generate_requests

_ANSWERS = [
    "The customer asks about a refund for a delayed shipment; category: billing.",
    "Summary: revenue grew 12% in the quarter, driven by the new product line. Risks: supply, "
    "pricing pressure and currency exposure in the European market.",
    '[{"type": "organisation", "value": "Contoso"}, {"type": "date", "value": "2024-05-01"}]',
    "Positive sentiment overall; the reviewer praises delivery speed but dislikes packaging.",
]
_FILTER = {
    "hate": {"filtered": False, "severity": "safe"},
    "self_harm": {"filtered": False, "severity": "safe"},
    "sexual": {"filtered": False, "severity": "safe"},
    "violence": {"filtered": False, "severity": "safe"},
}


def _success(custom_id: str, rng: random.Random) -> dict[str, Any]:
    prompt = rng.randint(150, 900)
    completion = rng.randint(10, 300)
    return {
        "id": f"batch_req_{rng.getrandbits(64):016x}",
        "custom_id": custom_id,
        "response": {
            "status_code": 200,
            "request_id": f"{rng.getrandbits(128):032x}",
            "body": {
                "id": f"chatcmpl-{rng.getrandbits(64):016x}",
                "object": "chat.completion",
                "created": 1722477079,
                "model": "gpt-4o-2024-08-06",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "logprobs": None,
                        "message": {"role": "assistant", "content": rng.choice(_ANSWERS)},
                        "content_filter_results": _FILTER,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                    "prompt_tokens_details": {"cached_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 0},
                },
                "system_fingerprint": "fp_a9bfe9d51d",
            },
        },
        "error": None,
    }


def _failure(custom_id: str, rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.3:
        return {
            "id": f"batch_req_{rng.getrandbits(64):016x}",
            "custom_id": custom_id,
            "response": None,
            "error": {
                "code": "batch_expired",
                "message": "This request could not be executed before the completion window "
                "expired.",
            },
        }
    status, code = rng.choice(((429, "rate_limit_exceeded"), (400, "context_length_exceeded")))
    return {
        "id": f"batch_req_{rng.getrandbits(64):016x}",
        "custom_id": custom_id,
        "response": {
            "status_code": status,
            "request_id": f"{rng.getrandbits(128):032x}",
            "body": {
                "error": {
                    "message": "The request failed.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": code,
                }
            },
        },
        "error": None,
    }


def generate_outputs(
    input_path: Path, n_requests: int, out_dir: Path, *, seed: int = 0
) -> tuple[Path, Path]:
    """Output + error files for ``req-00000000``..: 96% succeed, 3% fail, 1% never return,
    in shuffled order (the service promises no order)."""
    import orjson

    rng = random.Random(seed)
    order = list(range(n_requests))
    rng.shuffle(order)
    output = out_dir / f"{input_path.stem}.output.jsonl"
    errors = out_dir / f"{input_path.stem}.errors.jsonl"
    with open(output, "wb", buffering=1 << 20) as ok, open(errors, "wb", buffering=1 << 20) as bad:
        for i in order:
            draw = rng.random()
            custom_id = f"req-{i:08d}"
            if draw < 0.96:
                ok.write(orjson.dumps(_success(custom_id, rng), option=orjson.OPT_APPEND_NEWLINE))
            elif draw < 0.99:
                bad.write(orjson.dumps(_failure(custom_id, rng), option=orjson.OPT_APPEND_NEWLINE))
    return output, errors


DUCKDB_JOIN = """
COPY (
    WITH requests AS (
        SELECT custom_id, row_number() OVER () AS position
        FROM read_json(?, format = 'newline_delimited', columns = {{custom_id: 'VARCHAR'}})
    ),
    results AS (
        SELECT * FROM read_json([?, ?], format = 'newline_delimited', union_by_name = true,
                                maximum_object_size = 67108864)
    )
    SELECT
        r.custom_id,
        CASE
            WHEN o.custom_id IS NULL THEN 'missing'
            WHEN o.response.status_code = 200 THEN 'succeeded'
            WHEN o.error.code = 'batch_expired' THEN 'expired'
            ELSE 'failed'
        END AS status,
        o.response.status_code AS status_code,
        o.error AS error,
        o.response.body.usage AS usage,
        o.response.body AS response
    FROM requests r LEFT JOIN results o ON o.custom_id = r.custom_id
    ORDER BY r.position
) TO '{out}' (FORMAT JSON)
"""


def duckdb_merge(input_path: Path, output: Path, errors: Path, out: Path) -> None:
    """The baseline: the same join in DuckDB (read_json, left join, input order, write)."""
    import duckdb

    with duckdb.connect() as con:
        con.execute("SET enable_progress_bar = false")
        con.execute(
            DUCKDB_JOIN.format(out=str(out).replace("'", "''")),
            [str(input_path), str(output), str(errors)],
        )


def _warm(*paths: Path) -> None:
    """Read the files once so that both contestants start from the page cache, whatever
    ran before them (otherwise whoever runs first pays for any disk reads)."""
    for path in paths:
        with open(path, "rb", buffering=0) as stream:
            while stream.read(1 << 23):
                pass


def _child(kind: str, input_path: Path, output: Path, errors: Path, out_dir: Path) -> dict:
    """Run one merge in a fresh process; returns its seconds and peak RSS (MB)."""
    _warm(input_path, output, errors)
    script = f"""
import json, resource, time
from pathlib import Path
start = time.perf_counter()
if {kind!r} == "ours":
    from jsonl_batch.merge import merge
    merge({str(input_path)!r}, [{str(output)!r}], [{str(errors)!r}], out_dir={str(out_dir)!r})
else:
    from benchmarks.bench_merge import duckdb_merge
    duckdb_merge(Path({str(input_path)!r}), Path({str(output)!r}), Path({str(errors)!r}),
                 Path({str(out_dir)!r}) / "duckdb.results.jsonl")
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds,
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "workers_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}}))
"""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=root
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _has_duckdb() -> bool:
    try:
        import duckdb  # noqa: F401
    except ImportError:
        return False
    return True


def measure(tmpdir: Path, requests: int, *, baseline: bool = True) -> list[dict[str, Any]]:
    """Generate ``requests`` requests and their results, merge them both ways."""
    tmpdir.mkdir(parents=True, exist_ok=True)
    input_path = tmpdir / f"merge-{requests}.jsonl"
    generate_requests(input_path, requests, seed=7, mean_words=60)
    output, errors = generate_outputs(input_path, requests, tmpdir)
    os.sync()  # neither contestant should pay for writing back the generated files
    total = sum(p.stat().st_size for p in (input_path, output, errors))
    what = f"{requests:,} requests, {total / 1e6:,.0f} MB in"
    ours = _child("ours", input_path, output, errors, tmpdir)
    theirs = None
    if baseline and _has_duckdb():
        theirs = _child("duckdb", input_path, output, errors, tmpdir)
    for path in (input_path, output, errors):
        path.unlink()
    if ours["workers_rss"]:
        what += f", largest worker peak RSS {ours['workers_rss']:.0f} MB"
    return [
        row(
            "merge",
            what + (f" (DuckDB peak RSS {theirs['rss']:.0f} MB)" if theirs else ""),
            total / 1e6 / ours["seconds"],
            "duckdb read_json + left join + ordered write" if theirs else None,
            total / 1e6 / theirs["seconds"] if theirs else None,
            ours["rss"],
        )
    ]


def run(tmpdir: Path, requests: int = 200_000) -> list[dict[str, Any]]:
    rows = measure(tmpdir, requests)
    rows += measure(tmpdir, requests * 2, baseline=False)
    rows[-1]["what"] = f"peak RSS at 2x the files ({requests * 2:,} requests)"
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder")
    parser.add_argument("--no-double", action="store_true", help="skip the 2x memory check")
    parser.add_argument("--no-baseline", action="store_true", help="skip DuckDB")
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-merge-", dir=args.dir) as tmp:
        started = time.perf_counter()
        rows = measure(Path(tmp), args.requests, baseline=not args.no_baseline)
        if not args.no_double:
            rows += measure(Path(tmp), args.requests * 2, baseline=False)
        for item in rows:
            print(json.dumps(item))
        print(f"# {time.perf_counter() - started:.0f} s in all", file=sys.stderr)


if __name__ == "__main__":
    main()
