"""LangGraph's prebuilt components (`ToolNode`, `tools_condition`, `InjectedState`,
`InjectedStore`, `ToolRuntime`) as nodes and edges of a ferrograph `StateGraph`, compared
with the same graph on LangGraph; and `ferrograph.prebuilt`'s names."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.prebuilt import InjectedState, InjectedStore, ToolNode, ToolRuntime, tools_condition
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command as LangGraphCommand
from langgraph.types import interrupt as langgraph_interrupt

import ferrograph.prebuilt
from tests.parity import Lib, drain, normalise, sort_key


@tool
def add(a: int, b: int) -> int:
    """Adds two numbers."""
    return a + b


@tool
def count_messages(state: Annotated[dict, InjectedState]) -> int:
    """How many messages the state holds."""
    return len(state["messages"])


@tool
def recall(key: str, store: Annotated[Any, InjectedStore()]) -> str:
    """Reads a remembered value."""
    return store.get(("memory",), key).value["text"]


@tool
def describe(runtime: ToolRuntime) -> str:
    """Describes the tool's runtime."""
    info = runtime.execution_info
    runtime.stream_writer({"tool": runtime.tool_call_id})
    return (f"{runtime.tool_call_id} {len(runtime.state['messages'])} {runtime.context} "
            f"{info.node_attempt} {info.checkpoint_ns.startswith('tools:')} "
            f"{runtime.store is not None}")


@tool
def jump(where: str, runtime: ToolRuntime) -> LangGraphCommand:
    """Answers and sends the graph elsewhere."""
    return LangGraphCommand(
        update={"messages": [ToolMessage("jumped", tool_call_id=runtime.tool_call_id)]},
        goto=where)


@tool
def ask(question: str) -> str:
    """Asks the human."""
    return f"human says {langgraph_interrupt(question)}"


def call(name: str, call_id: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def scripted_agent(*calls: dict[str, Any]) -> Any:
    """An agent node: the tool calls first, then (once tools answered) a final answer."""

    def agent(state: Any) -> dict[str, Any]:
        if isinstance(state["messages"][-1], HumanMessage):
            return {"messages": [AIMessage("", id="ai-1", tool_calls=list(calls))]}
        return {"messages": [AIMessage("done", id="ai-2")]}

    return agent


def tool_graph(lib: Lib, tools: list[Any], *calls: dict[str, Any], **compile: Any) -> Any:
    builder = lib.StateGraph(lib.MessagesState)
    builder.add_node("agent", scripted_agent(*calls))
    builder.add_node("tools", ToolNode(tools))
    builder.add_node("elsewhere", lambda state: {"messages": [AIMessage("there", id="ai-3")]})
    builder.add_edge(lib.START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    builder.add_edge("elsewhere", lib.END)
    return builder.compile(**compile)


INPUT = {"messages": [HumanMessage("hi", id="human-1")]}
CASES = {
    "two calls": ([add], call("add", "c1", a=1, b=2), call("add", "c2", a=3, b=4)),
    "injected state": ([count_messages], call("count_messages", "c1")),
    "tool error": ([add], call("add", "c1", a="not a number", b=2)),
    "unknown tool": ([add], call("nope", "c1")),
    "command": ([jump], call("jump", "c1", where="elsewhere")),
}


def compare_streams(candidate: Lib, oracle: Lib, build: Any, mode: Any, **kwargs: Any) -> None:
    ours, our_error = drain(build(candidate).stream(INPUT, stream_mode=mode, **kwargs))
    theirs, their_error = drain(build(oracle).stream(INPUT, stream_mode=mode, **kwargs))
    assert our_error == their_error
    assert sorted(normalise(ours), key=sort_key) == sorted(normalise(theirs), key=sort_key)
    assert len(ours) == len(theirs)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("mode", ["values", "updates"])
def test_tool_node_matches(candidate: Lib, oracle: Lib, case: str, mode: str) -> None:
    tools, *calls = CASES[case]
    compare_streams(candidate, oracle, lambda lib: tool_graph(lib, tools, *calls), mode)


@pytest.mark.parametrize("case", CASES)
def test_tool_node_async_matches(candidate: Lib, oracle: Lib, case: str) -> None:
    tools, *calls = CASES[case]
    ours = asyncio.run(tool_graph(candidate, tools, *calls).ainvoke(INPUT))
    theirs = asyncio.run(tool_graph(oracle, tools, *calls).ainvoke(INPUT))
    assert normalise(ours) == normalise(theirs)


def test_injected_store_matches(candidate: Lib, oracle: Lib) -> None:
    def build(lib: Lib) -> Any:
        store = InMemoryStore()
        store.put(("memory",), "k", {"text": "remembered"})
        return tool_graph(lib, [recall], call("recall", "c1", key="k"), store=store)

    ours, theirs = build(candidate).invoke(INPUT), build(oracle).invoke(INPUT)
    assert normalise(ours) == normalise(theirs)
    assert ours["messages"][2].content == "remembered"


def test_tool_runtime_matches(candidate: Lib, oracle: Lib) -> None:
    """`ToolRuntime`: state, tool call id, context, store, execution info, writer."""

    def build(lib: Lib) -> Any:
        return tool_graph(lib, [describe], call("describe", "c1"), store=InMemoryStore())

    for mode in (["custom", "updates"], "values"):
        ours = list(build(candidate).stream(INPUT, stream_mode=mode, context="ctx"))
        theirs = list(build(oracle).stream(INPUT, stream_mode=mode, context="ctx"))
        assert normalise(ours) == normalise(theirs)
    final = build(candidate).invoke(INPUT, context="ctx")
    assert final["messages"][2].content == "c1 2 ctx 1 True True"


def test_tool_calls_sent_one_by_one_read_the_state(candidate: Lib, oracle: Lib) -> None:
    """A router `Send`s each tool call to the `ToolNode` alone (as `create_agent` does): the
    node reads the graph's state for the tools that inject it."""
    from langgraph.types import Send

    def build(lib: Lib) -> Any:
        builder = lib.StateGraph(lib.MessagesState)
        builder.add_node("agent", scripted_agent(call("count_messages", "c1"),
                                                 call("add", "c2", a=1, b=1)))
        builder.add_node("tools", ToolNode([count_messages, add]))

        def send_calls(state: Any) -> Any:
            last = state["messages"][-1]
            if not getattr(last, "tool_calls", None):
                return lib.END
            return [Send("tools", [c]) for c in last.tool_calls]

        builder.add_edge(lib.START, "agent")
        builder.add_conditional_edges("agent", send_calls, ["tools", lib.END])
        builder.add_edge("tools", "agent")
        return builder.compile()

    ours = build(candidate).invoke(INPUT)
    theirs = build(oracle).invoke(INPUT)
    assert sorted(normalise(ours["messages"]), key=sort_key) == \
        sorted(normalise(theirs["messages"]), key=sort_key)
    assert {m.content for m in ours["messages"] if isinstance(m, ToolMessage)} == {"2"}
    assert len(asyncio.run(build(candidate).ainvoke(INPUT))["messages"]) == \
        len(theirs["messages"])


def test_tool_interrupt_and_resume_match(candidate: Lib, oracle: Lib) -> None:
    """A tool calling LangGraph's `interrupt()` inside the `ToolNode` of a ferrograph
    graph pauses the thread; resuming answers it."""
    config = {"configurable": {"thread_id": "t"}}
    results = {}
    for lib in (candidate, oracle):
        graph = tool_graph(lib, [ask], call("ask", "c1", question="ok?"),
                           checkpointer=InMemorySaver())
        first = graph.invoke(INPUT, config)
        state = graph.get_state(config)
        resumed = graph.invoke(lib.Command(resume="yes"), config)
        results[lib.name] = (
            [i.value for i in first["__interrupt__"]], state.next,
            [i.value for i in state.interrupts], normalise(resumed))
    assert results[candidate.name] == results[oracle.name]
    assert results[candidate.name][0] == ["ok?"]


def test_prebuilt_names_are_langgraph_objects() -> None:
    import langgraph.prebuilt as langgraph_prebuilt

    for name in ("ToolNode", "tools_condition", "InjectedState", "InjectedStore",
                 "ToolRuntime", "ValidationNode"):
        assert getattr(ferrograph.prebuilt, name) is getattr(langgraph_prebuilt, name)
    assert callable(ferrograph.prebuilt.create_react_agent)
    from langgraph.prebuilt import chat_agent_executor, tool_node

    from ferrograph.prebuilt import chat_agent_executor as our_executor
    from ferrograph.prebuilt import tool_node as our_tool_node

    for name in our_tool_node.__all__:
        assert getattr(our_tool_node, name) is getattr(tool_node, name)
    assert our_executor.AgentState is chat_agent_executor.AgentState
    assert our_executor.create_react_agent is ferrograph.prebuilt.create_react_agent
    with pytest.raises(AttributeError):
        ferrograph.prebuilt.no_such_name  # noqa: B018
