"""A real HTTP server that receives webhooks: it records every request (headers, raw body,
arrival time) and answers as scripted (status, delay, headers), and can be taken down and
brought back on the same port."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from standardwebhooks.webhooks import Webhook

from service.runtime.serving import serving


@dataclass(frozen=True)
class Answer:
    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: str = "ok"


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival
    status: int = 200  # the status the receiver answered with

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def verify(self, secret: str) -> object:
        """Verify with the Standard Webhooks reference implementation (raises if it fails)."""
        return Webhook(secret).verify(self.body, self.headers)


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: deque[Answer] = deque()
        self.default = Answer()
        self.url = ""
        self._arrived = asyncio.Condition()

    def script(self, *answers: Answer) -> None:
        self.answers.extend(answers)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        answer = self.answers.popleft() if self.answers else self.default
        arrived = Received(request.path, dict(request.headers), body, time.monotonic(), answer.status)
        self.received.append(arrived)
        async with self._arrived:
            self._arrived.notify_all()
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        return web.Response(status=answer.status, text=answer.body, headers=answer.headers)

    async def wait_for(self, count: int, timeout_s: float = 20.0) -> list[Received]:
        """Until at least `count` requests arrived (or the timeout fails the test)."""
        async with asyncio.timeout(timeout_s), self._arrived:
            await self._arrived.wait_for(lambda: len(self.received) >= count)
        return list(self.received)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


@asynccontextmanager
async def running_receiver(receiver: Receiver | None = None, port: int = 0) -> AsyncIterator[Receiver]:
    """Serve a receiver on 127.0.0.1 (`port` 0 picks a free one); `url` is its base URL."""
    receiver = receiver or Receiver()
    async with serving(receiver.app(), "127.0.0.1", port) as url:
        receiver.url = url
        yield receiver
