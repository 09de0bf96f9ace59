"""`ainvoke` of async nodes on the Rust driver (`DirectAsyncRun`, `pregel/_direct_async.py`):
which runs take it, and parity with LangGraph's `ainvoke` for results, errors, cancellation,
parallel branches, `Send`, `Command`, `get_config` inside nodes and the recursion limit."""

from __future__ import annotations

import asyncio
import contextvars
import operator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.runnables import RunnableConfig

from tests.parity import LIB_NAMES, Lib, Raised, load, normalise

WAIT = 60  # seconds: generous, for a loaded machine


class Log(TypedDict):
    log: Annotated[list, operator.add]
    x: int


async def until(condition: Any) -> None:
    """Returns once `condition()` holds (the loop turning meanwhile), within `WAIT`."""
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0)
    await asyncio.wait_for(poll(), WAIT)


def lib(name: str) -> Lib:
    return load(name)


def outcome_of(coro_fn: Any) -> Any:
    """The normalised result of running `coro_fn()`, or `Raised` (with its notes)."""
    try:
        return normalise(asyncio.run(coro_fn()))
    except Exception as e:  # noqa: BLE001 - the exception is the outcome being compared
        return (Raised.of(e), [normalise(n) for n in getattr(e, "__notes__", [])])


def both(build: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """What `ainvoke` of the graph `build(L)` gives on each implementation."""
    outcomes = {}
    for name in LIB_NAMES:
        graph = build(lib(name))
        outcomes[name] = outcome_of(lambda g=graph: g.ainvoke(*args, **kwargs))
    return outcomes


def chain(L: Lib, suspend: bool) -> Any:
    async def step(state: Log) -> dict[str, Any]:
        if suspend:
            await asyncio.sleep(0)
        return {"log": [state["x"]], "x": state["x"] + 1}

    b = L.StateGraph(Log)
    for i in range(3):
        b.add_node(f"n{i}", step)
        b.add_edge(L.START if i == 0 else f"n{i - 1}", f"n{i}")
    return b.compile()


def test_an_async_chain_takes_the_rust_driver(graph_runs: list[str]) -> None:
    graph = chain(lib("ferrograph"), suspend=True)
    assert asyncio.run(graph.ainvoke({"log": [], "x": 0})) == {"log": [0, 1, 2], "x": 3}
    assert graph_runs == []


def test_graphs_it_cannot_serve_go_through_a_graph_run(graph_runs: list[str]) -> None:
    L = lib("ferrograph")

    async def anode(state: Log) -> dict[str, Any]:
        return {"log": ["a"]}

    async def arouter(state: Log) -> str:
        return "b"

    mixed = L.StateGraph(Log)
    mixed.add_node("a", anode)
    mixed.add_node("b", lambda s: {"log": ["b"]})  # a sync node: off the loop
    mixed.add_edge(L.START, "a")
    mixed.add_edge("a", "b")
    routed = L.StateGraph(Log)
    routed.add_node("a", anode)
    routed.add_node("b", anode)
    routed.add_edge(L.START, "a")
    routed.add_conditional_edges("a", arouter)  # an async router: awaited by GraphRun
    for graph in (mixed.compile(), routed.compile()):
        assert asyncio.run(graph.ainvoke({"log": [], "x": 0}))["log"][0] == "a"
    assert graph_runs == ["GraphRun", "GraphRun"]
    asyncio.run(chain(L, suspend=False).ainvoke({"log": [], "x": 0}, interrupt_before=["n1"]))
    assert graph_runs == ["GraphRun"] * 3


@pytest.mark.parametrize("suspend", [False, True])
def test_results_match_langgraph(suspend: bool) -> None:
    outcomes = both(lambda L: chain(L, suspend), {"log": [], "x": 0})
    assert outcomes["ferrograph"] == outcomes["langgraph"] == {"log": [0, 1, 2], "x": 3}
    outcomes = both(lambda L: chain(L, suspend), {"log": [], "x": 0}, output_keys="x")
    assert outcomes["ferrograph"] == outcomes["langgraph"] == 3


def fan(L: Lib, fail: str | None = None) -> Any:
    """START -> a, b, c in parallel -> join; with `fail`, that branch raises."""
    def make(name: str) -> Any:
        async def node(state: Log) -> dict[str, Any]:
            await asyncio.sleep(0.001 if name == "b" else 0)
            if name == fail:
                raise ValueError(f"{name} failed")
            return {"log": [name]}
        return node

    b = L.StateGraph(Log)
    for name in ("a", "b", "c", "join"):
        b.add_node(name, make(name))
    for name in ("a", "b", "c"):
        b.add_edge(L.START, name)
        b.add_edge(name, "join")
    return b.compile()


def test_parallel_branches_match_langgraph() -> None:
    outcomes = both(fan, {"log": [], "x": 0})
    assert outcomes["ferrograph"] == outcomes["langgraph"]
    assert outcomes["ferrograph"]["log"] == ["a", "b", "c", "join"]


@pytest.mark.parametrize("fail", ["a", "b"])
def test_a_failing_node_raises_as_in_langgraph(fail: str) -> None:
    outcomes = both(lambda L: fan(L, fail), {"log": [], "x": 0})
    assert outcomes["ferrograph"] == outcomes["langgraph"]
    raised, notes = outcomes["ferrograph"]
    assert raised.types[0] == "ValueError" and notes[0].startswith(
        f"During task with name '{fail}' and id")


def test_a_failure_cancels_the_running_siblings_as_in_langgraph() -> None:
    def build(L: Lib, seen: list[str]) -> Any:
        async def slow(state: Log) -> dict[str, Any]:
            try:
                await asyncio.sleep(WAIT)
            except asyncio.CancelledError:
                seen.append("slow cancelled")
                raise
            return {"log": ["slow"]}

        async def bad(state: Log) -> dict[str, Any]:
            await asyncio.sleep(0)
            raise KeyError("bad")

        b = L.StateGraph(Log)
        b.add_node("slow", slow)
        b.add_node("bad", bad)
        b.add_edge(L.START, "slow")
        b.add_edge(L.START, "bad")
        return b.compile()

    for name in LIB_NAMES:
        seen: list[str] = []
        graph = build(lib(name), seen)

        async def run(graph: Any = graph, seen: list[str] = seen) -> Any:
            with pytest.raises(KeyError):
                await graph.ainvoke({"log": [], "x": 0})
            await until(lambda: seen)  # the cancelled sibling runs its handler
            return seen

        assert asyncio.run(run()) == ["slow cancelled"], name


def test_cancelling_the_caller_cancels_the_node_as_in_langgraph() -> None:
    for name in LIB_NAMES:
        L = lib(name)
        events: list[str] = []

        async def run(L: Lib = L, events: list[str] = events) -> None:
            started = asyncio.Event()

            async def waits(state: Log) -> dict[str, Any]:
                started.set()
                try:
                    await asyncio.sleep(WAIT)
                except asyncio.CancelledError:
                    events.append("node cancelled")
                    raise
                return {"log": ["never"]}

            b = L.StateGraph(Log)
            b.add_node("waits", waits)
            b.add_node("other", waits)
            b.add_edge(L.START, "waits")
            b.add_edge(L.START, "other")  # two tasks of the loop
            one = L.StateGraph(Log)
            one.add_node("waits", waits)
            one.add_edge(L.START, "waits")  # one task, awaited in place
            for graph in (b.compile(), one.compile()):
                started.clear()
                task = asyncio.ensure_future(graph.ainvoke({"log": [], "x": 0}))
                await asyncio.wait_for(started.wait(), WAIT)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                events.append("caller cancelled")
            await until(lambda: events.count("node cancelled") >= 3)

        asyncio.run(run())
        assert events.count("caller cancelled") == 2, name
        assert events.count("node cancelled") == 3, name


def test_a_node_raising_cancelled_error_itself_matches_langgraph() -> None:
    def build(L: Lib) -> Any:
        async def node(state: Log) -> dict[str, Any]:
            raise asyncio.CancelledError

        b = L.StateGraph(Log)
        b.add_node("node", node)
        b.add_edge(L.START, "node")
        return b.compile()

    outcomes = {}
    for name in LIB_NAMES:
        graph = build(lib(name))

        async def run(graph: Any = graph) -> Any:
            try:
                await graph.ainvoke({"log": [], "x": 0})
            except BaseException as e:  # noqa: BLE001 - compared below
                return Raised.of(e)
        outcomes[name] = asyncio.run(run())
    assert outcomes["ferrograph"] == outcomes["langgraph"]


def test_send_and_command_goto_match_langgraph() -> None:
    def build(L: Lib) -> Any:
        async def plan(state: Log) -> Any:
            # (the second `Send` carries a timeout of its own: the runner awaits it)
            return L.Command(update={"log": ["plan"]}, goto=[
                L.Send("work", 1), L.Send("work", 2, timeout=WAIT), "tally"])

        async def work(item: int) -> dict[str, Any]:
            await asyncio.sleep(0)
            return {"log": [f"work {item}"]}

        async def tally(state: Log) -> dict[str, Any]:
            return {"x": len(state["log"])}

        def route(state: Log) -> list[Any]:
            return [L.Send("work", 3)] if state["x"] == 1 else []

        b = L.StateGraph(Log)
        b.add_node("plan", plan)
        b.add_node("work", work)
        b.add_node("tally", tally)
        b.add_edge(L.START, "plan")
        b.add_conditional_edges("tally", route)
        return b.compile()

    outcomes = both(build, {"log": [], "x": 0})
    assert outcomes["ferrograph"] == outcomes["langgraph"]
    assert outcomes["ferrograph"]["log"] == ["plan", "work 1", "work 2", "work 3"]


def test_get_config_inside_async_nodes_matches_langgraph() -> None:
    def build(L: Lib) -> Any:
        async def node(state: Log) -> dict[str, Any]:
            await asyncio.sleep(0)
            config = L.get_config()
            metadata = config["metadata"]
            seen = {k: metadata[k] for k in ("langgraph_node", "langgraph_step",
                                             "langgraph_path", "langgraph_triggers", "team")}
            seen["ns"] = config["configurable"]["checkpoint_ns"].split(":")[0]
            seen["user"] = config["configurable"]["user"]
            seen["tags"] = config["tags"]
            return {"log": [seen]}

        async def push(item: int) -> dict[str, Any]:
            return await node({"log": [], "x": item})

        b = L.StateGraph(Log)
        b.add_node("a", node)
        b.add_node("b", node)
        b.add_node("push", push)
        b.add_edge(L.START, "a")
        b.add_edge(L.START, "b")
        b.add_conditional_edges("a", lambda s: L.Send("push", 7))
        return b.compile()

    config = {"tags": ["t"], "metadata": {"team": "core"}, "configurable": {"user": "ada"}}
    outcomes = both(build, {"log": [], "x": 0}, config)
    assert outcomes["ferrograph"] == outcomes["langgraph"]
    assert [seen["langgraph_node"] for seen in outcomes["ferrograph"]["log"]] == \
        ["a", "b", "push"]


def test_the_recursion_limit_matches_langgraph() -> None:
    def build(L: Lib) -> Any:
        async def again(state: Log) -> dict[str, Any]:
            return {"x": state["x"] + 1}

        b = L.StateGraph(Log)
        b.add_node("again", again)
        b.add_edge(L.START, "again")
        b.add_edge("again", "again")
        return b.compile()

    outcomes = both(build, {"log": [], "x": 0}, {"recursion_limit": 5})
    assert outcomes["ferrograph"] == outcomes["langgraph"]
    assert outcomes["ferrograph"][0].types[0].endswith("GraphRecursionError")


def test_two_writes_to_a_last_value_key_match_langgraph() -> None:
    def build(L: Lib) -> Any:
        async def write(state: Log) -> dict[str, Any]:
            return {"x": 1}

        b = L.StateGraph(Log)
        b.add_node("a", write)
        b.add_node("b", write)
        b.add_edge(L.START, "a")
        b.add_edge(L.START, "b")
        return b.compile()

    outcomes = both(build, {"log": [], "x": 0})
    assert outcomes["ferrograph"] == outcomes["langgraph"]
    assert outcomes["ferrograph"][0].types[0].endswith("InvalidUpdateError")


def test_runner_nodes_and_a_parent_command_match_langgraph() -> None:
    """Nodes the runner awaits (one taking `config`, one with a retry policy) and a plain
    node whose subgraph sends a `Command` to this graph."""
    def build(L: Lib) -> Any:
        attempts: list[int] = []

        async def takes_config(state: Log, config: RunnableConfig) -> dict[str, Any]:
            return {"log": [config["metadata"]["langgraph_node"]]}

        async def flaky(state: Log) -> dict[str, Any]:
            attempts.append(1)
            if len(attempts) < 2:
                raise ValueError("once")
            return {"log": [f"flaky after {len(attempts)}"]}

        async def escape(state: Log) -> dict[str, Any]:
            return L.Command(graph=L.Command.PARENT, goto="done", update={"log": ["up"]})

        sub = L.StateGraph(Log)
        sub.add_node("escape", escape)
        sub.add_edge(L.START, "escape")
        subgraph = sub.compile()

        async def calls_sub(state: Log) -> Any:
            return await subgraph.ainvoke({"log": [], "x": 0})

        async def done(state: Log) -> dict[str, Any]:
            return {"x": len(state["log"])}

        b = L.StateGraph(Log)
        b.add_node("takes_config", takes_config)
        policy = L.RetryPolicy(retry_on=ValueError, initial_interval=0.001, jitter=False)
        b.add_node("flaky", flaky, retry_policy=policy)
        b.add_node("calls_sub", calls_sub)
        b.add_node("done", done)
        b.add_edge(L.START, "takes_config")
        b.add_edge("takes_config", "flaky")
        b.add_edge("flaky", "calls_sub")
        return b.compile()

    outcomes = both(build, {"log": [], "x": 0})
    assert outcomes["ferrograph"] == outcomes["langgraph"]
    assert outcomes["ferrograph"] == {"log": ["takes_config", "flaky after 2", "up"], "x": 3}


def test_max_concurrency_bounds_the_running_nodes_as_in_langgraph() -> None:
    def build(L: Lib, peak: list[int]) -> Any:
        running = [0]

        async def node(state: Any) -> dict[str, Any]:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            await asyncio.sleep(0.001)
            running[0] -= 1
            return {"log": [state]}

        b = L.StateGraph(Log)
        b.add_node("work", node)
        b.add_conditional_edges(L.START, lambda s: [L.Send("work", i) for i in range(6)])
        return b.compile()

    for name in LIB_NAMES:
        peak = [0]
        result = asyncio.run(build(lib(name), peak).ainvoke({"log": [], "x": 0},
                                                            {"max_concurrency": 2}))
        assert result["log"] == list(range(6)) and peak[0] == 2, name


def test_context_variables_set_by_nodes_are_seen_as_in_langgraph() -> None:
    """A node's own context variables: each task of a step of several has a copy of the
    caller's context; a step of one task runs in the caller's."""
    def build(L: Lib, var: contextvars.ContextVar[str]) -> Any:
        def make(name: str) -> Any:
            async def node(state: Log) -> dict[str, Any]:
                seen = var.get()
                var.set(name)
                await asyncio.sleep(0)
                return {"log": [f"{name} saw {seen}"]}
            return node

        b = L.StateGraph(Log)
        for name in ("a", "b", "c", "d"):
            b.add_node(name, make(name))
        b.add_edge(L.START, "a")
        b.add_edge("a", "b")
        b.add_edge("a", "c")
        b.add_edge("b", "d")
        return b.compile()

    outcomes = {}
    for name in LIB_NAMES:
        var: contextvars.ContextVar[str] = contextvars.ContextVar(f"var_{name}", default="-")
        graph = build(lib(name), var)

        async def run(graph: Any = graph, var: contextvars.ContextVar[str] = var) -> Any:
            result = await graph.ainvoke({"log": [], "x": 0})
            return result["log"], var.get()

        outcomes[name] = asyncio.run(run())
    assert outcomes["ferrograph"] == outcomes["langgraph"]


def test_an_interrupt_without_a_checkpointer_matches_langgraph() -> None:
    def build(L: Lib) -> Any:
        interrupt = load_interrupt(L)

        async def asks(state: Log) -> dict[str, Any]:
            return {"log": [interrupt("name?")]}

        async def other(state: Log) -> dict[str, Any]:
            return {"log": ["other"]}

        b = L.StateGraph(Log)
        b.add_node("asks", asks)
        b.add_node("other", other)
        b.add_edge(L.START, "asks")
        b.add_edge(L.START, "other")
        b.add_edge("other", "asks")
        return b.compile()

    outcomes = both(build, {"log": [], "x": 0})
    for result in outcomes.values():  # an interrupt's id hashes its task's (random) id
        for question in result["__interrupt__"]:
            question["id"] = "<id>"
    assert outcomes["ferrograph"] == outcomes["langgraph"]
    assert outcomes["ferrograph"]["log"] == ["other"]


def load_interrupt(L: Lib) -> Any:
    import importlib

    return importlib.import_module(f"{L.name}.types").interrupt
