"""Sizes of remote images, read from their first bytes (``estimate --fetch-image-sizes``).

A request that points at an image by URL does not say how big it is, and an image's token
cost depends on its size. This is the only place jsonl-batch goes to the network on its own,
and only when the user asks: each URL is fetched once, with a ``Range`` request for the
first bytes, a short timeout and a size cap; the header bytes give the size without
decoding pixels.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from .images import image_size_from_bytes

_FIRST_BYTES = 1 << 16


class RemoteImageSizes:
    """``(width, height)`` of an image URL, or None when it cannot be read; one fetch per URL.

    Pass an instance as ``TokenCounter(image_size=...)``.
    """

    def __init__(self, *, timeout: float = 5.0, max_bytes: int = 1 << 20) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.sizes: dict[str, tuple[int, int] | None] = {}

    def __call__(self, url: str) -> tuple[int, int] | None:
        if url not in self.sizes:
            self.sizes[url] = self._fetch(url) if url.startswith(("http://", "https://")) else None
        return self.sizes[url]

    def _fetch(self, url: str) -> tuple[int, int] | None:
        request = urllib.request.Request(
            url,
            headers={"Range": f"bytes=0-{self.max_bytes - 1}", "User-Agent": "jsonl-batch"},
        )
        data = b""
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                while len(data) < self.max_bytes:
                    # a server that ignores Range sends the whole image: stop at the cap
                    block = response.read(min(_FIRST_BYTES, self.max_bytes - len(data)))
                    if not block:
                        break
                    data += block
                    size = image_size_from_bytes(data)
                    if size is not None:
                        return size
        except (OSError, ValueError, urllib.error.URLError):
            return None
        return image_size_from_bytes(data)
