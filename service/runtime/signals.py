"""Stopping a process cleanly: SIGTERM (Kubernetes) and SIGINT (Ctrl-C) set one event."""

from __future__ import annotations

import asyncio
import signal


def stop_on_signals() -> asyncio.Event:
    """An event set by the first SIGTERM or SIGINT (the second one is left to the default)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, loop, sig, stop)
    return stop


def _on_signal(loop: asyncio.AbstractEventLoop, sig: signal.Signals, stop: asyncio.Event) -> None:
    stop.set()
    loop.remove_signal_handler(sig)
