"""The suite trend chart, computed as plain geometry (the template draws the SVG): pass rate as a
line on a 0-100 % scale, cost as bars scaled to the largest cost, one slot per suite run, oldest
on the left. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT, PAD = 640, 200, 30


@dataclass(frozen=True)
class TrendPoint:
    label: str  # what the slot's tooltip says (the suite run's day)
    pass_rate: float | None  # 0..1; None: nothing decided yet
    cost_cents: int


@dataclass(frozen=True)
class Slot:
    label: str
    x: float  # the slot's centre
    bar_y: float
    bar_height: float
    dot_y: float | None  # None: no pass rate
    pass_text: str
    cost_cents: int


@dataclass(frozen=True)
class Trend:
    width: int
    height: int
    pad: int
    bar_width: float
    slots: list[Slot]
    line: str  # "x,y x,y …": the pass-rate polyline (the runs with a pass rate)
    max_cost_cents: int


def trend(points: list[TrendPoint]) -> Trend:
    """The chart of `points` (oldest first)."""
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    step = inner_w / max(1, len(points))
    top = max((p.cost_cents for p in points), default=0)
    slots = [_slot(p, PAD + step * (i + 0.5), inner_h, top) for i, p in enumerate(points)]
    line = " ".join(f"{s.x:.1f},{s.dot_y:.1f}" for s in slots if s.dot_y is not None)
    return Trend(WIDTH, HEIGHT, PAD, max(2.0, step * 0.5), slots, line, top)


def _slot(point: TrendPoint, x: float, inner_h: float, top: int) -> Slot:
    bar = 0.0 if top == 0 else inner_h * point.cost_cents / top
    dot = None if point.pass_rate is None else PAD + inner_h * (1 - point.pass_rate)
    text = "—" if point.pass_rate is None else f"{point.pass_rate * 100:.0f} %"
    return Slot(point.label, x, PAD + inner_h - bar, bar, dot, text, point.cost_cents)
