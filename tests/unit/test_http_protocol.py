"""The HTTP/1.1 client's sans-I/O core: requests as bytes, answers parsed from bytes within limits."""

from __future__ import annotations

import gzip

import pytest

from exporter.http.protocol import MAX_CHUNK_LINE, MAX_HEAD, AnswerParser, ProtocolError, request_bytes
from exporter.runtime.bounded import TooLarge

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"retCode":0}'


def parsed(data: bytes, *, limit: int = 1 << 20, step: int | None = None, close: bool = False) -> AnswerParser:
    parser = AnswerParser(limit)
    pieces = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
    for piece in pieces:
        parser.feed(piece)
    if close:
        parser.closed()
    return parser


def test_a_get_is_one_head_with_the_target_as_given():
    wire = request_bytes("GET", "/v5/x?a=1&b=%2F", "api.bybit.com", {"X-BAPI-API-KEY": "k"}, None)
    assert wire == b"GET /v5/x?a=1&b=%2F HTTP/1.1\r\nHost: api.bybit.com\r\nX-BAPI-API-KEY: k\r\n\r\n"


def test_a_post_carries_its_length_and_body():
    wire = request_bytes("POST", "/v5/y", "h:8080", {"Content-Type": "application/json"}, b'{"a":1}')
    assert wire == (
        b'POST /v5/y HTTP/1.1\r\nHost: h:8080\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}'
    )


@pytest.mark.parametrize(
    "target, headers",
    [
        ("/x", {"X-A": "v\r\nX-Evil: 1"}),
        ("/x", {"X-A": "v\nX-Evil: 1"}),
        ("/x", {"X-A": "v\r"}),
        ("/x", {"X-A\r\nX-Evil": "1"}),
        ("/x", {"X-A": "v\0"}),
        ("/x HTTP/1.1\r\nX-Evil: 1\r\n\r\nGET /y", {}),
    ],
)
def test_a_line_break_or_nul_in_a_field_or_the_target_is_refused(target, headers):
    with pytest.raises(ValueError):
        request_bytes("GET", target, "h", headers, None)


def test_an_answer_fed_a_byte_at_a_time_is_the_answer_fed_whole():
    whole, bytewise = parsed(OK).answer, parsed(OK, step=1).answer
    assert whole is not None and bytewise is not None
    assert (whole.status, whole.body, whole.keep_alive) == (200, b'{"retCode":0}', True)
    assert (bytewise.status, bytewise.body, bytewise.keep_alive) == (200, b'{"retCode":0}', True)
    assert whole.headers["content-type"] == "application/json"  # names are case-insensitive


def test_no_answer_until_its_last_byte():
    parser = parsed(OK[:-1])
    assert parser.answer is None and parser.started
    parser.feed(OK[-1:])
    assert parser.answer is not None


@pytest.mark.parametrize(
    "head, keep_alive",
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0", True),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0", False),
        (b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\nContent-Length: 0", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0", False),
    ],
)
def test_an_answer_keeps_its_connection_only_when_it_says_http_1_1_and_no_close(head, keep_alive):
    answer = parsed(head + b"\r\n\r\n").answer
    assert answer is not None and answer.keep_alive is keep_alive


def test_a_chunked_body_with_extensions_and_trailers_is_joined():
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n"
    for step in (None, 1, 3):
        answer = parsed(data, step=step).answer
        assert answer is not None and answer.body == b"hello 0123456789" and answer.keep_alive


def test_a_body_without_framing_ends_with_the_connection_and_closes_it():
    parser = parsed(b"HTTP/1.1 200 OK\r\n\r\nall of it", close=False)
    assert parser.answer is None
    parser.closed()
    assert parser.answer is not None and parser.answer.body == b"all of it" and not parser.answer.keep_alive


def test_a_body_cut_short_by_the_close_is_a_broken_answer():
    parser = parsed(OK[:-3])
    with pytest.raises(ProtocolError):
        parser.closed()
    with pytest.raises(ProtocolError):
        parsed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", close=True)
    with pytest.raises(ProtocolError):
        AnswerParser().closed()  # nothing at all


def test_interim_answers_are_skipped_and_a_204_has_no_body():
    answer = parsed(b"HTTP/1.1 100 Continue\r\n\r\n" + OK).answer
    assert answer is not None and answer.status == 200 and answer.body == b'{"retCode":0}'
    answer = parsed(b"HTTP/1.1 204 No Content\r\n\r\n").answer
    assert answer is not None and answer.status == 204 and answer.body == b"" and answer.keep_alive


def test_a_gzip_body_is_inflated():
    body = gzip.compress(b'{"retCode":0,"result":{}}')
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    answer = parsed(head + body, step=7).answer
    assert answer is not None and answer.body == b'{"retCode":0,"result":{}}'


def test_a_length_past_the_limit_is_refused_before_its_body():
    with pytest.raises(TooLarge, match="Content-Length"):
        parsed(b"HTTP/1.1 200 OK\r\nContent-Length: 1025\r\n\r\n", limit=1024)


@pytest.mark.parametrize(
    "head",
    [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n"],
    ids=["chunked", "until the close"],
)
def test_an_endless_body_stops_at_the_limit(head):
    parser = parsed(head, limit=4096)
    piece = b"400\r\n" + b"x" * 1024 + b"\r\n" if b"chunked" in head else b"x" * 1024
    with pytest.raises(TooLarge, match="received"):
        for _ in range(10):
            parser.feed(piece)


def test_a_gzip_bomb_stops_at_the_limit_inflated():
    bomb = gzip.compress(b"\0" * (1 << 20))
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n\r\n".encode()
    with pytest.raises(TooLarge, match="inflated"):
        parsed(head + bomb, limit=64 << 10)


def test_a_chunk_larger_than_the_limit_is_refused_at_its_size_line():
    with pytest.raises(TooLarge):
        parsed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFF\r\n", limit=4096)


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n: no name\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxyz",
    ],
)
def test_what_is_no_http_1_answer_is_refused(data):
    with pytest.raises(ProtocolError):
        parsed(data)


def test_a_head_or_chunk_line_that_never_ends_is_refused_at_its_limit():
    with pytest.raises(ProtocolError, match="head"):
        parsed(b"HTTP/1.1 200 OK\r\nX-A: " + b"a" * (MAX_HEAD + 1))
    with pytest.raises(ProtocolError, match="chunk line"):
        parsed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" + b";" * (MAX_CHUNK_LINE + 1))


def test_bytes_after_the_answer_make_it_no_answer():
    """A Content-Length short of the body: what it framed is not to be trusted either."""
    with pytest.raises(ProtocolError, match="after the answer"):
        parsed(OK + b"HTTP/1.1 200 OK\r\n")
    parser = AnswerParser()
    with pytest.raises(ProtocolError):
        parser.feed(OK + b"y")
    assert parser.answer is None
    parser = parsed(OK)
    with pytest.raises(ProtocolError):
        parser.feed(b"stray")


def test_nothing_has_started_before_the_first_byte():
    parser = AnswerParser()
    assert not parser.started
    parser.feed(b"H")
    assert parser.started
