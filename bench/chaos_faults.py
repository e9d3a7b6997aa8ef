"""The chaos suite's faults: a plan (kill -9 of a random process of a role at random moments, one
PostgreSQL crash, one broker restart) and the monkey that carries it out while the load runs,
restarting what it killed after a short pause, and restarting (and recording) any role process
that exits on its own."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.chaos_services import Broker, Database, Fleet, Member

SUPERVISE_EVERY_S = 0.5
TARGET_WAIT_S = 15.0  # how long a kill waits for its role to have a running process


@dataclass(frozen=True)
class FaultPlan:
    """When each fault happens, in seconds since the load started."""

    kills: list[tuple[float, str]]  # (when, role), in time order
    restart_after_s: tuple[float, float]  # a killed process is started again after a pause in this range
    database_crashes_s: list[float]  # in time order, each well after the one before
    database_down_s: float  # from a crash until PostgreSQL is started again
    broker_restart_s: float
    broker_crash: bool  # SIGKILL the broker (it then waits out its old session) rather than stop it


def plan_faults(
    rng: random.Random,
    *,
    window_s: float,
    roles: Sequence[str],
    kills: int,
    kills_per_role: int,
    restart_after_s: tuple[float, float],
    database_crashes: int,
    database_down_s: float,
    broker_crash: bool,
) -> FaultPlan:
    """Every role killed at least `kills_per_role` times and `kills` kills in all, at uniformly
    random moments of the window; PostgreSQL crashes about a third of the way in (or, crashing
    more than once, from a fifth to four fifths of the way), the broker restarts about two
    thirds of the way in."""
    victims = [role for role in roles for _ in range(kills_per_role)]
    victims += [rng.choice(roles) for _ in range(max(0, kills - len(victims)))]
    rng.shuffle(victims)
    moments = sorted(rng.uniform(0.05 * window_s, 0.95 * window_s) for _ in victims)
    return FaultPlan(
        kills=list(zip(moments, victims, strict=True)),
        restart_after_s=restart_after_s,
        database_crashes_s=database_crash_moments(rng, window_s, database_crashes),
        database_down_s=database_down_s,
        broker_restart_s=window_s * rng.uniform(0.6, 0.75),
        broker_crash=broker_crash,
    )


def database_crash_moments(rng: random.Random, window_s: float, crashes: int) -> list[float]:
    if crashes == 1:
        return [window_s * rng.uniform(0.25, 0.4)]
    spread = [0.2 + 0.6 * i / (crashes - 1) for i in range(crashes)]
    return [window_s * (at + rng.uniform(-0.03, 0.03)) for at in spread]


@dataclass(frozen=True)
class Incident:
    at_s: float
    what: str


@dataclass(frozen=True)
class Outage:
    service: str
    down_s: float
    up_s: float


@dataclass
class Monkey:
    fleet: Fleet
    database: Database
    broker: Broker
    plan: FaultPlan
    rng: random.Random
    clock: Callable[[], float]
    incidents: list[Incident] = field(default_factory=list)
    outages: list[Outage] = field(default_factory=list)
    kills: Counter[str] = field(default_factory=Counter)
    exits: list[Incident] = field(default_factory=list)  # processes that ended without our kill
    _restarting: set[str] = field(default_factory=set)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def note(self, what: str) -> None:
        incident = Incident(self.clock(), what)
        self.incidents.append(incident)
        print(f"chaos: [{incident.at_s:6.1f} s] {what}", flush=True)

    async def run(self) -> None:
        """Carry out the plan; return once every killed process has been started again."""
        faults = [self._kill_at(at, role) for at, role in self.plan.kills]
        faults += [self._database_outages(), self._broker_restart()]
        await asyncio.gather(*faults)
        await asyncio.gather(*self._tasks)

    async def supervise(self, stop: asyncio.Event) -> None:
        """Start again, like a pod's restart policy, any role process that ended on its own."""
        while not stop.is_set():
            for member in self.fleet.members:
                if member.running() or member.name in self._restarting or member.process is None:
                    continue
                code, words = member.process.returncode, self.fleet.last_words(member)
                incarnation = f"{member.name}.{member.incarnation}"
                self.exits.append(Incident(self.clock(), f"{incarnation} exited with {code}: {words}"))
                self.note(f"{incarnation} exited on its own with {code}; started again")
                self.fleet.start(member)
            await _sleep_or_stop(stop, SUPERVISE_EVERY_S)

    async def _at(self, at_s: float) -> None:
        await asyncio.sleep(max(0.0, at_s - self.clock()))

    async def _kill_at(self, at_s: float, role: str) -> None:
        await self._at(at_s)
        waited = 0.0
        while not (running := self.fleet.running(role)) and waited < TARGET_WAIT_S:
            await asyncio.sleep(0.2)
            waited += 0.2
        if not running:
            self.note(f"kill -9 {role}: no process was running")
            return
        member = self.rng.choice(running)
        self._restarting.add(member.name)
        self.fleet.kill(member)
        self.kills[role] += 1
        pause = self.rng.uniform(*self.plan.restart_after_s)
        self.note(f"kill -9 {member.name} (pid {_pid(member)}); restart in {pause:.1f} s")
        self._tasks.append(asyncio.create_task(self._restart_after(member, pause)))

    async def _restart_after(self, member: Member, pause_s: float) -> None:
        await asyncio.sleep(pause_s)
        self.fleet.start(member)
        self._restarting.discard(member.name)
        self.note(f"started {member.name} again (pid {_pid(member)})")

    async def _database_outages(self) -> None:
        for at_s in self.plan.database_crashes_s:
            await self._at(at_s)
            await self._database_outage()

    async def _database_outage(self) -> None:
        down = self.clock()
        await asyncio.to_thread(self.database.crash)
        self.note("PostgreSQL crashed (SIGKILL of the postmaster and every backend)")
        await asyncio.sleep(self.plan.database_down_s)
        self.note("PostgreSQL starting again (crash recovery)")
        await asyncio.to_thread(self.database.recover)
        self.outages.append(Outage("PostgreSQL", down, self.clock()))
        self.note("PostgreSQL accepts connections again")

    async def _broker_restart(self) -> None:
        await self._at(self.plan.broker_restart_s)
        how = "killed (SIGKILL)" if self.plan.broker_crash else "stopped"
        down = self.clock()
        self.note(f"Kafka broker {how}; restarting on its own storage")
        await asyncio.to_thread(self.broker.restart, hard=self.plan.broker_crash)
        self.outages.append(Outage("Kafka", down, self.clock()))
        self.note("Kafka broker answers again")


def _pid(member: Member) -> int | None:
    return member.process.pid if member.process is not None else None


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return
