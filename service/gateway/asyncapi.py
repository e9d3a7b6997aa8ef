"""The Kafka event stream as an AsyncAPI 3.0 document, generated from the event models that
produce the records (`schemas.events`), so the contract cannot drift from what is published.

Served at `/asyncapi.json` and kept as `schemas/asyncapi.json` (`agent-eval asyncapi` writes it;
a test fails when the file and the models disagree). It names the public channels (run events,
ops events), the CloudEvents 1.0 binary-mode headers of every record, the record key, and a JSON
Schema per event type.
"""

from __future__ import annotations

import json
from typing import Any, get_args

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from schemas.events import (
    EVENT_SOURCE,
    EventType,
    RunBilled,
    RunCancelled,
    RunCancelRequested,
    RunCompleted,
    RunDone,
    RunFailed,
    RunQueued,
    RunScored,
    RunStarted,
    RunTurnRecorded,
    SuiteRunDone,
    Topic,
    WebhookEndpointDisabled,
)

JsonDict = dict[str, Any]
REF = "#/components/schemas/{model}"
KAFKA_BINDING = "0.5.0"

CHANNELS: dict[str, tuple[Topic, str, tuple[type[BaseModel], ...]]] = {
    "runEvents": (
        Topic.RUN_EVENTS,
        "Every lifecycle event of every run, keyed by run id: one partition holds all of a run's "
        "events in `sequence` order (commit order). Delivery is at least once: de-duplicate by "
        "`ce_id`, order by `ce_sequence` within a run.",
        (
            RunQueued,
            RunStarted,
            RunTurnRecorded,
            RunCancelRequested,
            RunCompleted,
            RunFailed,
            RunCancelled,
            RunScored,
            RunBilled,
            RunDone,
            SuiteRunDone,
        ),
    ),
    "opsEvents": (
        Topic.OPS_EVENTS,
        "Operational events, keyed by the entity they are about (a webhook endpoint).",
        (WebhookEndpointDisabled,),
    ),
}

DESCRIPTION = """\
Records are CloudEvents 1.0 in Kafka binary content mode: the value is the event's JSON body
`{id, type, time, company_id, run_id, sequence, data}` and every other attribute is a `ce_*`
header (UTF-8 bytes). Topic names are prefixed by `AGENT_EVAL_TOPIC_PREFIX` (default empty).
Consume with manual commits, `auto.offset.reset=earliest`, and filter on `ce_type` before
decoding the value; types you do not know may appear and should be skipped."""


def _event_type(model: type[BaseModel]) -> str:
    (literal,) = get_args(model.model_fields["type"].annotation)
    return str(EventType(literal))


def _message_name(model: type[BaseModel]) -> str:
    return model.__name__[0].lower() + model.__name__[1:]


def _headers(event_type: str, key_of: str) -> JsonDict:
    text = {"type": "string"}
    return {
        "type": "object",
        "required": [
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_specversion",
            "ce_time",
            "ce_subject",
            "content-type",
        ],
        "properties": {
            "ce_id": {**text, "format": "uuid", "description": "The event id: de-duplicate on it."},
            "ce_source": {**text, "const": EVENT_SOURCE},
            "ce_type": {**text, "const": event_type},
            "ce_specversion": {**text, "const": "1.0"},
            "ce_time": {**text, "format": "date-time"},
            "ce_subject": {**text, "description": f"The {key_of} (also the record key)."},
            "ce_partitionkey": {**text, "description": "The record key (CloudEvents partitioning)."},
            "ce_sequence": {
                **text,
                "pattern": "^[1-9][0-9]*$",
                "description": "Run events: the run's event number.",
            },
            "ce_traceparent": {
                **text,
                "description": "W3C trace context of the change that wrote the event.",
            },
            "traceparent": {**text, "description": "The same trace context under its W3C name."},
            "content-type": {**text, "const": "application/json"},
        },
    }


def build_asyncapi(*, version: str) -> JsonDict:
    """The AsyncAPI 3.0.0 document of the public Kafka stream."""
    models = [model for _, _, group in CHANNELS.values() for model in group]
    refs, definitions = models_json_schema([(model, "serialization") for model in models], ref_template=REF)
    messages: JsonDict = {}
    channels: JsonDict = {}
    operations: JsonDict = {}
    for channel, (topic, about, group) in CHANNELS.items():
        key_of = "run id" if topic is Topic.RUN_EVENTS else "entity id"
        for model in group:
            key_of_model = "suite run id" if model is SuiteRunDone else key_of
            messages[_message_name(model)] = {
                "name": _event_type(model),
                "title": _event_type(model),
                "summary": (model.__doc__ or "").strip().splitlines()[0],
                "contentType": "application/json",
                "headers": _headers(_event_type(model), key_of_model),
                "payload": refs[(model, "serialization")],
                "bindings": {
                    "kafka": {
                        "key": {"type": "string", "format": "uuid", "description": f"The {key_of_model}."},
                        "bindingVersion": KAFKA_BINDING,
                    }
                },
            }
        channel_messages = {
            _message_name(m): {"$ref": f"#/components/messages/{_message_name(m)}"} for m in group
        }
        channels[channel] = {
            "address": topic.value,
            "description": about,
            "messages": channel_messages,
            "bindings": {"kafka": {"topic": topic.value, "bindingVersion": KAFKA_BINDING}},
        }
        operations[f"receive{channel[0].upper()}{channel[1:]}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": f"Consume {topic.value}",
            "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"} for name in channel_messages],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "agent-eval event stream", "version": version, "description": DESCRIPTION},
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "localhost:9092",
                "protocol": "kafka",
                "description": "Any broker of the cluster named by AGENT_EVAL_KAFKA_BOOTSTRAP.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": definitions.get("$defs", {})},
    }


def asyncapi_json(*, version: str) -> str:
    """The document as stable, indented JSON (what `schemas/asyncapi.json` holds)."""
    return json.dumps(build_asyncapi(version=version), indent=2, sort_keys=True) + "\n"
