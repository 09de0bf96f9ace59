"""Shared fixtures: the two implementations compared by the parity tests (see tests/parity.py).

Set FERROGRAPH_PARITY_IMPL=langgraph to run the parity suite against langgraph twice, which
checks that the scenarios and their normalisation are stable."""

from __future__ import annotations

import pytest

from tests import parity


@pytest.fixture
def oracle() -> parity.Lib:
    """langgraph: the behaviour to match."""
    return parity.oracle()


@pytest.fixture
def candidate() -> parity.Lib:
    """ferrograph (or langgraph under FERROGRAPH_PARITY_IMPL=langgraph); fails if missing."""
    return parity.candidate()
