"""The executor role: `run.requested` → claim (fenced lease) → play the conversation.

The handler claims and returns, so the request's offset is committed once the claim commits;
the lease, not the offset, guarantees the run completes. Conversations play as tasks, at most
`executor_concurrency` at once: while full, the runner pauses this member's partitions (it keeps
polling, so it never falls out of the group) and a request already fetched waits for a slot.
One statement every `lease_ttl_s / 3` renews every lease this process holds; a run it no longer
holds is dropped at once. On shutdown the conversations stop, and their runs are handed back
and re-dispatched, to resume on another executor at the next turn boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
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
from service.core.errors import Abandoned, DatabaseError, DatabaseUnavailable
from service.core.ids import new_id
from service.core.logging import bound_context, get_logger
from service.core.metrics import CONVERSATIONS_ACTIVE
from service.core.settings import Settings
from service.db import claims, outbox
from service.db.claims import Lease
from service.db.postgres import Pool, transaction
from service.runtime.pools import backoff_s

log = get_logger("consumers.executor.worker")


def executor_name() -> str:
    """Unique per process start: host, pid and a random suffix (a restarted pid is a new owner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_id().hex[-8:]}"


class Executor:
    def __init__(self, pool: Pool, settings: Settings, engine: Engine, name: str | None = None) -> None:
        self._pool = pool
        self._settings = settings
        self._engine = engine
        self.name = name or executor_name()
        self._slots = asyncio.Semaphore(settings.executor_concurrency)
        self._playing: dict[UUID, tuple[Lease, asyncio.Task[None]]] = {}
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
        task = asyncio.create_task(self._play(Conversation(self._engine, run, lease), run.id))
        self._playing[run.id] = (lease, task)
        CONVERSATIONS_ACTIVE.set(len(self._playing))
        self._ensure_keeper()

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

    async def _play(self, conversation: Conversation, run_id: UUID) -> None:
        try:
            with bound_context(run_id=str(run_id)):
                await self._play_through_outages(conversation, run_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The lease expires and another executor resumes the run from its last turn.
            log.exception("conversation_crashed", run_id=str(run_id))
        finally:
            self._playing.pop(run_id, None)
            CONVERSATIONS_ACTIVE.set(len(self._playing))
            self._slots.release()

    async def _play_through_outages(self, conversation: Conversation, run_id: UUID) -> None:
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
            self._keeper = asyncio.create_task(self._keep_leases(), name="lease-keeper")

    async def _keep_leases(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._settings.lease_ttl_s / 3)
            if not self._stopping.is_set():
                await self.extend_leases()

    async def extend_leases(self) -> None:
        """Renew every lease in one statement; drop the conversations whose lease was lost."""
        held = {run_id: lease for run_id, (lease, _) in self._playing.items()}
        try:
            async with transaction(self._pool) as conn:
                kept = await claims.extend_leases(
                    conn, self.name, list(held.values()), self._settings.lease_ttl_s
                )
        except DatabaseError as exc:
            log.warning("lease_extension_failed", error=str(exc), runs=len(held))
            return
        for run_id in held.keys() - kept:
            entry = self._playing.get(run_id)
            if entry is not None and entry[0] == held[run_id]:
                log.warning("lease_lost", run_id=str(run_id), attempt=held[run_id].attempt)
                entry[1].cancel()

    def stop(self) -> None:
        """Stop taking runs (the runner is stopping too)."""
        self._stopping.set()

    async def close(self) -> None:
        """Stop every conversation and hand its run back for another executor to resume."""
        self._stopping.set()
        tasks = [task for _, task in self._playing.values()]
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
