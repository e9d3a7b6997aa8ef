"""`GET /billing` and `GET /billing/consumption`: the balance as admin grants and deductions move it,
and ledger movements grouped by period, product and agent, in [from, to)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from service.core.ids import new_id
from service.db import ledger
from service.db.postgres import Pool, connection, transaction
from tests.support.api import ADMIN_HEADERS, Client, Json, Tenant, agent_body, created
from tests.support.factories import make_run

PRODUCT_OF_KIND = {
    "grant": "topup",
    "deduction": "adjustment",
    "eval_run_charge": "eval_run",
    "refund": "refund",
}
PERIOD_FORMAT = {"day": "%Y-%m-%d", "month": "%Y-%m"}


def _iso(moment: datetime) -> str:
    """UTC with a `Z`, so the query string needs no `+`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def _adjust(client: Client, company_id: str, amount_cents: int) -> Json:
    response = await client.post(
        f"/admin/companies/{company_id}/credits",
        json={"amount_cents": amount_cents, "reason": "test adjustment"},
        headers=ADMIN_HEADERS,
    )
    body: Json = await response.json()
    assert response.status == 201, body
    return body


async def _billing(client: Client, tenant: Tenant) -> Json:
    response = await client.get("/billing", headers=tenant.headers())
    body: Json = await response.json()
    assert response.status == 200, body
    return body


async def _consumption(client: Client, tenant: Tenant, **params: str) -> Json:
    response = await client.get("/billing/consumption", params=params, headers=tenant.headers())
    body: Json = await response.json()
    assert response.status == 200, body
    return body


async def _charge_run(pool: Pool, company_id: str, amount_cents: int, agent_id: str | None) -> UUID:
    """A run of the company (with `agent_id`) charged `amount_cents` through the ledger."""
    run = await make_run(pool, UUID(company_id))
    async with transaction(pool) as conn:
        if agent_id is not None:
            await conn.execute("UPDATE eval_runs SET agent_id = $1 WHERE id = $2", UUID(agent_id), run.id)
        await ledger.post_ledger_entry(
            conn,
            entry_id=new_id(),
            company_id=UUID(company_id),
            kind="eval_run_charge",
            amount_cents=-amount_cents,
            run_id=run.id,
        )
    return run.id


async def _entries(pool: Pool, company_id: str) -> list[ledger.LedgerEntry]:
    async with connection(pool) as conn:
        return await ledger.list_ledger_entries(conn, UUID(company_id))


Row = tuple[str, str, str | None, int, int]  # period, product, agent_id, total_amount_cents, count


def _sorted(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda row: (row[0], row[1], row[2] or "", row[3], row[4]))


def _rows(body: Json) -> list[Row]:
    return _sorted(
        [
            (r["period"], r["product"], r["agent_id"], r["total_amount_cents"], r["count"])
            for r in body["data"]
        ]
    )


def _expected(
    entries: list[ledger.LedgerEntry], group_by: str, agents: dict[UUID, str | None], products: set[str]
) -> list[Row]:
    """What the report should say about `entries`: consumption positive, top-ups as credits."""
    sums: dict[tuple[str, str, str | None], list[int]] = defaultdict(lambda: [0, 0])
    for entry in entries:
        product = PRODUCT_OF_KIND[entry.kind]
        if product not in products:
            continue
        fmt = PERIOD_FORMAT.get(group_by)
        period = entry.created_at.astimezone(UTC).strftime(fmt) if fmt else "total"
        agent = agents.get(entry.run_id) if group_by == "agent" and entry.run_id else None
        amount = entry.amount_cents if entry.kind == "grant" else -entry.amount_cents
        sums[period, product, agent][0] += amount
        sums[period, product, agent][1] += 1
    return _sorted([(*key, total, count) for key, (total, count) in sums.items()])


@dataclass(frozen=True)
class Movements:
    """A company's ledger after some admin adjustments and run charges, and each run's agent."""

    entries: list[ledger.LedgerEntry]
    agents: dict[UUID, str | None]
    agent_ids: tuple[str, str]


@pytest.fixture
async def movements(client: Client, pool: Pool, tenant: Tenant) -> Movements:
    """Opening grant 100 000 (make_tenant), a grant, two deductions, four charged runs, a refund."""
    first = await created(client, tenant, "/agents", agent_body(name="First"))
    second = await created(client, tenant, "/agents", agent_body(name="Second"))
    await _adjust(client, tenant.company_id, 2_500)
    await _adjust(client, tenant.company_id, -300)
    await _adjust(client, tenant.company_id, -200)
    agents: dict[UUID, str | None] = {}
    for amount, agent in ((100, first["id"]), (50, first["id"]), (25, second["id"]), (10, None)):
        agents[await _charge_run(pool, tenant.company_id, amount, agent)] = agent
    refunded = next(iter(agents))
    async with transaction(pool) as conn:
        await ledger.post_ledger_entry(
            conn,
            entry_id=new_id(),
            company_id=UUID(tenant.company_id),
            kind="refund",
            amount_cents=40,
            run_id=refunded,
        )
    return Movements(await _entries(pool, tenant.company_id), agents, (first["id"], second["id"]))


ALL_BUT_TOPUPS = {"eval_run", "adjustment", "refund", "voice_call", "phone_number"}


# --- GET /billing -----------------------------------------------------------------------------------


async def test_billing_reports_the_balance_as_admin_grants_and_deductions_move_it(client: Client) -> None:
    response = await client.post(
        "/admin/companies",
        json={"name": "Initech", "credits_cents": 12_345, "billing_email": "ap@initech.example"},
        headers=ADMIN_HEADERS,
    )
    company: Json = await response.json()
    key = await client.post(
        f"/admin/companies/{company['id']}/api-keys",
        json={"name": "reader", "scopes": ["billing:read"]},
        headers=ADMIN_HEADERS,
    )
    tenant = Tenant(company["id"], (await key.json())["key"])
    assert await _billing(client, tenant) == {
        "has_payment_method": False,
        "billing_email": "ap@initech.example",
        "balance_cents": 12_345,
        "balance": 123.45,
        "currency": "usd",
        "is_suspended": False,
        "auto_topup_enabled": False,
        "auto_topup_amount_cents": None,
        "low_balance_threshold_cents": None,
    }
    await _adjust(client, company["id"], 655)
    billing = await _billing(client, tenant)
    assert (billing["balance_cents"], billing["balance"]) == (13_000, 130.0)
    await _adjust(client, company["id"], -3_001)
    billing = await _billing(client, tenant)
    assert (billing["balance_cents"], billing["balance"]) == (9_999, 99.99)


async def test_billing_shows_a_suspension_and_its_lifting(client: Client, tenant: Tenant) -> None:
    for suspended in (True, False):
        response = await client.patch(
            f"/admin/companies/{tenant.company_id}", json={"is_suspended": suspended}, headers=ADMIN_HEADERS
        )
        assert response.status == 200
        assert (await _billing(client, tenant))["is_suspended"] is suspended


async def test_a_company_without_credits_has_a_zero_balance(client: Client) -> None:
    response = await client.post("/admin/companies", json={"name": "Broke"}, headers=ADMIN_HEADERS)
    company: Json = await response.json()
    key = await client.post(
        f"/admin/companies/{company['id']}/api-keys",
        json={"name": "reader", "scopes": ["billing:read"]},
        headers=ADMIN_HEADERS,
    )
    billing = await _billing(client, Tenant(company["id"], (await key.json())["key"]))
    assert (billing["balance_cents"], billing["balance"], billing["billing_email"]) == (0, 0.0, None)


# --- GET /billing/consumption: range ----------------------------------------------------------------


async def test_the_default_range_is_the_last_30_days_by_day(client: Client, tenant: Tenant) -> None:
    before = datetime.now(UTC)
    body = await _consumption(client, tenant)
    after = datetime.now(UTC)
    start, end = datetime.fromisoformat(body["from"]), datetime.fromisoformat(body["to"])
    assert before <= end <= after
    assert end - start == timedelta(days=30)
    assert (body["group_by"], body["data"]) == ("day", [])  # the opening grant is a top-up: left out


async def test_a_range_given_by_one_end_spans_30_days_from_it(client: Client, tenant: Tenant) -> None:
    to = datetime(2026, 3, 1, tzinfo=UTC)
    body = await _consumption(client, tenant, to=_iso(to))
    assert (datetime.fromisoformat(body["from"]), datetime.fromisoformat(body["to"])) == (
        to - timedelta(days=30),
        to,
    )
    since = datetime.now(UTC) - timedelta(days=3)
    before = datetime.now(UTC)
    body = await _consumption(client, tenant, **{"from": _iso(since)})
    assert datetime.fromisoformat(body["from"]) == since
    assert before <= datetime.fromisoformat(body["to"]) <= datetime.now(UTC)


async def test_from_is_inclusive_and_to_is_exclusive(client: Client, pool: Pool, tenant: Tenant) -> None:
    await _adjust(client, tenant.company_id, -700)
    [deduction] = [e for e in await _entries(pool, tenant.company_id) if e.kind == "deduction"]
    at, tick = deduction.created_at, timedelta(microseconds=1)

    async def totals(start: datetime, end: datetime) -> list[Row]:
        return _rows(
            await _consumption(client, tenant, group_by="total", **{"from": _iso(start), "to": _iso(end)})
        )

    included = [("total", "adjustment", None, 700, 1)]
    assert await totals(at, at + tick) == included
    assert await totals(at - timedelta(hours=1), at + tick) == included
    assert await totals(at - timedelta(hours=1), at) == []
    assert await totals(at + tick, at + timedelta(hours=1)) == []


# --- GET /billing/consumption: grouping and products ------------------------------------------------


@pytest.mark.parametrize("group_by", ["day", "month", "total", "agent"])
async def test_consumption_is_grouped_by_period_and_product(
    client: Client, tenant: Tenant, movements: Movements, group_by: str
) -> None:
    body = await _consumption(client, tenant, group_by=group_by)
    assert body["group_by"] == group_by
    assert _rows(body) == _expected(movements.entries, group_by, movements.agents, ALL_BUT_TOPUPS)


async def test_admin_deductions_are_adjustments_and_run_charges_are_eval_runs(
    client: Client, tenant: Tenant, movements: Movements
) -> None:
    body = await _consumption(client, tenant, group_by="total")
    assert _rows(body) == [
        ("total", "adjustment", None, 500, 2),
        ("total", "eval_run", None, 185, 4),
        ("total", "refund", None, -40, 1),
    ]
    assert {row["agent_id"] for row in body["data"]} == {None}


async def test_group_by_agent_fills_in_the_runs_agent(
    client: Client, tenant: Tenant, movements: Movements
) -> None:
    first, second = movements.agent_ids
    body = await _consumption(client, tenant, group_by="agent", product="eval_run")
    assert _rows(body) == _sorted(
        [
            ("total", "eval_run", first, 150, 2),
            ("total", "eval_run", second, 25, 1),
            ("total", "eval_run", None, 10, 1),
        ]
    )


@pytest.mark.parametrize(
    ("product", "expected"),
    [
        ("adjustment", [("adjustment", 500, 2)]),
        ("eval_run", [("eval_run", 185, 4)]),
        ("refund", [("refund", -40, 1)]),
        ("topup", [("topup", 102_500, 2)]),
        ("voice_call", []),
    ],
)
async def test_the_product_filter_keeps_only_that_product(
    client: Client, tenant: Tenant, movements: Movements, product: str, expected: list[tuple[str, int, int]]
) -> None:
    body = await _consumption(client, tenant, group_by="total", product=product)
    assert [(r["product"], r["total_amount_cents"], r["count"]) for r in body["data"]] == expected


@pytest.mark.parametrize(("include", "shown"), [(None, False), ("false", False), ("true", True)])
async def test_top_ups_are_left_out_unless_asked_for(
    client: Client, tenant: Tenant, movements: Movements, include: str | None, shown: bool
) -> None:
    params = {"group_by": "total"} | ({} if include is None else {"include_topups": include})
    body = await _consumption(client, tenant, **params)
    topups = [(r["total_amount_cents"], r["count"]) for r in body["data"] if r["product"] == "topup"]
    assert topups == ([(102_500, 2)] if shown else [])
    assert {r["product"] for r in body["data"]} - {"topup"} == {"adjustment", "eval_run", "refund"}


async def test_another_companys_movements_never_appear(
    client: Client, tenant: Tenant, stranger: Tenant, movements: Movements
) -> None:
    body = await _consumption(client, stranger, group_by="total", include_topups="true")
    assert _rows(body) == [("total", "topup", None, 100_000, 1)]


# --- GET /billing/consumption: bad queries ----------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "query.from"),
        ("from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "query.from"),
        ("from=2000-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "query.from"),
        ("group_by=week", "query.group_by"),
        ("product=x", "query.product"),
        ("from=0.5", "query.from"),
        ("to=1700000000", "query.to"),
        ("from=2026-01-01T00:00:00", "query.from"),
        ("from=yesterday", "query.from"),
        ("include_topups=maybe", "query.include_topups"),
        ("page=2", "query.page"),
    ],
)
async def test_bad_consumption_queries_are_refused_naming_the_parameter(
    client: Client, tenant: Tenant, query: str, field: str
) -> None:
    response = await client.get(f"/billing/consumption?{query}", headers=tenant.headers())
    body: Json = await response.json()
    assert (response.status, body["code"]) == (400, "VALIDATION_ERROR")
    assert field in [f["field"] for f in body["fields"]], body
