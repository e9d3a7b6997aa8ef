"""Which fetch policy a role's consumer gets: its own, unless the operator set one for every role."""

from __future__ import annotations

import os

import pytest

from consumers.biller import ROLE as BILLER
from consumers.executor.worker import ROLE as EXECUTOR
from consumers.role import Role
from consumers.scorer import ROLE as SCORER
from consumers.webhooks.notifier import ROLE as NOTIFIER
from service.bus.interface import FetchPolicy
from service.core.settings import Settings
from service.runtime.pools import fetch_policy


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("AGENT_EVAL_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("role", [NOTIFIER, SCORER, BILLER], ids=lambda role: role.name)
def test_the_roles_no_caller_waits_on_batch_their_fetches_by_default(role: Role) -> None:
    policy = fetch_policy(Settings(), role.fetch)

    assert policy == FetchPolicy(min_bytes=64 * 1024, max_wait_ms=100)


def test_a_role_on_the_critical_path_gets_answered_at_once() -> None:
    """The executor sits between a trigger and its answer: no batching wait."""
    policy = fetch_policy(Settings(), EXECUTOR.fetch)

    assert policy == FetchPolicy(min_bytes=1, max_wait_ms=500)


@pytest.mark.parametrize(
    "variable", ["AGENT_EVAL_CONSUMER_FETCH_MIN_BYTES", "AGENT_EVAL_CONSUMER_FETCH_MAX_WAIT_MS"]
)
def test_an_operator_setting_applies_to_every_role(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "7")
    settings = Settings()

    policy = fetch_policy(settings, NOTIFIER.fetch)

    assert policy == FetchPolicy(settings.consumer_fetch_min_bytes, settings.consumer_fetch_max_wait_ms)
    assert 7 in (policy.min_bytes, policy.max_wait_ms)
    assert fetch_policy(settings, EXECUTOR.fetch) == policy
