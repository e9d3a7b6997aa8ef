"""Log lines captured as production renders them: JSON, through `configure_logging`, so every
line carries what structlog merges into it (the bound context) and standard-library records
(httpx, openai) are rendered by the same chain."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import structlog

from service.core.logging import configure_logging


class LogLines:
    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    def all(self) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = [json.loads(line) for line in self._stream.getvalue().splitlines()]
        return lines

    def named(self, event: str) -> list[dict[str, Any]]:
        """The lines whose event (structlog's name, or a library's message) is `event`."""
        return [line for line in self.all() if line.get("event") == event]

    def containing(self, text: str) -> list[dict[str, Any]]:
        return [line for line in self.all() if text in str(line.get("event"))]

    def starting(self, prefix: str) -> list[dict[str, Any]]:
        return [line for line in self.all() if str(line.get("event")).startswith(prefix)]


@contextlib.contextmanager
def captured_logs(level: str = "info") -> Iterator[LogLines]:
    """Log as the roles do at `level`, into a buffer; the previous logging setup afterwards."""
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, root_level = list(root.handlers), root.level
    levels = {
        name: logger.level
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    configure_logging(level, "json", stream=stream)
    try:
        yield LogLines(stream)
    finally:
        root.handlers[:] = handlers
        root.setLevel(root_level)
        for name, logger in list(logging.root.manager.loggerDict.items()):
            if isinstance(logger, logging.Logger):
                logger.setLevel(levels.get(name, logging.NOTSET))
        structlog.reset_defaults()
