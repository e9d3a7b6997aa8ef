"""The one error tree. Every error the service raises on purpose is an `AgentEvalError`; the
gateway's error middleware maps the `ServiceError` branch to HTTP once, and nothing below the
handlers raises HTTP. The other branches say what failed, so callers branch on our types (never
on a driver's): a `DependencyError` is worth waiting out, `WorkStopped` ends a unit of work
without failing it, a `SetupError` stops a command before it starts.

AgentEvalError
├── ServiceError                     500 INTERNAL       (what a client sees)
│   ├── ValidationFailed             400 VALIDATION_ERROR   (+ fields)
│   │   ├── FlowInvalid              400 FLOW_INVALID       (+ issues)
│   │   ├── SuiteEmpty               400 SUITE_EMPTY
│   │   └── NothingToRerun           400 NOTHING_TO_RERUN
│   ├── Unauthorized                 401
│   │   ├── MissingKey               401 MISSING_KEY
│   │   ├── InvalidKey               401 INVALID_KEY
│   │   ├── ExpiredKey               401 EXPIRED_KEY
│   │   ├── InsufficientScope        401 INSUFFICIENT_SCOPE
│   │   └── SignInRequired           401 SIGN_IN_REQUIRED   (the dashboard redirects to sign-in)
│   ├── BillingError                 402 BILLING_ERROR
│   ├── CsrfRejected                 403 CSRF_REJECTED      (a dashboard form without its token)
│   ├── NotFound                     404 NOT_FOUND
│   ├── MethodNotAllowed             405 METHOD_NOT_ALLOWED
│   ├── IdempotencyKeyInUse          409 IDEMPOTENCY_KEY_IN_USE
│   ├── PayloadTooLarge              413 PAYLOAD_TOO_LARGE
│   ├── UnsupportedMediaType         415 UNSUPPORTED_MEDIA_TYPE
│   ├── Unprocessable                422
│   │   ├── IdempotencyKeyReused     422 IDEMPOTENCY_KEY_REUSED
│   │   ├── ModeNotSupported         422 MODE_NOT_SUPPORTED
│   │   ├── NotAFlowAgent            422 NOT_A_FLOW_AGENT
│   │   └── ModelNotConfigured       422 MODEL_NOT_CONFIGURED
│   ├── RateLimited                  429 RATE_LIMIT         (+ Retry-After)
│   └── Unavailable                  503 UNAVAILABLE        (a dependency is down; retry)
│       └── NotConfigured            503 NOT_CONFIGURED     (an operator must set something first)
├── DependencyError                  a dependency failed (the gateway answers 503 for the transient ones)
│   ├── DatabaseError                raised by `service.db` in place of driver errors
│   │   ├── DatabaseUnavailable      the connection was lost or refused: retry
│   │   ├── ConstraintViolation      a write broke a constraint (`constraint` names it)
│   │   ├── InvalidText              text PostgreSQL cannot store (NUL)
│   │   ├── LockTimeout              a lock or statement timeout fired
│   │   └── LedgerRefused            the ledger refused an entry
│   │       ├── InsufficientBalance  it would make a balance negative
│   │       ├── AlreadyCharged       the run has its charge already
│   │       └── UnknownCompany       no such company
│   ├── BusError                     the bus could not publish, fetch or commit
│   │   └── CommitFailed             a rebalance: the offsets were not committed
│   ├── ProviderError                a model call failed after the provider's retries (`code`)
│   └── StatusFailure                one try of a model call answered non-2xx (retried, or a ProviderError)
├── OutboundRefused                  the SSRF guard refused a user-given URL
│   └── ForbiddenAddress             every address the name resolves to is forbidden (an OSError too)
├── WorkStopped                      a unit of work stops without failing
│   ├── LeaseLost                    another executor holds the run now: drop it, write nothing
│   ├── BudgetSpent                  the run's wall-clock budget ran out mid-call
│   └── Abandoned                    the process is stopping: leave the record uncommitted
├── RemoteError                      the agent-eval server answered a client command with an error
├── PatternError                     a regex does not compile in RE2 (a ValueError too)
├── FlowUnreadable                   a stored flow no longer reads as a graph (its issues, joined)
├── ChildrenFailed                   a supervised child process kept dying
└── SetupError                       a command cannot start
    ├── UsageError                   a client command's arguments cannot be run
    ├── SettingsError                a setting it needs is missing or unusable
    │   └── DatabaseRefused          PostgreSQL answers but refuses us (credentials, database name)
    ├── MigrationError               migration files and database disagree
    └── LocalPostgresError           the local PostgreSQL cannot be found, started or stopped
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, Literal

JsonScalar = str | int | float | bool | None


class AgentEvalError(Exception):
    """Root of every error this service raises on purpose."""


class ServiceError(AgentEvalError):
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


class SuiteEmpty(ValidationFailed):
    """The suite has no live cases, so running it would run nothing."""

    code = "SUITE_EMPTY"
    default_message = "The suite has no cases"


class NothingToRerun(ValidationFailed):
    """A re-run of failed cases found none (every case passed, or they were deleted)."""

    code = "NOTHING_TO_RERUN"
    default_message = "No case of this suite run needs to run again"


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


class SignInRequired(Unauthorized):
    """A dashboard page without a valid session: the dashboard answers with its sign-in page."""

    code = "SIGN_IN_REQUIRED"
    default_message = "Sign in with an API key"


class CsrfRejected(ServiceError):
    """A dashboard form arrived without the token its page carried (or from another site)."""

    status = 403
    code = "CSRF_REJECTED"
    default_message = (
        "This form has expired or did not come from this dashboard; reload the page and try again"
    )


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


class NotAFlowAgent(Unprocessable):
    """A flow simulation was asked of an agent that is not a flow agent."""

    code = "NOT_A_FLOW_AGENT"
    default_message = "Only flow agents have a flow to test"


class ModelNotConfigured(Unprocessable):
    """A run would need a model no configured provider can serve (the message names the model and
    the setting to set), so it is refused before anything is written."""

    code = "MODEL_NOT_CONFIGURED"
    default_message = "A model this run needs has no configured provider"


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


class NotConfigured(Unavailable):
    """The feature needs a setting the operator has not given (the message names it)."""

    code = "NOT_CONFIGURED"
    default_message = "This feature is not configured on this server"

    def headers(self) -> Mapping[str, str]:
        return {}


# --- dependencies ------------------------------------------------------------------------------


class DependencyError(AgentEvalError):
    """A dependency (database, bus, model provider) failed; transient failures are waited out."""


class DatabaseError(DependencyError):
    """Base of the errors the db layer raises to the code above it."""


class DatabaseUnavailable(DatabaseError):
    """The connection was lost or could not be made; the operation may be retried."""


class ConstraintViolation(DatabaseError):
    """A write broke a constraint; `constraint` names it (e.g. `companies_balance_cents_check`)."""

    def __init__(self, message: str, constraint: str | None, sqlstate: str) -> None:
        super().__init__(message)
        self.constraint = constraint
        self.sqlstate = sqlstate


class InvalidText(DatabaseError):
    """Text the database cannot store (PostgreSQL refuses NUL, `\u0000`, in text and jsonb)."""


class LockTimeout(DatabaseError):
    """A lock or statement timeout fired; the caller decides whether to retry."""


class LedgerRefused(DatabaseError):
    """The ledger refused an entry; the transaction must roll back."""


class InsufficientBalance(LedgerRefused):
    """The entry would make the company's balance negative."""


class AlreadyCharged(LedgerRefused):
    """The run has its charge already; the transaction must change nothing."""


class UnknownCompany(LedgerRefused):
    """The entry names a company that does not exist."""


class BusError(DependencyError):
    """The bus could not do what was asked (broker unreachable, topic missing)."""


class CommitFailed(BusError):
    """The group rebalanced and the offsets were not committed; the records will be redelivered."""


ProviderCode = Literal[
    "PROVIDER_TIMEOUT",
    "PROVIDER_RATE_LIMITED",
    "PROVIDER_UNAVAILABLE",
    "PROVIDER_REJECTED",
    "PROVIDER_BAD_RESPONSE",
    "PROVIDER_UNKNOWN",
    "AGENT_HTTP_STATUS",
    "AGENT_HTTP_TIMEOUT",
    "AGENT_HTTP_UNREACHABLE",
    "AGENT_HTTP_REFUSED",
    "AGENT_BAD_RESPONSE",
    "FLOW_DEAD_END",
]


class ProviderError(DependencyError):
    """A model call failed after the provider's own retries; `code` says how."""

    def __init__(self, code: ProviderCode, message: str) -> None:
        super().__init__(message)
        self.code = code


# --- outbound calls ----------------------------------------------------------------------------


class OutboundRefused(AgentEvalError):
    """The URL points at an address outbound calls may not reach."""


class ForbiddenAddress(OutboundRefused, OSError):
    """Every address a name resolves to is forbidden (raised at connect time, in the resolver;
    an OSError, so the HTTP client reports it as a connection error)."""


# --- work that stops ---------------------------------------------------------------------------


class WorkStopped(AgentEvalError):
    """A unit of work (a run's conversation, a record) stops without having failed."""


class LeaseLost(WorkStopped):
    """Another executor owns the run now (or it ended): drop it without writing."""


class BudgetSpent(WorkStopped):
    """The run's wall-clock budget ran out while a model or tool call was in flight."""


class Abandoned(WorkStopped):
    """Raised by a handler that gives a record up because the process is stopping: the record
    stays uncommitted (the next member of the group receives it) and nothing is logged as failed."""


# --- input the domain refuses, and commands that cannot start ----------------------------------


class RemoteError(AgentEvalError):
    """The server a client command talks to answered with an error (or could not be reached);
    `status` is the HTTP status (0 when there was no answer) and `code` the error's code."""

    def __init__(self, message: str, *, status: int = 0, code: str = "UNREACHABLE") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class PatternError(AgentEvalError, ValueError):
    """The pattern does not compile in RE2; the message says why."""


class FlowUnreadable(AgentEvalError, ValueError):
    """A flow agent's stored graph has issues, so a run cannot play it (the run fails FLOW_INVALID)."""


class ChildrenFailed(AgentEvalError):
    """A child process kept dying, so its supervisor (`agent-eval dev`) stops rather than run without it."""


class StatusFailure(DependencyError):
    """One try of a model call was answered with a status other than 2xx; the provider retries
    it or turns it into a ProviderError, so it never leaves the provider."""

    def __init__(self, status: int, raw: bytes, retry_after: float | None, retryable: bool) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.raw = raw
        self.retry_after = retry_after  # seconds the server asked us to wait, if it said
        self.retryable = retryable


class SetupError(AgentEvalError):
    """A command cannot start: its configuration, database or local services are not usable."""


class UsageError(SetupError):
    """A client command's arguments cannot be run (`agent-eval test` exits 2)."""


class SettingsError(SetupError):
    """A setting the chosen command needs is missing or unusable."""


class DatabaseRefused(SettingsError):
    """PostgreSQL answered and refused the connection for good (a wrong password or user, a
    database that does not exist): waiting will not help, the URL must change."""


class MigrationError(SetupError):
    """The migration files and the database disagree (edited, missing or misnamed files)."""


class LocalPostgresError(SetupError):
    """The local PostgreSQL server could not be found, initialised, started or stopped."""
