"""Task calls of a functional run: a `task` called while the function (or another task)
runs is a PUSH task of the step (`Call`, `FuncTask`), its id by LangGraph's `call` formula
(parent path and call index); it runs on the worker pool (sync) or as a loop task (async),
with its cache, retries and timeout, and hands back a future. A call whose result (or
error) was saved is answered from the thread. The futures the caller holds are chained to
the runs' own (`_chain`), and a task waits for the calls it did not wait for itself.

`FuncCalls` is the call side of `FuncRun` (`_func`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from langchain_core.runnables.config import var_child_runnable_config
from xxhash import xxh3_128_hexdigest

from ferrograph.config import CONFIG_KEY_RUNTIME, CONFIG_KEY_TASK, CONFIG_KEY_TASK_ID
from ferrograph.errors import GraphBubbleUp, GraphInterrupt
from ferrograph.pregel._checkpoint import Scratchpad
from ferrograph.pregel._executor import DEFAULT_POOL
from ferrograph.pregel._func_thread import PREVIOUS, START
from ferrograph.pregel._func_trace import TASK_TAGS, atraced, trace_inputs, traced
from ferrograph.pregel._retry import aretrying, retry_policies, retrying, timed
from ferrograph.pregel._thread_format import (
    ERROR,
    INTERRUPT,
    PULL,
    PUSH,
    RESUME,
    RETURN,
    WireInterrupt,
    interrupt_id,
    task_id,
    task_path_str,
)
from ferrograph.runtime import ExecutionInfo, Runtime

if TYPE_CHECKING:
    from ferrograph.pregel._func import FuncRun

CONFIG_KEY_CALL = "__pregel_call"
CONFIG_KEY_CHECKPOINT_NS = "checkpoint_ns"
CACHE_NS_WRITES = "__pregel_ns_writes"


def task_identifier(func: Any) -> str | None:
    """LangGraph's `identifier` of a task's function (its cache namespace):
    `module.qualname`, async functions included."""
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    module = getattr(func, "__module__", None)
    if name is None or module is None:
        return None
    return f"{module}.{name}"


def _returned(writes: Any) -> Any:
    """A task's result in its cached writes (LangGraph's entry: `[("__return__", value)]`)."""
    return next((v for c, v in writes if c == RETURN), None)


def task_name(func: Any) -> str:
    """A task's name: its function's (a `functools.partial`'s function's), else its class's."""
    if hasattr(func, "__name__"):
        return func.__name__
    if hasattr(func, "func"):
        return func.func.__name__
    return func.__class__.__name__


def is_async(func: Any) -> bool:
    """Whether calling `func` makes a coroutine (an async function or `__call__`)."""
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None))  # noqa: B004 - an object whose __call__ is async


class Call:
    """One `task` call: the function, its `(args, kwargs)` and the task's policies."""

    __slots__ = ("func", "input", "retry_policy", "cache_policy", "timeout", "callbacks")

    def __init__(self, func: Any, input: tuple[tuple[Any, ...], dict[str, Any]], *,
                 retry_policy: Any = None, cache_policy: Any = None, timeout: Any = None,
                 callbacks: Any = None) -> None:
        self.func = func
        self.input = input
        self.retry_policy = retry_policy
        self.cache_policy = cache_policy
        self.timeout = timeout
        self.callbacks = callbacks


class FuncTask:
    """One task of the step: the function's (PULL) or a call's (PUSH). `interrupt()` finds
    its answers in `scratchpad`."""

    __slots__ = ("id", "name", "path", "ns", "scratchpad", "calls", "config", "run",
                 "futures", "lock", "graphs_started", "checkpoint_map")

    def __init__(self, run: FuncRun, tid: str, name: str, path: tuple[Any, ...], ns: str,
                 resume: list[Any]) -> None:
        self.run = run
        self.id = tid
        self.name = name
        self.path = path
        self.ns = ns
        self.scratchpad = Scratchpad(resume, run)
        self.calls = 0
        self.config: dict[str, Any] = {}
        self.futures: list[Any] = []
        self.lock = threading.Lock()
        self.graphs_started = 0
        self.checkpoint_map: dict[str, str] | None = None

    def next_graph_index(self) -> int:
        """How many graphs this task started before (LangGraph's subgraph counter)."""
        with self.lock:
            index = self.graphs_started
            self.graphs_started += 1
            return index

    def next_call(self) -> int:
        """The index of this task's next call (a part of the call's task id)."""
        with self.lock:
            index = self.calls
            self.calls += 1
            return index


class FuncCalls:
    """`FuncRun`'s task calls: their configs, scheduling, cache and outcome."""

    def resume_for(self, tid: str, ns: str) -> list[Any]:
        """The answers to the interrupts of task `tid` (namespace `ns`): saved, then given."""
        status = self.statuses.get(tid)
        resume = list(status.resume or ()) if status is not None else []
        if self.resume_map:
            key = interrupt_id(ns, len(resume))
            if key not in self.resume_map:
                key = interrupt_id(ns, 0)
            if key in self.resume_map:
                resume.append(self.resume_map[key])
        return resume

    def task_config(self, t: FuncTask, callbacks: Any = None) -> dict[str, Any]:
        base = self.config
        configurable = {k: v for k, v in (base.get("configurable") or {}).items()
                        if not k.startswith("__pregel_") and k != "checkpoint_id"}
        runtime = Runtime(context=self.context, store=self.store,
                          stream_writer=self.writer_for(t),
                          previous=self.checkpoint["channel_values"].get(PREVIOUS),
                          execution_info=ExecutionInfo(
                              checkpoint_id=self.checkpoint["id"], checkpoint_ns=t.ns,
                              task_id=t.id,
                              thread_id=configurable.get("thread_id"),
                              run_id=str(rid) if (rid := base.get("run_id")) else None))
        extra: dict[str, Any] = {
            "__pregel_checkpointer": self.saver,
            "checkpoint_map": t.checkpoint_map or {
                **((base.get("configurable") or {}).get("checkpoint_map") or {}),
                self.parent_ns: self.checkpoint["id"]},
        }
        if self.subgraphs or self.forward is not None:
            extra["__ferrograph_func_stream"] = self.child_stream(t)
        return self.config_for_task(t, configurable, runtime, extra, callbacks)

    def config_for_task(self, t: FuncTask, configurable: dict[str, Any], runtime: Any,
                        extra: dict[str, Any], callbacks: Any) -> dict[str, Any]:
        """Task `t`'s config (kept as `t.config`): the run's, with `configurable` (the run's
        keys a task keeps) given the task's keys, then `extra`, and LangGraph's metadata."""
        base = self.config
        configurable.update({
            CONFIG_KEY_CHECKPOINT_NS: t.ns,
            CONFIG_KEY_TASK_ID: t.id,
            CONFIG_KEY_RUNTIME: runtime,
            CONFIG_KEY_TASK: t,
            CONFIG_KEY_CALL: self.make_call(t),
        })
        configurable.update(extra)
        metadata = {**(base.get("metadata") or {}),
                    "langgraph_step": self.step, "langgraph_node": t.name,
                    "langgraph_triggers": (START,) if t.path[0] == PULL else (PUSH,),
                    "langgraph_path": t.path, "langgraph_checkpoint_ns": t.ns}
        config = {**{k: v for k, v in base.items() if k not in ("run_id", "run_name")},
                  "configurable": configurable, "metadata": metadata, "run_name": t.name}
        config["callbacks"] = callbacks
        t.config = config
        return config

    def make_call(self, parent: FuncTask) -> Callable[..., Any]:
        def call(func: Any, input: Any, *, retry_policy: Any = None, cache_policy: Any = None,
                 callbacks: Any = None, timeout: Any = None) -> Any:
            return self.call(parent, Call(func, input, retry_policy=retry_policy,
                                          cache_policy=cache_policy, timeout=timeout,
                                          callbacks=callbacks))
        return call

    def call(self, parent: FuncTask, call: Call) -> Any:
        try:
            in_loop = self.loop is not None and asyncio.current_task() is not None
        except RuntimeError:
            in_loop = False
        if self.loop is None and is_async(call.func):
            raise RuntimeError("In an sync context async tasks cannot be called")
        index = parent.next_call()
        name = task_name(call.func)
        base_ns = f"{parent.ns}|{name}"
        tid = task_id(self.checkpoint["id"], base_ns, str(self.step), name, PUSH,
                      task_path_str(parent.path), str(index))
        ns = f"{base_ns}:{tid}"
        t = FuncTask(self, tid, name, (PUSH, parent.path, index, True), ns,
                     self.resume_for(tid, ns))
        # LangGraph's: a call's checkpoint map adds its caller's namespace
        t.checkpoint_map = {**(parent.checkpoint_map or (
            (parent.config.get("configurable") or {}).get("checkpoint_map") or {})),
            parent.ns: self.checkpoint["id"]}
        with self.lock:
            if name not in self.ran_names:
                self.ran_names.append(name)
                self.called(name)
        status = self.statuses.get(tid)
        fut: Any = asyncio.Future(loop=self.loop) if in_loop else concurrent.futures.Future()
        if status is not None and (status.finished or status.error is not None) \
                and self.reapply:
            self.emit_task_start(t, call.input, (PUSH,))
            ret = _returned(status.output)
            if status.error is not None and not status.finished:
                err = status.error
                fut.set_exception(err if isinstance(err, BaseException) else Exception(err))
            else:
                fut.set_result(ret)
            return fut
        self.emit_task_start(t, call.input, (PUSH,))
        config = self.task_config(t, call.callbacks)
        policy = call.retry_policy or self.graph.retry_policy
        if is_async(call.func):
            assert self.loop is not None
            coro = self._arun_task(t, call, config, policy)
            if in_loop:
                task = self.loop.create_task(coro, context=contextvars.copy_context())
                inner = task
            else:
                inner = asyncio.run_coroutine_threadsafe(coro, self.loop)
        else:
            ctx = contextvars.copy_context()
            inner = concurrent.futures.Future()

            def target() -> None:
                try:
                    inner.set_result(ctx.run(self._run_task, t, call, config, policy))
                except BaseException as e:  # noqa: BLE001
                    inner.set_exception(e)
            DEFAULT_POOL.submit(target)
        parent.futures.append(inner)
        _chain(inner, fut, self.loop if in_loop else None)
        return fut

    def _cache_key(self, call: Call) -> Any:
        """LangGraph's cache key of a call: `(namespace, key, ttl)` (None: not cached)."""
        policy = call.cache_policy
        if policy is None or self.cache is None:
            return None
        args, kwargs = call.input
        key = policy.key_func(*args, **kwargs)
        return ((CACHE_NS_WRITES, task_identifier(call.func) or "__dynamic__"),
                xxh3_128_hexdigest(key.encode() if isinstance(key, str) else key),
                policy.ttl)

    def _finish_task(self, t: FuncTask, value: Any, cached: bool = False) -> Any:
        writes: list[tuple[str, Any]] = [(RETURN, value)]
        if t.scratchpad.resume_written is not None:
            writes.insert(0, (RESUME, t.scratchpad.resume_written))
        self.put_writes(t.id, writes)
        update = {t.name: value}
        if cached:
            update["__metadata__"] = {"cached": True}
        self.emit("updates", update, self.outer_ns)
        self.emit_task_end(t, {RETURN: value})
        return value

    def _task_failed(self, t: FuncTask, e: BaseException) -> None:
        if isinstance(e, GraphInterrupt):
            writes: list[tuple[str, Any]] = [(INTERRUPT, [
                WireInterrupt(i.value, i.id, response_schema=getattr(i, "response_schema", None))
                for i in e.args[0]])]
            if t.scratchpad.resume_written is not None:
                writes.append((RESUME, t.scratchpad.resume_written))
            self.put_writes(t.id, writes)
        elif isinstance(e, GraphBubbleUp):
            pass
        elif isinstance(e, Exception):
            self.put_writes(t.id, [(ERROR, e)])
            self.emit_task_end(t, {}, error=e)

    def _run_task(self, t: FuncTask, call: Call, config: dict[str, Any], policy: Any) -> Any:
        key = self._cache_key(call)
        if key is not None:
            found = self.cache.get([key[:2]])
            if key[:2] in found:
                return self._finish_task(t, _returned(found[key[:2]]), cached=True)
        args, kwargs = call.input
        try:
            inputs = trace_inputs(call.func, args, kwargs)
            value = retrying(lambda: traced(config, t.name, inputs, lambda c: _with_config(
                c, call.func, args, kwargs), TASK_TAGS), retry_policies(policy))
            wait_calls(t)
        except BaseException as e:
            self._task_failed(t, e)
            raise
        if key is not None:
            self.cache.set({key[:2]: ([(RETURN, value)], key[2])})  # LangGraph's entry
        return self._finish_task(t, value)

    async def _arun_task(self, t: FuncTask, call: Call, config: dict[str, Any],
                         policy: Any) -> Any:
        key = self._cache_key(call)
        if key is not None:
            found = await self.cache.aget([key[:2]])
            if key[:2] in found:
                return self._finish_task(t, _returned(found[key[:2]]), cached=True)
        args, kwargs = call.input
        timeout = call.timeout

        inputs = trace_inputs(call.func, args, kwargs)

        async def once() -> Any:
            if timeout is not None:
                return await timed(t.name, lambda c: atraced(c, t.name, inputs, once_in,
                                                             TASK_TAGS), config, timeout)
            return await atraced(config, t.name, inputs, once_in, TASK_TAGS)

        async def once_in(config: dict[str, Any]) -> Any:
            token = var_child_runnable_config.set(config)
            try:
                return await call.func(*args, **kwargs)
            finally:
                var_child_runnable_config.reset(token)
        try:
            value = await aretrying(once, retry_policies(policy))
            await await_calls(t)
        except BaseException as e:
            self._task_failed(t, e)
            raise
        if key is not None:
            await self.cache.aset({key[:2]: ([(RETURN, value)], key[2])})
        return self._finish_task(t, value)


def _chain(inner: Any, outer: Any, loop: asyncio.AbstractEventLoop | None) -> None:
    """`outer` (the caller's future) settles as `inner` (the task's run) does, on `loop` when
    it is an `asyncio.Future`; cancelling `outer` cancels `inner`."""
    def done(f: Any) -> None:
        if f.cancelled():
            if loop is not None:
                loop.call_soon_threadsafe(_cancel, outer)
            else:
                outer.cancel()
            return
        exc = f.exception()
        if loop is not None:
            loop.call_soon_threadsafe(_settle, outer, exc, None if exc else f.result())
        else:
            _settle(outer, exc, None if exc else f.result())
    inner.add_done_callback(done)

    def cancelled(f: Any) -> None:
        if f.cancelled() and not inner.done():
            inner.cancel()
    outer.add_done_callback(cancelled)


def _cancel(f: Any) -> None:
    if not f.done():
        f.cancel()


def _settle(f: Any, exc: Any, value: Any) -> None:
    if f.done():
        return
    if exc is not None:
        f.set_exception(exc)
    else:
        f.set_result(value)


def _with_config(config: dict[str, Any], func: Any, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> Any:
    token = var_child_runnable_config.set(config)
    try:
        return func(*args, **kwargs)
    finally:
        var_child_runnable_config.reset(token)


def wait_calls(t: FuncTask) -> None:
    """Waits for the calls a task made and did not wait for (they end inside its task)."""
    for f in list(t.futures):
        if isinstance(f, concurrent.futures.Future):
            try:
                f.result()
            except BaseException:  # noqa: BLE001 - the caller saw it, or chose not to
                pass


async def await_calls(t: FuncTask) -> None:
    """`wait_calls` on the event loop."""
    for f in list(t.futures):
        try:
            if isinstance(f, concurrent.futures.Future):
                await asyncio.wrap_future(f)
            else:
                await f
        except BaseException:  # noqa: BLE001
            pass
