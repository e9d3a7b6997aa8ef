"""A burst of new connections against one gateway (`agent-eval serve` as its own process, on the
services of `scripts/services up`): N connections opened at once, each sending a blocking run
trigger (`Prefer: wait=W`; no executor runs, so each is answered 202 after W seconds), once per
listen backlog (AGENT_EVAL_LISTEN_BACKLOG), by default aiohttp's 128 and then ours.

    source .services/env && .venv/bin/python -m bench.burst [--connections 1000] [--wait 10]

For each backlog it prints how the connections ended (answered, reset, refused, timed out,
closed unanswered), how many connects took over a second (the kernel dropped their SYN while
the listen queue was full and the client sent it again), and the kernel's own counts of
listen-queue overflows and drops over the burst (/proc/net/netstat, the whole machine). Not a
test: nothing here asserts a number.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.agent_kinds import make_case
from bench.pipeline_stack import Stack
from bench.stack import percentile, wait_ready
from service.core.settings import Settings

DEFAULT_BACKLOG = Settings.model_fields["listen_backlog"].default
NETSTAT = Path("/proc/net/netstat")


def listen_drops() -> dict[str, int]:
    """The kernel's ListenOverflows and ListenDrops so far (TcpExt, the whole machine); empty
    where /proc/net/netstat cannot be read."""
    try:
        lines = NETSTAT.read_text().splitlines()
    except OSError:
        return {}
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            counts = dict(zip(names.split()[1:], (int(v) for v in values.split()[1:]), strict=False))
            return {k: counts[k] for k in ("ListenOverflows", "ListenDrops") if k in counts}
    return {}


def allow_open_files(count: int) -> None:
    """This process's soft limit on open files raised to `count` (the gateway inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(count, hard), hard))


@dataclass(frozen=True)
class Outcome:
    """How one connection ended, and how long its connect took (seconds; None: never connected)."""

    ended: str
    connect_s: float | None


def trigger_request(case_id: str, key: str, wait_s: float) -> bytes:
    return (
        f"POST /agent-eval/cases/{case_id}/run HTTP/1.1\r\nHost: burst\r\n"
        f"Authorization: Bearer {key}\r\nPrefer: wait={wait_s:g}\r\n"
        "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    ).encode()


async def one(port: int, request: bytes, timeout_s: float) -> Outcome:
    started = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout_s)
    except ConnectionRefusedError:
        return Outcome("refused", None)
    except ConnectionResetError:
        return Outcome("reset", None)
    except TimeoutError:
        return Outcome("connect timed out", None)
    connect_s = time.monotonic() - started
    try:
        writer.write(request)
        status = await asyncio.wait_for(reader.readline(), timeout_s)
        ended = f"answered {status.split()[1].decode()}" if status else "closed unanswered"
    except ConnectionResetError:
        ended = "reset"
    except TimeoutError:
        ended = "timed out"
    except OSError as exc:
        ended = type(exc).__name__
    finally:
        writer.close()
    return Outcome(ended, connect_s)


async def burst(port: int, request: bytes, count: int, timeout_s: float) -> list[Outcome]:
    """`count` connections opened at once, each sending `request` and reading the status line."""
    return await asyncio.gather(*(one(port, request, timeout_s) for _ in range(count)))


def measure(stack: Stack, args: argparse.Namespace, case_id: str, backlog: int) -> None:
    stack.processes.start("gateway", "serve", env={"AGENT_EVAL_LISTEN_BACKLOG": str(backlog)})
    try:
        wait_ready(f"{stack.base}/readyz")
        request = trigger_request(case_id, stack.seeded.key, args.wait)
        kernel_before = listen_drops()
        started = time.monotonic()
        outcomes = asyncio.run(burst(stack.port, request, args.connections, args.wait + 60))
        wall = time.monotonic() - started
        kernel = {k: v - kernel_before.get(k, 0) for k, v in listen_drops().items()}
    finally:
        stack.processes.stop("gateway")
    report(args, backlog, outcomes, wall, kernel)


def report(
    args: argparse.Namespace, backlog: int, outcomes: list[Outcome], wall: float, kernel: dict[str, int]
) -> None:
    ended = Counter(o.ended for o in outcomes)
    connects = [o.connect_s for o in outcomes if o.connect_s is not None]
    label = " (aiohttp's default)" if backlog == 128 else " (AGENT_EVAL_LISTEN_BACKLOG's default)"
    failed = sum(n for kind, n in ended.items() if not kind.startswith("answered 2"))
    print(f"  backlog {backlog}{label if backlog in (128, DEFAULT_BACKLOG) else ''}")
    print(f"    ended            {dict(sorted(ended.items()))}")
    print(f"    reset/refused    {ended['reset'] + ended['refused']} ({failed} not answered 2xx)")
    print(
        f"    connects > 1 s   {sum(1 for s in connects if s > 1.0)} (a dropped SYN is sent again after 1 s)"
    )
    print(
        f"    connect          p50 {percentile(connects, 0.5) * 1000:,.0f} ms   "
        f"p99 {percentile(connects, 0.99) * 1000:,.0f} ms   max {max(connects, default=0) * 1000:,.0f} ms"
    )
    shown = ", ".join(f"{k} +{v}" for k, v in kernel.items()) or "n/a"
    print(f"    kernel           {shown} (listen queue full: SYNs dropped)")
    print(f"    wall             {wall:.1f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--wait", type=float, default=10.0, help="Prefer: wait=W on each trigger")
    parser.add_argument("--backlogs", default=f"128,{DEFAULT_BACKLOG}", help="comma-separated")
    args = parser.parse_args()
    server_url = os.environ.get("AGENT_EVAL_DATABASE_URL")
    bootstrap = os.environ.get("AGENT_EVAL_KAFKA_BOOTSTRAP")
    if not server_url or not bootstrap:
        print("run `scripts/services up` and `source .services/env` first")
        return 2
    allow_open_files(args.connections * 2 + 1000)
    with tempfile.TemporaryDirectory(prefix="agent-eval-bench-") as logs:
        stack = Stack(server_url, bootstrap, logs=Path(logs), extra_env={})
        try:
            stack.processes.start("gateway", "serve")
            wait_ready(f"{stack.base}/readyz")
            case_id = make_case(stack.base, stack.seeded.key, max_turns=10, lines=5)
            stack.processes.stop("gateway")
            print(
                f"burst: {args.connections} connections at once to `agent-eval serve`, each a blocking "
                f"run trigger (Prefer: wait={args.wait:g}), no executor"
            )
            for backlog in (int(b) for b in args.backlogs.split(",")):
                measure(stack, args, case_id, backlog)
        finally:
            stack.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
