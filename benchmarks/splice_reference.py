"""A minimal CONNECT relay outside browserfleet, to tell what any proxy can reach on this machine.

No guard, no metering, no event loop: each tunnel gets two threads, each moving one direction
with blocking splice(2) through a 1 MiB pipe. Its bytes never enter Python and its Python work
per tunnel is a few calls, so it runs at the speed a C relay would (checked against one); the
ratio it reaches to a direct download is the ceiling the kernel and the CPUs set, not ours.
Run: `python -m benchmarks.splice_reference` prints its port, then serves until killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading

PIPE_BYTES = 1024 * 1024


def pump(source: socket.socket, destination: socket.socket) -> None:
    """Move one direction until EOF, then half-close the destination."""
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    try:
        while moved := os.splice(source.fileno(), write_fd, PIPE_BYTES):
            while moved:
                moved -= os.splice(read_fd, destination.fileno(), moved)
        destination.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        os.close(read_fd)
        os.close(write_fd)


def serve(browser: socket.socket) -> None:
    """One tunnel: read the CONNECT head, connect, answer 200, then splice both ways."""
    with browser:
        head = b""
        while b"\r\n\r\n" not in head:
            if not (data := browser.recv(4096)):
                return
            head += data
        host, _, port = head.split(b" ", 2)[1].decode().rpartition(":")
        with socket.create_connection((host, int(port))) as upstream:
            for sock in (browser, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            browser.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            download = threading.Thread(target=pump, args=(upstream, browser), daemon=True)
            download.start()
            pump(browser, upstream)
            download.join()


def main() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        print(server.getsockname()[1], flush=True)
        while True:
            browser, _ = server.accept()
            threading.Thread(target=serve, args=(browser,), daemon=True).start()


if __name__ == "__main__":
    main()
