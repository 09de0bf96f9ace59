"""`ainvoke` / `astream` in depth: the same items as ferrograph's sync `stream` and as
LangGraph's `astream` in every stream mode; the producer-side `nodes=` / `tags=` filters;
tokens from a model that gets its config only as an argument; failure and cancellation
leaving no thread or task behind; `max_concurrency` (and no cap without it); and, at scale,
exactly-once token delivery with a bounded lead of producers over a slow consumer."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import operator
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config

from tests.parity import (
    Lib,
    Raised,
    Scenario,
    Shape,
    canonical,
    layout_of,
    load,
    normalise,
    task_link_problems,
)
from tests.support import settle_threads

# --------------------------------------------------------------------------- models


class Tally:
    """Thread-safe counts (nodes may run on worker threads or on one event loop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def __getitem__(self, key: str) -> int:
        with self._lock:
            return self._counts[key]


class CountingChat(GenericFakeChatModel):
    """GenericFakeChatModel with a native async stream (as async clients have: one loop turn
    per token), counting calls per path and tokens produced. `_stream` also calls
    `_generate`, so a call that never streamed shows only generate / agenerate."""

    tally: Any

    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        self.tally.add("generate")
        return super()._generate(*args, **kwargs)

    async def _agenerate(self, messages: Any, stop: Any = None, run_manager: Any = None,
                         **kwargs: Any) -> Any:
        self.tally.add("agenerate")
        return super()._generate(messages, stop, None, **kwargs)

    def _stream(self, messages: Any, stop: Any = None, run_manager: Any = None,
                **kwargs: Any) -> Any:
        self.tally.add("stream")
        for chunk in super()._stream(messages, stop, None, **kwargs):
            self.tally.add("tokens")
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(self, messages: Any, stop: Any = None, run_manager: Any = None,
                       **kwargs: Any) -> Any:
        self.tally.add("astream")
        for chunk in super()._stream(messages, stop, None, **kwargs):
            self.tally.add("tokens")
            if run_manager:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
            await asyncio.sleep(0)


class ExecutorStreamingChat(CountingChat):
    """CountingChat without a native async stream: LangChain's default `_astream` runs the
    sync `_stream` on the loop's executor, as for every model with only a sync client (and
    GenericFakeChatModel itself)."""

    async def _astream(self, *args: Any, **kwargs: Any) -> Any:
        self.tally.add("astream")
        async for chunk in BaseChatModel._astream(self, *args, **kwargs):
            yield chunk


def chat(text: str, tally: Tally | None = None,
         kind: type[CountingChat] = CountingChat) -> CountingChat:
    return kind(messages=itertools.cycle([AIMessage(content=text)]),
                tally=tally if tally is not None else Tally())


def tokens_of(text: str) -> list[str]:
    """The chunks GenericFakeChatModel streams `text` as (words and the spaces between)."""
    return [t for t in text.replace(" ", "\0 \0").split("\0") if t]


# --------------------------------------------------------------------------- parity graphs


class State(TypedDict):
    """The parity graphs' state: a number and a log every node appends to."""

    x: int
    log: Annotated[list, operator.add]


START_STATE = {"x": 0, "log": []}


async def jitter() -> None:
    """Lets tasks of one superstep finish in random order, as real work does."""
    await asyncio.sleep(random.random() * 0.002)


def async_step(name: str, dx: int | None = None) -> Callable[..., Any]:
    """An async node writing a custom item, appending `name` to `log` and (unless it runs
    beside others) adding `dx` to `x`."""

    async def node(state: State, writer) -> dict[str, Any]:
        writer({"node": name, "x": state["x"]})
        await jitter()
        return {"log": [name]} if dx is None else {"x": state["x"] + dx, "log": [name]}

    return node


def sync_step(name: str, dx: int | None = None) -> Callable[..., Any]:
    def node(state: State, writer) -> dict[str, Any]:
        writer({"node": name, "x": state["x"]})
        time.sleep(random.random() * 0.002)
        return {"log": [name]} if dx is None else {"x": state["x"] + dx, "log": [name]}

    return node


def async_chain(lib: Lib) -> Any:
    async def from_context(state: State) -> dict[str, Any]:
        lib.get_stream_writer()("via get_stream_writer")  # contextvars reach async nodes
        return {"x": state["x"] + 10, "log": [AIMessage(content="b says hi", id="msg-b")]}

    b = lib.StateGraph(State)
    b.add_sequence([("a", async_step("a", 1)), ("b", from_context), ("c", async_step("c", 100))])
    b.add_edge(lib.START, "a")
    return b.compile()


def sync_chain(lib: Lib) -> Any:
    def returns_message(state: State) -> dict[str, Any]:
        return {"x": state["x"] + 10, "log": [AIMessage(content="b says hi", id="msg-b")]}

    b = lib.StateGraph(State)
    b.add_sequence([("a", sync_step("a", 1)), ("b", returns_message), ("c", sync_step("c", 100))])
    b.add_edge(lib.START, "a")
    return b.compile()


def mixed_fan_out(lib: Lib) -> Any:
    """Async and sync branches, a join, then an async router fanning out again."""

    async def route(state: State) -> list[str]:
        await asyncio.sleep(0)
        return ["left", "right"] if state["x"] == 1 else [lib.END]

    async def join(state: State) -> dict[str, Any]:
        return {"x": state["x"] + 1, "log": [AIMessage(content="joined", id="msg-join")]}

    b = lib.StateGraph(State)
    for name, node in (("p", async_step("p")), ("q", sync_step("q")), ("r", async_step("r"))):
        b.add_node(name, node)
        b.add_edge(lib.START, name)
    b.add_node("join", join)
    b.add_edge(["p", "q", "r"], "join")
    b.add_conditional_edges("join", route, ["left", "right", lib.END])
    b.add_node("left", async_step("left"))
    b.add_node("right", sync_step("right"))
    return b.compile()


def async_router(lib: Lib) -> Any:
    """A loop whose conditional edge is an `async def`."""

    async def route(state: State) -> str:
        await asyncio.sleep(0)
        return "inc" if state["x"] < 3 else "finish"

    def finish(state: State) -> dict[str, Any]:
        return {"log": [AIMessage(content=f"done at {state['x']}", id="msg-finish")]}

    b = lib.StateGraph(State)
    b.add_node("inc", async_step("inc", 1))
    b.add_node("finish", finish)
    b.add_edge(lib.START, "inc")
    b.add_conditional_edges("inc", route, ["inc", "finish"])
    return b.compile()


def chat_models(lib: Lib) -> Any:
    """Async models (`await ainvoke`, `async for astream`) beside a sync one, then one more
    async model call in the next step."""
    m_ainvoke, m_astream = chat("alpha beta gamma"), chat("one two three four")
    m_sync, m_summary = GenericFakeChatModel(messages=itertools.cycle(
        [AIMessage(content="sync says so")])), chat("in short then")

    m_plain = GenericFakeChatModel(messages=itertools.cycle([AIMessage(content="plain async")]))

    async def awaits_ainvoke(state: State) -> dict[str, Any]:
        return {"log": [(await m_ainvoke.ainvoke([HumanMessage("q")])).content]}

    async def plain_ainvoke(state: State) -> dict[str, Any]:  # LangChain's default _astream
        return {"log": [(await m_plain.ainvoke("q")).content]}

    async def iterates_astream(state: State, writer) -> dict[str, Any]:
        parts = []
        async for chunk in m_astream.astream("q"):
            parts.append(chunk.content)
            writer(f"got {chunk.content!r}")
        return {"log": ["".join(parts)]}

    def plain_sync(state: State) -> dict[str, Any]:
        return {"log": [m_sync.invoke("q").content]}

    async def summary(state: State) -> dict[str, Any]:
        return {"x": 1, "log": [await m_summary.ainvoke("sum up")]}  # the message itself

    b = lib.StateGraph(State)
    branches = (awaits_ainvoke, plain_ainvoke, iterates_astream, plain_sync)
    for fn in branches:
        b.add_node(fn)
        b.add_edge(lib.START, fn.__name__)
    b.add_node(summary)
    b.add_edge([fn.__name__ for fn in branches], "summary")
    return b.compile()


def subgraph_node(lib: Lib) -> Any:
    model = chat("inner words here")

    async def inner_model(state: State, writer) -> dict[str, Any]:
        writer("inner writes")
        return {"log": [(await model.ainvoke("q")).content]}

    async def post(state: State) -> dict[str, Any]:
        # a message at the top level: inner tokens show only with subgraphs=True
        return {"x": state["x"] + 10, "log": [AIMessage(content="post done", id="msg-post")]}

    sub = lib.StateGraph(State)
    sub.add_node("inner_model", inner_model)
    sub.add_node("inner_sync", sync_step("inner_sync", 1))
    sub.add_edge(lib.START, "inner_model")
    sub.add_edge("inner_model", "inner_sync")
    b = lib.StateGraph(State)
    b.add_node("pre", async_step("pre", 1))
    b.add_node("sub", sub.compile())
    b.add_node("post", post)
    b.add_edge(lib.START, "pre")
    b.add_edge("pre", "sub")
    b.add_edge("sub", "post")
    return b.compile()


SCENARIOS = [
    Scenario("async_chain", async_chain, START_STATE),
    Scenario("sync_chain", sync_chain, START_STATE),
    Scenario("mixed_fan_out", mixed_fan_out, START_STATE, parallel=True),
    Scenario("async_router", async_router, START_STATE),
    Scenario("chat_models", chat_models, START_STATE, parallel=True),
    Scenario("subgraph_node", subgraph_node, START_STATE),
]
ALL_MODES = ["values", "updates", "messages", "custom", "tasks", "debug"]
SHAPES = [
    *(Shape(mode) for mode in ALL_MODES),
    Shape(["updates", "messages", "custom"]),
    Shape(ALL_MODES),
    Shape("messages", subgraphs=True),
    Shape(ALL_MODES, subgraphs=True),
    Shape(ALL_MODES, version="v2"),
    Shape(ALL_MODES, subgraphs=True, version="v2"),
]


def shape_id(shape: Shape) -> str:
    mode = shape.stream_mode
    mode = "+".join(mode) if isinstance(mode, list) else mode
    return mode + ("-subgraphs" if shape.subgraphs else "") + f"-{shape.version}"


async def adrain(items: AsyncIterator[Any]) -> tuple[list[Any], Raised | None]:
    """`drain` for an async iterator."""
    out: list[Any] = []
    try:
        async for item in items:
            out.append(item)
    except Exception as e:  # noqa: BLE001 - the exception is part of what is compared
        return out, Raised.of(e)
    return out, None


def token_order(items: list[Any], shape: Shape) -> dict[Any, list[Any]]:
    """Per (namespace, node): its `messages` contents in arrival order (normalised items)."""
    out: dict[Any, list[Any]] = {}
    for item in items:
        ns, mode, payload = shape.split(item)
        if mode == "messages":
            chunk, metadata = payload
            out.setdefault((ns, metadata["langgraph_node"]), []).append(chunk["content"])
    return out


def comparable(scenario: Scenario, shape: Shape, items: list[Any],
               layout: dict[Any, list[int]] | None) -> tuple[Any, Any]:
    """What must match between runs: the items (in `canonical` form for parallel graphs,
    whose order across branches is not deterministic) and each node's token order."""
    problems = task_link_problems(items, shape)
    assert not problems, problems
    items = normalise(items)
    form = canonical(items, shape, layout) if scenario.parallel else items
    return form, token_order(items, shape)


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_astream_matches_sync_stream_and_langgraph(scenario: Scenario, shape: Shape,
                                                   candidate: Lib, oracle: Lib) -> None:
    def astream(lib: Lib, shape: Shape) -> tuple[list[Any], Raised | None]:
        graph = scenario.build(lib)
        return asyncio.run(adrain(graph.astream(scenario.input, scenario.config,
                                                **shape.kwargs())))

    expected, expected_error = astream(oracle, shape)
    got_async, async_error = astream(candidate, shape)
    got_sync, sync_error = scenario.stream(candidate, **shape.kwargs())
    assert (expected_error, async_error, sync_error) == (None, None, None)
    assert expected, "every scenario produces items in every mode"
    layout = None
    modes = shape.stream_mode if isinstance(shape.stream_mode, list) else [shape.stream_mode]
    if scenario.parallel and not {"values", "tasks", "debug"} & set(modes):
        # Nothing marks the supersteps: cut them where the oracle's `values` items fall.
        with_values = Shape([*modes, "values"], shape.subgraphs, shape.version)
        layout = layout_of(astream(oracle, with_values)[0], with_values)
    want = comparable(scenario, shape, expected, layout)
    assert comparable(scenario, shape, got_async, layout) == want, "astream"
    assert comparable(scenario, shape, got_sync, layout) == want, "stream"


TASK_METADATA = ("langgraph_node", "langgraph_step", "langgraph_triggers", "langgraph_path",
                 "langgraph_checkpoint_ns")


@pytest.mark.parametrize("subgraphs", [False, True])
def test_astream_token_metadata_matches_langgraph(subgraphs: bool, candidate: Lib,
                                                  oracle: Lib) -> None:
    def run(lib: Lib, build: Callable[[Lib], Any]) -> dict[str, list[Any]]:
        async def main() -> list[Any]:
            return [item async for item in build(lib).astream(
                START_STATE, stream_mode="messages", subgraphs=subgraphs)]

        per_node: dict[str, list[Any]] = {}
        for item in asyncio.run(main()):
            ns, (chunk, metadata) = item if subgraphs else ((), item)
            own_part = metadata["langgraph_checkpoint_ns"].split("|")[-1]  # parents' first
            assert own_part.startswith(f"{metadata['langgraph_node']}:")
            per_node.setdefault(metadata["langgraph_node"], []).append(
                normalise((ns, chunk.content, {k: metadata[k] for k in TASK_METADATA})))
        return per_node

    for build in (chat_models, subgraph_node):
        got, expected = run(candidate, build), run(oracle, build)
        assert got == expected, build.__name__
    assert set(run(candidate, chat_models)) == {"awaits_ainvoke", "plain_ainvoke",
                                                 "iterates_astream", "plain_sync", "summary"}


# --------------------------------------------------------------------------- filters


class Log(TypedDict):
    """The other graphs' state: a log every node appends to."""

    log: Annotated[list, operator.add]


def filtered_graph(lib: Lib) -> tuple[Any, dict[str, CountingChat]]:
    """a -> (b | c): every node writes a custom item and asks its own model (ainvoke in the
    async nodes, invoke in the sync one)."""
    models = {name: chat(f"{name}1 {name}2 {name}3") for name in "abc"}

    def make_async(name: str) -> Callable[..., Any]:
        async def node(state: Log, writer) -> dict[str, Any]:
            writer(f"custom from {name}")
            return {"log": [(await models[name].ainvoke("q")).content]}
        return node

    def sync_c(state: Log, writer) -> dict[str, Any]:
        writer("custom from c")
        return {"log": [models["c"].invoke("q").content]}

    b = lib.StateGraph(Log)
    b.add_node("a", make_async("a"))
    b.add_node("b", make_async("b"))
    b.add_node("c", sync_c)
    b.add_edge(lib.START, "a")
    b.add_edge("a", "b")
    b.add_edge("a", "c")
    return b.compile(), models


def by_mode(items: list[tuple[str, Any]]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {mode: [] for mode in ALL_MODES}
    for mode, item in items:
        out[mode].append(item)
    return out


async def collect(graph: Any, inputs: Any, **kwargs: Any) -> list[Any]:
    return [item async for item in graph.astream(inputs, **kwargs)]


def test_astream_nodes_filter_keeps_only_that_node_in_every_mode():
    lib = load("ferrograph")
    graph, _ = filtered_graph(lib)
    everything = by_mode(asyncio.run(collect(graph, {"log": []}, stream_mode=ALL_MODES)))
    graph, models = filtered_graph(lib)
    tokens_seen: list[str] = []

    class Recorder(BaseCallbackHandler):  # the user's own callback, beside the filter
        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            tokens_seen.append(token)

    kept = by_mode(asyncio.run(collect(graph, {"log": []}, config={"callbacks": [Recorder()]},
                                       stream_mode=ALL_MODES, nodes=["b"])))
    assert kept["updates"] == [{"b": {"log": ["b1 b2 b3"]}}]
    assert kept["custom"] == ["custom from b"]
    assert [(t["name"], "input" in t) for t in kept["tasks"]] == [("b", True), ("b", False)]
    assert [(d["type"], d["payload"]["name"]) for d in kept["debug"]] == [
        ("task", "b"), ("task_result", "b")]
    assert [m.content for m, _ in kept["messages"]] == tokens_of("b1 b2 b3")
    assert {md["langgraph_node"] for _, md in kept["messages"]} == {"b"}
    assert [m.content for m, md in everything["messages"]
            if md["langgraph_node"] == "b"] == tokens_of("b1 b2 b3")
    # values: the state after the step in which `b` ran, and only that one
    assert kept["values"] == [everything["values"][-1]]
    # Models of unlisted nodes took their non-streaming path; b's streamed.
    assert (models["a"].tally["astream"], models["a"].tally["agenerate"]) == (0, 1)
    assert (models["c"].tally["stream"], models["c"].tally["generate"]) == (0, 1)
    assert models["b"].tally["astream"] == 1
    assert tokens_seen == tokens_of("b1 b2 b3")  # no other model produced tokens at all


def test_astream_nodes_filter_names_subgraph_nodes_by_path():
    lib = load("ferrograph")
    models = {"inner_a": chat("a a"), "inner_b": chat("b b")}

    def caller(name: str) -> Callable[..., Any]:
        async def call(state: Log) -> dict[str, Any]:
            return {"log": [(await models[name].ainvoke("q")).content]}
        return call

    sub = lib.StateGraph(Log)
    for name in models:
        sub.add_node(name, caller(name))
        sub.add_edge(lib.START, name)
    outer = lib.StateGraph(Log)
    outer.add_node("team", sub.compile())
    outer.add_edge(lib.START, "team")
    items = asyncio.run(collect(outer.compile(), {"log": []}, stream_mode="messages",
                                nodes=["team/inner_b"], subgraphs=True))
    assert {(ns[0].split(":")[0], md["langgraph_node"]) for ns, (_, md) in items} == {
        ("team", "inner_b")}
    assert [m.content for _, (m, _) in items] == tokens_of("b b")
    assert models["inner_a"].tally["astream"] == 0
    assert models["inner_b"].tally["astream"] == 1


def test_astream_tags_filter_keeps_only_tagged_model_calls():
    lib = load("ferrograph")
    plain, tagged = chat("p p"), chat("t t")

    async def node(state: Log) -> dict[str, Any]:
        first = await plain.ainvoke("q")
        second = await tagged.with_config(tags=["keep"]).ainvoke("q")
        return {"log": [first.content, second.content]}

    b = lib.StateGraph(Log)
    b.add_node("node", node)
    b.add_edge(lib.START, "node")
    items = asyncio.run(collect(b.compile(), {"log": []}, stream_mode="messages", tags=["keep"]))
    assert [m.content for m, _ in items] == tokens_of("t t")
    assert all(md["tags"] == ["keep"] and md["langgraph_node"] == "node" for _, md in items)


# --------------------------------------------------------------------------- no contextvars


@pytest.mark.skipif(sys.version_info < (3, 11), reason="create_task(context=) is 3.11+")
@pytest.mark.parametrize("nodes", [None, ["via_astream"]], ids=["all", "filtered"])
def test_tokens_from_a_model_called_in_an_empty_context_are_tagged_with_the_node(
        nodes: list[str] | None, candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> tuple[dict[str, list[str]], list[Any], dict[str, CountingChat]]:
        models = {"via_ainvoke": chat("first reply here"), "via_astream": chat("second one")}
        config_vars: list[Any] = []

        def node(name: str) -> Callable[..., Any]:
            async def call(state: Log, config: RunnableConfig) -> dict[str, Any]:
                async def outside_the_node_context() -> str:
                    config_vars.append(var_child_runnable_config.get())
                    msgs = [HumanMessage("hi")]
                    if name == "via_ainvoke":
                        return (await models[name].ainvoke(msgs, config)).content
                    return "".join([c.content async for c in models[name].astream(msgs, config)])

                # An empty context: only the config argument tells the model whose call it is.
                text = await asyncio.get_running_loop().create_task(
                    outside_the_node_context(), context=contextvars.Context())
                return {"log": [text]}
            return call

        b = lib.StateGraph(Log)
        for name in models:
            b.add_node(name, node(name))
            b.add_edge(lib.START, name)
        kwargs = {} if nodes is None else {"nodes": nodes}
        items = asyncio.run(collect(b.compile(), {"log": []}, stream_mode="messages", **kwargs))
        per_node: dict[str, list[str]] = {}
        for chunk, metadata in items:
            node_name = metadata["langgraph_node"]
            assert metadata["langgraph_checkpoint_ns"].startswith(f"{node_name}:")
            per_node.setdefault(node_name, []).append(chunk.content)
        return per_node, config_vars, models

    expected = {"via_ainvoke": tokens_of("first reply here"),
                "via_astream": tokens_of("second one")}
    if nodes is None:
        got, config_vars, _ = run(candidate)
        assert got == run(oracle)[0] == expected
    else:  # `nodes=` is ferrograph's
        got, config_vars, models = run(load("ferrograph"))
        assert got == {"via_astream": expected["via_astream"]}
        assert models["via_ainvoke"].tally["astream"] == 0  # unlisted: not asked to stream
    assert config_vars == [None, None]  # the models really ran without the node's context


# --------------------------------------------------------------------------- faults


@pytest.fixture
def released() -> Any:
    """Set once the test's checks are done: sleepers a broken runtime failed to cancel then
    return, so they neither hold up the loop's shutdown nor run on into later tests."""
    event = threading.Event()
    yield event
    event.set()


async def sleep_unless_released(seconds: float, released: threading.Event) -> None:
    """`asyncio.sleep(seconds)`, in slices so that `released` can cut it short."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not released.is_set():
        await asyncio.sleep(0.02)


async def other_tasks(grace: float = 1.0) -> set[asyncio.Task[Any]]:
    """Tasks of this loop other than the caller still alive after up to `grace` seconds
    (a leaving `async for` hands the generator's close to a task of its own)."""
    me = asyncio.current_task()
    deadline = time.monotonic() + grace
    while True:
        others = {t for t in asyncio.all_tasks() if t is not me}
        if not others or time.monotonic() > deadline:
            return others
        await asyncio.sleep(0.01)


async def wait_until(condition: Callable[[], bool], timeout: float,
                     poll: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(poll)
    return condition()


class Plan(TypedDict):
    """What the next run's nodes do: how long sleepers sleep, whether `fails` fails."""

    sleep: float
    fail: bool


def sleeper(name: str, plan: Plan, started: list[str], cancelled: list[str],
            released: threading.Event) -> Callable[..., Any]:
    """An async node that sleeps as `plan` says and records being cancelled."""

    async def node(state: Log, writer) -> dict[str, Any]:
        writer(f"{name} started")
        started.append(name)
        try:
            await sleep_unless_released(plan["sleep"], released)
        except asyncio.CancelledError:
            cancelled.append(name)
            raise
        return {"log": [name]}

    return node


LONG_SLEEP = 30.0
PROMPTLY = 3.0
"""How soon cancelled nodes must have seen CancelledError (they would sleep LONG_SLEEP)."""


def add_group(lib: Lib, parent: Any, after: str, where: str,
              nodes: dict[str, Callable[..., Any]]) -> None:
    """Adds `nodes` in parallel after `after`: to `parent` itself, or (where="subgraph") to
    a subgraph node `team` of it."""
    into = parent if where == "top" else lib.StateGraph(Log)
    source = after if where == "top" else lib.START
    for name, fn in nodes.items():
        into.add_node(name, fn)
        into.add_edge(source, name)
    if where != "top":
        parent.add_node("team", into.compile())
        parent.add_edge(after, "team")


def ns_names(ns: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(part.split(":")[0] for part in ns)


WHERE = ["top", "subgraph"]


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("entry", ["astream", "ainvoke"])
def test_failing_async_node_cancels_sleeping_siblings_and_the_graph_runs_again(
        entry: str, where: str, released: threading.Event) -> None:
    lib = load("ferrograph")
    error = ValueError("the failing node")
    plan: Plan = {"sleep": LONG_SLEEP, "fail": True}
    started: list[str] = []
    cancelled: list[str] = []

    async def first(state: Log, writer) -> dict[str, Any]:
        writer("first started")
        return {"log": ["first"]}

    async def fails(state: Log, writer) -> dict[str, Any]:
        await wait_until(lambda: len(started) == 2, 5)  # both siblings are asleep
        writer("fails raising")
        if plan["fail"]:
            raise error
        return {"log": ["fails"]}

    b = lib.StateGraph(Log)
    b.add_node("first", first)
    b.add_edge(lib.START, "first")
    add_group(lib, b, "first", where, {
        "fails": fails,
        **{name: sleeper(name, plan, started, cancelled, released)
           for name in ("sleep_1", "sleep_2")}})
    graph = b.compile()
    inner = () if where == "top" else ("team",)

    async def main() -> None:
        try:
            await fail_and_run_again()
        finally:
            released.set()  # what the runtime failed to cancel stops now (not in 30 s)

    async def fail_and_run_again() -> None:
        items: list[Any] = []
        with pytest.raises(ValueError) as caught:
            if entry == "astream":
                async for ns, mode, item in graph.astream(
                        {"log": []}, stream_mode=["updates", "custom"], subgraphs=True):
                    items.append((ns_names(ns), mode, item))
            else:
                await graph.ainvoke({"log": []})
        assert caught.value is error
        assert await wait_until(lambda: len(cancelled) == 2, PROMPTLY), cancelled
        assert sorted(cancelled) == ["sleep_1", "sleep_2"]
        if entry == "astream":  # what was produced before the failure came first
            assert items[:2] == [((), "custom", "first started"),
                                 ((), "updates", {"first": {"log": ["first"]}})]
            assert sorted(items[2:]) == [(inner, "custom", "fails raising"),
                                         (inner, "custom", "sleep_1 started"),
                                         (inner, "custom", "sleep_2 started")]
        assert not await other_tasks()
        plan.update(sleep=0, fail=False)
        expected = {"first", "fails", "sleep_1", "sleep_2"}
        started.clear()
        assert set((await graph.ainvoke({"log": []}))["log"]) == expected
        started.clear()
        values = await collect(graph, {"log": []}, stream_mode="values")
        assert set(values[-1]["log"]) == expected
        assert not await other_tasks()

    baseline = threading.active_count()
    asyncio.run(main())
    assert settle_threads(baseline) <= baseline


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("how", ["break", "aclose", "cancel"])
def test_consumer_leaving_astream_cancels_running_nodes_and_stops_models(
        how: str, where: str, released: threading.Event) -> None:
    lib = load("ferrograph")
    reply = " ".join(f"w{i}" for i in range(2000))
    full = len(tokens_of(reply))
    tally, sync_tally = Tally(), Tally()
    model, sync_model = chat(reply, tally), chat(reply, sync_tally)
    plan: Plan = {"sleep": LONG_SLEEP, "fail": False}
    started: list[str] = []
    cancelled: list[str] = []
    streamer_ended = threading.Event()

    def others_running() -> bool:  # the sync model streams and both sleepers sleep
        return len(started) == 2 and sync_tally["tokens"] > 0

    async def streamer(state: Log) -> dict[str, Any]:
        try:
            # Its whole reply takes a few ms on the loop: on a loaded machine it could end
            # before a worker thread got the GIL, and there would be no model to stop.
            await wait_until(others_running, PROMPTLY, poll=0.001)
            return {"log": ["".join([c.content async for c in model.astream("q")])]}
        finally:
            streamer_ended.set()

    def sync_streamer(state: Log) -> dict[str, Any]:  # on a worker thread
        return {"log": [sync_model.invoke("q").content]}

    b = lib.StateGraph(Log)
    for name, fn in (("streamer", streamer), ("sync_streamer", sync_streamer)):
        b.add_node(name, fn)
        b.add_edge(lib.START, name)
    add_group(lib, b, lib.START, where, {
        name: sleeper(name, plan, started, cancelled, released)
        for name in ("sleep_1", "sleep_2")})
    graph = b.compile()
    kwargs: dict[str, Any] = {"stream_mode": "messages", "buffer_size": 16}

    def enough(seen: int) -> bool:  # tokens flow, both models stream, both sleepers sleep
        return seen >= 20 and others_running() and tally["tokens"] > 0

    async def leave() -> None:
        seen = 0
        if how == "break":
            async for _ in graph.astream({"log": []}, **kwargs):
                seen += 1
                if enough(seen):
                    break
        elif how == "aclose":
            stream = graph.astream({"log": []}, **kwargs)
            async for _ in stream:
                seen += 1
                if enough(seen):
                    break
            await stream.aclose()
        else:
            got_enough = asyncio.Event()

            async def consume() -> None:
                seen = 0
                async for _ in graph.astream({"log": []}, **kwargs):
                    seen += 1  # no await here: whenever it is not running, it awaits an item
                    if enough(seen):
                        got_enough.set()

            consumer = asyncio.create_task(consume())
            await got_enough.wait()
            consumer.cancel()
            with pytest.raises(asyncio.CancelledError):
                await consumer

    async def main() -> None:
        try:
            await leave_and_check()
        finally:
            released.set()  # what the runtime failed to cancel stops now (not in 30 s)

    async def leave_and_check() -> None:
        await leave()
        assert await wait_until(lambda: len(cancelled) == 2, PROMPTLY), (started, cancelled)
        assert sorted(cancelled) == ["sleep_1", "sleep_2"]
        assert await wait_until(streamer_ended.is_set, PROMPTLY), "the streaming node ran on"
        produced = tally["tokens"]
        await asyncio.sleep(0.2)
        assert tally["tokens"] == produced < full, "the async model went on streaming"
        assert not await other_tasks()

    async def run_again() -> None:
        plan["sleep"] = 0
        items = await collect(graph, {"log": []}, **kwargs)
        for node in ("streamer", "sync_streamer"):
            assert "".join(m.content for m, md in items if md["langgraph_node"] == node) == reply
        assert not await other_tasks()

    baseline = threading.active_count()
    asyncio.run(main())
    assert settle_threads(baseline) <= baseline  # the sync node's thread ended, so did...
    assert sync_tally["tokens"] < full  # ...its model, well before the end of its reply
    asyncio.run(run_again())


def test_sync_stream_close_mid_run_returns_promptly_and_leaks_no_threads():
    lib = load("ferrograph")
    reply = " ".join(f"w{i}" for i in range(20_000))
    tally = Tally()

    def node(state: Log) -> dict[str, Any]:
        return {"log": [len(chat(reply, tally).invoke("q").content)]}

    b = lib.StateGraph(Log)
    for i in range(3):
        b.add_node(f"n{i}", node)
        b.add_edge(lib.START, f"n{i}")
    graph = b.compile()
    baseline = threading.active_count()
    stream = graph.stream({"log": []}, stream_mode="messages", buffer_size=16)
    for _ in itertools.islice(stream, 50):
        pass
    closer = threading.Thread(target=stream.close)
    closer.start()
    closer.join(30)  # promptly: a run that went on would stream 20,000 tokens a model first
    assert not closer.is_alive(), "close() did not return"
    assert list(stream) == []  # nothing more after close
    assert settle_threads(baseline) <= baseline  # the producers' threads ended, so did...
    assert tally["tokens"] < len(tokens_of(reply))  # ...their models, long before one reply
    assert graph.invoke({"log": []})["log"] == [len(reply)] * 3


# --------------------------------------------------------------------------- concurrency


class Gauge:
    """Nodes running now, the most at once, how many started, and how many gave up waiting
    (at `deadline`) for `until(gauge)` to hold. Nodes are threads or tasks: the lock serves
    both."""

    def __init__(self, until: Callable[[Gauge], bool], deadline: float) -> None:
        self.until = until
        self.deadline = deadline
        self.cond = threading.Condition()
        self.running = self.peak = self.started = self.timeouts = 0

    def enter(self) -> None:
        with self.cond:
            self.running += 1
            self.started += 1
            self.peak = max(self.peak, self.running)
            if self.until(self):  # waking every waiter on each entry would be O(n^2)
                self.cond.notify_all()

    def leave(self) -> None:
        with self.cond:
            self.running -= 1

    def wait_sync(self) -> None:
        with self.cond:
            timeout = max(0.0, self.deadline - time.monotonic())
            if not self.cond.wait_for(lambda: self.until(self), timeout):
                self.timeouts += 1

    async def wait_async(self, poll: float = 0.02) -> None:
        while True:
            with self.cond:
                if self.until(self):
                    return
                if time.monotonic() >= self.deadline:
                    self.timeouts += 1
                    return
            await asyncio.sleep(poll)


def gauged_fan_out(lib: Lib, branches: int, is_async: bool, gauge: Gauge,
                   hold: float = 0.0) -> Any:
    """`branches` parallel nodes that each wait for the gauge's condition, then stay `hold`
    seconds more."""
    if is_async:
        async def node(state: Log) -> dict[str, Any]:
            gauge.enter()
            await gauge.wait_async()
            await asyncio.sleep(hold)
            gauge.leave()
            return {"log": [1]}
    else:
        def node(state: Log) -> dict[str, Any]:
            gauge.enter()
            gauge.wait_sync()
            time.sleep(hold)
            gauge.leave()
            return {"log": [1]}

    b = lib.StateGraph(Log)
    for i in range(branches):
        b.add_node(f"b{i}", node)
        b.add_edge(lib.START, f"b{i}")
    return b.compile()


def run_entry(graph: Any, entry: str, config: dict[str, Any] | None) -> int:
    """How many branch results a run through `entry` reported."""
    if entry == "invoke":
        return len(graph.invoke({"log": []}, config)["log"])
    if entry == "stream":
        return len(list(graph.stream({"log": []}, config, stream_mode="updates")))
    if entry == "ainvoke":
        return len(asyncio.run(graph.ainvoke({"log": []}, config))["log"])
    return len(asyncio.run(collect(graph, {"log": []}, config=config, stream_mode="updates")))


ENTRIES = ["invoke", "stream", "ainvoke", "astream"]


@pytest.mark.parametrize("entry", ENTRIES)
def test_max_concurrency_caps_the_nodes_running_at_once(entry: str):
    branches, limit = 24, 4
    # Each node waits until the limit is reached (or no more are coming), so the peak
    # reaches the limit for certain, then holds its slot a while: a runtime that ignores
    # the limit has started every branch by then and shows a higher peak.
    gauge = Gauge(lambda g: g.running >= limit or g.started == branches, time.monotonic() + 10)
    graph = gauged_fan_out(load("ferrograph"), branches, entry.startswith("a"), gauge,
                           hold=0.02)
    assert run_entry(graph, entry, {"max_concurrency": limit}) == branches
    assert (gauge.peak, gauge.timeouts, gauge.started) == (limit, 0, branches)


@pytest.mark.parametrize("entry", ENTRIES)
def test_1000_branches_run_at_once_without_max_concurrency(entry: str):
    branches = 1000
    # Every node waits for all the others to have started: under any cap they cannot, the
    # waits run out at the (shared) deadline and `timeouts` says so.
    gauge = Gauge(lambda g: g.started >= branches, time.monotonic() + 8)
    graph = gauged_fan_out(load("ferrograph"), branches, entry.startswith("a"), gauge)
    assert run_entry(graph, entry, None) == branches
    assert (gauge.timeouts, gauge.peak) == (0, branches)


# --------------------------------------------------------------------------- scale


def test_10000_concurrent_ainvoke_each_return_their_own_result():
    lib = load("ferrograph")

    async def add_one(state: State) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"x": state["x"] + 1, "log": ["add_one"]}

    async def double(state: State) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"x": state["x"] * 2, "log": ["double"]}

    async def add_three(state: State) -> dict[str, Any]:
        return {"x": state["x"] + 3, "log": ["add_three"]}

    b = lib.StateGraph(State)
    b.add_sequence([add_one, double, add_three])
    b.add_edge(lib.START, "add_one")
    graph = b.compile()

    async def main() -> list[Any]:
        results = await asyncio.gather(*(graph.ainvoke({"x": i, "log": []})
                                         for i in range(10_000)))
        assert not await other_tasks()
        return results

    results = asyncio.run(main())
    assert results == [{"x": (i + 1) * 2 + 3, "log": ["add_one", "double", "add_three"]}
                       for i in range(10_000)]


@pytest.mark.parametrize("kind", [CountingChat, ExecutorStreamingChat], ids=lambda k: k.__name__)
def test_astream_1000_streaming_branches_every_token_once_in_order_with_bounded_lead(
        kind: type[CountingChat]) -> None:
    lib = load("ferrograph")
    branches, words, buffer_size = 1000, 25, 64
    tally = Tally()
    replies = {f"b{i}": " ".join(f"b{i}w{k}" for k in range(words)) for i in range(branches)}

    def branch(name: str) -> Callable[..., Any]:
        model = chat(replies[name], tally, kind)

        async def node(state: Log) -> dict[str, Any]:
            return {"log": [(await model.ainvoke("q")).content]}
        return node

    b = lib.StateGraph(Log)
    for name in replies:
        b.add_node(name, branch(name))
        b.add_edge(lib.START, name)
    graph = b.compile()

    async def main() -> tuple[dict[str, list[str]], int, int]:
        per_node: dict[str, list[str]] = {name: [] for name in replies}
        consumed = worst_lead = 0
        async for chunk, metadata in graph.astream({"log": []}, stream_mode="messages",
                                                   buffer_size=buffer_size):
            consumed += 1
            per_node[metadata["langgraph_node"]].append(chunk.content)
            worst_lead = max(worst_lead, tally["tokens"] - consumed)
            await asyncio.sleep(0)  # a slow consumer: one loop turn per item...
            if consumed % 500 == 0:
                await asyncio.sleep(0.002)  # ...and now and then a real pause
        assert not await other_tasks()
        return per_node, consumed, worst_lead

    per_node, consumed, worst_lead = asyncio.run(main())
    for name, reply in replies.items():
        assert per_node[name] == tokens_of(reply), name
    assert consumed == tally["tokens"] == branches * (2 * words - 1)
    # Tokens counted but not yet consumed sit in: the full channel (buffer_size), the batch
    # drained from it on its way to the consumer (at most buffer_size), and one per producer
    # that counted its token and is waiting to push it (branches). Unbounded: ~49,000.
    assert worst_lead <= 2 * buffer_size + branches
