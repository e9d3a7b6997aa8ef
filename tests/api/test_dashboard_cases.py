"""The dashboard's case pages: each case with a pass/fail strip of its recent runs (newest first,
one colour per outcome, each a link to its run), one case with its assertions, and "Run now"."""

from __future__ import annotations

import re
from uuid import UUID

import pytest
from pytest_aiohttp.plugin import AiohttpClient

from service.core.settings import Settings
from service.db.postgres import Pool, connection
from tests.support.api import Client, Json, Tenant, key_for
from tests.support.dashboard import dashboard_client, get_page, post_form, sign_in
from tests.support.run_api import MUST_SAY_REFUND, get_run, queued_run, scripted_case


@pytest.fixture
async def ui(aiohttp_client: AiohttpClient, api_settings: Settings, pool: Pool) -> Client:
    return await dashboard_client(aiohttp_client, api_settings, pool)


async def _decide(pool: Pool, run_id: str, pass_fail: bool | None) -> None:
    async with connection(pool) as conn:
        await conn.execute(
            """UPDATE eval_runs SET status = 'completed', termination_reason = 'persona_goodbye',
                   queue_status = 'done', pass_fail = $2, score = $3 WHERE id = $1""",
            UUID(run_id),
            pass_fail,
            None if pass_fail is None else (100.0 if pass_fail else 0.0),
        )


def _strip(html: str) -> list[tuple[str, str]]:
    return re.findall(r'<a class="tick (\w+)" href="/ui/runs/([0-9a-f-]+)"', html)


async def test_each_case_shows_its_recent_runs_newest_first(ui: Client, tenant: Tenant, pool: Pool) -> None:
    case = await scripted_case(ui, tenant, success_criteria=[MUST_SAY_REFUND])
    runs: list[Json] = [await queued_run(ui, tenant, case["id"]) for _ in range(4)]
    for run, outcome in zip(runs[:3], (True, False, None), strict=True):
        await _decide(pool, run["id"], outcome)
    await sign_in(ui, tenant.key)
    status, html = await get_page(ui, "/ui/cases")
    assert status == 200
    assert f'data-case-id="{case["id"]}"' in html
    expected = [("queued", runs[3]["id"]), ("inconclusive", runs[2]["id"]), ("failed", runs[1]["id"])]
    assert _strip(html) == [*expected, ("passed", runs[0]["id"])]
    status, page = await get_page(ui, f"/ui/cases/{case['id']}")
    assert status == 200
    assert _strip(page)[:3] == expected
    assert "must say /refund/" in page


async def test_the_strip_keeps_only_the_newest_twenty(ui: Client, tenant: Tenant) -> None:
    case = await scripted_case(ui, tenant)
    made = [(await queued_run(ui, tenant, case["id"]))["id"] for _ in range(22)]
    await sign_in(ui, tenant.key)
    _, html = await get_page(ui, f"/ui/cases/{case['id']}")
    assert [run_id for _, run_id in _strip(html)] == made[::-1][:20]


async def test_run_now_starts_a_run_of_the_case_and_opens_it(ui: Client, tenant: Tenant) -> None:
    case = await scripted_case(ui, tenant)
    await sign_in(ui, tenant.key)
    status, location = await post_form(ui, f"/ui/cases/{case['id']}", f"/ui/cases/{case['id']}/run")
    assert status == 303
    run_id = location.rsplit("/", 1)[-1]
    run = (await get_run(ui, tenant, run_id)).body
    assert (run["case_id"], run["status"]) == (case["id"], "queued")
    assert (await get_page(ui, location))[0] == 200


async def test_a_read_only_key_sees_no_run_button_and_cannot_run(
    ui: Client, tenant: Tenant, pool: Pool
) -> None:
    case = await scripted_case(ui, tenant)
    reader = await key_for(pool, tenant, ["agent_eval:read"])
    await sign_in(ui, reader.key)
    status, html = await get_page(ui, f"/ui/cases/{case['id']}")
    assert status == 200
    assert "Run now" not in html
    status, _ = await post_form(ui, f"/ui/cases/{case['id']}", f"/ui/cases/{case['id']}/run")
    assert status == 403


async def test_another_companys_case_answers_404(ui: Client, tenant: Tenant, stranger: Tenant) -> None:
    case = await scripted_case(ui, tenant)
    await sign_in(ui, stranger.key)
    assert (await get_page(ui, f"/ui/cases/{case['id']}"))[0] == 404
    _, listing = await get_page(ui, "/ui/cases")
    assert case["id"] not in listing
    status, _ = await post_form(ui, "/ui/cases", f"/ui/cases/{case['id']}/run")
    assert status == 404
