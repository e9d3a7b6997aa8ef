"""The supervisor behind `--processes` (`service.runtime.children`), on real child processes: a
child that exits is restarted, one that keeps dying makes the supervisor give up (non-zero exit
of the command), stopping closes every child's stdin and waits for it to exit, and a Ctrl-C
that reaches a child (the terminal signals the whole process group) neither kills it while it
starts nor stops it."""

from __future__ import annotations

import asyncio
import signal
import sys

from service.runtime.children import SHIELDED, Launched, Supervisor, spawn
from tests.support.waiting import eventually

READS_STDIN = "import sys; sys.stdin.read(); print('stopped', flush=True)"


async def test_a_child_that_keeps_dying_is_restarted_then_the_supervisor_gives_up() -> None:
    started: list[int] = []

    async def launch(index: int) -> Launched:
        started.append(index)
        return Launched(await asyncio.create_subprocess_exec(sys.executable, "-c", "raise SystemExit(3)"))

    supervisor = Supervisor("test", 1, launch, restart_limit=3)
    kept = await asyncio.wait_for(supervisor.run(asyncio.Event()), 30)
    assert kept is False
    assert started == [0, 0, 0]  # started, restarted twice (after 0.5 s, then 1 s), then given up


async def test_stopping_closes_each_childs_stdin_and_waits_for_it_to_exit() -> None:
    processes: list[asyncio.subprocess.Process] = []

    async def launch(_: int) -> Launched:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", READS_STDIN, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        processes.append(process)
        return Launched(process)

    stop = asyncio.Event()
    supervisor = Supervisor("test", 2, launch)
    task = asyncio.create_task(supervisor.run(stop))
    await eventually(
        lambda: asyncio.sleep(0, len(supervisor.running)), until=lambda n: n == 2, what="2 children"
    )
    stop.set()
    assert await asyncio.wait_for(task, 30) is True
    assert [p.returncode for p in processes] == [0, 0]
    for process in processes:
        assert process.stdout is not None
        assert await process.stdout.read() == b"stopped\n"


async def test_a_child_that_exits_is_restarted_in_its_slot() -> None:
    started: list[int] = []

    async def launch(index: int) -> Launched:
        started.append(index)
        code = "raise SystemExit(1)" if started.count(index) == 1 and index == 1 else READS_STDIN
        return Launched(
            await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdin=asyncio.subprocess.PIPE)
        )

    stop = asyncio.Event()
    supervisor = Supervisor("test", 2, launch)
    task = asyncio.create_task(supervisor.run(stop))
    await eventually(
        lambda: asyncio.sleep(0, (started.count(1), len(supervisor.running))),
        until=lambda seen: seen == (2, 2),
        what="child 1 restarted",
    )
    stop.set()
    assert await asyncio.wait_for(task, 30) is True
    assert sorted(started) == [0, 1, 1]


async def test_a_child_is_born_with_sigint_and_sigterm_blocked() -> None:
    """The terminal's Ctrl-C reaches the whole process group; a child still importing must not
    die of it. Both signals wait, pending, until the child ignores them."""
    code = (
        "import os, signal\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "print(sorted(s.name for s in signal.sigpending()), flush=True)\n"
    )
    process = await spawn([sys.executable, "-c", code], stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    assert out.decode().strip() == "['SIGINT', 'SIGTERM']"
    assert not signal.pthread_sigmask(signal.SIG_BLOCK, []) & SHIELDED  # the parent's mask is back


async def test_a_ctrl_c_while_a_supervised_child_starts_is_ignored_and_stdin_still_stops_it() -> None:
    code = (
        "import asyncio, os, signal\n"
        "from service.runtime.supervised import stop_on_end_of_input\n"
        "async def main():\n"
        "    os.kill(os.getpid(), signal.SIGINT)  # arrives before the child ignores it\n"
        "    stop = await stop_on_end_of_input()\n"
        "    await asyncio.sleep(0.1)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)  # and after\n"
        "    print('started', sorted(s.name for s in signal.sigpending()), flush=True)\n"
        "    await stop.wait()\n"
        "    print('stopped', flush=True)\n"
        "asyncio.run(main())\n"
    )
    process = await spawn([sys.executable, "-c", code], stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    assert process.stdin is not None
    assert await asyncio.wait_for(process.stdout.readline(), 30) == b"started []\n"
    process.stdin.close()
    assert await asyncio.wait_for(process.stdout.readline(), 30) == b"stopped\n"
    assert await asyncio.wait_for(process.wait(), 30) == 0


async def test_an_agent_eval_child_interrupted_while_importing_runs_to_its_own_end() -> None:
    """`agent-eval consume <role> --supervised` killed by neither signal during its start-up: an
    unknown role is still reported and exits 2, not a KeyboardInterrupt traceback."""
    process = await spawn(
        [sys.executable, "-m", "service.cli", "consume", "no-such-role", "--supervised"],
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        process.send_signal(sig)
    assert await asyncio.wait_for(process.wait(), 60) == 2
