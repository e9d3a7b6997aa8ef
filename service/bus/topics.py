"""Deployed topic names: `AGENT_EVAL_TOPIC_PREFIX` + the logical name, and each topic's DLQ."""

from __future__ import annotations

from schemas.events import DLQ_SUFFIX, Topic
from service.bus.interface import TopicSpec


def topic_name(prefix: str, topic: Topic | str) -> str:
    return f"{prefix}{topic}"


def dlq_name(topic: str) -> str:
    """Where undecodable or repeatedly failing records of `topic` go."""
    return f"{topic}{DLQ_SUFFIX}"


def is_dlq(topic: str) -> bool:
    return topic.endswith(DLQ_SUFFIX)


def topic_specs(prefix: str, partitions: int, replication_factor: int) -> list[TopicSpec]:
    """Every topic of DESIGN.md §5 and its DLQ (DLQs are low-volume: one partition)."""
    specs: list[TopicSpec] = []
    for topic in Topic:
        name = topic_name(prefix, topic)
        specs.append(TopicSpec(name, partitions, replication_factor))
        specs.append(TopicSpec(dlq_name(name), 1, replication_factor))
    return specs
