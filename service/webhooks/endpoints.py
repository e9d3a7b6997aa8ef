"""Webhook endpoints: registered with a checked URL and a fresh signing secret (shown once,
stored sealed), updated, rotated with a grace period, deleted (DESIGN.md §8)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from uuid import UUID

from schemas.webhooks import WebhookEndpoint, WebhookEndpointCreate, WebhookEndpointPatch
from service.core.errors import FieldError, NotConfigured, OutboundRefused, SettingsError, ValidationFailed
from service.core.ids import new_id
from service.core.outbound import check_resolution, check_target
from service.core.sealing import SecretBox
from service.core.settings import Settings
from service.db import deliveries, webhooks
from service.db.postgres import Pool, transaction
from service.domain.webhooks import SECRET_BYTES, format_secret


@dataclass(frozen=True)
class Registered:
    """An endpoint as created or rotated, with its secret (shown this once)."""

    endpoint: webhooks.EndpointRow
    secret: str


def secret_box(settings: Settings) -> SecretBox:
    """The box sealing endpoint secrets, or 503 NOT_CONFIGURED naming the setting to give."""
    try:
        return SecretBox(settings.require_webhook_keys())
    except SettingsError as exc:
        raise NotConfigured(f"Webhooks are not configured: {exc}") from exc


async def check_url(url: str, *, allow_private: bool) -> None:
    """https only, no IP literal or name that resolves to a private, loopback, link-local,
    CGNAT, metadata or otherwise non-public address (400 naming `url`)."""
    try:
        check_target(url, allow_private=allow_private)
        await check_resolution(url, allow_private=allow_private)
    except OutboundRefused as exc:
        raise ValidationFailed(
            "Webhook URL not allowed", [FieldError("url", str(exc), "url_forbidden")]
        ) from exc


async def register(
    pool: Pool, settings: Settings, company_id: UUID, body: WebhookEndpointCreate
) -> Registered:
    box = secret_box(settings)
    await check_url(body.url, allow_private=settings.webhook_allow_private)
    secret = format_secret(secrets.token_bytes(SECRET_BYTES))
    new = webhooks.NewEndpoint(
        id=new_id(),
        company_id=company_id,
        url=body.url,
        description=body.description,
        event_types=list(body.event_types),
        secret_sealed=box.seal(secret),
        is_enabled=body.enabled,
    )
    async with transaction(pool) as conn:
        return Registered(await webhooks.insert_endpoint(conn, new), secret)


async def update(
    pool: Pool, settings: Settings, company_id: UUID, endpoint_id: UUID, patch: WebhookEndpointPatch
) -> webhooks.EndpointRow:
    """Apply the fields sent; a new URL is checked again; disabling stops pending deliveries."""
    if patch.url is not None:
        await check_url(patch.url, allow_private=settings.webhook_allow_private)
    async with transaction(pool) as conn:
        current = await webhooks.get_endpoint(conn, company_id, endpoint_id, for_update=True)
        sent = patch.model_fields_set
        updated = await webhooks.update_endpoint(
            conn,
            company_id,
            endpoint_id,
            url=patch.url if patch.url is not None else current.url,
            description=patch.description if "description" in sent else current.description,
            event_types=list(patch.event_types) if patch.event_types is not None else current.event_types,
            enabled=patch.enabled if patch.enabled is not None else current.is_enabled,
        )
        if current.is_enabled and not updated.is_enabled:
            await deliveries.stop_pending(conn, endpoint_id, "the endpoint was disabled")
    return updated


async def rotate(
    pool: Pool, settings: Settings, company_id: UUID, endpoint_id: UUID, grace_s: float | None
) -> Registered:
    """A new secret; the old one keeps signing (beside the new one) for the grace period."""
    box = secret_box(settings)
    secret = format_secret(secrets.token_bytes(SECRET_BYTES))
    grace = settings.webhook_rotation_grace_s if grace_s is None else grace_s
    async with transaction(pool) as conn:
        rotated = await webhooks.rotate_secret(conn, company_id, endpoint_id, box.seal(secret), grace)
    return Registered(rotated, secret)


async def delete(pool: Pool, company_id: UUID, endpoint_id: UUID) -> bool:
    """Soft delete; its pending deliveries stop (False when there was no live endpoint)."""
    async with transaction(pool) as conn:
        deleted = await webhooks.delete_endpoint(conn, company_id, endpoint_id)
        if deleted:
            await deliveries.stop_pending(conn, endpoint_id, "the endpoint was deleted")
    return deleted


def endpoint_view(row: webhooks.EndpointRow) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row.id,
        company_id=row.company_id,
        url=row.url,
        event_types=row.event_types,
        description=row.description,
        enabled=row.is_enabled,
        disabled_at=row.disabled_at,
        disabled_reason=row.disabled_reason,
        failing_since=row.failing_since,
        previous_secret_expires_at=row.previous_secret_expires_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
