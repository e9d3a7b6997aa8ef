"""Dead-letter topics: the record format, listing what landed there, replaying it to its source.

Replay is tracked by the consumer group `<prefix>agent-eval.dlq-replay`: each dead-lettered
record is republished once (handlers are idempotent, so a replay after a crash is harmless).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from service.bus.interface import Bus, Message, OutgoingRecord, TopicPartition
from service.bus.topics import dlq_name, is_dlq, topic_specs

REPLAY_GROUP = "agent-eval.dlq-replay"
REPLAY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: str | None
    ce_type: str | None
    ce_id: str | None
    reason: str | None
    error: str | None
    source_topic: str | None
    source_offset: int | None
    group: str | None
    time: str | None
    replayed: bool


def dead_letter_record(
    message: Message, group: str, reason: str, detail: str, now: datetime
) -> OutgoingRecord:
    """The copy of `message` for `<topic>.dlq`: the original key, value and headers, plus why."""
    headers = (
        *message.headers,
        ("dlq_reason", reason.encode()),
        ("dlq_error", detail[:1000].encode()),
        ("dlq_source_topic", message.topic.encode()),
        ("dlq_source_partition", str(message.partition).encode()),
        ("dlq_source_offset", str(message.offset).encode()),
        ("dlq_group", group.encode()),
        ("dlq_time", now.isoformat().encode()),
    )
    return OutgoingRecord(dlq_name(message.topic), message.key, message.value, headers)


def dlq_topics(prefix: str, only: str | None = None) -> list[str]:
    """The DLQ topics to look at: one (given by its own or its source topic's name) or all."""
    if only is not None:
        return [only if is_dlq(only) else dlq_name(only)]
    return [spec.name for spec in topic_specs(prefix, 1, 1) if is_dlq(spec.name)]


def _text(message: Message, header: str) -> str | None:
    value = message.header(header)
    return None if value is None else value.decode("utf-8", "replace")


def describe(message: Message, replayed: bool) -> DeadLetter:
    offset = _text(message, "dlq_source_offset")
    return DeadLetter(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=None if message.key is None else message.key.decode("utf-8", "replace"),
        ce_type=_text(message, "ce_type"),
        ce_id=_text(message, "ce_id"),
        reason=_text(message, "dlq_reason"),
        error=_text(message, "dlq_error"),
        source_topic=_text(message, "dlq_source_topic"),
        source_offset=int(offset) if offset and offset.isdigit() else None,
        group=_text(message, "dlq_group"),
        time=_text(message, "dlq_time"),
        replayed=replayed,
    )


async def list_dead_letters(bus: Bus, prefix: str, only: str | None = None) -> list[DeadLetter]:
    """Every record in the DLQ topics, marked `replayed` when the replay group is past it."""
    found: list[DeadLetter] = []
    existing = await bus.list_topics()
    for topic in dlq_topics(prefix, only):
        if topic not in existing:
            continue
        committed = await bus.committed(prefix + REPLAY_GROUP, topic)
        for message in await bus.read_all(topic):
            found.append(describe(message, message.offset < committed.get(message.tp, 0)))
    return found


def replay_record(message: Message) -> OutgoingRecord | None:
    """The record to republish: the original topic, key, value and headers (DLQ headers dropped)."""
    source = message.header("dlq_source_topic")
    if source is None:
        return None
    headers = tuple((k, v) for k, v in message.headers if not k.startswith("dlq_"))
    origin = f"{message.topic}:{message.partition}:{message.offset}".encode()
    return OutgoingRecord(source.decode(), message.key, message.value, (*headers, ("replayed_from", origin)))


async def replay(bus: Bus, prefix: str, only: str | None = None) -> int:
    """Republish every not-yet-replayed dead letter to its source topic; returns how many."""
    total = 0
    existing = await bus.list_topics()
    for topic in dlq_topics(prefix, only):
        if topic in existing:
            total += await _replay_topic(bus, prefix + REPLAY_GROUP, topic)
    return total


async def _replay_topic(bus: Bus, group: str, topic: str) -> int:
    ends = await bus.end_offsets(topic)
    committed = await bus.committed(group, topic)
    remaining = {tp: end for tp, end in ends.items() if committed.get(tp, 0) < end}
    if not remaining:
        return 0
    replayed = 0

    async def nothing(_: frozenset[TopicPartition]) -> None:
        return None

    subscription = bus.subscribe(group, [topic], on_assigned=nothing, on_revoked=nothing)
    await subscription.start()
    try:
        async with asyncio.timeout(REPLAY_TIMEOUT_S):
            while remaining:
                batch = await subscription.fetch(0.5, 500)
                for tp, messages in batch.items():
                    wanted = [m for m in messages if m.offset < ends[tp]]
                    records = [r for r in map(replay_record, wanted) if r is not None]
                    await bus.publish(records)
                    replayed += len(records)
                    if wanted:
                        await subscription.commit({tp: wanted[-1].offset + 1})
                        if wanted[-1].offset + 1 >= ends[tp]:
                            remaining.pop(tp, None)
    finally:
        await subscription.stop()
    return replayed
