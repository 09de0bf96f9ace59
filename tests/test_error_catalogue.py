"""README's tables of errors and warnings, row by row: each case is triggered here and must
raise (or warn with) the type and message the table promises."""

from __future__ import annotations

import asyncio
import operator
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import BaseModel

from ferrograph.graph import END, START, StateGraph
from ferrograph.managed import ManagedValue
from ferrograph.types import Command, Send

README = Path(__file__).resolve().parents[1] / "README.md"


class S(TypedDict):
    x: int
    log: Annotated[list, operator.add]


class P(BaseModel):
    x: int


def one(fn: Callable[[Any], Any] = lambda s: {"x": 1}) -> StateGraph:
    b = StateGraph(S)
    b.add_node("a", fn)
    b.add_edge(START, "a")
    return b


def run(builder: StateGraph, inputs: Any = None, **kw: Any) -> Any:
    return builder.compile().invoke({"x": 0, "log": []} if inputs is None else inputs, **kw)


def routed(path: Callable[[Any], Any]) -> StateGraph:
    b = one()
    b.add_conditional_edges("a", path)
    return b


def two_writers() -> StateGraph:
    b = one()
    b.add_node("b", lambda s: {"x": 2})
    b.add_edge(START, "b")
    return b


def route(state: Any) -> str:
    return END


def two_questions() -> Any:
    """Two parallel nodes ask, then a resume names neither question."""
    from ferrograph.types import Command, interrupt

    graph = (StateGraph(S).add_node("p", lambda s: {"x": interrupt("p?")})
             .add_node("q", lambda s: {"x": interrupt("q?")})
             .add_edge(START, "p").add_edge(START, "q")
             .compile(checkpointer=InMemorySaver()))
    config = {"configurable": {"thread_id": "two"}}
    graph.invoke({"x": 0}, config)
    return graph.invoke(Command(resume="yes"), config)


def looping() -> StateGraph:
    b = one()
    b.add_edge("a", "a")
    return b


TRIGGERS: dict[str, Callable[[], Any]] = {
    "no-entry": lambda: StateGraph(S).add_node("a", lambda s: {}).compile(),
    "unknown-source": lambda: one().add_edge("ghost", "a").compile(),
    "unknown-target": lambda: one().add_edge("a", "ghost").compile(),
    "join-unknown": lambda: one().add_edge(["a", "ghost"], END),
    "duplicate-node": lambda: one().add_node("a", lambda s: {}),
    "reserved-name": lambda: StateGraph(S).add_node(START, lambda s: {}),
    "reserved-char": lambda: StateGraph(S).add_node("a:b", lambda s: {}),
    "end-source": lambda: one().add_edge(END, "a"),
    "start-target": lambda: one().add_edge("a", START),
    "branch-target": lambda: one().add_conditional_edges("a", route, {"x": "ghost"}).compile(),
    "branch-twice": lambda: one().add_conditional_edges("a", route)
    .add_conditional_edges("a", route),
    "interrupt-node": lambda: one().compile(interrupt_before=["ghost"]),
    "empty-sequence": lambda: StateGraph(S).add_sequence([]),
    "managed-value": lambda: StateGraph(WithCustom),
    "stream-mode": lambda: list(one().compile().stream({"x": 0}, stream_mode="value")),
    "filter-node": lambda: list(one().compile().stream({"x": 0}, nodes=["ghost"])),
    "filter-type": lambda: list(one().compile().stream({"x": 0}, nodes=[1])),
    "recursion-limit-low": lambda: run(one(), config={"recursion_limit": 0}),
    "buffer-size": lambda: list(one().compile().stream({"x": 0}, buffer_size=0)),
    "input-none": lambda: one().compile().invoke(None),
    "no-thread": lambda: one().compile(checkpointer=InMemorySaver()).invoke({"x": 0}),
    "bad-checkpointer": lambda: one().compile(checkpointer=object()),
    "unknown-checkpoint": lambda: one().compile(checkpointer=InMemorySaver()).invoke(
        {"x": 0}, {"configurable": {"thread_id": "t",
                                    "checkpoint_id": "1f1f0000-0000-6000-8000-000000000000"}}),
    "update-unknown-node": lambda: one().compile(checkpointer=InMemorySaver()).update_state(
        {"configurable": {"thread_id": "t"}}, {"x": 1}, as_node="ghost"),
    "state-no-checkpointer": lambda: one().compile().get_state(
        {"configurable": {"thread_id": "t"}}),
    "resume-ambiguous": lambda: two_questions(),
    "input-type": lambda: one().compile().invoke("hello"),
    "input-keys": lambda: one().compile().invoke({"x": 0, "typo": 1}),
    "input-pydantic": lambda: StateGraph(P).add_node("a", lambda s: {"x": 1})
    .add_edge(START, "a").compile().invoke({"x": "not a number"}),
    "node-input": lambda: run(one(lambda s: {"x": "not a number"})
                              .add_node("b", lambda s: {}, input_schema=P).add_edge("a", "b")),
    "node-return": lambda: run(one(lambda s: 42)),
    "concurrent-write": lambda: run(two_writers()),
    "route-unknown": lambda: run(routed(lambda s: "ghost")),
    "send-unknown": lambda: run(routed(lambda s: [Send("ghost", {})])),
    "send-end": lambda: run(routed(lambda s: [Send(END, {})])),
    "branch-none": lambda: run(routed(lambda s: None)),
    "recursion": lambda: run(looping(), config={"recursion_limit": 3}),
}


class Custom(ManagedValue[int]):
    @staticmethod
    def get(scratchpad: Any) -> int:
        return 0


class WithCustom(TypedDict):
    x: int
    custom: Annotated[int, Custom]


def readme_rows() -> list[tuple[str, str, str]]:
    rows = []
    for line in README.read_text().splitlines():
        match = re.match(r"\| `([a-z-]+)`[^|]*(?:\\\|[^|]*)*\| (.+?) \| (.+?) \|$", line)
        if match:
            rows.append((match[1], match[2].strip("`"), match[3].replace("\\|", "|")))
    return rows


ROWS = readme_rows()
ERROR_ROWS = [row for row in ROWS if not row[1].endswith("Warning")]
WARNING_ROWS = [row for row in ROWS if row[1].endswith("Warning")]


def test_every_row_has_a_trigger_and_back():
    ids = [row[0] for row in ROWS]
    assert "node-raises" in ids  # the parse found the table
    assert set(ids) - {"node-raises"} == set(TRIGGERS)


@pytest.mark.parametrize(("case", "raised", "message"),
                         [row for row in ERROR_ROWS if row[0] != "node-raises"],
                         ids=[row[0] for row in ERROR_ROWS if row[0] != "node-raises"])
def test_readme_row_is_true(case: str, raised: str, message: str):
    with pytest.raises(Exception) as caught:  # noqa: B017 - the type is checked below
        TRIGGERS[case]()
    assert type(caught.value).__name__ == raised
    assert str(caught.value).startswith(message), str(caught.value)


@pytest.mark.parametrize(("case", "warned", "message"), WARNING_ROWS,
                         ids=[row[0] for row in WARNING_ROWS])
def test_readme_warning_row_is_true(case: str, warned: str, message: str):
    assert WARNING_ROWS, "the parse found the warnings table"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        TRIGGERS[case]()
    [warning] = [w for w in caught if w.category.__name__ == warned]
    assert str(warning.message).startswith(message), str(warning.message)


def test_unknown_input_keys_are_dropped_with_a_warning_naming_them():
    graph = one(lambda s: {"x": s["x"] + 1}).compile()
    for call in (graph.invoke, lambda v: list(graph.stream(v, stream_mode="values"))[-1],
                 lambda v: asyncio.run(graph.ainvoke(v))):
        with pytest.warns(UserWarning) as caught:
            assert call({"x": 1, "typo": 2, "log": [], "other": 3}) == {"x": 2, "log": []}
        assert [str(w.message) for w in caught] == [
            "Unknown key(s) in the graph input: 'typo', 'other' (dropped); the graph's state "
            "keys are: 'x', 'log'"
        ]


def test_node_router_and_reducer_errors_are_the_same_object():
    error = ArithmeticError("mine")

    def raise_it(*_: Any) -> Any:
        raise error

    for builder in (one(raise_it), routed(raise_it)):
        with pytest.raises(ArithmeticError) as caught:
            run(builder)
        assert caught.value is error


def test_command_to_unknown_node_names_it():
    b = one(lambda s: Command(goto="ghost"))
    with pytest.raises(Exception, match="Command at node 'a' routed to unknown node 'ghost'"):
        run(b)
