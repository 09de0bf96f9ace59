"""`interrupt(..., response_schema=...)`: the answer is validated; a refused answer raises
the `ValidationError` marked as an invalid resume (LangGraph's mark, so LangGraph's own
`is_invalid_resume` and ours both see it), nothing of it is kept, and the question can be
answered again — compared with LangGraph."""

from __future__ import annotations

import asyncio
import operator
import threading
from typing import Annotated, Any, TypedDict

import langgraph.errors as lg_errors
import langgraph.graph as lg_graph
import langgraph.types as lg_types
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import BaseModel, ValidationError, field_validator

import ferrograph.errors as fg_errors
import ferrograph.graph as fg_graph
import ferrograph.types as fg_types

WAIT = 30.0  # seconds: a wait only a regression exhausts
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


class Log(TypedDict):
    log: Annotated[list[str], operator.add]


@pytest.mark.parametrize("driver", ["invoke", "ainvoke"])
def test_a_refused_answer_lets_the_other_answered_task_finish(driver: str):
    """Two tasks answered in one resume, one answer refused: the other task is not cut off
    (its side effect happens once, its writes are kept), the refused question stays pending.
    The refused answer is validated while the other task is still running: that task waits
    for an event the validator sets."""
    seen = {engine: _refused_with_a_sibling(graph_mod, types, driver)
            for engine, (graph_mod, types) in ENGINES.items()}
    assert seen["ferrograph"] == seen["langgraph"]
    assert seen["langgraph"] == (["check?"], ["checked", "sent"], ["email"])


def _refused_with_a_sibling(graph_mod: Any, types: Any, driver: str) -> Any:
    validating = threading.Event()
    sent: list[str] = []

    class Checked(BaseModel):
        approved: bool

        @field_validator("approved", mode="before")
        @classmethod
        def note(cls, value: Any) -> Any:
            validating.set()
            return value

    def send(state: Log) -> dict[str, Any]:
        types.interrupt("send?", response_schema=Decision)
        assert validating.wait(WAIT)  # the other task's answer is being refused
        sent.append("email")
        return {"log": ["sent"]}

    async def asend(state: Log) -> dict[str, Any]:
        types.interrupt("send?", response_schema=Decision)
        while not validating.is_set():
            await asyncio.sleep(0)  # lets the loop run the other task; no timing
        sent.append("email")
        return {"log": ["sent"]}

    def check(state: Log) -> dict[str, Any]:
        types.interrupt("check?", response_schema=Checked)
        return {"log": ["checked"]}

    graph = (graph_mod.StateGraph(Log)
             .add_node("send", send if driver == "invoke" else asend)
             .add_node("check", check)
             .add_edge(graph_mod.START, "send")
             .add_edge(graph_mod.START, "check")
             .compile(checkpointer=InMemorySaver()))
    config = {"configurable": {"thread_id": "1"}}

    def call(value: Any) -> Any:
        if driver == "invoke":
            return graph.invoke(value, config)
        return asyncio.run(graph.ainvoke(value, config))

    call({"log": []})
    ids = {i.value: i.id for i in graph.get_state(config).interrupts}
    with pytest.raises(ValidationError) as refused:
        call(types.Command(resume={ids["send?"]: {"approved": True},
                                   ids["check?"]: {"approved": "nope"}}))
    assert fg_errors.is_invalid_resume(refused.value)
    pending = [i.value for i in graph.get_state(config).interrupts]
    validating.set()
    result = call(types.Command(resume={ids["check?"]: {"approved": True}}))
    return pending, sorted(result["log"]), list(sent)
