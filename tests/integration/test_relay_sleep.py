"""Writers wake the relay only while it sleeps (migration 0021), against real PostgreSQL: an outbox
write notifies while the relay says it sleeps and stays silent while it polls; a relay with
nothing to publish falls asleep, a write wakes it at once (long before its idle poll), it polls
while rows keep coming, and it falls asleep again once they stop. The relay's own connection
commits without waiting for its flush (a crash then repeats a publication, at least once)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from uuid import UUID

from consumers.relay import POLLS_BEFORE_SLEEP, Relay
from schemas.events import EventType
from service.bus.memory import InProcessBus
from service.bus.topics import topic_specs
from service.core.settings import Settings
from service.db import outbox, publishing
from service.db import runs as runs_db
from service.db.postgres import Pool, connect, connection, listen, transaction
from tests.support.factories import make_company, make_run
from tests.support.waiting import eventually


async def sleeping(pool: Pool) -> bool:
    async with connection(pool) as conn:
        return bool(await conn.fetchval("SELECT sleeping FROM relay_state"))


async def write_event(pool: Pool, run_id: UUID) -> None:
    async with transaction(pool) as conn:
        summary = (await runs_db.get_run(conn, run_id)).summary()
        await outbox.append_event(conn, run_id, EventType.RUN_STARTED, summary)


async def unsent(pool: Pool) -> int:
    async with connection(pool) as conn:
        count, _ = await publishing.unsent_stats(conn)
    return count


@contextlib.asynccontextmanager
async def relaying(settings: Settings) -> AsyncIterator[None]:
    bus = InProcessBus()
    await bus.create_topics(topic_specs(settings.topic_prefix, 1, 1))
    stop = asyncio.Event()
    relay = Relay(settings, bus)
    task = asyncio.create_task(relay.run(stop))
    try:
        await eventually(lambda: asyncio.sleep(0, relay.active.is_set()), what="the relay to lead")
        yield
    finally:
        stop.set()
        await task


async def test_an_outbox_write_notifies_a_sleeping_relay_and_not_a_polling_one(
    pool: Pool, settings: Settings
) -> None:
    company = await make_company(pool)
    run = await make_run(pool, company.id)
    notified: asyncio.Queue[str] = asyncio.Queue()
    listener = await connect(settings.require_database_url())
    try:
        await listen(listener, outbox.NOTIFY_CHANNEL, lambda *args: notified.put_nowait(str(args[2])))
        async with connection(pool) as conn:
            await publishing.set_relay_sleeping(conn, False)
        await write_event(pool, run.id)
        await asyncio.sleep(0.5)
        assert notified.empty()  # a polling relay finds the row without being woken

        async with connection(pool) as conn:
            await publishing.set_relay_sleeping(conn, True)
        await write_event(pool, run.id)
        assert await asyncio.wait_for(notified.get(), timeout=5) == outbox.NOTIFY_CHANNEL
    finally:
        await listener.close()


async def test_an_idle_relay_sleeps_and_a_write_wakes_it_at_once(pool: Pool, settings: Settings) -> None:
    # Only a notification can explain a row published within seconds: the idle poll is a minute.
    settings = settings.model_copy(update={"relay_idle_poll_s": 60.0, "relay_busy_poll_s": 0.02})
    company = await make_company(pool)
    run = await make_run(pool, company.id)
    async with relaying(settings):
        await eventually(lambda: unsent(pool), until=lambda n: n == 0, timeout_s=5, what="the backlog sent")
        await eventually(lambda: sleeping(pool), timeout_s=5, what="the relay asleep")

        await write_event(pool, run.id)
        await eventually(lambda: unsent(pool), until=lambda n: n == 0, timeout_s=5, what="the row sent")
        assert not await sleeping(pool)  # it found a row: it polls now, and writers stay silent
        for _ in range(3):  # rows keep coming: it keeps polling
            await write_event(pool, run.id)
            await asyncio.sleep(settings.relay_busy_poll_s * 2)
            assert not await sleeping(pool)
        await eventually(lambda: unsent(pool), until=lambda n: n == 0, timeout_s=5, what="the rows sent")
        quiet_s = settings.relay_busy_poll_s * POLLS_BEFORE_SLEEP
        await eventually(lambda: sleeping(pool), timeout_s=quiet_s + 5, what="the relay asleep again")

        await write_event(pool, run.id)  # and the next write wakes it again
        await eventually(lambda: unsent(pool), until=lambda n: n == 0, timeout_s=5, what="the row sent")


async def test_a_relay_taking_the_lead_says_it_sleeps_whatever_the_last_one_left(
    pool: Pool, settings: Settings
) -> None:
    settings = settings.model_copy(update={"relay_idle_poll_s": 60.0})
    async with connection(pool) as conn:
        await publishing.set_relay_sleeping(conn, False)  # a relay died while polling
    async with relaying(settings):
        await eventually(lambda: sleeping(pool), timeout_s=5, what="the flag written")


async def test_a_connection_that_is_not_durable_commits_without_waiting_for_its_flush(
    settings: Settings,
) -> None:
    url = settings.require_database_url()
    for durable, expected in ((True, "on"), (False, "off")):
        conn = await connect(url, durable=durable)
        try:
            assert await conn.fetchval("SHOW synchronous_commit") == expected
        finally:
            await conn.close()
