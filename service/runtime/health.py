"""`/healthz`, `/readyz`, `/metrics` for the roles that serve no API (relay, consumers).

Liveness checks only that the role's loop made progress recently — never a dependency, so a
database hiccup cannot restart every pod at once. Readiness runs the role's dependency checks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from schemas.api import HealthBody
from service.bus.interface import Bus
from service.core.clock import SYSTEM_CLOCK, Clock
from service.core.errors import DatabaseError
from service.core.metrics import render_metrics
from service.db.migrate import missing_migrations
from service.db.postgres import Connection, Pool, close_quietly, connect, connection, ping

LIVENESS_WINDOW_S = 30.0
CHECK_TIMEOUT_S = 2.0

Check = Callable[[], Awaitable[bool]]


class Drain:
    """Whether the process was asked to stop: `/readyz` answers 503 from then on, so the
    process leaves the Service's endpoints before it stops serving."""

    def __init__(self) -> None:
        self._active = False

    @property
    def active(self) -> bool:
        return self._active

    def begin(self) -> None:
        self._active = True


class Heartbeat:
    """Beaten by a role's loop on every iteration; stale after `LIVENESS_WINDOW_S`."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._last = clock.monotonic()
        self.beats = 0

    def beat(self) -> None:
        self._last = self._clock.monotonic()
        self.beats += 1

    def age_s(self) -> float:
        return self._clock.monotonic() - self._last

    def alive(self) -> bool:
        return self.age_s() < LIVENESS_WINDOW_S


async def run_checks(checks: Mapping[str, Check]) -> dict[str, str]:
    """Each check's outcome: `ok`, `failing`, or `timeout`."""
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            ok = await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
        except TimeoutError:
            results[name] = "timeout"
            continue
        except Exception:  # a readiness probe reports failures, it never raises them
            ok = False
        results[name] = "ok" if ok else "failing"
    return results


def health_app(
    heartbeats: Mapping[str, Heartbeat], checks: Mapping[str, Check], drain: Drain | None = None
) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        stale = {name: f"stale {hb.age_s():.0f}s" for name, hb in heartbeats.items() if not hb.alive()}
        body = HealthBody(status="unavailable" if stale else "ok", checks=stale)
        return json_body(body, 503 if stale else 200)

    async def readyz(_: web.Request) -> web.Response:
        return await readiness_response(checks, drain)

    async def metrics(_: web.Request) -> web.Response:
        return metrics_response()

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def readiness_response(checks: Mapping[str, Check], drain: Drain | None = None) -> web.Response:
    """200 when every check passes, else 503; the body names each check's outcome. A process
    that is stopping is not ready, whatever its dependencies say."""
    if drain is not None and drain.active:
        body = HealthBody(status="unavailable", checks={"shutdown": "draining"})
        return json_body(body, 503)
    results = await run_checks(checks)
    ok = all(v == "ok" for v in results.values())
    body = HealthBody(status="ok" if ok else "unavailable", checks=results)
    return json_body(body, 200 if ok else 503)


def json_body(body: HealthBody, status: int = 200) -> web.Response:
    """The same Content-Type as every API answer: `application/json`, no charset parameter."""
    return web.Response(body=body.model_dump_json().encode(), status=status, content_type="application/json")


def metrics_response() -> web.Response:
    payload, content_type = render_metrics()
    return web.Response(body=payload, headers={"Content-Type": content_type})


async def start_health_server(
    host: str,
    port: int,
    heartbeats: Mapping[str, Heartbeat],
    checks: Mapping[str, Check],
    drain: Drain | None = None,
) -> web.AppRunner:
    """Serve the health endpoints; the caller `cleanup()`s the returned runner."""
    runner = web.AppRunner(health_app(heartbeats, checks, drain), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def database_check(pool: Pool, dsn: str | None = None) -> Check:
    """Ready when the database answers and every migration this code needs is applied (so a new
    pod takes no traffic before `agent-eval migrate` ran). A pool whose every connection is busy
    is the workload (an executor playing all it can, a gateway holding thousands of waiters), not
    an outage: with `dsn`, the probe then asks over a short-lived connection of its own instead of
    queueing behind the work past its timeout, so only a database that does not answer makes the
    process unready."""

    async def check() -> bool:
        try:
            if dsn is not None and _saturated(pool):
                conn = await connect(dsn, application_name="agent-eval-readiness")
                try:
                    return await _answers(conn)
                finally:
                    await close_quietly(conn)
            async with connection(pool) as pooled:
                return await _answers(pooled)
        except DatabaseError:
            return False

    return check


def _saturated(pool: Pool) -> bool:
    """Every connection the pool may open is open and in use: acquiring one means queueing."""
    return pool.get_idle_size() == 0 and pool.get_size() >= pool.get_max_size()


async def _answers(conn: Connection) -> bool:
    return await ping(conn) and not await missing_migrations(conn)


def bus_check(bus: Bus) -> Check:
    """Ready when the bus answers a metadata request."""

    async def check() -> bool:
        await bus.list_topics()
        return True

    return check
