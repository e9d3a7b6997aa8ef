"""The in-process bus: keyed partitioning, per-key order, and log trimming behind committed offsets."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.bus.interface import OutgoingRecord, TopicPartition, TopicSpec
from service.bus.memory import InProcessBus, InProcessSubscription, partition_for
from service.core.errors import BusError, CommitFailed

TOPIC = "events"
TP0 = TopicPartition(TOPIC, 0)


async def _ignore(_: frozenset[TopicPartition]) -> None:
    return None


def _member(bus: InProcessBus, group: str) -> InProcessSubscription:
    return bus.subscribe(group, [TOPIC], on_assigned=_ignore, on_revoked=_ignore)


async def _values(bus: InProcessBus) -> list[bytes]:
    return [m.value for m in await bus.read_all(TOPIC)]


async def _bus_with_records(count: int) -> InProcessBus:
    bus = InProcessBus()
    await bus.create_topics([TopicSpec(TOPIC, 1)])
    await bus.publish([OutgoingRecord(TOPIC, b"k", str(i).encode()) for i in range(count)])
    return bus


def test_the_same_key_always_lands_in_the_same_partition() -> None:
    assert len({partition_for(b"run-1", 7, counter) for counter in range(20)}) == 1


@given(st.binary(max_size=40), st.integers(min_value=1, max_value=64), st.integers(min_value=0))
def test_a_keyed_partition_is_in_range_and_ignores_the_counter(
    key: bytes, partitions: int, counter: int
) -> None:
    chosen = partition_for(key, partitions, counter)

    assert 0 <= chosen < partitions
    assert chosen == partition_for(key, partitions, 0)


def test_unkeyed_records_are_spread_round_robin() -> None:
    assert [partition_for(None, 3, counter) for counter in range(7)] == [0, 1, 2, 0, 1, 2, 0]


def test_different_keys_can_use_different_partitions() -> None:
    assert len({partition_for(f"run-{i}".encode(), 4, 0) for i in range(50)}) == 4


async def test_publishing_to_a_topic_that_does_not_exist_is_refused() -> None:
    bus = InProcessBus()
    await bus.create_topics([TopicSpec(TOPIC, 1)])

    with pytest.raises(BusError, match="missing"):
        await bus.publish([OutgoingRecord("missing", b"k", b"v")])


async def test_unkeyed_records_fill_every_partition_evenly() -> None:
    bus = InProcessBus()
    await bus.create_topics([TopicSpec(TOPIC, 3)])

    await bus.publish([OutgoingRecord(TOPIC, None, str(i).encode()) for i in range(9)])

    assert Counter(m.partition for m in await bus.read_all(TOPIC)) == {0: 3, 1: 3, 2: 3}


async def test_offsets_count_up_per_partition_and_headers_are_kept() -> None:
    bus = InProcessBus()
    await bus.create_topics([TopicSpec(TOPIC, 1)])

    await bus.publish(
        [OutgoingRecord(TOPIC, b"k", b"a", (("ce_type", b"x"),)), OutgoingRecord(TOPIC, b"k", b"b")]
    )

    messages = await bus.read_all(TOPIC)
    assert [(m.offset, m.value) for m in messages] == [(0, b"a"), (1, b"b")]
    assert messages[0].header("ce_type") == b"x"
    assert messages[1].header("ce_type") is None


_records = st.lists(
    st.tuples(st.sampled_from([b"a", b"b", b"c", b"run-1", b"run-2", b"\x00"]), st.binary(max_size=8)),
    max_size=40,
)


@given(records=_records, partitions=st.integers(min_value=1, max_value=5))
async def test_reading_every_partition_gives_each_keys_values_in_publish_order(
    records: list[tuple[bytes, bytes]], partitions: int
) -> None:
    bus = InProcessBus()
    await bus.create_topics([TopicSpec(TOPIC, partitions)])
    # Values are made unique so the order check cannot pass by accident.
    published = [(key, i.to_bytes(2, "big") + value) for i, (key, value) in enumerate(records)]

    for key, value in published:
        await bus.publish([OutgoingRecord(TOPIC, key, value)])

    expected: defaultdict[bytes, list[bytes]] = defaultdict(list)
    for key, value in published:
        expected[key].append(value)
    read: defaultdict[bytes, list[bytes]] = defaultdict(list)
    for message in await bus.read_all(TOPIC):
        assert message.key is not None
        assert message.partition == partition_for(message.key, partitions, 0)
        read[message.key].append(message.value)
    assert read == expected


async def test_committing_trims_the_log_below_the_committed_offset() -> None:
    bus = await _bus_with_records(5)
    member = _member(bus, "g")
    await member.start()

    batch = await member.fetch(0.01, 100)
    await member.commit({TP0: batch[TP0][2].offset + 1})

    assert await _values(bus) == [b"3", b"4"]
    assert [m.offset for m in await bus.read_all(TOPIC)] == [3, 4]
    await bus.stop()


async def test_the_log_is_kept_until_every_group_has_committed_past_it() -> None:
    bus = await _bus_with_records(5)
    fast, slow = _member(bus, "fast"), _member(bus, "slow")
    await fast.start()
    await slow.start()
    await fast.fetch(0.01, 100)
    await slow.fetch(0.01, 100)

    await fast.commit({TP0: 4})
    assert await _values(bus) == [b"0", b"1", b"2", b"3", b"4"]

    await slow.commit({TP0: 2})
    assert await _values(bus) == [b"2", b"3", b"4"]

    await slow.commit({TP0: 5})
    assert await _values(bus) == [b"4"]
    await bus.stop()


async def test_a_new_member_resumes_from_the_groups_committed_offset() -> None:
    bus = await _bus_with_records(4)
    first = _member(bus, "g")
    await first.start()
    await first.fetch(0.01, 2)
    await first.commit({TP0: 2})
    await first.stop()

    second = _member(bus, "g")
    await second.start()
    batch = await second.fetch(0.01, 100)

    assert [m.value for m in batch[TP0]] == [b"2", b"3"]
    await bus.stop()


async def test_committing_a_partition_the_member_does_not_own_fails() -> None:
    bus = await _bus_with_records(1)
    member = _member(bus, "g")
    await member.start()

    with pytest.raises(CommitFailed):
        await member.commit({TopicPartition("elsewhere", 0): 1})
    assert await _values(bus) == [b"0"]
    await bus.stop()
