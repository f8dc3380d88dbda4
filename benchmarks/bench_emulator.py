"""emulator: latency percentiles and peak memory under concurrent clients.

N client threads loop for a fixed time over the calls a batch client makes (list batches,
list files, upload a small file) against an emulator running in its own process
(``jsonl-batch emulator``), so its peak RSS (``VmHWM``) is its own: once on keep-alive
connections, once with a new connection per request (what a listen backlog of 5 stalled:
dropped SYNs wait a second to be sent again). Reported: requests, errors, p50/p99/max
latency, peak RSS.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

API = "?api-version=2024-10-21"


def start_emulator() -> tuple[subprocess.Popen[bytes], str, str]:
    """A ``jsonl-batch emulator`` process on a free port: (process, base URL, key)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "jsonl_batch", "emulator", "--port", "0", "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    return proc, info["base_url"], info["api_key"]


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _upload_body() -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    line = json.dumps(
        {
            "custom_id": "x",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        }
    )
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n'
        f"Content-Type: application/jsonl\r\n\r\n{line}\n\r\n--{boundary}--\r\n"
    ).encode()
    return body, f"multipart/form-data; boundary={boundary}"


def load(
    base_url: str, key: str, clients: int, seconds: float, *, reconnect: bool = False
) -> dict[str, Any]:
    """Run ``clients`` threads for ``seconds`` (``reconnect``: a new connection per
    request); latencies in milliseconds."""
    host = urlsplit(base_url)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    upload, content_type = _upload_body()
    stop_at = time.monotonic() + seconds

    def client(number: int) -> None:
        conn = http.client.HTTPConnection(host.hostname or "127.0.0.1", host.port, timeout=30)
        headers = {"api-key": key}
        mine: list[float] = []
        calls = [
            ("GET", f"/openai/batches{API}&limit=20", None, {}),
            ("GET", f"/openai/files{API}", None, {}),
            ("POST", f"/openai/files{API}", upload, {"Content-Type": content_type}),
        ]
        step = number
        while time.monotonic() < stop_at:
            method, path, body, extra = calls[step % len(calls)]
            step += 1
            started = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers={**headers, **extra})
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    with lock:
                        errors.append(f"{method} {path}: HTTP {response.status}")
            except OSError as exc:
                with lock:
                    errors.append(f"{method} {path}: {exc!r}")
                conn.close()
                conn = http.client.HTTPConnection(host.hostname or "127.0.0.1", host.port)
                continue
            mine.append((time.perf_counter() - started) * 1000)
            if reconnect:
                conn.close()
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1)

    return {
        "clients": clients,
        "seconds": seconds,
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1], 1),
    }


def run(tmpdir: Path, clients: int = 20, seconds: float = 20.0) -> list[dict[str, Any]]:
    rows = []
    for reconnect in (False, True):
        proc, base_url, key = start_emulator()
        try:
            figures = load(base_url, key, clients, seconds, reconnect=reconnect)
            rss = peak_rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(10)
        rate = figures["requests"] / seconds
        how = "a connection per request" if reconnect else "keep-alive"
        rows.append(
            {
                "command": "emulator",
                "what": f"{clients} clients x {seconds:.0f} s, {how}: {figures['requests']:,}"
                f" requests ({rate:,.0f}/s), {len(figures['errors'])} errors, p50"
                f" {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, max {figures['max_ms']} ms",
                "mb_per_s": None,
                "peak_rss_mb": round(rss, 1),
            }
        )
    return rows


if __name__ == "__main__":
    print(json.dumps(run(Path("."), seconds=float(sys.argv[1]) if sys.argv[1:] else 20.0)))
