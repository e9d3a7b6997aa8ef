"""bench.constraints: a table CHECK becomes the same check on VALUE for a domain, and a variant's
figure is its least CPU per statement over the rounds."""

from __future__ import annotations

from bench.constraints import Check, Figure, as_domain_check, lowest


def test_a_checks_column_becomes_value_quoted_or_not_and_only_as_a_whole_word() -> None:
    attempt = Check("eval_runs_attempt_check", "CHECK ((attempt >= 0))", True, "attempt", "integer")
    position = Check("eval_runs_position_check", 'CHECK (("position" >= 0))', True, "position", "integer")
    score = Check(
        "s",
        "CHECK (((score >= (0)::double precision) AND (score <= (100)::double precision)))",
        True,
        "score",
        "double precision",
    )
    tokens = Check("t", "CHECK ((agent_input_tokens >= 0))", True, "agent_input_tokens", "bigint")
    assert as_domain_check(attempt) == "CHECK ((VALUE >= 0))"
    assert as_domain_check(position) == "CHECK ((VALUE >= 0))"
    assert as_domain_check(score) == (
        "CHECK (((VALUE >= (0)::double precision) AND (VALUE <= (100)::double precision)))"
    )
    assert as_domain_check(tokens) == "CHECK ((VALUE >= 0))"


def test_a_variants_figure_is_the_least_of_its_rounds_for_each_statement() -> None:
    rounds = [Figure("none", 0, 0, 90.0, 80.0), Figure("none", 0, 0, 70.0, 95.0)]
    assert lowest(rounds) == Figure("none", 0, 0, 70.0, 80.0)
