"""Identifiers: UUIDv7, time-ordered, so "newest first" is an index scan (DESIGN.md §4).

RFC 9562 layout: 48 bits of Unix milliseconds, version 7, a 12-bit counter (method 1, "fixed
bit-length dedicated counter"), the variant, 62 random bits. Ids made by one process are
strictly increasing: within a millisecond the counter (started at a random value in its lower
half) counts up, and only if it runs out does the timestamp move a millisecond ahead. Random
bits come from the OS in blocks (a system call per ~400 ids instead of one each); a forked child
starts with an empty block, so parent and child never share random bits.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import datetime
from uuid import UUID

IdFactory = Callable[[], UUID]

_BLOCK = 4096
_COUNTER_MAX = 0xFFF


class _State:
    def __init__(self) -> None:
        self.random = b""
        self.offset = 0
        self.last_ms = -1
        self.counter = 0

    def forget(self) -> None:
        """After a fork: fresh random bits (the counter may carry on: ids stay increasing)."""
        self.random, self.offset = b"", 0

    def take(self, size: int) -> int:
        if self.offset + size > len(self.random):
            self.random, self.offset = os.urandom(_BLOCK), 0
        start, self.offset = self.offset, self.offset + size
        return int.from_bytes(self.random[start : self.offset])


_STATE = _State()
os.register_at_fork(after_in_child=_STATE.forget)


def new_id() -> UUID:
    """A fresh UUIDv7, greater than every id this process made before."""
    state = _STATE
    ms = time.time_ns() // 1_000_000
    if ms > state.last_ms:
        state.last_ms, state.counter = ms, state.take(1) << 3  # 0..0x7F8: room to count up
    elif state.counter < _COUNTER_MAX:
        state.counter += 1
    else:  # 4,096 ids in one millisecond: borrow the next one
        state.last_ms, state.counter = state.last_ms + 1, 0
    value = (state.last_ms << 80) | (0x7 << 76) | (state.counter << 64) | (0b10 << 62)
    return UUID(int=value | (state.take(8) >> 2))


def first_id_at(moment: datetime) -> UUID:
    """The smallest UUIDv7 of `moment`'s millisecond: ids are time-ordered, so a range of creation
    times is a range of ids (an index range on the primary key)."""
    ms = int(moment.timestamp() * 1000)
    return UUID(int=(ms << 80) | (0x7 << 76) | (0b10 << 62))
