"""The executor's transactions (DESIGN.md §3): claim, persist a round of rows, end the run.

Each is one transaction on the run row (endings: one for a batch of runs). After the claim,
every one starts by locking the run *fenced* by the lease (`claimed_by`, `attempt`); no row
means another executor owns the run now (or it ended) and `LeaseLost` is raised before anything
is written. The cancel flag is read under that lock, so the first commit after a cancel request
ends the run `cancelled`. The common round (the conversation goes on, no cancel requested) is a
single statement that makes the same writes under the same fence (`service.db.rounds`), shared
with the other conversations' rounds that are ready at the same moment
(`consumers.executor.batching`: group commit).

A run whose verdict needs no judge is *settled* in the transaction that ends it: ended, scored,
billed and done in one statement (`service.db.results.settle_runs`), then charged, with the
company row locked last as the biller does. That spares the run the scorer's and the biller's
reads, writes and commits; the events are the same, in the same order, and each says the run is
done, so those roles skip them unread. A run whose verdict needs the judge only ends here, and
the scorer and the biller finish it. Endings are group-committed too: the endings handed over
while one batch commits share the next transaction (`consumers.executor.endings`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from consumers.executor.batching import Batcher, RoundBatcher
from consumers.executor.drafts import Draft
from consumers.executor.endings import Closed, PendingEnding, end_all
from schemas.evaluation import Evaluation
from schemas.rates import RateCard
from service.core.clock import SYSTEM_CLOCK, Clock
from service.core.errors import DatabaseError, LeaseLost
from service.core.logging import get_logger
from service.core.metrics import RUNS_ENDED, TURNS_PERSISTED
from service.db import claims, rounds, turns
from service.db.claims import Lease, Tenure
from service.db.postgres import Pool, connection
from service.db.runs import RunRow
from service.domain.ledger import Debit
from service.domain.lifecycle import Ending
from service.domain.transcript import TranscriptTurn
from service.runs import settlement
from service.runs.endings import fill_slots

log = get_logger("consumers.executor.persistence")

# Endings per transaction: bounds how long a batch holds its runs' and companies' rows.
MAX_ENDINGS = 32


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
        self._endings: Batcher[PendingEnding, Closed] = Batcher(
            self._end_batch, max_batch=MAX_ENDINGS, name="ending-batcher"
        )

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
        return await self._close(PendingEnding(lease, new, ending, active_ms, self._clock.now(), verdict))

    async def end(
        self, lease: Lease, ending: Ending, active_ms: int, verdict: Evaluation | None = None
    ) -> None:
        """End the run without new rows (a cancel requested before still makes it `cancelled`),
        settling it in place if it can (`verdict` as for `persist`)."""
        await self._close(PendingEnding(lease, [], ending, active_ms, self._clock.now(), verdict))

    async def _end_batch(self, batch: list[PendingEnding]) -> dict[UUID, Closed | Exception]:
        outcomes = await end_all(self._pool, batch)
        freed = {o.ended[0].company_id for o in outcomes.values() if isinstance(o, Closed) and o.ended}
        for company_id in sorted(freed):
            await self._fill_slots(company_id)
        return outcomes

    async def _fill_slots(self, company_id: UUID) -> None:
        """After a batch committed, once per company whose runs it ended: hand the freed slots
        on. The runs have ended, so a failure here must not reach their conversations (they
        would play them again): the maintenance job releases what fits within seconds."""
        try:
            await fill_slots(self._pool, company_id, self._settings.inflight_cap, after_end=True)
        except DatabaseError as exc:
            log.warning("slot_release_deferred", company_id=str(company_id), error=str(exc))

    async def _close(self, pending: PendingEnding) -> bool:
        """Hand the ending to the next batch; True when the run ended. LeaseLost when the lease no
        longer held (nothing of it was written)."""
        closed = await self._endings.write(pending)
        if closed is None:  # every run handed over is answered; an unanswered one was not written
            raise LeaseLost()
        self._count(closed.rows)
        if closed.ended is not None:
            self._ended(*closed.ended)
        return closed.ended is not None

    @staticmethod
    def _count(rows: Sequence[turns.TurnRow]) -> None:
        for row in rows:
            TURNS_PERSISTED.labels(row.role).inc()

    @staticmethod
    def _ended(run: RunRow, owed: Debit | None) -> None:
        """After the end committed (and its batch handed the freed slots on): say so."""
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
