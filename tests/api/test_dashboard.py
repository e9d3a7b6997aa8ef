"""The dashboard over HTTP: sign-in with an API key into a signed HttpOnly SameSite=Strict
cookie, CSRF on every form, a strict CSP, one company's data per key, scopes honoured, runs
listed newest first in keyset pages with filters, a run's page (transcript, verdicts linked to
turns, costs), cancel and run-again, and the live stream of a run as HTML fragments.
The same pages in a real browser: `tests/browser/`."""

from __future__ import annotations

import re
from uuid import UUID

import pytest
from pydantic import SecretStr
from pytest_aiohttp.plugin import AiohttpClient

from service.core.settings import Settings
from service.db.postgres import Pool, connection
from service.gateway.app import create_app
from tests.support.api import Client, Json, Tenant, key_for
from tests.support.dashboard import UI_SECRET, csrf_of, get_page, post_form, sign_in
from tests.support.run_api import (
    MUST_SAY_REFUND,
    cancel,
    get_run,
    queued_run,
    running_pipeline,
    scripted_case,
    trigger,
)
from tests.support.waiting import eventually


@pytest.fixture
def ui_settings(api_settings: Settings) -> Settings:
    return api_settings.model_copy(update={"ui_session_secret": SecretStr(UI_SECRET)})


@pytest.fixture
async def ui(aiohttp_client: AiohttpClient, ui_settings: Settings, pool: Pool) -> Client:
    return await aiohttp_client(create_app(ui_settings, pool=pool))


@pytest.fixture
async def other_ui(aiohttp_client: AiohttpClient, ui_settings: Settings, pool: Pool) -> Client:
    """A second browser (its own cookie jar) on a second gateway of the same deployment."""
    return await aiohttp_client(create_app(ui_settings, pool=pool))


@pytest.fixture
async def ui_case(ui: Client, tenant: Tenant) -> Json:
    return await scripted_case(ui, tenant, success_criteria=[MUST_SAY_REFUND])


# --- sessions ------------------------------------------------------------------------------------


async def test_a_page_without_a_session_redirects_to_sign_in_and_back(ui: Client, tenant: Tenant) -> None:
    response = await ui.get("/ui/runs?status=queued", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/ui/signin?next=%2Fui%2Fruns%3Fstatus%3Dqueued"

    assert await sign_in(ui, tenant.key, next_path="/ui/runs?status=queued") == 303
    status, html = await get_page(ui, "/ui/runs?status=queued")
    assert status == 200
    assert "<h1>Runs</h1>" in html


async def test_the_session_cookie_is_signed_http_only_strict_and_holds_no_key(
    ui: Client, tenant: Tenant
) -> None:
    page = await ui.get("/ui/signin")
    token = csrf_of(await page.text())
    response = await ui.post(
        "/ui/signin",
        data={"api_key": tenant.key, "csrf_token": token, "next": "/ui/runs"},
        allow_redirects=False,
    )
    cookie = response.cookies["agent_eval_session"]
    assert response.status == 303
    assert response.headers["Location"] == "/ui/runs"
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/ui/"
    assert tenant.key not in cookie.value
    assert tenant.key.split("_")[-1] not in cookie.value


async def test_behind_an_https_proxy_the_cookie_is_secure(ui: Client, tenant: Tenant) -> None:
    page = await ui.get("/ui/signin", headers={"X-Forwarded-Proto": "https"})
    assert page.cookies["agent_eval_session"]["secure"] is True
    plain = await ui.get("/ui/signin")
    assert not plain.cookies["agent_eval_session"]["secure"]


async def test_a_wrong_key_is_refused_on_the_form_and_signs_nobody_in(ui: Client) -> None:
    status = await sign_in(ui, "ae_live_" + "x" * 32)
    assert status == 401
    runs = await ui.get("/ui/runs", allow_redirects=False)
    assert runs.status == 303


async def test_sign_in_only_goes_on_to_dashboard_pages(ui: Client, tenant: Tenant) -> None:
    page = await ui.get("/ui/signin")
    token = csrf_of(await page.text())
    for target in ("https://evil.example/", "//evil.example/ui/", "/agent-eval/runs"):
        form = {"api_key": tenant.key, "csrf_token": token, "next": target}
        response = await ui.post("/ui/signin", data=form, allow_redirects=False)
        assert response.headers["Location"] == "/ui/runs", target
        token = csrf_of(await (await ui.get("/ui/signin")).text())


async def test_signing_out_ends_the_session(ui: Client, tenant: Tenant) -> None:
    await sign_in(ui, tenant.key)
    status, location = await post_form(ui, "/ui/runs", "/ui/signout")
    assert (status, location) == (303, "/ui/signin")
    assert (await ui.get("/ui/runs", allow_redirects=False)).status == 303


async def test_revoking_the_key_ends_its_sessions(ui: Client, tenant: Tenant, pool: Pool) -> None:
    await sign_in(ui, tenant.key)
    assert (await ui.get("/ui/runs", allow_redirects=False)).status == 200
    async with connection(pool) as conn:
        await conn.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE company_id = $1", UUID(tenant.company_id)
        )
    response = await ui.get("/ui/runs", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/ui/signin")


async def test_a_forged_cookie_counts_as_no_session(ui: Client, tenant: Tenant) -> None:
    await sign_in(ui, tenant.key)
    ui.session.cookie_jar.clear()
    ui.session.cookie_jar.update_cookies({"agent_eval_session": "eyJrIjoiMDEifQ.forged.signature"})
    assert (await ui.get("/ui/runs", allow_redirects=False)).status == 303


async def test_without_a_session_secret_the_dashboard_says_it_is_off(
    aiohttp_client: AiohttpClient, api_settings: Settings, pool: Pool
) -> None:
    plain = await aiohttp_client(create_app(api_settings, pool=pool))
    status, html = await get_page(plain, "/ui/signin")
    assert status == 503
    assert "NOT_CONFIGURED" in html
    assert "AGENT_EVAL_UI_SESSION_SECRET" in html


# --- forms and headers ---------------------------------------------------------------------------


async def test_a_form_without_its_token_is_refused_with_403(
    ui: Client, tenant: Tenant, ui_case: Json
) -> None:
    run = await queued_run(ui, tenant, ui_case["id"])
    await sign_in(ui, tenant.key)
    response = await ui.post(f"/ui/runs/{run['id']}/cancel", data={}, allow_redirects=False)
    assert response.status == 403
    assert "CSRF_REJECTED" in await response.text()
    signin = await ui.post("/ui/signin", data={"api_key": tenant.key}, allow_redirects=False)
    assert signin.status == 403
    assert (await get_run(ui, tenant, run["id"])).body["status"] == "queued"


async def test_a_token_from_another_session_is_refused(
    ui: Client, other_ui: Client, tenant: Tenant, ui_case: Json
) -> None:
    run = await queued_run(ui, tenant, ui_case["id"])
    await sign_in(ui, tenant.key)
    await sign_in(other_ui, tenant.key)
    foreign_token = csrf_of(await (await other_ui.get("/ui/runs")).text())
    response = await ui.post(f"/ui/runs/{run['id']}/cancel", data={"csrf_token": foreign_token})
    assert response.status == 403
    assert (await get_run(ui, tenant, run["id"])).body["status"] == "queued"


async def test_pages_carry_a_strict_content_security_policy(ui: Client, tenant: Tenant) -> None:
    await sign_in(ui, tenant.key)
    for path in ("/ui/signin", "/ui/runs", f"/ui/runs/{UUID(int=1)}"):
        response = await ui.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        html = await response.text()
        assert "<script>" not in html
        assert " style=" not in html
        assert "https://" not in html  # nothing from a CDN


# --- one company's data, the key's scopes --------------------------------------------------------


async def test_another_companys_run_answers_404(
    ui: Client, tenant: Tenant, stranger: Tenant, ui_case: Json
) -> None:
    run = await queued_run(ui, tenant, ui_case["id"])
    await sign_in(ui, stranger.key)
    status, html = await get_page(ui, f"/ui/runs/{run['id']}")
    assert status == 404
    assert "NOT_FOUND" in html
    _, listing = await get_page(ui, "/ui/runs")
    assert run["id"] not in listing
    assert (await ui.get(f"/ui/runs/{run['id']}/live")).status == 404


async def test_a_read_only_key_reads_but_cannot_cancel(
    ui: Client, tenant: Tenant, pool: Pool, ui_case: Json
) -> None:
    run = await queued_run(ui, tenant, ui_case["id"])
    reader = await key_for(pool, tenant, ["agent_eval:read"])
    await sign_in(ui, reader.key)
    status, html = await get_page(ui, f"/ui/runs/{run['id']}")
    assert status == 200
    assert "Cancel run" not in html
    response = await ui.post(f"/ui/runs/{run['id']}/cancel", data={"csrf_token": csrf_of(html)})
    assert response.status == 403
    assert "INSUFFICIENT_SCOPE" in await response.text()
    assert (await get_run(ui, tenant, run["id"])).body["status"] == "queued"


async def test_a_key_without_read_scope_cannot_see_runs(ui: Client, tenant: Tenant, pool: Pool) -> None:
    biller = await key_for(pool, tenant, ["billing:read"])
    await sign_in(ui, biller.key)
    response = await ui.get("/ui/runs")
    assert response.status == 403
    assert "agent_eval:read" in await response.text()


# --- the runs list -------------------------------------------------------------------------------


def _listed(html: str) -> list[str]:
    return re.findall(r'data-run-id="([0-9a-f-]+)"', html)


async def test_runs_are_listed_newest_first_in_keyset_pages(
    ui: Client, tenant: Tenant, ui_case: Json
) -> None:
    made = [(await queued_run(ui, tenant, ui_case["id"]))["id"] for _ in range(53)]
    await sign_in(ui, tenant.key)
    status, first = await get_page(ui, "/ui/runs")
    assert status == 200
    assert _listed(first) == made[::-1][:50]
    older = re.search(r'id="older" href="([^"]+)"', first)
    assert older
    _, second = await get_page(ui, older.group(1).replace("&amp;", "&"))
    assert _listed(second) == made[::-1][50:]
    assert 'id="older"' not in second


async def test_runs_filter_by_status_label_case_and_day(
    ui: Client, tenant: Tenant, ui_case: Json, pool: Pool
) -> None:
    labelled = (await trigger(ui, tenant, ui_case["id"], {"labels": {"team": "blue"}})).body["id"]
    plain = (await queued_run(ui, tenant, ui_case["id"]))["id"]
    other_case = await scripted_case(ui, tenant)
    elsewhere = (await queued_run(ui, tenant, other_case["id"]))["id"]
    assert (await cancel(ui, tenant, plain)).body["status"] == "cancelled"
    await sign_in(ui, tenant.key)

    assert _listed((await get_page(ui, "/ui/runs?label=team%3Dblue"))[1]) == [labelled]
    assert _listed((await get_page(ui, "/ui/runs?status=cancelled"))[1]) == [plain]
    assert _listed((await get_page(ui, f"/ui/runs?case_id={other_case['id']}"))[1]) == [elsewhere]
    assert _listed((await get_page(ui, "/ui/runs?since=2000-01-01&until=2000-01-02"))[1]) == []
    assert (
        len(_listed((await get_page(ui, "/ui/runs?case_id=&status=&since=&label="))[1])) == 3
    )  # empty = no filter


async def test_a_bad_filter_is_a_400_page_naming_the_field(ui: Client, tenant: Tenant) -> None:
    await sign_in(ui, tenant.key)
    for query, field in (
        ("status=nope", "query.status"),
        ("case_id=abc", "query.case_id"),
        ("since=yesterday", "query.since"),
    ):
        status, html = await get_page(ui, f"/ui/runs?{query}")
        assert status == 400, query
        assert "VALIDATION_ERROR" in html
        assert f"<code>{field}</code>" in html


async def test_the_rows_fragment_is_the_table_body_alone(ui: Client, tenant: Tenant, ui_case: Json) -> None:
    run = await queued_run(ui, tenant, ui_case["id"])
    await sign_in(ui, tenant.key)
    status, html = await get_page(ui, "/ui/runs?rows=1")
    assert status == 200
    assert html.lstrip().startswith('<tbody id="run-rows"')
    assert _listed(html) == [run["id"]]
    assert "<html" not in html


# --- one run -------------------------------------------------------------------------------------


async def test_a_done_run_shows_its_conversation_verdicts_linked_to_turns_and_costs(
    ui: Client, tenant: Tenant, ui_case: Json, ui_settings: Settings, pool: Pool
) -> None:
    async with running_pipeline(ui_settings, pool):
        done = await trigger(ui, tenant, ui_case["id"], prefer="wait=30")
    assert done.status == 200, done.body
    await sign_in(ui, tenant.key)
    status, html = await get_page(ui, f"/ui/runs/{done.body['id']}")
    assert status == 200
    bubbles = re.findall(r'<li id="turn-(\d+)" class="bubble (\w+)">', html)
    assert bubbles[:3] == [("1", "agent"), ("2", "persona"), ("3", "agent")]
    assert "I have started your refund." in html
    assert "start_refund" in html  # the tool call, with its arguments
    link = re.search(r'<a class="to-turn" href="#turn-(\d+)">matched at turn (\d+)</a>', html)
    assert link
    assert link.group(1) == link.group(2) == "3"
    assert 'id="run-outcome" class="badge big passed"' in html
    assert 'id="run-cost">$' in html
    assert "sse-connect" not in html  # a done run opens no stream
    assert "You help customers." in html  # the exact agent prompt used


async def test_cancel_from_the_run_page_cancels_it(ui: Client, tenant: Tenant, ui_case: Json) -> None:
    run = await queued_run(ui, tenant, ui_case["id"])
    await sign_in(ui, tenant.key)
    status, location = await post_form(ui, f"/ui/runs/{run['id']}", f"/ui/runs/{run['id']}/cancel")
    assert (status, location) == (303, f"/ui/runs/{run['id']}")
    cancelled = (await get_run(ui, tenant, run["id"])).body
    assert (cancelled["status"], cancelled["queue_status"]) == ("cancelled", "done")


async def test_run_again_starts_a_new_run_of_the_case_with_the_same_labels(
    ui: Client, tenant: Tenant, ui_case: Json
) -> None:
    first = (await trigger(ui, tenant, ui_case["id"], {"labels": {"build": "42"}})).body
    await sign_in(ui, tenant.key)
    status, location = await post_form(ui, f"/ui/runs/{first['id']}", f"/ui/runs/{first['id']}/rerun")
    assert status == 303
    new_id = location.rsplit("/", 1)[-1]
    assert new_id != first["id"]
    again = (await get_run(ui, tenant, new_id)).body
    assert (again["case_id"], again["labels"]) == (ui_case["id"], {"build": "42"})


async def test_the_live_stream_sends_each_turn_as_html_then_the_result_then_done(
    ui: Client, tenant: Tenant, ui_case: Json, ui_settings: Settings, pool: Pool
) -> None:
    run = await queued_run(ui, tenant, ui_case["id"])
    await sign_in(ui, tenant.key)
    async with running_pipeline(ui_settings, pool):
        await eventually(lambda: _done(ui, tenant, run["id"]), what="the run done")
    response = await ui.get(f"/ui/runs/{run['id']}/live?after=1")  # the page showed `run.queued`
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    body = await response.text()
    events = re.findall(r"^event: (\w+)\r?$", body, re.MULTILINE)
    assert events[0] == "turn"
    assert events[-1] == "done"
    assert "run" in events
    assert 'data: <li id="turn-1" class="bubble agent">' in body
    turn_ids = re.findall(r'<li id="turn-(\d+)"', body)
    assert turn_ids == sorted(set(turn_ids), key=int)  # each once, in order


async def _done(ui: Client, tenant: Tenant, run_id: str) -> bool:
    return bool((await get_run(ui, tenant, run_id)).body["queue_status"] == "done")
