"""`ainvoke` / `astream`: the same items as LangGraph, from sync and async nodes and from
async chat models, and the producer-side filter works there too."""

from __future__ import annotations

import asyncio
import itertools
import operator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from tests.parity import Lib, load


class S(TypedDict):
    out: Annotated[list, operator.add]


def model(text: str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=itertools.cycle([AIMessage(content=text)]))


def build(lib: Lib) -> Any:
    m_invoke, m_stream, m_sync = model("a b c"), model("x y"), model("s t")

    async def awaits_ainvoke(state: S):
        return {"out": [(await m_invoke.ainvoke("q")).content]}

    async def iterates_astream(state: S):
        return {"out": ["".join([c.content async for c in m_stream.astream("q")])]}

    def plain_sync(state: S):
        return {"out": [m_sync.invoke("q").content]}

    b = lib.StateGraph(S)
    for fn in (awaits_ainvoke, iterates_astream, plain_sync):
        b.add_node(fn)
        b.add_edge(lib.START, fn.__name__)
    return b.compile()


async def collect(graph: Any, **kwargs: Any) -> list[Any]:
    return [item async for item in graph.astream({"out": []}, **kwargs)]


def messages(items: list[Any]) -> list[tuple[str, str]]:
    return sorted((m.content, md["langgraph_node"]) for m, md in items)


@pytest.mark.parametrize("impl", ["ferrograph", "langgraph"])
def test_ainvoke_result(impl: str):
    result = asyncio.run(build(load(impl)).ainvoke({"out": []}))
    assert result == {"out": ["a b c", "x y", "s t"]}


def test_astream_messages_match_langgraph():
    fg = asyncio.run(collect(build(load("ferrograph")), stream_mode="messages"))
    lg = asyncio.run(collect(build(load("langgraph")), stream_mode="messages"))
    assert messages(fg) == messages(lg)
    assert {node for _, node in messages(fg)} == {"awaits_ainvoke", "iterates_astream",
                                                  "plain_sync"}


def test_astream_updates_and_values_match_langgraph():
    def canonical(items: list[Any]) -> list[str]:
        return sorted(repr(i) for i in items)

    modes = ["updates", "values"]
    fg = asyncio.run(collect(build(load("ferrograph")), stream_mode=modes))
    lg = asyncio.run(collect(build(load("langgraph")), stream_mode=modes))
    assert canonical(fg) == canonical(lg)


def test_astream_nodes_filter():
    items = asyncio.run(collect(build(load("ferrograph")), stream_mode="messages",
                                nodes=["iterates_astream"]))
    assert "".join(m.content for m, _ in items) == "x y"
    assert {md["langgraph_node"] for _, md in items} == {"iterates_astream"}


def test_astream_sync_and_async_paths_agree():
    graph = build(load("ferrograph"))
    sync_items = messages(list(graph.stream({"out": []}, stream_mode="messages")))
    async_items = messages(asyncio.run(collect(graph, stream_mode="messages")))
    assert sync_items == async_items


def test_astream_node_error_reaches_the_awaiting_caller():
    lib = load("ferrograph")
    error = RuntimeError("async boom")

    async def fails(state: S):
        raise error

    b = lib.StateGraph(S)
    b.add_node("fails", fails)
    b.add_edge(lib.START, "fails")
    with pytest.raises(RuntimeError) as caught:
        asyncio.run(collect(b.compile(), stream_mode="updates"))
    assert caught.value is error
