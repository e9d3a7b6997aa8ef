"""bench.constraints: a domain's check written back as a table CHECK on its column, and a
variant's figure is its least CPU per statement over the rounds."""

from __future__ import annotations

from bench.constraints import Figure, as_table_check, lowest


def test_a_domains_value_becomes_the_quoted_column_and_only_as_a_whole_word() -> None:
    assert as_table_check("attempt", "CHECK ((VALUE >= 0))") == 'CHECK (("attempt" >= 0))'
    assert as_table_check("position", "CHECK ((VALUE >= 0))") == 'CHECK (("position" >= 0))'
    assert as_table_check("mode", "CHECK ((VALUE = ANY (ARRAY['text'::text, 'VALUES'::text])))") == (
        "CHECK ((\"mode\" = ANY (ARRAY['text'::text, 'VALUES'::text])))"
    )


def test_a_variants_figure_is_the_least_of_its_rounds_for_each_statement() -> None:
    rounds = [Figure("none", 0, 0, 90.0, 80.0), Figure("none", 0, 0, 70.0, 95.0)]
    assert lowest(rounds) == Figure("none", 0, 0, 70.0, 80.0)
