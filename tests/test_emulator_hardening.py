"""The emulator under hostile clients (issue 15, item 9): bounded multipart, a 400 for a
malformed header, quiet when clients go away, a real backlog, idle connections closed, and
a bounded load test (latency and memory are reported, not asserted as timings)."""

from __future__ import annotations

import socket
import struct
import time
import uuid
from collections.abc import Iterator

import pytest

from benchmarks.bench_emulator import load, peak_rss_mb, start_emulator
from jsonl_batch.emulator import Emulator, EmulatorConfig
from jsonl_batch.emulator.multipart import MAX_PARTS

API = "?api-version=2024-10-21"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(speed=1000, idle_timeout=0.5)) as server:
        yield server


def _connect(emu: Emulator) -> socket.socket:
    return socket.create_connection(("127.0.0.1", emu.port), timeout=10)


def _exchange(emu: Emulator, head: str, body: bytes = b"") -> bytes:
    with _connect(emu) as sock:
        sock.sendall(head.encode() + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer and b"}" in answer:
                break
        return answer


def _get(emu: Emulator, path: str, *, close: bool = False) -> bytes:
    head = f"GET /openai/{path}{API} HTTP/1.1\r\napi-key: {emu.api_key}\r\n"
    return (head + ("Connection: close\r\n" if close else "") + "\r\n").encode()


def _upload_head(emu: Emulator, boundary: str, length: int) -> str:
    return (
        f"POST /openai/files{API} HTTP/1.1\r\nHost: x\r\napi-key: {emu.api_key}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    )


def test_many_form_fields_are_refused_before_they_fill_memory(emu: Emulator) -> None:
    # 15,000 fields of 64 KB took the emulator to 1 GB: every field was kept
    boundary = uuid.uuid4().hex
    field = "x" * 1000
    body = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\n{field}\r\n'
        for i in range(MAX_PARTS + 50)
    )
    body += f"--{boundary}--\r\n"
    answer = _exchange(emu, _upload_head(emu, boundary, len(body)), body.encode())
    assert answer.startswith(b"HTTP/1.1 400") and b"too many parts" in answer
    big = f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n'
    big += "y" * 100_000 + f"\r\n--{boundary}--\r\n"
    answer = _exchange(emu, _upload_head(emu, boundary, len(big)), big.encode())
    assert answer.startswith(b"HTTP/1.1 400") and b"larger than 65536 bytes" in answer


@pytest.mark.parametrize("length", ["abc", "-5", "1e3"])
def test_a_malformed_content_length_gets_a_400(emu: Emulator, length: str) -> None:
    head = (
        f"POST /openai/batches{API} HTTP/1.1\r\nHost: x\r\napi-key: {emu.api_key}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )
    answer = _exchange(emu, head)
    assert answer.startswith(b"HTTP/1.1 400"), answer  # was: no answer at all
    assert b"is not a number of bytes" in answer


def test_clients_that_go_away_leave_no_traceback(
    emu: Emulator, capfd: pytest.CaptureFixture[str]
) -> None:
    with _connect(emu) as sock:  # headers cut short
        sock.sendall(b"GET /openai/batches HTTP/1.1\r\nHost:")
    with _connect(emu) as sock:  # a body cut short, then a reset
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.sendall(_upload_head(emu, "b", 100_000).encode() + b"--b\r\n")
    with _connect(emu) as sock:  # a reset while the answer is on its way
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.sendall(
            f"GET /openai/batches{API} HTTP/1.1\r\napi-key: {emu.api_key}\r\n\r\n".encode()
        )
    time.sleep(0.3)
    assert _exchange(emu, f"GET /openai/batches{API} HTTP/1.1\r\napi-key: {emu.api_key}\r\n"
                     "Connection: close\r\n\r\n").startswith(b"HTTP/1.1 200")  # fmt: skip
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception" not in err, err


def test_idle_connections_are_closed_and_the_backlog_is_real(emu: Emulator) -> None:
    assert emu._server is not None and emu._server.request_queue_size >= 128  # was 5
    with _connect(emu) as sock:  # half-open: connected, says nothing
        assert sock.recv(1) == b""  # closed by the server after idle_timeout (0.5 s)
    with _connect(emu) as sock:  # keep-alive, then idle
        sock.sendall(_get(emu, "files"))
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200")  # answered, then closed when idle


def test_load_twenty_clients_no_errors_and_bounded_memory() -> None:
    # bounded: 20 clients for 3 s each way (benchmarks/bench_emulator.py runs 20 s)
    proc, base_url, key = start_emulator()
    try:
        kept = load(base_url, key, clients=20, seconds=3)
        fresh = load(base_url, key, clients=20, seconds=3, reconnect=True)
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
    assert kept["errors"] == [] and fresh["errors"] == []
    assert kept["requests"] > 100 and fresh["requests"] > 100
    assert rss < 200, rss
    print(f"load: keep-alive {kept}, reconnect {fresh}, peak RSS {rss:.0f} MB")
