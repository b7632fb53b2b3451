"""Limits at the HTTP edge, attacked on a real server: huge or slow requests are refused early,
cost the server no memory, and leave /healthz fast for everyone else."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from fleet_server import Server, wait_for

pytestmark = pytest.mark.e2e

MB = 1024 * 1024


def peak_rss_reset(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM, the peak resident set size, to the current one


def peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@contextmanager
def raw(server: Server) -> Iterator[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    try:
        yield sock
    finally:
        sock.close()


def send_while_reading(
    sock: socket.socket, head: bytes, body: Iterator[bytes]
) -> tuple[bytes, int]:
    """Send head and body from a thread while reading the answer; (answer, body bytes sent)."""
    sent = [0]

    def pump() -> None:
        try:
            sock.sendall(head)
            for chunk in body:
                sock.sendall(chunk)
                sent[0] += len(chunk)
        except OSError:
            pass  # the server hung up, as it should

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    answer = b""
    try:
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    except OSError:
        pass
    sock.shutdown(socket.SHUT_RDWR)
    thread.join(30)
    return answer, sent[0]


def zeros(total: int, chunk: int = MB) -> Iterator[bytes]:
    block = b"0" * chunk
    for _ in range(total // chunk):
        yield block


def chunked(total: int, chunk: int = MB) -> Iterator[bytes]:
    for block in zeros(total, chunk):
        yield f"{len(block):x}\r\n".encode() + block + b"\r\n"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_150_mb_body_without_a_key_is_refused_and_costs_no_memory(
    server: Server, framing: str
) -> None:
    total = 150 * MB
    head = b"POST /api/v3/browsers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    if framing == "chunked":
        head += b"Transfer-Encoding: chunked\r\n\r\n"
        body = chunked(total)
    else:
        head += f"Content-Length: {total}\r\n\r\n".encode()
        body = zeros(total)
    peak_rss_reset(server.pid)
    before = peak_rss(server.pid)
    with raw(server) as sock:
        answer, sent = send_while_reading(sock, head, body)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b'{"detail": "The request body is larger than 1048576 bytes"}' in answer
    assert sent < total  # the server hung up; it never took the whole body
    assert peak_rss(server.pid) - before < 10 * MB
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200


def test_an_idle_connection_outlives_the_clients_own_keep_alive(server: Server) -> None:
    """httpx (the SDK) and Node drop idle connections after ~5 s: the server must keep them
    longer, or a request sent as it hangs up gets no answer. The idle time is the scenario."""
    with raw(server) as sock:
        assert healthz_on(sock).startswith(b"HTTP/1.1 200 ")
        time.sleep(6.5)  # past httpx's 5 s and uvicorn's own default of 5 s
        assert healthz_on(sock).startswith(b"HTTP/1.1 200 ")


def healthz_on(sock: socket.socket) -> bytes:
    """One GET /healthz on an open connection; the whole answer (head and body)."""
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer:
        data = sock.recv(65536)
        assert data, "the server closed the connection"
        answer += data
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":")[1]
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
    )
    while len(body) < length:
        data = sock.recv(65536)
        assert data, "the server closed the connection"
        body += data
    return answer


def test_a_100_mb_header_is_refused_with_431_after_a_few_kilobytes(server: Server) -> None:
    with raw(server) as sock:
        answer, sent = send_while_reading(
            sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ", zeros(100 * MB, 64 * 1024)
        )
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert sent < 10 * MB  # refused long before the 100 MB were through


def test_too_many_header_fields_are_refused_with_431(server: Server) -> None:
    fields = b"".join(b"X-F%d: v\r\n" % i for i in range(500))
    with raw(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 431 ")


def healthz_latency(server: Server, n: int = 15) -> float:
    timings = []
    with httpx.Client(timeout=30) as client:
        for _ in range(n):
            began = time.perf_counter()
            assert client.get(f"{server.url}/healthz").status_code == 200
            timings.append(time.perf_counter() - began)
    return statistics.median(timings)


def closed_by_server(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(60)
    answer = b""
    while data := sock.recv(65536):
        answer += data
    return answer


def test_slow_heads_and_bodies_are_closed_within_their_timeouts_and_healthz_stays_fast(
    make_server: object,
) -> None:
    fresh: Server = make_server(  # type: ignore[operator]
        BROWSERFLEET_HTTP__HEAD_TIMEOUT_S="1", BROWSERFLEET_HTTP__BODY_TIMEOUT_S="1"
    )
    baseline = healthz_latency(fresh)
    with raw(fresh) as silent, raw(fresh) as slow_head, raw(fresh) as slow_body, raw(fresh) as ws:
        slow_head.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        slow_body.sendall(
            b'POST /api/v3/browsers HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"timeo'
        )
        ws.sendall(
            b"GET /cdp/token/devtools/browser/x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        )
        during = healthz_latency(fresh)
        began = time.monotonic()
        answers = [closed_by_server(s) for s in (silent, slow_head, slow_body, ws)]
        waited = time.monotonic() - began
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert waited < 30  # the 1 s timeouts, not the client, ended them
    assert during < max(5 * baseline, baseline + 0.25), (baseline, during)
    wait_for(lambda: httpx.get(f"{fresh.url}/healthz", timeout=5).status_code == 200)
