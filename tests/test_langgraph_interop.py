"""Interop for a step-by-step migration (issue 17 #14): a graph compiled by LangGraph inside a
ferrograph graph, added as a node or invoked from a node function, behaves as the same
nesting done entirely in LangGraph. The inner graph is always LangGraph's; the outer one is
built with the implementation under test (`candidate`) and with LangGraph (`oracle`), and the
two runs are compared after normalisation: the expected values are LangGraph's, computed by
running it, never written down.

Also the `Runtime` of LangGraph 1.2 (every field and method, `RunControl` and drain), which a
LangGraph graph run by a ferrograph task takes as its parent runtime.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import operator
import uuid
import warnings
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import langgraph.graph as lg
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.config import get_stream_writer as lg_get_stream_writer
from langgraph.runtime import Runtime as LangGraphRuntime
from langgraph.runtime import get_runtime as lg_get_runtime

from tests.parity import Lib, Raised, drain, normalise, outcome, task_link_problems

WAIT = 30.0  # seconds: a wait only a regression can exhaust


class State(TypedDict):
    messages: Annotated[list, lg.add_messages]
    log: Annotated[list, operator.add]


@dataclasses.dataclass
class Context:
    user: str


CONTEXT = Context(user="ada")
WHERE = ["node", "call"]
"""How the LangGraph graph sits in the outer graph: added as its node "agent", or invoked by
the node function "agent"."""
MODES: list[Any] = ["values", "updates", "messages", "custom", "tasks", "debug",
                    ["values", "updates", "messages", "custom"]]


def start() -> dict[str, Any]:
    return {"messages": [HumanMessage(content="hi", id="h1")], "log": []}


def reply_model(text: str = "the answer is forty two") -> GenericFakeChatModel:
    """A chat model that streams `text` word by word (a new one per run: its replies are
    consumed)."""
    return GenericFakeChatModel(messages=itertools.cycle([AIMessage(content=text)]))


def langgraph_agent(model: Any) -> Any:
    """A graph compiled by LangGraph: `think` streams a model's reply and writes a custom
    item, then its own LangGraph subgraph `deep` (so items come from two levels of LangGraph
    subgraphs), whose node reads the run context."""

    def deep_node(state: State, runtime: LangGraphRuntime[Context]) -> dict[str, Any]:
        runtime.stream_writer({"deep": runtime.context.user})
        return {"log": [f"deep:{runtime.context.user}"]}

    deep = lg.StateGraph(State, context_schema=Context)
    deep.add_node("deep_node", deep_node)
    deep.add_edge(lg.START, "deep_node")

    def think(state: State) -> dict[str, Any]:
        lg_get_stream_writer()({"think": len(state["messages"])})
        user = lg_get_runtime().context.user
        return {"messages": [model.invoke(state["messages"])], "log": [f"think:{user}"]}

    inner = lg.StateGraph(State, context_schema=Context)
    inner.add_node("think", think)
    inner.add_node("deep", deep.compile())
    inner.add_edge(lg.START, "think")
    inner.add_edge("think", "deep")
    return inner.compile()


def outer_graph(lib: Lib, where: str, agent: Any, *, is_async: bool = False) -> Any:
    """`agent` (a LangGraph graph) inside a graph built with `lib`, then a node of its own."""
    builder = lib.StateGraph(State, context_schema=Context)
    if where == "node":
        builder.add_node("agent", agent)
    elif is_async:
        async def call_agent(state: State) -> Any:
            return await agent.ainvoke(state)

        builder.add_node("agent", call_agent)
    else:
        builder.add_node("agent", lambda state: agent.invoke(state))
    builder.add_node("after", lambda state: {"log": ["after"]})
    builder.add_edge(lib.START, "agent")
    builder.add_edge("agent", "after")
    return builder.compile()


def both(run: Any, candidate: Lib, oracle: Lib) -> tuple[Any, Any]:
    return run(candidate), run(oracle)


def streamed(graph: Any, *, check_tasks: bool = True, **kwargs: Any) -> Any:
    items, error = drain(graph.stream(start(), context=CONTEXT, **kwargs))
    if check_tasks and kwargs.get("subgraphs"):
        modes = kwargs.get("stream_mode")
        if modes in ("tasks", "debug"):
            from tests.parity import Shape

            assert not task_link_problems(items, Shape(modes, True))
    return normalise(items), error


def astreamed(graph: Any, **kwargs: Any) -> Any:
    async def run() -> Any:
        items: list[Any] = []
        try:
            async for item in graph.astream(start(), context=CONTEXT, **kwargs):
                items.append(item)
        except Exception as e:  # noqa: BLE001 - part of what is compared
            return normalise(items), Raised.of(e)
        return normalise(items), None

    return asyncio.run(asyncio.wait_for(run(), WAIT))


# ----------------------------------------------------------------------------- invoke


@pytest.mark.parametrize("where", WHERE)
def test_invoke(where: str, candidate: Lib, oracle: Lib) -> None:
    got, expected = both(
        lambda lib: outcome(lambda: outer_graph(lib, where, langgraph_agent(reply_model()))
                            .invoke(start(), context=CONTEXT)),
        candidate, oracle)
    assert got == expected
    assert {"think:ada", "deep:ada", "after"} <= set(expected["log"])


@pytest.mark.parametrize("where", [*WHERE, "acall"])
def test_ainvoke(where: str, candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        graph = outer_graph(lib, where.removeprefix("a"), langgraph_agent(reply_model()),
                            is_async=where == "acall")
        return outcome(lambda: asyncio.run(asyncio.wait_for(
            graph.ainvoke(start(), context=CONTEXT), WAIT)))

    got, expected = both(run, candidate, oracle)
    assert got == expected
    assert {"think:ada", "deep:ada", "after"} <= set(expected["log"])


# ----------------------------------------------------------------------------- stream


@pytest.mark.parametrize("subgraphs", [False, True])
@pytest.mark.parametrize("mode", MODES, ids=str)
@pytest.mark.parametrize("where", WHERE)
def test_stream(where: str, mode: Any, subgraphs: bool, candidate: Lib, oracle: Lib) -> None:
    got, expected = both(
        lambda lib: streamed(outer_graph(lib, where, langgraph_agent(reply_model())),
                             stream_mode=mode, subgraphs=subgraphs),
        candidate, oracle)
    assert got == expected


@pytest.mark.parametrize("subgraphs", [False, True])
@pytest.mark.parametrize("mode", MODES, ids=str)
@pytest.mark.parametrize("where", [*WHERE, "acall"])
def test_astream(where: str, mode: Any, subgraphs: bool, candidate: Lib, oracle: Lib) -> None:
    got, expected = both(
        lambda lib: astreamed(outer_graph(lib, where.removeprefix("a"),
                                          langgraph_agent(reply_model()),
                                          is_async=where == "acall"),
                              stream_mode=mode, subgraphs=subgraphs),
        candidate, oracle)
    assert got == expected


def test_subgraph_items_carry_langgraph_namespaces(candidate: Lib) -> None:
    """What the differential tests compare, spelled out once: with `subgraphs=True` the
    LangGraph graph's items come under `agent:<task id>`, its own subgraph's under
    `agent:<task id>`, `deep:<task id>`; model tokens come from `think`."""
    graph = outer_graph(candidate, "node", langgraph_agent(reply_model()))
    items, error = streamed(graph, stream_mode=["updates", "messages", "custom"],
                            subgraphs=True)
    assert error is None
    seen = {(ns, mode) for ns, mode, _ in items}
    assert seen == {
        (("agent:<id>",), "custom"), (("agent:<id>",), "messages"),
        (("agent:<id>",), "updates"), (("agent:<id>", "deep:<id>"), "custom"),
        (("agent:<id>", "deep:<id>"), "updates"), ((), "updates"),
    }
    tokens = [m["content"] for ns, mode, (m, md) in
              ((ns, mode, p) for ns, mode, p in items if mode == "messages")]
    assert "".join(tokens) == "the answer is forty two"


@pytest.mark.parametrize("where", WHERE)
def test_stream_v2(where: str, candidate: Lib, oracle: Lib) -> None:
    got, expected = both(
        lambda lib: streamed(outer_graph(lib, where, langgraph_agent(reply_model())),
                             stream_mode=["values", "updates", "messages", "custom"],
                             subgraphs=True, version="v2"),
        candidate, oracle)
    assert got == expected


@pytest.mark.parametrize("subgraphs", [False, True])
def test_messages_from_an_explicit_stream_inside_a_node(subgraphs: bool, candidate: Lib,
                                                        oracle: Lib) -> None:
    """A node that itself streams the LangGraph graph in `messages` mode gets its tokens;
    the caller's `messages` stream gets them too only with `subgraphs=True` (once), else
    only the node's result."""

    def run(lib: Lib) -> Any:
        agent = langgraph_agent(reply_model("one two"))
        inside: list[Any] = []

        def node(state: State) -> dict[str, Any]:
            for chunk, metadata in agent.stream(state, stream_mode="messages"):
                inside.append((chunk.content, metadata["langgraph_node"]))
            return {"log": ["node"]}

        builder = lib.StateGraph(State, context_schema=Context)
        builder.add_node("node", node)
        builder.add_edge(lib.START, "node")
        outer = streamed(builder.compile(), stream_mode="messages", subgraphs=subgraphs)
        return outer, inside

    got, expected = both(run, candidate, oracle)
    assert got == expected
    assert expected[1]  # the node saw the tokens
    (outer_items, error), _ = expected
    assert error is None and bool(outer_items) == subgraphs


@pytest.mark.parametrize("how", ["stream", "astream"])
def test_parallel_langgraph_nodes_stream_each_call_in_order(how: str, candidate: Lib,
                                                            oracle: Lib) -> None:
    """Parallel nodes of the LangGraph graph stream through one task of ours (from several
    threads at once): each model call's tokens keep their namespace, node and order."""

    def run(lib: Lib) -> Any:
        models = {"a": reply_model("alpha beta gamma delta"),
                  "b": reply_model("one two three four")}
        inner = lg.StateGraph(State)
        for name, model in models.items():
            inner.add_node(name, lambda state, _m=model: {"messages": [_m.invoke("q")]})
            inner.add_edge(lg.START, name)
        outer = lib.StateGraph(State)
        outer.add_node("agent", inner.compile())
        outer.add_edge(lib.START, "agent")
        graph = outer.compile()
        if how == "stream":
            items = list(graph.stream(start(), stream_mode="messages", subgraphs=True))
        else:
            async def arun() -> Any:
                return [i async for i in graph.astream(start(), stream_mode="messages",
                                                       subgraphs=True)]

            items = asyncio.run(asyncio.wait_for(arun(), WAIT))
        per_call: dict[Any, list[str]] = {}
        for ns, (message, metadata) in items:
            key = (normalise(ns), metadata["langgraph_node"],
                   normalise(metadata["langgraph_checkpoint_ns"]))
            per_call.setdefault(key, []).append(message.content)
        return per_call

    got, expected = both(run, candidate, oracle)
    assert got == expected
    assert len(expected) == 2  # the two model calls (their messages, once streamed, not again)


# ----------------------------------------------------------------------------- nodes=


def test_nodes_filter_streams_only_the_named_langgraph_subgraph(candidate: Lib,
                                                                oracle: Lib) -> None:
    """`nodes=` (ferrograph's): a LangGraph subgraph node named there streams everything of
    its own, as LangGraph streams it; one not named streams nothing, and its model is not
    asked to stream at all. Expected: LangGraph's unfiltered stream, less what does not come
    from the named node."""
    if candidate.name != "ferrograph":
        pytest.skip("nodes= is ferrograph's")
    kinds = ["updates", "messages", "custom"]

    def build(lib: Lib, models: dict[str, Any]) -> Any:
        builder = lib.StateGraph(State, context_schema=Context)
        builder.add_node("first", langgraph_agent(models["first"]))
        builder.add_node("second", langgraph_agent(models["second"]))
        builder.add_edge(lib.START, "first")
        builder.add_edge("first", "second")
        return builder.compile()

    def from_second(item: Any) -> bool:
        ns, mode, payload = item
        if ns:
            return ns[0].startswith("second:")
        if mode == "updates":
            return set(payload) == {"second"}
        return mode == "messages" and payload[1]["langgraph_node"] == "second"

    oracle_items, _ = streamed(build(oracle, {"first": reply_model(), "second": reply_model()}),
                               stream_mode=kinds, subgraphs=True)
    expected = [item for item in oracle_items if from_second(item)]
    models = {"first": reply_model(), "second": reply_model()}
    calls: list[str] = []
    for name, model in models.items():
        real_stream = model._stream

        def counting(*args: Any, _name: str = name, _real: Any = real_stream,
                     **kwargs: Any) -> Iterator[ChatGenerationChunk]:
            calls.append(_name)
            return _real(*args, **kwargs)

        object.__setattr__(model, "_stream", counting)
    got, error = streamed(build(candidate, models), stream_mode=kinds, subgraphs=True,
                          nodes=["second"])
    assert error is None
    # The first model did not stream here: its message id is the non-streaming one.
    assert _streamed_ids(got) == _streamed_ids(expected)
    assert {ns[0].split(":")[0] for ns, _, _ in got if ns} == {"second"}
    assert calls == ["second"]  # the first model never streamed
    with pytest.raises(ValueError, match="compiled by LangGraph"):
        build(candidate, models).stream(start(), nodes=["second/think"])


def _streamed_ids(value: Any) -> Any:
    """`value` with langchain-core's id of a message made without streaming (`lc_run--<run
    id>-<index>`) written as the streamed one (`lc_run--<run id>`)."""
    if isinstance(value, str):
        return value.removesuffix("-0") if value.startswith("lc_run--") else value
    if isinstance(value, dict):
        return {k: _streamed_ids(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_streamed_ids(v) for v in value)
    return value


# ----------------------------------------------------------------------------- prebuilt


class ToolCallingModel(GenericFakeChatModel):
    """A fake chat model whose replies may call tools, streamed with their tool-call chunks
    (GenericFakeChatModel drops `tool_calls` when it streams)."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _stream(self, messages: Any, stop: Any = None, run_manager: Any = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        message = self._generate(messages, stop=stop).generations[0].message
        words = str(message.content).split(" ") if message.content else []
        for i, word in enumerate(words):
            chunk = ChatGenerationChunk(message=AIMessageChunk(
                content=word if i == 0 else f" {word}", id=message.id))
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
        for index, call in enumerate(getattr(message, "tool_calls", [])):
            chunk = ChatGenerationChunk(message=AIMessageChunk(
                content="", id=message.id, tool_call_chunks=[{
                    "name": call["name"], "args": json.dumps(call["args"]),
                    "id": call["id"], "index": index}]))
            if run_manager:
                run_manager.on_llm_new_token("", chunk=chunk)
            yield chunk


@tool
def add(a: int, b: int) -> int:
    """Adds two numbers."""
    return a + b


def react_agent() -> Any:
    from langgraph.prebuilt import create_react_agent

    model = ToolCallingModel(messages=iter([
        AIMessage(content="let me add", id=str(uuid.UUID(int=1)), tool_calls=[
            {"name": "add", "args": {"a": 2, "b": 40}, "id": "call_1"}]),
        AIMessage(content="it is 42", id=str(uuid.UUID(int=2))),
    ]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_react_agent(model, [add])


def react_outer(lib: Lib) -> Any:
    class AgentState(TypedDict):
        messages: Annotated[list, lg.add_messages]

    builder = lib.StateGraph(AgentState)
    builder.add_node("agent", react_agent())
    builder.add_node("after", lambda state: {"messages": [AIMessage("bye", id="bye")]})
    builder.add_edge(lib.START, "agent")
    builder.add_edge("agent", "after")
    return builder.compile()


def test_prebuilt_react_agent_as_a_node_invoke(candidate: Lib, oracle: Lib) -> None:
    got, expected = both(
        lambda lib: outcome(lambda: react_outer(lib).invoke(
            {"messages": [HumanMessage("add 2 and 40", id="h1")]})),
        candidate, oracle)
    assert got == expected
    assert [m["content"] for m in expected["messages"]] == [
        "add 2 and 40", "let me add", "42", "it is 42", "bye"]


@pytest.mark.parametrize("subgraphs", [False, True])
@pytest.mark.parametrize("mode", ["updates", "messages", ["values", "updates", "messages"]],
                         ids=str)
def test_prebuilt_react_agent_as_a_node_stream(mode: Any, subgraphs: bool, candidate: Lib,
                                               oracle: Lib) -> None:
    got, expected = both(
        lambda lib: normalise(drain(react_outer(lib).stream(
            {"messages": [HumanMessage("add 2 and 40", id="h1")]}, stream_mode=mode,
            subgraphs=subgraphs))),
        candidate, oracle)
    assert got == expected


@pytest.mark.parametrize("mode", ["updates", "messages"])
def test_prebuilt_react_agent_as_a_node_astream(mode: str, candidate: Lib,
                                                oracle: Lib) -> None:
    async def run(lib: Lib) -> Any:
        return [item async for item in react_outer(lib).astream(
            {"messages": [HumanMessage("add 2 and 40", id="h1")]}, stream_mode=mode,
            subgraphs=True)]

    got, expected = both(
        lambda lib: normalise(asyncio.run(asyncio.wait_for(run(lib), WAIT))),
        candidate, oracle)
    assert got == expected


# ----------------------------------------------------------------------------- context


@pytest.mark.parametrize("how", ["invoke", "stream", "ainvoke", "astream"])
@pytest.mark.parametrize("where", WHERE)
def test_context_reaches_the_langgraph_subgraph_nodes(where: str, how: str, candidate: Lib,
                                                      oracle: Lib) -> None:
    """The run's `context=` reaches the nodes of a LangGraph graph (and of its own subgraph)
    through the task's runtime, which LangGraph takes as its parent runtime."""

    def run(lib: Lib) -> Any:
        graph = outer_graph(lib, where, langgraph_agent(reply_model()))
        if how == "invoke":
            return graph.invoke(start(), context=CONTEXT)["log"]
        if how == "stream":
            return [v["log"] for v in graph.stream(start(), context=CONTEXT,
                                                   stream_mode="values")][-1]

        async def arun() -> Any:
            if how == "ainvoke":
                return (await graph.ainvoke(start(), context=CONTEXT))["log"]
            return [v["log"] async for v in graph.astream(start(), context=CONTEXT,
                                                          stream_mode="values")][-1]

        return asyncio.run(asyncio.wait_for(arun(), WAIT))

    got, expected = both(run, candidate, oracle)
    assert got == expected
    assert {"think:ada", "deep:ada"} <= set(expected)


# ----------------------------------------------------------------------------- Runtime


def test_runtime_has_every_field_and_method_of_langgraphs(candidate: Lib, oracle: Lib) -> None:
    import importlib

    ours = importlib.import_module(f"{candidate.name}.runtime")
    theirs = importlib.import_module("langgraph.runtime")
    for name in ("Runtime", "ExecutionInfo", "ServerInfo"):
        assert [f.name for f in dataclasses.fields(getattr(ours, name))] == [
            f.name for f in dataclasses.fields(getattr(theirs, name))], name
    for name in ("merge", "override", "patch_execution_info", "drain_requested",
                 "drain_reason"):
        assert hasattr(ours.Runtime, name), name
    for name in ("request_drain", "drain_requested", "drain_reason"):
        assert hasattr(ours.RunControl, name), name
    assert ours.get_runtime is not None


def _runtime_behaviour(module: Any) -> Any:
    """What LangGraph's `Runtime` methods do, on values that exercise each rule."""
    Runtime, ExecutionInfo, ServerInfo, RunControl = (  # noqa: N806
        module.Runtime, module.ExecutionInfo, module.ServerInfo, module.RunControl)

    def writer(_: Any) -> None: ...

    def heartbeat() -> None: ...

    control = RunControl()
    info = ExecutionInfo(checkpoint_id="c", checkpoint_ns="n:1", task_id="1")
    base = Runtime(context={"a": 1}, store="store", stream_writer=writer, heartbeat=heartbeat,
                   previous=0, execution_info=info,
                   server_info=ServerInfo(assistant_id="a", graph_id="g"), control=control)
    empty = Runtime()
    merged = base.merge(empty)
    over = empty.merge(base)
    out = {
        "merged": [merged.context, merged.store, merged.stream_writer is writer,
                   merged.heartbeat is heartbeat, merged.previous, merged.execution_info,
                   merged.server_info, merged.control is control],
        "over": [over.context, over.store, over.stream_writer is writer,
                 over.heartbeat is heartbeat, over.previous, over.control is control],
        "previous_none_kept": Runtime(previous=5).merge(Runtime(previous=None)).previous,
        "override": base.override(context={"b": 2}).context,
        "patched": base.patch_execution_info(node_attempt=3).execution_info,
        "info_patch": info.patch(task_id="2"),
        "drain": [base.drain_requested, base.drain_reason, empty.drain_requested,
                  empty.drain_reason],
    }
    try:
        empty.patch_execution_info(node_attempt=2)
    except RuntimeError as e:
        out["patch_unset"] = str(e)
    control.request_drain()
    out["drained"] = [base.drain_requested, base.drain_reason, control.drain_requested]
    other = RunControl()
    other.request_drain("maintenance")
    out["reason"] = other.drain_reason
    try:
        base.context = 1  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        out["frozen"] = True
    return normalise(out)


def test_runtime_methods_behave_as_langgraphs(candidate: Lib, oracle: Lib) -> None:
    import importlib

    got = _runtime_behaviour(importlib.import_module(f"{candidate.name}.runtime"))
    expected = _runtime_behaviour(importlib.import_module("langgraph.runtime"))
    # the classes' own names differ by module only
    assert json.dumps(got, sort_keys=True, default=str).replace("ferrograph", "<lib>") == \
        json.dumps(expected, sort_keys=True, default=str).replace("langgraph", "<lib>")


@pytest.mark.parametrize("how", ["invoke", "stream", "ainvoke"])
def test_node_runtime_execution_info(how: str, candidate: Lib, oracle: Lib) -> None:
    """A node's runtime describes its task: namespace and id as in its config, the thread
    and run ids given, the attempt under a retry policy."""

    def run(lib: Lib) -> Any:
        seen: list[Any] = []
        attempts = {"n": 0}

        def node(state: State, runtime: lib.Runtime, config: RunnableConfig) -> dict[str, Any]:
            info = runtime.execution_info
            configurable = config["configurable"]
            seen.append({
                "ns_matches": info.checkpoint_ns == configurable["checkpoint_ns"],
                "id_matches": info.task_id == configurable["__pregel_task_id"],
                "thread_id": info.thread_id, "run_id": info.run_id,
                "attempt": info.node_attempt,
                "first_time": isinstance(info.node_first_attempt_time, float),
                "server": runtime.server_info,
                "control": type(runtime.control).__name__,
                "same_info": lib.get_config() is config and _get_runtime(lib).execution_info
                == info,
            })
            attempts["n"] += 1
            if attempts["n"] < 3:
                raise ValueError("again")
            return {"log": ["node"]}

        builder = lib.StateGraph(State)
        builder.add_node("node", node, retry_policy=lib.RetryPolicy(
            initial_interval=0, jitter=False, retry_on=ValueError))
        builder.add_edge(lib.START, "node")
        graph = builder.compile()
        config = {"configurable": {"thread_id": "t-1", "assistant_id": "asst"},
                  "run_id": uuid.UUID(int=7)}
        if how == "invoke":
            graph.invoke(start(), config)
        elif how == "stream":
            list(graph.stream(start(), config, stream_mode="updates"))
        else:
            asyncio.run(asyncio.wait_for(graph.ainvoke(start(), config), WAIT))
        return normalise(seen)

    got, expected = both(run, candidate, oracle)
    assert got == expected
    assert [s["attempt"] for s in expected] == [1, 2, 3]


def _get_runtime(lib: Lib) -> Any:
    import importlib

    return importlib.import_module(f"{lib.name}.runtime").get_runtime()


@pytest.mark.parametrize("how", ["invoke", "stream", "ainvoke", "astream"])
@pytest.mark.parametrize("who", ["node", "caller", "early", "subgraph"])
def test_drain(who: str, how: str, candidate: Lib, oracle: Lib) -> None:
    """`RunControl.request_drain()` stops the run before its next step, with `GraphDrained`:
    asked by a node (through its runtime), by the caller (the `control=` it passed), before
    the run starts, or by a node of a subgraph (which shares its caller's control)."""
    import importlib

    def run(lib: Lib) -> Any:
        runtime_module = importlib.import_module(f"{lib.name}.runtime")
        control = runtime_module.RunControl()
        log: list[str] = []

        def first(state: State, runtime: lib.Runtime) -> dict[str, Any]:
            log.append("first")
            if who in ("node", "subgraph"):
                runtime.control.request_drain("node asked")
            if who == "caller":
                control.request_drain()
            return {"log": ["first"]}

        def second(state: State) -> dict[str, Any]:
            log.append("second")
            return {"log": ["second"]}

        def chain(builder: Any) -> Any:
            builder.add_node("first", first)
            builder.add_node("second", second)
            builder.add_edge(lib.START, "first")
            builder.add_edge("first", "second")
            return builder.compile()

        graph = chain(lib.StateGraph(State))
        if who == "subgraph":
            outer = lib.StateGraph(State)
            outer.add_node("sub", graph)
            outer.add_node("after", second)
            outer.add_edge(lib.START, "sub")
            outer.add_edge("sub", "after")
            graph = outer.compile()
        if who == "early":
            control.request_drain("early")
        kwargs = {"control": control}
        if how == "invoke":
            result = outcome(lambda: graph.invoke(start(), **kwargs))
        elif how == "stream":
            result = normalise(drain(graph.stream(start(), stream_mode="updates", **kwargs)))
        else:
            async def arun() -> Any:
                if how == "ainvoke":
                    return await graph.ainvoke(start(), **kwargs)
                return [i async for i in graph.astream(start(), stream_mode="updates",
                                                       **kwargs)]

            result = outcome(lambda: asyncio.run(asyncio.wait_for(arun(), WAIT)))
        return result, log, control.drain_reason

    got, expected = both(run, candidate, oracle)
    assert got == expected
    assert "second" not in expected[1]


@pytest.mark.parametrize("where", WHERE)
def test_langgraph_subgraph_drain(where: str, candidate: Lib, oracle: Lib) -> None:
    """A drain asked by a node of the LangGraph graph stops that graph before its next step
    and the caller's run with it. Added as a node, the LangGraph graph shares the caller's
    control, as LangGraph's subgraphs do (invoked by a node function, it has one of its own:
    LangGraph keeps only the context of a parent runtime that is not its own class)."""

    def run(lib: Lib) -> Any:
        import importlib

        control = importlib.import_module(f"{lib.name}.runtime").RunControl()
        log: list[str] = []

        def asks(state: State, runtime: LangGraphRuntime) -> dict[str, Any]:
            log.append("asks")
            runtime.control.request_drain("inner")
            return {"log": ["asks"]}

        def never(state: State) -> dict[str, Any]:
            log.append("never")
            return {"log": ["never"]}

        inner = lg.StateGraph(State)
        inner.add_node("asks", asks)
        inner.add_node("never", never)
        inner.add_edge(lg.START, "asks")
        inner.add_edge("asks", "never")
        graph = outer_graph(lib, where, inner.compile())
        result = outcome(lambda: graph.invoke(start(), control=control))
        return result, log, control.drain_requested if where == "node" else None

    got, expected = both(run, candidate, oracle)
    assert got == expected
    assert expected[1] == ["asks"]
