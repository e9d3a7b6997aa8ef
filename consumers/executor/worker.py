"""The executor role: `run.requested` → claim (fenced lease) → play the conversation.

The handler claims and returns, so the request's offset is committed once the claim commits;
the lease, not the offset, guarantees the run completes. Conversations play as tasks, at most
`executor_concurrency` at once: while full, the runner pauses this member's partitions (it keeps
polling, so it never falls out of the group) and a request already fetched waits for a slot.
One statement every `lease_ttl_s / 3` renews every lease this process holds; a run taken from it
(re-claimed by another executor, or swept) is reported `lease_lost` once and its conversation
stopped at once, while a run that ended under its lease (the conversation is on its way out) is
not a loss. Each conversation runs in a context of its own, naming its run and attempt, never
the record that started it. On shutdown the conversations stop, and their runs are handed back
and re-dispatched, to resume on another executor at the next turn boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import socket
from dataclasses import dataclass
from uuid import UUID

from consumers.executor.conversation import Conversation, Engine
from consumers.executor.http_agent import HttpAgentCaller
from consumers.executor.persistence import RunWriter, WriterSettings
from consumers.executor.tools import ToolCaller
from consumers.llm.openai_compat import providers_from_settings
from consumers.llm.providers import Providers
from consumers.llm.scripted import ScriptedProvider
from consumers.role import BuiltRole, Role, RoleContext
from schemas.events import Event, EventType, RunRequested, Topic
from service.core.errors import Abandoned, DatabaseError, DatabaseUnavailable, LeaseLost
from service.core.ids import new_id
from service.core.logging import bind_context, get_logger
from service.core.metrics import CONVERSATIONS_ACTIVE, EXECUTOR_SATURATION
from service.core.settings import Settings
from service.db import claims, outbox
from service.db.claims import Lease, Tenure
from service.db.postgres import Pool, transaction
from service.runtime.pools import backoff_s

log = get_logger("consumers.executor.worker")


def executor_name() -> str:
    """Unique per process start: host, pid and a random suffix (a restarted pid is a new owner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_id().hex[-8:]}"


@dataclass
class _Playing:
    """A conversation this executor plays, and whether its run was reported taken."""

    lease: Lease
    task: asyncio.Task[None]
    reported_lost: bool = False


class Executor:
    def __init__(self, pool: Pool, settings: Settings, engine: Engine, name: str | None = None) -> None:
        self._pool = pool
        self._settings = settings
        self._engine = engine
        self.name = name or executor_name()
        self._slots = asyncio.Semaphore(settings.executor_concurrency)
        self._playing: dict[UUID, _Playing] = {}
        self._stopping = asyncio.Event()
        self._keeper: asyncio.Task[None] | None = None

    def is_open(self) -> bool:
        """The runner's gate: room for another conversation."""
        return not self._slots.locked()

    def playing(self) -> frozenset[UUID]:
        return frozenset(self._playing)

    async def handle(self, event: Event) -> None:
        if not isinstance(event, RunRequested) or event.run_id in self._playing:
            return
        await self._take_slot()
        try:
            run = await self._engine.writer.claim(event.run_id, self.name)
        except BaseException:
            self._slots.release()
            raise
        if run is None:
            self._slots.release()
            return
        lease = Lease(run.id, self.name, run.attempt)
        # A fresh context, not a copy of this handler's: the conversation outlives the record,
        # and its lines name its own run, never that record (nor, through it, another one).
        playing = self._play(Conversation(self._engine, run, lease), lease)
        task = asyncio.create_task(playing, context=contextvars.Context())
        task.add_done_callback(lambda _: self._finished(lease))  # even if cancelled before it ran
        self._playing[run.id] = _Playing(lease, task)
        self._count_playing()
        self._ensure_keeper()

    def _finished(self, lease: Lease) -> None:
        playing = self._playing.get(lease.run_id)
        if playing is not None and playing.lease == lease:
            del self._playing[lease.run_id]
        self._count_playing()
        self._slots.release()

    def _count_playing(self) -> None:
        CONVERSATIONS_ACTIVE.set(len(self._playing))
        EXECUTOR_SATURATION.set(len(self._playing) / self._settings.executor_concurrency)

    async def _take_slot(self) -> None:
        """Wait for room; give the record up (uncommitted) if the process is stopping."""
        acquire = asyncio.ensure_future(self._slots.acquire())
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait([acquire, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if acquire.done() and not acquire.cancelled():
            if not self._stopping.is_set():
                return
            self._slots.release()
        acquire.cancel()
        raise Abandoned("the executor is stopping")

    async def _play(self, conversation: Conversation, lease: Lease) -> None:
        bind_context(run_id=str(lease.run_id), attempt=lease.attempt)  # this task's own context
        try:
            await self._play_through_outages(conversation)
        except LeaseLost:
            self._report_lost(lease)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The lease expires and another executor resumes the run from its last turn.
            log.exception("conversation_crashed")

    async def _play_through_outages(self, conversation: Conversation) -> None:
        """Play; when the database is briefly unreachable, play again from the persisted
        transcript (a round that did commit is read back, one that did not is played again), for
        as long as the lease holds. The lease keeper cancels this task once the lease is lost, so
        only an outage longer than the lease costs the run an attempt."""
        failures = 0
        while True:
            try:
                await conversation.play()
                return
            except DatabaseUnavailable as exc:
                failures += 1
                pause_s = backoff_s(failures, first_s=0.25, cap_s=self._settings.lease_ttl_s / 4)
                log.warning("conversation_interrupted", error=str(exc), attempt=failures, retry_in_s=pause_s)
                await asyncio.sleep(pause_s)

    def _ensure_keeper(self) -> None:
        if self._keeper is None or self._keeper.done():
            keeping = self._keep_leases()  # in a context of its own, as the conversations
            self._keeper = asyncio.create_task(keeping, name="lease-keeper", context=contextvars.Context())

    async def _keep_leases(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._settings.lease_ttl_s / 3)
            if not self._stopping.is_set():
                await self.extend_leases()

    async def extend_leases(self) -> None:
        """Renew every lease in one statement; stop the conversations whose run was taken. One
        whose run ended under its lease is left to finish: its conversation ended it."""
        held = [playing.lease for playing in self._playing.values()]
        try:
            async with transaction(self._pool) as conn:
                tenures = await claims.extend_leases(conn, self.name, held, self._settings.lease_ttl_s)
        except DatabaseError as exc:
            log.warning("lease_extension_failed", error=str(exc), runs=len(held))
            return
        for lease in held:
            if tenures[lease.run_id] is Tenure.LOST and self._report_lost(lease):
                self._playing[lease.run_id].task.cancel()

    def _report_lost(self, lease: Lease) -> bool:
        """Say once (the keeper and the conversation may both find out) that the run playing
        under `lease` was taken; False if it was said already or the run no longer plays."""
        playing = self._playing.get(lease.run_id)
        if playing is None or playing.lease != lease or playing.reported_lost:
            return False
        playing.reported_lost = True
        log.warning("lease_lost", run_id=str(lease.run_id), attempt=lease.attempt)
        return True

    def stop(self) -> None:
        """Stop taking runs (the runner is stopping too)."""
        self._stopping.set()

    async def close(self) -> None:
        """Stop every conversation and hand its run back for another executor to resume."""
        self._stopping.set()
        tasks = [playing.task for playing in self._playing.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._keeper is not None:
            await asyncio.gather(self._keeper, return_exceptions=True)
        await self.hand_back()

    async def hand_back(self) -> int:
        async with transaction(self._pool) as conn:
            returned = await claims.hand_back(conn, self.name)
            for run_id, company_id in returned:
                await outbox.append_run_request(conn, run_id, company_id)
        if returned:
            log.info("runs_handed_back", count=len(returned))
        return len(returned)


def build_engine(context: RoleContext) -> Engine:
    settings = context.settings
    providers = Providers(
        {
            **providers_from_settings(settings),
            "scripted": ScriptedProvider(settings.scripted_latency_s, context.clock),
        }
    )
    tools = ToolCaller(
        allow_private=settings.webhook_allow_private,
        timeout_s=settings.tool_timeout_s,
        max_response_bytes=settings.tool_max_response_bytes,
    )
    writer = RunWriter(
        context.pool,
        WriterSettings(
            rate_card=settings.rate_card,
            lease_ttl_s=settings.lease_ttl_s,
            max_attempts=settings.max_attempts,
            inflight_cap=settings.max_inflight_runs_per_company,
        ),
        context.clock,
    )
    return Engine(
        providers=providers,
        tools=tools,
        http_agents=HttpAgentCaller(settings),
        writer=writer,
        settings=settings,
        clock=context.clock,
    )


def build(context: RoleContext) -> BuiltRole:
    engine = build_engine(context)
    executor = Executor(context.pool, context.settings, engine)

    async def close() -> None:
        try:
            await executor.close()
        finally:
            await engine.tools.close()
            await engine.http_agents.close()
            await engine.providers.close()

    return BuiltRole(handler=executor.handle, gate=executor, close=close, stop=executor.stop)


ROLE = Role("executor", (Topic.RUN_REQUESTS,), frozenset({EventType.RUN_REQUESTED}), build)
