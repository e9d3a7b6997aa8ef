"""Logging: JSON off a TTY, one renderer for structlog and the standard library, bound context."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from service.core.logging import bound_context, configure_logging, get_logger


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_off_a_tty_every_line_is_json_with_the_bound_context(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("info", "auto", stream=stream)
    with bound_context(request_id="req-1", run_id="run-9"):
        get_logger("test").info("run_claimed", attempt=2)
    logging.getLogger("aiokafka.consumer").warning("library says %s", "hello")
    ours, theirs = _lines(stream)
    assert ours["event"] == "run_claimed"
    assert (ours["request_id"], ours["run_id"], ours["attempt"], ours["level"]) == (
        "req-1",
        "run-9",
        2,
        "info",
    )
    assert str(ours["timestamp"]).endswith("Z")
    assert theirs["event"] == "library says hello"
    assert "request_id" not in theirs  # the context ended with the block


def test_levels_below_the_configured_one_are_dropped(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("warning", "json", stream=stream)
    get_logger("test").info("too_chatty")
    get_logger("test").warning("worth_seeing")
    assert [line["event"] for line in _lines(stream)] == ["worth_seeing"]


def test_console_format_is_not_json(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("info", "console", stream=stream)
    get_logger("test").info("hello_humans", who="you")
    text = stream.getvalue()
    assert "hello_humans" in text
    assert "who=you" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])
