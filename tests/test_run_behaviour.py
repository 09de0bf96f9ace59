"""How runs execute: concurrency, inline steps, early stops, failures and strict errors."""

from __future__ import annotations

import asyncio
import itertools
import operator
import sys
import threading
import time
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from ferrograph.errors import InvalidUpdateError
from ferrograph.graph import END, START, StateGraph
from ferrograph.pregel._executor import IDLE_LINGER_SECONDS, WorkerPool
from ferrograph.types import Send
from tests.support import settle_threads


class Log(TypedDict):
    log: Annotated[list, operator.add]


def fan_out(n: int, node: Any) -> Any:
    builder = StateGraph(Log)
    for i in range(n):
        builder.add_node(f"b{i}", node)
        builder.add_edge(START, f"b{i}")
    return builder.compile()


def test_a_thousand_branches_run_at_once():
    n = 1000
    barrier = threading.Barrier(n, timeout=30)

    def node(state: Log):
        barrier.wait()  # only passes if all n run concurrently
        return {"log": [1]}

    assert len(fan_out(n, node).invoke({"log": []})["log"]) == n


def test_max_concurrency_is_honoured():
    running = 0
    peak = 0
    lock = threading.Lock()

    def node(state: Log):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return {"log": [1]}

    result = fan_out(12, node).invoke({"log": []}, {"max_concurrency": 3})
    assert len(result["log"]) == 12
    assert peak == 3


def test_single_task_steps_run_on_the_calling_thread():
    threads = []

    def node(state: Log):
        threads.append(threading.get_ident())
        return {"log": [1]}

    builder = StateGraph(Log)
    builder.add_sequence([("a", node), ("b", node)])
    builder.add_edge(START, "a")
    builder.compile().invoke({"log": []})
    assert threads == [threading.get_ident()] * 2


def test_node_exception_reaches_caller_unchanged_and_workers_are_released():
    baseline = threading.active_count()
    error = KeyError("the original")

    def bad(state: Log):
        raise error

    def slow(state: Log):
        time.sleep(0.05)
        return {"log": [1]}

    builder = StateGraph(Log)
    builder.add_node("bad", bad)
    for i in range(5):
        builder.add_node(f"slow{i}", slow)
        builder.add_edge(START, f"slow{i}")
    builder.add_edge(START, "bad")
    graph = builder.compile()
    with pytest.raises(KeyError) as caught:
        list(graph.stream({"log": []}))
    assert caught.value is error
    assert settle_threads(baseline) <= baseline


def test_graph_is_reusable_after_a_failure():
    calls = itertools.count()

    def flaky(state: Log):
        if next(calls) == 0:
            raise RuntimeError("first run fails")
        return {"log": ["ok"]}

    builder = StateGraph(Log)
    builder.add_node("flaky", flaky)
    builder.add_edge(START, "flaky")
    graph = builder.compile()
    with pytest.raises(RuntimeError, match="first run fails"):
        graph.invoke({"log": []})
    assert graph.invoke({"log": []}) == {"log": ["ok"]}


def test_consumer_stopping_early_releases_streaming_producers():
    baseline = threading.active_count()
    words = " ".join(f"w{i}" for i in range(20_000))
    models = [GenericFakeChatModel(messages=itertools.cycle([AIMessage(content=words)]))
              for _ in range(4)]

    def branch(i: int):
        def run(state: Log):
            return {"log": [models[i].invoke("q").content[:5]]}
        return run

    builder = StateGraph(Log)
    for i in range(4):
        builder.add_node(f"b{i}", branch(i))
        builder.add_edge(START, f"b{i}")
    stream = builder.compile().stream({"log": []}, stream_mode="messages")
    for n, _ in enumerate(stream):
        if n == 10:
            break
    stream.close()
    # 80k chunks would take far longer than this to stream; the producers must have
    # stopped on the closed channel and their threads gone idle and exited.
    assert settle_threads(baseline) <= baseline


def test_route_to_unknown_node_raises_instead_of_ignoring():
    builder = StateGraph(Log)
    builder.add_node("a", lambda s: {"log": ["a"]})
    builder.add_edge(START, "a")
    builder.add_conditional_edges("a", lambda s: "nowhere")
    with pytest.raises(InvalidUpdateError, match="unknown node 'nowhere'.*a"):
        builder.compile().invoke({"log": []})


def test_send_to_unknown_node_raises():
    builder = StateGraph(Log)
    builder.add_node("a", lambda s: {"log": ["a"]})
    builder.add_edge(START, "a")
    builder.add_conditional_edges("a", lambda s: [Send("ghost", {})])
    with pytest.raises(InvalidUpdateError, match="unknown node 'ghost'"):
        builder.compile().invoke({"log": []})


def test_send_to_end_raises_like_langgraph():
    builder = StateGraph(Log)
    builder.add_node("a", lambda s: {"log": ["a"]})
    builder.add_edge(START, "a")
    builder.add_conditional_edges("a", lambda s: [Send(END, {})])
    with pytest.raises(InvalidUpdateError, match="Cannot send a packet to the END node"):
        builder.compile().invoke({"log": []})


@pytest.mark.parametrize("limit", [0, -3])
def test_recursion_limit_below_one_is_rejected(limit: int):
    builder = StateGraph(Log)
    builder.add_node("a", lambda s: {"log": ["a"]})
    builder.add_edge(START, "a")
    with pytest.raises(ValueError, match="recursion_limit must be at least 1"):
        builder.compile().invoke({"log": []}, {"recursion_limit": limit})


def test_cache_options_are_honoured_not_ignored():
    """`cache_policy` caches a node's results only with `compile(cache=...)`, as in
    LangGraph (differential tests: tests/test_cache_store_parity.py)."""
    from langgraph.cache.memory import InMemoryCache

    from ferrograph.types import CachePolicy

    calls = []
    builder = StateGraph(Log)
    builder.add_node("a", lambda s: calls.append("a") or {"log": ["a"]},
                     cache_policy=CachePolicy())
    builder.add_edge(START, "a")
    uncached = builder.compile()
    assert uncached.invoke({"log": []}) == uncached.invoke({"log": []}) == {"log": ["a"]}
    assert len(calls) == 2
    cached = builder.compile(cache=InMemoryCache())
    assert cached.invoke({"log": []}) == cached.invoke({"log": []}) == {"log": ["a"]}
    assert len(calls) == 3
    cached.clear_cache()
    cached.invoke({"log": []})
    assert len(calls) == 4


def test_worker_pool_shrinks_under_steady_load_after_a_burst():
    from ferrograph.pregel._executor import WorkerPool

    pool = WorkerPool("test-pool")
    burst = threading.Barrier(200, timeout=10)
    for _ in range(200):
        pool.submit(burst.wait)
    deadline = time.monotonic() + 5
    while pool.thread_count < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.thread_count == 200
    # A steady trickle of work keeps a few warm workers; the burst's others time out.
    done = threading.Semaphore(0)
    end = time.monotonic() + IDLE_LINGER_SECONDS + 1.5
    while time.monotonic() < end:
        pool.submit(done.release)
        done.acquire()
        time.sleep(0.001)
    assert pool.thread_count <= 3


def test_one_compiled_graph_streams_from_many_threads_at_once():
    words = " ".join(f"w{i}" for i in range(50))
    model = GenericFakeChatModel(messages=itertools.cycle([AIMessage(content=words)]))

    def node(state: Log):
        return {"log": [model.invoke("q").content]}

    graph = fan_out(3, node)
    results: list[Any] = [None] * 16

    def consume(i: int) -> None:
        chunks = [m.content for m, _ in graph.stream({"log": []}, stream_mode="messages")]
        results[i] = "".join(chunks)

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # each run streamed exactly its own three model calls
    assert all(r is not None and len(r) == 3 * len(words) for r in results)


def test_cheap_fan_outs_run_without_piling_up_worker_threads():
    """Cheap parallel nodes are finished by the calling thread before any worker could
    start; the pool must not grow a thread for each such step."""
    from ferrograph.pregel._executor import DEFAULT_POOL

    graph = fan_out(5, lambda s: {"log": ["x"]})
    before = DEFAULT_POOL.thread_count
    for _ in range(2000):
        assert graph.invoke({"log": []}) == {"log": ["x"] * 5}
    assert DEFAULT_POOL.thread_count - before <= 4


def test_a_blocked_node_does_not_hold_back_its_siblings():
    """The calling thread takes the first task itself; when it blocks, the siblings still
    run (here the sibling is what unblocks it)."""
    released = threading.Event()

    def waits(state: Log):
        assert released.wait(30), "the sibling never ran"
        return {"log": ["waited"]}

    def releases(state: Log):
        released.set()
        return {"log": ["released"]}

    builder = StateGraph(Log)
    builder.add_node("waits", waits)
    builder.add_node("releases", releases)
    builder.add_edge(START, "waits")
    builder.add_edge(START, "releases")
    assert sorted(builder.compile().invoke({"log": []})["log"]) == ["released", "waited"]


def test_scout_checks_what_it_watches_and_its_thread_exits_when_idle():
    from ferrograph.pregel._executor import Scout

    baseline = threading.active_count()
    scout = Scout("test-scout")
    checked = threading.Event()
    scout.watch(checked.set)
    assert checked.wait(5)
    assert settle_threads(baseline) <= baseline
    again = threading.Event()
    scout.watch(again.set)  # a new thread once the idle one has gone
    assert again.wait(5)


def _streamed_branches(n: int, node: Any) -> dict[str, int]:
    """Streams `messages` from a fan-out of `n` branches; chunks per branch."""
    graph = fan_out(n, node)
    chunks: dict[str, int] = {}
    for _chunk, md in graph.stream({"log": []}, stream_mode="messages"):
        chunks[md["langgraph_node"]] = chunks.get(md["langgraph_node"], 0) + 1
    return chunks


def test_busy_streaming_branches_run_a_few_at_a_time_not_a_thread_each():
    """Branches that keep the interpreter busy (a fake model makes its tokens in Python)
    gain nothing from running at once under one GIL: the step starts more of them only
    while the GIL is free, so 64 of them never have 64 threads thrashing."""
    running = peak = 0
    lock = threading.Lock()

    def node(state: Log, model: Any = None) -> dict[str, Any]:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        model = GenericFakeChatModel(messages=itertools.cycle([AIMessage(content="w " * 200)]))
        try:
            return {"log": [len(model.invoke("go").content)]}
        finally:
            with lock:
                running -= 1

    chunks = _streamed_branches(64, node)
    assert len(chunks) == 64 and len(set(chunks.values())) == 1
    assert peak <= 16


def test_waiting_streaming_branches_all_run_while_another_keeps_the_gil_busy():
    """A branch that waits for a sibling still gets it started when the GIL is busy with a
    third one (the step grows by one after a while in any case). The busy one spins until
    the waiting one has ended (or a deadline only a regression reaches)."""
    released, a_done = threading.Event(), threading.Event()
    spun_out: list[bool] = []

    def a_waits(state: Log) -> dict[str, Any]:
        assert released.wait(30), "the sibling never ran"
        a_done.set()
        return {"log": ["waited"]}

    def b_spins(state: Log) -> dict[str, Any]:
        end = time.monotonic() + 30
        while not a_done.is_set() and time.monotonic() < end:
            pass  # pure Python: holds the GIL but for switches
        spun_out.append(not a_done.is_set())
        return {"log": ["spun"]}

    def c_releases(state: Log) -> dict[str, Any]:
        released.set()
        return {"log": ["released"]}

    builder = StateGraph(Log)
    for name, node in (("a", a_waits), ("b", b_spins), ("c", c_releases)):
        builder.add_node(name, node)
        builder.add_edge(START, name)
    graph = builder.compile()
    ended = [next(iter(item)) for mode, item in graph.stream(
        {"log": []}, stream_mode=["messages", "updates"]) if mode == "updates"]
    assert sorted(ended) == ["a", "b", "c"]
    assert spun_out == [False]  # a ran (and c, which it waits for) while b kept the GIL


@pytest.mark.parametrize("entry", ["stream", "astream"])
def test_a_step_prepares_each_task_when_it_starts_not_all_before_the_first(entry: str):
    # A pull task's input is read (here: its dataclass state built) when the task is
    # prepared. The first of 64 tasks streams after its own preparation only, not after
    # all 64: at 256 branches preparing them all took most of the time to first token.
    n = 64
    built: list[int] = []

    @dataclass
    class Built:
        log: Annotated[list, operator.add]

        def __post_init__(self) -> None:
            built.append(1)

    model = GenericFakeChatModel(messages=itertools.cycle([AIMessage(content="a b c")]))

    def streams(state: Built) -> dict[str, Any]:
        return {"log": [model.invoke("q").content]}

    async def astreams(state: Built) -> dict[str, Any]:
        return {"log": [(await model.ainvoke("q")).content]}

    def quiet(state: Built) -> dict[str, Any]:
        return {"log": ["quiet"]}

    builder = StateGraph(Built)
    builder.add_node("branch_0", astreams if entry == "astream" else streams)
    for i in range(1, n):
        builder.add_node(f"branch_{i}", quiet)
    for i in range(n):
        builder.add_edge(START, f"branch_{i}")
    graph = builder.compile()
    kwargs: dict[str, Any] = {"stream_mode": "messages", "nodes": ["branch_0"],
                              "config": {"max_concurrency": 1}}
    at_first_token: list[int] = []

    def seen(chunk: Any) -> None:
        if not at_first_token:
            at_first_token.append(len(built))

    if entry == "stream":
        for chunk, _ in graph.stream(Built(log=[]), **kwargs):
            seen(chunk)
    else:
        async def consume() -> None:
            async for chunk, _ in graph.astream(Built(log=[]), **kwargs):
                seen(chunk)

        asyncio.run(consume())
    before_branches = 1  # the caller's own input
    assert at_first_token == [before_branches + 1]  # branch_0's state alone
    assert len(built) >= before_branches + n  # every branch read its state in the end


def test_a_new_worker_starts_its_work_only_once_submit_has_returned():
    # A thread that went straight into its work after `Thread.start` woke the submitter
    # would keep the GIL from it for a whole switch interval (5 ms per thread started, on
    # the consumer's path to the first token). A long interval makes that visible: the work
    # spins, holding the GIL, until it sees the submitter past `submit`.
    pool = WorkerPool("test-pool")
    returned, ended = threading.Event(), threading.Event()
    saw_submit_return: list[bool] = []

    def work() -> None:
        deadline = time.monotonic() + 0.2
        while not returned.is_set() and time.monotonic() < deadline:
            pass
        saw_submit_return.append(returned.is_set())
        ended.set()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.5)
    try:
        pool.submit(work)
        returned.set()
        assert ended.wait(5)
    finally:
        sys.setswitchinterval(interval)
    assert saw_submit_return == [True]
