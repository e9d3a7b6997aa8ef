"""Webhook endpoints and their delivery log (DESIGN.md §8, §11)."""

from __future__ import annotations

from schemas.pages import ListQuery, Page
from schemas.webhooks import (
    DeliveryListQuery,
    Recovered,
    RecoverRequest,
    SecretRotation,
    WebhookDelivery,
    WebhookDeliveryDetail,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointPatch,
    WebhookEndpointWithSecret,
)
from service.gateway.endpoints import Endpoint
from service.gateway.handlers import webhooks

WEBHOOKS = "Webhooks"
ENDPOINT = "/webhooks/{id}"
DELIVERY = "/webhooks/{id}/deliveries/{delivery_id}"
READ, MANAGE = "webhooks:read", "webhooks:manage"

CREATE_DESCRIPTION = """\
Registers a URL that receives a signed POST (Standard Webhooks v1) for each event of the types
listed (default `agent_eval.run.done` and `agent_eval.suite_run.done`). The URL must be https and
resolve only to public addresses (checked again at every connection). The answer carries the
signing secret (`whsec_…`), shown only here and on rotation. 503 `NOT_CONFIGURED` when the server
has no `AGENT_EVAL_WEBHOOK_SECRET_KEYS`."""

DELIVERY_DESCRIPTION = """\
Attempts follow the schedule immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (±10 % jitter);
any 2xx delivers, a 3xx fails (redirects are not followed), `410` disables the endpoint,
`Retry-After` on 429/503 is honoured. `webhook-id` is the event id on every attempt."""


WEBHOOK_ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        "/webhooks",
        webhooks.create_endpoint,
        "create_webhook_endpoint",
        "Register a webhook endpoint",
        WEBHOOKS,
        scope=MANAGE,
        body=WebhookEndpointCreate,
        responses={201: WebhookEndpointWithSecret},
        description=CREATE_DESCRIPTION,
        errors=(503,),
    ),
    Endpoint(
        "GET",
        "/webhooks",
        webhooks.list_endpoints,
        "list_webhook_endpoints",
        "List webhook endpoints, newest first",
        WEBHOOKS,
        scope=READ,
        query=ListQuery,
        responses={200: Page[WebhookEndpoint]},
    ),
    Endpoint(
        "GET",
        ENDPOINT,
        webhooks.get_endpoint,
        "get_webhook_endpoint",
        "Get a webhook endpoint",
        WEBHOOKS,
        scope=READ,
        responses={200: WebhookEndpoint},
    ),
    Endpoint(
        "PATCH",
        ENDPOINT,
        webhooks.update_endpoint,
        "update_webhook_endpoint",
        "Update a webhook endpoint (URL, event types, description, enabled)",
        WEBHOOKS,
        scope=MANAGE,
        body=WebhookEndpointPatch,
        responses={200: WebhookEndpoint},
    ),
    Endpoint(
        "DELETE",
        ENDPOINT,
        webhooks.delete_endpoint,
        "delete_webhook_endpoint",
        "Delete a webhook endpoint (its pending deliveries stop)",
        WEBHOOKS,
        scope=MANAGE,
        responses={204: None},
    ),
    Endpoint(
        "POST",
        "/webhooks/{id}/enable",
        webhooks.enable_endpoint,
        "enable_webhook_endpoint",
        "Enable a webhook endpoint (and forget its failures)",
        WEBHOOKS,
        scope=MANAGE,
        body_required=False,
        responses={200: WebhookEndpoint},
    ),
    Endpoint(
        "POST",
        "/webhooks/{id}/disable",
        webhooks.disable_endpoint,
        "disable_webhook_endpoint",
        "Disable a webhook endpoint",
        WEBHOOKS,
        scope=MANAGE,
        body_required=False,
        responses={200: WebhookEndpoint},
    ),
    Endpoint(
        "POST",
        "/webhooks/{id}/rotate-secret",
        webhooks.rotate_secret,
        "rotate_webhook_secret",
        "Rotate the signing secret (the old one signs too during the grace period)",
        WEBHOOKS,
        scope=MANAGE,
        body=SecretRotation,
        body_required=False,
        responses={200: WebhookEndpointWithSecret},
        errors=(503,),
    ),
    Endpoint(
        "GET",
        "/webhooks/{id}/deliveries",
        webhooks.list_deliveries,
        "list_webhook_deliveries",
        "List an endpoint's deliveries, newest first",
        WEBHOOKS,
        scope=READ,
        query=DeliveryListQuery,
        responses={200: Page[WebhookDelivery]},
        description=DELIVERY_DESCRIPTION,
    ),
    Endpoint(
        "GET",
        DELIVERY,
        webhooks.get_delivery,
        "get_webhook_delivery",
        "Get a delivery with every attempt",
        WEBHOOKS,
        scope=READ,
        responses={200: WebhookDeliveryDetail},
    ),
    Endpoint(
        "POST",
        "/webhooks/{id}/deliveries/{delivery_id}/resend",
        webhooks.resend_delivery,
        "resend_webhook_delivery",
        "Send a delivery again (the schedule starts afresh)",
        WEBHOOKS,
        scope=MANAGE,
        body_required=False,
        responses={202: WebhookDelivery},
    ),
    Endpoint(
        "POST",
        "/webhooks/{id}/recover",
        webhooks.recover_deliveries,
        "recover_webhook_deliveries",
        "Send again every failed or exhausted delivery created since a time",
        WEBHOOKS,
        scope=MANAGE,
        body=RecoverRequest,
        responses={202: Recovered},
    ),
    Endpoint(
        "POST",
        "/webhooks/{id}/test",
        webhooks.test_endpoint,
        "test_webhook_endpoint",
        "Send a signed agent_eval.ping to the endpoint",
        WEBHOOKS,
        scope=MANAGE,
        body_required=False,
        responses={202: WebhookDelivery},
    ),
)
