"""`ferrograph.adapt`: graphs LangGraph built (`create_react_agent`, `langchain.agents.
create_agent`, a user's `StateGraph`) run on ferrograph's engine exactly as on LangGraph's,
compared item by item; and graphs it cannot translate refused with an error naming why."""

from __future__ import annotations

import asyncio
import json
import operator
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import (
    HumanInTheLoopMiddleware,
    ModelCallLimitMiddleware,
    ToolCallLimitMiddleware,
)
from langchain.agents.structured_output import ToolStrategy
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.tools import tool
from langgraph.channels import EphemeralValue, Topic
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START
from langgraph.graph import StateGraph as LangGraphStateGraph
from langgraph.prebuilt import ToolRuntime
from langgraph.prebuilt import create_react_agent as langgraph_create_react_agent
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command as LangGraphCommand
from langgraph.types import RetryPolicy as LangGraphRetryPolicy
from langgraph.types import Send as LangGraphSend
from pydantic import BaseModel
from typing_extensions import TypedDict

import ferrograph
from ferrograph.prebuilt import create_react_agent
from ferrograph.pregel.main import CompiledStateGraph
from ferrograph.types import Command
from tests.parity import drain, normalise, sort_key


class ToolCallingModel(GenericFakeChatModel):
    """A scripted chat model that takes tools (its replies are fixed in advance); streamed,
    a reply with tool calls comes as one chunk carrying them."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> ToolCallingModel:
        return self

    def _stream(self, messages: Any, stop: Any = None, run_manager: Any = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        reply = self._generate(messages, stop, run_manager, **kwargs).generations[0].message
        if not reply.tool_calls:
            self.messages = iter([reply, *self.messages])
            yield from super()._stream(messages, stop, run_manager, **kwargs)
            return
        chunk = ChatGenerationChunk(message=AIMessageChunk(
            content="", id=reply.id, chunk_position="last",
            tool_call_chunks=[tool_call_chunk(name=c["name"], args=json.dumps(c["args"]),
                                              id=c["id"], index=i)
                              for i, c in enumerate(reply.tool_calls)]))
        if run_manager:
            run_manager.on_llm_new_token("", chunk=chunk)
        yield chunk


def call(name: str, call_id: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def script(tool_rounds: int = 2, calls_per_round: int = 2) -> list[AIMessage]:
    """Replies: `tool_rounds` rounds of tool calls, then a plain answer."""
    replies = [
        AIMessage("", id=f"ai-{r}", tool_calls=[
            call("add", f"call-{r}-{i}", a=r, b=i) for i in range(calls_per_round)])
        for r in range(tool_rounds)]
    return [*replies, AIMessage("the answer is here", id="ai-final")]


def model(replies: list[AIMessage] | None = None) -> ToolCallingModel:
    return ToolCallingModel(messages=iter(replies if replies is not None else script()))


@tool
def add(a: int, b: int) -> int:
    """Adds two numbers."""
    return a + b


def react_agent(**kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its deprecation notice
        return langgraph_create_react_agent(model(kwargs.pop("replies", None)), [add],
                                            **kwargs)


def langchain_agent(**kwargs: Any) -> Any:
    return create_agent(model(kwargs.pop("replies", None)), [add], **kwargs)


AGENTS = {"create_react_agent": react_agent, "create_agent": langchain_agent}
INPUT = {"messages": [HumanMessage("what is 1 + 2?", id="human-1")]}


def both(build: Any, **kwargs: Any) -> tuple[Any, Any]:
    """The graph as LangGraph runs it, and adapted (each with a model of its own)."""
    oracle = build(**kwargs)
    adapted = ferrograph.adapt(build(**kwargs))
    assert isinstance(adapted, CompiledStateGraph)
    return oracle, adapted


def ordered_by_step(items: list[Any]) -> list[Any]:
    """Stream items with those of one superstep (parallel tool tasks end in any order)
    sorted: `messages` items by their metadata's step."""
    steps: dict[Any, list[Any]] = {}
    for item in items:
        steps.setdefault(item[1]["langgraph_step"], []).append(item)
    return [sorted(normalise(chunk), key=sort_key) for _, chunk in sorted(steps.items())]


@pytest.mark.parametrize("agent", AGENTS)
def test_agent_final_state_matches(agent: str) -> None:
    oracle, adapted = both(AGENTS[agent])
    assert normalise(adapted.invoke(INPUT)) == normalise(oracle.invoke(INPUT))


@pytest.mark.parametrize("agent", AGENTS)
def test_agent_async_final_state_matches(agent: str) -> None:
    oracle, adapted = both(AGENTS[agent])
    assert normalise(asyncio.run(adapted.ainvoke(INPUT))) == \
        normalise(asyncio.run(oracle.ainvoke(INPUT)))


@pytest.mark.parametrize("agent", AGENTS)
@pytest.mark.parametrize("mode", ["values", "updates", "tools", ["updates", "tools"]])
def test_agent_stream_matches(agent: str, mode: Any) -> None:
    oracle, adapted = both(AGENTS[agent], replies=script(tool_rounds=2, calls_per_round=1))
    ours, our_error = drain(adapted.stream(INPUT, stream_mode=mode))
    theirs, their_error = drain(oracle.stream(INPUT, stream_mode=mode))
    assert (our_error, normalise(ours)) == (their_error, normalise(theirs))


@pytest.mark.parametrize("agent", AGENTS)
def test_agent_parallel_tool_updates_match(agent: str) -> None:
    """Two tool calls a round: the tool node's two tasks end in either order."""
    oracle, adapted = both(AGENTS[agent])
    ours = list(adapted.stream(INPUT, stream_mode="updates"))
    theirs = list(oracle.stream(INPUT, stream_mode="updates"))
    assert sorted(normalise(ours), key=sort_key) == sorted(normalise(theirs), key=sort_key)
    assert [next(iter(u)) for u in ours] == [next(iter(u)) for u in theirs]


@pytest.mark.parametrize("agent", AGENTS)
def test_agent_messages_stream_matches(agent: str) -> None:
    oracle, adapted = both(AGENTS[agent])
    ours = list(adapted.stream(INPUT, stream_mode="messages"))
    theirs = list(oracle.stream(INPUT, stream_mode="messages"))
    assert ordered_by_step(ours) == ordered_by_step(theirs)


@pytest.mark.parametrize("agent", AGENTS)
def test_agent_tokens_of_one_node(agent: str) -> None:
    """`nodes=[...]` (ferrograph's filter) streams the model node's tokens alone: those
    LangGraph streams for that node."""
    node = "agent" if agent == "create_react_agent" else "model"
    oracle, adapted = both(AGENTS[agent])
    ours = list(adapted.stream(INPUT, stream_mode="messages", nodes=[node]))
    theirs = [item for item in oracle.stream(INPUT, stream_mode="messages")
              if item[1]["langgraph_node"] == node]
    assert ours and normalise(ours) == normalise(theirs)
    assert "".join(chunk.content for chunk, _ in ours) == "the answer is here"


async def astreamed(graph: Any, **kwargs: Any) -> list[Any]:
    return [item async for item in graph.astream(INPUT, stream_mode="messages", **kwargs)]


@pytest.mark.parametrize("agent", AGENTS)
def test_agent_async_messages_match(agent: str) -> None:
    """`astream` in `messages` mode: every node's items, and one node's with `nodes=`."""
    node = "agent" if agent == "create_react_agent" else "model"
    oracle, adapted = both(AGENTS[agent])
    assert ordered_by_step(asyncio.run(astreamed(adapted))) == \
        ordered_by_step(asyncio.run(astreamed(oracle)))
    oracle, adapted = both(AGENTS[agent])
    ours = asyncio.run(astreamed(adapted, nodes=[node]))
    theirs = [item for item in asyncio.run(astreamed(oracle))
              if item[1]["langgraph_node"] == node]
    assert ours and normalise(ours) == normalise(theirs)


def test_create_react_agent_of_ferrograph_prebuilt_runs_on_ferrograph() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = create_react_agent(model(), [add])
    assert isinstance(ours, CompiledStateGraph)
    assert normalise(ours.invoke(INPUT)) == normalise(react_agent().invoke(INPUT))


def plain(value: Any) -> Any:
    """`normalise(value)` with interrupt ids left out: they hash the task's namespace, whose
    task id derives from a time-based checkpoint id."""
    value = normalise(value)
    if isinstance(value, dict):
        if value.get("__dataclass__") == "Interrupt":
            return {k: v for k, v in value.items() if k != "id"}
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value


def _hitl_agent(checkpointer: Any) -> Any:
    return create_agent(model(script(tool_rounds=1, calls_per_round=1)), [add],
                        checkpointer=checkpointer,
                        middleware=[HumanInTheLoopMiddleware({"add": True}),
                                    ModelCallLimitMiddleware(run_limit=5)])


def test_agent_interrupt_get_state_and_resume_match() -> None:
    """A human-in-the-loop agent pauses before its tool call; the thread's state, and the
    run resumed with an approval, are LangGraph's."""
    config = {"configurable": {"thread_id": "t"}}
    oracle = _hitl_agent(InMemorySaver())
    adapted = ferrograph.adapt(_hitl_agent(InMemorySaver()))
    ours = adapted.invoke(INPUT, config)
    theirs = oracle.invoke(INPUT, config)
    assert "__interrupt__" in theirs
    assert plain(ours) == plain(theirs)
    our_state, their_state = adapted.get_state(config), oracle.get_state(config)
    assert plain(our_state.values) == plain(their_state.values)
    assert our_state.next == their_state.next
    assert plain(our_state.interrupts) == plain(their_state.interrupts)
    answer = {"decisions": [{"type": "approve"}]}
    ours = list(adapted.stream(Command(resume=answer), config, stream_mode="updates"))
    theirs = list(oracle.stream(LangGraphCommand(resume=answer), config,
                                stream_mode="updates"))
    assert plain(ours) == plain(theirs)
    assert plain(adapted.get_state(config).values) == \
        plain(oracle.get_state(config).values)


@dataclass
class Context:
    user: str


def test_react_agent_breakpoint_and_history_match() -> None:
    """`create_react_agent(checkpointer=..., interrupt_before=["tools"])`: the run stops
    before each tool step; the thread's state and history are LangGraph's."""
    config = {"configurable": {"thread_id": "t"}}
    oracle, adapted = both(lambda: react_agent(  # a saver each
        checkpointer=InMemorySaver(), interrupt_before=["tools"],
        replies=script(tool_rounds=2, calls_per_round=1)))
    for run_input in (INPUT, None, None):
        assert plain(adapted.invoke(run_input, config)) == plain(oracle.invoke(run_input, config))
        ours, theirs = adapted.get_state(config), oracle.get_state(config)
        assert plain(ours.values) == plain(theirs.values)
        assert ours.next == theirs.next
        assert plain(ours.metadata) == plain(theirs.metadata)
    assert [s.next for s in adapted.get_state_history(config)] == \
        [s.next for s in oracle.get_state_history(config)]


def test_agent_with_context_and_store_matches() -> None:
    """A tool reading the run's context and store through `ToolRuntime`."""
    @tool
    def whoami(runtime: ToolRuntime) -> str:
        """Says who the user is."""
        item = runtime.store.get(("users",), runtime.context.user)
        info = runtime.execution_info
        return f"{item.value['name']} ({runtime.tool_call_id}, {info.node_attempt})"

    def build() -> Any:
        store = InMemoryStore()
        store.put(("users",), "u1", {"name": "Ada"})
        replies = [AIMessage("", id="ai-0", tool_calls=[call("whoami", "c-1")]),
                   AIMessage("done", id="ai-1")]
        return create_agent(model(replies), [whoami], context_schema=Context, store=store)

    ours = ferrograph.adapt(build()).invoke(INPUT, context=Context("u1"))
    theirs = build().invoke(INPUT, context=Context("u1"))
    assert normalise(ours) == normalise(theirs)
    assert ours["messages"][2].content == "Ada (c-1, 1)"


class Answer(BaseModel):
    value: int


def call_limited_agent() -> Any:
    """The model call limit ends the run through `jump_to` (an `EphemeralValue` key)."""
    return create_agent(model(script(tool_rounds=4, calls_per_round=1)), [add],
                        middleware=[ModelCallLimitMiddleware(run_limit=2, exit_behavior="end")])


def tool_limited_agent() -> Any:
    return create_agent(model(script(tool_rounds=3, calls_per_round=2)), [add],
                        middleware=[ToolCallLimitMiddleware(run_limit=3)])


def structured_agent() -> Any:
    replies = [AIMessage("", id="a0", tool_calls=[call("add", "c0", a=1, b=2)]),
               AIMessage("", id="a1", tool_calls=[call("Answer", "c1", value=3)])]
    return create_agent(model(replies), [add], response_format=ToolStrategy(Answer))


MIDDLEWARE_AGENTS = {"call limit": call_limited_agent, "tool limit": tool_limited_agent,
                     "structured output": structured_agent}


@pytest.mark.parametrize("agent", MIDDLEWARE_AGENTS)
@pytest.mark.parametrize("mode", ["values", "updates"])
def test_middleware_agent_matches(agent: str, mode: str) -> None:
    oracle, adapted = both(MIDDLEWARE_AGENTS[agent])
    ours, our_error = drain(adapted.stream(INPUT, stream_mode=mode))
    theirs, their_error = drain(oracle.stream(INPUT, stream_mode=mode))
    assert our_error == their_error
    assert sorted(normalise(ours), key=sort_key) == sorted(normalise(theirs), key=sort_key)
    if mode == "values":
        assert normalise(ours[-1]) == normalise(theirs[-1])


# --------------------------------------------------------------------------- user graphs


class Fan(TypedDict):
    items: list[str]
    results: Annotated[list[str], operator.add]
    note: str


def user_graph(checkpointer: Any = None, compiled: bool = True) -> Any:
    """A LangGraph graph with a conditional edge and its path map, `Send`s, a `Command`
    with goto, a waiting edge, a deferred node, a retry policy and a subgraph."""

    class Inner(TypedDict):
        results: Annotated[list[str], operator.add]

    inner = LangGraphStateGraph(Inner)
    inner.add_node("inner", lambda s: {"results": ["inner"]})
    inner.add_edge(START, "inner")

    def fan_out(state: Fan) -> list[LangGraphSend]:
        return [LangGraphSend("work", {"items": [i], "results": [], "note": ""})
                for i in state["items"]]

    def work(state: Fan) -> dict[str, Any]:
        return {"results": [state["items"][0].upper()]}

    def route(state: Fan) -> str:
        return "many" if len(state["items"]) > 1 else "few"

    def decide(state: Fan) -> LangGraphCommand:
        return LangGraphCommand(update={"note": "decided"}, goto="sub")

    builder = LangGraphStateGraph(Fan)
    builder.add_node("start", lambda s: {"note": "started"},
                     retry_policy=LangGraphRetryPolicy(max_attempts=2))
    builder.add_node("work", work)
    builder.add_node("decide", decide, destinations=("sub",))
    builder.add_node("sub", inner.compile())
    builder.add_node("other", lambda s: {"results": ["other"]})
    builder.add_node("last", lambda s: {"note": "last"}, defer=True)
    builder.add_edge(START, "start")
    builder.add_conditional_edges("start", route, {"many": "decide", "few": END})
    builder.add_conditional_edges("start", fan_out, ["work"])
    builder.add_edge("start", "other")
    builder.add_edge(["sub", "other"], "last")
    builder.add_edge("last", END)
    if not compiled:
        return builder
    return builder.compile(checkpointer=checkpointer, name="fan")


@pytest.mark.parametrize("mode", ["values", "updates", "debug"])
def test_user_graph_matches(mode: str) -> None:
    value = {"items": ["a", "b"], "results": [], "note": ""}
    ours = list(ferrograph.adapt(user_graph()).stream(value, stream_mode=mode))
    theirs = list(user_graph().stream(value, stream_mode=mode))
    key = (lambda items: normalise(items)) if mode == "values" else \
        (lambda items: sorted(normalise(items), key=sort_key))
    assert key(ours) == key(theirs)


@pytest.mark.parametrize("mode", ["values", "updates"])
def test_user_graph_subgraph_items_match(mode: str) -> None:
    """The subgraph node, adapted in turn, streams its items under LangGraph's namespaces."""
    value = {"items": ["a", "b"], "results": [], "note": ""}
    ours = list(ferrograph.adapt(user_graph()).stream(value, stream_mode=mode, subgraphs=True))
    theirs = list(user_graph().stream(value, stream_mode=mode, subgraphs=True))
    assert sorted(normalise(ours), key=sort_key) == sorted(normalise(theirs), key=sort_key)
    assert any(namespace for namespace, _ in ours)


def test_user_graph_builder_adapts_to_a_builder() -> None:
    builder = ferrograph.adapt(user_graph(compiled=False))
    value = {"items": ["a"], "results": [], "note": ""}
    graph = builder.compile(name="fan")
    assert normalise(graph.invoke(value)) == normalise(user_graph().invoke(value))
    assert graph.name == "fan"


def test_user_graph_drawing_and_schemas_match() -> None:
    ours, theirs = ferrograph.adapt(user_graph()), user_graph()
    assert ours.get_graph().draw_mermaid() == theirs.get_graph().draw_mermaid()
    assert ours.get_graph(xray=True).draw_mermaid() == \
        theirs.get_graph(xray=True).draw_mermaid()
    assert ours.get_input_jsonschema() == theirs.get_input_jsonschema()
    assert ours.get_output_jsonschema() == theirs.get_output_jsonschema()


def test_user_graph_breakpoint_and_history_match() -> None:
    config = {"configurable": {"thread_id": "1"}}
    value = {"items": ["a", "b"], "results": [], "note": ""}
    ours = ferrograph.adapt(
        user_graph().builder.compile(checkpointer=InMemorySaver(), interrupt_before=["sub"]))
    theirs = user_graph().builder.compile(checkpointer=InMemorySaver(),
                                          interrupt_before=["sub"])
    assert normalise(ours.invoke(value, config)) == normalise(theirs.invoke(value, config))
    assert ours.get_state(config).next == theirs.get_state(config).next == ("sub",)
    assert normalise(ours.invoke(None, config)) == normalise(theirs.invoke(None, config))
    assert len(list(ours.get_state_history(config))) == \
        len(list(theirs.get_state_history(config)))


# --------------------------------------------------------------------------- refused


def test_unsupported_channel_is_refused_by_name() -> None:
    class State(TypedDict):
        log: Annotated[list[str], Topic(str, accumulate=True)]

    builder = LangGraphStateGraph(State)
    builder.add_node("a", lambda s: {"log": "x"})
    builder.add_edge(START, "a")
    with pytest.raises(ferrograph.UntranslatableGraphError, match="Topic.*'log'"):
        ferrograph.adapt(builder.compile())


def test_hand_built_pregel_is_refused() -> None:
    from langgraph.channels import LastValue
    from langgraph.pregel import NodeBuilder, Pregel

    node = NodeBuilder().subscribe_only("a").do(lambda x: x).write_to("b")
    app = Pregel(nodes={"one": node}, channels={"a": LastValue(str), "b": LastValue(str)},
                 input_channels="a", output_channels="b")
    with pytest.raises(ferrograph.UntranslatableGraphError, match="Pregel built by hand"):
        ferrograph.adapt(app)


def test_functional_api_is_refused() -> None:
    from langgraph.func import entrypoint

    @entrypoint()
    def workflow(x: int) -> int:
        return x

    with pytest.raises(ferrograph.UntranslatableGraphError, match="entrypoint"):
        ferrograph.adapt(workflow)


def test_not_a_graph_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="LangGraph StateGraph"):
        ferrograph.adapt(object())


class Asked(TypedDict):
    question: str
    answer: str


def asking_graph() -> Any:
    """A user's LangGraph graph whose node calls LangGraph's `interrupt()` and is given its
    `config`, `writer` and `runtime` by name."""
    from langgraph.types import interrupt

    def ask(state: Asked, config, writer, runtime) -> dict[str, Any]:
        writer({"asking": state["question"], "thread": config["configurable"]["thread_id"]})
        answer = interrupt(state["question"])
        return {"answer": f"{answer} ({runtime.execution_info.node_attempt})"}

    builder = LangGraphStateGraph(Asked)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    return builder.compile(checkpointer=InMemorySaver())


def test_user_graph_interrupt_in_node_matches() -> None:
    config = {"configurable": {"thread_id": "t"}}
    ours, theirs = ferrograph.adapt(asking_graph()), asking_graph()
    value = {"question": "why?", "answer": ""}
    first = [plain(list(g.stream(value, config, stream_mode=["custom", "updates"])))
             for g in (ours, theirs)]
    assert first[0] == first[1]
    assert plain(ours.get_state(config).interrupts) == plain(theirs.get_state(config).interrupts)
    assert ours.invoke(Command(resume="because"), config) == \
        theirs.invoke(LangGraphCommand(resume="because"), config) == \
        {"question": "why?", "answer": "because (1)"}


class Flagged(TypedDict):
    flag: Annotated[str | None, EphemeralValue]
    log: Annotated[list[str], operator.add]


def flagged_graph(lib: Any) -> Any:
    """`flag` (an `EphemeralValue` key) is written by `a` only: `b` sees it, `c` (a step
    later) does not; a checkpoint after `c`'s step holds no `flag`."""
    builder = lib.StateGraph(Flagged)
    builder.add_node("a", lambda s: {"flag": "up", "log": ["a"]})
    builder.add_node("b", lambda s: {"log": [f"b:{s.get('flag')}"]})
    builder.add_node("c", lambda s: {"log": [f"c:{s.get('flag')}"]})
    builder.add_edge(lib.START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", "c")
    return builder


def test_ephemeral_value_key_matches(candidate: Any, oracle: Any) -> None:
    config = {"configurable": {"thread_id": "t"}}
    runs = {}
    for lib in (candidate, oracle):
        graph = flagged_graph(lib).compile(checkpointer=InMemorySaver())
        items = list(graph.stream({"log": []}, config, stream_mode="values"))
        runs[lib.name] = (items, graph.get_state(config).values,
                          [s.values for s in graph.get_state_history(config)])
    assert runs[candidate.name] == runs[oracle.name]
    assert runs[candidate.name][0][-1] == {"log": ["a", "b:up", "c:None"]}
    adapted = ferrograph.adapt(flagged_graph(oracle).compile())
    assert adapted.invoke({"log": []}) == {"log": ["a", "b:up", "c:None"]}


def test_langgraph_overwrite_matches() -> None:
    """A node returning LangGraph's `Overwrite` for a reducer key replaces its value."""
    from langgraph.types import Overwrite

    class Log(TypedDict):
        log: Annotated[list[str], operator.add]

    def build() -> Any:
        builder = LangGraphStateGraph(Log)
        builder.add_node("a", lambda s: {"log": ["a"]})
        builder.add_node("b", lambda s: {"log": Overwrite(["b only"])})
        builder.add_edge(START, "a")
        builder.add_edge("a", "b")
        return builder.compile()

    value = {"log": ["input"]}
    assert ferrograph.adapt(build()).invoke(value) == build().invoke(value) == \
        {"log": ["b only"]}
    assert list(ferrograph.adapt(build()).stream(value, stream_mode="values")) == \
        list(build().stream(value, stream_mode="values"))


def test_subgraph_command_to_parent_matches() -> None:
    """A node of an adapted subgraph returns LangGraph's `Command(graph=PARENT, ...)`."""

    class Log(TypedDict):
        log: Annotated[list[str], operator.add]

    def build() -> Any:
        inner = LangGraphStateGraph(Log)
        inner.add_node("hop", lambda s: LangGraphCommand(
            graph=LangGraphCommand.PARENT, goto="target", update={"log": ["hop"]}))
        inner.add_edge(START, "hop")
        outer = LangGraphStateGraph(Log)
        outer.add_node("sub", inner.compile(), destinations=("target",))
        outer.add_node("target", lambda s: {"log": ["target"]})
        outer.add_edge(START, "sub")
        return outer.compile()

    for mode in ("updates", "values"):
        assert list(ferrograph.adapt(build()).stream({"log": []}, stream_mode=mode)) == \
            list(build().stream({"log": []}, stream_mode=mode))
    assert ferrograph.adapt(build()).invoke({"log": []}) == {"log": ["hop", "target"]}


def _failing_graph(defaults: bool) -> Any:
    """A node that fails, handled by an error handler given LangGraph's `NodeError` (its
    own, or the builder's default with a retry policy)."""
    from langgraph.errors import NodeError

    class Log(TypedDict):
        log: Annotated[list[str], operator.add]

    def boom(state: Log) -> dict[str, Any]:
        raise ValueError("boom")

    def handler(state: Log, error: NodeError) -> dict[str, Any]:
        return {"log": [f"handled {error.node}: {type(error.error).__name__} {error.error}"]}

    builder = LangGraphStateGraph(Log)
    if defaults:
        builder.set_node_defaults(error_handler=handler, retry_policy=LangGraphRetryPolicy(
            max_attempts=2, initial_interval=0.01, jitter=False, retry_on=ValueError))
        builder.add_node("boom", boom)
    else:
        builder.add_node("boom", boom, error_handler=handler)
    builder.add_node("after", lambda s: {"log": ["after"]})
    builder.add_edge(START, "boom")
    builder.add_edge("boom", "after")
    return builder


@pytest.mark.parametrize("defaults", [False, True])
@pytest.mark.parametrize("adapted", ["compiled", "builder"])
def test_error_handler_matches(defaults: bool, adapted: str) -> None:
    ours = (ferrograph.adapt(_failing_graph(defaults).compile()) if adapted == "compiled"
            else ferrograph.adapt(_failing_graph(defaults)).compile())
    theirs = _failing_graph(defaults).compile()
    value = {"log": []}
    assert list(ours.stream(value, stream_mode="updates")) == \
        list(theirs.stream(value, stream_mode="updates"))
    assert ours.invoke(value) == theirs.invoke(value) == \
        {"log": ["handled boom: ValueError boom"]}


class Counter(TypedDict):
    x: int


def test_timeouts_carried_over() -> None:
    """A timed async node times out on ferrograph as on LangGraph; a timed sync node of a
    builder is refused as LangGraph's compile refuses it."""

    async def stuck(state: Counter) -> dict[str, Any]:
        await asyncio.Event().wait()  # never set: only the timeout ends it
        return {"x": 1}

    builder = LangGraphStateGraph(Counter)
    builder.add_node("stuck", stuck, timeout=0.05)
    builder.add_edge(START, "stuck")
    errors = []
    for graph in (builder.compile(), ferrograph.adapt(builder.compile())):
        with pytest.raises(Exception) as raised:
            asyncio.run(graph.ainvoke({"x": 0}))
        errors.append((type(raised.value).__name__, "exceeded its run timeout of 0.050s" in
                       str(raised.value)))
    assert errors[0] == errors[1] == ("NodeTimeoutError", True)

    sync_builder = LangGraphStateGraph(Counter)
    sync_builder.add_node("sync", lambda s: {"x": 2}, timeout=0.05)
    sync_builder.add_edge(START, "sync")
    with pytest.raises(ValueError, match="only supported for async nodes"):
        ferrograph.adapt(sync_builder)


def test_cache_policy_carried_over() -> None:
    from langgraph.cache.memory import InMemoryCache
    from langgraph.types import CachePolicy

    calls: list[str] = []

    def node(state: Counter) -> dict[str, Any]:
        calls.append("n")
        return {"x": state["x"] + 1}

    def build() -> Any:
        builder = LangGraphStateGraph(Counter)
        builder.add_node("n", node, cache_policy=CachePolicy())
        builder.add_edge(START, "n")
        return builder.compile(cache=InMemoryCache())

    runs = []
    for graph in (build(), ferrograph.adapt(build())):
        calls.clear()
        runs.append(([list(graph.stream({"x": 1}, stream_mode="updates")) for _ in range(2)],
                     len(calls)))
    assert runs[0] == runs[1]
    assert runs[1][0][1] == [{"n": {"x": 2}, "__metadata__": {"cached": True}}]
