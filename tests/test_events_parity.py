"""`astream_events` (v1 and v2) compared with LangGraph's on the same graphs: every event's
kind, name, tags, metadata, data and parent chain, in order (run ids and task ids, which
differ from run to run, are numbered by first appearance); and the `nodes=` filter pushed
down to the models of the nodes nobody listens to."""

from __future__ import annotations

import asyncio
import itertools
import operator
import re
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

import langgraph.graph as lg_graph
import langgraph.types as lg_types
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.tools import tool

import ferrograph.graph as fg_graph
import ferrograph.types as fg_types

IMPLS = {"ferrograph": fg_graph, "langgraph": lg_graph}
TYPES = {fg_graph: fg_types, lg_graph: lg_types}
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TASK_NS = re.compile(r"(:)[0-9a-f-]{36}")


class CountingModel(GenericFakeChatModel):
    """A fake chat model that counts the calls that took its streaming path."""

    calls: dict[str, int]

    def _stream(self, *args: Any, **kwargs: Any):
        self.calls["stream"] += 1
        yield from super()._stream(*args, **kwargs)


def model(text: str = "the quick fox") -> CountingModel:
    return CountingModel(messages=itertools.cycle([AIMessage(content=text)]),
                         calls={"stream": 0})


def _normalised(value: Any) -> Any:
    """`value` with what differs from run to run (ids) left out; dicts stay dicts, so their
    key order does not count."""
    if isinstance(value, dict):
        return {k: _normalised(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_normalised(v) for v in value)
    if isinstance(value, BaseMessage):
        return (type(value).__name__, _normalised(value.content),
                _normalised(getattr(value, "tool_calls", None)))
    if type(value).__name__ == "Interrupt":  # its id hashes the task's (engine-specific)
        return ("Interrupt", _normalised(value.value))
    if isinstance(value, str):
        return _UUID.sub("<id>", value)
    if isinstance(value, (int, float, bool, type(None))):
        return value
    return _UUID.sub("<id>", repr(value))


def normalise(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    ids: dict[str, int] = {}

    def num(run_id: str) -> int:
        return ids.setdefault(run_id, len(ids))

    out = []
    for e in events:
        metadata = {k: _TASK_NS.sub(r"\1<task>", v) if isinstance(v, str) else v
                    for k, v in e.get("metadata", {}).items() if k != "lc_versions"}
        out.append((e["event"], e["name"], num(e["run_id"]),
                    tuple(num(p) for p in e.get("parent_ids", ())), tuple(e["tags"]),
                    _normalised(metadata), _normalised(e["data"])))
    return out


def collect(graph: Any, input: Any, config: Any = None, **kwargs: Any) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        return [e async for e in graph.astream_events(input, config, **kwargs)]

    return asyncio.run(run())


def assert_same_events(build: Callable[[Any], Any], input: Any, config: Any = None,
                       **kwargs: Any) -> list[dict[str, Any]]:
    ours = collect(build(fg_graph), input, config, **kwargs)
    theirs = collect(build(lg_graph), input, config, **kwargs)
    assert normalise(ours) == normalise(theirs)
    return ours


class S(TypedDict):
    topic: str
    out: Annotated[list, operator.add]


def model_and_router(lib: Any, chat: Any = None) -> Any:
    chat = chat or model()

    def call(state: S):
        return {"out": [chat.invoke([HumanMessage(content=state["topic"])]).content]}

    def other(state: S):
        return {"out": ["other"]}

    def route(state: S):
        return "other" if len(state["out"]) < 2 else lib.END

    b = lib.StateGraph(S)
    b.add_node("call", call)
    b.add_node("other", other)
    b.add_edge(lib.START, "call")
    b.add_conditional_edges("call", route, ["other", lib.END])
    b.add_edge("other", lib.END)
    return b.compile()


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_nodes_models_and_routers_match_langgraph(version: str):
    events = assert_same_events(lambda lib: model_and_router(lib), {"topic": "owls", "out": []},
                                version=version)
    kinds = [e["event"] for e in events]
    assert kinds.count("on_chat_model_stream") == 5  # "the", " ", "quick", " ", "fox"
    assert "on_chain_stream" in kinds


def test_config_tags_metadata_and_run_name_match_langgraph():
    config = {"tags": ["mine"], "metadata": {"who": "me"}, "run_name": "outer"}
    assert_same_events(lambda lib: model_and_router(lib), {"topic": "owls", "out": []}, config,
                       version="v2")


def test_async_nodes_and_routers_match_langgraph():
    def build(lib: Any) -> Any:
        chat = model("a b")

        async def call(state: S):
            reply = await chat.ainvoke([HumanMessage(content=state["topic"])])
            return {"out": [reply.content]}

        async def route(state: S):
            return "done"

        async def done(state: S):
            return {"out": ["done"]}

        b = lib.StateGraph(S)
        b.add_node("call", call)
        b.add_node("done", done)
        b.add_edge(lib.START, "call")
        b.add_conditional_edges("call", route, ["done"])
        return b.compile()

    assert_same_events(build, {"topic": "owls", "out": []}, version="v2")


def test_subgraph_node_matches_langgraph():
    def build(lib: Any) -> Any:
        chat = model("x y")

        def inner_call(state: S):
            return {"out": [chat.invoke("hi").content]}

        inner = lib.StateGraph(S)
        inner.add_node("inner_call", inner_call)
        inner.add_edge(lib.START, "inner_call")
        sub = inner.compile()

        def first(state: S):
            return {"out": ["first"]}

        b = lib.StateGraph(S)
        b.add_node("first", first)
        b.add_node("sub", sub)
        b.add_edge(lib.START, "first")
        b.add_edge("first", "sub")
        return b.compile()

    assert_same_events(build, {"topic": "owls", "out": []}, version="v2")


def test_tool_called_in_a_node_matches_langgraph():
    @tool
    def shout(text: str) -> str:
        """Shouts the text."""
        return text.upper()

    def build(lib: Any) -> Any:
        def call(state: S):
            return {"out": [shout.invoke({"text": state["topic"]})]}

        b = lib.StateGraph(S)
        b.add_node("call", call)
        b.add_edge(lib.START, "call")
        return b.compile()

    events = assert_same_events(build, {"topic": "owls", "out": []}, version="v2")
    assert [e["event"] for e in events if "tool" in e["event"]] == ["on_tool_start",
                                                                     "on_tool_end"]


def test_conditional_start_and_include_exclude_filters_match_langgraph():
    def build(lib: Any) -> Any:
        chat = model("p q")

        def pick(state: S):
            return "call"

        def call(state: S):
            return {"out": [chat.invoke("hi", config={"tags": ["chatty"]}).content]}

        b = lib.StateGraph(S)
        b.add_node("call", call)
        b.add_conditional_edges(lib.START, pick, ["call"])
        return b.compile()

    start = {"topic": "owls", "out": []}
    assert_same_events(build, start, version="v2")
    assert_same_events(build, start, version="v2", include_names=["call"])
    assert_same_events(build, start, version="v2", include_types=["chat_model"])
    assert_same_events(build, start, version="v2", include_tags=["chatty"])
    assert_same_events(build, start, version="v2", exclude_names=["pick", "LangGraph"])
    assert_same_events(build, start, version="v1", exclude_types=["chain"])


def test_stream_mode_values_and_checkpointer_match_langgraph():
    from langgraph.checkpoint.memory import InMemorySaver

    def build(lib: Any) -> Any:
        return model_and_router(lib).builder.compile(checkpointer=InMemorySaver())

    assert_same_events(build, {"topic": "owls", "out": []},
                       {"configurable": {"thread_id": "t"}}, version="v2", stream_mode="values")


def test_send_and_a_graph_invoked_inside_a_node_match_langgraph():
    def build(lib: Any) -> Any:
        chat = model("m n")

        def inner_call(state: S):
            return {"out": [chat.invoke("hi").content]}

        inner = lib.StateGraph(S)
        inner.add_node("inner_call", inner_call)
        inner.add_edge(lib.START, "inner_call")
        sub = inner.compile()

        def fan(state: S):
            return [TYPES[lib].Send("worker", {"topic": "sent", "out": []})]

        def worker(state: S):
            return {"out": sub.invoke(state)["out"]}

        b = lib.StateGraph(S)
        b.add_node("worker", worker)
        b.add_conditional_edges(lib.START, fan)
        return b.compile()

    assert_same_events(build, {"topic": "owls", "out": []}, version="v2")


def test_interrupt_and_resume_match_langgraph():
    from langgraph.checkpoint.memory import InMemorySaver

    savers: dict[Any, Any] = {}

    def build(lib: Any) -> Any:
        def ask(state: S):
            return {"out": [TYPES[lib].interrupt("which?")]}

        b = lib.StateGraph(S)
        b.add_node("ask", ask)
        b.add_edge(lib.START, "ask")
        return b.compile(checkpointer=savers.setdefault(lib, InMemorySaver()))

    config = {"configurable": {"thread_id": "1"}}
    assert_same_events(build, {"topic": "owls", "out": []}, config, version="v2")
    ours = collect(build(fg_graph), fg_types.Command(resume="owls"), config, version="v2")
    theirs = collect(build(lg_graph), lg_types.Command(resume="owls"), config, version="v2")
    assert normalise(ours) == normalise(theirs)


def test_nodes_filter_keeps_other_models_from_streaming():
    """ferrograph: `nodes=` keeps the events of the nodes listened to, and a model in any
    other node is not asked to stream at all."""
    joke, poem = model("ha ha"), model("roses are red")

    class T(TypedDict):
        joke: str
        poem: str

    def write_joke(state: T):
        return {"joke": joke.invoke("joke").content}

    def write_poem(state: T):
        return {"poem": poem.invoke("poem").content}

    b = fg_graph.StateGraph(T)
    b.add_node(write_joke)
    b.add_node(write_poem)
    b.add_edge(fg_graph.START, "write_joke")
    b.add_edge(fg_graph.START, "write_poem")
    events = collect(b.compile(), {}, version="v2", nodes=["write_poem"])
    streamed = "".join(e["data"]["chunk"].content for e in events
                       if e["event"] == "on_chat_model_stream")
    assert streamed == "roses are red"
    assert {e["metadata"].get("langgraph_node") for e in events} == {None, "write_poem"}
    assert joke.calls["stream"] == 0 and poem.calls["stream"] == 1


@pytest.mark.parametrize("is_async", [False, True])
def test_real_chat_openai_tokens_match_langgraph(is_async: bool):
    pytest.importorskip("langchain_openai")
    from ferrograph.local_openai import LocalOpenAIServer, poem_about

    with LocalOpenAIServer() as server:
        def build(lib: Any) -> Any:
            chat = server.chat_model()

            def call(state: S):
                return {"out": [chat.invoke(f"Write a short poem about {state['topic']}")
                                .content]}

            async def acall(state: S):
                reply = await chat.ainvoke(f"Write a short poem about {state['topic']}")
                return {"out": [reply.content]}

            b = lib.StateGraph(S)
            b.add_node("call", acall if is_async else call)
            b.add_edge(lib.START, "call")
            return b.compile()

        async def both() -> tuple[list[Any], list[Any]]:
            # One event loop for both: the OpenAI client's async HTTP client outlives a loop.
            start = {"topic": "owls", "out": []}
            return ([e async for e in build(fg_graph).astream_events(start, version="v2")],
                    [e async for e in build(lg_graph).astream_events(start, version="v2")])

        ours, theirs = asyncio.run(both())

    assert normalise(ours) == normalise(theirs)  # messages compared by type and text
    tokens = [e["data"]["chunk"].content for e in ours if e["event"] == "on_chat_model_stream"]
    assert "".join(tokens) == poem_about("owls") and len(tokens) > 3
    model_md = next(e["metadata"] for e in ours if e["event"] == "on_chat_model_start")
    assert model_md["langgraph_node"] == "call" and model_md["langgraph_step"] == 1


def retried_graph(lib: Any, is_async: bool) -> Any:
    attempts = {"n": 0}

    def flaky(state: S):
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise ValueError("again")
        return {"out": ["ok"]}

    async def aflaky(state: S):
        return flaky(state)

    b = lib.StateGraph(S)
    b.add_node("flaky", aflaky if is_async else flaky, retry_policy=TYPES[lib].RetryPolicy(
        initial_interval=0, jitter=False, retry_on=ValueError))
    b.add_edge(lib.START, "flaky")
    b.add_conditional_edges("flaky", lambda state: lib.END)  # a lambda router: its name
    return b.compile()


@pytest.mark.parametrize("is_async", [False, True])
def test_retried_node_runs_once_per_attempt_as_in_langgraph(is_async: bool):
    events = assert_same_events(lambda lib: retried_graph(lib, is_async),
                                {"topic": "owls", "out": []}, version="v2")
    assert [e["name"] for e in events if e["event"] == "on_chain_start"][1:4] == ["flaky"] * 3


class TreeRecorder(BaseCallbackHandler):
    """Every chain run's name, tags and parent, as a tracer sees them."""

    def __init__(self) -> None:
        self.runs: list[tuple[Any, ...]] = []
        self.ids: dict[Any, int] = {}

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: Any,
                       parent_run_id: Any = None, tags: Any = None, name: Any = None,
                       **kwargs: Any) -> None:
        self.ids[run_id] = len(self.ids)
        self.runs.append((name, tuple(tags or ()), self.ids.get(parent_run_id)))

    def on_chain_end(self, outputs: Any, *, run_id: Any, **kwargs: Any) -> None:
        self.runs.append(("end", self.ids[run_id], _normalised(outputs)))


@pytest.mark.parametrize("how", ["invoke", "stream", "ainvoke"])
def test_sync_and_async_runs_trace_as_langgraph(how: str):
    def trace(lib: Any) -> list[tuple[Any, ...]]:
        recorder = TreeRecorder()
        graph = retried_graph(lib, False)
        config = {"callbacks": [recorder]}
        start = {"topic": "owls", "out": []}
        if how == "invoke":
            graph.invoke(start, config)
        elif how == "stream":
            list(graph.stream(start, config))
        else:
            asyncio.run(graph.ainvoke(start, config))
        return recorder.runs

    assert trace(fg_graph) == trace(lg_graph)


def by_run(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Each run's events in order, keyed by its path of names (parallel nodes interleave
    their events differently from run to run, in either implementation)."""
    names = {e["run_id"]: e["name"] for e in events}
    runs: dict[tuple[str, ...], list[Any]] = {}
    for e in events:
        path = (*(names[p] for p in e["parent_ids"]), e["name"])
        runs.setdefault(path, []).append((e["event"], tuple(e["tags"]),
                                          _normalised(e["data"])))
    # The graph's own items come in the order its nodes end: any order.
    root = next(path for path in runs if len(path) == 1)
    runs[root] = sorted(runs[root], key=repr)
    return sorted((path, tuple(kinds)) for path, kinds in runs.items())


def test_parallel_nodes_match_langgraph_run_by_run():
    def build(lib: Any) -> Any:
        chat = model("a b c")

        def branch(i: int) -> Any:
            def run(state: S):
                return {"out": [f"{i}:{chat.invoke(str(i)).content}"]}
            return run

        b = lib.StateGraph(S)
        for i in range(4):
            b.add_node(f"b{i}", branch(i))
            b.add_edge(lib.START, f"b{i}")
        return b.compile()

    start = {"topic": "owls", "out": []}
    ours = collect(build(fg_graph), start, version="v2")
    theirs = collect(build(lg_graph), start, version="v2")
    assert by_run(ours) == by_run(theirs)


def runnable_nodes(lib: Any) -> Any:
    """A sequence as a node (its steps become the node's), a lambda runnable, a router."""
    from langchain_core.runnables import RunnableLambda

    chat = model("r s")
    sequence = (RunnableLambda(lambda state: state["topic"]) | chat
                | RunnableLambda(lambda message: {"out": [message.content]}))

    async def alam(state: S):
        return {"out": ["lam"]}

    b = lib.StateGraph(S)
    b.add_node("sequence", sequence)
    b.add_node("lam", RunnableLambda(lambda state: {"out": ["lam"]}, afunc=alam))
    b.add_edge(lib.START, "sequence")
    b.add_conditional_edges("sequence", lambda state: "lam", ["lam"])
    return b.compile()


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_runnable_nodes_match_langgraph(version: str):
    assert_same_events(runnable_nodes, {"topic": "owls", "out": []}, version=version)


@pytest.mark.parametrize("how", ["invoke", "ainvoke"])
def test_runnable_nodes_trace_as_langgraph(how: str):
    def trace(lib: Any) -> list[tuple[Any, ...]]:
        recorder = TreeRecorder()
        graph = runnable_nodes(lib)
        start = {"topic": "owls", "out": []}
        if how == "invoke":
            graph.invoke(start, {"callbacks": [recorder]})
        else:
            asyncio.run(graph.ainvoke(start, {"callbacks": [recorder]}))
        return recorder.runs

    assert trace(fg_graph) == trace(lg_graph)


@pytest.mark.parametrize("how", ["invoke", "stream"])
def test_callers_run_id_and_run_name_are_the_graphs_not_its_models(how: str):
    """The config's `run_id` and `run_name` name the graph's run; a model a node calls (here
    with a handler of its own, so even a run without graph callbacks shows it) gets its own."""
    import uuid

    def seen(lib: Any) -> list[Any]:
        calls: list[Any] = []

        class ModelRuns(BaseCallbackHandler):
            def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: Any,
                                    name: Any = None, **kwargs: Any) -> None:
                calls.append((run_id == given, name))

        chat = model("x")

        def call(state: S):
            return {"out": [chat.invoke("hi", config={"callbacks": [ModelRuns()]}).content]}

        b = lib.StateGraph(S)
        b.add_node("call", call)
        b.add_edge(lib.START, "call")
        config = {"run_id": given, "run_name": "outer"}
        if how == "invoke":
            b.compile().invoke({"topic": "owls", "out": []}, config)
        else:
            list(b.compile().stream({"topic": "owls", "out": []}, config))
        return calls

    given = uuid.uuid4()
    assert seen(fg_graph) == seen(lg_graph) == [(False, None)]  # "outer" if it leaked


def test_nodes_filter_leaves_the_users_own_streaming_handler_alone():
    """`nodes=` narrows the call's own stream; a streaming handler the caller passed in the
    config still hears every model."""
    from langchain_core.tracers._streaming import _StreamingCallbackHandler

    class Tokens(BaseCallbackHandler, _StreamingCallbackHandler):
        def __init__(self) -> None:
            self.tokens: list[str] = []

        def tap_output_aiter(self, run_id: Any, output: Any) -> Any:
            return output

        def tap_output_iter(self, run_id: Any, output: Any) -> Any:
            return output

        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            self.tokens.append(token)

    joke, poem = model("ha"), model("ro")

    class T(TypedDict):
        joke: str
        poem: str

    b = fg_graph.StateGraph(T)
    b.add_node("write_joke", lambda state: {"joke": joke.invoke("joke").content})
    b.add_node("write_poem", lambda state: {"poem": poem.invoke("poem").content})
    b.add_edge(fg_graph.START, "write_joke")
    b.add_edge(fg_graph.START, "write_poem")
    handler = Tokens()
    events = collect(b.compile(), {}, {"callbacks": [handler]}, version="v2",
                     nodes=["write_poem"])
    assert [e["data"]["chunk"].content for e in events
            if e["event"] == "on_chat_model_stream"] == ["ro"]
    assert sorted(handler.tokens) == ["ha", "ro"]
