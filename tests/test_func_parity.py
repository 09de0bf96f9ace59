"""The functional API, differentially: each scenario builds the same `@entrypoint` / `@task`
program with `langgraph.func` (the oracle) and with `ferrograph.func`, runs the same calls on
both, and compares everything observed (results, stream items in several modes, snapshots,
histories, the saver's checkpoints and pending writes, errors) after `_norm()`. A thread
started on one engine is also resumed on the other (InMemorySaver and SQLite), both ways.

`_norm()` replaces ids (checkpoint ids, interrupt ids) by placeholders numbered by first
appearance, so "this is the parent of that" and "this interrupt is that one" are still
checked; task ids are LangGraph's hashes of the checkpoint id, so they are compared through
the same placeholders. Timestamps become "<time>", channel versions keep their counter.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypedDict

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from ferrograph.types import StreamWriter

LIBS = ("langgraph", "ferrograph")
_ID = re.compile(r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32})$")
_VERSION = re.compile(r"^(\d{32})\.\d+\.\d+$")
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")


@dataclasses.dataclass
class F:
    """The functional API and its companions, from one implementation."""

    name: str
    entrypoint: Any
    task: Any
    interrupt: Any
    Command: Any
    RetryPolicy: Any
    StateGraph: Any
    START: str
    get_stream_writer: Any


def load(name: str) -> F:
    func = importlib.import_module(f"{name}.func")
    types = importlib.import_module(f"{name}.types")
    graph = importlib.import_module(f"{name}.graph")
    config = importlib.import_module(f"{name}.config")
    return F(name, func.entrypoint, func.task, types.interrupt, types.Command,
             types.RetryPolicy, graph.StateGraph, graph.START, config.get_stream_writer)


class _Norm:
    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            if _ID.match(value):
                return self.ids.setdefault(value, f"<id{len(self.ids)}>")
            if m := _VERSION.match(value):
                return f"<v{int(m.group(1))}>"
            if _TIME.match(value):
                return "<time>"
            return value
        if isinstance(value, dict):
            return {self(k): self(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, tuple):
            if hasattr(value, "_fields"):  # StateSnapshot, PregelTask, CheckpointTuple
                return (type(value).__name__, {f: self(getattr(value, f))
                                               for f in value._fields})
            return tuple(self(v) for v in value)
        if type(value).__name__ == "Interrupt":
            return ("Interrupt", self(value.value), self(value.id))
        if isinstance(value, BaseException):
            return ("error", type(value).__name__, str(value))
        return value


def _norm(value: Any) -> Any:
    return _Norm()(value)


def _canon(value: Any) -> str:
    """A text of `value` that does not depend on the order of dict keys (a sort key)."""
    if isinstance(value, dict):
        return "{" + ", ".join(sorted(f"{_canon(k)}: {_canon(v)}" for k, v in value.items())) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_canon(v) for v in value) + "]"
    return repr(value)


def _saved(saver: Any, thread: str) -> list[Any]:
    """The thread's checkpoints (oldest first) with their metadata and pending writes."""
    out = []
    for t in sorted(saver.list({"configurable": {"thread_id": thread}}),
                    key=lambda t: t.checkpoint["id"]):
        ck = t.checkpoint
        out.append({
            "id": ck["id"], "metadata": t.metadata,
            "parent": t.parent_config and t.parent_config["configurable"]["checkpoint_id"],
            "values": ck["channel_values"], "versions": ck["channel_versions"],
            "seen": ck["versions_seen"], "updated": ck.get("updated_channels"),
            "writes": _grouped(t.pending_writes or ()),
        })
    return out


def _grouped(writes: Any) -> list[Any]:
    """Pending writes by task, in an order that does not depend on ids: each task's
    channels and values (its id left out: ids are compared in the checkpoint payloads)."""
    tasks: dict[str, list[Any]] = {}
    for tid, channel, value in writes:
        tasks.setdefault(tid, []).append((channel, _canon(_norm(value))))
    return sorted((tid == "00000000-0000-0000-0000-000000000000", sorted(ws))
                  for tid, ws in tasks.items())


def _outcome(fn: Callable[[], Any]) -> Any:
    try:
        return ("ok", fn())
    except Exception as e:  # noqa: BLE001 - compared
        return ("raised", type(e).__name__, str(e))


def _stream(graph: Any, *args: Any, **kwargs: Any) -> Any:
    return _outcome(lambda: list(graph.stream(*args, **kwargs)))


def differential(scenario: Callable[[F], list[Any]]) -> None:
    expected = _norm(scenario(load("langgraph")))
    got = _norm(scenario(load("ferrograph")))
    assert got == expected


# -- results, streams, snapshots ----------------------------------------------------------------

def _mapper_program(f: F, saver: Any) -> Any:
    @f.task
    def double(x: int) -> int:
        return x * 2

    @f.task(name="named")
    def add(a: int, b: int = 1) -> int:
        return a + b

    @f.entrypoint(checkpointer=saver)
    def main(xs: list[int], *, previous: Any = None) -> Any:
        doubled = [fut.result() for fut in [double(x) for x in xs]]
        total = add(sum(doubled), b=3).result()
        return f.entrypoint.final(value={"doubled": doubled, "total": total,
                                         "previous": previous}, save=total)
    return main


@pytest.mark.parametrize("mode", ["updates", "values", "debug", "tasks", "checkpoints",
                                  ["updates", "values", "custom"]])
def test_results_streams_and_history(mode: Any) -> None:
    def scenario(f: F) -> list[Any]:
        saver = InMemorySaver()
        main = _mapper_program(f, saver)
        cfg = {"configurable": {"thread_id": "t"}}
        out = [main.invoke([1], cfg)]
        items = list(main.stream([2], cfg, stream_mode=mode))
        # parallel tasks end in any order: compare their items as a multiset
        out.append(sorted(map(_canon, _norm(items))))
        out.append(main.get_state(cfg))
        out.append(list(main.get_state_history(cfg)))
        out.append(_saved(saver, "t"))
        return out
    differential(scenario)


def test_subgraphs_stream_shape() -> None:
    def scenario(f: F) -> list[Any]:
        @f.task
        def one() -> int:
            return 1

        @f.entrypoint()
        def main(x: int) -> int:
            return one().result() + x
        return [list(main.stream(1, subgraphs=True)),
                list(main.stream(1, stream_mode=["updates", "values"], subgraphs=True)),
                main.invoke(1), main.invoke(1, stream_mode="updates")]
    differential(scenario)


def test_custom_writer_and_injected_arguments() -> None:
    def scenario(f: F) -> list[Any]:
        @f.task
        def shout(x: str) -> str:
            f.get_stream_writer()(f"task:{x}")
            return x.upper()

        @f.entrypoint(checkpointer=InMemorySaver())
        def main(x: str, *, writer: StreamWriter, config: RunnableConfig,
                 previous: Any = None) -> Any:
            writer(f"main:{x}:{config['configurable']['thread_id']}:{previous}")
            return shout(x).result()
        cfg = {"configurable": {"thread_id": "c"}}
        return [list(main.stream("a", cfg, stream_mode=["custom", "updates"])),
                list(main.stream("b", cfg, stream_mode="custom"))]
    differential(scenario)


# -- interrupts and resumes ---------------------------------------------------------------------

def _interrupting(f: F, saver: Any, calls: list[str]) -> Any:
    @f.task
    def step(x: str) -> str:
        calls.append(x)
        return x + "!"

    @f.task
    def ask(q: str) -> Any:
        return f.interrupt(q)

    @f.entrypoint(checkpointer=saver)
    def main(x: str) -> Any:
        a = step(x).result()
        b = ask(f"first {a}").result()
        c = f.interrupt("second")
        return [a, b, c, step(b).result()]
    return main


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_interrupts_resumes_and_history(durability: str) -> None:
    def scenario(f: F) -> list[Any]:
        saver = InMemorySaver()
        calls: list[str] = []
        main = _interrupting(f, saver, calls)
        cfg = {"configurable": {"thread_id": "i"}}
        out = [_stream(main, "x", cfg, durability=durability,
                       stream_mode=["updates", "values", "debug"])]
        out.append(main.get_state(cfg))
        out.append(_stream(main, f.Command(resume="one"), cfg, durability=durability))
        out.append(main.get_state(cfg))
        out.append(_outcome(lambda: main.invoke(f.Command(resume="two"), cfg,
                                                durability=durability)))
        out.append(list(calls))
        out.append(list(main.get_state_history(cfg)))
        out.append(_saved(saver, "i"))
        return out
    differential(scenario)


def test_resume_by_interrupt_id_and_multiple_pending() -> None:
    def scenario(f: F) -> list[Any]:
        saver = InMemorySaver()

        @f.task
        def ask(q: str) -> Any:
            return f.interrupt(q)

        @f.entrypoint(checkpointer=saver)
        def main(x: str) -> Any:
            return ask(x + "1").result(), ask(x + "2").result()
        cfg = {"configurable": {"thread_id": "m"}}
        out = [main.invoke("q", cfg)]
        first = main.get_state(cfg).interrupts[0]
        out.append(main.invoke(f.Command(resume={first.id: "a"}), cfg))
        second = main.get_state(cfg).interrupts[0]
        out.append(main.invoke(f.Command(resume={second.id: "b"}), cfg))
        out.append(_saved(saver, "m"))
        return out
    differential(scenario)


def test_update_state_and_previous() -> None:
    def scenario(f: F) -> list[Any]:
        saver = InMemorySaver()

        @f.entrypoint(checkpointer=saver)
        def main(x: Any, *, previous: Any = None) -> Any:
            if x == "stop":
                f.interrupt("why")
            return {"x": x, "previous": previous}
        cfg = {"configurable": {"thread_id": "u"}}
        out = [main.update_state(cfg, {"seed": 0})]
        out.append(main.invoke(1, cfg))
        out.append(main.update_state(cfg, {"seed": 1}))
        out.append(main.invoke("stop", cfg))
        out.append(main.update_state(cfg, {"seed": 2}))
        out.append(main.get_state(cfg))
        out.append(main.invoke(3, cfg))
        out.append(_saved(saver, "u"))
        return out
    differential(scenario)


# -- errors, retries, cache ---------------------------------------------------------------------

def test_errors_and_retries() -> None:
    def scenario(f: F) -> list[Any]:
        saver = InMemorySaver()
        attempts: list[int] = []

        @f.task(retry_policy=f.RetryPolicy(max_attempts=3, initial_interval=0.001,
                                           jitter=False, retry_on=ValueError))
        def flaky(x: int) -> int:
            attempts.append(x)
            if len(attempts) < 3:
                raise ValueError("not yet")
            return x

        @f.task
        def broken() -> None:
            raise KeyError("nope")

        @f.entrypoint(checkpointer=saver)
        def main(x: int) -> Any:
            got = flaky(x).result()
            if x > 1:
                broken().result()
            return got
        cfg = {"configurable": {"thread_id": "e"}}
        out = [main.invoke(1, cfg), list(attempts)]
        out.append(_stream(main, 2, cfg, stream_mode=["updates", "tasks"]))
        out.append(main.get_state(cfg))
        out.append(_saved(saver, "e"))
        return out
    differential(scenario)


def test_bad_input_errors() -> None:
    def scenario(f: F) -> list[Any]:
        @f.task
        def t(x: int) -> int:
            return x

        @f.entrypoint(checkpointer=InMemorySaver())
        def main(x: int) -> int:
            return t(x).result()

        def no_param() -> int:
            return 1

        def gen(x: int) -> Any:
            yield x

        @f.entrypoint()
        async def async_main(x: int) -> int:
            return x

        @f.task
        async def async_task(x: int) -> int:
            return x

        @f.entrypoint()
        def calls_async_task(x: int) -> int:
            return async_task(x).result()
        return [
            _outcome(lambda: async_main.invoke(1)),  # an async entrypoint run synchronously
            _outcome(lambda: calls_async_task.invoke(1)),  # an async task from a sync one
            _outcome(lambda: async_main.get_state({"configurable": {"thread_id": "1"}})),
            _outcome(lambda: t(1)),  # outside any run
            _outcome(lambda: main.invoke(1)),  # no thread_id
            _outcome(lambda: main.invoke(None, {"configurable": {"thread_id": "n"}})),
            _outcome(lambda: f.entrypoint()(no_param)),
            _outcome(lambda: f.entrypoint()(gen)),
        ]
    differential(scenario)


# -- tasks from a graph's node ------------------------------------------------------------------

def test_task_called_from_a_state_graph_node() -> None:
    class State(TypedDict):
        x: int

    def scenario(f: F) -> list[Any]:
        saver = InMemorySaver()

        @f.task
        def plus(x: int) -> int:
            return x + 10

        @f.task
        def ask() -> Any:
            return f.interrupt("ok?")

        def node(state: State) -> State:
            value = plus(state["x"]).result()
            answer = ask().result()
            return {"x": value + answer}
        graph = (f.StateGraph(State).add_node("node", node).add_edge(f.START, "node")
                 .compile(checkpointer=saver))
        cfg = {"configurable": {"thread_id": "g"}}
        out = [graph.invoke({"x": 1}, cfg)]
        out.append(graph.invoke(f.Command(resume=100), cfg))
        out.append(_saved(saver, "g"))
        return out
    differential(scenario)


# -- async ----------------------------------------------------------------------------------------

def test_async_entrypoint_and_tasks() -> None:
    def scenario(f: F) -> list[Any]:
        saver = InMemorySaver()

        @f.task
        async def slow(x: int) -> int:
            await asyncio.sleep(0.01 * x)
            return x * 3

        @f.task
        def sync_task(x: int) -> int:
            return x + 1

        @f.entrypoint(checkpointer=saver)
        async def main(xs: list[int]) -> Any:
            got = await asyncio.gather(*(slow(x) for x in xs))
            extra = await sync_task(sum(got))
            answer = f.interrupt("more?")
            return [*got, extra, answer]

        async def go() -> list[Any]:
            cfg = {"configurable": {"thread_id": "a"}}
            out: list[Any] = [[c async for c in main.astream([1, 2], cfg)]]
            out.append(await main.ainvoke(f.Command(resume="yes"), cfg))
            out.append(await main.aget_state(cfg))
            return out
        return [*asyncio.run(go()), _saved(saver, "a")]
    differential(scenario)


# -- one thread, two engines ------------------------------------------------------------------

def _sqlite_saver() -> Any:
    return SqliteSaver(sqlite3.connect(":memory:", check_same_thread=False))


@pytest.mark.parametrize("make_saver", [InMemorySaver, _sqlite_saver],
                         ids=["memory", "sqlite"])
@pytest.mark.parametrize("first", LIBS)
def test_thread_moves_between_engines(make_saver: Callable[[], Any], first: str) -> None:
    """A thread interrupted on one engine is resumed on the other, then run again there;
    the outcome and the saved thread are those of a thread run on LangGraph alone."""
    second = "ferrograph" if first == "langgraph" else "langgraph"

    def run(names: tuple[str, str]) -> list[Any]:
        saver = make_saver()
        calls: list[str] = []
        progs = {n: _interrupting(load(n), saver, calls) for n in set(names)}
        libs = {n: load(n) for n in set(names)}
        cfg = {"configurable": {"thread_id": "x"}}
        a, b = names
        out = [progs[a].invoke("x", cfg)]
        out.append(progs[b].invoke(libs[b].Command(resume="one"), cfg))
        out.append(progs[a].invoke(libs[a].Command(resume="two"), cfg))
        out.append(progs[b].get_state(cfg))
        out.append(progs[b].invoke("y", cfg))
        out.append(list(calls))
        out.append(_saved(saver, "x"))
        return out

    expected = _norm(run(("langgraph", "langgraph")))
    assert _norm(run((first, second))) == expected


def test_no_thread_is_left_running() -> None:
    before = threading.active_count()
    f = load("ferrograph")
    main = _mapper_program(f, None)
    for _ in range(20):
        main.invoke([1, 2, 3])
    # the worker pool keeps idle threads for 2 s (`_executor.IDLE_LINGER_SECONDS`)
    deadline = time.monotonic() + 10
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before


@pytest.mark.parametrize("first", LIBS)
def test_async_thread_moves_between_engines_on_async_sqlite(first: str) -> None:
    """The same on `AsyncSqliteSaver`, driven by `ainvoke` (the saver's async methods)."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
    second = "ferrograph" if first == "langgraph" else "langgraph"

    async def run(names: tuple[str, str]) -> list[Any]:
        async with AsyncSqliteSaver.from_conn_string(":memory:") as saver:
            calls: list[str] = []
            progs = {n: _interrupting(load(n), saver, calls) for n in set(names)}
            libs = {n: load(n) for n in set(names)}
            cfg = {"configurable": {"thread_id": "x"}}
            a, b = names
            out = [await progs[a].ainvoke("x", cfg)]
            out.append(await progs[b].ainvoke(libs[b].Command(resume="one"), cfg))
            out.append(await progs[a].ainvoke(libs[a].Command(resume="two"), cfg))
            out.append(await progs[b].aget_state(cfg))
            out.append(list(calls))
            saved = []
            async for t in saver.alist(cfg):
                saved.append((t.metadata, t.checkpoint["channel_values"],
                               _grouped(t.pending_writes or ())))
            out.append(saved[::-1])
            return out

    expected = _norm(asyncio.run(run(("langgraph", "langgraph"))))
    assert _norm(asyncio.run(run((first, second)))) == expected


@pytest.mark.parametrize("caller", ["entrypoint", "task", "state_graph"])
def test_nested_entrypoint_interrupts_and_resumes(caller: str) -> None:
    """An entrypoint invoked from an entrypoint, a task or a graph's node keeps its
    checkpoints in the caller's thread, under the calling task's namespace."""
    class State(TypedDict):
        x: str

    def scenario(f: F) -> list[Any]:
        saver = InMemorySaver()

        @f.task
        def shout(x: str) -> str:
            return x.upper()

        @f.entrypoint()
        def inner(x: str) -> str:
            loud = shout(x).result()
            return loud + f.interrupt(f"inner {loud}?")

        @f.task
        def via_task(x: str) -> str:
            return inner.invoke(x)

        if caller == "state_graph":
            def node(state: State) -> State:
                return {"x": inner.invoke(state["x"])}
            outer: Any = (f.StateGraph(State).add_node("node", node)
                          .add_edge(f.START, "node").compile(checkpointer=saver))
            first: Any = {"x": "a"}
        else:
            @f.entrypoint(checkpointer=saver)
            def outer(x: str) -> str:
                got = inner.invoke(x) if caller == "entrypoint" else via_task(x).result()
                return got + f.interrupt("outer?")
            first = "a"
        cfg = {"configurable": {"thread_id": "n"}}
        out = [outer.invoke(first, cfg)]
        out.append(outer.invoke(f.Command(resume="1"), cfg))
        if caller != "state_graph":
            out.append(outer.invoke(f.Command(resume="2"), cfg))
        saved = sorted(saver.list(None), key=lambda t: t.checkpoint["id"])
        ids = {t.checkpoint["id"]: i for i, t in enumerate(saved)}
        out.append(sorted((t.config["configurable"]["checkpoint_ns"].split(":")[0],
                           t.metadata["source"], t.metadata["step"],
                           {ns.split(":")[0]: ids.get(c) for ns, c in
                            t.metadata["parents"].items()})
                          for t in saved))
        return out
    differential(scenario)


def test_task_cache_policy() -> None:
    """A task with a `cache_policy` is answered from the entrypoint's cache the second time
    (its `updates` item marked cached), with LangGraph's cache keys."""
    from langgraph.cache.memory import InMemoryCache

    def scenario(f: F) -> list[Any]:
        types = importlib.import_module(f"{f.name}.types")
        calls: list[int] = []

        @f.task(cache_policy=types.CachePolicy())
        def slow_square(x: int) -> int:
            calls.append(x)
            return x * x

        @f.entrypoint(cache=InMemoryCache())
        def main(xs: list[int]) -> int:
            return sum(fut.result() for fut in [slow_square(x) for x in xs])
        # parallel tasks end in any order: their items and calls compared as multisets
        out: list[Any] = [sorted(map(_canon, main.stream([1, 2]))), sorted(calls)]
        out.append(sorted(map(_canon, main.stream([2, 3]))))
        out.append(sorted(calls))
        slow_square.clear_cache(main.cache)
        out.append(main.invoke([2]))
        out.append(sorted(calls))
        return out
    differential(scenario)


@pytest.mark.parametrize("first", LIBS)
def test_task_cache_entries_are_shared_between_engines(first: str) -> None:
    """A task cached by one engine is answered from that cache by the other (same keys and
    entries as LangGraph's)."""
    from langgraph.cache.memory import InMemoryCache
    second = "ferrograph" if first == "langgraph" else "langgraph"
    cache = InMemoryCache()
    calls: list[str] = []

    def build(name: str) -> Any:
        f = load(name)
        types = importlib.import_module(f"{name}.types")

        def shared_double(x: int) -> int:
            calls.append(name)
            return 2 * x
        shared_double.__qualname__ = "shared_double"
        double = f.task(shared_double, cache_policy=types.CachePolicy())

        @f.entrypoint(cache=cache)
        def main(x: int) -> int:
            return double(x).result()
        return main
    assert build(first).invoke(21) == 42
    assert list(build(second).stream(21)) == [
        {"shared_double": 42, "__metadata__": {"cached": True}}, {"main": 42}]
    assert calls == [first]


def test_entrypoint_cache_policy() -> None:
    """`entrypoint(cache_policy=...)`: the function's result cached by its input."""
    from langgraph.cache.memory import InMemoryCache

    def scenario(f: F) -> list[Any]:
        types = importlib.import_module(f"{f.name}.types")
        calls: list[int] = []

        @f.entrypoint(cache=InMemoryCache(), cache_policy=types.CachePolicy())
        def main(x: int) -> int:
            calls.append(x)
            return x + 1
        out = [list(main.stream(1, stream_mode=["updates", "values"])),
               list(main.stream(1, stream_mode=["updates", "values"])),
               main.invoke(2), list(calls)]
        return out
    differential(scenario)


def test_drawing_and_schemas() -> None:
    from typing_extensions import TypedDict as PydanticTypedDict

    class Context(PydanticTypedDict):
        model: str

    def scenario(f: F) -> list[Any]:
        @f.entrypoint(context_schema=Context)
        def main(xs: list[int]) -> list[str]:
            return [str(x) for x in xs]
        drawing = main.get_graph()
        return [drawing.draw_mermaid(), drawing.to_json(), main.get_input_jsonschema(),
                main.get_output_jsonschema(), main.get_context_jsonschema()]
    differential(scenario)


@pytest.mark.parametrize("subgraphs", [False, True])
def test_nested_entrypoint_items_stream_under_their_namespace(subgraphs: bool) -> None:
    """With subgraphs=True, an entrypoint run by the function or by a task (and an entrypoint
    that one runs) streams its items under its namespace; custom items under their task's
    caller's."""
    def scenario(f: F) -> list[Any]:
        @f.task
        def shout(x: str) -> str:
            f.get_stream_writer()("w:" + x)
            return x.upper()

        @f.entrypoint()
        def innermost(x: str) -> str:
            return shout(x).result() + "?"

        @f.entrypoint()
        def inner(x: str) -> str:
            return shout(x).result() + innermost.invoke(x)

        @f.task
        def via(x: str) -> str:
            return inner.invoke(x)

        @f.entrypoint()
        def outer(x: str) -> str:
            f.get_stream_writer()("outer")
            return inner.invoke(x) + via(x).result() + shout(x).result()
        items = outer.stream("a", stream_mode=["updates", "custom", "values"],
                             subgraphs=subgraphs)
        if not subgraphs:
            return list(items)
        # namespaces without task ids (those are compared as placeholders elsewhere)
        return [(tuple(p.split(":")[0] for p in ns), mode, payload)
                for ns, mode, payload in items]
    differential(scenario)


def test_replay_from_a_past_checkpoint_forks() -> None:
    """`invoke(None, config)` at a past checkpoint: LangGraph's fork checkpoint, the saved
    task results run again, the branch's checkpoints after it."""
    def scenario(f: F) -> list[Any]:
        saver = InMemorySaver()
        calls: list[int] = []

        @f.task
        def t1(x: int) -> int:
            calls.append(x)
            return x * 10

        @f.entrypoint(checkpointer=saver)
        def main(x: int, *, previous: Any = None) -> Any:
            return [t1(x).result(), previous]
        cfg = {"configurable": {"thread_id": "1"}}
        out = [main.invoke(1, cfg), main.invoke(2, cfg)]
        first = list(main.get_state_history(cfg))[-1].config
        out.append(main.invoke(None, first))
        out.append(list(calls))
        out.append(list(main.get_state_history(cfg)))
        out.append(_saved(saver, "1"))
        return out
    differential(scenario)
