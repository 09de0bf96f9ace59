"""`interrupt(..., response_schema=...)`: the answer is validated; a refused answer raises
the `ValidationError` marked as an invalid resume (LangGraph's mark, so LangGraph's own
`is_invalid_resume` and ours both see it), nothing of it is kept, and the question can be
answered again — compared with LangGraph."""

from __future__ import annotations

from typing import Any, TypedDict

import langgraph.errors as lg_errors
import langgraph.graph as lg_graph
import langgraph.types as lg_types
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import BaseModel, ValidationError

import ferrograph.errors as fg_errors
import ferrograph.graph as fg_graph
import ferrograph.types as fg_types

ENGINES = {"ferrograph": (fg_graph, fg_types), "langgraph": (lg_graph, lg_types)}


class Decision(BaseModel):
    approved: bool


class State(TypedDict):
    answer: Any


@pytest.mark.parametrize("style", ["value", "by id"])
def test_a_refused_answer_can_be_given_again(style: str):
    seen = {}
    for engine, (graph_mod, types) in ENGINES.items():
        graph = (graph_mod.StateGraph(State)
                 .add_node("node", lambda s, t=types: {
                     "answer": t.interrupt("approve?", response_schema=Decision)})
                 .add_edge(graph_mod.START, "node")
                 .compile(checkpointer=InMemorySaver()))
        config = {"configurable": {"thread_id": "1"}}
        asked = graph.invoke({"answer": None}, config)["__interrupt__"][0]

        def answer(value: Any, asked: Any = asked, types: Any = types) -> Any:
            return types.Command(resume=value if style == "value" else {asked.id: value})

        with pytest.raises(ValidationError) as refused:
            graph.invoke(answer({"approved": "nope"}), config)
        assert fg_errors.is_invalid_resume(refused.value)
        assert lg_errors.is_invalid_resume(refused.value)
        seen[engine] = (asked.response_schema, graph.invoke(answer({"approved": False}), config))
    assert seen["ferrograph"] == seen["langgraph"]
    assert seen["ferrograph"][1] == {"answer": Decision(approved=False)}
