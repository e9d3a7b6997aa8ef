"""Bursts of TCP connections against a server that is not accepting them: how many the kernel
holds in the server's listen queue (its backlog), and whether each is served once it resumes.

A stopped process (SIGSTOP) accepts nothing, so the connects that complete their handshake are
exactly those its listen queue holds; Linux drops the SYNs of the rest while the queue is full.
These functions block (sockets and sleeps): call them in a thread from async tests.
"""

from __future__ import annotations

import contextlib
import os
import resource
import selectors
import signal
import socket
import time
from collections.abc import Iterator, Sequence

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: burst\r\nConnection: close\r\n\r\n"


def allow_open_files(count: int) -> None:
    """Raise this process's soft limit on open files to `count` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(count, hard), hard))


def connect_at_once(port: int, count: int, settle_s: float = 1.5) -> tuple[list[socket.socket], int]:
    """`count` non-blocking connects to 127.0.0.1:`port` issued together; after `settle_s`, the
    sockets whose handshake completed (open, each with the request sent) and how many did not
    (closed)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    for sock in sockets:
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))  # EINPROGRESS: the handshake goes on in the kernel
    held = _completed(sockets, settle_s)
    for sock in set(sockets) - set(held):
        sock.close()
    for sock in held:
        sock.sendall(REQUEST)  # queued in the kernel until the server reads it
    return held, count - len(held)


def _completed(sockets: Sequence[socket.socket], settle_s: float) -> list[socket.socket]:
    done: list[socket.socket] = []
    deadline = time.monotonic() + settle_s
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            selector.register(sock, selectors.EVENT_WRITE)
        while selector.get_map() and (left := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(timeout=left):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                selector.unregister(ready)
                if ready.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    done.append(ready)
    return done


@contextlib.contextmanager
def stopped(pid: int) -> Iterator[None]:
    """The process frozen (SIGSTOP) for the block, then resumed (SIGCONT) whatever happens."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def status_lines(sockets: Sequence[socket.socket], timeout_s: float = 30.0) -> list[str]:
    """Each socket's HTTP status line (or the error reading it), then the socket closed."""
    lines: list[str] = []
    for sock in sockets:
        sock.setblocking(True)
        sock.settimeout(timeout_s)
        try:
            with sock:
                lines.append(sock.recv(64).split(b"\r\n", 1)[0].decode(errors="replace"))
        except OSError as exc:
            lines.append(f"{type(exc).__name__}: {exc}")
    return lines
