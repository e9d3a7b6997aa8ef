"""Bar chart geometry: bars left to right in the order given, scaled to the largest value, no bar
for nothing or for a negative figure, a few labels (the first and the last always); and a daily
series with a point for every day, zero where nothing happened."""

from __future__ import annotations

from datetime import date

import pytest

from service.gateway.ui.charts import (
    BOTTOM,
    HEIGHT,
    LEFT,
    MAX_TICKS,
    RIGHT,
    TOP,
    WIDTH,
    bar_chart,
    daily_series,
    tick_indexes,
)

BASELINE = HEIGHT - BOTTOM
FULL = HEIGHT - BOTTOM - TOP


def test_bars_are_scaled_to_the_largest_value_and_stand_on_the_baseline() -> None:
    chart = bar_chart([("a", 50), ("b", 200), ("c", 100)])

    a, b, c = chart.bars
    assert (a.label, a.value, b.label, b.value, c.label, c.value) == ("a", 50, "b", 200, "c", 100)
    assert (a.height, b.height, c.height) == (FULL / 4, FULL, FULL / 2)
    assert all(bar.y + bar.height == BASELINE for bar in chart.bars)
    assert b.y == chart.top == TOP
    assert (chart.baseline, chart.max_value) == (BASELINE, 200)


def test_bars_go_left_to_right_in_order_evenly_inside_the_plot() -> None:
    chart = bar_chart([(str(i), 1) for i in range(10)])

    lefts = [bar.x for bar in chart.bars]
    assert lefts == sorted(lefts)
    steps = {round(b.x - a.x, 6) for a, b in zip(chart.bars, chart.bars[1:], strict=False)}
    assert steps == {round((WIDTH - RIGHT - LEFT) / 10, 6)}
    assert chart.bars[0].x > LEFT
    assert chart.bars[-1].x + chart.bars[-1].width < WIDTH - RIGHT
    assert all(0 < bar.width < (WIDTH - RIGHT - LEFT) / 10 for bar in chart.bars)  # a gap between bars


def test_zero_and_negative_values_draw_no_bar_but_keep_their_figure() -> None:
    chart = bar_chart([("refund day", -40), ("quiet day", 0), ("busy day", 120)])

    refund, quiet, busy = chart.bars
    assert (refund.height, quiet.height, busy.height) == (0, 0, FULL)
    assert (refund.y, quiet.y) == (BASELINE, BASELINE)
    assert refund.value == -40


@pytest.mark.parametrize("points", [[], [("only refunds", -5)], [("a", 0), ("b", 0)]])
def test_nothing_to_draw_divides_by_nothing(points: list[tuple[str, int]]) -> None:
    chart = bar_chart(points)

    assert all(bar.height == 0 for bar in chart.bars)
    assert chart.max_value == 0
    assert len(chart.bars) == len(points)


def test_labels_are_written_under_a_few_bars_the_first_and_last_included() -> None:
    chart = bar_chart([(f"day {i}", i) for i in range(30)])

    first, *middle, last = chart.ticks
    assert (first.label, first.anchor, first.x) == ("day 0", "start", chart.bars[0].x)
    assert (last.label, last.anchor) == ("day 29", "end")
    assert last.x == chart.bars[-1].x + chart.bars[-1].width  # ends at the chart's last bar
    assert len(chart.ticks) <= MAX_TICKS
    by_label = {bar.label: bar for bar in chart.bars}
    assert all((t.anchor, t.x) == ("middle", by_label[t.label].centre) for t in middle)


def test_a_single_bar_is_labelled_from_its_left_edge() -> None:
    (tick,) = bar_chart([("today", 5)]).ticks
    assert (tick.label, tick.anchor) == ("today", "start")


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (0, []),
        (1, [0]),
        (6, [0, 1, 2, 3, 4, 5]),
        (7, [0, 2, 4, 6]),
        (8, [0, 2, 4, 7]),  # 6 and 7 side by side would overlap
        (30, [0, 6, 12, 18, 24, 29]),
        (90, [0, 18, 36, 54, 72, 89]),
    ],
)
def test_tick_indexes_are_spread_evenly_and_never_crowd_the_last(count: int, expected: list[int]) -> None:
    assert tick_indexes(count, 6) == expected


def test_a_daily_series_has_every_day_oldest_first_with_zero_for_quiet_days() -> None:
    totals = {date(2026, 2, 27): 300, date(2026, 3, 1): -40, date(2026, 2, 1): 999}  # the last: too old

    series = daily_series(totals, date(2026, 3, 2), 4)

    assert series == [("2026-02-27", 300), ("2026-02-28", 0), ("2026-03-01", -40), ("2026-03-02", 0)]
