"""What became of a pending run's last request (`service.domain.redispatch.request_fate`): waiting
while unsent or ahead of the executors' committed offset, lost when missing, read past, published
without a position, or older than the give-up age; unknown when the offsets could not be read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from consumers.redispatch import ExecutorOffsets
from consumers.registry import ROLES
from service.bus.memory import InProcessBus
from service.bus.topics import topic_name
from service.core.settings import Settings
from service.domain.redispatch import LastRequest, RequestFate, request_fate

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
GIVE_UP_S = 3600.0


def _request(
    *, sent: bool = True, partition: int | None = 1, offset: int | None = 10, age_s: float = 60
) -> LastRequest:
    return LastRequest(NOW - timedelta(seconds=age_s), sent, partition, offset)


def _fate(request: LastRequest | None, committed: dict[int, int] | None) -> RequestFate:
    return request_fate(request, committed, now=NOW, give_up_after_s=GIVE_UP_S)


@pytest.mark.parametrize(
    ("committed", "fate"),
    [
        ({1: 5}, RequestFate.WAITING),  # the group has not reached it
        ({1: 10}, RequestFate.WAITING),  # it is the next record the group reads
        ({1: 11}, RequestFate.LOST),  # read and committed, yet the run is still pending
        ({0: 50}, RequestFate.WAITING),  # the group never committed on its partition
        ({}, RequestFate.WAITING),  # the group never committed at all
        (None, RequestFate.UNKNOWN),  # the offsets could not be read
    ],
)
def test_a_published_request_is_judged_by_the_committed_offset_of_its_partition(
    committed: dict[int, int] | None, fate: RequestFate
) -> None:
    assert _fate(_request(), committed) is fate


def test_a_run_without_a_request_lost_it() -> None:
    assert _fate(None, {1: 0}) is RequestFate.LOST
    assert _fate(None, None) is RequestFate.LOST


def test_a_request_the_relay_has_yet_to_publish_waits_even_when_offsets_are_unknown() -> None:
    unsent = _request(sent=False, partition=None, offset=None)
    assert _fate(unsent, None) is RequestFate.WAITING
    assert _fate(unsent, {1: 99}) is RequestFate.WAITING


def test_a_request_published_without_a_position_falls_back_to_the_time_rule() -> None:
    assert _fate(_request(partition=None, offset=None), {1: 0}) is RequestFate.LOST


def test_a_request_older_than_the_give_up_age_counts_as_lost_whatever_the_offsets_say() -> None:
    old = _request(age_s=GIVE_UP_S)
    assert _fate(old, {1: 0}) is RequestFate.LOST
    assert _fate(old, None) is RequestFate.LOST
    assert _fate(_request(sent=False, age_s=GIVE_UP_S), None) is RequestFate.LOST


def test_the_sweep_reads_the_offsets_of_the_group_the_executors_join() -> None:
    settings = Settings(topic_prefix="p.")
    offsets = ExecutorOffsets.of(InProcessBus(), settings)
    assert offsets.group == ROLES["executor"].group("p.")
    assert offsets.topic == topic_name("p.", ROLES["executor"].topics[0])
