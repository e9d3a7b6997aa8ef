"""The one error tree. The error middleware maps it to HTTP once; nothing below handlers raises HTTP.

ServiceError                     500 INTERNAL
├── ValidationFailed             400 VALIDATION_ERROR   (+ fields)
│   └── FlowInvalid              400 FLOW_INVALID       (+ issues)
├── Unauthorized                 401
│   ├── MissingKey               401 MISSING_KEY
│   ├── InvalidKey               401 INVALID_KEY
│   ├── ExpiredKey               401 EXPIRED_KEY
│   └── InsufficientScope        401 INSUFFICIENT_SCOPE
├── BillingError                 402 BILLING_ERROR
├── NotFound                     404 NOT_FOUND
├── MethodNotAllowed             405 METHOD_NOT_ALLOWED
├── IdempotencyKeyInUse          409 IDEMPOTENCY_KEY_IN_USE
├── PayloadTooLarge              413 PAYLOAD_TOO_LARGE
├── UnsupportedMediaType         415 UNSUPPORTED_MEDIA_TYPE
├── Unprocessable                422
│   ├── IdempotencyKeyReused     422 IDEMPOTENCY_KEY_REUSED
│   ├── ModeNotSupported         422 MODE_NOT_SUPPORTED
│   └── FlowExecutionUnsupported 422 FLOW_EXECUTION_UNSUPPORTED
├── RateLimited                  429 RATE_LIMIT         (+ Retry-After)
└── Unavailable                  503 UNAVAILABLE        (a dependency is down; retry)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

JsonScalar = str | int | float | bool | None


class ServiceError(Exception):
    """Base of every error a client may see; unknown exceptions become this (500, INTERNAL)."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL"
    default_message: ClassVar[str] = "Internal server error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message

    def body(self) -> dict[str, object]:
        """The JSON body: `{"error", "code"}` plus whatever details the subclass carries."""
        return {"error": self.message, "code": self.code}

    def headers(self) -> Mapping[str, str]:
        return {}


class FieldError:
    """One offending field: a dotted path (`body.tools.0.name`, `query.limit`) and what is wrong."""

    __slots__ = ("field", "message", "type")

    def __init__(self, field: str, message: str, type_: str = "invalid") -> None:
        self.field = field
        self.message = message
        self.type = type_

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "type": self.type}


class ValidationFailed(ServiceError):
    """The request is malformed: bad JSON, wrong types, unknown fields, out-of-range numbers."""

    status = 400
    code = "VALIDATION_ERROR"
    default_message = "Request validation failed"

    def __init__(self, message: str | None = None, fields: Sequence[FieldError] = ()) -> None:
        super().__init__(message)
        self.fields = list(fields)

    def body(self) -> dict[str, object]:
        return {**super().body(), "fields": [f.as_dict() for f in self.fields]}


class FlowInvalid(ValidationFailed):
    """A flow agent's `flow_config` fails its structural checks; `issues` lists each one."""

    code = "FLOW_INVALID"
    default_message = "flow_config is invalid"

    def __init__(self, issues: Sequence[Mapping[str, JsonScalar]], message: str | None = None) -> None:
        super().__init__(message)
        self.issues = [dict(issue) for issue in issues]

    def body(self) -> dict[str, object]:
        return {"error": self.message, "code": self.code, "issues": self.issues}


class Unauthorized(ServiceError):
    """The request is not authenticated, or the key may not do this."""

    status = 401
    code = "UNAUTHORIZED"
    default_message = "Unauthorized"

    def headers(self) -> Mapping[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="agent-eval"'}


class MissingKey(Unauthorized):
    """No `Authorization: Bearer <key>` header was sent."""

    code = "MISSING_KEY"
    default_message = "Missing API key: send Authorization: Bearer <key>"


class InvalidKey(Unauthorized):
    """The key is unknown or revoked."""

    code = "INVALID_KEY"
    default_message = "Invalid API key"


class ExpiredKey(Unauthorized):
    """The key is past its `expires_at`."""

    code = "EXPIRED_KEY"
    default_message = "API key has expired"


class InsufficientScope(Unauthorized):
    """The key lacks the scope this endpoint needs."""

    code = "INSUFFICIENT_SCOPE"
    default_message = "API key lacks the required scope"


class BillingError(ServiceError):
    """The company cannot pay for what it asked for (suspended, or balance below the minimum)."""

    status = 402
    code = "BILLING_ERROR"
    default_message = "Insufficient credits"


class NotFound(ServiceError):
    """No such resource in the caller's company (another company's ids look exactly like this)."""

    status = 404
    code = "NOT_FOUND"
    default_message = "Not found"


class MethodNotAllowed(ServiceError):
    """The path exists but not with this method."""

    status = 405
    code = "METHOD_NOT_ALLOWED"
    default_message = "Method not allowed"

    def __init__(self, allowed: Sequence[str], message: str | None = None) -> None:
        super().__init__(message)
        self.allowed = sorted(allowed)

    def headers(self) -> Mapping[str, str]:
        return {"Allow": ", ".join(self.allowed)}


class IdempotencyKeyInUse(ServiceError):
    """Another request with this `Idempotency-Key` is still being processed."""

    status = 409
    code = "IDEMPOTENCY_KEY_IN_USE"
    default_message = "A request with this Idempotency-Key is still in progress"


class PayloadTooLarge(ServiceError):
    """The request body exceeds the configured limit (bytes)."""

    status = 413
    code = "PAYLOAD_TOO_LARGE"
    default_message = "Request body too large"


class UnsupportedMediaType(ServiceError):
    """A body was sent with a content type other than JSON."""

    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"
    default_message = "Request body must be application/json"


class Unprocessable(ServiceError):
    """Well-formed, but the server will not do it."""

    status = 422
    code = "UNPROCESSABLE"
    default_message = "Unprocessable request"


class IdempotencyKeyReused(Unprocessable):
    """The `Idempotency-Key` was used before with a different request."""

    code = "IDEMPOTENCY_KEY_REUSED"
    default_message = "Idempotency-Key was already used with a different request"


class ModeNotSupported(Unprocessable):
    """Only `mode: "text"` runs exist; voice is reserved."""

    code = "MODE_NOT_SUPPORTED"
    default_message = "Only text mode is supported"


class FlowExecutionUnsupported(Unprocessable):
    """Flow agents cannot be run until the flow runtime exists."""

    code = "FLOW_EXECUTION_UNSUPPORTED"
    default_message = "Running flow agents is not supported yet"


class RateLimited(ServiceError):
    """Too many requests for this key in the current window; retry after `retry_after_s` seconds."""

    status = 429
    code = "RATE_LIMIT"
    default_message = "Rate limit exceeded"

    def __init__(self, retry_after_s: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, retry_after_s)

    def headers(self) -> Mapping[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class Unavailable(ServiceError):
    """A dependency (the database) is unreachable right now; the client may retry."""

    status = 503
    code = "UNAVAILABLE"
    default_message = "Service temporarily unavailable"

    def headers(self) -> Mapping[str, str]:
        return {"Retry-After": "1"}
