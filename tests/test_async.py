"""`ainvoke` / `astream`: the same items as LangGraph, from sync and async nodes and from
async chat models, and the producer-side filter works there too."""

from __future__ import annotations

import asyncio
import itertools
import operator
import threading
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from ferrograph.types import StreamWriter
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


def fan_out(lib: Lib, nodes: dict[str, Any]) -> Any:
    b = lib.StateGraph(S)
    for name, fn in nodes.items():
        b.add_node(name, fn)
        b.add_edge(lib.START, name)
    return b.compile()


def test_ainvoke_failing_async_node_cancels_its_async_siblings():
    lib = load("ferrograph")
    cancelled = asyncio.Event()
    error = ValueError("first to fail")

    async def slow(state: S):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {"out": ["slow"]}

    async def fails(state: S):
        await asyncio.sleep(0.01)
        raise error

    async def main() -> None:
        with pytest.raises(ValueError) as caught:
            await fan_out(lib, {"slow": slow, "fails": fails}).ainvoke({"out": []})
        assert caught.value is error
        await asyncio.wait_for(cancelled.wait(), 5)

    asyncio.run(main())


def test_cancelling_ainvoke_cancels_running_async_nodes():
    lib = load("ferrograph")
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def waits(state: S):
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {"out": ["never"]}

    async def main() -> None:
        graph = fan_out(lib, {"w1": waits, "w2": waits})
        call = asyncio.ensure_future(graph.ainvoke({"out": []}))
        await asyncio.wait_for(started.wait(), 5)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await asyncio.wait_for(cancelled.wait(), 5)

    asyncio.run(main())


@pytest.mark.parametrize(("branches", "max_concurrency"), [(1000, None), (40, 4)])
def test_ainvoke_runs_async_branches_at_once_unless_capped(branches: int,
                                                          max_concurrency: int | None):
    lib = load("ferrograph")
    running = peak = 0
    all_started = asyncio.Event()

    async def node(state: S):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if peak == branches:
            all_started.set()
        await asyncio.sleep(0.01)
        running -= 1
        return {"out": [1]}

    async def main() -> dict[str, Any]:
        graph = fan_out(lib, {f"b{i}": node for i in range(branches)})
        config = {"max_concurrency": max_concurrency} if max_concurrency else None
        return await graph.ainvoke({"out": []}, config)

    assert len(asyncio.run(main())["out"]) == branches
    assert peak == (max_concurrency or branches)


def test_ainvoke_matches_langgraph_with_async_subgraph_retry_and_routing():
    def build(lib: Lib) -> Any:
        attempts = {"n": 0}

        async def flaky(state: S):
            attempts["n"] += 1
            if attempts["n"] < 2:
                raise ConnectionError("again")
            return {"out": ["flaky"]}

        async def inner(state: S):
            return {"out": ["inner"]}

        sub = lib.StateGraph(S)
        sub.add_node("inner", inner)
        sub.add_edge(lib.START, "inner")
        b = lib.StateGraph(S)
        b.add_node("flaky", flaky,
                   retry_policy=lib.RetryPolicy(initial_interval=0.001, jitter=False))
        b.add_node("sub", sub.compile())
        b.add_node("sync_tail", lambda s: {"out": ["tail"]})
        b.add_edge(lib.START, "flaky")

        async def route(state: S) -> str:
            return "sub" if len(state["out"]) == 1 else "sync_tail"

        b.add_conditional_edges("flaky", route, ["sub", "sync_tail"])
        b.add_edge("sub", "sync_tail")
        return b.compile()

    results = {impl: asyncio.run(build(load(impl)).ainvoke({"out": []}))
               for impl in ("ferrograph", "langgraph")}
    assert results["ferrograph"] == results["langgraph"]


def test_subgraph_invoked_synchronously_from_an_async_node_streams_without_deadlock():
    """An async node calling a subgraph's sync `invoke` blocks the event loop that drains
    the stream; the subgraph's items must not wait for room there (a one-item-at-a-time
    buffer makes them overflow it at once)."""
    inner = load("ferrograph").StateGraph(S)

    def leaf(state: S, writer: StreamWriter) -> dict[str, Any]:
        for i in range(50):
            writer(i)
        return {"out": ["leaf"]}

    inner.add_node("leaf", leaf)
    inner.add_edge(load("ferrograph").START, "leaf")
    subgraph = inner.compile()

    async def calls_subgraph(state: S) -> dict[str, Any]:
        return subgraph.invoke(state)

    outer = load("ferrograph").StateGraph(S)
    outer.add_node("calls_subgraph", calls_subgraph)
    outer.add_edge(load("ferrograph").START, "calls_subgraph")
    graph = outer.compile()
    items: list[Any] = []

    async def consume() -> None:
        async for item in graph.astream({"out": []}, stream_mode="custom", subgraphs=True,
                                        buffer_size=1):
            items.append(item)

    # On its own thread: a deadlocked loop cannot time itself out.
    runner = threading.Thread(target=asyncio.run, args=(consume(),), daemon=True)
    runner.start()
    runner.join(20)
    assert not runner.is_alive(), "the stream deadlocked"
    assert [value for _ns, value in items] == list(range(50))
    assert {ns[0].split(":")[0] for ns, _ in items} == {"calls_subgraph"}


def test_a_script_ending_right_after_astream_exits_cleanly():
    """A worker can still be finishing the push that reports its task's end when the run is
    over; a script that exits right then must not abort (the interpreter stopping that
    thread inside the extension's frames did, most of the time)."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import asyncio
        from typing import TypedDict
        from ferrograph.graph import START, StateGraph

        class S(TypedDict):
            x: int

        b = StateGraph(S)
        b.add_node("node", lambda state: {"x": state["x"] + 1})
        b.add_edge(START, "node")
        graph = b.compile()

        async def main():
            async for _ in graph.astream({"x": 0}):
                pass

        asyncio.run(main())
    """)
    for _ in range(5):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
