"""Migration files on disk: naming, ordering, duplicates, and the digest that names the template DB."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from service.core.errors import MigrationError
from service.db.migrate import load_migrations, migrations_digest


def _write(directory: Path, files: dict[str, str]) -> Path:
    for name, sql in files.items():
        (directory / name).write_text(sql)
    return directory


def test_migrations_are_loaded_in_version_order(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {"0010_late.sql": "SELECT 10;", "0002_second.sql": "SELECT 2;", "0001_first.sql": "SELECT 1;"},
    )

    migrations = load_migrations(tmp_path)

    assert [(m.version, m.name, m.sql) for m in migrations] == [
        (1, "first", "SELECT 1;"),
        (2, "second", "SELECT 2;"),
        (10, "late", "SELECT 10;"),
    ]


def test_a_migrations_checksum_is_the_sha256_of_its_sql(tmp_path: Path) -> None:
    _write(tmp_path, {"0001_first.sql": "CREATE TABLE t (id int);"})

    (migration,) = load_migrations(tmp_path)

    assert migration.sha256 == hashlib.sha256(b"CREATE TABLE t (id int);").hexdigest()


def test_files_that_are_not_sql_are_ignored(tmp_path: Path) -> None:
    _write(tmp_path, {"0001_first.sql": "SELECT 1;", "README.md": "notes", "0002_draft.sql.bak": "SELECT 2;"})

    assert [m.version for m in load_migrations(tmp_path)] == [1]


def test_an_empty_directory_has_no_migrations(tmp_path: Path) -> None:
    assert load_migrations(tmp_path) == []


@pytest.mark.parametrize(
    "name", ["1_first.sql", "00001_first.sql", "0001-first.sql", "0001_First.sql", "0001_.sql", "first.sql"]
)
def test_a_misnamed_file_is_refused(tmp_path: Path, name: str) -> None:
    _write(tmp_path, {"0002_ok.sql": "SELECT 2;", name: "SELECT 1;"})

    with pytest.raises(MigrationError, match=r"is not named NNNN_name\.sql"):
        load_migrations(tmp_path)


def test_two_files_with_the_same_version_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, {"0001_first.sql": "SELECT 1;", "0001_other.sql": "SELECT 1;"})

    with pytest.raises(MigrationError, match="share version 1"):
        load_migrations(tmp_path)


def test_the_shipped_migrations_load_with_consecutive_versions() -> None:
    versions = [m.version for m in load_migrations()]

    assert versions == list(range(1, len(versions) + 1))
    assert versions


def test_the_digest_is_short_hex_and_stable(tmp_path: Path) -> None:
    _write(tmp_path, {"0001_first.sql": "SELECT 1;", "0002_second.sql": "SELECT 2;"})

    digest = migrations_digest(tmp_path)

    assert len(digest) == 12
    assert int(digest, 16) >= 0
    assert migrations_digest(tmp_path) == digest


def test_the_digest_depends_on_content_not_on_where_the_files_are(tmp_path: Path) -> None:
    files = {"0001_first.sql": "SELECT 1;", "0002_second.sql": "SELECT 2;"}
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()

    assert migrations_digest(_write(here, files)) == migrations_digest(_write(there, files))


def test_the_digest_changes_when_a_file_changes(tmp_path: Path) -> None:
    _write(tmp_path, {"0001_first.sql": "SELECT 1;", "0002_second.sql": "SELECT 2;"})
    before = migrations_digest(tmp_path)

    _write(tmp_path, {"0002_second.sql": "SELECT 2; -- edited"})

    assert migrations_digest(tmp_path) != before


def test_the_digest_changes_when_a_file_is_added(tmp_path: Path) -> None:
    _write(tmp_path, {"0001_first.sql": "SELECT 1;"})
    before = migrations_digest(tmp_path)

    _write(tmp_path, {"0002_second.sql": "SELECT 2;"})

    assert migrations_digest(tmp_path) != before


def test_the_digest_refuses_a_misnamed_file(tmp_path: Path) -> None:
    _write(tmp_path, {"1_first.sql": "SELECT 1;"})

    with pytest.raises(MigrationError):
        migrations_digest(tmp_path)
