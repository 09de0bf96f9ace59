"""Shared fixtures: the two implementations compared by the parity tests (see tests/parity.py).

Set FERROGRAPH_PARITY_IMPL=langgraph to run the parity suite against langgraph twice, which
checks that the scenarios and their normalisation are stable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import parity
from tests.services import PostgresServer


@pytest.fixture
def oracle() -> parity.Lib:
    """langgraph: the behaviour to match."""
    return parity.oracle()


@pytest.fixture
def candidate() -> parity.Lib:
    """ferrograph (or langgraph under FERROGRAPH_PARITY_IMPL=langgraph); fails if missing."""
    return parity.candidate()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A libpq URL of a throwaway PostgreSQL server (tests/services.py), started on first use
    and stopped, with its data removed, at the end of the session."""
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()
