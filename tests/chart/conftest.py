"""Renders shared by the chart tests: the default values and every optional feature on."""

from __future__ import annotations

import pytest

from tests.chart.rendering import ALL_FEATURES, Manifest, render


@pytest.fixture(scope="session")
def default_manifests() -> list[Manifest]:
    return render()


@pytest.fixture(scope="session")
def all_features_manifests() -> list[Manifest]:
    return render(ALL_FEATURES)


@pytest.fixture(params=["default", "all-features"])
def manifests(
    request: pytest.FixtureRequest, default_manifests: list[Manifest], all_features_manifests: list[Manifest]
) -> list[Manifest]:
    """Each test using this runs once per rendering."""
    return default_manifests if request.param == "default" else all_features_manifests
