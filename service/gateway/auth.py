"""Who is calling: API keys (Bearer, SHA-256 lookup cached ≤ 5 s), the admin token, rate limits.

The lookup cache is per process and short on purpose: a revoked key stops working within the
cache's lifetime everywhere, and a burst of requests with the same key costs one query.
Unknown keys are cached too, so guessing keys cannot hammer the database.
"""

from __future__ import annotations

import hmac
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from aiohttp import web

from service.core.clock import SYSTEM_CLOCK, Clock
from service.core.errors import ExpiredKey, InsufficientScope, InvalidKey, MissingKey, NotFound, RateLimited
from service.db import companies, rate_limits
from service.db.companies import KeyAuth
from service.db.postgres import Pool, connection
from service.domain import access
from service.domain.apikeys import hash_api_key, is_well_formed


@dataclass(frozen=True)
class Principal:
    """The caller of an authenticated request."""

    company_id: UUID
    key_id: UUID
    scopes: frozenset[str]


class KeyCache:
    """sha256 → KeyAuth (or None for unknown keys), each entry kept `ttl_s` seconds."""

    def __init__(self, ttl_s: float = 5.0, max_entries: int = 10_000, clock: Clock = SYSTEM_CLOCK) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._max = max_entries
        self._entries: OrderedDict[bytes, tuple[float, KeyAuth | None]] = OrderedDict()

    def forget_all(self) -> None:
        """Drop every entry (this process revoked a key: it must not wait for the TTL)."""
        self._entries.clear()

    async def lookup(self, pool: Pool, digest: bytes) -> KeyAuth | None:
        now = self._clock.monotonic()
        cached = self._entries.get(digest)
        if cached is not None and now - cached[0] < self._ttl_s:
            return cached[1]
        async with connection(pool) as conn:
            found = await companies.fetch_key_auth(conn, digest)
        self._entries[digest] = (now, found)
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return found


def bearer_token(request: web.Request) -> str:
    """The token of `Authorization: Bearer <token>`, or MissingKey."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MissingKey()
    return token.strip()


async def authenticate(
    request: web.Request, pool: Pool, cache: KeyCache, now: datetime
) -> tuple[Principal, KeyAuth]:
    token = bearer_token(request)
    found = await cache.lookup(pool, hash_api_key(token)) if is_well_formed(token) else None
    status = access.key_status(
        found is not None,
        None if found is None else found.revoked_at,
        None if found is None else found.expires_at,
        now,
    )
    if status == "expired":
        raise ExpiredKey()
    if status != "ok" or found is None:
        raise InvalidKey()
    return Principal(found.company_id, found.id, found.scopes), found


async def count_request(pool: Pool, key: KeyAuth, now: datetime) -> access.LimitDecision:
    """Count the request in the key's current window; the decision carries the response headers."""
    window = access.window_of(now)
    async with connection(pool) as conn:
        count = await rate_limits.count_request(conn, key.id, window.start)
    return access.decide(count, key.rate_limit_per_minute, window, now)


def enforce_limit(decision: access.LimitDecision) -> None:
    if not decision.allowed:
        raise RateLimited(
            decision.retry_after_s, f"Rate limit of {decision.limit} requests per minute exceeded"
        )


def require_scope(principal: Principal, scope: str) -> None:
    if scope not in principal.scopes:
        raise InsufficientScope(f"This endpoint needs the {scope!r} scope")


def check_admin(request: web.Request, token: str | None) -> None:
    """Admin requests carry `Authorization: Bearer <AGENT_EVAL_ADMIN_TOKEN>`; without a configured
    token the admin API does not exist (404)."""
    if token is None:
        raise NotFound("No such endpoint")
    given = bearer_token(request)
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise InvalidKey("Invalid admin token")
