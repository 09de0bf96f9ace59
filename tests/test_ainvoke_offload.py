"""`ainvoke` of a graph of sync nodes: runs batched onto worker threads (`_offload`) still
run side by side when their nodes block, see the caller's context variables, fail with the
node's error, and a run cancelled before a worker takes it never starts."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import TypedDict

import pytest

from ferrograph.graph import START, StateGraph


class S(TypedDict):
    x: int


def one_node_graph(node):
    b = StateGraph(S)
    b.add_node("node", node)
    b.add_edge(START, "node")
    return b.compile()


def test_blocking_sync_runs_run_side_by_side():
    # Each run's node waits until all four are inside it: batched onto one thread, they
    # would never meet (the barrier breaks after 60 s and the runs fail).
    barrier = threading.Barrier(4, timeout=60)

    def meet(state: S):
        barrier.wait()
        return {"x": state["x"] + 1}

    graph = one_node_graph(meet)

    async def main():
        return await asyncio.gather(*(graph.ainvoke({"x": i}) for i in range(4)))

    assert asyncio.run(main()) == [{"x": i + 1} for i in range(4)]


def test_many_cheap_sync_runs_each_get_their_result_and_context():
    request = contextvars.ContextVar("request")

    def node(state: S):
        return {"x": state["x"] * 10 + request.get()}

    graph = one_node_graph(node)

    async def one(i: int):
        request.set(i % 7)
        return await graph.ainvoke({"x": i})

    async def main():
        return await asyncio.gather(*(one(i) for i in range(500)))

    assert asyncio.run(main()) == [{"x": i * 10 + i % 7} for i in range(500)]


def test_a_failing_sync_run_fails_only_its_caller():
    def node(state: S):
        if state["x"] == 3:
            raise ValueError("three")
        return {"x": state["x"]}

    graph = one_node_graph(node)

    async def main():
        return await asyncio.gather(*(graph.ainvoke({"x": i}) for i in range(6)),
                                    return_exceptions=True)

    results = asyncio.run(main())
    assert [r for i, r in enumerate(results) if i != 3] == [{"x": i} for i in (0, 1, 2, 4, 5)]
    assert isinstance(results[3], ValueError) and str(results[3]) == "three"


def test_a_run_cancelled_while_queued_never_starts():
    entered = threading.Event()
    release = threading.Event()
    started: list[int] = []

    def node(state: S):
        started.append(state["x"])
        entered.set()
        release.wait(60)
        return {"x": state["x"]}

    graph = one_node_graph(node)

    async def main():
        loop = asyncio.get_running_loop()
        # One worker: the second run stays queued behind the first, which blocks.
        loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
        first = asyncio.ensure_future(graph.ainvoke({"x": 1}))
        second = asyncio.ensure_future(graph.ainvoke({"x": 2}))
        deadline = loop.time() + 60
        while not entered.is_set() and loop.time() < deadline:  # (the one worker is busy)
            await asyncio.sleep(0.01)
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        release.set()
        return await first

    assert asyncio.run(main()) == {"x": 1}
    assert started == [1]


def test_a_finished_event_loop_is_not_kept_alive():
    graph = one_node_graph(lambda state: {"x": state["x"] + 1})
    loops = []

    async def main():
        loops.append(weakref.ref(asyncio.get_running_loop()))
        return await graph.ainvoke({"x": 1})

    assert asyncio.run(main()) == {"x": 2}
    gc.collect()
    assert loops[0]() is None


def test_a_run_raising_stop_iteration_does_not_hold_up_the_others():
    def node(state: S):
        if state["x"] == 0:
            raise StopIteration
        return {"x": state["x"]}

    graph = one_node_graph(node)

    async def main():
        return await asyncio.gather(*(graph.ainvoke({"x": i}) for i in range(3)),
                                    return_exceptions=True)

    results = asyncio.run(main())
    assert isinstance(results[0], (TypeError, RuntimeError, StopIteration))
    assert results[1:] == [{"x": 1}, {"x": 2}]
