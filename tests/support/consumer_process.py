"""A consumer process for SIGTERM tests: `python -m tests.support.consumer_process BOOTSTRAP GROUP TOPIC OUT`.

It runs the real ConsumerRunner on Kafka with the same signal handling as `agent-eval consume`,
appending each handled event id to OUT (flushed per line), and prints `ready` once it has joined.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from consumers.runner import ConsumerRunner, RunnerConfig
from schemas.events import Event, EventType
from service.bus.kafka import KafkaBus
from service.runtime.signals import stop_on_signals


async def main(bootstrap: str, group: str, topic: str, out: Path) -> None:
    stop = stop_on_signals()
    bus = KafkaBus(bootstrap, client_id="sigterm-test", session_timeout_ms=30_000, heartbeat_interval_ms=1000)
    await bus.start()
    with out.open("a") as sink:

        async def handle(event: Event) -> None:
            sink.write(f"{event.id}\n")
            sink.flush()

        config = RunnerConfig(group=group, topics=[topic], types=frozenset({EventType.RUN_REQUESTED.value}))
        runner = ConsumerRunner(bus, config, handle)
        task = asyncio.create_task(runner.run())
        await runner.started.wait()
        print("ready", flush=True)
        await stop.wait()
        runner.request_stop()
        await task
    await bus.stop()
    print("stopped", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])))
