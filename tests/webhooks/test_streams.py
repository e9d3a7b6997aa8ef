"""`GET /agent-eval/runs/{id}/events` over real HTTP: a run's events as Server-Sent Events, live
and in sequence order, each frame's `id` its sequence; a reconnect with `Last-Event-ID` (or
`?after=`) resumes with nothing repeated or missed; a finished run replays and closes; idle
streams get keep-alive comments; a stopping gateway ends every stream cleanly."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import aiohttp
import pytest
from prometheus_client import REGISTRY
from pytest_aiohttp.plugin import AiohttpClient

from service.core.settings import Settings
from service.db import outbox
from service.db.postgres import Pool, connection
from service.gateway.app import create_app
from service.runtime.serving import GATEWAY_SHUTDOWN_TIMEOUT_S, serving
from tests.support.api import Client, Json, Tenant, insufficient_scope, key_for, not_found, refused_field
from tests.support.run_api import RUNS, get_run, queued_run, running_pipeline, scripted_case, trigger
from tests.support.sse import SseComment, SseEvent, SseReader
from tests.support.waiting import eventually

LIVE_LATENCY_S = 0.3  # each scripted model call takes this long, so a run stays live ~1-2 s
ENVELOPE = {"id", "type", "time", "company_id", "run_id", "sequence", "data"}


async def open_streams() -> float:
    """SSE streams the gateways of this process hold open (the process-wide gauge)."""
    return REGISTRY.get_sample_value("agent_eval_event_streams") or 0.0


def events_url(run_id: str) -> str:
    return f"{RUNS}/{run_id}/events"


@asynccontextmanager
async def opened(client: Client, url: str, headers: dict[str, str]) -> AsyncIterator[SseReader]:
    """An SSE response being read; closed (the client disconnects) when the block ends."""
    response = await client.get(url, headers=headers)
    try:
        yield SseReader(response)
    finally:
        response.close()


async def read_stream(client: Client, tenant: Tenant, run_id: str, **headers: str) -> list[SseEvent]:
    """Every event of a stream until the server ends it."""
    async with opened(client, events_url(run_id), {**tenant.headers(), **headers}) as stream:
        return await stream.events()


async def stored_bodies(pool: Pool, run_id: str) -> list[Json]:
    """The run's events as the outbox (the event store) holds them, in sequence order."""
    async with connection(pool) as conn:
        events = await outbox.list_run_events(conn, UUID(run_id), 0, 10_000)
    return [json.loads(event.payload) for event in events]


def assert_well_formed(events: list[SseEvent], tenant: Tenant, run_id: str, *, first: int = 1) -> None:
    """Sequences `first`..N without gaps; each frame's `id` and `event` agree with its body."""
    assert [e.id for e in events] == [str(n) for n in range(first, first + len(events))]
    for event in events:
        body = event.body()
        assert set(body) == ENVELOPE, body
        assert (event.id, event.event) == (str(body["sequence"]), body["type"].removeprefix("agent_eval."))
        assert (body["company_id"], body["run_id"]) == (tenant.company_id, run_id)


def assert_complete_run(events: list[SseEvent]) -> None:
    """From `run.queued` to `run.done` with turns in between; `run.done` is the last frame."""
    names = [e.event for e in events]
    assert names[:2] == ["run.queued", "run.started"], names
    assert names[-4:] == ["run.completed", "run.scored", "run.billed", "run.done"], names
    assert "run.turn" in names, names


async def assert_turns_carry_the_transcript(
    client: Client, tenant: Tenant, run_id: str, events: list[SseEvent]
) -> None:
    """`run.turn` data is each turn as `GET …/turns` returns it, text included."""
    response = await client.get(f"{RUNS}/{run_id}/turns", headers=tenant.headers())
    turns: list[Json] = (await response.json())["data"]
    streamed = [e.body()["data"] for e in events if e.event == "run.turn"]
    assert streamed == turns
    texts = [turn["text"] for turn in streamed]
    assert {"I want a refund", "I have started your refund.", "Goodbye!"} <= set(texts), texts


@pytest.fixture
def live_settings(hook_settings: Settings) -> Settings:
    """The pipeline's settings: scripted model calls slowed so a run is live for a while."""
    return hook_settings.model_copy(update={"scripted_latency_s": LIVE_LATENCY_S})


@pytest.fixture
async def case(client: Client, tenant: Tenant) -> Json:
    return await scripted_case(client, tenant)


async def test_a_live_stream_delivers_every_event_in_order_and_closes_after_done(
    client: Client, tenant: Tenant, case: Json, live_settings: Settings, pool: Pool
) -> None:
    async with running_pipeline(live_settings, pool):
        run = await trigger(client, tenant, case["id"], prefer="wait=0")
        assert run.status == 202, run.body
        async with opened(client, events_url(run.body["id"]), tenant.headers()) as stream:
            events = await stream.events()
            assert await stream.next_item() is None  # closed after run.done

    run_id = run.body["id"]
    assert_well_formed(events, tenant, run_id)
    assert_complete_run(events)
    assert [e.body() for e in events] == await stored_bodies(pool, run_id)
    await assert_turns_carry_the_transcript(client, tenant, run_id, events)
    assert (await get_run(client, tenant, run_id)).body["queue_status"] == "done"


async def test_a_stream_opened_before_execution_receives_each_event_as_it_is_written(
    client: Client, tenant: Tenant, case: Json, hook_settings: Settings, pool: Pool
) -> None:
    run = await queued_run(client, tenant, case["id"])
    async with opened(client, events_url(run["id"]), tenant.headers()) as stream:
        queued = await stream.next_event()
        assert queued is not None
        assert (queued.id, queued.event) == ("1", "run.queued")
        async with running_pipeline(hook_settings, pool):
            rest = await stream.events()

    events = [queued, *rest]
    assert_well_formed(events, tenant, run["id"])
    assert_complete_run(events)
    assert [e.body() for e in events] == await stored_bodies(pool, run["id"])


async def test_a_finished_run_replays_all_its_events_and_closes(
    client: Client, tenant: Tenant, case: Json, hook_settings: Settings, pool: Pool
) -> None:
    async with running_pipeline(hook_settings, pool):
        run = await trigger(client, tenant, case["id"], prefer="wait=30")
    assert run.status == 200, run.body

    events = await read_stream(client, tenant, run.body["id"])

    assert_well_formed(events, tenant, run.body["id"])
    assert_complete_run(events)
    assert [e.body() for e in events] == await stored_bodies(pool, run.body["id"])
    assert await read_stream(client, tenant, run.body["id"]) == events  # the same every time


@pytest.mark.parametrize("resume", ["header", "query"])
async def test_a_reconnect_resumes_after_the_last_event_seen_missing_and_repeating_none(
    client: Client, tenant: Tenant, case: Json, live_settings: Settings, pool: Pool, resume: str
) -> None:
    seen = 3  # queued, started and the first turn
    async with running_pipeline(live_settings, pool):
        run = await trigger(client, tenant, case["id"], prefer="wait=0")
        run_id = run.body["id"]
        async with opened(client, events_url(run_id), tenant.headers()) as stream:
            before = await stream.events(limit=seen)
        last = before[-1].id
        assert last == str(seen)
        if resume == "header":
            url, headers = events_url(run_id), {**tenant.headers(), "Last-Event-ID": last}
        else:
            url, headers = f"{events_url(run_id)}?after={last}", tenant.headers()
        async with opened(client, url, headers) as stream:
            after = await stream.events()

    uninterrupted = await read_stream(client, tenant, run_id)
    assert_well_formed(after, tenant, run_id, first=seen + 1)
    assert before + after == uninterrupted
    assert [e.body() for e in uninterrupted] == await stored_bodies(pool, run_id)
    assert_complete_run(uninterrupted)


async def test_resuming_after_the_last_event_of_a_finished_run_closes_at_once(
    client: Client, tenant: Tenant, case: Json, hook_settings: Settings, pool: Pool
) -> None:
    async with running_pipeline(hook_settings, pool):
        run = await trigger(client, tenant, case["id"], prefer="wait=30")
    total = len(await stored_bodies(pool, run.body["id"]))

    assert await read_stream(client, tenant, run.body["id"], **{"Last-Event-ID": str(total)}) == []
    tail = await read_stream(client, tenant, run.body["id"], **{"Last-Event-ID": str(total - 1)})
    assert [(e.id, e.event) for e in tail] == [(str(total), "run.done")]


async def test_another_companys_run_is_404_before_any_stream_starts(
    client: Client, tenant: Tenant, stranger: Tenant
) -> None:
    theirs = await queued_run(client, stranger, (await scripted_case(client, stranger))["id"])
    response = await client.get(events_url(theirs["id"]), headers=tenant.headers())
    assert response.content_type == "application/json"
    await not_found(response)


async def test_a_malformed_run_id_is_400_naming_the_path(client: Client, tenant: Tenant) -> None:
    response = await client.get(events_url("not-a-uuid"), headers=tenant.headers())
    await refused_field(response, "path.id")


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "1e3"])
async def test_a_last_event_id_that_is_not_a_sequence_is_400_naming_the_header(
    client: Client, tenant: Tenant, case: Json, value: str
) -> None:
    run = await queued_run(client, tenant, case["id"])
    response = await client.get(events_url(run["id"]), headers={**tenant.headers(), "Last-Event-ID": value})
    await refused_field(response, "header.Last-Event-ID")


@pytest.mark.parametrize("value", ["abc", "-1", "\u00b2", "1" * 19])  # "²" is a digit int() refuses
async def test_an_after_that_is_not_a_sequence_is_400_naming_the_query(
    client: Client, tenant: Tenant, case: Json, value: str
) -> None:
    run = await queued_run(client, tenant, case["id"])
    response = await client.get(events_url(run["id"]), params={"after": value}, headers=tenant.headers())
    await refused_field(response, "query.after")


async def test_a_key_without_the_read_scope_is_refused(
    client: Client, tenant: Tenant, case: Json, pool: Pool
) -> None:
    run = await queued_run(client, tenant, case["id"])
    narrow = await key_for(pool, tenant, ["agent_eval:run", "agent_eval:create"])
    response = await client.get(events_url(run["id"]), headers=narrow.headers())
    await insufficient_scope(response, "agent_eval:read")


async def test_an_idle_stream_receives_keep_alive_comments(
    aiohttp_client: AiohttpClient, hook_settings: Settings, tenant: Tenant, pool: Pool
) -> None:
    quick = await aiohttp_client(
        create_app(hook_settings.model_copy(update={"stream_keepalive_s": 0.2}), pool=pool)
    )
    run = await queued_run(quick, tenant, (await scripted_case(quick, tenant))["id"])
    async with opened(quick, events_url(run["id"]), tenant.headers()) as stream:
        first = await stream.next_item()
        comments = [await stream.next_item(timeout_s=5.0) for _ in range(3)]

    assert isinstance(first, SseEvent)
    assert first.event == "run.queued"
    assert all(isinstance(c, SseComment) for c in comments), comments


async def test_stopping_the_gateway_ends_open_streams_cleanly(
    client: Client, tenant: Tenant, case: Json, hook_settings: Settings, pool: Pool
) -> None:
    run = await queued_run(client, tenant, case["id"])
    served = serving(create_app(hook_settings, pool=pool), "127.0.0.1", 0)
    base_url = await served.__aenter__()
    stopping: asyncio.Task[bool | None] | None = None
    try:
        async with aiohttp.ClientSession() as session:
            response = await session.get(f"{base_url}{events_url(run['id'])}", headers=tenant.headers())
            stream = SseReader(response)
            first = await stream.next_event()
            assert first is not None
            assert first.event == "run.queued"

            started = time.monotonic()
            stopping = asyncio.create_task(served.__aexit__(None, None, None))
            end = await stream.next_item(timeout_s=GATEWAY_SHUTDOWN_TIMEOUT_S / 2)
    finally:
        if stopping is None:
            await served.__aexit__(None, None, None)
        else:
            await stopping
    stopped_after = time.monotonic() - started

    assert end is None  # a clean end of the body, not a reset or a hang
    assert stopped_after < GATEWAY_SHUTDOWN_TIMEOUT_S / 2, stopped_after  # no stream had to be cut off


async def test_a_client_that_disconnects_releases_its_stream(
    client: Client, tenant: Tenant, case: Json, hook_settings: Settings, pool: Pool
) -> None:
    """Served as in production (`serving`, whose runner does not cancel handlers on disconnect):
    a stream whose client has gone must end even while its run is idle."""
    run = await queued_run(client, tenant, case["id"])
    quick = hook_settings.model_copy(update={"stream_keepalive_s": 0.2})
    before = await open_streams()
    async with serving(create_app(quick, pool=pool), "127.0.0.1", 0) as base_url:
        async with aiohttp.ClientSession() as session:
            response = await session.get(f"{base_url}{events_url(run['id'])}", headers=tenant.headers())
            assert await SseReader(response).next_event() is not None
            assert await open_streams() == before + 1
            response.close()  # the client goes away; the run stays queued
        await eventually(
            open_streams, until=lambda n: n == before, timeout_s=10.0, what="the stream to be released"
        )
