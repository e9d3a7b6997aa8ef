"""The floor plan: the README's layout tree matches the code, and every module has a named part."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _layout_block() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    after = readme[readme.index("<!-- layout -->") :]
    block = after[after.index("```\n") + 4 :]
    return block[: block.index("```")].splitlines()


def _tree_parts() -> dict[str, set[str]]:
    """Top-level folders of the tree, and the parts it names under `service/`."""
    parts: dict[str, set[str]] = {"top": set(), "service": set()}
    for line in _layout_block():
        top = re.match(r"^([a-z_]+/(?: [a-z_]+/)*)\s", line)
        if top:
            parts["top"].update(name.rstrip("/") for name in top.group(1).split())
        nested = re.match(r"^  ([a-z_]+(?:/|\.py))\s", line)
        if nested:
            parts["service"].add(nested.group(1).rstrip("/"))
    return parts


def test_the_readme_tree_names_every_part_of_service_and_nothing_else() -> None:
    service = ROOT / "service"
    actual = {p.name for p in service.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    actual |= {p.name for p in service.glob("*.py") if p.name != "__init__.py"}

    assert _tree_parts()["service"] == actual


def test_the_readme_tree_names_the_top_level_folders_that_exist() -> None:
    for name in _tree_parts()["top"]:
        assert (ROOT / name).is_dir(), name


def test_only_the_composition_root_sits_in_the_root_of_service() -> None:
    assert sorted(p.name for p in (ROOT / "service").glob("*.py")) == ["__init__.py", "cli.py"]


def test_no_module_is_a_grab_bag() -> None:
    names = {p.stem for part in ("service", "consumers", "schemas") for p in (ROOT / part).rglob("*.py")}

    assert not names & {"utils", "helpers", "common", "misc"}
