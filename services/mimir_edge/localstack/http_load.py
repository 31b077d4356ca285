"""A minimal HTTP/1.1 keep-alive client for load: one prepared request, sent again and again.
Used by bench/loadgen.py and by tests that need per-request timings under steady load."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
from urllib.parse import urlparse


class Connection:
    def __init__(self, host: str, port: int, request: bytes):
        self.host, self.port, self.request = host, port, request
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if length:
            await self.reader.readexactly(length)
        if close:
            self.writer.close()
            self.writer = None
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
            self.writer = None


def build_request(url: str, body: bytes, headers: dict[str, str]) -> tuple[str, int, bytes]:
    parsed = urlparse(url)
    lines = [
        f"POST {parsed.path or '/'} HTTP/1.1",
        f"Host: {parsed.hostname}:{parsed.port}",
        f"Content-Length: {len(body)}",
    ]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return parsed.hostname or "127.0.0.1", parsed.port or 80, ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def post_once(url: str, body: bytes, headers: dict[str, str], timeout_s: float = 10.0) -> int:
    """One blocking POST on a fresh connection; the status code (0 when nothing answered)."""
    parsed = urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port or 80, timeout=timeout_s)
    try:
        conn.request("POST", parsed.path or "/", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return int(response.status)
    except OSError:
        return 0
    finally:
        conn.close()
