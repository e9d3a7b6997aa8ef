"""Reading a Server-Sent Events response the way a browser's EventSource does (WHATWG HTML
§9.2.6): `field: value` lines, `:` comments, a blank line dispatching the event. Lines may end
in CRLF or LF (aiohttp_sse writes CRLF)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientResponse

READ_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class SseEvent:
    """One dispatched event: its own `id:` line (None without one, unlike EventSource, which
    carries the last id over), `event:`, and the `data:` lines joined by newlines."""

    id: str | None
    event: str | None
    data: str

    def body(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.data)
        return decoded


@dataclass(frozen=True)
class SseComment:
    """A `:` line (a keep-alive); `text` is what follows the colon."""

    text: str


SseItem = SseEvent | SseComment


@dataclass
class _Pending:
    id: str | None = None
    event: str | None = None
    data: list[str] = field(default_factory=list)

    def take(self) -> SseEvent | None:
        """The event the blank line dispatches (None if no `data:` was seen), resetting the buffer."""
        event = SseEvent(self.id, self.event, "\n".join(self.data)) if self.data else None
        self.id, self.event, self.data = None, None, []
        return event


class SseReader:
    """Reads one SSE response item by item; `None` means the server ended the stream cleanly."""

    def __init__(self, response: ClientResponse) -> None:
        assert response.status == 200, response.status
        assert response.content_type == "text/event-stream", response.content_type
        self._response = response
        self._pending = _Pending()

    async def next_item(self, timeout_s: float = READ_TIMEOUT_S) -> SseItem | None:
        """The next event or comment, or None at EOF; fails if nothing comes within `timeout_s`."""
        async with asyncio.timeout(timeout_s):
            while True:
                raw = await self._response.content.readline()
                if not raw:
                    return None
                item = self._line(raw.decode("utf-8").rstrip("\r\n"))
                if item is not None:
                    return item

    async def next_event(self, timeout_s: float = READ_TIMEOUT_S) -> SseEvent | None:
        """The next event (skipping comments), or None at EOF."""
        while True:
            item = await self.next_item(timeout_s)
            if not isinstance(item, SseComment):
                return item

    async def events(self, limit: int | None = None, timeout_s: float = READ_TIMEOUT_S) -> list[SseEvent]:
        """Events until EOF, or until `limit` have been read."""
        events: list[SseEvent] = []
        while limit is None or len(events) < limit:
            event = await self.next_event(timeout_s)
            if event is None:
                break
            events.append(event)
        return events

    def _line(self, line: str) -> SseItem | None:
        if not line:
            return self._pending.take()
        if line.startswith(":"):
            return SseComment(line[1:].removeprefix(" "))
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._pending.data.append(value)
        elif name == "event":
            self._pending.event = value
        elif name == "id" and "\0" not in value:
            self._pending.id = value
        return None
