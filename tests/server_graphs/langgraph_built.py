"""Graphs built with LangGraph's own `StateGraph` (not ferrograph's), whatever the server:
`ferrograph serve` runs them on ferrograph's engine, rebuilt by `ferrograph.adapt`
(`langgraph-built.json`)."""

from __future__ import annotations

from typing import Any

from graphs import CountState, SeedState, first, second, write_joke, write_poem
from langgraph.graph import START, StateGraph

seed = (
    StateGraph(SeedState)
    .add_node(write_joke)
    .add_node(write_poem)
    .add_edge(START, "write_joke")
    .add_edge(START, "write_poem")
    .compile()
)

counter_builder = (
    StateGraph(CountState).add_node(first).add_node(second)
    .add_edge(START, "first").add_edge("first", "second")
)
"""Not compiled: LangGraph's server compiles a builder it is given."""


def make_seed(config: dict[str, Any]) -> Any:
    """A factory whose graph is LangGraph's."""
    return seed
