"""The executor's transactions (DESIGN.md §3): claim, persist a round of rows, end the run.

Each is one transaction on the run row. After the claim, every one starts by locking the run
*fenced* by the lease (`claimed_by`, `attempt`); no row means another executor owns the run now
(or it ended) and `LeaseLost` is raised before anything is written. The cancel flag is read
under that lock, so the first commit after a cancel request ends the run `cancelled`. The common
round (the conversation goes on, no cancel requested) is a single statement that makes the same
writes under the same fence (`service.db.rounds`), shared with the other conversations' rounds
that are ready at the same moment (`consumers.executor.batching`: group commit).

A run whose verdict needs no judge is *settled* in the transaction that ends it: ended, scored,
billed and done in one statement (`service.db.results.settle_run`), then charged, with the
company row locked last as the biller does. That spares the run the scorer's and the biller's
reads, writes and commits; the events are the same, in the same order, and each says the run is
done, so those roles skip them unread. A run whose verdict needs the judge only ends here, and
the scorer and the biller finish it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from pydantic import JsonValue

from consumers.executor.batching import RoundBatcher
from consumers.llm.providers import Completion
from schemas.api import TurnRole
from schemas.evaluation import Evaluation
from schemas.rates import RateCard
from service.core.clock import SYSTEM_CLOCK, Clock
from service.core.errors import DatabaseError, LeaseLost
from service.core.ids import new_id
from service.core.logging import get_logger
from service.core.metrics import RUNS_ENDED, TURNS_PERSISTED
from service.db import claims, results, rounds, turns
from service.db.claims import Lease, Tenure
from service.db.postgres import Connection, Pool, connection, transaction
from service.db.runs import RunRow
from service.domain import pricing
from service.domain.ledger import Debit
from service.domain.lifecycle import Ending, needs_scoring, settles_in_place
from service.domain.transcript import ToolCallRecord, TranscriptTurn
from service.runs import settlement
from service.runs.endings import fill_slots
from service.runs.suite_completion import count_run_done

log = get_logger("consumers.executor.persistence")


@dataclass(frozen=True)
class Draft:
    """A transcript row produced by a round, not yet numbered, priced or persisted."""

    role: TurnRole
    text: str | None = None
    tool_calls: tuple[ToolCallRecord, ...] = ()
    tool_result: dict[str, JsonValue] | None = None
    flow_event: dict[str, JsonValue] | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: int | None = None

    @classmethod
    def from_completion(cls, role: TurnRole, model: str, completion: Completion) -> Draft:
        return cls(
            role,
            text=completion.text,
            tool_calls=completion.tool_calls,
            model=model,
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
            latency_ms=completion.latency_ms,
        )

    def is_empty(self) -> bool:
        return not self.text and not self.tool_calls

    def has_usage(self) -> bool:
        return bool(self.input_tokens or self.output_tokens)

    def as_turn(self, number: int) -> TranscriptTurn:
        return TranscriptTurn(
            number, self.role, self.text, self.tool_calls, self.tool_result, self.flow_event
        )

    def priced(self, run_id: UUID, number: int, attempt: int, card: RateCard) -> turns.NewTurn:
        """The row to write, priced with the rate card in force (model calls only)."""
        price = pricing.price_turn(card, self.role, self.model, self.input_tokens, self.output_tokens)
        return turns.NewTurn(
            id=new_id(),
            run_id=run_id,
            turn_number=number,
            role=self.role,
            text=self.text,
            tool_calls=[{"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.tool_calls]
            or None,
            tool_result=self.tool_result,
            flow_event=self.flow_event,
            model=self.model,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost_microcents=price.cost_microcents if price else 0,
            rate_card_version=price.rate_card_version if price else None,
            latency_ms=self.latency_ms,
            attempt=attempt,
        )


# Ending transactions in flight per process. A settled end locks its company's row last and
# holds it until its commit is flushed, so the endings of one company take turns there; a turn
# waited for inside PostgreSQL holds the run's row (which the lease keeper then waits on, and
# every lease it holds behind it) and a connection, while one waited for here holds nothing.
# Four, not one: an ending is a few round trips and a flush, and companies other than the one
# contended for should not wait (measured: 1 costs the scripted pipeline a third of its runs/s).
ENDINGS_AT_ONCE = 4

_Ended = tuple[RunRow, Debit | None]  # the ended run, and its charge if it was settled


def _stored(verdict: Evaluation) -> results.Verdict:
    return results.Verdict(verdict.model_dump(mode="json"), verdict.score, verdict.pass_fail)


@dataclass(frozen=True)
class WriterSettings:
    rate_card: RateCard
    lease_ttl_s: float
    max_attempts: int
    inflight_cap: int


class RunWriter:
    def __init__(self, pool: Pool, settings: WriterSettings, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._pool = pool
        self._settings = settings
        self._batcher = RoundBatcher(pool)
        self._ending = asyncio.Semaphore(ENDINGS_AT_ONCE)

    async def claim(self, run_id: UUID, executor: str) -> RunRow | None:
        """Claim the run, announcing `run.started` (one statement); None if it is not claimable,
        or if its claims are used up (the expired-lease sweep then ends it EXECUTOR_LOST)."""
        async with connection(self._pool) as conn:
            run = await claims.claim_run(
                conn, run_id, executor, self._settings.lease_ttl_s, self._settings.max_attempts
            )
        if run is not None:
            log.info("run_claimed", run_id=str(run_id), attempt=run.attempt)
        return run

    async def tenure(self, lease: Lease) -> Tenure:
        """What became of the lease, after a fenced write matched no row."""
        async with connection(self._pool) as conn:
            return await claims.check_lease(conn, lease)

    async def transcript(self, run_id: UUID) -> list[TranscriptTurn]:
        async with connection(self._pool) as conn:
            return turns.transcript_of(await turns.list_turns(conn, run_id))

    async def persist(
        self,
        lease: Lease,
        first: int,
        drafts: Sequence[Draft],
        ending: Ending | None,
        active_ms: int,
        *,
        verdict: Evaluation | None = None,
    ) -> bool:
        """Write a round's rows (numbered from `first`) and their events; end the run if it ends
        with them or a cancel was requested, settling it in place if it can (`verdict`: the
        evaluation of the transcript with these rows, when no judge is needed). True when the
        run ended."""
        card = self._settings.rate_card
        new = [d.priced(lease.run_id, first + i, lease.attempt, card) for i, d in enumerate(drafts)]
        if ending is None:  # the common round: batched with others, unless the lease or a cancel says no
            pending = rounds.PendingRound(lease, new, active_ms, self._clock.now())
            written = await self._batcher.write(pending)
            if written is not None:
                self._count(written.rows)
                return False
        ended: _Ended | None = None
        async with self._ending, transaction(self._pool) as conn:
            now = self._clock.now()
            round_ = await rounds.persist_round(
                conn, lease, new, active_ms=active_ms, now=now, unless_cancelled=False
            )
            if round_ is None:
                raise LeaseLost()
            if round_.cancel_requested:
                ending = Ending("cancelled")
            if ending is not None:
                ended = await self._end(conn, lease, ending, active_ms, verdict)
        self._count(round_.rows)
        if ended is not None:
            await self._ended(*ended)
        return ended is not None

    @staticmethod
    def _count(rows: Sequence[turns.TurnRow]) -> None:
        for row in rows:
            TURNS_PERSISTED.labels(row.role).inc()

    async def end(
        self, lease: Lease, ending: Ending, active_ms: int, verdict: Evaluation | None = None
    ) -> None:
        """End the run without new rows (a cancel requested before still makes it `cancelled`),
        settling it in place if it can (`verdict` as for `persist`)."""
        async with self._ending, transaction(self._pool) as conn:
            run = await self._advance(conn, lease, 0, active_ms)
            if run.cancel_requested_at is not None:
                ending = Ending("cancelled")
            ended = await self._end(conn, lease, ending, active_ms, verdict)
        await self._ended(*ended)

    async def _advance(self, conn: Connection, lease: Lease, events: int, active_ms: int) -> claims.Advance:
        run = await claims.advance_run(conn, lease, events=events, active_ms=active_ms)
        if run is None:
            raise LeaseLost()
        return run

    async def _end(
        self, conn: Connection, lease: Lease, ending: Ending, active_ms: int, verdict: Evaluation | None
    ) -> _Ended:
        """End the run, and settle it if it can be (then the charge is the last write)."""
        if not settles_in_place(ending.status, verdict is not None):
            ended = await claims.finish_run(conn, lease, ending, active_ms)  # with its end event
            if ended is None:
                raise LeaseLost()
            return ended, None
        reckoning = await settlement.reckon(conn, lease.run_id, judge_cost_microcents=0)
        stored = _stored(verdict) if verdict is not None and needs_scoring(ending.status, False) else None
        settled = await results.settle_run(
            conn, lease, ending, active_ms=active_ms, verdict=stored, usage=reckoning.billed()
        )
        if settled is None:
            raise LeaseLost()
        await count_run_done(conn, settled)  # the last run of a suite run announces the suite run
        return settled, await settlement.charge(conn, settled, reckoning.bill.total_cost_cents)

    async def _ended(self, run: RunRow, owed: Debit | None) -> None:
        """After the end committed: say so, and hand the freed slot on. The run has ended, so a
        failure here must not reach the conversation (it would play the ended run again): the
        maintenance job releases what fits within seconds."""
        RUNS_ENDED.labels(run.status, run.termination_reason or "").inc()
        log.info(
            "run_ended",
            run_id=str(run.id),
            status=run.status,
            termination_reason=run.termination_reason,
            error_code=run.error_code,
            settled=owed is not None,
            total_cost_cents=run.total_cost_cents if owed is not None else None,
        )
        if owed is not None:
            settlement.report(run.id, owed)
        try:
            await fill_slots(self._pool, run.company_id, self._settings.inflight_cap, after_end=True)
        except DatabaseError as exc:
            log.warning("slot_release_deferred", run_id=str(run.id), error=str(exc))
