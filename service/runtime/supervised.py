"""The stopping side of a supervised child (`service.runtime.children`): it stops when its stdin
closes (the supervisor closed it, or the supervisor died), and ignores SIGINT and SIGTERM, which
the terminal sends the whole process group: only the supervisor decides when children stop.
The supervisor starts a child with both signals blocked (`service.runtime.children.spawn`); they
are unblocked here, once they are ignored."""

from __future__ import annotations

import asyncio
import signal
import sys

from service.runtime.children import SHIELDED


class _EndOfInput(asyncio.Protocol):
    def __init__(self, stop: asyncio.Event) -> None:
        self._stop = stop

    def data_received(self, data: bytes) -> None:
        return None  # the supervisor writes nothing; only the end matters

    def eof_received(self) -> bool:
        self._stop.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop.set()


async def stop_on_end_of_input() -> asyncio.Event:
    """An event set once stdin reaches its end."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in SHIELDED:
        loop.add_signal_handler(sig, lambda: None)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SHIELDED)
    await loop.connect_read_pipe(lambda: _EndOfInput(stop), sys.stdin)
    return stop
