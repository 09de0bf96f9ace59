"""`stream` of `updates` / `values` on the direct driver (`DirectStream`, no `GraphRun`):
which runs take it, that its items are `GraphRun`'s (the same graphs streamed both ways), that
a parallel step hands each task's items on as it ends, and early stops and failures."""

from __future__ import annotations

import operator
import re
import threading
from typing import Annotated, Any, TypedDict

import pytest
from pydantic import BaseModel

from ferrograph.errors import GraphRecursionError, InvalidUpdateError
from ferrograph.graph import END, START, StateGraph
from ferrograph.types import Command, Send, interrupt

MODES: list[Any] = ["updates", "values", ["updates", "values"], ("values", "updates")]


class Log(TypedDict):
    log: Annotated[list, operator.add]
    x: int


class Model(BaseModel):
    x: int = 0


def both_ways(graph: Any, input: Any, mode: Any, **kwargs: Any) -> tuple[Any, Any]:
    """The items of `graph.stream` on the direct driver and under a `GraphRun` (or the
    error each raised, by type and message, with the items before it)."""
    def collect(**more: Any) -> Any:
        items: list[Any] = []
        try:
            for item in graph.stream(input, stream_mode=mode, **kwargs, **more):
                items.append(item)
        except Exception as e:  # noqa: BLE001 - compared
            return items, type(e), str(e)
        return items
    return collect(), collect(_graph_run=True)


def chain(n: int = 3) -> Any:
    b = StateGraph(Log)
    for i in range(n):
        b.add_node(f"n{i}", lambda s, i=i: {"log": [i], "x": s["x"] + 1})
        b.add_edge(START if i == 0 else f"n{i - 1}", f"n{i}")
    return b.compile()


def routed() -> Any:
    """Conditional edges, `Send`, `Command(goto=...)`, a node returning None, one writing an
    unknown key only, and a state object: the Python hooks' share of the driver."""
    b = StateGraph(Log)
    b.add_node("start", lambda s: Command(update={"log": ["start"]}, goto="quiet"))
    b.add_node("quiet", lambda s: None)
    b.add_node("stray", lambda s: {"unknown": 1})
    b.add_node("worker", lambda arg: {"log": [f"w{arg}"]})
    b.add_node("end", lambda s: {"x": len(s["log"])})
    b.add_edge(START, "start")
    b.add_edge("quiet", "stray")
    b.add_conditional_edges("stray", lambda s: [Send("worker", 7)])
    b.add_edge("worker", "end")
    b.add_edge("end", END)
    return b.compile()


def objects() -> Any:
    b = StateGraph(Model)
    b.add_node("a", lambda s: Model(x=s.x + 1))
    b.add_node("b", lambda s: {"x": s.x * 10})
    b.add_edge(START, "a")
    b.add_edge("a", "b")
    return b.compile()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("make", [chain, routed, objects])
def test_items_are_those_of_a_graph_run(make: Any, mode: Any, graph_runs: list[str]) -> None:
    graph = make()
    input = {"x": 1} if make is objects else {"log": [], "x": 0}
    direct, run = both_ways(graph, input, mode)
    assert direct == run
    assert graph_runs == ["GraphRun"]  # the second run alone


def test_which_runs_take_it(graph_runs: list[str]) -> None:
    graph = chain()
    list(graph.stream({"log": [], "x": 0}, stream_mode="updates"))
    list(graph.invoke({"log": [], "x": 0}, stream_mode="values"))
    assert graph_runs == []
    for kwargs in ({"stream_mode": "messages"}, {"stream_mode": ["updates", "custom"]},
                   {"stream_mode": "updates", "subgraphs": True},
                   {"stream_mode": "updates", "nodes": ["n1"]},
                   {"stream_mode": "values", "version": "v2"},
                   {"stream_mode": "values", "output_keys": ["x"]},
                   {"stream_mode": "updates", "interrupt_before": ["n1"]},
                   {"stream_mode": "updates", "config": {"callbacks": []}} | {}):
        graph_runs.clear()
        list(graph.stream({"log": [], "x": 0}, **kwargs))
        needs_run = kwargs.get("config") is None
        assert graph_runs == (["GraphRun"] if needs_run else []), kwargs


def test_parallel_steps_hand_each_task_on_as_it_ends() -> None:
    """A fast branch's update reaches the caller while its slow sibling still runs (it waits
    for the caller to have seen it)."""
    seen_fast = threading.Event()

    def slow(state: Log) -> dict[str, Any]:
        assert seen_fast.wait(60), "the fast branch's update was not handed on"
        return {"log": ["slow"]}

    b = StateGraph(Log)
    b.add_node("slow", slow)
    b.add_node("fast", lambda s: {"log": ["fast"]})
    b.add_edge(START, "slow")
    b.add_edge(START, "fast")
    items = []
    for item in b.compile().stream({"log": [], "x": 0}, stream_mode="updates"):
        items.append(item)
        if "fast" in item:
            seen_fast.set()
    assert items == [{"fast": {"log": ["fast"]}}, {"slow": {"log": ["slow"]}}]


@pytest.mark.parametrize("limit", [None, 1, 3])
def test_parallel_steps_and_max_concurrency(limit: int | None) -> None:
    running, most = 0, 0
    lock = threading.Lock()

    def branch(state: Log) -> dict[str, Any]:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        with lock:
            running -= 1
        return {"log": [1]}

    b = StateGraph(Log)
    for i in range(8):
        b.add_node(f"b{i}", branch)
        b.add_edge(START, f"b{i}")
    config = {} if limit is None else {"max_concurrency": limit}
    items = list(b.compile().stream({"log": [], "x": 0}, config, stream_mode="values"))
    assert items[-1]["log"] == [1] * 8 and len(items) == 2
    if limit is not None:
        assert most <= limit


def test_a_failure_comes_after_the_items_before_it() -> None:
    b = StateGraph(Log)
    b.add_node("ok", lambda s: {"x": 1})
    b.add_node("bad", lambda s: 1 / 0)
    b.add_edge(START, "ok")
    b.add_edge("ok", "bad")
    for mode in MODES:
        direct, run = both_ways(b.compile(), {"log": [], "x": 0}, mode)
        assert direct == run and direct[1] is ZeroDivisionError


def test_a_failed_parallel_step_waits_for_its_running_siblings() -> None:
    started, ended = threading.Event(), threading.Event()

    def sibling(state: Log) -> dict[str, Any]:
        started.set()
        threading.Event().wait(0.2)
        ended.set()
        return {"log": ["sibling"]}

    def bad(state: Log) -> dict[str, Any]:
        assert started.wait(60)
        raise ValueError("bad")

    b = StateGraph(Log)
    b.add_node("sibling", sibling)
    b.add_node("bad", bad)
    b.add_edge(START, "sibling")
    b.add_edge(START, "bad")
    with pytest.raises(ValueError, match="bad"):
        list(b.compile().stream({"log": [], "x": 0}, stream_mode="updates"))
    assert ended.is_set()  # it ended before the caller had the error


def test_errors_of_the_run_are_langgraphs() -> None:
    direct, run = both_ways(chain(30), {"log": [], "x": 0}, "updates",
                            config={"recursion_limit": 5})
    assert direct == run and direct[1] is GraphRecursionError
    b = StateGraph(Log)
    b.add_node("a", lambda s: {"x": 1})
    b.add_node("b", lambda s: {"x": 2})
    b.add_edge(START, "a")
    b.add_edge(START, "b")
    direct, run = both_ways(b.compile(), {"log": [], "x": 0}, "values")
    assert direct == run and direct[1] is InvalidUpdateError


def test_a_pause_at_interrupt_streams_as_under_a_graph_run() -> None:
    b = StateGraph(Log)
    b.add_node("a", lambda s: {"x": 1})
    b.add_node("ask", lambda s: {"x": interrupt("why?")})
    b.add_node("never", lambda s: {"x": 3})
    b.add_edge(START, "a")
    b.add_edge("a", "ask")
    b.add_edge("ask", "never")
    for mode in MODES:
        direct, run = both_ways(b.compile(), {"log": [], "x": 0}, mode)
        def text(items: list[Any]) -> str:  # interrupt ids come from random task ids
            return re.sub(r"id='[0-9a-f]+'", "id=.", str(items))
        assert text(direct) == text(run) and "__interrupt__" in text(direct)
        assert "never" not in text(direct)


def test_closing_the_stream_stops_the_run() -> None:
    calls: list[int] = []
    b = StateGraph(Log)
    for i in range(5):
        b.add_node(f"n{i}", lambda s, i=i: calls.append(i) or {"x": i})
        b.add_edge(START if i == 0 else f"n{i - 1}", f"n{i}")
    stream = b.compile().stream({"log": [], "x": 0}, stream_mode="updates")
    assert next(stream) == {"n0": {"x": 0}}
    stream.close()
    assert list(stream) == [] and calls == [0]


def test_bad_arguments_raise_at_the_call_as_under_a_graph_run() -> None:
    graph = chain()
    for kwargs in ({"config": {"recursion_limit": "many"}}, {"buffer_size": 0}):
        errors = []
        for more in ({}, {"_graph_run": True}):
            with pytest.raises(Exception) as raised:  # noqa: PT011 - compared below
                graph.stream({"log": [], "x": 0}, stream_mode="updates", **kwargs, **more)
            errors.append((raised.type, str(raised.value)))
        assert errors[0] == errors[1], kwargs
