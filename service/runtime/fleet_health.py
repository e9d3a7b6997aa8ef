"""`/healthz`, `/readyz`, `/metrics` of a supervisor (`consume <role> --processes N`) on the one
configured health port, answered from its children's own endpoints (each child serves them on a
loopback port of its own, which the supervisor picks).

- `/readyz`: 200 when every child answers its `/readyz` 200; 503 while one is starting or
  restarting, or once the supervisor is draining. The body names each child's outcome.
- `/healthz`: 503 when a child says it is stale or does not answer in time (a hung event
  loop); a child that is not listening yet is starting, not dead (the supervisor restarts a
  child that exits, so only a hung one needs the pod restarted).
- `/metrics`: every child's series, each with a `process` label (0 … N-1); sum over it for the
  pod's figures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from schemas.api import HealthBody
from service.runtime.health import CHECK_TIMEOUT_S, Drain, json_body

Ports = Mapping[int, int]  # child index -> its health port on 127.0.0.1


def fleet_health_app(count: int, ports: Ports, drain: Drain) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        answers = await _ask_all(count, ports, "/healthz")
        stale = {name: outcome for name, outcome in answers.items() if outcome in ("failing", "timeout")}
        body = HealthBody(status="unavailable" if stale else "ok", checks=stale)
        return json_body(body, 503 if stale else 200)

    async def readyz(_: web.Request) -> web.Response:
        if drain.active:
            return json_body(HealthBody(status="unavailable", checks={"shutdown": "draining"}), 503)
        answers = await _ask_all(count, ports, "/readyz")
        ok = all(outcome == "ok" for outcome in answers.values())
        return json_body(HealthBody(status="ok" if ok else "unavailable", checks=answers), 200 if ok else 503)

    async def metrics(_: web.Request) -> web.Response:
        texts = await asyncio.gather(*(_metrics_of(port) for port in ports.values()))
        body = merged_metrics(zip(ports, texts, strict=True))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def start_fleet_health(host: str, port: int, count: int, ports: Ports, drain: Drain) -> web.AppRunner:
    """Serve the supervisor's endpoints; the caller `cleanup()`s the returned runner."""
    runner = web.AppRunner(fleet_health_app(count, ports, drain), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def _ask_all(count: int, ports: Ports, path: str) -> dict[str, str]:
    names = [f"process-{index}" for index in range(count)]
    outcomes = await asyncio.gather(*(_ask(ports.get(index), path) for index in range(count)))
    return dict(zip(names, outcomes, strict=True))


async def _ask(port: int | None, path: str) -> str:
    """`ok`, `failing` (it answered otherwise), `timeout`, or `starting` (not listening yet)."""
    if port is None:
        return "starting"
    timeout = aiohttp.ClientTimeout(total=CHECK_TIMEOUT_S)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"http://127.0.0.1:{port}{path}") as answer,
        ):
            return "ok" if answer.status == 200 else "failing"
    except TimeoutError:
        return "timeout"
    except aiohttp.ClientConnectionError:
        return "starting"


async def _metrics_of(port: int) -> str:
    """A child's exposition, or nothing while it does not answer (it is starting)."""
    timeout = aiohttp.ClientTimeout(total=CHECK_TIMEOUT_S)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as answer,
        ):
            return await answer.text() if answer.status == 200 else ""
    except (TimeoutError, aiohttp.ClientError):
        return ""


class _Families(Collector):
    """A collector of families already read (from the children's expositions)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


def merged_metrics(expositions: Iterable[tuple[int, str]]) -> bytes:
    """One exposition of every child's series, each labelled `process="<index>"`."""
    families: dict[str, Metric] = {}
    for index, text in expositions:
        for family in text_string_to_metric_families(text):
            merged = families.setdefault(family.name, Metric(family.name, family.documentation, family.type))
            merged.samples.extend(
                sample._replace(labels={**sample.labels, "process": str(index)}) for sample in family.samples
            )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families.values()))
    return generate_latest(registry)
