"""Deployed topic names: the prefix, the DLQ suffix, and the full list of topics to create."""

from __future__ import annotations

from schemas.events import Topic
from service.bus.topics import dlq_name, is_dlq, topic_name, topic_specs


def test_the_deployed_name_is_the_prefix_and_the_logical_name() -> None:
    assert topic_name("staging.", Topic.RUN_EVENTS) == "staging.agent-eval.run-events.v1"
    assert topic_name("", Topic.RUN_REQUESTS) == "agent-eval.run-requests.v1"
    assert topic_name("t1.", "custom") == "t1.custom"


def test_a_topics_dlq_is_its_name_with_the_dlq_suffix() -> None:
    assert dlq_name("staging.agent-eval.run-events.v1") == "staging.agent-eval.run-events.v1.dlq"


def test_only_dlq_names_are_recognised_as_dlqs() -> None:
    name = topic_name("p.", Topic.OPS_EVENTS)

    assert is_dlq(dlq_name(name))
    assert not is_dlq(name)
    assert not is_dlq("p.dlq-events")


def test_the_specs_cover_every_topic_and_its_dlq_with_the_prefix() -> None:
    specs = topic_specs("p.", partitions=6, replication_factor=3)

    expected = {f"p.{t}" for t in Topic} | {f"p.{t}.dlq" for t in Topic}
    assert {s.name for s in specs} == expected
    assert len(specs) == 2 * len(Topic)


def test_main_topics_get_the_partition_count_and_dlqs_get_one() -> None:
    specs = topic_specs("p.", partitions=6, replication_factor=3)

    assert {s.name: s.partitions for s in specs if not is_dlq(s.name)} == {f"p.{t}": 6 for t in Topic}
    assert {s.partitions for s in specs if is_dlq(s.name)} == {1}
    assert {s.replication_factor for s in specs} == {3}


def test_each_dlq_directly_follows_its_topic() -> None:
    specs = topic_specs("", partitions=2, replication_factor=1)

    pairs = list(zip(specs[::2], specs[1::2], strict=True))
    assert [(main.name, dlq.name) for main, dlq in pairs] == [(str(t), f"{t}.dlq") for t in Topic]
