"""Integration fixtures shared beyond one module."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from service.bus.memory import InProcessBus
from tests.support.fake_llm import FakeLLM, fake_llm


@pytest.fixture
async def bus() -> AsyncIterator[InProcessBus]:
    """An in-process bus (a module that needs Kafka defines its own `bus`)."""
    bus = InProcessBus()
    yield bus
    await bus.stop()


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLM]:
    """A real local chat-completions server with scripted replies."""
    async with fake_llm() as server:
        yield server
