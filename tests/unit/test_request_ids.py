"""X-Request-ID: a sane caller id is kept, anything else is replaced by a fresh 32-hex id."""

from __future__ import annotations

import re

import pytest

from service.gateway.middlewares import request_id_for

_FRESH = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize(
    "header",
    ["abc", "req-123", "0190b6a0-0000-7000-8000-000000000001", "svc.api:42_retry", "x", "A" * 128],
)
def test_a_sane_caller_id_is_kept(header: str) -> None:
    assert request_id_for(header) == header


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "A" * 129,
        "has space",
        "semi;colon",
        "slash/path",
        'quote"d',
        "tab\tin",
        "café",
        "<script>",
        "two\r\nlines",
    ],
)
def test_an_empty_long_or_odd_id_is_replaced_by_a_fresh_one(header: str | None) -> None:
    replaced = request_id_for(header)

    assert replaced != header
    assert _FRESH.fullmatch(replaced)


def test_fresh_ids_differ() -> None:
    assert request_id_for(None) != request_id_for(None)


def test_an_id_with_a_trailing_newline_is_replaced() -> None:
    assert request_id_for("abc\n") != "abc\n"
