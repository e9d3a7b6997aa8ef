"""The ServiceError tree: statuses, codes, JSON bodies and headers, and the tree its docstring draws."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from service.core import errors
from service.core.errors import (
    BillingError,
    ExpiredKey,
    FieldError,
    FlowInvalid,
    InsufficientScope,
    InvalidKey,
    MethodNotAllowed,
    MissingKey,
    NotFound,
    RateLimited,
    ServiceError,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)

# `├── Name   400 CODE   (+ details)`: the column where the name starts gives its depth.
_TREE_LINE = re.compile(
    r"^(?P<indent>[│├└─ ]*)(?P<name>[A-Z]\w+)\s+(?P<status>\d{3})(?:\s+(?P<code>[A-Z_]{2,}))?"
)


@dataclass(frozen=True)
class Documented:
    name: str
    depth: int
    status: int
    code: str | None
    parent: str | None


def _documented_tree() -> list[Documented]:
    entries: list[Documented] = []
    stack: list[Documented] = []
    for line in (errors.__doc__ or "").splitlines():
        match = _TREE_LINE.match(line)
        if match is None:
            continue
        depth = len(match["indent"])
        while stack and stack[-1].depth >= depth:
            stack.pop()
        entry = Documented(
            name=match["name"],
            depth=depth,
            status=int(match["status"]),
            code=match["code"],
            parent=stack[-1].name if stack else None,
        )
        entries.append(entry)
        stack.append(entry)
    return entries


def _defined_error_classes() -> list[type[ServiceError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, ServiceError) and cls.__module__ == errors.__name__
    ]


def _instance_of(cls: type[ServiceError]) -> ServiceError:
    """An instance of any class of the tree (a few take required arguments)."""
    if issubclass(cls, FlowInvalid):
        return cls([{"path": "nodes.0", "message": "unreachable"}])
    if issubclass(cls, MethodNotAllowed):
        return cls(["GET"])
    if issubclass(cls, RateLimited):
        return cls(5)
    return cls()


DOCUMENTED = _documented_tree()
ERROR_CLASSES = _defined_error_classes()


def test_the_docstring_tree_names_every_error_class_of_the_module() -> None:
    assert len(DOCUMENTED) >= 10
    assert sorted(d.name for d in DOCUMENTED) == sorted(cls.__name__ for cls in ERROR_CLASSES)


@pytest.mark.parametrize("entry", DOCUMENTED, ids=lambda d: d.name)
def test_each_class_has_the_status_code_and_parent_its_docstring_line_says(entry: Documented) -> None:
    cls = getattr(errors, entry.name)

    assert cls.status == entry.status
    if entry.code is not None:
        assert cls.code == entry.code
    if entry.parent is None:
        assert cls is ServiceError
    else:
        assert cls.__bases__ == (getattr(errors, entry.parent),)


def test_every_error_class_has_a_distinct_status_and_code_pair() -> None:
    pairs = [(cls.status, cls.code) for cls in ERROR_CLASSES]

    assert len(set(pairs)) == len(pairs)


def test_every_error_class_has_a_distinct_code() -> None:
    codes = [cls.code for cls in ERROR_CLASSES]

    assert len(set(codes)) == len(codes)


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_the_body_carries_the_message_and_code(cls: type[ServiceError]) -> None:
    error = _instance_of(cls)

    body = error.body()

    assert body["error"] == error.message == cls.default_message
    assert body["code"] == cls.code
    assert str(error) == cls.default_message


def test_a_given_message_replaces_the_default() -> None:
    error = NotFound("Run 42 not found")

    assert error.body() == {"error": "Run 42 not found", "code": "NOT_FOUND"}
    assert str(error) == "Run 42 not found"


def test_an_empty_message_falls_back_to_the_default() -> None:
    assert BillingError("").message == "Insufficient credits"


def test_an_unknown_failure_is_a_500_internal() -> None:
    error = ServiceError()

    assert (error.status, error.code) == (500, "INTERNAL")
    assert error.body() == {"error": "Internal server error", "code": "INTERNAL"}
    assert error.headers() == {}


def test_a_validation_failure_lists_each_offending_field() -> None:
    error = ValidationFailed(
        fields=[
            FieldError("body.tools.0.name", "Field required", "missing"),
            FieldError("query.limit", "too big"),
        ]
    )

    assert error.body() == {
        "error": "Request validation failed",
        "code": "VALIDATION_ERROR",
        "fields": [
            {"field": "body.tools.0.name", "message": "Field required", "type": "missing"},
            {"field": "query.limit", "message": "too big", "type": "invalid"},
        ],
    }


def test_a_validation_failure_without_fields_has_an_empty_list() -> None:
    assert ValidationFailed("bad JSON").body()["fields"] == []


def test_an_invalid_flow_lists_its_issues_instead_of_fields() -> None:
    error = FlowInvalid([{"node": "start", "message": "no outgoing edge", "index": 0, "fatal": True}])

    assert error.status == 400
    assert error.body() == {
        "error": "flow_config is invalid",
        "code": "FLOW_INVALID",
        "issues": [{"node": "start", "message": "no outgoing edge", "index": 0, "fatal": True}],
    }


def test_an_invalid_flow_keeps_a_copy_of_the_issues_it_was_given() -> None:
    issue: dict[str, str | int | float | bool | None] = {"node": "a"}
    error = FlowInvalid([issue])

    issue["node"] = "changed"

    assert error.body()["issues"] == [{"node": "a"}]


@pytest.mark.parametrize("cls", [Unauthorized, MissingKey, InvalidKey, ExpiredKey, InsufficientScope])
def test_every_401_asks_for_a_bearer_key(cls: type[Unauthorized]) -> None:
    error = cls()

    assert error.status == 401
    assert error.headers() == {"WWW-Authenticate": 'Bearer realm="agent-eval"'}


def test_a_wrong_method_lists_the_allowed_methods_sorted() -> None:
    error = MethodNotAllowed(["POST", "GET", "DELETE"])

    assert error.status == 405
    assert error.headers() == {"Allow": "DELETE, GET, POST"}


@pytest.mark.parametrize(("retry_after_s", "header"), [(30, "30"), (1, "1"), (0, "1"), (-7, "1")])
def test_rate_limiting_says_when_to_retry_at_least_one_second_ahead(retry_after_s: int, header: str) -> None:
    error = RateLimited(retry_after_s)

    assert (error.status, error.code) == (429, "RATE_LIMIT")
    assert error.headers() == {"Retry-After": header}
    assert error.retry_after_s == int(header)


def test_an_unavailable_dependency_asks_the_client_to_retry() -> None:
    error = Unavailable()

    assert (error.status, error.code) == (503, "UNAVAILABLE")
    assert error.headers() == {"Retry-After": "1"}


@pytest.mark.parametrize(
    "cls",
    [
        cls
        for cls in ERROR_CLASSES
        if not issubclass(cls, Unauthorized | MethodNotAllowed | RateLimited | Unavailable)
    ],
    ids=lambda c: c.__name__,
)
def test_other_errors_send_no_extra_headers(cls: type[ServiceError]) -> None:
    assert _instance_of(cls).headers() == {}


# --- the whole tree: every error the service raises on purpose --------------------------------

_ANY_LINE = re.compile(r"^(?P<indent>[│├└─ ]*)(?P<name>[A-Z]\w+)\b")


def _whole_tree() -> dict[str, str | None]:
    """Each class the docstring draws, with its parent (None for the root)."""
    doc = errors.__doc__ or ""
    lines = doc[doc.index("\nAgentEvalError") + 1 :].splitlines()
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in lines:
        match = _ANY_LINE.match(line)
        if match is None:
            break
        depth = len(match["indent"])
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[match["name"]] = stack[-1][1] if stack else None
        stack.append((depth, match["name"]))
    return parents


def test_every_error_of_the_service_is_a_branch_of_the_one_tree_its_docstring_draws() -> None:
    drawn = _whole_tree()
    defined = {
        cls.__name__: cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.AgentEvalError) and cls.__module__ == errors.__name__
    }

    assert sorted(drawn) == sorted(defined)
    for name, parent in drawn.items():
        ours = [base for base in defined[name].__bases__ if base.__module__ == errors.__name__]
        assert [base.__name__ for base in ours] == ([] if parent is None else [parent]), name


def test_no_module_of_the_service_defines_an_exception_outside_the_tree() -> None:
    roots = [Path(__file__).resolve().parents[2] / part for part in ("service", "consumers", "schemas")]
    stray = [
        f"{path.name}: {match.group(0)}"
        for root in roots
        for path in root.rglob("*.py")
        if path.name != "errors.py"
        for match in re.finditer(
            r"^class \w+\((?:\w+Error|Exception|BaseException)\b.*$", path.read_text(), re.M
        )
    ]

    assert stray == []
