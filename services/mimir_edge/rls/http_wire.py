"""HTTP/1.1 for the ext_authz HTTP service, sans I/O: bytes in, requests out; answers to bytes.

Only what Envoy's ext_authz HTTP client sends is accepted: one request at a time on a keep-alive
connection, the body framed by Content-Length. Anything else gets a clear status and the
connection closed, never a guess.
"""

from __future__ import annotations

import http
from collections.abc import Iterable
from dataclasses import dataclass

#: Envoy's own default limit for request headers is 60 KiB.
MAX_HEADER_BYTES = 64 * 1024
#: Longer Content-Length values are refused before int() (an exabyte has 19 digits).
_MAX_LENGTH_DIGITS = 18
#: Inside a head only CRLF ends a line: a bare CR or LF (or a NUL) could hide a header in another.
_FORBIDDEN_IN_HEAD = ("\r", "\n", "\0")


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    #: Lower-cased names; a repeated header's values joined with "," (as Envoy's gRPC Check has them).
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


class WireError(Exception):
    """The bytes are not a request this server serves; answer `status` and close."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class RequestParser:
    """Feed bytes as they arrive; `next_request()` returns each complete request in order."""

    def __init__(self, max_body_bytes: int):
        self._max_body_bytes = max_body_bytes
        self._buffer = bytearray()
        self._head: tuple[str, str, dict[str, str], bool] | None = None
        self._body_length = 0

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Bytes fed and not yet returned as requests."""
        return len(self._buffer)

    def next_request(self) -> Request | None:
        """The next complete request, None until one is; raises WireError on bad input."""
        if self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEADER_BYTES:
                    raise WireError(431, f"request headers over {MAX_HEADER_BYTES} bytes")
                return None
            if end > MAX_HEADER_BYTES:
                raise WireError(431, f"request headers over {MAX_HEADER_BYTES} bytes")
            head = bytes(self._buffer[:end])
            del self._buffer[: end + 4]
            self._head = self._parse_head(head)
        if len(self._buffer) < self._body_length:
            return None
        method, path, headers, keep_alive = self._head
        # Through a view: one copy of the body, not two (a bytearray slice is a copy of its own).
        with memoryview(self._buffer) as view:
            body = bytes(view[: self._body_length])
        del self._buffer[: self._body_length]
        self._head = None
        return Request(method, path, headers, body, keep_alive)

    def _parse_head(self, head: bytes) -> tuple[str, str, dict[str, str], bool]:
        text = head.decode("latin-1")
        request_line, *lines = text.split("\r\n")
        if any(c in line for line in (request_line, *lines) for c in _FORBIDDEN_IN_HEAD):
            raise WireError(400, "bare CR, LF or NUL in the request head")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise WireError(400, f"bad request line {request_line[:100]!r}")
        method, path, version = parts
        headers: dict[str, str] = {}
        for line in lines:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip() or line[0] in " \t":
                raise WireError(400, f"bad header line {line[:100]!r}")
            key, value = name.lower(), value.strip(" \t")
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        if "transfer-encoding" in headers:
            raise WireError(501, "only Content-Length bodies are served, not Transfer-Encoding")
        length_text = headers.get("content-length", "0")
        if not (length_text.isascii() and length_text.isdigit() and len(length_text) <= _MAX_LENGTH_DIGITS):
            raise WireError(400, f"bad Content-Length {length_text[:40]!r}")
        length = int(length_text)
        if length > self._max_body_bytes:
            raise WireError(413, f"body of {length} bytes is over the limit of {self._max_body_bytes} bytes")
        self._body_length = length
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        return method, path, headers, keep_alive


def encode_response(
    status: int,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    *,
    keep_alive: bool = True,
    head: bool = False,
) -> bytes:
    """One HTTP/1.1 response with its Content-Length (and Connection: close when closing). For a
    HEAD request (`head`), the length is the body's but the body is not sent: the client reads none."""
    lines = [f"HTTP/1.1 {status} {_phrase(status)}", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if not keep_alive:
        lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head else body)


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
