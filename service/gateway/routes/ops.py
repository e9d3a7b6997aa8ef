"""Health, metrics and docs: no key, never rate limited."""

from __future__ import annotations

from schemas.api import HealthBody
from service.gateway.endpoints import Access, Endpoint
from service.gateway.handlers import docs, health

PUBLIC = Access.PUBLIC

OPS_ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET", "/healthz", health.healthz, "healthz", "Liveness", "Ops", PUBLIC, responses={200: HealthBody}
    ),
    Endpoint(
        "GET", "/readyz", health.readyz, "readyz", "Readiness", "Ops", PUBLIC, responses={200: HealthBody}
    ),
    Endpoint(
        "GET",
        "/metrics",
        health.metrics,
        "metrics",
        "Prometheus metrics",
        "Ops",
        PUBLIC,
        responses={200: None},
        content_type="text/plain",
    ),
    Endpoint(
        "GET", "/openapi.json", docs.openapi, "openapi", "This document", "Ops", PUBLIC, responses={200: None}
    ),
    Endpoint(
        "GET",
        "/asyncapi.json",
        docs.asyncapi,
        "asyncapi",
        "The Kafka event stream (AsyncAPI 3.0)",
        "Ops",
        PUBLIC,
        responses={200: None},
    ),
    Endpoint(
        "GET",
        "/docs",
        docs.page,
        "docs",
        "Human-readable API docs",
        "Ops",
        PUBLIC,
        responses={200: None},
        content_type="text/html",
    ),
)
