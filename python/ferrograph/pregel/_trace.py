"""Callbacks: the user's tracers see the run, each node and each router as chain runs, laid
out as LangGraph lays them out (so `astream_events` and `astream_log`, which read them, give
LangGraph's events), and a subscribed task's streaming handler rides along with them.

The run's chain run takes the config's `run_id` and its tasks' configs do not (LangChain
would give that id to the first model a node calls). Each step's nodes nest under it with
LangGraph's `graph:step:<n>` tag (one run per attempt under a retry policy); inside a node,
its body is `seq:step:1` (a runnable sequence's steps `seq:step:1..n`) and its routers come
after it and the node's writes. Under `astream`/`ainvoke` a streaming handler of the
caller's (`astream_events`) is handed each node's output as a one-chunk stream
(`on_chain_stream`); called from worker threads, `astream_events`' handler runs in place
(`_handlers.InlineEvents`). The run's lifecycle handlers are told of its pauses and resumes
here too. Which handlers a task's callbacks hold is `_handlers`' part.

Without user callbacks nothing here runs: the run has no trace, and nodes are called
directly."""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import AsyncCallbackManager, CallbackManager
from langchain_core.tracers import BaseTracer

from ferrograph.callbacks import (
    GraphInterruptEvent,
    GraphResumeEvent,
    LifecycleReporter,
    graph_handlers,
)
from ferrograph.constants import TAG_HIDDEN
from ferrograph.pregel._handlers import OURS, inline_events
from ferrograph.pregel._messages import _StreamingCallbackHandler

if TYPE_CHECKING:
    from ferrograph.pregel._loop import GraphRun
    from ferrograph.pregel._task import Task

logger = logging.getLogger(__name__)


class RunTrace:
    """A run's chain run (under which its nodes nest) and its lifecycle reporter."""

    __slots__ = ("manager", "lifecycle")

    def __init__(self, manager: Any, lifecycle: LifecycleReporter | None) -> None:
        self.manager = manager
        self.lifecycle = lifecycle

    def step_callbacks(self, step: int) -> Any:
        """The callbacks of a task of superstep `step` (LangGraph's tag for it)."""
        return self.manager.get_child(f"graph:step:{step}")


def _root_manager(run: GraphRun, cls: Any) -> Any:
    manager = cls.configure(
        inheritable_callbacks=run.user_callbacks,
        inheritable_tags=run.config.get("tags"),
        inheritable_metadata=run.base_metadata,
    )
    if "ls_integration" not in manager.metadata:
        manager.add_metadata({"ls_integration": "langgraph"})
    return manager


def _root_name(run: GraphRun) -> str:
    return run.config.get("run_name") or run.graph.get_name()


def _lifecycle(run: GraphRun, run_id: Any) -> LifecycleReporter | None:
    handlers = graph_handlers(run.config.get("callbacks"))
    return LifecycleReporter(handlers, run_id) if handlers else None


def start_trace(run: GraphRun) -> None:
    """With user callbacks, opens the run's own chain run (named after the graph), under
    which every node's run nests (`run.trace`); nothing without callbacks."""
    if run.user_callbacks is None:
        return
    manager = _root_manager(run, CallbackManager)
    root = manager.on_chain_start(None, run.input, name=_root_name(run), run_id=run.run_id)
    run.trace = RunTrace(root, _lifecycle(run, root.run_id))


async def astart_trace(run: GraphRun) -> None:
    """`start_trace` on an event loop (async handlers awaited there)."""
    if run.user_callbacks is None:
        return
    manager = _root_manager(run, AsyncCallbackManager)
    root = await manager.on_chain_start(None, run.input, name=_root_name(run),
                                        run_id=run.run_id)
    run.trace = RunTrace(root, _lifecycle(run, root.run_id))


def end_trace(run: GraphRun, error: BaseException | None) -> None:
    """Closes the run's chain run opened by `start_trace` (if any), with its outcome."""
    trace = run.trace
    if trace is None:
        return
    if error is None:
        trace.manager.on_chain_end(run.final_values)
    else:
        trace.manager.on_chain_error(error)


async def aend_trace(run: GraphRun, error: BaseException | None) -> None:
    trace = run.trace
    if trace is None:
        return
    if error is None:
        await trace.manager.on_chain_end(run.final_values)
    else:
        await trace.manager.on_chain_error(error)


def _resume_event(run: GraphRun) -> GraphResumeEvent | None:
    """LangGraph's lifecycle event for a run that resumed its thread (once per run)."""
    if run.trace is None or run.trace.lifecycle is None or run.resume_reported \
            or run.saving is None or not run.saving.resumed:
        return None
    run.resume_reported = True
    return GraphResumeEvent(None, "pending", run.saving.checkpoint["id"], _checkpoint_ns(run))


def _pause_event(run: GraphRun) -> GraphInterruptEvent | None:
    """LangGraph's lifecycle event for a run that paused (a graph a task runs pauses its
    caller instead: it reports nothing)."""
    if run.trace is None or run.trace.lifecycle is None or run.nested or not run.interrupted:
        return None
    checkpoint_id = run.saving.checkpoint["id"] if run.saving is not None else ""
    return GraphInterruptEvent(None, run.pause_status, checkpoint_id,  # type: ignore[arg-type]
                               _checkpoint_ns(run), tuple(run.paused))


def _checkpoint_ns(run: GraphRun) -> tuple[str, ...]:
    ns = run.saving.ns if run.saving is not None else "|".join(run.namespace)
    return tuple(ns.split("|")) if ns else ()


def report_resume(run: GraphRun) -> None:
    """Tells the lifecycle handlers the run resumed its thread (if it did)."""
    if (event := _resume_event(run)) is not None:
        run.trace.lifecycle.report(event)  # type: ignore[union-attr]


async def areport_resume(run: GraphRun) -> None:
    if (event := _resume_event(run)) is not None:
        await run.trace.lifecycle.areport(event)  # type: ignore[union-attr]


def report_pause(run: GraphRun) -> None:
    """Tells the lifecycle handlers the run paused (if it did)."""
    if (event := _pause_event(run)) is not None:
        run.trace.lifecycle.report(event)  # type: ignore[union-attr]


async def areport_pause(run: GraphRun) -> None:
    if (event := _pause_event(run)) is not None:
        await run.trace.lifecycle.areport(event)  # type: ignore[union-attr]

def _recorded(value: Any, process: Callable[[Any], Any] | None) -> Any:
    """What the tracers record for `value` under a `TracePolicy` processor: the processor's
    result, or `value` itself when there is none or it raised (logged, as LangGraph does)."""
    if process is None:
        return value
    try:
        return process(value)
    except Exception:
        logger.exception("trace input/output processor raised; recording untransformed payload")
        return value


def _split(manager: Any) -> tuple[Any, Any]:
    """`manager` as two: one for every handler but the user's tracers, one for the tracers
    (a streaming handler that is a tracer, `astream_log`'s, counts as a handler), as
    LangGraph splits them for a `TracePolicy`."""
    real, tracers = copy.copy(manager), copy.copy(manager)
    tracers.handlers = [h for h in manager.handlers if isinstance(h, BaseTracer)
                        and _StreamingCallbackHandler not in type(h).__mro__]
    real.handlers = [h for h in manager.handlers if h not in tracers.handlers]
    return real, tracers


def _node_manager(t: Task, cls: Any) -> Any:
    return cls.configure(
        inheritable_callbacks=t.config["callbacks"],
        inheritable_tags=t.config.get("tags"),
        inheritable_metadata=t.config["metadata"],
    )


def _output_tappers(run: Any) -> list[Any]:
    """The caller's streaming handlers (`astream_events`, `astream_log`): each node's output
    is streamed to them, as LangGraph streams a node when one listens. Ours are not asked."""
    return [h for h in run.handlers
            if _StreamingCallbackHandler in type(h).__mro__ and not isinstance(h, OURS)]


def _tap(run: Any, output: Any) -> None:
    if tappers := _output_tappers(run):
        chunks: Iterator[Any] = iter((output,))
        for h in tappers:
            chunks = h.tap_output_iter(run.run_id, chunks)
        for _ in chunks:
            pass


async def one_chunk(value: Any) -> AsyncIterator[Any]:
    yield value


async def _atap(run: Any, output: Any) -> None:
    if tappers := _output_tappers(run):
        chunks: AsyncIterator[Any] = one_chunk(output)
        for h in tappers:
            chunks = h.tap_output_aiter(run.run_id, chunks)
        async for _ in chunks:
            pass


def _start_node(t: Task, manager: Any) -> Any:
    """Opens the node's chain run (one per attempt, as LangGraph's); under its
    `TracePolicy` the tracers are given what its processor makes of the input."""
    policy = t.runner.trace_policy  # type: ignore[union-attr]
    recorded = t.input if policy is None else _recorded(t.input, policy.process_inputs)
    if recorded is t.input:
        return manager.on_chain_start(None, t.input, name=t.name)
    real, tracers = _split(manager)
    run = real.on_chain_start(None, t.input, name=t.name)
    tracers.on_chain_start(None, recorded, name=t.name, run_id=run.run_id)
    run.handlers = manager.handlers
    return run


async def _astart_node(t: Task, manager: Any) -> Any:
    policy = t.runner.trace_policy  # type: ignore[union-attr]
    recorded = t.input if policy is None else _recorded(t.input, policy.process_inputs)
    if recorded is t.input:
        return await manager.on_chain_start(None, t.input, name=t.name)
    real, tracers = _split(manager)
    run = await real.on_chain_start(None, t.input, name=t.name)
    await tracers.on_chain_start(None, recorded, name=t.name, run_id=run.run_id)
    run.handlers = manager.handlers
    return run


def _end_node(t: Task, run: Any, output: Any) -> None:
    policy = t.runner.trace_policy  # type: ignore[union-attr]
    recorded = output if policy is None else _recorded(output, policy.process_outputs)
    if recorded is output:
        run.on_chain_end(output)
    else:
        real, tracers = _split(run)
        tracers.on_chain_end(recorded)
        real.on_chain_end(output)


async def _aend_node(t: Task, run: Any, output: Any) -> None:
    policy = t.runner.trace_policy  # type: ignore[union-attr]
    recorded = output if policy is None else _recorded(output, policy.process_outputs)
    if recorded is output:
        await run.on_chain_end(output)
    else:
        real, tracers = _split(run)
        await tracers.on_chain_end(recorded)  # tracers first, as LangGraph does
        await real.on_chain_end(output)


def traced_task(t: Task, finish: Callable[[Task, Any], None], stream_output: bool) -> None:
    """Runs the task's node inside a chain run of its own, so the user's callbacks and
    tracers see one run per node (named after it; one per attempt under a retry policy)
    with the node's model calls and then its routers (run by `finish`, which turns the
    output into writes) nested below. Under the node's `TracePolicy`, the tracers record
    what its processors make of the node's input and output; every other handler sees the
    real ones. With `stream_output`, the caller's streaming handlers are handed the output
    as a one-chunk stream."""
    manager = inline_events(_node_manager(t, CallbackManager))
    t.node_run = _start_node(t, manager)

    def next_attempt(config: Any, error: BaseException) -> Any:
        t.node_run.on_chain_error(error)
        t.node_run = _start_node(t, manager)
        return {**config, "callbacks": t.node_run.get_child("seq:step:1")}

    t.on_retry, t.async_run = next_attempt, stream_output
    t.config = {**t.config, "callbacks": t.node_run.get_child("seq:step:1")}
    try:
        output = t.runner.call(t.input, t.config)  # type: ignore[union-attr]
        finish(t, output)
        if stream_output:
            _tap(t.node_run, output)
    except BaseException as e:
        t.node_run.on_chain_error(e)
        raise
    finally:
        run, t.node_run, t.on_retry = t.node_run, None, None
    _end_node(t, run, output)


async def atraced_task(t: Task, finish: Callable[[Task, Any], Any],
                       stream_output: bool) -> None:
    """`traced_task` for a task on the event loop (an async node of `astream`/`ainvoke`);
    `finish` is awaited."""
    manager = _node_manager(t, AsyncCallbackManager)
    t.node_run = await _astart_node(t, manager)

    async def next_attempt(config: Any, error: BaseException) -> Any:
        await t.node_run.on_chain_error(error)
        t.node_run = await _astart_node(t, manager)
        return {**config, "callbacks": t.node_run.get_child("seq:step:1")}

    t.on_retry, t.async_run = next_attempt, stream_output
    t.config = {**t.config, "callbacks": t.node_run.get_child("seq:step:1")}
    try:
        output = await t.runner.acall(t.input, t.config)  # type: ignore[union-attr]
        await finish(t, output)
        if stream_output:
            await _atap(t.node_run, output)
    except BaseException as e:
        await t.node_run.on_chain_error(e)
        raise
    finally:
        run, t.node_run, t.on_retry = t.node_run, None, None
    await _aend_node(t, run, output)


def sequence_steps(action: Any) -> list[Any]:
    """The steps LangGraph makes of a runnable node: a sequence's own steps (flattened, as
    its node sequence flattens them), else the runnable alone."""
    from langchain_core.runnables import RunnableSequence

    if isinstance(action, RunnableSequence):
        return list(action.steps)
    return [action]


def invoke_steps(steps: list[Any], input: Any, config: Any, node_run: Any) -> Any:
    """A traced runnable node's steps, each a child run of the node's run (`seq:step:<n>`),
    as LangGraph's node sequence invokes them."""
    value = input
    for i, step in enumerate(steps, 1):
        value = step.invoke(value, {**config, "callbacks": node_run.get_child(f"seq:step:{i}")})
    return value


async def ainvoke_steps(steps: list[Any], input: Any, config: Any, node_run: Any,
                        async_run: bool) -> Any:
    """`invoke_steps` on the event loop. When the caller streams node outputs
    (`astream_events`), the steps stream into each other (`astream`, then `atransform`),
    as LangGraph's node sequence streams them then, and the node's output is what its
    chunks add up to."""
    if not (async_run and _output_tappers(node_run)):
        value = input
        for i, step in enumerate(steps, 1):
            value = await step.ainvoke(
                value, {**config, "callbacks": node_run.get_child(f"seq:step:{i}")})
        return value
    chunks = steps[0].astream(input, {**config, "callbacks": node_run.get_child("seq:step:1")})
    for i, step in enumerate(steps[1:], 2):
        chunks = step.atransform(chunks, {**config,
                                          "callbacks": node_run.get_child(f"seq:step:{i}")})
    output, first = None, True
    async for chunk in chunks:
        if first:
            output, first = chunk, False
        else:
            try:
                output = output + chunk
            except TypeError:
                output = chunk
    return output


def traced_start(t: Task, output: Any, finish: Callable[[Task, Any], None],
                 stream_output: bool) -> None:
    """The start node's routers (conditional edges from START) in a chain run of the start
    node, hidden from tracing UIs as LangGraph hides it; its input passes through."""
    t.config = {**t.config, "tags": [*(t.config.get("tags") or ()), TAG_HIDDEN]}
    run = inline_events(_node_manager(t, CallbackManager)).on_chain_start(
        None, t.input, name=t.name)
    try:
        t.node_run, t.async_run = run, stream_output
        finish(t, output)
        if stream_output:
            _tap(run, t.input)
    except BaseException as e:
        run.on_chain_error(e)
        raise
    finally:
        t.node_run = None
    run.on_chain_end(t.input)


def router_name(path: Any, async_run: bool) -> str | None:
    """A router's chain run name, as LangGraph names it: the function's; for a lambda or a
    callable object, its wrapper's class on the sync path and none (shown as `Unnamed`) on
    the async one."""
    name = getattr(path, "__name__", None)
    if name and name != "<lambda>":
        return name
    return None if async_run else "RunnableCallable"


def _router_manager(node_run: Any, index: int, config: Any, cls: Any) -> Any:
    return cls.configure(
        inheritable_callbacks=node_run.get_child(f"seq:step:{index}"),
        inheritable_tags=config.get("tags"),
        inheritable_metadata=config.get("metadata"),
    )


def traced_route(node_run: Any, index: int, path: Any, value: Any, config: Any,
                 call: Callable[[Any, Any], Any], async_run: bool) -> Any:
    """Calls a router of the node (`call(value, config)`) in a chain run of its own under
    the node's, tagged as LangGraph's sequence tags it (`seq:step:<index>`: 3 for a node's
    first router, after the node and its writes; 2 for the start node's, which has no
    body)."""
    if _is_runnable(path):  # a runnable starts its own run: only the tag is ours
        return call(value, {**config, "callbacks": node_run.get_child(f"seq:step:{index}")})
    run = _router_manager(node_run, index, config, CallbackManager).on_chain_start(
        None, value, name=router_name(path, async_run))
    try:
        result = call(value, {**config, "callbacks": run.get_child()})
    except BaseException as e:
        run.on_chain_error(e)
        raise
    run.on_chain_end(result)
    return result


async def atraced_route(node_run: Any, index: int, path: Any, value: Any, config: Any,
                        call: Callable[[Any, Any], Any]) -> Any:
    """`traced_route` on an event loop (`call` returns an awaitable)."""
    if _is_runnable(path):
        return await call(value, {**config,
                                  "callbacks": node_run.get_child(f"seq:step:{index}")})
    run = await _router_manager(node_run, index, config, AsyncCallbackManager).on_chain_start(
        None, value, name=router_name(path, True))
    try:
        result = await call(value, {**config, "callbacks": run.get_child()})
    except BaseException as e:
        await run.on_chain_error(e)
        raise
    await run.on_chain_end(result)
    return result


def _is_runnable(path: Any) -> bool:
    from langchain_core.runnables import Runnable

    return isinstance(path, Runnable)
