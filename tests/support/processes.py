"""Spawning helper processes: each in its own process group, always killed at teardown."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AGENT_EVAL = str(Path(sys.executable).parent / "agent-eval")


class Spawned:
    """A child process whose combined output is collected line by line in the background."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self.argv = list(argv)
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            self.argv,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
            cwd=ROOT,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def find(self, needle: str) -> str | None:
        """The first output line containing `needle`, if any yet."""
        with self._lock:
            return next((line for line in self.lines if needle in line), None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def wait(self, timeout_s: float = 30.0) -> int:
        code = self.proc.wait(timeout_s)
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        """SIGKILL the whole process group (if still running) and release the pipe."""
        if self.proc.poll() is None:
            self.signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextlib.contextmanager
def spawned(argv: Sequence[str], env: Mapping[str, str]) -> Iterator[Spawned]:
    child = Spawned(argv, env)
    try:
        yield child
    finally:
        child.kill()
