"""LangGraph 1.2's node-result cache and long-term store, differentially.

Cache: `compile(cache=InMemoryCache())` with `add_node(..., cache_policy=CachePolicy(...))`
or `set_node_defaults(cache_policy=...)`, `clear_cache` / `aclear_cache`. Store:
`compile(store=InMemoryStore())` as nodes see it (`store: BaseStore`, `runtime.store`,
`get_store()`), in a subgraph too. Each test builds the same graph with `langgraph.graph`
(the oracle) and `ferrograph.graph`, runs it under `invoke`, `stream`, `ainvoke` and
`astream` (the runs of one test share the graph's cache), and compares the outcomes, the
streamed items (with LangGraph's `"__metadata__": {"cached": True}` on cached tasks' updates)
and how often each node was called. The cache classes are `langgraph-checkpoint`'s, shared by
both engines. TTL expiry runs on a fake clock (the cache's `datetime` replaced), never on
sleeps.
"""

from __future__ import annotations

import asyncio
import datetime as real_datetime
import importlib
import operator
import types
from collections import Counter
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.cache.memory import InMemoryCache
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore
from pydantic import BaseModel

from tests.parity import Lib, Raised, drain, normalise, outcome, sort_key

HOWS = ["invoke", "ainvoke", "stream", "astream"]
MODES = ["updates", "values", "tasks"]


class State(TypedDict):
    x: int
    log: Annotated[list, operator.add]


def types_of(lib: Lib) -> Any:
    return importlib.import_module(f"{lib.name}.types")


def run(graph: Any, how: str, input: Any, modes: Any = MODES, sort: bool = False,
        **kwargs: Any) -> Any:
    """The normalised outcome of one run: the result (or what it raised), or the items
    streamed and what the stream raised (sorted when tasks of a step run concurrently)."""
    if how == "invoke":
        return outcome(lambda: graph.invoke(input, **kwargs))
    if how == "ainvoke":
        return outcome(lambda: asyncio.run(graph.ainvoke(input, **kwargs)))
    if how == "stream":
        items, raised = drain(graph.stream(input, stream_mode=modes, **kwargs))
    else:
        async def collect() -> tuple[list[Any], Raised | None]:
            out: list[Any] = []
            try:
                async for item in graph.astream(input, stream_mode=modes, **kwargs):
                    out.append(item)
            except Exception as e:  # noqa: BLE001 - compared
                return out, Raised.of(e)
            return out, None

        items, raised = asyncio.run(collect())
    items = normalise(items)
    if sort:
        items = sorted(items, key=sort_key)
    return items, raised


def same(build: Callable[[Lib, Counter], Any], how: str, inputs: list[Any],
         candidate: Lib, oracle: Lib, **kwargs: Any) -> list[Any]:
    """Runs `inputs` one after the other through the graph `build(lib, calls)` of each
    engine (one graph, so one cache, per engine) and asserts the outcomes and the node
    call counts are alike; returns LangGraph's outcomes and counts."""
    results = []
    for lib in (oracle, candidate):
        calls: Counter = Counter()
        graph = build(lib, calls)
        outcomes = []
        for input in inputs:
            if callable(input):  # a step between runs (clearing the cache, the clock, a look)
                outcomes.append(("after", normalise(input(graph)), dict(calls)))
                continue
            outcomes.append((run(graph, how, input, **kwargs), dict(calls)))
        results.append(outcomes)
    expected, got = results
    assert got == expected
    return expected


def counted(calls: Counter, name: str, fn: Callable[..., Any], is_async: bool) -> Any:
    """`fn` as a node (async when asked) that counts its calls under `name`."""
    if is_async:
        async def anode(state: Any) -> Any:
            calls[name] += 1
            return fn(state)
        return anode

    def node(state: Any) -> Any:
        calls[name] += 1
        return fn(state)
    return node


ASYNC_CASES = [*((False, how) for how in HOWS), *((True, how) for how in ("ainvoke", "astream"))]


# ------------------------------------------------------------------------------- the cache


@pytest.mark.parametrize(("is_async", "how"), ASYNC_CASES)
def test_cached_node_is_skipped_on_a_hit(is_async: bool, how: str, candidate: Lib,
                                         oracle: Lib) -> None:
    """test_cache.py-style: the same input hits (node not called, update marked cached), a
    new input misses, `clear_cache` empties it."""

    def build(lib: Lib, calls: Counter) -> Any:
        policy = types_of(lib).CachePolicy()
        return (lib.StateGraph(State)
                .add_node("a", counted(calls, "a", lambda s: {"x": s["x"] + 1, "log": ["a"]},
                                       is_async), cache_policy=policy)
                .add_node("b", counted(calls, "b", lambda s: {"log": ["b"]}, is_async))
                .add_edge(lib.START, "a").add_edge("a", "b")
                .compile(cache=InMemoryCache()))

    expected = same(build, how, [{"x": 1, "log": []}, {"x": 1, "log": []},
                                 {"x": 2, "log": []}, lambda g: g.clear_cache(),
                                 {"x": 1, "log": []}], candidate, oracle)
    assert [o[-1].get("a") for o in expected] == [1, 1, 2, 2, 3]
    if how in ("stream", "astream"):
        assert "'cached': True" in repr(expected[1][0])


@pytest.mark.parametrize("how", HOWS)
def test_a_hit_keeps_the_route_without_running_the_router(how: str, candidate: Lib,
                                                          oracle: Lib) -> None:
    """The cached writes hold the node's routes: its router is not run again on a hit."""

    def build(lib: Lib, calls: Counter) -> Any:
        def route(state: State) -> str:
            calls["route"] += 1
            return "odd" if state["x"] % 2 else "even"

        return (lib.StateGraph(State)
                .add_node("a", counted(calls, "a", lambda s: {"x": s["x"] * 3}, False),
                          cache_policy=types_of(lib).CachePolicy())
                .add_node("odd", counted(calls, "odd", lambda s: {"log": ["odd"]}, False))
                .add_node("even", counted(calls, "even", lambda s: {"log": ["even"]}, False))
                .add_edge(lib.START, "a")
                .add_conditional_edges("a", route, ["odd", "even"])
                .compile(cache=InMemoryCache()))

    expected = same(build, how, [{"x": 1, "log": []}, {"x": 1, "log": []},
                                 {"x": 2, "log": []}], candidate, oracle)
    assert expected[-1][-1]["route"] == 2


@pytest.mark.parametrize("how", HOWS)
def test_sends_are_cached_per_argument(how: str, candidate: Lib, oracle: Lib) -> None:
    """A `Send` task is keyed on its argument; a fan-out of cached and uncached tasks."""

    def build(lib: Lib, calls: Counter) -> Any:
        def fan(state: State) -> list[Any]:
            return [lib.Send("work", {"x": i, "log": []}) for i in range(state["x"])]

        return (lib.StateGraph(State)
                .add_node("start", lambda s: {"log": ["start"]})
                .add_node("work", counted(calls, "work", lambda s: {"log": [s["x"] * 10]},
                                          False),
                          cache_policy=types_of(lib).CachePolicy(ttl=600))
                .add_edge(lib.START, "start")
                .add_conditional_edges("start", fan, ["work"])
                .compile(cache=InMemoryCache()))

    result = same(build, how, [{"x": 2, "log": []}, {"x": 3, "log": []}],
                  candidate, oracle, sort=True)
    assert result[-1][-1]["work"] == 3


@pytest.mark.parametrize("how", HOWS)
def test_tasks_of_one_key_in_a_step(how: str, candidate: Lib, oracle: Lib) -> None:
    """Sends with equal arguments: LangGraph looks up only the last task of a key, the
    others run again."""

    def build(lib: Lib, calls: Counter) -> Any:
        def fan(state: State) -> list[Any]:
            return [lib.Send("work", {"x": 7, "log": []}) for _ in range(state["x"])]

        return (lib.StateGraph(State)
                .add_node("start", lambda s: {"log": ["start"]})
                .add_node("work", counted(calls, "work", lambda s: {"log": [s["x"]]}, False),
                          cache_policy=types_of(lib).CachePolicy())
                .add_edge(lib.START, "start")
                .add_conditional_edges("start", fan, ["work"])
                .compile(cache=InMemoryCache()))

    result = same(build, how, [{"x": 3, "log": []}] * 2, candidate, oracle, sort=True)
    assert result[-1][-1]["work"] == 5


@pytest.mark.parametrize("how", HOWS)
def test_key_func_and_node_defaults(how: str, candidate: Lib, oracle: Lib) -> None:
    """`set_node_defaults(cache_policy=...)` caches every node but the error handler;
    a `key_func` that reads one key makes inputs differing elsewhere hit."""

    def build(lib: Lib, calls: Counter) -> Any:
        def fails(state: State) -> Any:
            calls["fails"] += 1
            if state["x"] > 100:
                raise ValueError("too big")
            return {"log": ["fine"]}

        def handler(state: State) -> Any:
            calls["handler"] += 1
            return {"log": ["handled"]}

        policy = types_of(lib).CachePolicy(key_func=lambda s: str(s["x"]))
        return (lib.StateGraph(State)
                .set_node_defaults(cache_policy=policy)
                .add_node("a", counted(calls, "a", lambda s: {"x": s["x"] + 100}, False))
                .add_node("fails", fails, error_handler=handler)
                .add_edge(lib.START, "a").add_edge("a", "fails")
                .compile(cache=InMemoryCache()))

    expected = same(build, how, [{"x": 1, "log": []}, {"x": 1, "log": ["other"]},
                                 {"x": 1, "log": []}], candidate, oracle)
    assert expected[-1][-1] == {"a": 1, "fails": 3, "handler": 3}


@pytest.mark.parametrize("how", HOWS)
def test_a_failed_node_is_not_cached(how: str, candidate: Lib, oracle: Lib) -> None:
    def build(lib: Lib, calls: Counter) -> Any:
        def flaky(state: State) -> Any:
            calls["flaky"] += 1
            if calls["flaky"] == 1:
                raise ValueError("first time")
            return {"log": ["ok"]}

        return (lib.StateGraph(State)
                .add_node("flaky", flaky, cache_policy=types_of(lib).CachePolicy())
                .add_edge(lib.START, "flaky")
                .compile(cache=InMemoryCache()))

    expected = same(build, how, [{"x": 1, "log": []}] * 3, candidate, oracle)
    assert expected[-1][-1] == {"flaky": 2}


@pytest.mark.parametrize("how", HOWS)
def test_clear_cache_of_some_nodes(how: str, candidate: Lib, oracle: Lib) -> None:
    def build(lib: Lib, calls: Counter) -> Any:
        policy = types_of(lib).CachePolicy()
        return (lib.StateGraph(State)
                .add_node("a", counted(calls, "a", lambda s: {"log": ["a"]}, False),
                          cache_policy=policy)
                .add_node("b", counted(calls, "b", lambda s: {"log": ["b"]}, True),
                          cache_policy=policy)
                .add_edge(lib.START, "a").add_edge(lib.START, "b")
                .compile(cache=InMemoryCache()))

    hows = how if how in ("ainvoke", "astream") else "ainvoke"  # an async node: async runs
    expected = same(build, hows, [
        {"x": 1, "log": []}, lambda g: g.clear_cache(["a"]), {"x": 1, "log": []},
        lambda g: asyncio.run(g.aclear_cache(["b", "ghost"])), {"x": 1, "log": []},
    ], candidate, oracle, sort=True)
    assert expected[-1][-1] == {"a": 2, "b": 2}


def test_clear_cache_without_a_cache(candidate: Lib, oracle: Lib) -> None:
    def clear(lib: Lib) -> Any:
        graph = (lib.StateGraph(State).add_node("a", lambda s: {})
                 .add_edge(lib.START, "a").compile())
        return outcome(graph.clear_cache)

    assert clear(candidate) == clear(oracle)


def test_node_namespaces_are_langgraphs(candidate: Lib, oracle: Lib) -> None:
    """The cache entries (namespace and key) are LangGraph's: each engine finds the other's."""

    def sync_node(state: State) -> Any:
        return {"log": ["sync"]}

    async def async_node(state: State) -> Any:
        return {"log": ["async"]}

    def build(lib: Lib, cache: Any) -> Any:
        policy = types_of(lib).CachePolicy()
        return (lib.StateGraph(State)
                .add_node("s", sync_node, cache_policy=policy)
                .add_node("a", async_node, cache_policy=policy)
                .add_edge(lib.START, "s").add_edge("s", "a")
                .compile(cache=cache))

    caches = {}
    for lib in (oracle, candidate):
        caches[lib.name] = InMemoryCache()
        asyncio.run(build(lib, caches[lib.name]).ainvoke({"x": 1, "log": []}))
    assert {ns: set(keys) for ns, keys in caches[candidate.name]._cache.items()} == \
        {ns: set(keys) for ns, keys in caches[oracle.name]._cache.items()}
    shared = caches[oracle.name]  # what LangGraph stored, found by ferrograph
    graph = build(candidate, shared)
    assert list(graph.stream({"x": 1, "log": []}, stream_mode="updates")) == [
        {"s": {"log": ["sync"]}, "__metadata__": {"cached": True}},
        {"a": {"log": ["async"]}, "__metadata__": {"cached": True}}]


class FakeClock:
    """The `datetime` module as `langgraph.cache.memory` sees it, with a settable now."""

    def __init__(self) -> None:
        self.now = real_datetime.datetime(2026, 1, 1, tzinfo=real_datetime.timezone.utc)
        clock = self

        class FakeDatetime(real_datetime.datetime):
            @classmethod
            def now(cls, tz: Any = None) -> Any:  # noqa: ARG003 - always UTC here
                return clock.now

        self.module = types.SimpleNamespace(datetime=FakeDatetime,
                                            timedelta=real_datetime.timedelta,
                                            timezone=real_datetime.timezone)

    def advance(self, seconds: float) -> None:
        self.now += real_datetime.timedelta(seconds=seconds)


@pytest.mark.parametrize("how", HOWS)
def test_ttl_expiry_on_a_fake_clock(how: str, candidate: Lib, oracle: Lib,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import langgraph.cache.memory as memory

    clock = FakeClock()
    monkeypatch.setattr(memory, "datetime", clock.module)

    def build(lib: Lib, calls: Counter) -> Any:
        return (lib.StateGraph(State)
                .add_node("a", counted(calls, "a", lambda s: {"log": ["a"]}, False),
                          cache_policy=types_of(lib).CachePolicy(ttl=60))
                .add_edge(lib.START, "a")
                .compile(cache=InMemoryCache()))

    input = {"x": 1, "log": []}
    expected = same(build, how, [input, lambda g: clock.advance(59), input,
                                 lambda g: clock.advance(2), input, input],
                    candidate, oracle)
    assert expected[-1][-1] == {"a": 2}


@pytest.mark.parametrize("how", HOWS)
def test_cache_with_a_checkpointer(how: str, candidate: Lib, oracle: Lib) -> None:
    """A hit is saved in the thread like a run of the node: the state goes on from it
    (the thread's `log` grows, so the key reads `x` alone)."""

    def build(lib: Lib, calls: Counter) -> Any:
        policy = types_of(lib).CachePolicy(key_func=lambda s: repr(s["x"]))
        return (lib.StateGraph(State)
                .add_node("a", counted(calls, "a", lambda s: {"x": s["x"] + 1, "log": ["a"]},
                                       False), cache_policy=policy)
                .add_edge(lib.START, "a")
                .compile(cache=InMemoryCache(), checkpointer=InMemorySaver()))

    config = {"configurable": {"thread_id": "t"}}
    expected = same(build, how, [
        {"x": 1, "log": []}, {"x": 1, "log": []},
        lambda g: (g.get_state(config).values, len(list(g.get_state_history(config)))),
    ], candidate, oracle, config=config)
    assert expected[-1][-1] == {"a": 1}


@pytest.mark.parametrize("how", HOWS)
def test_cached_subgraph_node(how: str, candidate: Lib, oracle: Lib) -> None:
    def build(lib: Lib, calls: Counter) -> Any:
        inner = (lib.StateGraph(State)
                 .add_node("inner", counted(calls, "inner", lambda s: {"log": ["in"]}, False))
                 .add_edge(lib.START, "inner").compile())
        return (lib.StateGraph(State)
                .add_node("sub", inner, cache_policy=types_of(lib).CachePolicy())
                .add_edge(lib.START, "sub")
                .compile(cache=InMemoryCache()))

    expected = same(build, how, [{"x": 1, "log": []}] * 2, candidate, oracle)
    assert expected[-1][-1] == {"inner": 1}


@pytest.mark.parametrize("how", ["stream", "astream"])
@pytest.mark.parametrize("kwargs", [
    {"modes": ["updates", "debug"], "subgraphs": True},
    {"modes": ["updates", "values", "tasks"], "subgraphs": True, "version": "v2"},
])
def test_cached_items_of_subgraphs(how: str, kwargs: dict[str, Any], candidate: Lib,
                                   oracle: Lib) -> None:
    """A subgraph with a cache of its own beside a cached node: the cached marker under the
    subgraph's namespace, in `debug` (no task result for a cached task) and in v2 parts."""

    def build(lib: Lib, calls: Counter) -> Any:
        policy = types_of(lib).CachePolicy()
        inner = (lib.StateGraph(State)
                 .add_node("i", counted(calls, "i", lambda s: {"log": ["i"]}, False),
                           cache_policy=policy)
                 .add_edge(lib.START, "i").compile(cache=InMemoryCache()))
        return (lib.StateGraph(State)
                .add_node("sub", inner)
                .add_node("c", counted(calls, "c", lambda s: {"log": ["c"]}, False),
                          cache_policy=policy)
                .add_edge(lib.START, "sub").add_edge(lib.START, "c")
                .compile(cache=InMemoryCache()))

    expected = same(build, how, [{"x": 1, "log": []}] * 2, candidate, oracle, sort=True,
                    **kwargs)
    assert expected[-1][-1] == {"i": 1, "c": 1}


class Model(BaseModel):
    x: int = 0
    log: Annotated[list, operator.add] = []


def pydantic_state(lib: Lib, calls: Counter, policy: Any) -> tuple[Any, Any]:
    graph = (lib.StateGraph(Model)
             .add_node("a", counted(calls, "a", lambda s: {"x": s.x + 1, "log": ["a"]}, False),
                       cache_policy=policy)
             .add_edge(lib.START, "a"))
    return graph, {"x": 1}


def messages_state(lib: Lib, calls: Counter, policy: Any) -> tuple[Any, Any]:
    graph = (lib.StateGraph(lib.MessagesState)
             .add_node("a", counted(calls, "a", lambda s: {
                 "messages": [AIMessage("hi", id="m1")]}, False), cache_policy=policy)
             .add_edge(lib.START, "a"))
    return graph, {"messages": [HumanMessage("q", id="h1")]}


def root_state(lib: Lib, calls: Counter, policy: Any) -> tuple[Any, Any]:
    graph = (lib.StateGraph(Annotated[list, operator.add])
             .add_node("a", counted(calls, "a", lambda s: ["a"], False), cache_policy=policy)
             .add_edge(lib.START, "a"))
    return graph, []


def command_result(lib: Lib, calls: Counter, policy: Any) -> tuple[Any, Any]:
    graph = (lib.StateGraph(State)
             .add_node("a", counted(calls, "a", lambda s: lib.Command(update={"x": 5}, goto="b"),
                                    False), cache_policy=policy)
             .add_node("b", lambda s: {"log": ["b"]})
             .add_edge(lib.START, "a"))
    return graph, {"x": 1, "log": []}


def subgraph_with_a_cache(lib: Lib, calls: Counter, policy: Any) -> tuple[Any, Any]:
    inner = (lib.StateGraph(State)
             .add_node("i", counted(calls, "i", lambda s: {"log": ["i"]}, False),
                       cache_policy=policy)
             .add_edge(lib.START, "i").compile(cache=InMemoryCache()))
    graph = lib.StateGraph(State).add_node("sub", inner).add_edge(lib.START, "sub")
    return graph, {"x": 1, "log": []}


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("shape", [pydantic_state, messages_state, root_state, command_result,
                                   subgraph_with_a_cache])
def test_cached_writes_of_every_kind(shape: Any, how: str, candidate: Lib,
                                     oracle: Lib) -> None:
    """Cached writes of Pydantic states, messages, a root state, a `Command` (its route) and
    of a subgraph's own cache (the parent caches no node: under `invoke` it runs the Rust
    driver)."""
    inputs = []

    def build(lib: Lib, calls: Counter) -> Any:
        graph, input = shape(lib, calls, types_of(lib).CachePolicy())
        inputs.append(input)
        return graph.compile(cache=InMemoryCache())

    build(oracle, Counter())
    expected = same(build, how, [inputs[0]] * 2, candidate, oracle, subgraphs=True)
    assert sum(expected[-1][-1].values()) == 1


def test_cache_policy_defaults(candidate: Lib, oracle: Lib) -> None:
    ours, theirs = types_of(candidate).CachePolicy(), types_of(oracle).CachePolicy()
    assert ours.ttl is None and theirs.ttl is None
    value = {"b": [1, {"c": 2}], "a": (3,)}
    assert ours.key_func(value) == theirs.key_func(value)


# ------------------------------------------------------------------------------- the store


def store_with_data() -> InMemoryStore:
    store = InMemoryStore()
    store.put(("users",), "u1", {"name": "Ada"})
    return store


@pytest.mark.parametrize(("is_async", "how"), ASYNC_CASES)
def test_nodes_see_the_store(is_async: bool, how: str, candidate: Lib,
                             oracle: Lib) -> None:
    """`store: BaseStore`, `runtime.store` and `get_store()`, reading and writing."""

    def build(lib: Lib, calls: Counter) -> Any:
        get_store = importlib.import_module(f"{lib.name}.config").get_store

        def by_param(state: State, store: BaseStore) -> Any:
            calls["param"] += 1
            store.put(("seen",), str(state["x"]), {"by": "param"})
            return {"log": [store.get(("users",), "u1").value["name"]]}

        def by_runtime(state: State, runtime: lib.Runtime) -> Any:
            calls["runtime"] += 1
            return {"log": [len(runtime.store.search(("seen",)))]}

        def by_getter(state: State) -> Any:
            calls["getter"] += 1
            return {"log": [get_store().get(("seen",), str(state["x"])).value["by"]]}

        async def aby_param(state: State, store: BaseStore) -> Any:
            item = await store.aget(("users",), "u1")
            await store.aput(("seen",), str(state["x"]), {"by": "param"})
            calls["param"] += 1
            return {"log": [item.value["name"]]}

        async def aby_runtime(state: State, runtime: lib.Runtime) -> Any:
            calls["runtime"] += 1
            return {"log": [len(await runtime.store.asearch(("seen",)))]}

        async def aby_getter(state: State) -> Any:
            calls["getter"] += 1
            return {"log": [get_store().get(("seen",), str(state["x"])).value["by"]]}

        return (lib.StateGraph(State)
                .add_node("param", aby_param if is_async else by_param)
                .add_node("runtime", aby_runtime if is_async else by_runtime)
                .add_node("getter", aby_getter if is_async else by_getter)
                .add_edge(lib.START, "param").add_edge("param", "runtime")
                .add_edge("runtime", "getter")
                .compile(store=store_with_data()))

    same(build, how, [{"x": 1, "log": []}, {"x": 2, "log": []}], candidate, oracle)


@pytest.mark.parametrize(("is_async", "how"), ASYNC_CASES)
def test_a_subgraph_sees_its_callers_store(is_async: bool, how: str, candidate: Lib,
                                           oracle: Lib) -> None:
    """A subgraph, as a node or invoked by one, uses its caller's store (even one compiled
    with a store of its own), as in LangGraph."""

    def build(lib: Lib, calls: Counter) -> Any:
        def read(state: State, runtime: lib.Runtime) -> Any:
            calls["inner"] += 1
            return {"log": [runtime.store.get(("users",), "u1").value["name"]]}

        async def aread(state: State, runtime: lib.Runtime) -> Any:
            return read(state, runtime)

        inner_builder = (lib.StateGraph(State).add_node("read", aread if is_async else read)
                         .add_edge(lib.START, "read"))
        inner = inner_builder.compile()
        own_store = InMemoryStore()
        own_store.put(("users",), "u1", {"name": "not the caller's"})
        inner_own = inner_builder.compile(store=own_store)

        def calls_inner(state: State) -> Any:
            return {"log": inner_own.invoke({"x": 0, "log": []})["log"]}

        async def acalls_inner(state: State) -> Any:
            return {"log": (await inner_own.ainvoke({"x": 0, "log": []}))["log"]}

        return (lib.StateGraph(State)
                .add_node("sub", inner)
                .add_node("caller", acalls_inner if is_async else calls_inner)
                .add_edge(lib.START, "sub").add_edge("sub", "caller")
                .compile(store=store_with_data()))

    expected = same(build, how, [{"x": 1, "log": []}], candidate, oracle)
    assert "not the caller" not in repr(expected)


@pytest.mark.parametrize("how", HOWS)
def test_no_store(how: str, candidate: Lib, oracle: Lib) -> None:
    def build(lib: Lib, calls: Counter) -> Any:
        get_store = importlib.import_module(f"{lib.name}.config").get_store

        def node(state: State, runtime: lib.Runtime) -> Any:
            return {"log": [runtime.store is None, get_store() is None]}

        return lib.StateGraph(State).add_node("n", node).add_edge(lib.START, "n").compile()

    same(build, how, [{"x": 1, "log": []}], candidate, oracle)
