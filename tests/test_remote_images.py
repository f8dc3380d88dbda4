"""``--fetch-image-sizes``: remote image sizes read from the first bytes, one fetch per URL."""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from jsonl_batch.tokens import RemoteImageSizes, TokenCounter, image_tokens


def _png(width: int, height: int) -> bytes:
    """A valid PNG header followed by a large body (the size is in the first 24 bytes)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    ihdr = struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return b"\x89PNG\r\n\x1a\n" + ihdr + b"\x00" * 500_000


IMAGES = {"/wide.png": _png(2048, 1024), "/tall.png": _png(512, 1500)}


class _Server(BaseHTTPRequestHandler):
    requests: ClassVar[list[tuple[str, str | None]]] = []
    honour_range = True

    def do_GET(self) -> None:
        body = IMAGES.get(self.path)
        self.requests.append((self.path, self.headers.get("Range")))
        if body is None:
            self.send_error(404)
            return
        wanted = self.headers.get("Range")
        if wanted and self.honour_range:
            end = int(wanted.split("-")[1])
            body = body[: end + 1]
            self.send_response(206)
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def image_server() -> Iterator[str]:
    _Server.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("honour_range", [True, False])
def test_sizes_come_from_the_first_bytes_once_per_url(
    image_server: str, honour_range: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_Server, "honour_range", honour_range)
    sizes = RemoteImageSizes(timeout=5)
    assert sizes(f"{image_server}/wide.png") == (2048, 1024)
    assert sizes(f"{image_server}/wide.png") == (2048, 1024)
    assert sizes(f"{image_server}/tall.png") == (512, 1500)
    assert [path for path, _ in _Server.requests] == ["/wide.png", "/tall.png"]
    assert all(wanted and wanted.startswith("bytes=0-") for _, wanted in _Server.requests)


def test_unreadable_urls_give_no_size(image_server: str) -> None:
    sizes = RemoteImageSizes(timeout=2)
    assert sizes(f"{image_server}/missing.png") is None
    assert sizes("http://127.0.0.1:9/refused.png") is None  # nothing listens on port 9
    assert sizes("file:///etc/passwd") is None  # only http(s) is ever fetched


def test_the_counter_counts_a_fetched_image_exactly(image_server: str) -> None:
    url = f"{image_server}/wide.png"
    line = {
        "url": "/v1/chat/completions",
        "body": {
            "model": "gpt-4o",
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
            ],
        },
    }
    fetched = TokenCounter(image_size=RemoteImageSizes()).count_line(line)
    offline = TokenCounter().count_line(line)
    assert "remote_image_size_unknown" not in fetched.flags
    assert "remote_image_size_unknown" in offline.flags
    assert fetched.input_tokens - offline.input_tokens == (
        image_tokens("gpt-4o", 2048, 1024, None) - image_tokens("gpt-4o", None, None, None)
    )
