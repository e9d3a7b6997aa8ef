"""The suite trend chart's geometry: pass rate on a fixed 0-100 % scale, cost scaled to the
largest, oldest on the left, runs without a pass rate left out of the line."""

from __future__ import annotations

from service.gateway.ui.trends import HEIGHT, PAD, TrendPoint, trend


def test_pass_rates_sit_on_a_fixed_scale_and_costs_on_the_largest() -> None:
    chart = trend([TrendPoint("a", 1.0, 50), TrendPoint("b", 0.5, 100), TrendPoint("c", 0.0, 0)])

    a, b, c = chart.slots
    assert (a.dot_y, b.dot_y, c.dot_y) == (PAD, PAD + (HEIGHT - 2 * PAD) / 2, HEIGHT - PAD)
    assert b.bar_height == HEIGHT - 2 * PAD  # the largest cost fills the height
    assert a.bar_height == b.bar_height / 2
    assert c.bar_height == 0
    assert a.x < b.x < c.x
    assert (a.pass_text, c.pass_text) == ("100 %", "0 %")
    assert chart.max_cost_cents == 100


def test_a_run_without_a_pass_rate_has_no_dot_and_leaves_the_line() -> None:
    chart = trend([TrendPoint("a", 0.5, 10), TrendPoint("b", None, 10), TrendPoint("c", 1.0, 10)])

    assert chart.slots[1].dot_y is None
    assert chart.slots[1].pass_text == "—"
    assert len(chart.line.split()) == 2


def test_no_runs_and_no_cost_draw_nothing_and_divide_by_nothing() -> None:
    assert trend([]).slots == []
    assert trend([TrendPoint("a", None, 0)]).slots[0].bar_height == 0
