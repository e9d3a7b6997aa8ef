"""The dashboard benchmark's client: signing in through the form, timed page requests, and the
CPU the gateway process and its PostgreSQL backends spent on each (from /proc)."""

from __future__ import annotations

import contextlib
import html
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import asyncpg

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
OLDER = re.compile(r'<a id="older" href="([^"]+)"')


def run_ns(pid: int) -> int:
    """CPU time of a process's threads so far, in ns (0 once it has ended)."""
    total = 0
    with contextlib.suppress(OSError, ValueError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
    return total


@dataclass
class Samples:
    wall_ms: list[float] = field(default_factory=list)
    gateway_ms: list[float] = field(default_factory=list)  # the gateway's CPU
    postgres_ms: list[float] = field(default_factory=list)  # its backends' CPU
    errors: int = 0
    rows: int = -1  # runs listed on the last page (-1: not a list)
    size: int = 0  # bytes of the last page


@dataclass(frozen=True)
class Meter:
    gateway_pid: int
    backend_pids: Sequence[int]

    def read(self) -> tuple[int, int]:
        return run_ns(self.gateway_pid), sum(run_ns(p) for p in self.backend_pids)


async def timed_get(session: aiohttp.ClientSession, url: str, samples: Samples, meter: Meter | None) -> str:
    before = meter.read() if meter else (0, 0)
    started = time.perf_counter()
    async with session.get(url, allow_redirects=False) as response:
        page = await response.text()
        status = response.status
    wall_ms = (time.perf_counter() - started) * 1000
    if meter is not None:
        after = meter.read()
        samples.wall_ms.append(wall_ms)
        samples.gateway_ms.append((after[0] - before[0]) / 1e6)
        samples.postgres_ms.append((after[1] - before[1]) / 1e6)
        samples.errors += status != 200
    samples.rows = page.count("data-run-id=") if 'id="run-rows"' in page else -1
    samples.size = len(page.encode())
    return page


async def sign_in(session: aiohttp.ClientSession, base: str, key: str) -> None:
    """Through the form, as a person does: its CSRF token, then the key; the cookie jar keeps the session."""
    async with session.get(f"{base}/ui/signin") as response:
        found = CSRF.search(await response.text())
    if found is None:
        raise RuntimeError("the sign-in page has no csrf_token")
    form = {"csrf_token": html.unescape(found[1]), "next": "/ui/runs", "api_key": key}
    async with session.post(f"{base}/ui/signin", data=form, allow_redirects=False) as response:
        if response.status != 303:
            raise RuntimeError(f"signing in answered {response.status}: {(await response.text())[:300]}")


async def deep_query(session: aiohttp.ClientSession, base: str, depth: int) -> dict[str, str]:
    """The query of the page reached by following "Older runs" `depth` times from the first."""
    path, scratch = "/ui/runs", Samples()
    for _ in range(depth):
        found = OLDER.search(await timed_get(session, f"{base}{path}", scratch, None))
        if found is None:
            break
        path = html.unescape(found[1])
    return dict(parse_qsl(urlsplit(path).query))


async def backend_pids(database_url: str) -> list[int]:
    """The server processes of every other connection to the database: the gateway's."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return [r["pid"] for r in rows]
