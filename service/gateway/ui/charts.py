"""Bar charts as plain geometry (the template draws the SVG), and the series they are drawn from.

`bar_chart` takes (label, value) points in order, left to right, and scales the bars to the
largest value: negative values draw no bar (the figure is still in the bar's title and in the
table beside the chart). At most `MAX_TICKS` labels sit under the bars, always the first and the
last. Pure: no I/O, no clock (days are parameters).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 8, 12, 28  # room for the value axis on the left, labels below
MAX_TICKS = 6
GAP = 0.2  # of each slot, left empty between bars


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    x: float  # the bar's left edge
    y: float  # its top
    width: float
    height: float

    @property
    def centre(self) -> float:
        return self.x + self.width / 2


@dataclass(frozen=True)
class Tick:
    """A label under the chart: under its bar's centre, or, for the first and the last bar,
    from its left edge and to its right edge (so nothing runs past the chart)."""

    label: str
    x: float
    anchor: str  # SVG text-anchor: start | middle | end


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    left: int  # the plot's left edge (the value axis)
    right: int  # its right edge
    top: int  # where the largest value reaches
    baseline: int  # where zero is
    bars: list[Bar]
    ticks: list[Tick]
    max_value: int


def bar_chart(points: Sequence[tuple[str, int]]) -> BarChart:
    """The chart of `points`, one evenly spaced bar each, the largest reaching the top."""
    right, baseline = WIDTH - RIGHT, HEIGHT - BOTTOM
    step = (right - LEFT) / max(1, len(points))
    top_value = max((value for _, value in points), default=0)
    bars = [_bar(label, value, LEFT + step * i, step, top_value) for i, (label, value) in enumerate(points)]
    ticks = [_tick(bars[i], i, len(bars)) for i in tick_indexes(len(bars), MAX_TICKS)]
    return BarChart(WIDTH, HEIGHT, LEFT, right, TOP, baseline, bars, ticks, max(0, top_value))


def _bar(label: str, value: int, slot_x: float, step: float, top_value: int) -> Bar:
    inner = HEIGHT - BOTTOM - TOP
    height = 0.0 if top_value <= 0 or value <= 0 else inner * value / top_value
    width = step * (1 - GAP)
    return Bar(label, value, slot_x + step * GAP / 2, HEIGHT - BOTTOM - height, width, height)


def _tick(bar: Bar, index: int, count: int) -> Tick:
    if index == count - 1 and count > 1:
        return Tick(bar.label, bar.x + bar.width, "end")
    if index == 0:
        return Tick(bar.label, bar.x, "start")
    return Tick(bar.label, bar.centre, "middle")


def tick_indexes(count: int, most: int) -> list[int]:
    """Which of `count` bars get a label: evenly spaced, the first and the last always, at most
    `most` (2 or more)."""
    if count <= most:
        return list(range(count))
    every = -(-(count - 1) // (most - 1))  # ceil: (most - 1) gaps cover the span
    chosen = list(range(0, count - 1, every))
    if count - 1 - chosen[-1] <= every / 2:
        chosen.pop()  # the last label would crowd the one before it
    return [*chosen, count - 1]


def daily_series(totals: Mapping[date, int], last_day: date, days: int) -> list[tuple[str, int]]:
    """One point per day of the `days` ending on `last_day`, oldest first (`YYYY-MM-DD`, 0 when
    `totals` has nothing for the day)."""
    first = last_day - timedelta(days=days - 1)
    return [(d.isoformat(), totals.get(d, 0)) for d in (first + timedelta(days=i) for i in range(days))]
