"""`messages` mode: tokens from `model.invoke` inside nodes, compared with LangGraph, and the
producer-side `nodes=` / `tags=` filters."""

from __future__ import annotations

import itertools
import operator
import threading
from typing import Annotated, Any, TypedDict

import langgraph.graph as lg_graph
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage

import ferrograph.graph as fg_graph
from ferrograph.config import get_stream_writer

IMPLS = {"ferrograph": fg_graph, "langgraph": lg_graph}
REPLY = "the quick brown fox jumps"


class CountingModel(GenericFakeChatModel):
    """A fake chat model that counts `_stream` and `_generate` calls (its `_stream` also
    calls `_generate`; a call that never streamed shows only the latter)."""

    calls: dict[str, int]

    def _stream(self, *args: Any, **kwargs: Any):
        self.calls["stream"] += 1
        yield from super()._stream(*args, **kwargs)

    def _generate(self, *args: Any, **kwargs: Any):
        self.calls["generate"] += 1
        return super()._generate(*args, **kwargs)


def make_model(text: str = REPLY) -> CountingModel:
    return CountingModel(
        messages=itertools.cycle([AIMessage(content=text)]),
        calls={"stream": 0, "generate": 0},
    )


class SeedState(TypedDict):
    topic: str
    joke: str
    poem: str


def seed_graph(lib: Any, joke_model: Any, poem_model: Any) -> Any:
    def write_joke(state: SeedState):
        return {"joke": joke_model.invoke([{"role": "user", "content": "joke"}]).content}

    def write_poem(state: SeedState):
        return {"poem": poem_model.invoke([{"role": "user", "content": "poem"}]).content}

    return (
        lib.StateGraph(SeedState)
        .add_node(write_joke)
        .add_node(write_poem)
        .add_edge(lib.START, "write_joke")
        .add_edge(lib.START, "write_poem")
        .compile()
    )


def by_node(items: list[tuple[Any, dict[str, Any]]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for chunk, metadata in items:
        out.setdefault(metadata["langgraph_node"], []).append(chunk.content)
    return out


def test_seed_tokens_match_langgraph_per_node():
    results = {}
    for name, lib in IMPLS.items():
        graph = seed_graph(lib, make_model("ha ha ha"), make_model(REPLY))
        items = list(graph.stream({"topic": "cats"}, stream_mode="messages"))
        assert all(isinstance(chunk, AIMessageChunk) for chunk, _ in items)
        results[name] = by_node(items)
    assert results["ferrograph"] == results["langgraph"]
    assert "".join(results["ferrograph"]["write_poem"]) == REPLY


def test_metadata_keys_and_values_match_langgraph():
    config = {"tags": ["run-tag"], "metadata": {"user_key": 1},
              "configurable": {"thread_id": "t-1"}}
    seen = {}
    for name, lib in IMPLS.items():
        graph = seed_graph(lib, make_model(), make_model())
        items = [md for _, md in graph.stream({"topic": "c"}, config, stream_mode="messages")
                 if md["langgraph_node"] == "write_poem"]
        first = items[0]
        seen[name] = first
        task_ns = first["langgraph_checkpoint_ns"]
        assert task_ns.startswith("write_poem:") and first["checkpoint_ns"] == task_ns
        assert all(md is first or md == first for md in items), "one dict per model call"
    fg, lg = seen["ferrograph"], seen["langgraph"]
    assert set(fg) == set(lg)
    volatile = {"langgraph_checkpoint_ns", "checkpoint_ns"}
    assert {k: v for k, v in fg.items() if k not in volatile} == {
        k: v for k, v in lg.items() if k not in volatile
    }


def test_nodes_filter_does_not_stream_unsubscribed_models():
    joke_model, poem_model = make_model("ha ha"), make_model(REPLY)
    graph = seed_graph(fg_graph, joke_model, poem_model)
    items = list(graph.stream({"topic": "cats"}, stream_mode="messages", nodes=["write_poem"]))
    assert {md["langgraph_node"] for _, md in items} == {"write_poem"}
    assert "".join(chunk.content for chunk, _ in items) == REPLY
    assert joke_model.calls == {"stream": 0, "generate": 1}  # its non-streaming path
    assert poem_model.calls["stream"] == 1


def test_nodes_filter_keeps_exactly_the_unfiltered_chunks():
    graph = seed_graph(fg_graph, make_model("ha ha"), make_model(REPLY))
    everything = by_node(list(graph.stream({"topic": "x"}, stream_mode="messages")))
    kept = by_node(list(graph.stream({"topic": "x"}, stream_mode="messages",
                                     nodes=["write_poem"])))
    assert kept == {"write_poem": everything["write_poem"]}


def test_nodes_filter_with_runtime_routing_covers_both_targets():
    class S(TypedDict):
        route: str
        out: str

    model = make_model(REPLY)

    def answer(state: S):
        return {"out": model.invoke("q").content}

    builder = fg_graph.StateGraph(S)
    builder.add_node("node_1", lambda s: {})
    builder.add_node("node_2", answer)
    builder.add_node("node_3", answer)
    builder.add_edge(fg_graph.START, "node_1")
    builder.add_conditional_edges("node_1", lambda s: s["route"], ["node_2", "node_3"])
    graph = builder.compile()
    for route in ("node_2", "node_3"):
        items = list(graph.stream({"route": route}, stream_mode="messages",
                                  nodes=["node_2", "node_3"]))
        assert {md["langgraph_node"] for _, md in items} == {route}


def test_unknown_node_in_filter_names_the_graph_nodes():
    graph = seed_graph(fg_graph, make_model(), make_model())
    with pytest.raises(ValueError, match="write_poma.*write_joke.*write_poem"):
        list(graph.stream({"topic": "x"}, stream_mode="messages", nodes=["write_poma"]))


def test_invalid_stream_mode_raises():
    graph = seed_graph(fg_graph, make_model(), make_model())
    with pytest.raises(ValueError, match="Invalid stream_mode 'message'"):
        list(graph.stream({"topic": "x"}, stream_mode="message"))


def test_nostream_tag_and_returned_messages_match_langgraph():
    class S(TypedDict):
        messages: Annotated[list, operator.add]

    def build(lib: Any) -> Any:
        model = make_model("a b c")

        def call(state: S):
            return {"messages": [model.invoke(state["messages"])]}

        def tool(state: S):
            return {"messages": [ToolMessage(content="t", tool_call_id="1", id="tm1"),
                                 AIMessage(content="done", id="x1")]}

        def quiet(state: S):
            return {"messages": [model.with_config(tags=["nostream"]).invoke("q")]}

        def echo(state: S):  # returns its input: nothing new to emit
            return {"messages": state["messages"][:1]}

        builder = lib.StateGraph(S)
        for fn in (call, tool, quiet, echo):
            builder.add_node(fn)
        builder.add_edge(lib.START, "call")
        builder.add_edge("call", "tool")
        builder.add_edge("tool", "quiet")
        builder.add_edge("quiet", "echo")
        return builder.compile()

    out = {}
    for name, lib in IMPLS.items():
        items = build(lib).stream({"messages": [HumanMessage(content="hi", id="h1")]},
                                  stream_mode="messages")
        out[name] = [(type(m).__name__, m.content, md["langgraph_node"],
                      sorted(k for k in md if k != "lc_versions")) for m, md in items]
    assert out["ferrograph"] == out["langgraph"]


def test_subgraph_messages_match_langgraph_with_and_without_subgraphs():
    class S(TypedDict):
        messages: Annotated[list, operator.add]

    def build(lib: Any) -> Any:
        model = make_model("x y")

        def call(state: S):
            return {"messages": [model.invoke(state["messages"])]}

        sub = lib.StateGraph(S)
        sub.add_node("call", call)
        sub.add_edge(lib.START, "call")
        outer = lib.StateGraph(S)
        outer.add_node("outer", sub.compile())
        outer.add_edge(lib.START, "outer")
        return outer.compile()

    for subgraphs in (False, True):
        out = {}
        for name, lib in IMPLS.items():
            items = build(lib).stream({"messages": [HumanMessage(content="hi", id="h1")]},
                                      stream_mode="messages", subgraphs=subgraphs)
            rows = []
            for item in items:
                ns, (m, md) = item if subgraphs else ((), item)
                rows.append(([n.split(":")[0] for n in ns], type(m).__name__, m.content,
                             md["langgraph_node"]))
            out[name] = rows
        assert out["ferrograph"] == out["langgraph"], subgraphs


def test_subgraph_node_path_filter():
    class S(TypedDict):
        messages: Annotated[list, operator.add]

    models = {"inner_a": make_model("a a"), "inner_b": make_model("b b")}

    def caller(name: str):
        def call(state: S):
            return {"messages": [models[name].invoke("q")]}
        return call

    sub = fg_graph.StateGraph(S)
    for name in models:
        sub.add_node(name, caller(name))
        sub.add_edge(fg_graph.START, name)
    outer = fg_graph.StateGraph(S)
    outer.add_node("team", sub.compile())
    outer.add_edge(fg_graph.START, "team")
    graph = outer.compile()
    items = list(graph.stream({"messages": []}, stream_mode="messages",
                              nodes=["team/inner_b"]))
    # The shape follows `subgraphs` (False here): inner items come without a namespace.
    assert {md["langgraph_node"] for _, md in items} == {"inner_b"}
    assert "".join(m.content for m, _ in items) == "b b"
    with_ns = list(graph.stream({"messages": []}, stream_mode="messages",
                                nodes=["team/inner_b"], subgraphs=True))
    assert {ns[0].split(":")[0] for ns, _ in with_ns} == {"team"}
    assert models["inner_a"].calls["stream"] == 0
    assert models["inner_b"].calls["stream"] == 2
    with pytest.raises(ValueError, match="inner_c"):
        list(graph.stream({"messages": []}, stream_mode="messages", nodes=["team/inner_c"]))


def test_custom_and_messages_mixed_modes_match_langgraph():
    def build(lib: Any, config_mod: Any) -> Any:
        model = make_model("p q")

        def node(state: SeedState):
            config_mod.get_stream_writer()({"progress": 1})
            return {"poem": model.invoke("q").content}

        def node_with_writer(state: SeedState, writer):
            writer("via-param")
            return {"joke": "j"}

        b = lib.StateGraph(SeedState)
        b.add_node("write_poem", node)
        b.add_node("write_joke", node_with_writer)
        b.add_edge(lib.START, "write_poem")
        b.add_edge("write_poem", "write_joke")
        return b.compile()

    import langgraph.config as lg_config

    import ferrograph.config as fg_config

    out = {}
    for name, (lib, cfg) in {"ferrograph": (fg_graph, fg_config),
                             "langgraph": (lg_graph, lg_config)}.items():
        items = build(lib, cfg).stream({"topic": "t"}, stream_mode=["custom", "messages"])
        out[name] = [(mode, item if mode == "custom" else (item[0].content,
                                                            item[1]["langgraph_node"]))
                     for mode, item in items]
    assert out["ferrograph"] == out["langgraph"]
    assert get_stream_writer  # imported for users; used through fg_config above


def test_tags_filter_keeps_only_tagged_model_calls():
    class S(TypedDict):
        a: str
        b: str

    plain, tagged = make_model("p p"), make_model("t t")

    def node(state: S):
        return {"a": plain.invoke("q").content,
                "b": tagged.with_config(tags=["keep"]).invoke("q").content}

    b = fg_graph.StateGraph(S)
    b.add_node("node", node)
    b.add_edge(fg_graph.START, "node")
    items = list(b.compile().stream({}, stream_mode="messages", tags=["keep"]))
    assert "".join(m.content for m, _ in items) == "t t"
    assert all(md["tags"] == ["keep"] for _, md in items)


def test_parallel_branches_interleave_and_keep_per_call_order():
    n = 16
    models = [make_model(" ".join(f"w{i}_{k}" for k in range(20))) for i in range(n)]
    started = threading.Barrier(n, timeout=10)

    class S(TypedDict):
        out: Annotated[list, operator.add]

    def branch(i: int):
        def run(state: S):
            started.wait()  # every branch is running at once: no thread cap
            return {"out": [models[i].invoke("q").content]}
        return run

    b = fg_graph.StateGraph(S)
    for i in range(n):
        b.add_node(f"b{i}", branch(i))
        b.add_edge(fg_graph.START, f"b{i}")
    graph = b.compile()
    per_node = by_node(list(graph.stream({"out": []}, stream_mode="messages")))
    assert len(per_node) == n
    for i in range(n):
        assert "".join(per_node[f"b{i}"]) == models[i].invoke("q").content


@pytest.mark.parametrize("as_manager", [False, True])
def test_user_callbacks_keep_working_alongside_streaming(as_manager: bool):
    from langchain_core.callbacks import BaseCallbackHandler, CallbackManager

    class Recorder(BaseCallbackHandler):
        def __init__(self) -> None:
            self.tokens: list[str] = []
            self.ended = 0

        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            self.tokens.append(token)

        def on_llm_end(self, response: Any, **kwargs: Any) -> None:
            self.ended += 1

    recorder = Recorder()
    # A manager's handlers reach nested runs only when inheritable (as in LangGraph).
    callbacks = (CallbackManager([recorder], inheritable_handlers=[recorder]) if as_manager
                 else [recorder])
    graph = seed_graph(fg_graph, make_model("ha ha"), make_model(REPLY))
    items = list(graph.stream({"topic": "x"}, {"callbacks": callbacks},
                              stream_mode="messages", nodes=["write_poem"]))
    assert "".join(m.content for m, _ in items) == REPLY
    assert "".join(recorder.tokens) == REPLY  # the user's handler saw the same tokens
    assert recorder.ended == 2  # and both model calls, streamed or not


def test_nodes_filter_covers_updates_values_custom_and_tasks():
    class S(TypedDict):
        log: Annotated[list, operator.add]

    def node(name: str):
        def run(state: S, writer):
            writer(f"custom from {name}")
            return {"log": [name]}
        return run

    b = fg_graph.StateGraph(S)
    b.add_node("a", node("a"))
    b.add_node("b", node("b"))
    b.add_node("c", node("c"))
    b.add_edge(fg_graph.START, "a")
    b.add_edge("a", "b")
    b.add_edge("b", "c")
    graph = b.compile()
    modes = ["updates", "values", "custom", "tasks"]
    items = list(graph.stream({"log": []}, stream_mode=modes, nodes=["b"]))
    by_mode: dict[str, list[Any]] = {m: [] for m in modes}
    for mode, item in items:
        by_mode[mode].append(item)
    assert by_mode["updates"] == [{"b": {"log": ["b"]}}]
    assert by_mode["custom"] == ["custom from b"]
    assert {t["name"] for t in by_mode["tasks"]} == {"b"} and len(by_mode["tasks"]) == 2
    # values: the state after the step in which `b` ran, and only that one
    assert by_mode["values"] == [{"log": ["a", "b"]}]


def test_parallel_branches_stream_interleaved_as_tokens_arrive():
    from ferrograph.local_openai import LocalOpenAIServer, joke_about, poem_about

    with LocalOpenAIServer(token_delay=0.005) as server:
        model = server.chat_model()

        class T(TypedDict):
            topic: str
            joke: str
            poem: str

        def write_joke(state: T):
            return {"joke": model.invoke(f"Write a joke about {state['topic']}").content}

        def write_poem(state: T):
            return {"poem": model.invoke(f"Write a short poem about {state['topic']}").content}

        b = fg_graph.StateGraph(T)
        b.add_node(write_joke)
        b.add_node(write_poem)
        b.add_edge(fg_graph.START, "write_joke")
        b.add_edge(fg_graph.START, "write_poem")
        items = [(md["langgraph_node"], m.content)
                 for m, md in b.compile().stream({"topic": "owls"}, stream_mode="messages")
                 if m.content]
    nodes = [node for node, _ in items]
    switches = sum(1 for a, b_ in zip(nodes, nodes[1:], strict=False) if a != b_)
    # both streams were live at once: their tokens arrive mixed, not one after the other
    assert switches >= 5, nodes
    assert "".join(t for n, t in items if n == "write_joke") == joke_about("owls")
    assert "".join(t for n, t in items if n == "write_poem") == poem_about("owls")


def test_user_tracer_sees_one_run_per_node_with_model_runs_nested():
    from uuid import UUID

    from langchain_core.callbacks import BaseCallbackHandler

    class Tracer(BaseCallbackHandler):
        def __init__(self) -> None:
            self.chains: dict[UUID, str] = {}
            self.parents: dict[UUID, UUID | None] = {}
            self.model_parents: list[UUID | None] = []

        def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID,
                           parent_run_id: UUID | None = None, name: str | None = None,
                           **kwargs: Any) -> None:
            self.chains[run_id] = name or ""
            self.parents[run_id] = parent_run_id

        def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID,
                                parent_run_id: UUID | None = None, **kwargs: Any) -> None:
            self.model_parents.append(parent_run_id)

    tracer = Tracer()
    graph = seed_graph(fg_graph, make_model("ha"), make_model(REPLY))
    items = list(graph.stream({"topic": "x"}, {"callbacks": [tracer]}, stream_mode="messages",
                              nodes=["write_poem"]))
    assert "".join(m.content for m, _ in items) == REPLY  # streaming still works alongside
    assert sorted(tracer.chains.values()) == ["LangGraph", "write_joke", "write_poem"]
    assert sorted(tracer.chains[p] for p in tracer.model_parents) == ["write_joke",
                                                                       "write_poem"]
    graph_run = next(r for r, name in tracer.chains.items() if name == "LangGraph")
    assert {tracer.parents[r] for r, name in tracer.chains.items()
            if name != "LangGraph"} == {graph_run}


@pytest.mark.parametrize("name,lib", IMPLS.items())
def test_a_run_id_in_the_config_is_the_runs_own_not_its_model_calls(name, lib):
    """`config["run_id"]` names the run (LangGraph's server sets it): each model call in its
    nodes still gets its own run, so two nodes' messages keep two ids."""
    import uuid

    graph = seed_graph(lib, make_model("ha ha"), make_model(REPLY))
    ids: dict[str, set[str]] = {}
    for chunk, metadata in graph.stream({"topic": "cats"}, {"run_id": uuid.uuid4()},
                                        stream_mode="messages"):
        ids.setdefault(metadata["langgraph_node"], set()).add(chunk.id)
    assert all(len(found) == 1 for found in ids.values())
    assert len(ids["write_joke"] | ids["write_poem"]) == 2
