"""The pure HTTP/1 layer: parsing what browsers send a proxy, rewriting it, error pages."""

from __future__ import annotations

import pytest

from browserfleet.proxy.http1 import (
    MAX_HEAD_BYTES,
    MAX_HEADER_COUNT,
    Authority,
    HeadBuffer,
    HeadTooLarge,
    ProxyProtocolError,
    client_response,
    connect_request,
    content_length,
    end_to_end,
    error_response,
    origin_request,
    parse_request_head,
    parse_response_head,
    upstream_request,
)


def head(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode() + b"\r\n"


def test_absolute_form_get_is_parsed_into_target_and_origin_form_path() -> None:
    request = parse_request_head(
        head("GET http://Example.com:8080/a/b?q=1 HTTP/1.1\nHost: example.com:8080\n")
    )
    assert request.method == "GET"
    assert request.target == Authority("example.com", 8080)
    assert request.path == "/a/b?q=1"
    assert not request.is_connect


def test_absolute_form_defaults_to_port_80_and_root_path() -> None:
    request = parse_request_head(head("GET http://example.com HTTP/1.1\n"))
    assert request.target == Authority("example.com", 80)
    assert request.path == "/"


def test_query_without_path_gets_a_slash_and_fragment_is_dropped() -> None:
    request = parse_request_head(head("GET http://example.com?x=1#frag HTTP/1.1\n"))
    assert request.path == "/?x=1"


def test_connect_is_parsed_as_authority_form() -> None:
    request = parse_request_head(head("CONNECT example.com:443 HTTP/1.1\nHost: example.com:443\n"))
    assert request.is_connect
    assert request.target == Authority("example.com", 443)
    assert request.path == ""


@pytest.mark.parametrize(
    ("line", "target"),
    [
        ("CONNECT [::1]:443 HTTP/1.1", Authority("::1", 443)),
        ("CONNECT [2001:DB8::1]:8443 HTTP/1.1", Authority("2001:db8::1", 8443)),
        ("GET http://[::1]/x HTTP/1.1", Authority("::1", 80)),
        ("GET http://[::1]:8080/x HTTP/1.1", Authority("::1", 8080)),
    ],
)
def test_ipv6_literal_hosts_lose_their_brackets(line: str, target: Authority) -> None:
    assert parse_request_head(head(line + "\n")).target == target


def test_authority_renders_ipv6_with_brackets_and_host_header_omits_port_80() -> None:
    assert str(Authority("::1", 443)) == "[::1]:443"
    assert Authority("::1", 80).host_header == "[::1]"
    assert Authority("example.com", 8080).host_header == "example.com:8080"


@pytest.mark.parametrize(
    "line",
    [
        "GET /relative HTTP/1.1",  # origin-form: not a proxy request
        "GET https://example.com/ HTTP/1.1",  # browsers tunnel https, never send it absolute
        "GET ftp://example.com/ HTTP/1.1",
        "CONNECT example.com HTTP/1.1",  # no port
        "CONNECT example.com:0 HTTP/1.1",
        "CONNECT example.com:65536 HTTP/1.1",
        "CONNECT example.com:https HTTP/1.1",
        "CONNECT [::1:443 HTTP/1.1",
        "CONNECT [not-v6]:443 HTTP/1.1",
        "CONNECT exa mple.com:443 HTTP/1.1",
        "GET http://user:pw@example.com/ HTTP/1.1",
        "GET http://exa_mple..com/ HTTP/1.1",
        "GET http://example.com/ HTTP/2.0",
        "GET http://example.com/",
        "G(T http://example.com/ HTTP/1.1",
        "",
    ],
)
def test_malformed_request_lines_are_rejected(line: str) -> None:
    with pytest.raises(ProxyProtocolError) as info:
        parse_request_head(head(line + "\n"))
    assert info.value.status == 400


@pytest.mark.parametrize(
    "header",
    ["Bad Header: x", "NoColon", " folded: continuation", "Name : space-before-colon"],
)
def test_malformed_header_fields_are_rejected(header: str) -> None:
    with pytest.raises(ProxyProtocolError):
        parse_request_head(head(f"GET http://example.com/ HTTP/1.1\n{header}\n"))


@pytest.mark.parametrize(
    "headers",
    [
        "Content-Length: 5\nTransfer-Encoding: chunked",
        "Content-Length: 5\nContent-Length: 6",
        "Content-Length: -1",
    ],
)
def test_ambiguous_body_framing_is_rejected(headers: str) -> None:
    with pytest.raises(ProxyProtocolError):
        parse_request_head(head(f"POST http://example.com/ HTTP/1.1\n{headers}\n"))


def test_head_buffer_returns_the_head_and_the_bytes_after_it_across_feeds() -> None:
    buffer = HeadBuffer()
    assert buffer.feed(b"\r\nGET http://a/ HTTP/1.1\r\nHo") is None
    assert buffer.feed(b"st: a\r\n\r") is None
    assert buffer.feed(b"\nbody-start") == (
        b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"body-start",
    )


def test_head_buffer_refuses_an_endless_head() -> None:
    buffer = HeadBuffer()
    with pytest.raises(HeadTooLarge) as info:
        for _ in range(MAX_HEAD_BYTES // 1000 + 2):
            buffer.feed(b"X-Filler: " + b"a" * 990 + b"\r\n")
    assert info.value.status == 431


def test_head_buffer_refuses_a_complete_head_over_the_limit() -> None:
    big = b"GET http://a/ HTTP/1.1\r\nX: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n"
    with pytest.raises(HeadTooLarge):
        HeadBuffer().feed(big)


def test_too_many_header_fields_are_refused() -> None:
    fields = "".join(f"X-{i}: v\n" for i in range(MAX_HEADER_COUNT + 1))
    with pytest.raises(HeadTooLarge):
        parse_request_head(head("GET http://a/ HTTP/1.1\n" + fields))


def test_hop_by_hop_headers_and_those_named_by_connection_are_removed() -> None:
    headers = (
        ("Host", "a"),
        ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
        ("Proxy-Connection", "keep-alive"),
        ("Connection", "keep-alive, X-Private"),
        ("X-Private", "1"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Upgrade", "h2c"),
        ("Accept", "*/*"),
        ("Content-Length", "3"),
    )
    assert end_to_end(headers) == (("Host", "a"), ("Accept", "*/*"), ("Content-Length", "3"))


def test_connection_cannot_strip_the_body_framing_headers() -> None:
    headers = (("Connection", "Content-Length, Transfer-Encoding"), ("Content-Length", "3"))
    assert end_to_end(headers) == (("Content-Length", "3"),)


def test_origin_request_is_origin_form_with_the_targets_host_and_connection_close() -> None:
    request = parse_request_head(
        head(
            "POST http://example.com:8080/p?q HTTP/1.1\nHost: evil.example\n"
            "Proxy-Authorization: Basic eDp5\nContent-Length: 3\nProxy-Connection: keep-alive\n"
        )
    )
    assert origin_request(request) == head(
        "POST /p?q HTTP/1.1\nHost: example.com:8080\nContent-Length: 3\nConnection: close\n"
    )


def test_upstream_request_is_absolute_form_with_our_credentials_only() -> None:
    request = parse_request_head(
        head("GET http://[::1]/x HTTP/1.1\nProxy-Authorization: Basic browser\n")
    )
    assert upstream_request(request, "Basic ours") == head(
        "GET http://[::1]/x HTTP/1.1\nHost: [::1]\n"
        "Proxy-Authorization: Basic ours\nConnection: close\n"
    )
    assert b"Proxy-Authorization" not in upstream_request(request, None)


def test_connect_request_to_an_upstream_carries_host_and_credentials() -> None:
    assert connect_request(Authority("::1", 443), "Basic abc") == head(
        "CONNECT [::1]:443 HTTP/1.1\nHost: [::1]:443\nProxy-Authorization: Basic abc\n"
    )


def test_response_head_is_parsed_and_passed_on_with_connection_close() -> None:
    response = parse_response_head(
        head("HTTP/1.1 200 OK\nContent-Length: 2\nConnection: keep-alive\nKeep-Alive: timeout=5\n")
    )
    assert (response.status, response.reason) == (200, "OK")
    assert client_response(response) == head(
        "HTTP/1.1 200 OK\nContent-Length: 2\nConnection: close\n"
    )


def test_status_line_without_reason_is_accepted() -> None:
    assert parse_response_head(head("HTTP/1.1 204\n")).status == 204


@pytest.mark.parametrize("line", ["HTTP/1.1 2000 OK", "HTTP/1.1 OK", "SSH-2.0-OpenSSH", "HTTP/1.1"])
def test_malformed_status_lines_are_rejected(line: str) -> None:
    with pytest.raises(ProxyProtocolError):
        parse_response_head(head(line + "\n"))


def test_error_response_is_complete_html_with_escaped_detail() -> None:
    raw = error_response(403, "Blocked <script>", extra=(("X-Why", "guard"),))
    head_part, _, body = raw.partition(b"\r\n\r\n")
    assert head_part.startswith(b"HTTP/1.1 403 Forbidden\r\nX-Why: guard\r\n")
    assert f"Content-Length: {len(body)}".encode() in head_part
    assert b"Connection: close" in head_part
    assert b"Blocked &lt;script&gt;" in body


@pytest.mark.parametrize(
    ("headers", "length"),
    [
        ("Content-Length: 120\n", 120),
        ("content-length: 0\n", 0),
        ("Content-Length: 5\nContent-Length: 5\n", 5),  # repeated, but one value
        ("", None),  # until the connection closes
        ("Transfer-Encoding: chunked\n", None),
        ("Transfer-Encoding: chunked\nContent-Length: 7\n", None),  # chunked wins (RFC 9112)
        ("Content-Length: 5\nContent-Length: 6\n", None),
        ("Content-Length: -1\n", None),
    ],
)
def test_content_length_tells_only_a_length_that_alone_frames_the_body(
    headers: str, length: int | None
) -> None:
    response = parse_response_head(head(f"HTTP/1.1 200 OK\n{headers}"))
    assert content_length(response) == length
