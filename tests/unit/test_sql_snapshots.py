"""Every SQL statement of `service.db`, rendered as the database receives it, is kept in
`tests/sql_snapshots/<module>.sql`. Statements assembled in code (the run transitions, the
common round, event numbering) then show up whole in review: a change to fencing or event
numbering is a readable diff of these files, and this test fails until the snapshot is updated
(`AGENT_EVAL_UPDATE_SQL_SNAPSHOTS=1 pytest tests/unit/test_sql_snapshots.py`)."""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import service.db

SNAPSHOTS = Path(__file__).resolve().parents[1] / "sql_snapshots"
_SQL = re.compile(r"^\s*(WITH|SELECT|INSERT|UPDATE|DELETE|LISTEN|UNLISTEN|SET|CREATE)\b", re.IGNORECASE)
UPDATE = os.environ.get("AGENT_EVAL_UPDATE_SQL_SNAPSHOTS") == "1"


def _statements(module: object) -> Iterator[tuple[str, str]]:
    """(name, statement) for every module-level SQL string, and SQL strings held in dicts."""
    for name, value in sorted(vars(module).items()):
        if isinstance(value, str) and _SQL.match(value):
            yield name, value
        elif isinstance(value, dict):
            for key, item in sorted(value.items(), key=lambda kv: str(kv[0])):
                if isinstance(item, str) and _SQL.match(item):
                    yield f"{name}[{key!r}]", item


def _render(module_name: str) -> str:
    module = importlib.import_module(module_name)
    blocks = [f"-- {name}\n{statement.strip()}\n" for name, statement in _statements(module)]
    return "\n".join(blocks)


MODULES = sorted(
    info.name
    for info in pkgutil.iter_modules(service.db.__path__, "service.db.")
    if _render(info.name)  # modules with at least one statement
)


def test_the_snapshots_cover_the_modules_that_hold_sql() -> None:
    assert "service.db.claims" in MODULES
    assert "service.db.rounds" in MODULES
    kept = sorted(path.stem for path in SNAPSHOTS.glob("*.sql"))
    assert kept == sorted(name.rsplit(".", 1)[1] for name in MODULES)


@pytest.mark.parametrize("module_name", MODULES)
def test_sql_is_what_the_snapshot_shows(module_name: str) -> None:
    path = SNAPSHOTS / f"{module_name.rsplit('.', 1)[1]}.sql"
    rendered = _render(module_name)
    if UPDATE:
        path.write_text(rendered)
    assert path.exists(), f"no snapshot for {module_name}: run with AGENT_EVAL_UPDATE_SQL_SNAPSHOTS=1"
    assert rendered == path.read_text(), f"{module_name} changed its SQL: review and update the snapshot"


def test_no_rendered_statement_still_holds_a_template_placeholder() -> None:
    for path in SNAPSHOTS.glob("*.sql"):
        assert not re.search(r"\{\w*\}", path.read_text()), path.name
