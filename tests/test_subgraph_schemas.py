"""A subgraph with its own, narrower schema, used as a node: it reads the keys it declares
and ignores the rest of the parent's state, in ferrograph as in LangGraph."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from tests.parity import Lib


class Outer(TypedDict):
    x: int
    log: Annotated[list, operator.add]


class Inner(TypedDict):
    x: int


def run(lib: Lib) -> Any:
    inner = lib.StateGraph(Inner)
    inner.add_node("double", lambda s: {"x": s["x"] * 2})
    inner.add_edge(lib.START, "double")
    outer = lib.StateGraph(Outer)
    outer.add_node("sub", inner.compile())
    outer.add_edge(lib.START, "sub")
    graph = outer.compile()
    return (graph.invoke({"x": 3, "log": ["keep"]}),
            [(len(ns), item) for ns, item in
             graph.stream({"x": 3, "log": []}, subgraphs=True, stream_mode="updates")])


def test_subgraph_with_its_own_schema_ignores_parent_keys(candidate: Lib, oracle: Lib):
    assert run(candidate) == run(oracle) == (
        {"x": 6, "log": ["keep"]},
        [(1, {"double": {"x": 6}}), (0, {"sub": {"x": 6}})],
    )
