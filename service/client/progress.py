"""Following a suite run from a terminal or a CI log: a live `rich` progress bar with passed,
failed, errored and running counts on a TTY, plain lines otherwise.

Ends arrive on the suite run's SSE stream; how many runs are running (the stream only carries
ends) is read from the suite run's aggregate, at most every `REFRESH_S`, and only after the
stream moved: the follower never polls an idle server.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from schemas.suite_runs import SuiteRunEntry
from service.client.api import Api
from service.core.clock import SYSTEM_CLOCK, Clock

REFRESH_S = 2.0


@dataclass
class Counts:
    """What the follower has seen so far."""

    total: int
    passed: int = 0
    failed: int = 0
    errored: int = 0
    other: int = 0  # cancelled or inconclusive
    running: int = 0

    @property
    def ended(self) -> int:
        return self.passed + self.failed + self.errored + self.other

    def add(self, run: SuiteRunEntry) -> None:
        if run.status == "failed":
            self.errored += 1
        elif run.pass_fail is True:
            self.passed += 1
        elif run.pass_fail is False:
            self.failed += 1
        else:
            self.other += 1
        self.running = min(self.running, self.total - self.ended)

    def line(self) -> str:
        return (
            f"{self.ended}/{self.total} done: {self.passed} passed, {self.failed} failed, "
            f"{self.errored} errored, {self.other} other, {self.running} running"
        )


class Follower:
    """Follows one suite run until `suite_run.done`, showing its progress on `console`."""

    def __init__(
        self,
        api: Api,
        console: Console,
        suite_id: UUID,
        suite_run_id: UUID,
        total: int,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._api, self._console = api, console
        self._suite_id, self._suite_run_id = suite_id, suite_run_id
        self.counts = Counts(total)
        self._clock = clock or SYSTEM_CLOCK
        self._refreshed = -REFRESH_S

    async def follow(self) -> Counts:
        if self._console.is_terminal:
            await self._follow_live()
        else:
            await self._follow_plain()
        return self.counts

    async def _follow_live(self) -> None:
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[green]{task.fields[passed]} passed[/] [red]{task.fields[failed]} failed[/]"),
            TextColumn("[yellow]{task.fields[errored]} errored[/] {task.fields[running]} running"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self._console, transient=False) as bar:
            c = self.counts
            task = bar.add_task(
                "suite run",
                total=c.total,
                passed=c.passed,
                failed=c.failed,
                errored=c.errored,
                running=c.running,
            )
            await self._update(bar, task)
            async for event, data in self._api.follow_suite_run(self._suite_id, self._suite_run_id):
                if event == "run.done":
                    self.counts.add(SuiteRunEntry.model_validate_json(data))
                await self._maybe_refresh()
                await self._update(bar, task)

    async def _update(self, bar: Progress, task: TaskID) -> None:
        c = self.counts
        bar.update(
            task, completed=c.ended, passed=c.passed, failed=c.failed, errored=c.errored, running=c.running
        )

    async def _follow_plain(self) -> None:
        printed = -REFRESH_S
        async for event, data in self._api.follow_suite_run(self._suite_id, self._suite_run_id):
            if event == "run.done":
                self.counts.add(SuiteRunEntry.model_validate_json(data))
            await self._maybe_refresh()
            now = self._clock.monotonic()
            finished = event != "run.done" or self.counts.ended == self.counts.total
            if finished or now - printed >= REFRESH_S:
                self._console.print(self.counts.line(), highlight=False)
                printed = now

    async def _maybe_refresh(self) -> None:
        """Re-read how many runs are running, at most every `REFRESH_S`."""
        now = self._clock.monotonic()
        if now - self._refreshed < REFRESH_S:
            return
        self._refreshed = now
        view = await self._api.suite_run(self._suite_id, self._suite_run_id)
        self.counts.running = view.in_flight
