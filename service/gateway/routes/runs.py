"""Runs: trigger (blocking up to 60 s), read (optionally blocking), list, turns, evaluation, cancel."""

from __future__ import annotations

from schemas.pages import Page
from schemas.runs import CancelRequest, EvaluationView, Run, RunListQuery, RunTrigger, TurnList
from service.gateway.endpoints import Endpoint, HeaderParam
from service.gateway.handlers import runs, streams

RUNS = "Runs"
RUN = "/agent-eval/runs/{id}"

PREFER = HeaderParam(
    "`wait=N`: hold the request up to N seconds (0-60; outside that range it is clamped, and "
    "the applied value is echoed in `Preference-Applied`)."
)
IDEMPOTENCY_KEY = HeaderParam(
    "Up to 255 printable ASCII characters. Repeating a request with the same key creates nothing "
    "new and answers with the same run; the same key with a different request is 422 "
    "`IDEMPOTENCY_KEY_REUSED`; while the first request is still in progress, a repeat waits for "
    "it (409 `IDEMPOTENCY_KEY_IN_USE` after 5 s). Keys are kept 24 hours.",
    max_length=255,
)

TRIGGER_DESCRIPTION = """\
Creates a run of the case and holds the request until the run is done (conversation, scoring
and billing: `queue_status` is `done`), for `AGENT_EVAL_DEFAULT_WAIT_S` (55 s) or `Prefer:
wait=N`. 200 with the final run when it is done in time; otherwise 202 with the latest run,
`Location` and `Retry-After`: poll `GET /agent-eval/runs/{id}`. The run records the merged agent
(agent ← case `agent_overrides` ← these `agent_overrides`) and the exact prompts sent. 402
`BILLING_ERROR` when the company is suspended or its balance is below
`AGENT_EVAL_MIN_RUN_BALANCE_CENTS`; 422 `MODE_NOT_SUPPORTED` for `mode: voice`; 422
`MODEL_NOT_CONFIGURED` when the agent, persona
or a judge model has no configured provider (the message names the model and the setting to
set). Rejected requests create and store nothing."""

EVENTS_DESCRIPTION = """\
Every lifecycle event of the run, `run.turn` included (with the turn's text), in order: `id` is
the event's sequence in the run, `event` its type without `agent_eval.` (`run.turn`, `run.done`),
`data` its JSON body (`{id, type, time, company_id, run_id, sequence, data}`, the same as the
Kafka record). Events already stored are replayed first, then new ones follow live. A comment
line every 15 s keeps proxies from closing an idle stream. The stream closes after `run.done`;
reconnect with `Last-Event-ID` (or `?after=N`) to resume without gaps or repeats."""

LAST_EVENT_ID = HeaderParam("Resume after the event with this sequence (sent by EventSource on reconnect).")

CANCEL_DESCRIPTION = """\
A run no executor has claimed is cancelled at once: `cancelled`, `queue_status` `done`, cost 0
(200). A running run is flagged and ends `cancelled` at its next turn boundary, billed for the
turns it produced (202, with `Location`; `Prefer: wait` holds the request as for triggers). A
run already over is returned unchanged (200). Idempotent; accepts `Idempotency-Key`."""

RUN_ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        "/agent-eval/cases/{case_id}/run",
        runs.trigger_run,
        "trigger_case_run",
        "Run a case and wait for the result",
        RUNS,
        scope="agent_eval:run",
        body=RunTrigger,
        body_required=False,
        responses={200: Run, 202: Run},
        description=TRIGGER_DESCRIPTION,
        headers={"Prefer": PREFER, "Idempotency-Key": IDEMPOTENCY_KEY},
        errors=(402, 409, 422),
    ),
    Endpoint(
        "GET",
        "/agent-eval/runs",
        runs.list_runs,
        "list_runs",
        "List runs, newest first",
        RUNS,
        scope="agent_eval:read",
        query=RunListQuery,
        responses={200: Page[Run]},
    ),
    Endpoint(
        "GET",
        RUN,
        runs.get_run,
        "get_run",
        "Get a run (optionally waiting until it is done)",
        RUNS,
        scope="agent_eval:read",
        responses={200: Run, 202: Run},
        description="Without `Prefer: wait` answers at once (200). With it, holds the request until the "
        "run is done (200) or the wait is over (202 with `Location` and `Retry-After`).",
        headers={"Prefer": PREFER},
    ),
    Endpoint(
        "GET",
        f"{RUN}/turns",
        runs.list_turns,
        "list_run_turns",
        "The run's transcript rows in turn order",
        RUNS,
        scope="agent_eval:read",
        responses={200: TurnList},
    ),
    Endpoint(
        "GET",
        f"{RUN}/evaluation",
        runs.get_evaluation,
        "get_run_evaluation",
        "The run's assertion results (null until the run is done)",
        RUNS,
        scope="agent_eval:read",
        responses={200: EvaluationView},
    ),
    Endpoint(
        "GET",
        f"{RUN}/events",
        streams.stream_run_events,
        "stream_run_events",
        "The run's lifecycle events, live, as Server-Sent Events",
        RUNS,
        scope="agent_eval:read",
        responses={200: None},
        content_type="text/event-stream",
        description=EVENTS_DESCRIPTION,
        headers={"Last-Event-ID": LAST_EVENT_ID},
    ),
    Endpoint(
        "POST",
        f"{RUN}/cancel",
        runs.cancel_run,
        "cancel_run",
        "Cancel a run (at its next turn boundary if it is running)",
        RUNS,
        scope="agent_eval:run",
        body=CancelRequest,
        body_required=False,
        responses={200: Run, 202: Run},
        description=CANCEL_DESCRIPTION,
        headers={"Prefer": PREFER, "Idempotency-Key": IDEMPOTENCY_KEY},
        errors=(409, 422),
    ),
)
