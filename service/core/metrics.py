"""Prometheus metrics, declared once. Every role exposes them on `/metrics`."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

HTTP_REQUESTS = Counter(
    "agent_eval_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "agent_eval_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

RELAY_PUBLISHED = Counter("agent_eval_relay_published_total", "Outbox rows published to the bus", ["topic"])
RELAY_ACTIVE = Gauge("agent_eval_relay_active", "1 while this process holds the relay lock")
OUTBOX_UNSENT = Gauge("agent_eval_outbox_unsent", "Outbox rows waiting to be published")
OUTBOX_OLDEST_UNSENT_AGE = Gauge(
    "agent_eval_outbox_oldest_unsent_age_seconds", "Age of the oldest unpublished outbox row"
)
OUTBOX_PURGED = Counter("agent_eval_outbox_purged_total", "Sent outbox rows deleted after retention")

UNCOLLECTED_CENTS = Counter(
    "agent_eval_uncollected_cents_total", "Run costs a balance could not cover (cents)"
)
RUNS_STUCK = Gauge("agent_eval_runs_stuck", "Runs that should be moving but are not", ["reason"])

CONSUMED = Counter(
    "agent_eval_consumer_messages_total", "Records handled by consumers", ["group", "topic", "outcome"]
)
CONSUMER_HANDLER_SECONDS = Histogram(
    "agent_eval_consumer_handler_duration_seconds", "Time spent in a consumer handler", ["group"]
)
DLQ_RECORDS = Counter(
    "agent_eval_dlq_records_total", "Records sent to a dead-letter topic", ["topic", "reason"]
)
CONVERSATIONS_ACTIVE = Gauge("agent_eval_conversations_active", "Conversations this executor is playing")
EXECUTOR_SATURATION = Gauge(
    "agent_eval_executor_saturation",
    "Conversations playing over the executor's concurrency (1: full, new run requests wait)",
)
QUEUE_OLDEST_PENDING_AGE = Gauge(
    "agent_eval_queue_oldest_pending_age_seconds",
    "Age of the oldest released run not yet claimed by an executor (0 when none waits)",
)
RUNS_REDISPATCHED = Counter(
    "agent_eval_runs_redispatched_total",
    "Run requests published again by maintenance, by why (stale_pending, lease_expired)",
    ["reason"],
)
RUNS_ENDED = Counter(
    "agent_eval_runs_ended_total", "Conversations ended by this process", ["status", "reason"]
)
TURNS_PERSISTED = Counter("agent_eval_turns_persisted_total", "Transcript rows written", ["role"])
MODEL_CALL_SECONDS = Histogram(
    "agent_eval_model_call_duration_seconds",
    "Time a model call took",
    ["role"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RUN_WAITERS = Gauge("agent_eval_run_waiters", "HTTP requests blocked waiting for a run to be done")
MAINTENANCE_RUNS = Counter(
    "agent_eval_maintenance_runs_total", "Maintenance job executions", ["job", "outcome"]
)
WEBHOOK_ATTEMPTS = Counter(
    "agent_eval_webhook_attempts_total", "Webhook delivery attempts by outcome", ["outcome"]
)
WEBHOOK_LATENCY = Histogram(
    "agent_eval_webhook_attempt_duration_seconds",
    "Time a webhook receiver took to answer",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15),
)
EVENT_STREAMS = Gauge("agent_eval_event_streams", "Open SSE streams of run events")


def render_metrics() -> tuple[bytes, str]:
    """The exposition body and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
