"""Webhook endpoints (`webhook_endpoints`): a company's subscriber URLs, their event filters and
their sealed signing secrets (DESIGN.md §8)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from uuid import UUID

from service.core.errors import NotFound
from service.db.postgres import Connection, Record, fetch_one
from service.db.runs import RUN_COLUMNS, RunRow, run_from_record
from service.db.tables import fetch_page, soft_delete


@dataclass(frozen=True)
class EndpointRow:
    """One `webhook_endpoints` row; the secrets stay sealed here."""

    id: UUID
    company_id: UUID
    url: str
    description: str | None
    event_types: list[str]
    secret_sealed: str
    previous_secret_sealed: str | None
    previous_secret_expires_at: datetime | None
    is_enabled: bool
    disabled_at: datetime | None
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class NewEndpoint:
    id: UUID
    company_id: UUID
    url: str
    description: str | None
    event_types: list[str]
    secret_sealed: str
    is_enabled: bool


COLUMNS = ", ".join(f.name for f in fields(EndpointRow))
_LIVE = "company_id = $2 AND deleted_at IS NULL"

_INSERT = f"""
INSERT INTO webhook_endpoints (id, company_id, url, description, event_types, secret_sealed, is_enabled,
                               disabled_at, disabled_reason)
VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $7 THEN NULL ELSE now() END,
        CASE WHEN $7 THEN NULL ELSE 'disabled by the user' END)
RETURNING {COLUMNS}
"""
_SELECT = f"SELECT {COLUMNS} FROM webhook_endpoints WHERE id = $1 AND {_LIVE}"
_SELECT_FOR_UPDATE = _SELECT + " FOR UPDATE"
# Enabling clears the failure record; disabling by the user says so.
_UPDATE = f"""
UPDATE webhook_endpoints
SET url = $3, description = $4, event_types = $5, is_enabled = $6,
    disabled_at = CASE WHEN $6 THEN NULL WHEN is_enabled THEN now() ELSE disabled_at END,
    disabled_reason = CASE WHEN $6 THEN NULL WHEN is_enabled THEN 'disabled by the user'
                           ELSE disabled_reason END,
    failing_since = CASE WHEN $6 AND NOT is_enabled THEN NULL ELSE failing_since END,
    updated_at = now()
WHERE id = $1 AND {_LIVE}
RETURNING {COLUMNS}
"""
_ROTATE = f"""
UPDATE webhook_endpoints
SET previous_secret_sealed = secret_sealed, previous_secret_expires_at = now() + make_interval(secs => $4),
    secret_sealed = $3, updated_at = now()
WHERE id = $1 AND {_LIVE}
RETURNING {COLUMNS}
"""
_DELETE = f"""
UPDATE webhook_endpoints SET deleted_at = now(), is_enabled = false, updated_at = now()
WHERE id = $1 AND {_LIVE}
"""
_LIST = f"""
SELECT {COLUMNS} FROM webhook_endpoints WHERE company_id = $1 AND deleted_at IS NULL
ORDER BY id DESC LIMIT $2 OFFSET $3
"""
_COUNT = "SELECT count(*) FROM webhook_endpoints WHERE company_id = $1 AND deleted_at IS NULL"
# Who receives each of a batch of events, and (for run events) the run as it is now.
# The run is read only for an event some endpoint subscribes to: most events of most runs go to
# no endpoint (webhooks default to `run.done`), and the run's row is its largest read.
# `OFFSET 0` and `LIMIT 1` keep the planner from flattening the two subqueries into joins: as
# joins, the endpoint list was computed twice per event and the run was read for every event (by
# index, or by a hash join over the whole table) and only then dropped when nobody subscribed.
# As subqueries, the run's look-up runs only when the list is not empty (a one-time filter).
_SUBSCRIBERS_AND_RUNS = f"""
SELECT s.endpoint_ids, run.*
FROM unnest($1::uuid[], $2::text[], $3::uuid[]) WITH ORDINALITY AS e (company_id, type, run_id, ord)
CROSS JOIN LATERAL (
    SELECT array(
               SELECT w.id FROM webhook_endpoints w
               WHERE w.company_id = e.company_id AND w.is_enabled AND w.deleted_at IS NULL
                 AND e.type = ANY (w.event_types)
               ORDER BY w.id
           ) AS endpoint_ids
    OFFSET 0
) AS s
LEFT JOIN LATERAL (
    SELECT {RUN_COLUMNS} FROM eval_runs WHERE id = e.run_id AND cardinality(s.endpoint_ids) > 0 LIMIT 1
) AS run ON true
ORDER BY e.ord
"""
_DISABLE = f"""
UPDATE webhook_endpoints SET is_enabled = false, disabled_at = $2, disabled_reason = $3, updated_at = now()
WHERE id = $1 AND is_enabled
RETURNING {COLUMNS}
"""


def _endpoint(record: Record) -> EndpointRow:
    return EndpointRow(**dict(record))


async def insert_endpoint(conn: Connection, new: NewEndpoint) -> EndpointRow:
    record = await fetch_one(
        conn,
        _INSERT,
        new.id,
        new.company_id,
        new.url,
        new.description,
        new.event_types,
        new.secret_sealed,
        new.is_enabled,
    )
    return _endpoint(record)


async def get_endpoint(
    conn: Connection, company_id: UUID, endpoint_id: UUID, *, for_update: bool = False
) -> EndpointRow:
    """The company's live endpoint, or NotFound (another company's looks exactly the same)."""
    record = await conn.fetchrow(_SELECT_FOR_UPDATE if for_update else _SELECT, endpoint_id, company_id)
    if record is None:
        raise NotFound(f"Webhook endpoint {endpoint_id} not found")
    return _endpoint(record)


async def update_endpoint(
    conn: Connection,
    company_id: UUID,
    endpoint_id: UUID,
    *,
    url: str,
    description: str | None,
    event_types: list[str],
    enabled: bool,
) -> EndpointRow:
    record = await conn.fetchrow(_UPDATE, endpoint_id, company_id, url, description, event_types, enabled)
    if record is None:
        raise NotFound(f"Webhook endpoint {endpoint_id} not found")
    return _endpoint(record)


async def rotate_secret(
    conn: Connection, company_id: UUID, endpoint_id: UUID, secret_sealed: str, grace_s: float
) -> EndpointRow:
    """A new secret; the current one keeps signing for `grace_s` seconds."""
    record = await conn.fetchrow(_ROTATE, endpoint_id, company_id, secret_sealed, grace_s)
    if record is None:
        raise NotFound(f"Webhook endpoint {endpoint_id} not found")
    return _endpoint(record)


async def delete_endpoint(conn: Connection, company_id: UUID, endpoint_id: UUID) -> bool:
    """Soft delete (it stops receiving); False when there was no live endpoint."""
    return await soft_delete(conn, _DELETE, endpoint_id, company_id)


async def list_endpoints(
    conn: Connection, company_id: UUID, *, limit: int, offset: int
) -> tuple[list[EndpointRow], int]:
    """The company's live endpoints, newest first, and how many there are."""
    rows, total = await fetch_page(conn, _LIST, _COUNT, [company_id], limit=limit, offset=offset)
    return [_endpoint(r) for r in rows], total


@dataclass(frozen=True)
class Audience:
    """Who receives an event: the subscribed endpoints' ids, and the run when one was asked for."""

    endpoint_ids: list[UUID]
    run: RunRow | None


async def audiences(conn: Connection, events: Sequence[tuple[UUID, str, UUID | None]]) -> list[Audience]:
    """For each (company id, event type, run id or None): the company's enabled endpoints
    subscribed to the type, and the run (None when not asked for, missing, or when no endpoint
    subscribes); in order."""
    rows = await conn.fetch(
        _SUBSCRIBERS_AND_RUNS, [e[0] for e in events], [e[1] for e in events], [e[2] for e in events]
    )
    return [
        Audience(
            list(r["endpoint_ids"]), None if r["id"] is None else run_from_record(r, extra=("endpoint_ids",))
        )
        for r in rows
    ]


async def disable_endpoint(
    conn: Connection, endpoint_id: UUID, at: datetime, reason: str
) -> EndpointRow | None:
    """Disable an enabled endpoint; None when it was disabled already (nothing to announce)."""
    record = await conn.fetchrow(_DISABLE, endpoint_id, at, reason)
    return None if record is None else _endpoint(record)
