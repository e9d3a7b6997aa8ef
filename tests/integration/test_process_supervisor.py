"""The supervisor behind `--processes` (`service.runtime.children`), on real child processes: a
child that exits is restarted, one that keeps dying makes the supervisor give up (non-zero exit
of the command), and stopping closes every child's stdin and waits for it to exit."""

from __future__ import annotations

import asyncio
import sys

from service.runtime.children import Launched, Supervisor
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
