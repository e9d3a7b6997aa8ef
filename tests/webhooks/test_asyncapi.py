"""The AsyncAPI contract of the Kafka stream: `schemas/asyncapi.json` is the generated document
and the one served; it is a valid AsyncAPI 3.0.0 document by the official JSON Schema; and the
records a real run publishes are what it describes (type, headers, payload, key)."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from importlib.metadata import version
from typing import Any
from uuid import UUID

import pytest

from schemas.events import RUN_EVENTS, Topic
from service.bus.interface import Message
from service.bus.kafka import KafkaBus
from service.bus.topics import topic_name
from service.core.settings import Settings
from service.db.postgres import Pool, connection
from service.gateway.asyncapi import asyncapi_json
from tests.support.api import Client
from tests.support.asyncapi_spec import Json, asyncapi_3_schema, document_errors, instance_errors
from tests.support.factories import make_company
from tests.support.npm import repo_root
from tests.support.pipeline import pipeline
from tests.support.scenarios import finished, make_case, trigger
from tests.support.waiting import eventually

COMMITTED = repo_root() / "schemas" / "asyncapi.json"


@pytest.fixture(scope="session")
def asyncapi_schema() -> Json:
    return asyncapi_3_schema()


@pytest.fixture(scope="session")
def document() -> Json:
    loaded: Json = json.loads(COMMITTED.read_text())
    return loaded


def run_event_messages(document: Json) -> dict[str, Json]:
    """The `runEvents` channel's messages by event type (`ce_type`), their `$ref`s followed."""
    messages: dict[str, Json] = {}
    for reference in document["channels"]["runEvents"]["messages"].values():
        name = reference["$ref"].removeprefix("#/components/messages/")
        message = document["components"]["messages"][name]
        messages[message["name"]] = message
    return messages


def test_the_committed_document_is_the_generated_one() -> None:
    generated = asyncapi_json(version=version("agent-eval"))
    assert COMMITTED.read_text() == generated, (
        "stale: run `agent-eval asyncapi --output schemas/asyncapi.json`"
    )


async def test_the_gateway_serves_the_committed_document(client: Client, document: Json) -> None:
    response = await client.get("/asyncapi.json")
    assert (response.status, response.content_type) == (200, "application/json")
    assert await response.json() == document


def test_the_document_is_valid_asyncapi_3(asyncapi_schema: Json, document: Json) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert document_errors(asyncapi_schema, document) == []


def test_a_broken_document_is_caught_by_the_schema(asyncapi_schema: Json, document: Json) -> None:
    broken = copy.deepcopy(document)
    del broken["info"]["title"]
    broken["operations"]["receiveRunEvents"]["action"] = "subscribe"  # AsyncAPI 2 vocabulary
    broken["channels"]["runEvents"]["address"] = 42
    errors = document_errors(asyncapi_schema, broken)
    assert errors, "the schema accepted a broken document"
    assert document_errors(asyncapi_schema, {"asyncapi": "3.0.0"}) != []


def test_every_run_event_type_has_a_message_on_the_run_events_channel(document: Json) -> None:
    assert set(run_event_messages(document)) >= {str(t) for t in RUN_EVENTS}
    assert document["channels"]["runEvents"]["address"] == Topic.RUN_EVENTS


async def _unsent(pool: Pool, run_id: UUID) -> int:
    async with connection(pool) as conn:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM outbox AS o JOIN outbox_pending AS p ON p.id = o.id"
                " WHERE o.run_id = $1",
                run_id,
            )
        )


async def _published_run(settings: Settings, pool: Pool, kafka: KafkaBus) -> tuple[UUID, list[Message]]:
    """A scripted run taken to done through the pipeline on Kafka; its run-events records."""
    company = await make_company(pool, balance_cents=100_000)
    case_id = await make_case(pool, company.id, success_criteria=[{"type": "must_say", "pattern": "refund"}])
    async with pipeline(settings, pool, kafka):
        run_id = await trigger(pool, settings, company.id, case_id)
        await finished(pool, run_id)
        await eventually(lambda: _unsent(pool, run_id), until=lambda n: n == 0, what="every event relayed")
    records = await kafka.read_all(topic_name(settings.topic_prefix, Topic.RUN_EVENTS))
    return run_id, records


def _mismatches(record: Message, messages: dict[str, Json], document: Json) -> list[str]:
    """How one record departs from the message its `ce_type` names."""
    headers: dict[str, Any] = {name: value.decode() for name, value in record.headers}
    message = messages.get(headers.get("ce_type", ""))
    if message is None:
        return [f"no runEvents message for ce_type {headers.get('ce_type')!r}"]
    body = json.loads(record.value)
    problems = [f"header {p}" for p in instance_errors(message["headers"], headers)]
    problems += [
        f"payload {p}" for p in instance_errors(message["payload"], body, components=document["components"])
    ]
    key = record.key.decode() if record.key is not None else None
    problems += [] if key == headers["ce_subject"] == body["run_id"] else [f"key {key!r} is not the run id"]
    identity = (headers["ce_id"], headers.get("ce_sequence"), headers["ce_type"])
    if identity != (body["id"], str(body["sequence"]), body["type"]):
        problems.append(f"headers {identity} disagree with the body")
    return problems


@pytest.mark.kafka
async def test_the_records_of_a_real_run_match_the_document(
    settings: Settings, pool: Pool, kafka: KafkaBus, document: Json
) -> None:
    run_id, records = await _published_run(settings, pool, kafka)
    messages = run_event_messages(document)

    problems = {f"{r.offset}": _mismatches(r, messages, document) for r in records}
    assert {offset: found for offset, found in problems.items() if found} == {}
    first = records[0]
    tampered = replace(
        first,
        key=b"elsewhere",
        value=json.dumps({**json.loads(first.value), "sequence": 0, "extra": 1}).encode(),
        headers=(*first.headers, ("ce_time", b"yesterday")),
    )
    assert len(_mismatches(tampered, messages, document)) >= 4  # the checks have teeth

    async with connection(pool) as conn:
        rows = await conn.fetch(
            "SELECT type FROM outbox WHERE run_id = $1 AND topic = $2", run_id, Topic.RUN_EVENTS
        )
    produced = [row["type"] for row in rows]
    published = [dict(r.headers)["ce_type"].decode() for r in records]
    assert sorted(published) == sorted(produced)  # every event of the run, checked once each
    assert {t.removeprefix("agent_eval.run.") for t in published} >= {
        "queued",
        "started",
        "turn",
        "completed",
        "scored",
        "billed",
        "done",
    }
