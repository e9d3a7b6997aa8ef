"""Integration fixtures shared beyond one module."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from consumers.executor.conversation import Engine
from service.bus.memory import InProcessBus
from service.core.settings import Settings
from service.db.postgres import Pool
from tests.support.executor_runs import engine_of
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


@pytest.fixture
async def engine(settings: Settings, pool: Pool) -> AsyncIterator[Engine]:
    """The executor's engine, as the consumer loop builds it (its clients closed after the test)."""
    async with engine_of(settings, pool) as built:
        yield built
