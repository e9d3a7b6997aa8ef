"""`must_say` / `must_not_say` against the entire agent transcript (reference §4.1): a match may
span agent messages, and the reason names the turn where the match starts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.assertions import MustNotSay, MustSay
from schemas.evaluation import AssertionResult
from service.domain.scoring import check, first_match_turn
from service.domain.transcript import AgentTranscript, TranscriptTurn, agent_transcript


def agent(turn: int, text: str | None) -> TranscriptTurn:
    return TranscriptTurn(turn_number=turn, role="agent", text=text)


def persona(turn: int, text: str) -> TranscriptTurn:
    return TranscriptTurn(turn_number=turn, role="persona", text=text)


def say(pattern: str, transcript: list[TranscriptTurn]) -> AssertionResult:
    return check(MustSay(type="must_say", pattern=pattern), transcript, flow_agent=False)


def never_say(pattern: str, transcript: list[TranscriptTurn]) -> AssertionResult:
    return check(MustNotSay(type="must_not_say", pattern=pattern), transcript, flow_agent=False)


REFUND_THEN_GOODBYE = [
    persona(1, "I want my money back"),
    agent(2, "I have started your refund."),
    persona(3, "Thanks"),
    agent(4, "You're welcome, goodbye!"),
]


# --- spanning matches --------------------------------------------------------------------------


def test_must_say_passes_on_a_match_spanning_two_agent_messages_naming_the_first() -> None:
    result = say("refund.*goodbye", REFUND_THEN_GOODBYE)

    assert (result.passed, result.outcome, result.reason) == (True, "passed", "matched at turn 2")


def test_must_not_say_fails_on_a_forbidden_pattern_spanning_messages_naming_where_it_starts() -> None:
    result = never_say("refund.*goodbye", REFUND_THEN_GOODBYE)

    assert (result.passed, result.outcome, result.reason) == (False, "failed", "said at turn 2")


def test_a_match_spanning_three_messages_names_the_first_of_them() -> None:
    transcript = [agent(1, "Hello."), agent(3, "Your order"), agent(5, "is late,"), agent(7, "sorry.")]

    assert say("order.*late.*sorry", transcript).reason == "matched at turn 3"


def test_the_first_match_in_the_transcript_is_named_not_the_shortest() -> None:
    transcript = [agent(2, "refund one"), agent(4, "refund two, goodbye")]

    # RE2 finds the leftmost match: it starts at turn 2, although turn 4 alone would also match.
    assert say("refund.*goodbye", transcript).reason == "matched at turn 2"


def test_a_match_starting_at_the_boundary_between_messages_names_the_later_message() -> None:
    transcript = [agent(2, "Your refund is on its way"), agent(4, "goodbye")]

    assert say(r"\sgoodbye", transcript).reason == "matched at turn 4"
    assert say(r"way\s", transcript).reason == "matched at turn 2"


def test_persona_messages_in_between_never_join_the_agent_transcript() -> None:
    transcript = [agent(2, "Let me check."), persona(3, "swordfish"), agent(4, "Done.")]

    assert say("swordfish", transcript).passed is False
    assert say(r"check\.\ndone", transcript).reason == "matched at turn 2"
    assert never_say("check.*swordfish", transcript).passed is True


def test_agent_turns_without_text_are_left_out_of_the_joined_transcript() -> None:
    transcript = [agent(2, "refund started"), agent(3, None), agent(4, ""), agent(6, "goodbye")]

    assert say(r"started\ngoodbye", transcript).reason == "matched at turn 2"
    assert say("^goodbye", transcript).passed is False


def test_unicode_offsets_map_to_the_right_turn() -> None:
    transcript = [agent(1, "שלום 👋 ÉCOLE"), agent(3, "תודה רבה"), agent(5, "café")]

    assert say("רבה.*CAFÉ", transcript).reason == "matched at turn 3"
    assert say("café", transcript).reason == "matched at turn 5"
    assert say("école.*תודה", transcript).reason == "matched at turn 1"


# --- reasons when nothing matches are unchanged --------------------------------------------------


def test_must_say_without_a_match_keeps_its_reason() -> None:
    result = say("refund.*invoice", REFUND_THEN_GOODBYE)

    assert (result.passed, result.reason) == (False, "no agent message matches")


def test_must_not_say_without_a_match_passes_without_a_reason() -> None:
    result = never_say("goodbye.*refund", REFUND_THEN_GOODBYE)

    assert (result.passed, result.outcome, result.reason) == (True, "passed", None)


def test_an_agent_that_said_nothing_matches_nothing_not_even_an_empty_pattern_match() -> None:
    transcript = [persona(1, "Hello?"), agent(2, None)]

    assert say(".*", transcript).reason == "no agent message matches"
    assert never_say(".*", transcript).passed is True


# --- the joined transcript -----------------------------------------------------------------------


def test_agent_transcript_joins_text_turns_by_newlines_and_remembers_their_ends() -> None:
    joined = agent_transcript([agent(2, "ab"), persona(3, "xyz"), agent(4, "c"), agent(6, "de")])

    assert joined == AgentTranscript(text="ab\nc\nde", turns=(2, 4, 6), ends=(2, 4, 7))
    assert [joined.turn_at(offset) for offset in range(len(joined.text) + 1)] == [2, 2, 4, 4, 6, 6, 6, 6]


def test_agent_transcript_is_none_when_the_agent_said_nothing() -> None:
    assert agent_transcript([persona(1, "hi"), agent(2, None)]) is None
    assert agent_transcript([]) is None


@pytest.mark.parametrize(("pattern", "turn"), [("a", 1), ("b", 2), ("a.b", 1), ("c", None)])
def test_first_match_turn(pattern: str, turn: int | None) -> None:
    assert first_match_turn(pattern, [agent(1, "a"), agent(2, "b")]) == turn


# --- properties ----------------------------------------------------------------------------------

WORDS = ("hello", "refund", "bye", "école", "שלום", "\n")
texts = st.lists(st.sampled_from(WORDS), max_size=4).map(" ".join)


@given(st.lists(texts, max_size=6), st.sampled_from(WORDS[:-1]))
def test_a_match_in_one_message_is_still_found_no_later_than_that_message(
    messages: list[str], word: str
) -> None:
    transcript = [agent(2 * i + 1, text) for i, text in enumerate(messages)]
    alone = next((t.turn_number for t in transcript if t.text and word in t.text), None)

    found = first_match_turn(word, transcript)

    assert (found is None) == (alone is None)
    if alone is not None:
        assert found == alone  # a single word cannot start earlier than its first occurrence


@given(st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=6))
def test_every_offset_of_a_message_maps_to_its_own_turn(messages: list[str]) -> None:
    transcript = [agent(10 + i, text) for i, text in enumerate(messages)]
    joined = agent_transcript(transcript)
    assert joined is not None

    start = 0
    for turn in transcript:
        assert turn.text is not None
        for offset in range(start, start + len(turn.text)):
            assert joined.turn_at(offset) == turn.turn_number
        start += len(turn.text) + 1
