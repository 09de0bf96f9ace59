"""Token streaming on threads: after a resume, `stream(..., stream_mode="messages",
nodes=[...])` streams only the chosen node's tokens, and the model in the node nobody
listens to is not asked to stream (the real `ChatOpenAI` against the embedded server, which
records whether each request asked for a stream). `messages` metadata carries the thread,
as LangGraph's does."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.memory import InMemorySaver

from ferrograph.graph import START, StateGraph
from ferrograph.local_openai import LocalOpenAIServer
from ferrograph.types import Command, interrupt


class Drafts(TypedDict, total=False):
    topic: str
    joke: str
    poem: str
    log: Annotated[list, operator.add]


def approval_then_two_writers(server: LocalOpenAIServer) -> Any:
    model = server.chat_model()

    def approve(state: Drafts) -> dict[str, Any]:
        return {"log": [f"approved:{interrupt('write both?')}"]}

    def write_joke(state: Drafts) -> dict[str, Any]:
        return {"joke": model.invoke([{"role": "user", "content": "joke"}]).content}

    def write_poem(state: Drafts) -> dict[str, Any]:
        return {"poem": model.invoke([{"role": "user", "content": "poem"}]).content}

    return (StateGraph(Drafts)
            .add_node("approve", approve)
            .add_node("write_joke", write_joke)
            .add_node("write_poem", write_poem)
            .add_edge(START, "approve")
            .add_edge("approve", "write_joke")
            .add_edge("approve", "write_poem")
            .compile(checkpointer=InMemorySaver()))


def test_a_resumed_thread_streams_only_the_chosen_nodes_tokens():
    with LocalOpenAIServer(reply="one two three four") as server:
        graph = approval_then_two_writers(server)
        config = {"configurable": {"thread_id": "drafts"}}
        paused = graph.invoke({"topic": "cats"}, config)
        assert [i.value for i in paused["__interrupt__"]] == ["write both?"]
        assert server.requests == []

        items = list(graph.stream(Command(resume="yes"), config, stream_mode="messages",
                                  nodes=["write_poem"]))
        assert items, "the chosen node's tokens stream"
        assert {meta["langgraph_node"] for _, meta in items} == {"write_poem"}
        assert "".join(chunk.content for chunk, _ in items) == "one two three four"
        for _, meta in items:
            assert meta["thread_id"] == "drafts"
            assert meta["langgraph_checkpoint_ns"].startswith("write_poem:")
        # Both models answered; only the listened-to one was asked to stream.
        assert sorted(r.stream for r in server.requests) == [False, True]
        state = graph.get_state(config)
        assert state.next == ()
        assert state.values["joke"] == state.values["poem"] == "one two three four"
