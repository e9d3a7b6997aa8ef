"""Browser fixtures: `agent-eval dev` as a child process with real runs in it (the README's
quickstart, a second company's run, a slow run to watch live), and headless Debian Chromium
driven by Selenium through Debian's chromedriver (nothing is downloaded at run time).
Every test saves screenshots under `test-artifacts/` for a reviewer to look at."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.support.dev_process import base_url, bash, readme_sh
from tests.support.processes import AGENT_EVAL, ROOT, spawned

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "test-artifacts"
ADMIN_TOKEN = "browser-tests-admin-token"
MODEL_LATENCY_S = "0.3"  # every scripted reply takes this long, so a run can be watched live


@dataclass(frozen=True)
class Dev:
    """The dev server, its printed key, and the runs made on it."""

    url: str
    key: str
    run_id: str  # the README quickstart's run, done and passed
    foreign_run_id: str  # another company's run

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


def _quickstart(url: str, key: str) -> str:
    run: dict[str, object] = json.loads(bash(readme_sh("quickstart"), {"API": url, "KEY": key}))
    assert run["pass_fail"] is True, run
    return str(run["id"])


def _other_company_key(url: str) -> str:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=url, headers=admin, timeout=30) as client:
        company = client.post("/admin/companies", json={"name": "Globex"}).json()
        client.post(
            f"/admin/companies/{company['id']}/credits", json={"amount_cents": 1000, "reason": "tests"}
        )
        issued = client.post(
            f"/admin/companies/{company['id']}/api-keys",
            json={"name": "other", "scopes": ["agent_eval:read"]},
        ).json()
        full = client.post(
            f"/admin/companies/{company['id']}/api-keys",
            json={
                "name": "all",
                "scopes": ["agents:create", "agent_eval:create", "agent_eval:run", "agent_eval:read"],
            },
        ).json()
    assert issued["key"].startswith("ae_live_")
    return str(full["key"])


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    argv = [
        AGENT_EVAL,
        "dev",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path_factory.mktemp("dev")),
        "--executor-processes",
        "1",
    ]
    env = {
        "AGENT_EVAL_DATABASE_URL": "",
        "AGENT_EVAL_KAFKA_BOOTSTRAP": "",
        "AGENT_EVAL_UI_SESSION_SECRET": "",  # dev makes one in its data directory
        "AGENT_EVAL_ADMIN_TOKEN": ADMIN_TOKEN,
        "AGENT_EVAL_SCRIPTED_LATENCY_S": MODEL_LATENCY_S,
    }
    with spawned(argv, env) as child:
        url = base_url(child)
        found = re.search(r"ae_live_[0-9A-Za-z]{32}", child.find("API key (shown once") or "")
        assert found, child.output()
        assert child.find(f"dashboard: {url}/ui/") is not None
        run_id = _quickstart(url, found.group(0))
        foreign = _quickstart(url, _other_company_key(url))
        yield Dev(url, found.group(0), run_id, foreign)


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Iterator[webdriver.Chrome]:
    """A fresh headless Chromium (its own profile, so no session carries over between tests)."""
    for program in (CHROMIUM, CHROMEDRIVER):
        assert shutil.which(program), f"{program} is missing: apt-get install chromium chromium-driver"
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager reach the network
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    """Save the whole page as `test-artifacts/<name>.png` (the window grown to the page's height)."""
    ARTIFACTS.mkdir(exist_ok=True)
    width = driver.get_window_size()["width"]
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(width, max(600, min(height + 120, 4000)))
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), path
    return path
