"""Reading runs: `GET /agent-eval/runs` newest first in pages with its filters, another company's runs
never shown, bad queries named, and a run's turns and evaluation empty and null until it is done."""

from __future__ import annotations

import uuid
from datetime import datetime

from service.db.postgres import Pool
from tests.support.api import Client, Json, Tenant
from tests.support.run_api import RUNS, answer, get_run, mark_over, queued_run, refused, scripted_case


async def _listed(client: Client, tenant: Tenant, params: list[tuple[str, str]] | None = None) -> Json:
    response = await client.get(RUNS, params=params or [], headers=tenant.headers())
    page: Json = await response.json()
    assert response.status == 200, page
    return page


def _ids(page: Json) -> list[str]:
    return [run["id"] for run in page["data"]]


def _query_time(value: str) -> str:
    return datetime.fromisoformat(value).isoformat().replace("+00:00", "Z")


async def test_the_list_is_newest_first_in_pages(client: Client, tenant: Tenant, case: Json) -> None:
    made = [(await queued_run(client, tenant, case["id"]))["id"] for _ in range(3)]
    page = await _listed(client, tenant)
    assert _ids(page) == made[::-1]
    assert page["pagination"] == {"total": 3, "limit": 20, "offset": 0, "has_more": False}
    assert page["data"][0] == (await get_run(client, tenant, made[2])).body
    page = await _listed(client, tenant, [("limit", "1"), ("offset", "1")])
    assert _ids(page) == [made[1]]
    assert page["pagination"] == {"total": 3, "limit": 1, "offset": 1, "has_more": True}
    past_the_end = await _listed(client, tenant, [("offset", "5")])
    assert past_the_end == {
        "data": [],
        "pagination": {"total": 3, "limit": 20, "offset": 5, "has_more": False},
    }


async def test_the_list_filters_by_case_status_and_creation_time(
    client: Client, tenant: Tenant, case: Json, pool: Pool
) -> None:
    other_case = await scripted_case(client, tenant)
    first = await queued_run(client, tenant, case["id"])
    second = await queued_run(client, tenant, other_case["id"])
    third = await queued_run(client, tenant, case["id"])
    await mark_over(pool, third["id"])
    assert _ids(await _listed(client, tenant, [("case_id", case["id"])])) == [third["id"], first["id"]]
    assert _ids(await _listed(client, tenant, [("status", "completed")])) == [third["id"]]
    assert _ids(await _listed(client, tenant, [("status", "queued")])) == [second["id"], first["id"]]
    after_first = [("created_after", _query_time(first["created_at"]))]
    assert _ids(await _listed(client, tenant, after_first)) == [third["id"], second["id"]]
    before_third = [("created_before", _query_time(third["created_at"]))]
    assert _ids(await _listed(client, tenant, before_third)) == [second["id"], first["id"]]
    both = after_first + before_third + [("case_id", other_case["id"])]
    page = await _listed(client, tenant, both)
    assert (_ids(page), page["pagination"]["total"]) == ([second["id"]], 1)


async def test_the_list_filters_by_labels_all_of_which_must_match(
    client: Client, tenant: Tenant, case: Json
) -> None:
    both = await queued_run(client, tenant, case["id"], {"labels": {"env": "ci", "team": "a"}})
    env_only = await queued_run(client, tenant, case["id"], {"labels": {"env": "ci", "team": "b"}})
    await queued_run(client, tenant, case["id"])
    two = [("label", "env=ci"), ("label", "team=a")]
    assert _ids(await _listed(client, tenant, two)) == [both["id"]]
    assert _ids(await _listed(client, tenant, [("label", "team=b"), ("label", "env=ci")])) == [env_only["id"]]
    assert _ids(await _listed(client, tenant, [("label", "env=prod"), ("label", "team=a")])) == []
    # One label alone is the commonest filter of all.
    assert _ids(await _listed(client, tenant, [("label", "env=ci")])) == [env_only["id"], both["id"]]


async def test_another_companys_runs_are_never_listed_nor_readable(
    client: Client, tenant: Tenant, stranger: Tenant, case: Json
) -> None:
    mine = await queued_run(client, tenant, case["id"])
    theirs = await queued_run(client, stranger, (await scripted_case(client, stranger))["id"])
    assert _ids(await _listed(client, tenant)) == [mine["id"]]
    assert _ids(await _listed(client, stranger)) == [theirs["id"]]
    assert (await _listed(client, tenant, [("case_id", theirs["case_id"])]))["data"] == []
    for path in ("", "/turns", "/evaluation"):
        response = await client.get(f"{RUNS}/{theirs['id']}{path}", headers=tenant.headers())
        refused(await answer(response), 404, "NOT_FOUND")
    refused(await get_run(client, tenant, theirs["id"], prefer="wait=5"), 404, "NOT_FOUND")
    refused(await get_run(client, tenant, str(uuid.uuid4())), 404, "NOT_FOUND")


BAD_QUERIES = [
    ("limit", "101", "query.limit"),
    ("limit", "0", "query.limit"),
    ("status", "bogus", "query.status"),
    ("label", "no-equals-sign", "query.label.0"),
    ("created_after", "yesterday", "query.created_after"),
    ("case_id", "not-a-uuid", "query.case_id"),
    ("colour", "red", "query.colour"),
]


async def test_a_bad_list_query_is_400_naming_the_parameter(client: Client, tenant: Tenant) -> None:
    for name, value, field in BAD_QUERIES:
        got = await answer(await client.get(RUNS, params=[(name, value)], headers=tenant.headers()))
        refused(got, 400, "VALIDATION_ERROR")
        assert [f["field"] for f in got.body["fields"]] == [field], got.body


async def test_turns_and_evaluation_are_empty_and_null_until_the_run_is_done(
    client: Client, tenant: Tenant, case: Json, pool: Pool
) -> None:
    run = await queued_run(client, tenant, case["id"])
    turns = await answer(await client.get(f"{RUNS}/{run['id']}/turns", headers=tenant.headers()))
    assert (turns.status, turns.body) == (200, {"data": []})
    nothing = {"score": None, "pass_fail": None, "inconclusive": None, "results": None}
    evaluation = await answer(await client.get(f"{RUNS}/{run['id']}/evaluation", headers=tenant.headers()))
    assert (evaluation.status, evaluation.body) == (
        200,
        {**nothing, "status": "queued", "termination_reason": None, "queue_status": "pending"},
    )
    await mark_over(pool, run["id"])
    evaluation = await answer(await client.get(f"{RUNS}/{run['id']}/evaluation", headers=tenant.headers()))
    assert evaluation.body == {
        **nothing,
        "status": "completed",
        "termination_reason": "max_turns",
        "queue_status": "claimed",
    }
