"""Cancelling a run (DESIGN.md §3), decided on the run row in one transaction.

Not yet claimed (`queue_status = 'pending'`): cancelled and done at once, cost 0, no ledger row;
the next held run takes its slot; `run.cancelled` then `run.done`. Running: the cancel flag is
set (once) with `run.cancel_requested`; the executor ends the run `cancelled` at its next turn
commit. Already over: nothing changes. An `Idempotency-Key` binds the key to this request; the
cancel itself is idempotent, so a replay simply answers with the run as it is now.
"""

from __future__ import annotations

from uuid import UUID

from service.core.errors import IdempotencyKeyInUse, IdempotencyKeyReused, LockTimeout, NotFound
from service.core.settings import Settings
from service.db import dispatch, idempotency, outbox, runs
from service.db.postgres import Connection, Pool, transaction
from service.domain.lifecycle import TRANSITIONS, Step, is_terminal, is_unclaimed
from service.runs.endings import announce_cancel_before_claim, fill_slots
from service.runs.suite_completion import count_run_done
from service.runs.triggers import KEY_WAIT_S, IdempotencyRequest

RUN_CANCEL = "eval_run_cancel"


async def cancel_run(
    pool: Pool, settings: Settings, *, company_id: UUID, run_id: UUID, key: IdempotencyRequest | None
) -> bool:
    """Cancel or flag the run; True when it is running (its end comes at a turn boundary)."""
    try:
        async with transaction(pool) as conn:
            run = await runs.lock_run(conn, run_id)
            if run is None or run.company_id != company_id:
                raise NotFound(f"Run {run_id} not found")
            if key is not None:
                await _bind_key(conn, company_id, run_id, key)
            running, freed = await _cancel_locked(conn, run)
        if freed:
            await fill_slots(pool, company_id, settings.max_inflight_runs_per_company, after_end=True)
        return running
    except LockTimeout as exc:
        raise IdempotencyKeyInUse("A request with this Idempotency-Key is still being processed") from exc


async def _bind_key(conn: Connection, company_id: UUID, run_id: UUID, key: IdempotencyRequest) -> None:
    await idempotency.set_lock_timeout(conn, KEY_WAIT_S)
    stored = await idempotency.store_key(
        conn, company_id, key.key, fingerprint=key.fingerprint, resource_type=RUN_CANCEL, resource_id=run_id
    )
    if stored is not None and (stored.fingerprint != key.fingerprint or stored.resource_type != RUN_CANCEL):
        raise IdempotencyKeyReused("This Idempotency-Key was used for a different request")


async def _cancel_locked(conn: Connection, run: runs.RunRow) -> tuple[bool, bool]:
    """(still running, a released slot was freed)."""
    if is_unclaimed(run.status, run.queue_status):
        cancelled = await dispatch.cancel_pending(conn, run.id)  # the row is locked: it is still pending
        if cancelled is not None:
            await announce_cancel_before_claim(conn, cancelled)
            await count_run_done(conn, cancelled)
            return False, run.released_at is not None
    if not is_terminal(run.status):
        flagged = await dispatch.request_cancel(conn, run.id)
        if flagged is not None:
            (event,) = TRANSITIONS[Step.CANCEL_REQUESTED].events
            await outbox.append_event(conn, run.id, event, flagged.summary())
        return True, False
    return False, False
