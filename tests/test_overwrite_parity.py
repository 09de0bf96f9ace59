"""`Overwrite`: a write that replaces a reducer key's value instead of going through its
reducer, compared with LangGraph (sequential, alongside other writes in one step, the dict
forms, and two in one step)."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

import langgraph.errors as lg_errors
import langgraph.graph as lg_graph
import langgraph.types as lg_types
import pytest

import ferrograph.errors as fg_errors
import ferrograph.graph as fg_graph
import ferrograph.types as fg_types

ENGINES = {"ferrograph": (fg_graph, fg_types, fg_errors),
           "langgraph": (lg_graph, lg_types, lg_errors)}


class Log(TypedDict):
    log: Annotated[list, operator.add]


def run(engine: str, second: Any, parallel_writes: list[Any]) -> Any:
    graph, _, _ = ENGINES[engine]
    builder = graph.StateGraph(Log)
    builder.add_node("first", lambda s: {"log": ["first"]})
    builder.add_node("second", lambda s: {"log": second})
    builder.add_edge(graph.START, "first")
    builder.add_edge("first", "second")
    for i, write in enumerate(parallel_writes):
        builder.add_node(f"p{i}", lambda s, w=write: {"log": w})
        builder.add_edge("first", f"p{i}")
    return builder.compile().invoke({"log": ["input"]})


@pytest.mark.parametrize("form", ["class", "dict", "typed dict"])
@pytest.mark.parametrize("parallel", [False, True])
def test_overwrite_replaces_the_value_as_in_langgraph(form: str, parallel: bool):
    seen = {}
    for engine, (_, types, _) in ENGINES.items():
        value = {"class": types.Overwrite(["new"]),
                 "dict": {"__overwrite__": ["new"]},
                 "typed dict": {"type": "__overwrite__", "value": ["new"]}}[form]
        seen[engine] = run(engine, value, [["side"]] if parallel else [])
    assert seen["ferrograph"] == seen["langgraph"] == {"log": ["new"]}


def test_two_overwrites_in_one_step_fail_as_in_langgraph():
    messages = {}
    for engine, (_, types, errors) in ENGINES.items():
        with pytest.raises(errors.InvalidUpdateError) as caught:
            run(engine, types.Overwrite(["a"]), [types.Overwrite(["b"])])
        messages[engine] = str(caught.value)
    assert messages["ferrograph"] == messages["langgraph"]
    assert "Can receive only one Overwrite value per super-step." in messages["ferrograph"]
