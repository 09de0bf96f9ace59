"""Callbacks: the user's tracers see the run and each node as chain runs, and a subscribed
task's streaming handler rides along with them.

Without user callbacks nothing here runs: the run has no trace, and nodes are called
directly."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import CallbackManager

from ferrograph.pregel._messages import TaskMessages
from ferrograph.pregel._tools import TaskTools

if TYPE_CHECKING:
    from ferrograph.pregel._loop import GraphRun, Task


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


def traced_call(t: Task) -> Any:
    """Calls the task's node inside a chain run of its own, so the user's callbacks and
    tracers see one run per node (named after it) with the node's model calls nested below."""
    manager = CallbackManager.configure(
        inheritable_callbacks=t.config["callbacks"],
        inheritable_tags=t.config.get("tags"),
        inheritable_metadata=t.config["metadata"],
    )
    inputs = t.input if isinstance(t.input, dict) else {"input": t.input}
    run = manager.on_chain_start(None, inputs, name=t.name)
    t.config = {**t.config, "callbacks": run.get_child()}
    try:
        output = t.runner.call(t.input, t.config)  # type: ignore[union-attr]
    except BaseException as e:
        run.on_chain_error(e)
        raise
    run.on_chain_end(output if isinstance(output, dict) else {"output": output})
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


def without_our_handlers(callbacks: Any) -> Any:
    """The user's callbacks, without streaming handlers of an enclosing ferrograph run."""
    if callbacks is None:
        return None
    if isinstance(callbacks, list):
        kept = [h for h in callbacks if not isinstance(h, _OURS)]
        return kept or None
    handlers = getattr(callbacks, "handlers", None)
    if handlers is not None and any(isinstance(h, _OURS) for h in handlers):
        manager = callbacks.copy()
        for h in list(manager.handlers):
            if isinstance(h, _OURS):
                manager.remove_handler(h)
        return manager
    return callbacks
