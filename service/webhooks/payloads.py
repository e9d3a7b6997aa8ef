"""The bodies webhooks carry: `{"type", "timestamp", "sequence"?, "data"}`, serialised once when
a delivery is created and sent byte for byte on every attempt (the signature covers them).

`data` is, for run events, the run exactly as `GET /agent-eval/runs/{id}` returns it (read when
the delivery is created; final for `run.done`); for `run.turn`, the turn as `GET …/turns`
returns it; for other events, the event's own data.
"""

from __future__ import annotations

import json
from datetime import datetime
from uuid import UUID

from pydantic import JsonValue

from schemas.events import Event, RunTurnRecorded
from schemas.runs import Run
from service.domain.webhooks import PING_EVENT_TYPE


def _body(type_: str, timestamp: datetime, data: JsonValue, sequence: int | None) -> str:
    body: dict[str, JsonValue] = {"type": type_, "timestamp": timestamp.isoformat()}
    if sequence is not None:
        body["sequence"] = sequence
    body["data"] = data
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def needs_run(event: Event) -> bool:
    """True when the payload embeds the run as GET returns it."""
    return event.run_id is not None and not isinstance(event, RunTurnRecorded)


def event_payload(event: Event, run: Run | None) -> str:
    """The webhook body for an event; `run` is the run view when `needs_run(event)`."""
    if needs_run(event):
        if run is None:
            raise ValueError(f"{event.type} needs the run")
        data: JsonValue = run.model_dump(mode="json", by_alias=True)
    else:
        data = event.data.model_dump(mode="json")
    return _body(event.type, event.time, data, event.sequence)


def ping_payload(endpoint_id: UUID, now: datetime) -> str:
    """The body of a test send: `agent_eval.ping`."""
    data: JsonValue = {"endpoint_id": str(endpoint_id), "message": "Webhook test from agent-eval"}
    return _body(PING_EVENT_TYPE, now, data, None)
