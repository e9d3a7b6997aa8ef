"""When the relay sleeps (waits to be woken) and when it polls: it wakes on the first poll that
finds rows, announces each change once, and sleeps only after a quiet spell."""

from __future__ import annotations

from consumers.relay import Drowsiness


def test_a_relay_starts_asleep_and_wakes_on_the_first_rows() -> None:
    sleep = Drowsiness(after_s=0.5)
    assert sleep.after_poll(False, 10.0) is None  # nothing found: it stays asleep, nothing to say
    assert sleep.after_poll(True, 10.1) is False  # rows: it polls now, and says so once
    assert sleep.after_poll(True, 10.2) is None
    assert not sleep.sleeping


def test_it_falls_asleep_only_after_a_quiet_spell_since_the_last_rows() -> None:
    sleep = Drowsiness(after_s=0.5)
    sleep.after_poll(True, 10.0)
    assert sleep.after_poll(False, 10.3) is None
    assert sleep.after_poll(True, 10.4) is None  # rows again: the quiet spell starts over
    assert sleep.after_poll(False, 10.8) is None
    assert sleep.after_poll(False, 10.9) is True
    assert sleep.sleeping
    assert sleep.after_poll(False, 11.5) is None  # said once
