"""Shared fixtures: the two implementations compared by the parity tests (see tests/parity.py).

Set FERROGRAPH_PARITY_IMPL=langgraph to run the parity suite against langgraph twice, which
checks that the scenarios and their normalisation are stable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import parity
from tests.server_support import HeldModel, ferrograph_serve, langgraph_dev
from tests.services import PostgresServer

PAIR_MAX_BODY_BYTES = 64 * 1024
"""The body limit both servers of `server_pair` are given (LangGraph's variable), small
enough to test the 413 with a body the loopback socket takes whole."""


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


@pytest.fixture(scope="session")
def server_pair(tmp_path_factory) -> Iterator[dict[str, str]]:
    """{"ferrograph": url, "langgraph": url}: `ferrograph serve` and `langgraph dev` serving
    tests/server_graphs, both with `HTTP_MAX_REQUEST_BODY_BYTES=PAIR_MAX_BODY_BYTES`; shared
    by the parity modules that do not need servers of their own."""
    env = {"HTTP_MAX_REQUEST_BODY_BYTES": str(PAIR_MAX_BODY_BYTES)}
    with HeldModel() as model:
        fg_dir = tmp_path_factory.mktemp("pair-ferrograph")
        lg_dir = tmp_path_factory.mktemp("pair-langgraph")
        with ferrograph_serve(model, fg_dir, env=env) as fg, \
                langgraph_dev(model, lg_dir, env=env) as lg:
            yield {"ferrograph": fg.url, "langgraph": lg.url}


@pytest.fixture
def graph_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records each `GraphRun` made (a run on the Rust direct driver makes none)."""
    import ferrograph.pregel.main as main_module

    made: list[str] = []
    real = main_module.GraphRun

    def recording(*args, **kwargs):
        made.append("GraphRun")
        return real(*args, **kwargs)

    monkeypatch.setattr(main_module, "GraphRun", recording)
    return made
