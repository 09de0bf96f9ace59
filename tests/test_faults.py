"""Faults during a run: what was delivered stays delivered, the error arrives once, nothing
is left running, and the same compiled graph works again afterwards."""

from __future__ import annotations

import _thread
import contextlib
import itertools
import operator
import threading
import time
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from ferrograph.graph import END, START, StateGraph
from ferrograph.local_openai import LocalOpenAIServer, poem_about, tokenize
from tests.support import settle_threads

POEM = [{"role": "user", "content": "Write a short poem about owls"}]


class Out(TypedDict):
    out: Annotated[list, operator.add]


def long_streams(branches: int, words: int) -> Any:
    """`branches` parallel nodes, each streaming a model reply of `words` words."""
    text = " ".join(f"w{i}" for i in range(words))

    def node(state: Out):
        model = GenericFakeChatModel(messages=itertools.cycle([AIMessage(content=text)]))
        return {"out": [len(model.invoke("q").content)]}

    b = StateGraph(Out)
    for i in range(branches):
        b.add_node(f"n{i}", node)
        b.add_edge(START, f"n{i}")
    return b.compile()


def one_node(fn: Any) -> Any:
    b = StateGraph(Out)
    b.add_node("node", fn)
    b.add_edge(START, "node")
    return b.compile()


def test_model_failing_mid_stream_keeps_delivered_tokens():
    baseline = threading.active_count()
    with LocalOpenAIServer(fail_after=5) as broken, LocalOpenAIServer() as healthy:
        models = iter([broken.chat_model(max_retries=0), healthy.chat_model()])

        def node(state: Out):
            return {"out": [next(models).invoke(POEM).content]}

        graph = one_node(node)
        delivered = []
        errors = 0
        try:
            for chunk, _ in graph.stream({"out": []}, stream_mode="messages"):
                delivered.append(chunk.content)
        except Exception:  # noqa: BLE001 - the client's transport error, whatever its type
            errors += 1
        assert errors == 1
        assert "".join(delivered) == "".join(tokenize(poem_about("owls"))[:5])
        # The same compiled graph runs again (the second model is healthy).
        assert graph.invoke({"out": []}) == {"out": [poem_about("owls")]}
    assert settle_threads(baseline) <= baseline


def test_router_raising_reaches_the_caller_unchanged():
    baseline = threading.active_count()
    error = LookupError("no route")
    calls = itertools.count()

    def route(state: Out):
        if next(calls) == 0:
            raise error
        return END

    b = StateGraph(Out)
    b.add_node("a", lambda s: {"out": ["a"]})
    b.add_edge(START, "a")
    b.add_conditional_edges("a", route)
    graph = b.compile()
    with pytest.raises(LookupError) as caught:
        list(graph.stream({"out": []}, stream_mode="updates"))
    assert caught.value is error
    assert graph.invoke({"out": []}) == {"out": ["a"]}
    assert settle_threads(baseline) <= baseline


def test_stream_writer_from_a_thread_the_node_started():
    def node(state: Out, writer):
        workers = [threading.Thread(target=writer, args=(f"from thread {i}",)) for i in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return {"out": ["done"]}

    baseline = threading.active_count()
    graph = one_node(node)
    for _ in range(2):  # and again on the same graph
        items = list(graph.stream({"out": []}, stream_mode="custom"))
        assert sorted(items) == [f"from thread {i}" for i in range(4)]
    assert settle_threads(baseline) <= baseline


def test_keyboard_interrupt_during_stream_stops_the_run():
    baseline = threading.active_count()
    graph = long_streams(branches=3, words=50_000)
    seen = 0
    with pytest.raises(KeyboardInterrupt):
        for _ in graph.stream({"out": []}, stream_mode="messages", buffer_size=16):
            seen += 1
            if seen == 100:
                threading.Timer(0.01, _thread.interrupt_main).start()
            time.sleep(0.001)  # a slow consumer: producers are waiting on the full buffer
    assert settle_threads(baseline) <= baseline
    assert len(graph.invoke({"out": []})["out"]) == 3


def test_slow_consumer_bounds_what_producers_run_ahead():
    capacity, branches = 8, 4
    produced = 0
    lock = threading.Lock()

    class CountTokens(BaseCallbackHandler):
        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            nonlocal produced
            with lock:
                produced += 1

    words = " ".join(f"w{i}" for i in range(400))

    def node(state: Out):
        model = GenericFakeChatModel(messages=itertools.cycle([AIMessage(content=words)]))
        return {"out": [len(model.invoke("q").content)]}

    b = StateGraph(Out)
    for i in range(branches):
        b.add_node(f"n{i}", node)
        b.add_edge(START, f"n{i}")
    graph = b.compile()
    consumed = 0
    worst_lead = 0
    for _ in graph.stream({"out": []}, {"callbacks": [CountTokens()]},
                          stream_mode="messages", buffer_size=capacity):
        consumed += 1
        time.sleep(0.0002)
        with lock:
            worst_lead = max(worst_lead, produced - consumed)
    assert consumed == produced == branches * 799
    # Ahead of the loop: one drained batch (at most `capacity`), a full channel, and one
    # counted-but-not-yet-queued chunk per producer. Unbounded, it would be ~1,600.
    assert worst_lead <= 2 * capacity + branches


def test_bad_buffer_size_is_refused():
    graph = one_node(lambda s: {"out": [1]})
    with pytest.raises(ValueError, match="buffer_size must be a positive int"):
        list(graph.stream({"out": []}, buffer_size=0))


def broken_reducer(left: list, right: list) -> list:
    raise TypeError("reducer broke")


class BrokenState(TypedDict):
    x: Annotated[list, broken_reducer]


def test_reducer_raising_reaches_the_caller():
    b = StateGraph(BrokenState)
    b.add_node("a", lambda s: {"x": [1]})
    b.add_edge(START, "a")
    with pytest.raises(TypeError, match="reducer broke"):
        b.compile().invoke({"x": [0]})


def test_astream_consumer_leaving_stops_the_run_and_keeps_memory_bounded():
    import asyncio

    baseline = threading.active_count()
    words = 20_000
    graph = long_streams(branches=4, words=words)

    async def consume() -> int:
        seen = 0
        stream = graph.astream({"out": []}, stream_mode="messages", buffer_size=16)
        async for _ in stream:
            seen += 1
            await asyncio.sleep(0)  # a slow consumer
            if seen == 200:
                break
        await stream.aclose()
        return seen

    assert asyncio.run(consume()) == 200
    # With a 16-item buffer the producers were waiting on the consumer: had leaving not
    # released them, they would wait for ever and their threads never exit.
    assert settle_threads(baseline) <= baseline
    reply_length = len(" ".join(f"w{i}" for i in range(words)))
    assert asyncio.run(graph.ainvoke({"out": []}))["out"] == [reply_length] * 4


@pytest.mark.parametrize("leave", ["break", "cancel"])
def test_leaving_astream_closes_the_model_http_stream(leave: str):
    """An async node streaming from the real ChatOpenAI over HTTP: once the consumer leaves,
    the client hangs up, so the server stops sending long before the reply is done."""
    import asyncio

    baseline = threading.active_count()
    with LocalOpenAIServer(token_delay=0.01) as server:
        model = server.chat_model()
        reply_tokens = len(tokenize(poem_about("owls")))

        async def write(state: Out):
            return {"out": [(await model.ainvoke(POEM)).content]}

        graph = one_node(write)

        async def consume(got_three: asyncio.Event) -> None:
            seen = 0
            async for _ in graph.astream({"out": []}, stream_mode="messages"):
                seen += 1
                if seen == 3:
                    got_three.set()
                    if leave == "break":
                        break
                    await asyncio.sleep(60)  # cancelled here

        async def main() -> None:
            got_three = asyncio.Event()
            consumer = asyncio.ensure_future(consume(got_three))
            await got_three.wait()
            if leave == "cancel":
                consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
            deadline = time.monotonic() + 2
            while server.open_streams and time.monotonic() < deadline:
                await asyncio.sleep(0.01)

        asyncio.run(main())
        assert server.open_streams == 0, "the HTTP stream is still being sent"
        assert server.tokens_sent < reply_tokens / 2, (server.tokens_sent, reply_tokens)
    assert settle_threads(baseline) <= baseline


@pytest.mark.parametrize("how", ["invoke", "stream"])
@pytest.mark.parametrize("saved", [False, True], ids=["no checkpointer", "checkpointer"])
def test_a_failing_task_lets_its_running_sibling_end_first(how: str, saved: bool):
    """When a task fails, a sibling already running ends before the error reaches the
    caller (as LangGraph's executor waits on leaving): nothing runs on after the caller has
    the error, and with a checkpointer the sibling's writes are in the thread (compared with
    LangGraph by hand). The failing node raises only once the sibling has started."""
    import langgraph.graph as lg_graph
    from langgraph.checkpoint.memory import InMemorySaver

    import ferrograph.graph as fg_graph

    def outcome(graph_mod: Any) -> Any:
        started, failing_now = threading.Event(), threading.Event()
        calls: list[str] = []

        def sibling(state: Out) -> dict[str, Any]:
            started.set()
            assert failing_now.wait(30)
            calls.append("sibling")
            return {"out": ["sibling"]}

        def failing(state: Out) -> dict[str, Any]:
            assert started.wait(30)
            failing_now.set()
            raise RuntimeError("boom")

        graph = (graph_mod.StateGraph(Out)
                 .add_node("sibling", sibling).add_node("failing", failing)
                 .add_edge(graph_mod.START, "sibling").add_edge(graph_mod.START, "failing")
                 .compile(checkpointer=InMemorySaver() if saved else None))
        config = {"configurable": {"thread_id": "t"}}
        with pytest.raises(RuntimeError, match="boom"):
            if how == "invoke":
                graph.invoke({"out": []}, config)
            else:
                list(graph.stream({"out": []}, config))
        seen = list(calls)  # what had run when the caller got the error
        tasks = ([(t.name, repr(t.error), t.result) for t in graph.get_state(config).tasks]
                 if saved else None)
        return seen, tasks

    expected_calls, _ = outcome(lg_graph)
    calls, tasks = outcome(fg_graph)
    assert calls == expected_calls == ["sibling"]
    # LangGraph saves the sibling's writes from a callback racing its loop's exit, so its
    # thread is compared by hand (checked when this was written), not run by run.
    if saved:
        assert sorted(tasks) == [("failing", repr("RuntimeError('boom')"), None),
                                 ("sibling", "None", {"out": ["sibling"]})]
