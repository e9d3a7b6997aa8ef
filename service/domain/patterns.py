"""Regular expressions for assertions and scripted rules: RE2, so no pattern can hang the scorer.

RE2 runs in time linear in the input and rejects what it cannot do that way (backreferences,
lookaround); a pattern is checked with the same engine and options that will run it.
Matching is case-insensitive; `(?-i:…)` inside a pattern turns that off for a part. Assertions
search the whole agent transcript with `.` matching a newline as well (see `transcript_pattern`);
`(?-s:…)` turns that off for a part.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import re2

from service.core.errors import PatternError

MAX_PROGRAM_BYTES = 8 << 20


@dataclass(frozen=True)
class Match:
    start: int
    end: int
    text: str


class Pattern:
    """A compiled, case-insensitive RE2 pattern; with `dotall`, `.` also matches a newline."""

    def __init__(self, source: str, *, dotall: bool = False) -> None:
        options = re2.Options()
        options.case_sensitive = False
        options.dot_nl = dotall
        options.log_errors = False
        options.max_mem = MAX_PROGRAM_BYTES
        try:
            self._regexp = re2.compile(source, options)
        except re2.error as exc:
            raise PatternError(_message(exc)) from exc
        self.source = source

    def search(self, text: str) -> Match | None:
        """The first match anywhere in `text`, or None."""
        found = self._regexp.search(text)
        if found is None:
            return None
        start, end = found.span()
        return Match(int(start), int(end), str(found.group()))


@lru_cache(maxsize=4096)
def compile_pattern(source: str) -> Pattern:
    """Compile (once per distinct pattern; compiled patterns are immutable) or raise PatternError."""
    return Pattern(source)


@lru_cache(maxsize=4096)
def transcript_pattern(source: str) -> Pattern:
    """An assertion pattern as `must_say` / `must_not_say` run it on the joined agent transcript:
    case-insensitive and dotall, so `refund.*goodbye` reaches across the newline between two
    messages (or inside one). Compiled once per distinct pattern, or raises PatternError."""
    return Pattern(source, dotall=True)


def pattern_error(source: str, *, dotall: bool = False) -> str | None:
    """Why `source` does not compile (with the options it will run with), or None when it does."""
    try:
        Pattern(source, dotall=dotall)
    except PatternError as exc:
        return str(exc)
    return None


def _message(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else exc
    text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
    return f"not a valid RE2 pattern: {text}"
