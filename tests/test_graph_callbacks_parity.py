"""Graph lifecycle callbacks (`on_interrupt`, `on_resume`) compared with LangGraph's: which
events, with which status, namespace, interrupts and checkpoint, for `interrupt()`, for
breakpoints, sync and async; ferrograph's own `GraphCallbackHandler` and LangGraph's."""

from __future__ import annotations

import asyncio
from typing import Any, TypedDict

import langgraph.callbacks as lg_callbacks
import langgraph.graph as lg_graph
import langgraph.types as lg_types
import pytest
from langgraph.checkpoint.memory import InMemorySaver

import ferrograph.callbacks as fg_callbacks
import ferrograph.graph as fg_graph
import ferrograph.types as fg_types

LIBS = {"ferrograph": (fg_graph, fg_types), "langgraph": (lg_graph, lg_types)}


class S(TypedDict):
    answer: str | None


def recorder(base: type) -> Any:
    class Recorder(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            self.events: list[tuple[str, Any]] = []

        def on_interrupt(self, event: Any) -> None:
            self.events.append(("interrupt", event))

        def on_resume(self, event: Any) -> None:
            self.events.append(("resume", event))

    return Recorder()


def build(lib: str, breakpoint: str | None = None) -> Any:
    graph, types = LIBS[lib]

    def ask(state: S):
        return {"answer": types.interrupt("which?")}

    def after(state: S):
        return {"answer": f"{state['answer']}!"}

    b = graph.StateGraph(S)
    b.add_node("ask", ask)
    b.add_node("after", after)
    b.add_edge(graph.START, "ask")
    b.add_edge("ask", "after")
    kwargs = {breakpoint: ["after"]} if breakpoint else {}
    return b.compile(checkpointer=InMemorySaver(), **kwargs)


def summary(graph: Any, handler: Any, config: Any, checkpoint_before: str | None) -> list[Any]:
    """Each event as (kind, status, namespace, interrupt values, whether its checkpoint is
    the thread's newest, whether it is the one the run started from)."""
    newest = graph.get_state(config).config["configurable"]["checkpoint_id"]
    return [(kind, e.status, e.checkpoint_ns,
             tuple(i.value for i in getattr(e, "interrupts", ())),
             e.checkpoint_id == newest, e.checkpoint_id == checkpoint_before,
             e.run_id is not None)
            for kind, e in handler.events]


def scenario(lib: str, handler_base: type, breakpoint: str | None, use_async: bool) -> Any:
    graph, types = LIBS[lib]
    app = build(lib, breakpoint)
    handler = recorder(handler_base)
    config = {"configurable": {"thread_id": "t"}, "callbacks": [handler]}

    def run(input: Any) -> Any:
        if use_async:
            return asyncio.run(app.ainvoke(input, config))
        return app.invoke(input, config)

    out = []
    before = None
    for input in ({"answer": None}, types.Command(resume="owls"), None):
        handler.events.clear()
        result = run(input)
        out.append((summary(app, handler, config, before), result.get("answer")))
        before = app.get_state(config).config["configurable"]["checkpoint_id"]
    return out


@pytest.mark.parametrize("use_async", [False, True])
@pytest.mark.parametrize("breakpoint", [None, "interrupt_before", "interrupt_after"])
def test_lifecycle_events_match_langgraph(breakpoint: str | None, use_async: bool):
    ours = scenario("ferrograph", fg_callbacks.GraphCallbackHandler, breakpoint, use_async)
    theirs = scenario("langgraph", lg_callbacks.GraphCallbackHandler, breakpoint, use_async)
    assert ours == theirs
    assert ours[0][0][0][:4] == ("interrupt", "pending", (), ("which?",))


def test_langgraphs_handler_class_is_recognised():
    ours = scenario("ferrograph", lg_callbacks.GraphCallbackHandler, None, False)
    theirs = scenario("langgraph", lg_callbacks.GraphCallbackHandler, None, False)
    assert ours == theirs


def test_raising_handler_is_logged_unless_raise_error():
    class Raising(fg_callbacks.GraphCallbackHandler):
        def on_interrupt(self, event: Any) -> None:
            raise ValueError("boom")

    app = build("ferrograph")
    config = {"configurable": {"thread_id": "t"}, "callbacks": [Raising()]}
    assert "__interrupt__" in app.invoke({"answer": None}, config)

    loud = Raising()
    loud.raise_error = True
    config = {"configurable": {"thread_id": "u"}, "callbacks": [loud]}
    with pytest.raises(ValueError, match="boom"):
        app.invoke({"answer": None}, config)


def test_subgraph_pause_and_resume_events_match_langgraph():
    """The pause is the outer graph's; on resume, the subgraph reports its own resume too,
    under its namespace."""
    def run(lib: str, base: type) -> list[Any]:
        graph, types = LIBS[lib]

        def ask(state: S):
            return {"answer": types.interrupt("which?")}

        inner = graph.StateGraph(S)
        inner.add_node("ask", ask)
        inner.add_edge(graph.START, "ask")
        b = graph.StateGraph(S)
        b.add_node("sub", inner.compile())
        b.add_edge(graph.START, "sub")
        app = b.compile(checkpointer=InMemorySaver())
        handler = recorder(base)
        config = {"configurable": {"thread_id": "t"}, "callbacks": [handler]}
        out = []
        for input in ({"answer": None}, types.Command(resume="owls")):
            handler.events.clear()
            app.invoke(input, config)
            out.append([(kind, e.status, tuple(p.split(":")[0] for p in e.checkpoint_ns),
                         tuple(i.value for i in getattr(e, "interrupts", ())))
                        for kind, e in handler.events])
        return out

    ours = run("ferrograph", fg_callbacks.GraphCallbackHandler)
    assert ours == run("langgraph", lg_callbacks.GraphCallbackHandler)
    assert ours[1] == [("resume", "pending", (), ()), ("resume", "pending", ("sub",), ())]
