"""Request context (id, trace, one log line, metrics), the body size limit, and the one place
where errors become HTTP responses. Nothing else turns exceptions into statuses."""

from __future__ import annotations

import json
import re
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import ValidationError

from schemas.assertions import ASSERTION_TYPES
from service.core.errors import (
    DatabaseUnavailable,
    FieldError,
    InvalidText,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceError,
    Unavailable,
    ValidationFailed,
)
from service.core.logging import bound_context, get_logger
from service.core.metrics import HTTP_LATENCY, HTTP_REQUESTS
from service.core.tracing import start_trace
from service.gateway.appkeys import (
    CLOCK,
    ENDPOINTS,
    KEY_CACHE,
    POOL,
    PRINCIPAL,
    RATE_LIMIT_HEADERS,
    REQUEST_ID,
    SETTINGS,
)
from service.gateway.auth import authenticate, check_admin, count_request, enforce_limit, require_scope
from service.gateway.endpoints import Access
from service.gateway.handlers.responses import JSON

log = get_logger("service.http")
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})  # probes and scrapes: debug level
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_for(header: str | None) -> str:
    """The caller's `X-Request-ID` when it is sane, else a fresh one."""
    if header and _REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind request_id (echoed as X-Request-ID) and the trace; log one line and count the request."""
    request_id = request_id_for(request.headers.get("X-Request-ID"))
    request[REQUEST_ID] = request_id
    start_trace(request.headers.get("traceparent"))
    clock = request.app[CLOCK]
    started = clock.monotonic()
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    with bound_context(request_id=request_id):
        response = await handler(request)
        elapsed = clock.monotonic() - started
        response.headers["X-Request-ID"] = request_id
        response.headers.update(request.get(RATE_LIMIT_HEADERS, {}))
        HTTP_REQUESTS.labels(request.method, route, str(response.status)).inc()
        HTTP_LATENCY.labels(request.method, route).observe(elapsed)
        emit = log.debug if request.path in QUIET_PATHS else log.info
        emit(
            "request_handled",
            method=request.method,
            path=request.path,
            status=response.status,
            ms=round(elapsed * 1000, 1),
        )
        return response


@web.middleware
async def access_control(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Enforce the matched endpoint's access rule: API key, rate limit, scope — or the admin token."""
    endpoint = request.app[ENDPOINTS].get(request.match_info.route.name or "")
    if endpoint is None or endpoint.access is Access.PUBLIC:
        return await handler(request)
    settings, pool = request.app[SETTINGS], request.app[POOL]
    if endpoint.access is Access.ADMIN:
        token = settings.admin_token.get_secret_value() if settings.admin_token else None
        check_admin(request, token)
        return await handler(request)
    now = request.app[CLOCK].now()
    principal, key = await authenticate(request, pool, request.app[KEY_CACHE], now)
    decision = await count_request(pool, key, now)
    request[RATE_LIMIT_HEADERS] = decision.headers()
    enforce_limit(decision)
    require_scope(principal, endpoint.scope or "")
    request[PRINCIPAL] = principal
    return await handler(request)


@web.middleware
async def body_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a declared oversized body before reading it (aiohttp enforces the same limit on read)."""
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"Request body exceeds {limit} bytes")
    return await handler(request)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map the ServiceError tree (and aiohttp's own routing errors) to JSON error bodies."""
    try:
        return await handler(request)
    except Exception as exc:
        return error_response(as_service_error(exc, request))


def as_service_error(exc: Exception, request: web.Request) -> ServiceError:
    """The client-facing error for any exception; unknown ones are logged and become a bare 500."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, ValidationError):
        return validation_failed(exc, "body")
    if isinstance(exc, InvalidText):
        message = "Text contains a character that cannot be stored (NUL, \\u0000)"
        return ValidationFailed(message, [FieldError("body", message, "invalid_text")])
    if isinstance(exc, DatabaseUnavailable):
        log.warning("database_unavailable", error=str(exc))
        return Unavailable()
    if isinstance(exc, web.HTTPException):
        return from_http_exception(exc)
    log.exception("unhandled_error", method=request.method, path=request.path, exc_info=exc)
    return ServiceError()


def error_response(exc: ServiceError) -> web.Response:
    """With the very Content-Type of every success (`application/json`, no charset: JSON is UTF-8)."""
    body = json.dumps(exc.body())
    return web.Response(body=body, status=exc.status, headers=dict(exc.headers()), content_type=JSON)


def validation_failed(exc: ValidationError, location: str) -> ValidationFailed:
    """A pydantic error as a 400 naming each offending field (`body.tools.0.name`)."""
    fields = [
        FieldError(".".join([location, *_field_path(error["loc"])]), error["msg"], error["type"])
        for error in exc.errors(include_url=False, include_input=False)
        if error["type"] != "none_required"  # "or null" members of optional fields add only noise
    ]
    return ValidationFailed(fields=fields)


_UNION_LABELS = ("constrained-", "function-", "tagged-union", "nullable", "json-or-python", "lax-")
# Members of `X | None` unions and discriminated-union tags, which pydantic puts in a loc.
_TAGS = frozenset({*ASSERTION_TYPES, "bool", "str", "int", "float", "none", "uuid", "datetime"})


def _field_path(loc: tuple[int | str, ...]) -> list[str]:
    """The loc as the client's document names it: without pydantic's union-member labels
    (`constrained-int`, `function-after[…]`) and discriminator tags (`must_say`)."""
    return [
        str(part)
        for part in loc
        if not (isinstance(part, str) and ("[" in part or part.startswith(_UNION_LABELS) or part in _TAGS))
    ]


def from_http_exception(exc: web.HTTPException) -> ServiceError:
    """aiohttp raises these itself: no route, wrong method, body over client_max_size."""
    if isinstance(exc, web.HTTPNotFound):
        return NotFound("No such endpoint")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return MethodNotAllowed(sorted(exc.allowed_methods))
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge()
    if exc.status < 500:
        return ValidationFailed(exc.reason)
    return ServiceError()
