"""Consumption reports from the credit ledger (`GET /billing/consumption`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from service.db.postgres import Connection

# Fixed fragments chosen by whitelist key: never built from input.
_PERIODS = {
    "day": "to_char(l.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    "month": "to_char(l.created_at AT TIME ZONE 'UTC', 'YYYY-MM')",
    "total": "'total'",
    "agent": "'total'",
}
_PRODUCT = """CASE l.kind WHEN 'eval_run_charge' THEN 'eval_run' WHEN 'grant' THEN 'topup'
                          WHEN 'refund' THEN 'refund' ELSE 'adjustment' END"""
# Consumption is positive; a top-up shows as the credit it is; a refund reverses consumption.
_AMOUNT = "CASE l.kind WHEN 'grant' THEN l.amount_cents ELSE -l.amount_cents END"


@dataclass(frozen=True)
class ConsumptionBucket:
    period: str
    product: str
    total_amount_cents: int
    count: int
    agent_id: UUID | None


def _sql(group_by: str) -> str:
    agent = "r.agent_id" if group_by == "agent" else "NULL::uuid"
    return f"""
SELECT {_PERIODS[group_by]} AS period, {_PRODUCT} AS product, {agent} AS agent_id,
       sum({_AMOUNT})::bigint AS total_amount_cents, count(*)::int AS count
FROM credit_ledger l
LEFT JOIN eval_runs r ON r.id = l.run_id
WHERE l.company_id = $1 AND l.created_at >= $2 AND l.created_at < $3 AND ({_PRODUCT}) = ANY($4::text[])
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3 NULLS FIRST
"""


_QUERIES = {group_by: _sql(group_by) for group_by in _PERIODS}


async def consumption(
    conn: Connection,
    company_id: UUID,
    *,
    start: datetime,
    end: datetime,
    group_by: str,
    products: Sequence[str],
) -> list[ConsumptionBucket]:
    """Ledger movements of `products` in [start, end), grouped by period (and agent)."""
    rows = await conn.fetch(_QUERIES[group_by], company_id, start, end, list(products))
    return [ConsumptionBucket(**dict(r)) for r in rows]
