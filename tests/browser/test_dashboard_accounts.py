"""Billing and Webhooks in a real headless Chromium, on `agent-eval dev`: the balance and the day
of the quickstart run's charge as the API reports them, and a webhook endpoint (registered over
the API, its receiver down) with its failed attempts, resent from the page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from service.gateway.ui.views import money
from tests.browser.conftest import Dev, screenshot
from tests.browser.test_dashboard_pages import sign_in
from tests.support.waiting import eventually_sync

DOWN = "http://127.0.0.1:9/hook"  # nothing listens: every attempt fails at once


@pytest.fixture(scope="module")
def local_webhooks() -> Iterator[None]:
    """Let this module's `agent-eval dev` call receivers on loopback (read when it starts)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGENT_EVAL_WEBHOOK_ALLOW_PRIVATE", "true")
        yield


@pytest.fixture(scope="module")
def dev(local_webhooks: None, dev: Dev) -> Dev:
    return dev


def test_billing_shows_the_balance_and_the_day_of_the_quickstart_charge(
    browser: webdriver.Chrome, dev: Dev
) -> None:
    with dev.client() as client:
        balance = client.get("/billing").json()["balance_cents"]
        report = client.get("/billing/consumption", params={"group_by": "day"}).json()["data"]
    (today,) = {row["period"] for row in report}
    spent = sum(row["total_amount_cents"] for row in report)
    sign_in(browser, dev)

    browser.find_element(By.LINK_TEXT, "Billing").click()

    assert browser.find_element(By.TAG_NAME, "h1").text == "Billing"
    assert browser.find_element(By.ID, "balance").text == money(balance)
    bars = browser.find_elements(By.CSS_SELECTOR, "#consumption-chart rect.day-bar")
    assert len(bars) == 30
    last = bars[-1]
    assert last.get_attribute("data-day") == today
    assert last.find_element(By.TAG_NAME, "title").get_attribute("textContent") == f"{today}: {money(spent)}"
    assert float(last.get_attribute("height") or 0) > 0
    cells = browser.find_elements(By.CSS_SELECTOR, f'#consumption-table tr[data-day="{today}"] td')
    assert [c.text for c in cells] == [money(spent)]
    screenshot(browser, "billing")
    browser.find_element(By.LINK_TEXT, "Last 7 days").click()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#consumption-chart rect.day-bar")) == 7


def _endpoint_with_a_failed_attempt(dev: Dev) -> tuple[str, str, str]:
    """An endpoint (its id and secret) and a test delivery the notifier has tried once."""
    with dev.client() as client:
        body = {"url": DOWN, "description": "Local receiver (down)"}
        endpoint = client.post("/webhooks", json=body).json()
        delivery = client.post(f"/webhooks/{endpoint['id']}/test").json()
        eventually_sync(
            lambda: client.get(f"/webhooks/{endpoint['id']}/deliveries/{delivery['id']}").json(),
            until=lambda d: d["attempts"] >= 1,
            timeout_s=30,
            what="the first attempt",
        )
    return str(endpoint["id"]), str(endpoint["secret"]), str(delivery["id"])


def test_webhooks_lists_the_endpoint_and_its_deliveries_and_resends_one(
    browser: webdriver.Chrome, dev: Dev
) -> None:
    endpoint_id, secret, delivery_id = _endpoint_with_a_failed_attempt(dev)
    sign_in(browser, dev)

    browser.find_element(By.LINK_TEXT, "Webhooks").click()
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-endpoint-id="{endpoint_id}"]')
    assert DOWN in row.text
    assert "enabled" in row.text
    assert "Local receiver (down)" in row.text
    screenshot(browser, "webhooks")
    row.find_element(By.TAG_NAME, "a").click()

    assert browser.find_element(By.ID, "endpoint-url").text == DOWN
    delivery = browser.find_element(By.CSS_SELECTOR, f'tr[data-delivery-id="{delivery_id}"]')
    assert "agent_eval.ping" in delivery.text
    assert int(delivery.find_element(By.CSS_SELECTOR, "td.attempts").text) >= 1
    assert delivery.find_element(By.CSS_SELECTOR, "td.last-response .error").text  # why it failed
    screenshot(browser, "webhook")
    delivery.find_element(By.XPATH, ".//button[text()='Resend']").click()

    assert browser.current_url == f"{dev.url}/ui/webhooks/{endpoint_id}"
    resent = browser.find_element(By.CSS_SELECTOR, f'tr[data-delivery-id="{delivery_id}"] .badge')
    assert resent.text == "pending"
    assert secret.removeprefix("whsec_") not in browser.page_source
