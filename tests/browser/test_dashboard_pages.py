"""The dashboard in a real headless Chromium, on `agent-eval dev` with real runs: signing in,
the runs page, a run's transcript with verdicts that lead to their turns, a run streaming live
without a reload, another company's run answering 404, and the keyboard path through a page."""

from __future__ import annotations

import time

import httpx
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.browser.conftest import Dev, screenshot

WAIT_S = 30
REFUND = {"type": "must_say", "pattern": "refund"}
HELPFUL = {
    "name": "Helpful",
    "model": "scripted",
    "system_prompt": "You help.",
    "rules": [
        {"when": "refund", "say": "I have started your refund."},
        {"when": "bye", "say": "Goodbye!", "end": True},
    ],
}
CALLER = {
    "name": "Caller",
    "model": "scripted",
    "identity_prompt": "You want a refund.",
    "script": ["A refund, please", "Thanks, bye"],
}


def sign_in(driver: webdriver.Chrome, dev: Dev, key: str | None = None) -> None:
    driver.get(f"{dev.url}/ui/signin")
    driver.find_element(By.ID, "api_key").send_keys(key or dev.key)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(driver, WAIT_S).until(ec.url_contains("/ui/runs"))


def test_a_page_without_a_session_goes_to_sign_in_and_comes_back_after(
    browser: webdriver.Chrome, dev: Dev
) -> None:
    browser.get(f"{dev.url}/ui/runs/{dev.run_id}")
    assert "/ui/signin?next=" in browser.current_url
    screenshot(browser, "signin")
    browser.find_element(By.ID, "api_key").send_keys("ae_live_" + "0" * 32)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    assert "not a valid API key" in browser.find_element(By.ID, "signin-error").text
    browser.find_element(By.ID, "api_key").send_keys(dev.key)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(browser, WAIT_S).until(ec.url_contains(f"/ui/runs/{dev.run_id}"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Refund"


def test_the_runs_page_lists_the_quickstart_run_with_its_outcome(browser: webdriver.Chrome, dev: Dev) -> None:
    sign_in(browser, dev)
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-run-id="{dev.run_id}"]')
    assert "passed" in row.text
    assert "Refund" in row.text
    assert browser.find_elements(By.CSS_SELECTOR, f'tr[data-run-id="{dev.foreign_run_id}"]') == []
    screenshot(browser, "runs")
    row.find_element(By.TAG_NAME, "a").click()
    WebDriverWait(browser, WAIT_S).until(ec.url_contains(f"/ui/runs/{dev.run_id}"))


def test_an_assertion_leads_to_the_turn_its_reason_names(browser: webdriver.Chrome, dev: Dev) -> None:
    sign_in(browser, dev)
    browser.get(f"{dev.url}/ui/runs/{dev.run_id}")
    bubbles = browser.find_elements(By.CSS_SELECTOR, "#transcript li.bubble")
    assert [b.get_attribute("class") for b in bubbles[:3]] == [
        "bubble agent",
        "bubble persona",
        "bubble agent",
    ]
    assert "start_refund" in bubbles[2].text  # the tool call with its arguments
    assert browser.find_element(By.ID, "run-outcome").text == "passed"
    screenshot(browser, "run")
    link = browser.find_element(By.CSS_SELECTOR, "#verdicts a.to-turn")
    assert link.text == "matched at turn 3"
    link.click()
    assert browser.current_url.endswith("#turn-3")
    assert browser.execute_script("return document.querySelector(':target').id") == "turn-3"
    assert "I have started your refund." in browser.find_element(By.ID, "turn-3").text


def test_a_run_streams_its_transcript_live_without_a_reload(browser: webdriver.Chrome, dev: Dev) -> None:
    run_id = _slow_run(dev)
    sign_in(browser, dev)
    browser.get(f"{dev.url}/ui/runs/{run_id}")
    browser.execute_script("window.notReloaded = true")
    at_load = len(browser.find_elements(By.CSS_SELECTOR, "#transcript li.bubble"))
    WebDriverWait(browser, WAIT_S).until(lambda d: d.find_element(By.ID, "run-outcome").text == "passed")
    bubbles = browser.find_elements(By.CSS_SELECTOR, "#transcript li.bubble")
    with dev.client() as client:
        stored = client.get(f"/agent-eval/runs/{run_id}/turns").json()["data"]
    assert len(stored) > 16  # the greeting, 8 caller lines, 8 replies
    assert at_load < len(bubbles)
    assert [b.get_attribute("id") for b in bubbles] == [
        f"turn-{t['turn_number']}" for t in stored
    ]  # each once
    assert browser.execute_script("return window.notReloaded") is True
    assert browser.find_element(By.ID, "run-status").text == "completed · done"
    screenshot(browser, "run-live")


def test_the_runs_list_shows_a_status_change_without_a_reload(browser: webdriver.Chrome, dev: Dev) -> None:
    sign_in(browser, dev)
    run_id = _slow_run(dev)
    browser.get(f"{dev.url}/ui/runs")
    browser.execute_script("window.notReloaded = true")
    badge = f'tr[data-run-id="{run_id}"] .badge'
    assert browser.find_element(By.CSS_SELECTOR, badge).text in ("queued", "running")
    WebDriverWait(browser, WAIT_S).until(lambda d: d.find_element(By.CSS_SELECTOR, badge).text == "passed")
    assert browser.execute_script("return window.notReloaded") is True


def test_another_companys_run_answers_not_found(browser: webdriver.Chrome, dev: Dev) -> None:
    sign_in(browser, dev)
    browser.get(f"{dev.url}/ui/runs/{dev.foreign_run_id}")
    assert browser.find_element(By.TAG_NAME, "h1").text == "404"
    assert browser.find_element(By.ID, "error-code").text == "NOT_FOUND"
    screenshot(browser, "not-found")


def test_the_keyboard_reaches_the_content_and_the_verdict_links(browser: webdriver.Chrome, dev: Dev) -> None:
    sign_in(browser, dev)
    browser.get(f"{dev.url}/ui/runs/{dev.run_id}")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Skip to content"
    reached = []
    for _ in range(60):
        browser.switch_to.active_element.send_keys(Keys.TAB)
        reached.append(browser.switch_to.active_element.get_attribute("class") or "")
        if "to-turn" in reached[-1]:
            break
    assert "to-turn" in reached[-1], reached
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    assert browser.current_url.endswith("#turn-3")


def test_a_run_reads_on_a_phone_screen(browser: webdriver.Chrome, dev: Dev) -> None:
    sign_in(browser, dev)
    browser.set_window_size(390, 844)
    browser.get(f"{dev.url}/ui/runs/{dev.run_id}")
    overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0  # nothing wider than the screen
    summary = browser.find_element(By.ID, "run-summary").location["y"]
    transcript = browser.find_element(By.ID, "transcript").location["y"]
    assert summary < transcript  # the verdict first on a narrow screen
    screenshot(browser, "run-phone")


def _slow_run(dev: Dev) -> str:
    """A run of 8 caller lines at the model latency: several seconds to watch (202, not waited)."""
    with dev.client() as client:
        agent = client.post(
            "/agents",
            json={
                "name": "Echo",
                "model": "scripted",
                "system_prompt": "You acknowledge.",
                "greeting_message": "Hi.",
                "rules": [{"when": ".", "say": "Noted."}],
            },
        ).json()
        lines = [f"Line {n} of my story" for n in range(1, 9)]
        persona = client.post(
            "/agent-eval/personas",
            json={
                "name": "Teller",
                "model": "scripted",
                "identity_prompt": "You tell a story.",
                "script": lines,
            },
        ).json()
        case = client.post(
            "/agent-eval/cases",
            json={
                "name": "Story",
                "scenario": "A long story.",
                "agent_id": agent["id"],
                "persona_id": persona["id"],
                "max_turns": 30,
                "success_criteria": [{"type": "must_say", "pattern": "noted"}],
            },
        ).json()
        started = time.monotonic()
        run = client.post(f"/agent-eval/cases/{case['id']}/run", headers={"Prefer": "wait=0"})
        assert run.status_code == 202, run.text
        assert time.monotonic() - started < 5
        return str(run.json()["id"])


def test_cases_show_their_recent_runs_and_run_now_opens_a_new_run(
    browser: webdriver.Chrome, dev: Dev
) -> None:
    sign_in(browser, dev)
    browser.get(f"{dev.url}/ui/cases")
    assert browser.find_elements(By.CSS_SELECTOR, "ol.strip a.tick.passed")
    screenshot(browser, "cases")
    browser.find_element(By.LINK_TEXT, "Refund").click()
    assert browser.find_element(By.TAG_NAME, "h1").text == "Refund"
    screenshot(browser, "case")
    browser.find_element(By.XPATH, "//button[text()='Run now']").click()
    WebDriverWait(browser, WAIT_S).until(ec.url_matches(r"/ui/runs/[0-9a-f-]{36}$"))
    WebDriverWait(browser, WAIT_S).until(lambda d: d.find_element(By.ID, "run-outcome").text == "passed")


def test_a_suite_diff_highlights_the_case_that_flipped(browser: webdriver.Chrome, dev: Dev) -> None:
    suite_id, first, second = _suite_with_a_fix(dev)
    sign_in(browser, dev)
    browser.get(f"{dev.url}/ui/suites/{suite_id}")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#trend circle.pass-dot")) == 2
    screenshot(browser, "suite")
    browser.find_element(By.CSS_SELECTOR, f'tr[data-suite-run-id="{second}"] a').click()
    Select(browser.find_element(By.NAME, "baseline")).select_by_value(first)
    browser.find_element(By.XPATH, "//button[text()='Compare']").click()
    WebDriverWait(browser, WAIT_S).until(ec.presence_of_element_located((By.ID, "diff")))
    flipped = browser.find_element(By.CSS_SELECTOR, "#diff tr.flip-fail_to_pass")
    assert "Strict" in flipped.text
    assert "fail to pass" in flipped.text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#diff tr.flip-stable")) == 1
    screenshot(browser, "suite-diff")


def _suite_with_a_fix(dev: Dev) -> tuple[str, str, str]:
    """A suite of two cases run twice; between the runs the failing case's assertion is fixed."""
    with dev.client() as client:
        agent = client.post("/agents", json=HELPFUL).json()
        persona = client.post("/agent-eval/personas", json=CALLER).json()
        suite = client.post("/agent-eval/suites", json={"name": "Refunds", "parallelism": 2}).json()
        people = {"agent_id": agent["id"], "persona_id": persona["id"], "suite_id": suite["id"]}
        polite = {**people, "name": "Polite", "scenario": "Refund.", "success_criteria": [REFUND]}
        assert client.post("/agent-eval/cases", json=polite).status_code == 201
        never = [{"type": "must_say", "pattern": "never said"}]
        strict = client.post(
            "/agent-eval/cases", json={**polite, "name": "Strict", "success_criteria": never}
        ).json()
        first = _finished_suite_run(client, suite["id"])
        fixed = [{"type": "must_say", "pattern": "goodbye"}]
        assert (
            client.patch(f"/agent-eval/cases/{strict['id']}", json={"success_criteria": fixed}).status_code
            == 200
        )
        second = _finished_suite_run(client, suite["id"])
    return str(suite["id"]), first, second


def _finished_suite_run(client: httpx.Client, suite_id: str) -> str:
    started = client.post(f"/agent-eval/suites/{suite_id}/run", json={})
    assert started.status_code == 202, started.text
    suite_run_id = str(started.json()["suite_run_id"])
    deadline = time.monotonic() + WAIT_S
    while not client.get(f"/agent-eval/suites/{suite_id}/runs/{suite_run_id}").json()["done"]:
        assert time.monotonic() < deadline, "the suite run did not finish"
        time.sleep(0.2)
    return suite_run_id
