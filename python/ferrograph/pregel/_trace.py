"""Callbacks: the user's tracers see the run and each node as chain runs, and a subscribed
task's streaming handler rides along with them.

Without user callbacks nothing here runs: the run has no trace, and nodes are called
directly."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import AsyncCallbackManager, CallbackManager
from langchain_core.tracers import BaseTracer

from ferrograph.pregel._messages import TaskMessages, _StreamingCallbackHandler
from ferrograph.pregel._tools import TaskTools

if TYPE_CHECKING:
    from ferrograph.pregel._loop import GraphRun, Task

logger = logging.getLogger(__name__)


def start_trace(run: GraphRun) -> Any:
    """With user callbacks, opens the run's own chain run (named after the graph), under
    which every node's run nests; None without callbacks (nothing to report to)."""
    if run.user_callbacks is None:
        return None
    manager = CallbackManager.configure(
        inheritable_callbacks=run.user_callbacks,
        inheritable_tags=run.config.get("tags"),
        inheritable_metadata=run.base_metadata,
    )
    inputs = run.input if isinstance(run.input, dict) else {"input": run.input}
    trace = manager.on_chain_start(None, inputs,
                                   name=run.config.get("run_name") or run.graph.name)
    run.user_callbacks = trace.get_child()
    return trace


def end_trace(run: GraphRun, trace: Any, error: BaseException | None) -> None:
    """Closes the run's chain run opened by `start_trace` (if any), with its outcome."""
    if trace is None:
        return
    if error is None:
        trace.on_chain_end(run.final_values)
    else:
        trace.on_chain_error(error)


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


def _as_inputs(value: Any) -> Any:
    return value if isinstance(value, dict) else {"input": value}


def _as_outputs(value: Any) -> Any:
    return value if isinstance(value, dict) else {"output": value}


def _node_manager(t: Task, cls: Any) -> Any:
    return cls.configure(
        inheritable_callbacks=t.config["callbacks"],
        inheritable_tags=t.config.get("tags"),
        inheritable_metadata=t.config["metadata"],
    )


def traced_call(t: Task) -> Any:
    """Calls the task's node inside a chain run of its own, so the user's callbacks and
    tracers see one run per node (named after it) with the node's model calls nested below.
    Under the node's `TracePolicy`, the tracers record what its processors make of the
    node's input and output; every other handler sees the real ones."""
    policy = t.runner.trace_policy  # type: ignore[union-attr]
    manager = _node_manager(t, CallbackManager)
    inputs = _as_inputs(t.input)
    recorded = t.input if policy is None else _recorded(t.input, policy.process_inputs)
    if recorded is t.input:
        run = manager.on_chain_start(None, inputs, name=t.name)
    else:
        real, tracers = _split(manager)
        run = real.on_chain_start(None, inputs, name=t.name)
        tracers.on_chain_start(None, recorded, name=t.name, run_id=run.run_id)
        run.handlers = manager.handlers
    t.config = {**t.config, "callbacks": run.get_child()}
    try:
        output = t.runner.call(t.input, t.config)  # type: ignore[union-attr]
    except BaseException as e:
        run.on_chain_error(e)
        raise
    recorded = output if policy is None else _recorded(output, policy.process_outputs)
    if recorded is output:
        run.on_chain_end(_as_outputs(output))
    else:
        real, tracers = _split(run)
        tracers.on_chain_end(recorded)
        real.on_chain_end(_as_outputs(output))
    return output


async def atraced_call(t: Task) -> Any:
    """`traced_call` for a task on the event loop (an async node of `astream`/`ainvoke`)."""
    policy = t.runner.trace_policy  # type: ignore[union-attr]
    manager = _node_manager(t, AsyncCallbackManager)
    inputs = _as_inputs(t.input)
    recorded = t.input if policy is None else _recorded(t.input, policy.process_inputs)
    if recorded is t.input:
        run = await manager.on_chain_start(None, inputs, name=t.name)
    else:
        real, tracers = _split(manager)
        run = await real.on_chain_start(None, inputs, name=t.name)
        await tracers.on_chain_start(None, recorded, name=t.name, run_id=run.run_id)
        run.handlers = manager.handlers
    t.config = {**t.config, "callbacks": run.get_child()}
    try:
        output = await t.runner.acall(t.input, t.config)  # type: ignore[union-attr]
    except BaseException as e:
        await run.on_chain_error(e)
        raise
    recorded = output if policy is None else _recorded(output, policy.process_outputs)
    if recorded is output:
        await run.on_chain_end(_as_outputs(output))
    else:
        real, tracers = _split(run)
        await tracers.on_chain_end(recorded)  # tracers first, as LangGraph does
        await real.on_chain_end(_as_outputs(output))
    return output


def with_handler(callbacks: Any, handler: TaskMessages | TaskTools) -> Any:
    """The user's callbacks (a list or a callback manager) plus `handler`, inherited by
    everything the node runs."""
    if callbacks is None or isinstance(callbacks, list):
        return [*(callbacks or ()), handler]
    manager = callbacks.copy()
    manager.add_handler(handler, inherit=True)
    return manager


_OURS = (TaskMessages, TaskTools)


def without_our_handlers(callbacks: Any, keep_forwarding: bool = False) -> Any:
    """The user's callbacks, without streaming handlers of an enclosing ferrograph run.

    With `keep_forwarding` (a graph run from a task as a graph of its own, not as the task's
    subgraph: called with a config of its own), the handlers of a task whose subgraph items
    stream are kept, so the graph's model tokens and tool calls reach that stream under the
    graph's own (root) namespace, as LangGraph's handlers with `subgraphs` take them."""
    if callbacks is None:
        return None

    def dropped(h: Any) -> bool:
        return isinstance(h, _OURS) and not (keep_forwarding and h.forwards)

    if isinstance(callbacks, list):
        kept = [h for h in callbacks if not dropped(h)]
        return kept or None
    handlers = getattr(callbacks, "handlers", None)
    if handlers is not None and any(dropped(h) for h in handlers):
        manager = callbacks.copy()
        for h in list(manager.handlers):
            if dropped(h):
                manager.remove_handler(h)
        return manager
    return callbacks
