"""A TCP proxy in front of a real server, to give one process an outage of PostgreSQL or Kafka
without touching the server every other test shares: `down()` drops every connection and
refuses new ones (the port is closed), `up()` listens again on the same port."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

from service.local.pgserver import free_port

CHUNK = 65_536


class Outage:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def database_url(self, url: str) -> str:
        """`url` with its host and port replaced by this proxy's."""
        parts = urlsplit(url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@{self.address}" if credentials else self.address
        return urlunsplit(parts._replace(netloc=netloc))

    async def up(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._accept, "127.0.0.1", self.port, reuse_address=True
            )

    async def down(self) -> None:
        """Close the port and every connection through it, as a crashed server would."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self._target)
        except OSError:
            client_writer.close()
            return
        for reader, writer in ((client_reader, server_writer), (server_reader, client_writer)):
            pipe = asyncio.create_task(_pipe(reader, writer, (client_writer, server_writer)))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, both: tuple[asyncio.StreamWriter, ...]
) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        for end in both:  # one side gone: the connection is gone
            with contextlib.suppress(Exception):
                end.transport.abort()


@contextlib.asynccontextmanager
async def outage_proxy(target: str, *, start_up: bool = True) -> AsyncIterator[Outage]:
    """A proxy to `host:port`; listening at once unless `start_up` is False."""
    host, _, port = target.rpartition(":")
    proxy = Outage(host, int(port))
    if start_up:
        await proxy.up()
    try:
        yield proxy
    finally:
        await proxy.down()
