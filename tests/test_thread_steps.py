"""A checkpointed `invoke`'s plain steps on the Rust driver (`pregel/_direct_thread.py`):
which steps go there, and that the thread they leave, the result and the errors are
LangGraph's — through sends, commands, routers, failures, pauses and resumes, failed applies,
the recursion limit, graphs run by a node and tasks called from one, in each durability."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

import pytest

from ferrograph.checkpoint.memory import InMemorySaver
from ferrograph.pregel import _direct_thread
from tests.parity import stored_thread


class Flow(TypedDict, total=False):
    log: Annotated[list, operator.add]
    n: int


def lib(name: str) -> tuple[Any, Any]:
    return (__import__(f"{name}.graph", fromlist=["StateGraph"]),
            __import__(f"{name}.types", fromlist=["Send"]))


@pytest.fixture
def rust_steps(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the tasks handed to the Rust driver to run, step after step (named by
    `ThreadSteps.name_step` or in Rust)."""
    ran: list[str] = []
    name_step = _direct_thread.ThreadSteps.name_step

    def counted(self: Any, planned: Any, step: int) -> Any:
        tasks = name_step(self, planned, step)
        if tasks is not None:
            ran.extend(t.name for t in tasks)
        return tasks

    monkeypatch.setattr(_direct_thread.ThreadSteps, "name_step", counted)
    made = _direct_thread.thread_save

    def counting_rust_names(run: Any) -> Any:
        """The steps Rust names itself (`thread_save`): their tasks counted as made."""
        parts = made(run)
        if parts is not None:
            task_type = parts["task_type"]

            def task(*args: Any) -> Any:
                t = task_type(*args)
                ran.append(t.name)
                return t
            parts["task_type"] = task
        return parts

    monkeypatch.setattr(_direct_thread, "thread_save", counting_rust_names)
    return ran


def mixed_graph(name: str, saver: Any, fail: str | None = None) -> Any:
    """A chain with a router, a `Command` with a goto, a single `Send` and a fan-out of two
    branches; the node named `fail` raises."""
    g, types = lib(name)

    def node(label: str) -> Any:
        def run(state: Any) -> Any:
            if label == fail:
                raise ValueError(f"{label} failed")
            if label == "b":
                return types.Command(update={"log": ["b"]}, goto="c")
            if label == "a":
                return {"log": [label], "n": len(state["log"])}
            return {"log": [label]}
        return run

    b = g.StateGraph(Flow)
    for label in ("a", "b", "c", "d", "e", "f"):
        b.add_node(label, node(label))
    b.add_node("w", lambda item: {"log": [f"w{item}"]})
    b.add_edge(g.START, "a")
    b.add_conditional_edges("a", lambda s: "b" if s["n"] < 5 else "c", ["b", "c"])
    b.add_conditional_edges("c", lambda s: [types.Send("w", 7)])
    b.add_edge("w", "d")
    b.add_edge("d", "e")
    b.add_edge("d", "f")
    return b.compile(checkpointer=saver)


def run_mixed(name: str, durability: str, fail: str | None = None) -> list[Any]:
    saver = InMemorySaver()
    app = mixed_graph(name, saver, fail)
    config = {"configurable": {"thread_id": "t"}}
    try:
        out: Any = app.invoke({"log": []}, config, durability=durability)
    except ValueError as e:
        out = repr(e)
    return [out, stored_thread(saver, config)]


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_plain_steps_run_on_the_rust_driver_and_store_what_langgraph_stores(
        durability: str, rust_steps: list[str]) -> None:
    ours = run_mixed("ferrograph", durability)
    assert ours == run_mixed("langgraph", durability)
    assert ours[0]["log"] == ["a", "b", "c", "w7", "d", "e", "f"]
    # The start node goes by the Python loop; the rest (`e` and `f` a step of two) here.
    assert rust_steps == ["a", "b", "c", "w", "d", "e", "f"]


@pytest.mark.parametrize("fail", ["c", "d"])
def test_a_failing_node_on_the_rust_driver_leaves_langgraphs_thread(
        fail: str, rust_steps: list[str]) -> None:
    ours = run_mixed("ferrograph", "sync", fail)
    assert ours == run_mixed("langgraph", "sync", fail)
    assert ours[0] == f"ValueError('{fail} failed')"
    assert rust_steps[-1] == fail


def paused_graph(name: str, saver: Any) -> Any:
    g, types = lib(name)

    def ask(state: Any) -> Any:
        first = types.interrupt("first?")
        second = types.interrupt("second?")
        return {"log": [f"ask:{first}:{second}"]}

    b = g.StateGraph(Flow)
    b.add_node("a", lambda s: {"log": ["a"]})
    b.add_node("ask", ask)
    b.add_node("z", lambda s: {"log": ["z"]})
    b.add_edge(g.START, "a")
    b.add_edge("a", "ask")
    b.add_edge("ask", "z")
    return b.compile(checkpointer=saver)


def pause_and_resume(name: str, durability: str) -> list[Any]:
    _, types = lib(name)
    saver = InMemorySaver()
    app = paused_graph(name, saver)
    config = {"configurable": {"thread_id": "t"}}
    outs = [app.invoke({"log": []}, config, durability=durability)]
    outs.append(app.invoke(types.Command(resume="yes"), config, durability=durability))
    outs.append(app.invoke(types.Command(resume="sure"), config, durability=durability))
    return [[{k: (v if k != "__interrupt__" else [i.value for i in v]) for k, v in o.items()}
             for o in outs], stored_thread(saver, config)]


@pytest.mark.parametrize("durability", ["sync", "exit"])
def test_interrupts_and_resumes_of_a_node_on_the_rust_driver(
        durability: str, rust_steps: list[str]) -> None:
    ours = pause_and_resume("ferrograph", durability)
    assert ours == pause_and_resume("langgraph", durability)
    assert ours[0][-1]["log"] == ["a", "ask:yes:sure", "z"]
    # `ask` pauses on the Rust driver at its first question, then (resumed with the run's
    # answer) at its second; with an answer saved for it, the third run's `ask` goes by the
    # Python loop, and `z` after it by the Rust driver again.
    assert rust_steps == ["a", "ask", "ask", "z"]


def refuse(old: list, new: list) -> list:
    if new == ["bad"]:
        raise ValueError("refused")
    return old + new


class Refusing(TypedDict, total=False):
    log: Annotated[list, refuse]


def clashing_graph(name: str, saver: Any) -> Any:
    """One node whose write its key's reducer refuses: the step fails to apply."""
    g, _ = lib(name)
    b = g.StateGraph(Refusing)
    b.add_node("a", lambda s: {"log": ["a"]})
    b.add_node("bad", lambda s: {"log": ["bad"]})
    b.add_edge(g.START, "a")
    b.add_edge("a", "bad")
    return b.compile(checkpointer=saver)


def test_a_write_that_fails_to_apply_on_the_rust_driver(rust_steps: list[str]) -> None:
    def run(name: str) -> list[Any]:
        saver = InMemorySaver()
        config = {"configurable": {"thread_id": "t"}}
        with pytest.raises(ValueError, match="refused"):
            clashing_graph(name, saver).invoke({"log": []}, config, durability="sync")
        return stored_thread(saver, config)

    assert run("ferrograph") == run("langgraph")
    assert rust_steps == ["a", "bad"]


def test_the_recursion_limit_on_the_rust_driver() -> None:
    def run(name: str) -> list[Any]:
        g, _ = lib(name)
        errors = __import__(f"{name}.errors", fromlist=["GraphRecursionError"])
        b = g.StateGraph(Flow)
        b.add_node("loop", lambda s: {"log": ["x"]})
        b.add_edge(g.START, "loop")
        b.add_edge("loop", "loop")
        saver = InMemorySaver()
        config = {"configurable": {"thread_id": "t"}, "recursion_limit": 6}
        with pytest.raises(errors.GraphRecursionError) as raised:
            b.compile(checkpointer=saver).invoke({"log": []}, config)
        return [str(raised.value), stored_thread(saver, config)]

    assert run("ferrograph") == run("langgraph")


def nesting_graph(name: str, saver: Any) -> Any:
    """A node that runs a graph (which pauses) and a node that calls a task."""
    g, types = lib(name)
    func = __import__(f"{name}.func", fromlist=["task"])

    @func.task
    def double(x: int) -> int:
        return 2 * x

    inner = g.StateGraph(Flow)
    inner.add_node("i1", lambda s: {"log": ["i1"]})
    inner.add_node("i2", lambda s: {"log": [f"i2:{types.interrupt('inner?')}"]})
    inner.add_edge(g.START, "i1")
    inner.add_edge("i1", "i2")
    sub = inner.compile()

    b = g.StateGraph(Flow)
    b.add_node("calls", lambda s: {"n": double(21).result()})
    b.add_node("runs", lambda s: {"log": sub.invoke({"log": []})["log"]})
    b.add_edge(g.START, "calls")
    b.add_edge("calls", "runs")
    return b.compile(checkpointer=saver)


def test_graphs_and_tasks_a_rust_driven_node_runs_keep_their_place_in_the_thread(
        rust_steps: list[str]) -> None:
    def run(name: str) -> list[Any]:
        _, types = lib(name)
        saver = InMemorySaver()
        app = nesting_graph(name, saver)
        config = {"configurable": {"thread_id": "t"}}
        first = app.invoke({"log": []}, config)
        second = app.invoke(types.Command(resume="ok"), config)
        namespaces = sorted({t.config["configurable"]["checkpoint_ns"].split(":")[0]
                             for t in saver.list({"configurable": {"thread_id": "t"}})})
        return [first["n"], [i.value for i in first["__interrupt__"]], second,
                namespaces, stored_thread(saver, config)]

    assert run("ferrograph") == run("langgraph")
    assert rust_steps == ["calls", "runs", "runs"]


def test_a_drained_run_stops_between_rust_steps_and_resumes(rust_steps: list[str]) -> None:
    from ferrograph.errors import GraphDrained
    from ferrograph.graph import START, StateGraph
    from ferrograph.runtime import RunControl

    control = RunControl()

    def b(state: Flow) -> dict[str, Any]:
        control.request_drain("shutdown")
        return {"log": ["b"]}

    g = StateGraph(Flow)
    g.add_node("a", lambda s: {"log": ["a"]})
    g.add_node("b", b)
    g.add_node("c", lambda s: {"log": ["c"]})
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.add_edge("b", "c")
    app = g.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t"}}
    with pytest.raises(GraphDrained, match="shutdown"):
        app.invoke({"log": []}, config, control=control)
    state = app.get_state(config)
    assert state.values == {"log": ["a", "b"]} and state.next == ("c",)
    assert app.invoke(None, config) == {"log": ["a", "b", "c"]}
    # `c` was handed over, then the drain stopped the run before it ran.
    assert rust_steps == ["a", "b", "c", "c"]


def fanout_graph(name: str, saver: Any, fail: bool, barrier: Any = None) -> Any:
    """`split` starts three branches (two by edges, one by a `Send`); branch `b` fails or
    pauses (`fail`), then they join. With `barrier`, `a` and `b` wait for each other (so
    they must run at once)."""
    g, types = lib(name)

    def a(state: Any) -> Any:
        if barrier is not None:
            barrier.wait()
        return {"log": ["a"]}

    def b(state: Any) -> Any:
        if barrier is not None:
            barrier.wait()
        if fail:
            raise ValueError("b failed")
        return {"log": [f"b:{types.interrupt('b?')}"]}

    builder = g.StateGraph(Flow)
    builder.add_node("split", lambda s: {"log": ["split"]})
    builder.add_node("a", a)
    builder.add_node("b", b)
    builder.add_node("w", lambda item: {"log": [f"w{item}"]})
    builder.add_node("join", lambda s: {"log": ["join"]})
    builder.add_edge(g.START, "split")
    builder.add_edge("split", "a")
    builder.add_edge("split", "b")
    builder.add_conditional_edges("split", lambda s: [types.Send("w", 1)])
    builder.add_edge(["a", "b", "w"], "join")
    return builder.compile(checkpointer=saver)


def fanout_runs(name: str, fail: bool) -> list[Any]:
    _, types = lib(name)
    saver = InMemorySaver()
    app = fanout_graph(name, saver, fail)
    config = {"configurable": {"thread_id": "t"}}
    outs: list[Any] = []
    for value in ({"log": []}, None if fail else types.Command(resume="yes")):
        try:
            out = app.invoke(value, config)
            outs.append({k: (v if k != "__interrupt__" else [i.value for i in v])
                         for k, v in out.items()})
        except ValueError as e:
            outs.append(repr(e))
    return [outs, stored_thread(saver, config)]


@pytest.mark.parametrize("fail", [True, False], ids=["fails", "pauses"])
def test_a_step_of_several_tasks_on_the_rust_driver(fail: bool, rust_steps: list[str]) -> None:
    # The branches that finished keep their saved writes when a sibling fails or pauses;
    # the next run runs only that sibling, as LangGraph does.
    ours = fanout_runs("ferrograph", fail)
    assert ours == fanout_runs("langgraph", fail)
    assert sorted(rust_steps[:4]) == ["a", "b", "split", "w"]
    assert rust_steps[1:4] == ["w", "a", "b"]  # a step's pushed task comes first


def test_the_tasks_of_a_rust_driven_step_run_at_once() -> None:
    # `a` and `b` each wait for the other: they finish only if they run side by side.
    import threading

    barrier = threading.Barrier(2, timeout=60)
    app = fanout_graph("ferrograph", InMemorySaver(), fail=False, barrier=barrier)
    config = {"configurable": {"thread_id": "t"}}
    out = app.invoke({"log": []}, config)
    assert sorted(out["log"]) == ["a", "split", "w1"] and "__interrupt__" in out
    assert not barrier.broken


def chain_runs(name: str, durability: str, value: Any = 1, streamed: bool = False
               ) -> list[Any]:
    """A three-node chain of plain nodes, run with run metadata (which `put` gets in its
    config) and again on the same thread; `b` writes `value`. `streamed`: by `stream`
    (whose steps are the Python loop's), not `invoke`."""
    g, _ = lib(name)

    class Chain(TypedDict, total=False):
        log: Annotated[list, operator.add]
        x: Any

    b = g.StateGraph(Chain)
    b.add_node("a", lambda s: {"log": ["a"]})
    b.add_node("b", lambda s: {"log": ["b"], "x": value})
    b.add_node("c", lambda s: {"log": ["c"]})
    b.add_edge(g.START, "a")
    b.add_edge("a", "b")
    b.add_edge("b", "c")
    saver = InMemorySaver()
    app = b.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "t"}, "metadata": {"user": "u1"}}
    outs = []
    for _ in range(2):
        try:
            if streamed:
                outs.append(list(app.stream({"log": []}, config, durability=durability)))
            else:
                outs.append(app.invoke({"log": []}, config, durability=durability))
        except Exception as e:  # noqa: BLE001 (compared with LangGraph's)
            outs.append(f"{type(e).__name__}: {e}")
    return [outs, stored_thread(saver, {"configurable": {"thread_id": "t"}})]


@pytest.fixture
def python_saves(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the Python side of the thread did for the steps after the start node:
    `task_ended` of a task, `save` of a checkpoint after a step."""
    from ferrograph.pregel._checkpoint import Persistence
    did: list[str] = []
    task_ended, save = Persistence.task_ended, Persistence.save

    def counted_task_ended(self: Any, t: Any) -> None:
        did.append(f"task_ended:{t.name}")
        task_ended(self, t)

    def counted_save(self: Any, rust: Any, source: str, **kw: Any) -> None:
        did.append(f"save:{source}")
        save(self, rust, source, **kw)

    monkeypatch.setattr(Persistence, "task_ended", counted_task_ended)
    monkeypatch.setattr(Persistence, "save", counted_save)
    return did


@pytest.mark.parametrize("durability", ["sync", "exit"])
def test_the_common_step_is_named_and_saved_in_rust(
        durability: str, rust_steps: list[str], python_saves: list[str]) -> None:
    ours = chain_runs("ferrograph", durability)
    assert ours == chain_runs("langgraph", durability)
    assert ours[0][1]["log"] == ["a", "b", "c"] * 2
    assert rust_steps == ["a", "b", "c"] * 2
    # Only the input's checkpoint and the start node's step are Python's.
    assert python_saves == ["save:input", "task_ended:__start__", "save:loop"] * 2


@pytest.mark.parametrize("streamed", [False, True])
def test_a_write_the_saver_cannot_store_fails_the_step(
        streamed: bool, rust_steps: list[str]) -> None:
    """`put_writes` raises (an object msgpack cannot take): the node's failure, as in
    LangGraph, which hands the writes again with the error after them (that fails too, so
    no error is saved), and the thread keeps what was saved before."""
    ours = chain_runs("ferrograph", "sync", value=object(), streamed=streamed)
    theirs = chain_runs("langgraph", "sync", value=object(), streamed=streamed)
    assert ours == theirs
    assert "Type is not msgpack serializable" in ours[0][0]
    assert rust_steps == ([] if streamed else ["a", "b", "a", "b"])
