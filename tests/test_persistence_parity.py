"""Checkpointers, interrupts and state history, differentially: each test builds the same graph
with `langgraph.graph` (the oracle) and with `ferrograph.graph`, compiles both with a fresh
LangGraph `InMemorySaver` (from `langgraph.checkpoint.memory`), runs the same calls on both and
compares everything observed (outputs, streamed items, `get_state`, `get_state_history`,
exceptions) after `normalize()`. The expected value is always LangGraph's, computed by running
it, never written down.

`normalize()` replaces checkpoint ids, task ids, interrupt ids, message ids and run ids with
placeholders numbered by order of first appearance within one run (so "the checkpoint id of
this snapshot is the parent of that one" and "this interrupt id is that one" are still
checked), and every timestamp (`created_at`, `ts`, `timestamp`) with "<time>". Everything else
(values, `next`, metadata `source` / `step` / `parents`, task names / paths / interrupts /
errors, parent configs) is compared as is.

Self-check: FERROGRAPH_PARITY_IMPL=langgraph (the switch of tests/conftest.py) or
FERRO_PARITY_SELF_CHECK=1 runs the "ferrograph" side on langgraph too, which checks that the
scenarios and the normalisation are deterministic against the oracle alone:

    FERRO_PARITY_SELF_CHECK=1 pytest tests/test_persistence_parity.py

No sleeps and no timing: where completion order of parallel tasks would show, the values are
sorted, and the one ordering a test needs (a sibling's writes saved before a node fails) is
waited for on an event set by the checkpointer, with a timeout only a regression exhausts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import operator
import os
import re
import threading
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage

from tests import parity
from tests.parity import Lib, Raised

WAIT = 30.0  # seconds: a wait that only a regression can exhaust
SELF_CHECK_ENV = "FERRO_PARITY_SELF_CHECK"


@pytest.fixture
def candidate() -> Lib:
    """ferrograph, or langgraph under FERRO_PARITY_SELF_CHECK=1 / FERROGRAPH_PARITY_IMPL."""
    if os.environ.get(SELF_CHECK_ENV) == "1":
        return parity.oracle()
    return parity.candidate()


# --------------------------------------------------------------------------- helpers


def types_of(lib: Lib) -> Any:
    """`<lib>.types`, imported when a test runs (ferrograph may lack `interrupt`)."""
    return importlib.import_module(f"{lib.name}.types")


def interrupt_of(lib: Lib) -> Callable[[Any], Any]:
    return types_of(lib).interrupt


def saver() -> Any:
    from langgraph.checkpoint.memory import InMemorySaver

    return InMemorySaver()


def thread(tid: str = "t", **configurable: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": tid, **configurable}}


def raised(error: BaseException) -> Raised:
    """`Raised` with the message kept raw (ids in it are numbered by `normalize`)."""
    return Raised(Raised.of(error).types, str(error))


def attempt(fn: Callable[[], Any]) -> Any:
    """`fn()`, or `Raised` for the exception it raised (the exception is an outcome)."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - compared
        return raised(e)


def stream_all(items: Any) -> Any:
    """Every item a stream yields, and `Raised` last if it raised."""
    out: list[Any] = []
    try:
        for item in items:
            out.append(item)
    except Exception as e:  # noqa: BLE001 - compared
        out.append(raised(e))
    return out


async def astream_all(items: Any) -> Any:
    out: list[Any] = []
    try:
        async for item in items:
            out.append(item)
    except Exception as e:  # noqa: BLE001 - compared
        out.append(raised(e))
    return out


def history(graph: Any, config: Any, **kwargs: Any) -> Any:
    return attempt(lambda: list(graph.get_state_history(config, **kwargs)))


# --------------------------------------------------------------------------- normalize

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX32 = re.compile(r"(?<![0-9a-fA-F])[0-9a-f]{32}(?![0-9a-fA-F])")  # interrupt ids
_ID_KEYS = {"checkpoint_id", "id", "run_id", "task_id", "parent_checkpoint_id"}
_TIME_KEYS = {"created_at", "ts", "timestamp"}


def normalize(value: Any) -> Any:
    """A comparable copy of `value` (see the module docstring). Call it once on everything a
    run observed, so that ids are numbered across all of it."""
    table: dict[str, str] = {}
    return _number(_plain(value), table)


def _plain(value: Any) -> Any:
    """Library objects, messages, exceptions as tagged plain dicts; containers keep type."""
    from langchain_core.messages import BaseMessage
    from pydantic import BaseModel

    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Raised):
        return {"__raised__": list(value.types), "message": value.message}
    if isinstance(value, BaseException):
        return {"__exception__": type(value).__name__, "str": str(value)}
    if isinstance(value, BaseMessage):
        return {"__message__": type(value).__name__, **_plain(value.model_dump())}
    if isinstance(value, BaseModel):
        return {"__model__": type(value).__name__, **_plain(dict(value))}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {"__dataclass__": type(value).__name__, **_plain(fields)}
    if type(value).__module__.split(".")[0] in parity.LIB_NAMES:
        return {"__object__": type(value).__name__, **_plain(parity._attributes(value))}
    if hasattr(value, "_fields"):  # other named tuples
        return {"__tuple__": type(value).__name__, **_plain(dict(value._asdict()))}
    return value


def _placeholder(raw: str, table: dict[str, str]) -> str:
    if raw not in table:
        table[raw] = f"<id{len(table)}>"
    return table[raw]


def _shape(key: Any) -> Any:
    if not isinstance(key, str):
        return key
    return _HEX32.sub("<id>", _UUID.sub("<id>", key))


def _number(value: Any, table: dict[str, str]) -> Any:
    # dicts are walked in sorted key order so that the numbering does not depend on the
    # order in which an implementation happened to insert keys
    # (ids inside keys, e.g. checkpoint_map's "sub:<task id>", by their shape, too)
    if isinstance(value, dict):
        out, keys = {}, {}
        for k in sorted(value, key=lambda k: repr(_shape(k))):
            v = value[k]
            keys[k] = _number(k, table)
            if k in _TIME_KEYS and isinstance(v, str):
                out[k] = "<time>"
            elif k in _ID_KEYS and isinstance(v, str) and v:
                out[k] = _placeholder(v, table)
            else:
                out[k] = _number(v, table)
        return {keys[k]: out[k] for k in value}
    if isinstance(value, tuple):
        return tuple(_number(v, table) for v in value)
    if isinstance(value, list):
        return [_number(v, table) for v in value]
    if isinstance(value, str):
        value = _UUID.sub(lambda m: _placeholder(m.group(0), table), value)
        return _HEX32.sub(lambda m: _placeholder(m.group(0), table), value)
    return value


def both(run: Callable[[Lib], Any], candidate: Lib, oracle: Lib) -> tuple[Any, Any]:
    """(candidate's, oracle's) normalized observations of `run(lib)`."""
    return normalize(run(candidate)), normalize(run(oracle))


def check(run: Callable[[Lib], Any], candidate: Lib, oracle: Lib) -> Any:
    got, expected = both(run, candidate, oracle)
    assert got == expected, _diff(expected, got)
    return expected


def _diff(expected: Any, got: Any) -> str:
    """A readable difference (langgraph's lines `-`, ferrograph's `+`)."""
    import difflib
    import pprint
    return "\n" + "\n".join(difflib.unified_diff(
        pprint.pformat(expected, width=110).splitlines(),
        pprint.pformat(got, width=110).splitlines(), "langgraph", "ferrograph", lineterm="",
        n=1))


# --------------------------------------------------------------------------- graphs


class Log(TypedDict, total=False):
    log: Annotated[list, operator.add]
    k: str


def echo_chat(lib: Lib, checkpointer: Any) -> Any:
    """MessagesState chat: one node answering with the last human message echoed.

    AI messages carry ids: `add_messages` gives an id-less message one by mutating it in
    place, racing with the background thread that serialises the node's writes (LangGraph's
    own history then shows the id or not at random)."""

    def echo(state: Any) -> dict[str, Any]:
        last = state["messages"][-1]
        n = len(state["messages"])
        return {"messages": [AIMessage(content=f"echo({n}): {last.content}", id=f"ai-{n}")]}

    return (lib.StateGraph(lib.MessagesState)
            .add_node("echo", echo)
            .add_edge(lib.START, "echo")
            .add_edge("echo", lib.END)
            .compile(checkpointer=checkpointer))


def chain(lib: Lib, checkpointer: Any, calls: list[str] | None = None, **compile_kw: Any) -> Any:
    """a -> b -> c, each appending its name to `log` (and to `calls`)."""
    calls = [] if calls is None else calls

    def step(name: str) -> Callable[[Log], dict[str, Any]]:
        def node(state: Log) -> dict[str, Any]:
            calls.append(name)
            return {"log": [name]}

        return node

    return (lib.StateGraph(Log)
            .add_sequence([("a", step("a")), ("b", step("b")), ("c", step("c"))])
            .add_edge(lib.START, "a")
            .compile(checkpointer=checkpointer, **compile_kw))


def asking(lib: Lib, checkpointer: Any) -> Any:
    """a -> ask (interrupts with a question, logs the answer) -> c."""
    interrupt = interrupt_of(lib)

    def ask(state: Log) -> dict[str, Any]:
        answer = interrupt({"question": "ok?", "seen": list(state["log"])})
        return {"log": [f"ask:{answer}"]}

    return (lib.StateGraph(Log)
            .add_node("a", lambda s: {"log": ["a"]})
            .add_node("ask", ask)
            .add_node("c", lambda s: {"log": ["c"]})
            .add_edge(lib.START, "a")
            .add_edge("a", "ask")
            .add_edge("ask", "c")
            .add_edge("c", lib.END)
            .compile(checkpointer=checkpointer))


def chat_with_approval(lib: Lib, checkpointer: Any) -> Any:
    """MessagesState: echo, then an approval interrupt whose answer becomes an AI message."""
    interrupt = interrupt_of(lib)

    def echo(state: Any) -> dict[str, Any]:
        last = state["messages"][-1]
        n = len(state["messages"])
        return {"messages": [AIMessage(content=f"echo: {last.content}", id=f"echo-{n}")]}

    def approve(state: Any) -> dict[str, Any]:
        answer = interrupt(f"approve {len(state['messages'])} messages?")
        n = len(state["messages"])
        return {"messages": [AIMessage(content=f"approved: {answer}", id=f"approved-{n}")]}

    return (lib.StateGraph(lib.MessagesState)
            .add_node("echo", echo)
            .add_node("approve", approve)
            .add_edge(lib.START, "echo")
            .add_edge("echo", "approve")
            .add_edge("approve", lib.END)
            .compile(checkpointer=checkpointer))


def snapshot_view(graph: Any, config: Any) -> Any:
    """get_state and the whole history of `config`'s thread."""
    return {"state": attempt(lambda: graph.get_state(config)),
            "history": history(graph, config)}


# ============================================================================ 1 memory


def test_multi_turn_memory_and_isolated_threads(candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        graph = echo_chat(lib, saver())
        seen = {}
        seen["t1 turn 1"] = graph.invoke({"messages": [("user", "hello")]}, thread("t1"))
        seen["t1 turn 2"] = graph.invoke({"messages": [("user", "again")]}, thread("t1"))
        seen["t2 turn 1"] = graph.invoke({"messages": [("user", "other")]}, thread("t2"))
        seen["t1 state"] = graph.get_state(thread("t1")).values
        seen["t2 state"] = graph.get_state(thread("t2")).values
        return seen

    expected = check(run, candidate, oracle)
    assert len(expected["t1 turn 2"]["messages"]) == 4
    assert len(expected["t2 turn 1"]["messages"]) == 2


def test_with_config_carries_the_thread_and_limits(candidate: Lib, oracle: Lib) -> None:
    """`with_config` gives a graph (not a binding) whose runs and thread reads start from the
    bound config: the thread id, a recursion limit, and the caller's config over both."""
    def run(lib: Lib) -> Any:
        graph = chain(lib, saver())
        bound = graph.with_config(configurable={"thread_id": "bound"})
        seen: dict[str, Any] = {"type": type(bound).__name__ == type(graph).__name__}
        seen["out"] = bound.invoke({"log": ["in"]})
        seen["bound state"] = bound.get_state({"configurable": {}}).values
        seen["by thread id"] = graph.get_state(thread("bound")).values
        seen["caller's thread wins"] = bound.invoke({"log": ["x"]}, thread("own"))
        seen["own state"] = graph.get_state(thread("own")).values
        seen["history"] = len(list(bound.get_state_history(thread("bound"))))
        limited = bound.with_config(recursion_limit=1)
        seen["limited"] = attempt(lambda: limited.invoke({"log": []}, thread("lim")))
        seen["stream"] = stream_all(bound.stream({"log": ["s"]}, stream_mode="updates"))
        return seen

    expected = check(run, candidate, oracle)
    assert expected["type"] is True


def test_snapshot_lists_next_tasks_in_the_order_nodes_were_added(candidate: Lib,
                                                                  oracle: Lib) -> None:
    """`next` and `tasks` of a snapshot follow the order nodes were added (not their names'),
    sends first; a running step's order (by name) shows in the stream."""
    def run(lib: Lib) -> Any:
        graph = (lib.StateGraph(Log)
                 .add_node("zeta", lambda s: {"log": ["zeta"]})
                 .add_node("alpha", lambda s: {"log": ["alpha"]})
                 .add_node("mid", lambda s: {"log": ["mid"]})
                 .add_edge(lib.START, "zeta").add_edge(lib.START, "alpha")
                 .add_edge(lib.START, "mid")
                 .compile(checkpointer=saver(), interrupt_before=["zeta", "alpha", "mid"]))
        graph.invoke({"log": []}, thread())
        state = graph.get_state(thread())
        return {"next": state.next, "tasks": [t.name for t in state.tasks],
                "history": [s.next for s in graph.get_state_history(thread())]}

    check(run, candidate, oracle)


def test_the_runs_metadata_goes_into_its_checkpoints(candidate: Lib, oracle: Lib) -> None:
    """A run's `metadata` (LangGraph's server puts its run's there) is copied into each of
    its checkpoints' metadata, beside the configurable's plain values, sync and async."""
    def run(lib: Lib) -> Any:
        graph = chain(lib, saver())
        config = {"metadata": {"created_by": "system", "n": 1, "skip": [1]},
                  "configurable": {"thread_id": "meta", "graph_id": "g"}}
        graph.invoke({"log": ["in"]}, config)
        asyncio.run(_drain(graph.astream({"log": ["a"]}, {**config, "metadata": {"n": 2}})))
        return [s.metadata for s in graph.get_state_history(thread("meta"))]

    expected = check(run, candidate, oracle)
    assert expected[0]["n"] == 2 and expected[-1]["created_by"] == "system"


async def _drain(stream: Any) -> None:
    async for _ in stream:
        pass


# ============================================================================ 2 state, history


def test_get_state_snapshot_after_a_run(candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        graph = chain(lib, saver())
        out = graph.invoke({"log": ["in"]}, thread())
        return {"out": out, **snapshot_view(graph, thread()),
                "unknown thread": attempt(lambda: graph.get_state(thread("nobody")))}

    check(run, candidate, oracle)


@pytest.mark.parametrize("query", ["full", "limit", "before", "filter loop", "filter input",
                                   "filter step", "limit+before"])
def test_get_state_history_queries(query: str, candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        graph = chain(lib, saver())
        graph.invoke({"log": []}, thread())
        graph.invoke({"log": ["second"]}, thread())
        full = list(graph.get_state_history(thread()))
        middle = full[3].config
        kwargs = {
            "full": {},
            "limit": {"limit": 2},
            "before": {"before": middle},
            "filter loop": {"filter": {"source": "loop"}},
            "filter input": {"filter": {"source": "input"}},
            "filter step": {"filter": {"step": 1}},
            "limit+before": {"limit": 3, "before": middle},
        }[query]
        return {"full": full, "query": history(graph, thread(), **kwargs)}

    check(run, candidate, oracle)


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_checkpoints_per_durability(durability: str, candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        graph = chain(lib, saver())
        out = graph.invoke({"log": []}, thread(), durability=durability)
        hist = history(graph, thread())
        return {"out": out, "count": len(hist), "history": hist}

    expected = check(run, candidate, oracle)
    assert expected["count"] >= 1


def test_async_durability_history_under_stream(candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        graph = chain(lib, saver())
        items = stream_all(graph.stream({"log": []}, thread(), durability="exit",
                                        stream_mode="updates"))
        return {"items": items, **snapshot_view(graph, thread())}

    check(run, candidate, oracle)


# ============================================================================ 3 streaming


@pytest.mark.parametrize("mode", [["values", "updates"], "checkpoints", "debug", "tasks"],
                         ids=["values+updates", "checkpoints", "debug", "tasks"])
def test_stream_with_a_checkpointer(mode: Any, candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        graph = chain(lib, saver())
        first = stream_all(graph.stream({"log": []}, thread(), stream_mode=mode))
        second = stream_all(graph.stream({"log": ["more"]}, thread(), stream_mode=mode))
        return {"first": first, "second": second, **snapshot_view(graph, thread())}

    check(run, candidate, oracle)


@pytest.mark.parametrize("mode", ["checkpoints", "debug", ["updates", "values"]],
                         ids=["checkpoints", "debug", "updates+values"])
def test_stream_of_an_interrupting_run_and_its_resume(
        mode: Any, candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        graph = asking(lib, saver())
        first = stream_all(graph.stream({"log": []}, thread(), stream_mode=mode))
        resumed = stream_all(graph.stream(lib.Command(resume="yes"), thread(),
                                          stream_mode=mode))
        return {"first": first, "resumed": resumed, **snapshot_view(graph, thread())}

    check(run, candidate, oracle)


# ============================================================================ 4 interrupts


def test_interrupt_then_resume(candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        graph = asking(lib, saver())
        seen: dict[str, Any] = {"out": graph.invoke({"log": []}, thread())}
        state = graph.get_state(thread())
        seen["next"] = state.next
        seen["task interrupts"] = state.tasks[0].interrupts
        seen["interrupts"] = state.interrupts
        seen["state"] = state
        seen["resumed"] = graph.invoke(lib.Command(resume="yes"), thread())
        seen.update(snapshot_view(graph, thread()))
        return seen

    expected = check(run, candidate, oracle)
    assert "__interrupt__" in expected["out"]
    assert expected["resumed"]["log"] == ["a", "ask:yes", "c"]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_interrupt_output_versions(version: str, candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        graph = asking(lib, saver())
        out = graph.invoke({"log": []}, thread(), version=version)
        resumed = graph.invoke(lib.Command(resume="ok"), thread(), version=version)
        return {"out": out, "resumed": resumed}

    check(run, candidate, oracle)


def test_two_interrupts_in_one_node_resumed_in_order(candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        interrupt = interrupt_of(lib)
        calls: list[Any] = []

        def two(state: Log) -> dict[str, Any]:
            first = interrupt("first?")
            calls.append(("after first", first))
            second = interrupt(f"second after {first}?")
            calls.append(("after second", second))
            return {"log": [f"{first}+{second}"]}

        graph = (lib.StateGraph(Log).add_node("two", two).add_edge(lib.START, "two")
                 .compile(checkpointer=saver()))
        seen: dict[str, Any] = {"out": graph.invoke({"log": []}, thread())}
        seen["state 1"] = graph.get_state(thread())
        seen["resume 1"] = graph.invoke(lib.Command(resume="one"), thread())
        seen["state 2"] = graph.get_state(thread())
        seen["resume 2"] = graph.invoke(lib.Command(resume="two"), thread())
        seen["calls"] = calls
        seen.update(snapshot_view(graph, thread()))
        return seen

    expected = check(run, candidate, oracle)
    assert expected["resume 2"]["log"] == ["one+two"]


def _by_value(interrupts: Any) -> Any:
    return sorted(interrupts, key=lambda i: repr(i.value))


def test_parallel_interrupts_resumed_with_a_map(candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        interrupt = interrupt_of(lib)

        def asker(name: str) -> Callable[[Log], dict[str, Any]]:
            def node(state: Log) -> dict[str, Any]:
                return {"log": [f"{name}:{interrupt(f'{name}?')}"]}

            return node

        graph = (lib.StateGraph(Log)
                 .add_node("p", asker("p"))
                 .add_node("q", asker("q"))
                 .add_node("join", lambda s: {"log": ["join"]})
                 .add_edge(lib.START, "p")
                 .add_edge(lib.START, "q")
                 .add_edge(["p", "q"], "join")
                 .compile(checkpointer=saver()))
        out = graph.invoke({"log": []}, thread())
        # interrupts are listed in completion order: sorted for a deterministic comparison
        seen: dict[str, Any] = {"out interrupts": _by_value(out.pop("__interrupt__", [])),
                                "out": out}
        state = graph.get_state(thread())
        seen["next"] = state.next
        seen["tasks"] = state.tasks
        seen["interrupts"] = _by_value(state.interrupts)
        answers = {i.id: f"answer to {i.value}" for i in state.interrupts}
        seen["resumed"] = graph.invoke(lib.Command(resume=answers), thread())
        seen["final"] = graph.get_state(thread())
        return seen

    expected = check(run, candidate, oracle)
    assert expected["resumed"]["log"] == ["p:answer to p?", "q:answer to q?", "join"]


def test_resume_with_update_and_goto(candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        graph = (lib.StateGraph(Log)
                 .add_node("ask", lambda s: {"log": [f"ask:{interrupt_of(lib)('go?')}"]})
                 .add_node("other", lambda s: {"log": [f"other saw {s.get('k')}"]})
                 .add_edge(lib.START, "ask")
                 .compile(checkpointer=saver()))
        seen = {"out": graph.invoke({"log": []}, thread())}
        seen["resumed"] = attempt(lambda: graph.invoke(
            lib.Command(resume="yes", update={"k": "updated"}, goto="other"), thread()))
        seen.update(snapshot_view(graph, thread()))
        return seen

    check(run, candidate, oracle)


@pytest.mark.parametrize("subgraphs", [False, True])
def test_interrupt_inside_a_subgraph(subgraphs: bool, candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        interrupt = interrupt_of(lib)
        calls: list[str] = []

        def before(state: Log) -> dict[str, Any]:
            calls.append("inner before")
            return {"log": ["inner before"]}

        def ask(state: Log) -> dict[str, Any]:
            calls.append("inner ask")
            return {"log": [f"inner ask:{interrupt('inner?')}"]}

        inner = (lib.StateGraph(Log)
                 .add_node("before", before)
                 .add_node("ask", ask)
                 .add_edge(lib.START, "before")
                 .add_edge("before", "ask")
                 .compile())
        graph = (lib.StateGraph(Log)
                 .add_node("outer", lambda s: {"log": ["outer"]})
                 .add_node("sub", inner)
                 .add_node("after", lambda s: {"log": ["after"]})
                 .add_edge(lib.START, "outer")
                 .add_edge("outer", "sub")
                 .add_edge("sub", "after")
                 .compile(checkpointer=saver()))
        seen: dict[str, Any] = {"out": graph.invoke({"log": []}, thread())}
        seen["state"] = graph.get_state(thread(), subgraphs=subgraphs)
        seen["stream resume"] = stream_all(graph.stream(
            lib.Command(resume="deep"), thread(), stream_mode="updates", subgraphs=subgraphs))
        seen["calls"] = calls
        seen.update(snapshot_view(graph, thread()))
        return seen

    expected = check(run, candidate, oracle)
    assert expected["calls"] == ["inner before", "inner ask", "inner ask"]


@pytest.mark.parametrize("how", ["invoke", "stream subgraphs"])
def test_two_subgraphs_called_by_one_node_keep_separate_threads(how: str, candidate: Lib,
                                                               oracle: Lib) -> None:
    """A node that runs two graphs: the second keeps its checkpoints (and streams) under
    the task's namespace plus `|1`, so resuming its interrupt does not resume the first."""
    def run(lib: Lib) -> Any:
        interrupt = interrupt_of(lib)

        def first_step(state: Log) -> dict[str, Any]:
            return {"log": ["first"]}

        def second_step(state: Log) -> dict[str, Any]:
            return {"log": [f"second:{interrupt('second?')}"]}

        first = (lib.StateGraph(Log).add_node("first_step", first_step)
                 .add_edge(lib.START, "first_step").compile())
        second = (lib.StateGraph(Log).add_node("second_step", second_step)
                  .add_edge(lib.START, "second_step").compile())

        def both_graphs(state: Log) -> dict[str, Any]:
            one = first.invoke({"log": list(state["log"])})
            two = second.invoke({"log": one["log"]})
            return {"log": two["log"]}

        graph = (lib.StateGraph(Log).add_node("both_graphs", both_graphs)
                 .add_edge(lib.START, "both_graphs").compile(checkpointer=saver()))

        def go(value: Any) -> Any:
            if how == "invoke":
                return graph.invoke(value, thread())
            return stream_all(graph.stream(value, thread(), stream_mode="updates",
                                           subgraphs=True))

        seen: dict[str, Any] = {"out": go({"log": ["in"]})}
        seen["state"] = graph.get_state(thread(), subgraphs=True)
        seen["resumed"] = go(lib.Command(resume="yes"))
        seen.update(snapshot_view(graph, thread()))
        return seen

    check(run, candidate, oracle)


@pytest.mark.parametrize("mode", ["updates", "values"])
def test_stream_of_an_interrupt(mode: str, candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        graph = asking(lib, saver())
        return {"items": stream_all(graph.stream({"log": []}, thread(), stream_mode=mode)),
                "resumed": stream_all(graph.stream(lib.Command(resume="y"), thread(),
                                                   stream_mode=mode))}

    expected = check(run, candidate, oracle)
    assert "__interrupt__" in repr(expected["items"])


# ============================================================================ 5 static interrupts


@pytest.mark.parametrize("where", ["compile", "call"])
@pytest.mark.parametrize("which", [{"interrupt_before": ["b"]}, {"interrupt_after": ["a"]},
                                   {"interrupt_before": ["b"], "interrupt_after": ["b"]},
                                   {"interrupt_before": "*"}],
                         ids=["before b", "after a", "before and after b", "before all"])
def test_static_interrupts(where: str, which: dict[str, Any], candidate: Lib,
                           oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        calls: list[str] = []
        graph = chain(lib, saver(), calls, **(which if where == "compile" else {}))
        call_kw = which if where == "call" else {}
        seen: dict[str, Any] = {"out": graph.invoke({"log": []}, thread(), **call_kw)}
        seen["state 1"] = graph.get_state(thread())
        for n in range(2, 6):  # resume until the run is done (at most one stop per node)
            if not graph.get_state(thread()).next:
                break
            seen[f"resume {n}"] = graph.invoke(None, thread(), **call_kw)
            seen[f"state {n}"] = graph.get_state(thread())
        seen["calls"] = calls
        seen["history"] = history(graph, thread())
        return seen

    expected = check(run, candidate, oracle)
    assert expected["calls"] == ["a", "b", "c"]


# ============================================================================ 6 update_state


def test_update_state_after_a_run(candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        graph = chain(lib, saver())
        graph.invoke({"log": []}, thread())
        seen = {"returned": graph.update_state(thread(), {"k": "v", "log": ["manual"]})}
        seen.update(snapshot_view(graph, thread()))
        seen["next run"] = graph.invoke({"log": ["again"]}, thread())
        return seen

    check(run, candidate, oracle)


@pytest.mark.parametrize("as_node", ["a", "b", "c", None])
def test_update_state_as_node_then_continue(as_node: str | None, candidate: Lib,
                                            oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        calls: list[str] = []
        graph = chain(lib, saver(), calls, interrupt_before=["a"])
        seen: dict[str, Any] = {"out": graph.invoke({"log": []}, thread())}
        seen["returned"] = attempt(lambda: graph.update_state(
            thread(), {"log": [f"as {as_node}"]}, as_node=as_node))
        seen["state"] = graph.get_state(thread())
        seen["continued"] = attempt(lambda: graph.invoke(None, thread()))
        seen["calls"] = calls
        seen["history"] = history(graph, thread())
        return seen

    check(run, candidate, oracle)


@pytest.mark.parametrize("values", ["plain copy", "copy and update", "two updates", "no such"])
def test_update_state_copying_a_checkpoint(values: str, candidate: Lib, oracle: Lib) -> None:
    """`as_node="__copy__"`: a past checkpoint copied as a fork (same parent), optionally
    updated as its next tasks; the run continues from the copy."""
    def run(lib: Lib) -> Any:
        StateUpdate = types_of(lib).StateUpdate
        graph = chain(lib, saver())
        graph.invoke({"log": ["in"]}, thread())
        past = list(graph.get_state_history(thread()))[2]  # before b ran
        given: Any = {
            "plain copy": None,
            "copy and update": [StateUpdate({"log": ["b*"]}, "b")],
            "two updates": [StateUpdate({"log": ["b1"]}, "b"), ({"log": ["b2"]}, "b")],
            "no such": [StateUpdate({"log": ["x"]}, "ghost")],
        }[values]
        seen: dict[str, Any] = {"copied": attempt(
            lambda: graph.update_state(past.config, given, as_node="__copy__"))}
        if not isinstance(seen["copied"], Raised):
            seen["continued"] = graph.invoke(None, seen["copied"])
        seen.update(snapshot_view(graph, thread()))
        seen["refused"] = attempt(lambda: graph.bulk_update_state(past.config, [[
            StateUpdate(None, "__copy__"), StateUpdate(None, "__copy__")]]))
        return seen

    check(run, candidate, oracle)


def test_update_state_of_a_fresh_thread(candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        graph = chain(lib, saver())
        seen = {"returned": attempt(lambda: graph.update_state(thread(), {"log": ["x"]},
                                                               as_node="a"))}
        seen.update(snapshot_view(graph, thread()))
        seen["continued"] = attempt(lambda: graph.invoke(None, thread()))
        return seen

    check(run, candidate, oracle)


@pytest.mark.parametrize("as_node", ["nope", "__end__"])
def test_update_state_naming_an_unknown_node_raises(as_node: str, candidate: Lib,
                                                    oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        graph = chain(lib, saver())
        graph.invoke({"log": []}, thread())
        return {"raised": attempt(lambda: graph.update_state(thread(), {"log": ["x"]},
                                                             as_node=as_node)),
                "history": history(graph, thread())}

    check(run, candidate, oracle)


def test_replay_from_a_past_checkpoint(candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        calls: list[str] = []
        graph = chain(lib, saver(), calls)
        graph.invoke({"log": []}, thread())
        past = next(s for s in graph.get_state_history(thread()) if s.next == ("b",))
        calls.clear()
        seen = {"past": past,
                "replayed": graph.invoke(None, past.config),
                "calls": list(calls)}
        seen.update(snapshot_view(graph, thread()))
        return seen

    expected = check(run, candidate, oracle)
    assert expected["calls"] == ["b", "c"]


def test_fork_from_a_past_checkpoint(candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        calls: list[str] = []
        graph = chain(lib, saver(), calls)
        graph.invoke({"log": []}, thread())
        past = next(s for s in graph.get_state_history(thread()) if s.next == ("b",))
        calls.clear()
        forked = graph.update_state(past.config, {"log": ["forked"], "k": "fork"})
        seen = {"forked config": forked,
                "forked state": graph.get_state(forked),
                "continued": graph.invoke(None, forked),
                "calls": list(calls)}
        seen.update(snapshot_view(graph, thread()))
        return seen

    check(run, candidate, oracle)


def test_bulk_update_state(candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        StateUpdate = types_of(lib).StateUpdate
        calls: list[str] = []
        graph = chain(lib, saver(), calls)
        seen = {"returned": attempt(lambda: graph.bulk_update_state(thread(), [
            [StateUpdate({"log": ["input"]}, "__input__")],
            [StateUpdate({"log": ["start"]}, "__start__")],
            [StateUpdate({"log": ["as a"]}, "a")],
        ]))}
        seen.update(snapshot_view(graph, thread()))
        seen["continued"] = attempt(lambda: graph.invoke(None, thread()))
        seen["calls"] = calls
        seen["final history"] = history(graph, thread())
        return seen

    check(run, candidate, oracle)


# ============================================================================ 7 pending writes


def watched_saver() -> Any:
    """A LangGraph `InMemorySaver` whose `a_saved` event is set once node a's writes (the
    only ones to key `k`) are saved."""
    from langgraph.checkpoint.memory import InMemorySaver

    class WatchedSaver(InMemorySaver):
        def __init__(self) -> None:
            super().__init__()
            self.a_saved = threading.Event()

        def put_writes(self, config: Any, writes: Any, task_id: str,
                       task_path: str = "") -> None:
            super().put_writes(config, writes, task_id, task_path)
            if any(channel == "k" for channel, _ in writes):
                self.a_saved.set()

    return WatchedSaver()


def test_pending_writes_of_a_failed_step_are_kept(candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        calls: list[str] = []
        broken = [True]
        checkpointer = watched_saver()

        def a(state: Log) -> dict[str, Any]:
            calls.append("a")
            return {"k": "from a", "log": ["a"]}

        def b(state: Log) -> dict[str, Any]:
            calls.append("b")
            if broken[0]:
                # fail only once a's writes are saved, so that they are pending
                checkpointer.a_saved.wait(WAIT)
                raise ValueError("b is broken")
            return {"log": ["b"]}

        graph = (lib.StateGraph(Log)
                 .add_node("a", a)
                 .add_node("b", b)
                 .add_node("join", lambda s: {"log": ["join"]})
                 .add_edge(lib.START, "a")
                 .add_edge(lib.START, "b")
                 .add_edge(["a", "b"], "join")
                 .compile(checkpointer=checkpointer))
        seen: dict[str, Any] = {"failed": attempt(lambda: graph.invoke({"log": []}, thread()))}
        state = graph.get_state(thread())
        seen["state"] = state
        seen["errors"] = [(t.name, t.error) for t in state.tasks]
        broken[0] = False
        seen["resumed"] = attempt(lambda: graph.invoke(None, thread()))
        seen["calls"] = sorted(calls)
        seen["history"] = history(graph, thread())
        return seen

    expected = check(run, candidate, oracle)
    assert expected["calls"] == ["a", "b", "b"]


@pytest.mark.parametrize("how", ["invoke", "ainvoke"])
def test_pending_writes_keep_a_finished_tasks_routes_and_sends(how: str, candidate: Lib,
                                                              oracle: Lib) -> None:
    """A task whose router sends work finished in a step that then failed: its saved writes
    hold its routes and `Send`s, so the resumed run sends them without running it again."""
    def run(lib: Lib) -> Any:
        calls: list[str] = []
        broken = [True]
        checkpointer = watched_saver()

        def b(state: Log) -> dict[str, Any]:
            calls.append("b")
            if broken[0]:
                checkpointer.a_saved.wait(WAIT)  # a's writes pending when b fails
                raise ValueError("b is broken")
            return {"log": ["b"]}

        def a(state: Log) -> dict[str, Any]:
            calls.append("a")
            return {"k": "from a", "log": ["a"]}

        def worker(item: Any) -> dict[str, Any]:
            calls.append(f"worker {item}")
            return {"log": [f"worker {item}"]}

        graph = (lib.StateGraph(Log)
                 .add_node("a", a)
                 .add_node("b", b)
                 .add_node("worker", worker)
                 .add_node("after", lambda s: {"log": ["after"]})
                 .add_edge(lib.START, "a")
                 .add_edge(lib.START, "b")
                 .add_conditional_edges(
                     "a", lambda s: [lib.Send("worker", 1), lib.Send("worker", 2), "after"])
                 .compile(checkpointer=checkpointer))
        def call(input: Any) -> Any:
            if how == "ainvoke":
                return asyncio.run(graph.ainvoke(input, thread()))
            return graph.invoke(input, thread())

        seen: dict[str, Any] = {"failed": attempt(lambda: call({"log": []}))}
        pending = checkpointer.get_tuple(thread()).pending_writes
        seen["pending"] = sorted((channel, repr(value)) for _, channel, value in pending)
        broken[0] = False
        seen["resumed"] = attempt(lambda: call(None))
        seen["calls"] = sorted(calls)
        seen["state"] = graph.get_state(thread()).values
        return seen

    expected = check(run, candidate, oracle)
    assert expected["calls"] == ["a", "b", "b", "worker 1", "worker 2"]


# ============================================================================ 8 errors


def test_missing_thread_id(candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        graph = chain(lib, saver())
        return {"no config": attempt(lambda: graph.invoke({"log": []})),
                "no thread_id": attempt(lambda: graph.invoke({"log": []},
                                                             {"configurable": {}})),
                "stream": attempt(lambda: list(graph.stream({"log": []}))),
                "get_state": attempt(lambda: graph.get_state({"configurable": {}})),
                "update_state": attempt(lambda: graph.update_state({"configurable": {}},
                                                                   {"log": ["x"]}))}

    check(run, candidate, oracle)


def test_interrupt_without_a_checkpointer(candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        graph = (lib.StateGraph(Log)
                 .add_node("ask", lambda s: {"log": [interrupt_of(lib)("q")]})
                 .add_edge(lib.START, "ask")
                 .compile())
        return {"invoke": attempt(lambda: graph.invoke({"log": []})),
                "stream": stream_all(graph.stream({"log": []}, stream_mode="updates"))}

    check(run, candidate, oracle)


def test_get_state_without_a_checkpointer(candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        graph = chain(lib, None)
        return {"get_state": attempt(lambda: graph.get_state(thread())),
                "history": history(graph, thread()),
                "update_state": attempt(lambda: graph.update_state(thread(), {"log": []}))}

    check(run, candidate, oracle)


@pytest.mark.parametrize("history_of_thread", ["fresh", "finished"])
def test_resume_with_nothing_to_resume(history_of_thread: str, candidate: Lib,
                                       oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        graph = asking(lib, saver())
        seen = {}
        if history_of_thread == "finished":
            graph.invoke({"log": []}, thread())
            seen["done"] = graph.invoke(lib.Command(resume="first"), thread())
        seen["resume"] = attempt(lambda: graph.invoke(lib.Command(resume="x"), thread()))
        seen["none"] = attempt(lambda: graph.invoke(None, thread("empty")))
        seen.update(snapshot_view(graph, thread()))
        return seen

    check(run, candidate, oracle)


def test_new_input_while_interrupted(candidate: Lib, oracle: Lib) -> None:
    """Input (not a Command) on an interrupted thread starts a new run from that state."""

    def run(lib: Lib) -> Any:
        graph = asking(lib, saver())
        seen = {"out": graph.invoke({"log": ["one"]}, thread())}
        seen["new input"] = attempt(lambda: graph.invoke({"log": ["two"]}, thread()))
        seen["resumed"] = attempt(lambda: graph.invoke(lib.Command(resume="late"), thread()))
        seen.update(snapshot_view(graph, thread()))
        return seen

    check(run, candidate, oracle)


# ============================================================================ 9 async


def test_async_multi_turn_memory(candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        graph = echo_chat(lib, saver())

        async def main() -> Any:
            seen = {}
            seen["t1 turn 1"] = await graph.ainvoke({"messages": [("user", "hi")]}, thread("t1"))
            seen["t1 turn 2"] = await astream_all(graph.astream(
                {"messages": [("user", "again")]}, thread("t1"), stream_mode="values"))
            seen["t2 turn 1"] = await graph.ainvoke({"messages": [("user", "x")]}, thread("t2"))
            seen["t1 state"] = await graph.aget_state(thread("t1"))
            seen["t1 history"] = [s async for s in graph.aget_state_history(thread("t1"))]
            return seen

        return asyncio.run(main())

    check(run, candidate, oracle)


@pytest.mark.parametrize("how", ["ainvoke", "astream"])
def test_async_interrupt_and_resume(how: str, candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        interrupt = interrupt_of(lib)

        async def ask(state: Log) -> dict[str, Any]:
            await asyncio.sleep(0)
            return {"log": [f"ask:{interrupt('async?')}"]}

        graph = (lib.StateGraph(Log)
                 .add_node("a", lambda s: {"log": ["a"]})
                 .add_node("ask", ask)
                 .add_edge(lib.START, "a")
                 .add_edge("a", "ask")
                 .compile(checkpointer=saver()))

        async def go(input: Any) -> Any:
            if how == "ainvoke":
                return await graph.ainvoke(input, thread())
            return await astream_all(graph.astream(input, thread(),
                                                   stream_mode=["updates", "values"]))

        async def main() -> Any:
            seen = {"out": await go({"log": []})}
            seen["state"] = await graph.aget_state(thread())
            seen["resumed"] = await go(lib.Command(resume="yes"))
            seen["history"] = [s async for s in graph.aget_state_history(thread())]
            seen["update"] = await graph.aupdate_state(thread(), {"k": "async"}, as_node="ask")
            seen["after update"] = await graph.aget_state(thread())
            return seen

        return asyncio.run(main())

    check(run, candidate, oracle)


def async_interrupting(lib: Lib, kind: str, calls: list[str]) -> Any:
    """Graphs with async nodes that interrupt: two interrupts in one node, two parallel
    nodes each interrupting, an interrupt in a subgraph, a single one (for resuming with
    update + goto)."""
    interrupt = interrupt_of(lib)

    def asker(name: str, times: int = 1) -> Callable[[Log], Any]:
        async def node(state: Log) -> dict[str, Any]:
            calls.append(name)
            await asyncio.sleep(0)
            answers = [interrupt(f"{name} {n}?") for n in range(times)]
            return {"log": [f"{name}:{'+'.join(map(str, answers))}"]}

        return node

    b = lib.StateGraph(Log)
    if kind == "two in one node":
        b.add_node("two", asker("two", 2)).add_edge(lib.START, "two")
    elif kind == "parallel":
        (b.add_node("p", asker("p")).add_node("q", asker("q"))
         .add_node("join", lambda s: {"log": ["join"]})
         .add_edge(lib.START, "p").add_edge(lib.START, "q").add_edge(["p", "q"], "join"))
    elif kind == "subgraph":
        inner = (lib.StateGraph(Log).add_node("before", lambda s: {"log": ["before"]})
                 .add_node("ask", asker("inner")).add_edge(lib.START, "before")
                 .add_edge("before", "ask").compile())
        (b.add_node("outer", lambda s: {"log": ["outer"]}).add_node("sub", inner)
         .add_edge(lib.START, "outer").add_edge("outer", "sub"))
    else:  # "update and goto"
        (b.add_node("ask", asker("ask")).add_node("other", lambda s: {"log": [s.get("k")]})
         .add_edge(lib.START, "ask"))
    return b.compile(checkpointer=saver())


@pytest.mark.parametrize("how", ["ainvoke", "astream"])
@pytest.mark.parametrize("kind", ["two in one node", "parallel", "subgraph", "update and goto"])
def test_async_interrupt_variants(kind: str, how: str, candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        calls: list[str] = []
        graph = async_interrupting(lib, kind, calls)

        async def go(input: Any) -> Any:
            if how == "ainvoke":
                out = await graph.ainvoke(input, thread())
                if isinstance(out, dict) and "__interrupt__" in out:
                    out = {**out, "__interrupt__": _by_value(out["__interrupt__"])}
                return out
            # Parallel tasks' updates come in completion order: values only where a step
            # has two tasks.
            mode = "values" if kind in ("parallel", "update and goto") else ["updates", "values"]
            return await astream_all(graph.astream(input, thread(), stream_mode=mode,
                                                   subgraphs=kind == "subgraph"))

        async def main() -> Any:
            seen: dict[str, Any] = {"out": await go({"log": []})}
            for n in range(1, 4):
                state = await graph.aget_state(thread(), subgraphs=True)
                if not state.interrupts:
                    break
                seen[f"state {n}"] = state.next, state.tasks, _by_value(state.interrupts)
                if kind == "parallel":
                    command = lib.Command(resume={i.id: f"r{n}-{i.value}"
                                                  for i in state.interrupts})
                elif kind == "update and goto":
                    command = lib.Command(resume="r", update={"k": "upd"}, goto="other")
                else:
                    command = lib.Command(resume=f"r{n}")
                seen[f"resume {n}"] = await go(command)
            seen["calls"] = sorted(calls)
            seen["final"] = await graph.aget_state(thread())
            return seen

        return asyncio.run(main())

    check(run, candidate, oracle)


# ============================================================================ 10 cross-engine


@pytest.mark.parametrize("order", ["langgraph then ferrograph", "ferrograph then langgraph"])
def test_one_checkpointer_shared_by_both_engines(order: str, candidate: Lib,
                                                 oracle: Lib) -> None:
    def run(first: Lib, second: Lib) -> Any:
        shared = saver()
        g1, g2 = chat_with_approval(first, shared), chat_with_approval(second, shared)
        seen: dict[str, Any] = {}
        seen["turn 1"] = attempt(lambda: g1.invoke({"messages": [("user", "one")]}, thread()))
        seen["resume 1"] = attempt(lambda: g2.invoke(second.Command(resume="yes"), thread()))
        seen["turn 2"] = attempt(lambda: g1.invoke({"messages": [("user", "two")]}, thread()))
        seen["resume 2"] = attempt(lambda: g2.invoke(second.Command(resume="sure"), thread()))
        # the history read back by each engine (both must read what the other wrote)
        seen["state"] = attempt(lambda: g1.get_state(thread()))
        seen["history by first"] = history(g1, thread())
        seen["history by second"] = history(g2, thread())
        return normalize(seen)

    mixed = run(oracle, candidate) if order.startswith("langgraph") else run(candidate, oracle)
    expected = run(oracle, oracle)
    assert mixed == expected
    assert [m["content"] for m in expected["resume 2"]["messages"]] == [
        "one", "echo: one", "approved: yes", "two", "echo: two", "approved: sure"]


def test_the_same_run_id_re_enters_its_run(candidate: Lib, oracle: Lib) -> None:
    """A run given the `metadata.run_id` of the thread's last checkpoint (the server retrying
    a run after a restart) resumes from that checkpoint with its input ignored; another
    run id with the same input starts a new run."""

    def run(lib: Lib) -> Any:
        failing = {"b": True}

        def step(name: str) -> Callable[[Any], dict[str, Any]]:
            def node(state: Any) -> dict[str, Any]:
                if failing.get(name):
                    raise RuntimeError(f"{name} failed")
                return {"log": [name]}

            return node

        graph = (lib.StateGraph(Log)
                 .add_sequence([("a", step("a")), ("b", step("b")), ("c", step("c"))])
                 .add_edge(lib.START, "a")
                 .compile(checkpointer=saver()))
        first = {**thread("t"), "metadata": {"run_id": "run-1"}}
        seen = {"failed": attempt(lambda: graph.invoke({"log": ["in"]}, first))}
        failing["b"] = False
        seen["retried"] = graph.invoke({"log": ["in"]}, first)
        seen["other run"] = graph.invoke(
            {"log": ["again"]}, {**thread("t"), "metadata": {"run_id": "run-2"}})
        seen.update(snapshot_view(graph, thread("t")))
        return seen

    expected = check(run, candidate, oracle)
    assert expected["retried"]["log"] == ["in", "a", "b", "c"]
