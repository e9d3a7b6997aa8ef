"""Publish/subscribe: one interface (`base`), a Kafka and an in-process implementation."""

from service.bus.interface import (
    Bus,
    Message,
    OutgoingRecord,
    Published,
    Subscription,
    TopicPartition,
    TopicSpec,
)
from service.core.errors import BusError, CommitFailed

__all__ = [
    "Bus",
    "BusError",
    "CommitFailed",
    "Message",
    "OutgoingRecord",
    "Published",
    "Subscription",
    "TopicPartition",
    "TopicSpec",
]
