"""The `agent-eval` CLI, run as a user runs it: a subprocess against the real services."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import subprocess
from uuid import UUID

import asyncpg
import pytest

from consumers.runner import ConsumerRunner, RunnerConfig
from schemas.events import Event, EventType, Topic
from service.bus.kafka import KafkaBus
from service.bus.topics import dlq_name, topic_name, topic_specs
from service.cli import main
from service.db.migrate import load_migrations
from tests.support.events import raw_record, record_for, run_request
from tests.support.processes import AGENT_EVAL, ROOT
from tests.support.waiting import eventually


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "AGENT_EVAL_LOG_FORMAT": "json", **(env or {})}
    return subprocess.run(
        [AGENT_EVAL, *args], capture_output=True, text=True, env=full_env, cwd=ROOT, timeout=120, check=False
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_migrate_applies_everything_once(empty_database_url: str) -> None:
    env = {"AGENT_EVAL_DATABASE_URL": empty_database_url}
    assert f"applied {len(load_migrations())} migration(s)" in ok(cli("migrate", env=env))
    assert "database is up to date" in ok(cli("migrate", env=env))


def test_a_missing_database_url_is_a_clear_usage_error() -> None:
    env = {k: v for k, v in os.environ.items() if k != "AGENT_EVAL_DATABASE_URL"}
    result = subprocess.run(
        [AGENT_EVAL, "migrate"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "AGENT_EVAL_DATABASE_URL is not set" in result.stdout


def test_version_prints_the_installed_version() -> None:
    assert re.fullmatch(r"agent-eval \d+\.\d+\.\d+\n", ok(cli("--version")))


def test_invalid_settings_name_the_variable_and_never_print_a_secret() -> None:
    env = {
        "AGENT_EVAL_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "AGENT_EVAL_KAFKA_SASL_PASSWORD": "hunter2-kafka",
        "AGENT_EVAL_DATABASE_URL": "postgresql://app:hunter2-db@db:5432/x",
    }
    result = cli("migrate", env=env)
    assert result.returncode == 2
    assert "invalid settings: SASL_SSL needs AGENT_EVAL_KAFKA_SASL_MECHANISM" in result.stdout
    assert "hunter2" not in result.stdout + result.stderr


def test_admin_creates_a_company_and_moves_credits_through_the_ledger(database_url: str) -> None:
    env = {"AGENT_EVAL_DATABASE_URL": database_url}
    company = json.loads(
        ok(cli("admin", "create-company", "--name", "Acme", "--credits-cents", "500", env=env))
    )
    assert company["balance_cents"] == 500
    granted = cli("admin", "grant-credits", "--company", company["id"], "--amount-cents", "250", env=env)
    assert json.loads(ok(granted))["balance_cents"] == 750
    refused = cli("admin", "grant-credits", "--company", company["id"], "--amount-cents", "-1000", env=env)
    assert refused.returncode == 1
    assert "exceeds the current balance" in refused.stdout
    unknown = cli("admin", "grant-credits", "--company", str(UUID(int=7)), "--amount-cents", "5", env=env)
    assert unknown.returncode == 1
    assert "not found" in unknown.stdout
    assert "every company's balance equals" in ok(cli("admin", "reconcile", env=env))


async def test_reconcile_fails_when_a_balance_was_edited_directly(database_url: str) -> None:
    env = {"AGENT_EVAL_DATABASE_URL": database_url}
    company = json.loads(
        ok(cli("admin", "create-company", "--name", "Acme", "--credits-cents", "100", env=env))
    )
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE companies SET balance_cents = 5 WHERE id = $1", UUID(company["id"]))
    finally:
        await conn.close()
    result = await asyncio.to_thread(cli, "admin", "reconcile", env=env)
    assert result.returncode == 1
    assert f"MISMATCH company {company['id']}: balance 5 != ledger 100" in result.stdout


async def test_a_created_key_is_printed_once_and_only_its_hash_is_stored(database_url: str) -> None:
    env = {"AGENT_EVAL_DATABASE_URL": database_url}
    company = json.loads(
        await asyncio.to_thread(lambda: ok(cli("admin", "create-company", "--name", "A", env=env)))
    )
    created = await asyncio.to_thread(
        lambda: ok(
            cli("admin", "create-key", "--company", company["id"], "--name", "ci", "--all-scopes", env=env)
        )
    )
    issued = json.loads(created)
    key = issued["key"]
    assert re.fullmatch(r"ae_live_[0-9A-Za-z]{32}", key)
    assert issued["prefix"] == key[:12]
    assert "agent_eval:run" in issued["scopes"]
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT * FROM api_keys WHERE id = $1", UUID(issued["id"]))
        dump = await conn.fetchval("SELECT string_agg(t::text, '') FROM api_keys t")
    finally:
        await conn.close()
    assert row is not None
    assert bytes(row["key_sha256"]) == hashlib.sha256(key.encode()).digest()
    assert key not in dump


def test_unknown_scopes_are_refused(database_url: str) -> None:
    env = {"AGENT_EVAL_DATABASE_URL": database_url}
    company = json.loads(ok(cli("admin", "create-company", "--name", "A", env=env)))
    result = cli(
        "admin", "create-key", "--company", company["id"], "--name", "x", "--scopes", "root:all", env=env
    )
    assert result.returncode == 1
    assert "unknown scopes: root:all" in result.stdout


def test_consume_names_the_available_roles_for_an_unknown_one(database_url: str) -> None:
    result = cli("consume", "nope", env={"AGENT_EVAL_DATABASE_URL": database_url})
    assert result.returncode == 2
    assert "unknown role 'nope'" in result.stdout


@pytest.mark.parametrize(
    "command",
    [
        ["migrate"],
        ["serve"],
        ["relay"],
        ["consume"],
        ["dev"],
        ["kafka", "init"],
        ["dlq", "list"],
        ["dlq", "replay"],
    ]
    + [["admin", name] for name in ("create-company", "grant-credits", "create-key", "reconcile")],
)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    assert "usage: agent-eval" in capsys.readouterr().out


@pytest.mark.kafka
async def test_kafka_init_creates_every_topic_once(kafka: KafkaBus, topic_prefix: str) -> None:
    env = {"AGENT_EVAL_TOPIC_PREFIX": topic_prefix, "AGENT_EVAL_TOPIC_PARTITIONS": "2"}
    first = await asyncio.to_thread(cli, "kafka", "init", env=env)
    expected = topic_specs(topic_prefix, 2, 1)
    assert ok(first).count("created: ") == len(expected)
    assert {spec.name for spec in expected} <= await kafka.list_topics()
    assert len(await kafka.end_offsets(topic_name(topic_prefix, Topic.RUN_EVENTS))) == 2
    second = await asyncio.to_thread(cli, "kafka", "init", env=env)
    assert ok(second).count("exists: ") == len(expected)


@pytest.mark.kafka
async def test_dlq_list_shows_dead_letters_and_replay_sends_them_back_once(
    kafka: KafkaBus, topic_prefix: str
) -> None:
    await kafka.create_topics(topic_specs(topic_prefix, 1, 1))
    requests = topic_name(topic_prefix, Topic.RUN_REQUESTS)
    poison = run_request()
    await kafka.publish(
        [record_for(poison, requests), raw_record(requests, b"{", ce_type="agent_eval.run.requested")]
    )

    async def refuse(event: Event) -> None:
        raise ValueError(f"cannot run {event.run_id}")

    config = RunnerConfig(
        group=f"{topic_prefix}g",
        topics=[requests],
        types=frozenset({EventType.RUN_REQUESTED.value}),
        handler_attempts=1,
    )
    runner = ConsumerRunner(kafka, config, refuse)
    task = asyncio.create_task(runner.run())
    await eventually(
        lambda: kafka.read_all(dlq_name(requests)), until=lambda m: len(m) == 2, what="2 dead letters"
    )
    runner.request_stop()
    await task

    env = {"AGENT_EVAL_TOPIC_PREFIX": topic_prefix}
    listed = [
        json.loads(line) for line in ok(await asyncio.to_thread(cli, "dlq", "list", env=env)).splitlines()
    ]
    assert [(d["reason"], d["replayed"], d["source_topic"]) for d in listed] == [
        ("handler_failed", False, requests),
        ("undecodable", False, requests),
    ]
    assert listed[0]["ce_id"] == str(poison.id)
    assert listed[0]["error"] == f"ValueError: cannot run {poison.run_id}"

    assert "replayed 2 record(s)" in ok(await asyncio.to_thread(cli, "dlq", "replay", env=env))
    assert "replayed 0 record(s)" in ok(await asyncio.to_thread(cli, "dlq", "replay", env=env))
    source = await kafka.read_all(requests)
    assert [m.value for m in source[2:]] == [m.value for m in source[:2]]
    assert all(m.header("replayed_from") for m in source[2:])
    assert all(m.header("dlq_reason") is None for m in source[2:])
    relisted = ok(await asyncio.to_thread(cli, "dlq", "list", "--topic", requests, env=env)).splitlines()
    assert [json.loads(line)["replayed"] for line in relisted] == [True, True]
