"""`invoke` on the Rust driver (`DirectGraph`, `rust/src/python/direct.rs`), and `stream`
of state alone on it (`DirectStream`, `rust/src/python/direct_stream.rs`).

A run that streams nothing, reports to no callbacks and stops at no breakpoint needs no
`GraphRun`: the Rust driver plans each step, builds each task's input and config, calls
plain function nodes itself and applies the step. What it cannot do alone (runnables, async
nodes, retry policies, injected parameters, results that are not dicts, conditional edges)
it hands to the same Python helpers the step loop uses (`_write`, `NodeRunner.call`), so
both drivers behave alike. A `stream` that asks for `updates` / `values` alone, of a run the
driver could `invoke`, is driven by the caller's `for` loop a step at a time, each step's items
made in Rust as `GraphRun` makes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.runnables.config import var_child_runnable_config

from ferrograph._core import ConcurrentUpdate, DirectGraph, DirectStream, OutOfSteps
from ferrograph.config import (
    CONFIG_KEY_NODE_FINISHED,
    CONFIG_KEY_RUN,
    CONFIG_KEY_RUN_ID,
    CONFIG_KEY_RUNTIME,
    CONFIG_KEY_TASK,
)
from ferrograph.errors import GraphDrained, GraphInterrupt, is_interrupt
from ferrograph.pregel._call import own_command
from ferrograph.pregel._errors import (
    concurrent_update_error,
    note_preparing_error,
    note_task_error,
    recursion_error,
)
from ferrograph.pregel._executor import DEFAULT_POOL, DEFAULT_SCOUT
from ferrograph.pregel._nested import calling_task
from ferrograph.pregel._task import recursion_limit, task_bases, without_run_ids
from ferrograph.pregel._write import (
    PUSHED_WRITES,
    branch_writes,
    map_input,
    output_writes,
    update_payload,
)
from ferrograph.runtime import RunControl

if TYPE_CHECKING:
    from ferrograph.pregel._stream import StreamSpec
    from ferrograph.pregel.main import CompiledStateGraph


def build_direct_graph(graph: CompiledStateGraph) -> DirectGraph:
    """The Rust driver's description of `graph` (built once per graph)."""
    nodes = []
    for node_id, name in enumerate(graph.node_names):
        runner = graph.runners.get(name)
        pull_metadata, push_metadata = graph.task_metadata[node_id]
        if runner is None:  # the start node: the driver maps the input itself
            call, plain, input_ids, coerce = None, False, [], None
        else:
            plain = not (runner.is_runnable or runner.is_async or runner.inject
                         or runner.retry or runner.handler is not None)
            call = runner.action if plain else runner.call
            input_ids, coerce = runner.input_ids, runner.coerce
        nodes.append((call, plain, input_ids, coerce, pull_metadata, push_metadata,
                      name in graph.branches))
    return DirectGraph(
        graph.plan, nodes, graph.key_ids,
        [name in graph.input_key_set for name in graph.key_names], graph.reducers,
        {"context_var": var_child_runnable_config, "map_input": map_input,
         "output_writes": output_writes, "branch_writes": branch_writes,
         "update_payload": task_update,
         "note_error": note_task_error, "own_command": own_command,
         "note_preparing_error": note_preparing_error, "submit": DEFAULT_POOL.submit,
         "watch": DEFAULT_SCOUT.watch, "drained": raise_drained, "run_control": RunControl,
         "pushed_writes": PUSHED_WRITES, "paused": paused})


def task_update(graph: CompiledStateGraph, pairs: list[tuple[str, Any]]) -> Any:
    """A task's `updates` payload from its state writes (all keys stream by default)."""
    return update_payload(pairs, graph.default_output[3])


def paused(error: BaseException, into: list[Any]) -> bool:
    """Whether a node's failure is a pause at `interrupt()` (its questions go `into`)."""
    if is_interrupt(error) and error.args and error.args[0]:
        into.extend(error.args[0])
        return True
    return False


def raise_drained(control: RunControl) -> None:
    """Stops a run whose control was asked to drain (between two steps)."""
    raise GraphDrained(control.drain_reason or "shutdown")


def invoke_direct(graph: CompiledStateGraph, input: Any, config: dict[str, Any], context: Any,
                  result_keys: Sequence[str] | None,
                  stop_check: Callable[[], None] | None = None,
                  control: RunControl | None = None) -> dict[str, Any]:
    """`invoke` without a `GraphRun`: the Rust driver runs the whole graph. What tasks see
    (config, metadata, errors) is as under `GraphRun`. `stop_check` is called before each
    step; what it raises ends the run there. A drain requested of the run's control stops
    it there too (`GraphDrained`)."""
    limit = recursion_limit(config)
    result_ids = result_key_ids(graph, result_keys)
    strict, configurable, metadata, run_control = _run_args(graph, config, context, control)
    questions: list[Any] = []
    try:
        result = graph.direct.invoke(
            graph, input, strict, graph.start_values(), limit, _task_config_base(config),
            configurable, metadata, result_ids, config.get("max_concurrency") or None,
            stop_check, run_control, questions)
    except OutOfSteps:
        raise recursion_error(limit) from None
    except ConcurrentUpdate as e:
        raise concurrent_update_error(e.args[0]) from None
    return with_pause(result, questions, strict)


def with_pause(result: dict[str, Any], questions: list[Any], strict: bool) -> dict[str, Any]:
    """A direct run's result, given the questions its tasks paused with: they go under
    `__interrupt__`, or, for a run a task made, become that task's pause."""
    if questions:
        if not strict:  # run by a task: the pause is that task's
            raise GraphInterrupt(tuple(questions))
        result["__interrupt__"] = questions
    return result


def goes_direct(graph: CompiledStateGraph, config: dict[str, Any], parent: Any,
                parent_task: Any, interrupt_before: Any, interrupt_after: Any) -> bool:
    """Whether a run of the final values may go by a Rust driver (`invoke_direct`,
    `_direct_async.ainvoke_direct`): no breakpoint, checkpointer, callbacks, step timeout
    or calling run."""
    return (graph.direct_by_build and parent is None and interrupt_before is None
            and interrupt_after is None and graph.checkpointer in (None, True, False)
            and (parent_task is None or parent_task.scratchpad is None)
            and CONFIG_KEY_NODE_FINISHED not in config.get("configurable", ())
            and not config.get("callbacks") and graph.step_timeout is None)


def result_key_ids(graph: CompiledStateGraph, result_keys: Sequence[str] | None) -> list[int]:
    """The ids of the keys a direct run returns (None: the graph's output keys)."""
    if result_keys is None:
        return graph.default_output[-1]
    for key in result_keys:
        if key not in graph.key_ids:
            raise ValueError(f"Key {key} not in channels")
    return [graph.key_ids[k] for k in result_keys]


def _task_config_base(config: dict[str, Any]) -> dict[str, Any]:
    """What each task's config is copied from (the Rust side copies it, never changes it):
    the run's config without its run ids and with `callbacks` None; `config` itself when it
    is that already (most runs: `run_config` made it for this run)."""
    base = without_run_ids(config)
    if base is config and "callbacks" in config and config["callbacks"] is None:
        return config
    return {**base, "callbacks": None}


def _run_args(graph: CompiledStateGraph, config: dict[str, Any], context: Any,
              control: RunControl | None) -> tuple[bool, dict[str, Any], dict[str, Any], Any]:
    """What every task config of a direct run starts from: `(strict, configurable, metadata,
    run control)`."""
    configurable, metadata, runtime, strict = task_bases(graph, config, context, control)
    configurable[CONFIG_KEY_RUNTIME] = runtime
    configurable[CONFIG_KEY_RUN] = None
    configurable[CONFIG_KEY_TASK] = None
    if (run_id := config.get("run_id")) is not None:  # the tasks' runtimes have it,
        configurable[CONFIG_KEY_RUN_ID] = run_id  # not their configs (see `GraphRun`)
    return strict, configurable, metadata, runtime.control


STREAMED_MODES = frozenset(("updates", "values"))
"""The modes a direct run streams (what needs no channel: the state, step by step)."""


def streams_directly(graph: CompiledStateGraph, spec: StreamSpec, config: dict[str, Any],
                     output_keys: Any, interrupt_before: Any, interrupt_after: Any,
                     version: str) -> bool:
    """Whether a `stream` call may go by the Rust driver (`stream_direct`): one `invoke`
    could make (no breakpoint, checkpointer, callbacks, step timeout, calling run), of a graph
    whose nodes have no error handler (their two tasks' items are `GraphRun`'s), streaming
    `updates` / `values` alone, of every key, unfiltered, in `v1`'s shape."""
    if not (spec.modes and spec.modes <= STREAMED_MODES and not spec.subgraphs
            and spec.nodes is None and spec.tags is None and version == "v1"
            and output_keys is None and interrupt_before is None and interrupt_after is None
            and graph.direct_by_build and graph.checkpointer in (None, True, False)
            and graph.step_timeout is None and not config.get("callbacks")):
        return False
    configurable = config.get("configurable", ())
    if CONFIG_KEY_NODE_FINISHED in configurable or CONFIG_KEY_TASK in configurable:
        return False
    if calling_task(config) != (None, None):
        return False
    return not any(r.handler is not None for r in graph.runners.values())


def stream_direct(graph: CompiledStateGraph, input: Any, config: dict[str, Any],
                  context: Any, modes: frozenset[str],
                  control: RunControl | None) -> Iterator[list[Any]]:
    """The run's `(namespace, mode, item)` items a step at a time, on the Rust driver (see
    `DirectStream`): for a run `invoke_direct` could make that streams `modes` (of
    `STREAMED_MODES`), with every state key in its items. Closing it stops the run. Bad
    arguments raise here, at the call, as `GraphRun` raises them."""
    limit = recursion_limit(config)
    strict, configurable, metadata, run_control = _run_args(graph, config, context, control)
    run = DirectStream(
        graph.direct, graph, input, strict, graph.start_values(), limit,
        _task_config_base(config), configurable, metadata,
        graph.default_output[1], "updates" in modes, "values" in modes,
        config.get("max_concurrency") or None, run_control, [])
    return _direct_batches(run, limit)


def _direct_batches(run: DirectStream, limit: int) -> Iterator[list[Any]]:
    try:
        while (items := run.next_items()) is not None:
            yield items
    except OutOfSteps:
        raise recursion_error(limit) from None
    except ConcurrentUpdate as e:
        raise concurrent_update_error(e.args[0]) from None
    finally:
        run.close()
