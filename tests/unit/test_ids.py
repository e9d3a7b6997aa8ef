"""UUIDv7 ids: version, variant, time, order, and no shared randomness across a fork."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID

from service.core.ids import first_id_at, new_id


def test_ids_are_version_7_with_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    value = new_id()
    after = time.time_ns() // 1_000_000
    assert (value.version, value.variant) == (7, "specified in RFC 4122")
    assert before <= value.int >> 80 <= after + 1


def test_ids_of_one_process_strictly_increase_and_never_repeat() -> None:
    ids = [new_id() for _ in range(50_000)]  # many per millisecond: the counter orders them
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_does_not_reuse_its_parents_random_bits() -> None:
    new_id()  # the parent holds a block of random bytes
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send ten ids and leave at once
        os.close(read)
        os.write(write, b"".join(new_id().bytes for _ in range(10)))
        os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 4096):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    child = [UUID(bytes=data[i : i + 16]) for i in range(0, len(data), 16)]
    parent = [new_id() for _ in range(10)]
    assert len(child) == 10
    assert not {c.int & ((1 << 62) - 1) for c in child} & {p.int & ((1 << 62) - 1) for p in parent}


def test_the_first_id_of_a_moment_sorts_before_every_id_made_from_then_on() -> None:
    moment = datetime.now(UTC)
    first = first_id_at(moment)
    made = new_id()
    later = first_id_at(moment + timedelta(milliseconds=50))

    assert first.version == 7
    assert first <= made < later
    assert first_id_at(moment - timedelta(milliseconds=1)) < first
