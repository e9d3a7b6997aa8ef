"""`agent-eval dev` as a child process in tests, and the README's shell blocks run against it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.support.processes import Spawned
from tests.support.waiting import eventually_sync

START_TIMEOUT_S = 90.0
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_sh(marker: str) -> str:
    """The shell block (`sh`, or `bash` when it needs bash) after `<!-- marker -->` in the README."""
    match = re.search(rf"<!-- {marker} -->\n```(?:sh|bash)\n(.*?)```", README.read_text(), re.DOTALL)
    assert match, f"README.md has no {marker} block"
    return match.group(1)


def bash(script: str, env: dict[str, str], *, cwd: Path | None = None, expect: int = 0) -> str:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=cwd,
    )
    assert done.returncode == expect, done.stdout + done.stderr
    return done.stdout


def base_url(child: Spawned) -> str:
    line = eventually_sync(
        lambda: child.find("serving http://") or (None if child.proc.poll() is None else "exited"),
        timeout_s=START_TIMEOUT_S,
        what="dev to serve",
    )
    match = re.search(r"serving (http://\S+)", line or "")
    assert match, child.output()
    return match.group(1)
