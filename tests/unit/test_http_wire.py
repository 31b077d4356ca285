"""The ext_authz HTTP service's wire format, without sockets: what Envoy sends is read exactly,
anything else is refused with a status (never guessed at)."""

from __future__ import annotations

import pytest
from mimir_edge.rls.http_wire import MAX_HEADER_BYTES, RequestParser, WireError, encode_response

CHECK = (
    b"POST /ext_authz/api/v1/push HTTP/1.1\r\nHost: rls\r\nX-Scope-OrgID: team-a\r\n"
    b"Content-Type: application/x-protobuf\r\nContent-Length: 5\r\n\r\nhello"
)


def parse_all(parser: RequestParser) -> list[object]:
    out = []
    while (request := parser.next_request()) is not None:
        out.append(request)
    return out


def test_a_check_request_is_read_with_lower_cased_headers_and_its_body() -> None:
    parser = RequestParser(max_body_bytes=100)
    parser.feed(CHECK)
    (request,) = parse_all(parser)
    assert request.method == "POST"
    assert request.path == "/ext_authz/api/v1/push"
    assert request.headers["x-scope-orgid"] == "team-a"
    assert request.headers["content-type"] == "application/x-protobuf"
    assert request.body == b"hello"
    assert request.keep_alive


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_bytes_arriving_in_pieces_give_the_same_request(chunk: int) -> None:
    parser = RequestParser(max_body_bytes=100)
    got = []
    for i in range(0, len(CHECK), chunk):
        parser.feed(CHECK[i : i + chunk])
        got += parse_all(parser)
    (request,) = got
    assert request.body == b"hello" and request.headers["x-scope-orgid"] == "team-a"


def test_pipelined_requests_come_out_in_order() -> None:
    parser = RequestParser(max_body_bytes=100)
    second = CHECK.replace(b"team-a", b"team-b").replace(b"hello", b"world")
    parser.feed(CHECK + second + b"GET /healthz HTTP/1.1\r\n\r\n")
    first, then, health = parse_all(parser)
    assert (first.headers["x-scope-orgid"], first.body) == ("team-a", b"hello")
    assert (then.headers["x-scope-orgid"], then.body) == ("team-b", b"world")
    assert (health.method, health.path, health.body) == ("GET", "/healthz", b"")


@pytest.mark.parametrize(
    ("head", "keep_alive"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
    ],
)
def test_keep_alive_follows_the_version_and_connection_header(head: bytes, keep_alive: bool) -> None:
    parser = RequestParser(max_body_bytes=100)
    parser.feed(head)
    (request,) = parse_all(parser)
    assert request.keep_alive is keep_alive


@pytest.mark.parametrize(
    ("raw", "status", "words"),
    [
        (b"POST /x HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 413, "over the limit of 100"),
        (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501, "Content-Length"),
        (b"POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "Content-Length"),
        (b"POST /x HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n", 400, "Content-Length"),
        (b"NONSENSE\r\n\r\n", 400, "request line"),
        (b"POST /x SPDY/3\r\n\r\n", 400, "request line"),
        (b"POST /x HTTP/1.1\r\nno colon here\r\n\r\n", 400, "header line"),
        (b"POST /x HTTP/1.1\r\nName : spaced\r\n\r\n", 400, "header line"),
        (b"POST /x HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400, "header line"),
    ],
)
def test_what_envoy_never_sends_is_refused_with_a_status(raw: bytes, status: int, words: str) -> None:
    parser = RequestParser(max_body_bytes=100)
    parser.feed(raw)
    with pytest.raises(WireError, match=words) as refused:
        parser.next_request()
    assert refused.value.status == status


def test_endless_headers_are_refused_before_the_buffer_grows_without_bound() -> None:
    parser = RequestParser(max_body_bytes=100)
    parser.feed(b"POST /x HTTP/1.1\r\n" + b"X-Filler: " + b"a" * MAX_HEADER_BYTES)
    with pytest.raises(WireError) as refused:
        parser.next_request()
    assert refused.value.status == 431


def test_responses_carry_their_length_and_close_when_asked() -> None:
    kept = encode_response(429, [("retry-after", "3")], b"slow down\n")
    assert kept == b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 10\r\nretry-after: 3\r\n\r\nslow down\n"
    closed = encode_response(400, body=b"bad", keep_alive=False)
    assert closed.startswith(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 3\r\nconnection: close\r\n\r\n")
    assert encode_response(299).startswith(b"HTTP/1.1 299 Unknown\r\n")


def test_a_repeated_header_keeps_every_value_joined_as_envoys_grpc_check_has_it() -> None:
    parser = RequestParser(max_body_bytes=100)
    parser.feed(b"POST /x HTTP/1.1\r\nX-Scope-OrgID: a\r\nx-scope-orgid: b\r\n\r\n")
    (request,) = parse_all(parser)
    assert request.headers["x-scope-orgid"] == "a,b"
    assert parser.buffered == 0
