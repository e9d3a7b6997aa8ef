"""One end of a bus bridge (`service.bus.bridge`): length-prefixed frames over a stream socket,
calls answered by replies, casts without, in both directions.

The socket is a `socketpair` a parent hands its own child (no address anyone else could reach),
so frames are pickles of the bus's own values (records, partitions, settings). Casts are applied
as they are read, in order, before any call read after them; each call is served in a task of
its own, so a long `fetch` never holds up a `commit`. When the stream ends every call still
waiting fails `BusError`, and `closed` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import pickle
import struct
from collections.abc import Awaitable, Callable

from service.core.errors import BusError, CommitFailed
from service.core.logging import get_logger

log = get_logger("service.bus.wire")

HEADER = struct.Struct("!I")
ServeCall = Callable[[str, tuple[object, ...]], Awaitable[object]]
ServeCast = Callable[[str, tuple[object, ...]], None]
_ERRORS: dict[str, type[BusError]] = {"CommitFailed": CommitFailed}


class Peer:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, serve: ServeCall, cast: ServeCast
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._serve = serve
        self._serve_cast = cast
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[object]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = asyncio.Event()

    async def call(self, op: str, *args: object) -> object:
        """Ask the other end and wait for its answer; its `BusError` is raised here."""
        if self.closed.is_set():
            raise BusError("the bus bridge is closed")
        call_id = next(self._ids)
        answer: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = answer
        self._send(("call", call_id, op, args))
        try:
            return await answer
        finally:
            self._waiting.pop(call_id, None)

    def cast(self, op: str, *args: object) -> None:
        """Tell the other end, without an answer (ignored once closed)."""
        if not self.closed.is_set():
            self._send(("cast", 0, op, args))

    async def run(self) -> None:
        """Read and dispatch frames until the stream ends."""
        try:
            while (frame := await self._read()) is not None:
                self._dispatch(frame)
        finally:
            self._close()

    async def aclose(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    def _dispatch(self, frame: tuple[str, int, object, object]) -> None:
        kind, call_id, first, second = frame
        if kind == "reply":
            self._answer(call_id, bool(first), second)
        elif kind == "cast":
            self._serve_cast(str(first), _args(second))
        else:
            task = asyncio.create_task(self._reply(call_id, str(first), _args(second)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _reply(self, call_id: int, op: str, args: tuple[object, ...]) -> None:
        try:
            result = await self._serve(op, args)
        except BusError as exc:
            self._send(("reply", call_id, False, (type(exc).__name__, str(exc))))
        except Exception as exc:  # reported to the caller, which raises it as a bus failure
            log.warning("bridge_call_failed", op=op, error=repr(exc))
            self._send(("reply", call_id, False, (type(exc).__name__, repr(exc))))
        else:
            self._send(("reply", call_id, True, result))

    def _answer(self, call_id: int, ok: bool, value: object) -> None:
        answer = self._waiting.get(call_id)
        if answer is None or answer.done():
            return
        if ok:
            answer.set_result(value)
            return
        name, message = value if isinstance(value, tuple) else ("BusError", str(value))
        answer.set_exception(_ERRORS.get(str(name), BusError)(str(message)))

    def _send(self, frame: tuple[str, int, object, object]) -> None:
        if self._writer.is_closing():
            return
        payload = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
        self._writer.write(HEADER.pack(len(payload)) + payload)

    async def _read(self) -> tuple[str, int, object, object] | None:
        try:
            header = await self._reader.readexactly(HEADER.size)
            payload = await self._reader.readexactly(HEADER.unpack(header)[0])
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        frame: tuple[str, int, object, object] = pickle.loads(payload)  # noqa: S301 - our own child's frames
        return frame

    def _close(self) -> None:
        self.closed.set()
        for answer in self._waiting.values():
            if not answer.done():
                answer.set_exception(BusError("the bus bridge closed"))
        # Calls being served are left to finish (a fetch ends at its timeout) and their replies
        # dropped: cancelling one waiting on the in-process bus could leave its lock broken.


def _args(value: object) -> tuple[object, ...]:
    return value if isinstance(value, tuple) else ()
