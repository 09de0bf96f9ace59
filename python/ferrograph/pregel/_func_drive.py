"""The drivers of a functional run: `run_sync` (the caller's thread consumes items while the
function runs on a worker thread) and `run_async` (the function a task of the caller's
loop, a sync one on the loop's executor), both yielding `(ns, mode, payload)` items as
they come, and settling the function's outcome (its writes, the cache, `durability`).
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from langchain_core.runnables.config import var_child_runnable_config

from ferrograph.errors import GraphInterrupt
from ferrograph.pregel._executor import DEFAULT_POOL
from ferrograph.pregel._func import FuncRun
from ferrograph.pregel._func_calls import await_calls, wait_calls
from ferrograph.pregel._func_trace import atraced, traced
from ferrograph.pregel._retry import aretrying, retry_policies, retrying, timed


def run_sync(run: FuncRun, call_node: Callable[[Any, dict[str, Any]], Any]) -> Iterator[Any]:
    """Runs `run` on this thread's consumer loop, the function on a worker thread; yields
    `(ns, mode, payload)` items as they come."""
    run.items = queue.SimpleQueue()
    saved = run.saver.get_tuple(run.thread) if run.saver is not None else None
    runs = run.begin(saved)
    yield from _drain_nowait(run.items)
    if not runs:
        return
    t, value, finished = run.start_node()
    if finished:
        yield from _drain_nowait(run.items)
        return
    node_key = run.node_cache_key(value)
    if node_key is not None and node_key[:2] in (found := run.cache.get([node_key[:2]])):
        run.node_done(t, None, cached=dict(found[node_key[:2]]))
        run.flush_exit()
        yield from _drain_nowait(run.items)
        return
    config = run.config_for_node(t)
    ctx = contextvars.copy_context()
    outcome: list[Any] = []
    done = object()

    def target() -> None:
        try:
            result = ctx.run(retrying, lambda: traced(config, t.name, value,
                                                      lambda c: call_node(value, c)),
                             retry_policies(run.graph.retry_policy))
            wait_calls(t)
            outcome.append((True, result))
        except BaseException as e:  # noqa: BLE001
            wait_calls(t)
            outcome.append((False, e))
        run.items.put(done)
    DEFAULT_POOL.submit(target)
    while True:
        item = run.items.get()
        if item is done:
            break
        yield item
    ok, result = outcome[0]
    if ok:
        run.node_done(t, result)
        if node_key is not None:
            run.cache.set({node_key[:2]: (run.node_writes(result), node_key[2])})
    elif isinstance(result, GraphInterrupt):
        run.node_interrupted(t, result)
        if run.parent_ns:  # run by a task: the task pauses too (LangGraph's subgraph rule)
            run.flush_exit()
            raise GraphInterrupt(tuple(run.interrupts))
    else:
        run.node_failed(t, result)
        yield from _drain_nowait(run.items)
        raise result
    run.flush_exit()
    yield from _drain_nowait(run.items)


def _drain_nowait(q: Any) -> Iterator[Any]:
    """The items already in `q` (a wake-up's None skipped)."""
    while True:
        try:
            item = q.get_nowait()
        except (queue.Empty, asyncio.QueueEmpty):
            return
        if item is not None:
            yield item


async def run_async(run: FuncRun, call_node: Callable[[Any, dict[str, Any]], Any],
                    is_async: bool) -> AsyncIterator[Any]:
    """Runs `run` on the running event loop: the function a task of it (`is_async`), or on
    the loop's executor; yields `(ns, mode, payload)` items as they come, the saver's
    writes awaited (`aflush`) as the run goes."""
    loop = asyncio.get_running_loop()
    run.loop = loop
    run.loop_thread = threading.get_ident()
    run.outbox = [] if run.saver is not None else None
    run.items = asyncio.Queue()
    saved = await run.saver.aget_tuple(run.thread) if run.saver is not None else None
    runs = run.begin(saved)
    await run.aflush()
    for item in _drain_nowait(run.items):
        yield item
    if not runs:
        return
    t, value, finished = run.start_node()
    if finished:
        await run.aflush()
        for item in _drain_nowait(run.items):
            yield item
        return
    node_key = run.node_cache_key(value)
    if node_key is not None and node_key[:2] in (
            found := await run.cache.aget([node_key[:2]])):
        run.node_done(t, None, cached=dict(found[node_key[:2]]))
        run.flush_exit()
        await run.aflush()
        for item in _drain_nowait(run.items):
            yield item
        return
    config = run.config_for_node(t)
    policies = retry_policies(run.graph.retry_policy)
    timeout = run.graph.timeout

    async def body() -> Any:
        if is_async:
            async def once() -> Any:
                if timeout is not None:
                    return await timed(t.name, lambda c: atraced(c, t.name, value, once_in),
                                       config, timeout)
                return await atraced(config, t.name, value, once_in)

            async def once_in(config: dict[str, Any]) -> Any:
                token = var_child_runnable_config.set(config)
                try:
                    return await call_node(value, config)
                finally:
                    var_child_runnable_config.reset(token)
            try:
                return await aretrying(once, policies)
            finally:
                await await_calls(t)
        ctx = contextvars.copy_context()

        def sync_body() -> Any:
            try:
                return retrying(lambda: traced(config, t.name, value,
                                               lambda c: call_node(value, c)), policies)
            finally:
                wait_calls(t)
        return await loop.run_in_executor(None, ctx.run, sync_body)

    node = loop.create_task(body())
    node.add_done_callback(lambda _f: run.items.put_nowait(None))
    run.defer = True
    try:
        while not node.done() or not run.items.empty() or run.inflight:
            item = await run.items.get()
            if item is not None:
                yield item  # before the saver's writes are awaited: what awaits the task
                # that made it may go on meanwhile, so the item goes first (LangGraph's order)
            await run.aflush()
    except BaseException:
        node.cancel()
        raise
    finally:
        run.defer = False
    try:
        result = node.result()
        ok = True
    except BaseException as e:  # noqa: BLE001
        result, ok = e, False
    if ok:
        run.node_done(t, result)
        if node_key is not None:
            await run.cache.aset({node_key[:2]: (run.node_writes(result), node_key[2])})
    elif isinstance(result, GraphInterrupt):
        run.node_interrupted(t, result)
        if run.parent_ns:
            run.flush_exit()
            await run.aflush()
            raise GraphInterrupt(tuple(run.interrupts))
    else:
        run.node_failed(t, result)
        await run.aflush()
        for item in _drain_nowait(run.items):
            yield item
        raise result
    run.flush_exit()
    await run.aflush()
    for item in _drain_nowait(run.items):
        yield item
