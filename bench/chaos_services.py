"""The chaos suite's services, all its own and all breakable: a PostgreSQL server in a temporary
directory that can crash and come back on the same data and port, a Kafka broker that restarts
on its own storage, and the `agent-eval` role processes, each of which can be killed with
SIGKILL and started again."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from bench.stack import ROOT, Processes, wait_ready
from service.local import pgbinaries, pgserver

sys.path.insert(0, str(ROOT / "scripts"))  # scripts/ is not a package
import localkafka

SHARED_SERVICES = Path(os.environ.get("AGENT_EVAL_SERVICES_DIR", ROOT / ".services")).resolve()


# --- PostgreSQL --------------------------------------------------------------------------------


@dataclass
class Database:
    """A PostgreSQL server under `base` (see service.local.pgserver) that can crash and recover."""

    base: Path
    settings: Mapping[str, str]
    server: pgserver.LocalPostgres

    @classmethod
    def start(cls, base: Path, settings: Mapping[str, str]) -> Database:
        return cls(base, settings, pgserver.start(base, settings=settings))

    def url(self, database: str = pgserver.SUPERUSER) -> str:
        return self.server.url(database)

    def crash(self) -> None:
        """SIGKILL the postmaster and every backend at once, as a crash would: no shutdown
        checkpoint, and whatever WAL was not yet written to the OS is gone."""
        postmaster = self.server.pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(postmaster, signal.SIGSTOP)  # it forks no new backend while we list them
        victims = [*child_pids(postmaster), postmaster]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(running(pid) for pid in victims) and time.monotonic() < deadline:
            time.sleep(0.02)
        # The lock file is stale now. PostgreSQL would ignore it, unless init has not yet reaped
        # the dead postmaster: a zombie still passes its "is that postmaster alive" check.
        (Path(self.server.data_dir) / "postmaster.pid").unlink(missing_ok=True)

    def recover(self) -> None:
        """Start again on the same data directory and port; PostgreSQL replays its WAL first."""
        server = self.server
        install = pgbinaries.Install(server.kind, Path(server.bin_dir), server.major)
        options = {
            **self.settings,
            "port": str(server.port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": "",
            "timezone": "UTC",
        }
        args = " ".join(f"-c {key}={value}" for key, value in options.items())
        data_dir = Path(server.data_dir)
        log = data_dir / "server.log"
        pgbinaries.pg_ctl(install, data_dir, ["-w", "-t", "120", "-l", str(log), "-o", args, "start"])
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
        self.server = replace(server, pid=pid)
        pgserver.state_path(self.base).write_text(json.dumps(asdict(self.server)))

    def stop(self) -> None:
        pgserver.stop(self.base)


def running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def child_pids(parent: int) -> list[int]:
    """The processes whose parent is `parent` (PostgreSQL's backends and helpers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(entry.name))
    return found


# --- Kafka -------------------------------------------------------------------------------------


@dataclass
class Broker:
    """A broker of our own under `base` (restarting the shared one would break whoever else uses
    it); its jars come from the cache `scripts/services up` fills."""

    layout: localkafka.Layout
    bootstrap: str

    @classmethod
    def start(cls, base: Path, say: Callable[[str], None]) -> Broker:
        shared = localkafka.Layout(SHARED_SERVICES)
        localkafka.ensure_jars(shared, say)
        layout = localkafka.Layout(base)
        layout.home.mkdir(parents=True, exist_ok=True)
        layout.lib.symlink_to(shared.lib, target_is_directory=True)
        return cls(layout, localkafka.start(layout, say))

    def restart(self, *, hard: bool) -> None:
        localkafka.restart(self.layout, hard=hard)

    def stop(self) -> None:
        localkafka.stop(self.layout)


# --- the role processes ------------------------------------------------------------------------

ROLE_ARGV: Mapping[str, tuple[str, ...]] = {
    "gateway": ("serve",),
    "relay": ("relay",),
    "executor": ("consume", "executor"),
    "scorer": ("consume", "scorer"),
    "biller": ("consume", "biller"),
}


@dataclass
class Member:
    """One role process; each start is a new incarnation with a log of its own."""

    role: str
    index: int
    health_url: str
    env: dict[str, str]
    incarnation: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"{self.role}-{self.index}"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Fleet:
    """The role processes of one chaos run, started with the benchmarks' `Processes`."""

    processes: Processes
    members: list[Member] = field(default_factory=list)

    def add(self, role: str, index: int, health_url: str, env: Mapping[str, str]) -> None:
        self.members.append(Member(role, index, health_url, dict(env)))

    def start(self, member: Member) -> None:
        member.incarnation += 1
        name = f"{member.name}.{member.incarnation}"
        member.process = self.processes.start(name, *ROLE_ARGV[member.role], env=member.env)

    def last_words(self, member: Member, lines: int = 4) -> str:
        """The last lines the member's current incarnation wrote (why it exited, say)."""
        log = self.processes.logs / f"{member.name}.{member.incarnation}.log"
        with contextlib.suppress(OSError):
            return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
        return ""

    def kill(self, member: Member) -> None:
        """SIGKILL the member's process group and reap it."""
        process = member.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)

    def running(self, role: str) -> list[Member]:
        return [m for m in self.members if m.role == role and m.running()]

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        for member in self.members:
            wait_ready(member.health_url, timeout_s)

    def kill_all(self) -> None:
        for member in self.members:
            self.kill(member)
