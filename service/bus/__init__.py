"""Publish/subscribe: one interface (`base`), a Kafka and an in-process implementation."""

from service.bus.interface import (
    Bus,
    BusError,
    CommitFailed,
    Message,
    OutgoingRecord,
    Subscription,
    TopicPartition,
    TopicSpec,
)

__all__ = [
    "Bus",
    "BusError",
    "CommitFailed",
    "Message",
    "OutgoingRecord",
    "Subscription",
    "TopicPartition",
    "TopicSpec",
]
