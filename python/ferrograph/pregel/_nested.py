"""A graph run by a task of another run (a subgraph, or a graph a node calls): which run
and task call it (`calling_task`), and its run nested in theirs — on the caller's event
loop when the caller is driven there, its items forwarded into the caller's channel when
the caller streams subgraphs, its checkpoints in the caller's thread under the task's
namespace. And which graph a node runs (`subgraph_of`), for snapshots and drawings.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langchain_core.runnables.utils import get_function_nonlocals

from ferrograph._schema import ROOT
from ferrograph.config import CONFIG_KEY_RUN, CONFIG_KEY_TASK, CONFIG_KEY_TASK_ID
from ferrograph.pregel import _sync
from ferrograph.pregel._async import AsyncDriver
from ferrograph.pregel._loop import GraphRun
from ferrograph.pregel._stream import MODE_FORWARD, StreamSpec
from ferrograph.pregel._task import Task, numbered_config
from ferrograph.runtime import RunControl

if TYPE_CHECKING:
    from ferrograph.pregel.main import CompiledStateGraph


def calling_task(config: RunnableConfig) -> tuple[GraphRun | None, Task | None]:
    """The ferrograph run (None when it streams nothing) and task calling this graph (None
    for a task of the Rust driver). Neither when the config is not the task's own but that
    of a task of a graph compiled by LangGraph which the task runs (LangGraph hands its
    tasks the config it was given, our keys included): that graph runs in between."""
    configurable = config.get("configurable")
    if not configurable:  # a top-level run given no `configurable`: no caller
        return None, None
    task = configurable.get(CONFIG_KEY_TASK)
    if task is not None and configurable.get(CONFIG_KEY_TASK_ID) != task.id:
        return None, None
    return configurable.get(CONFIG_KEY_RUN), task


def on_its_loop(run: GraphRun) -> bool:
    """Whether `run` is driven on the event loop running now (a node of an `astream` run
    calling a subgraph from that loop)."""
    return run.aloop is not None and run.aloop.on_this_loop()


def invoke_nested(graph: CompiledStateGraph, input: Any, config: RunnableConfig,
                  parent: GraphRun, parent_task: Task, keys: Sequence[str] | None,
                  control: RunControl | None) -> Any:
    """Runs `graph` as a node of `parent`: streams into the parent's run when it asks for it."""
    run, producer = nested_run(graph, input, config, parent, parent_task, keys, control)
    if producer is not None and on_its_loop(parent):
        # Called synchronously by a node running on the parent's event loop: a push
        # that waited for room there would stop the very loop that makes room.
        producer = parent.aloop.outlet_of(parent_task, producer)  # type: ignore[union-attr]
    for batch in _sync.batches(run):
        if producer is not None:
            for item in batch:
                producer.push(MODE_FORWARD, item)
    return run.final_values


async def ainvoke_nested(graph: CompiledStateGraph, input: Any, config: RunnableConfig,
                         parent: GraphRun, parent_task: Task, keys: Sequence[str] | None,
                         control: RunControl | None) -> Any:
    """`invoke_nested` on the loop of a parent run by `astream`."""
    run, producer = nested_run(graph, input, config, parent, parent_task, keys, control)
    if producer is None:
        await AsyncDriver(run).run_to_end()
        return run.final_values
    outlet = parent.aloop.outlet_of(parent_task, producer)  # type: ignore[union-attr]
    async with aclosing(AsyncDriver(run).batches()) as batches:
        async for batch in batches:
            for item in batch:
                outlet.push(MODE_FORWARD, item)
            if outlet.backlog:
                await outlet.flush()  # the parent's consumer is behind: wait for it
    return run.final_values


def nested_run(graph: CompiledStateGraph, input: Any, config: RunnableConfig,
               parent: GraphRun, parent_task: Task, keys: Sequence[str] | None,
               control: RunControl | None) -> tuple[GraphRun, Any]:
    """The run of `graph` as a node of `parent`, and the producer its items are
    forwarded through (None when the parent does not stream them)."""
    if graph.root and keys == [ROOT]:  # its items are bare values too
        keys = ROOT  # type: ignore[assignment]
    configurable = {k: v for k, v in config.get("configurable", {}).items()
                    if k not in (CONFIG_KEY_RUN, CONFIG_KEY_TASK)}
    index = parent_task.next_graph_index()
    config = numbered_config({**config, "configurable": configurable}, index)
    # A graph compiled with `checkpointer=True` keeps one history per thread: its items
    # stream under the node's name alone, as LangGraph's do.
    namespace = (*parent.namespace, parent_task.name if graph.checkpointer is True
                 else f"{parent_task.name}:{parent_task.id}",
                 *((str(index),) if index else ()))
    if parent.spec.forwards(parent_task.name):
        inner = parent.spec.inner.get(parent_task.name)
        spec = StreamSpec(parent.spec.modes, True, inner, tags=parent.spec.tags,
                          state_objects=parent.spec.state_objects)
        producer = parent.channel.producer(parent_task.node_id, parent_task.index)
    else:
        spec, producer = StreamSpec(frozenset()), None
    run = GraphRun(graph, input, config, spec, namespace=namespace,
                   context=parent.context, output_keys=keys,
                   seen_messages=parent.seen_messages, strict_input=False,
                   control=control, caller_thread=(
                       None if parent_task.scratchpad is None
                       else parent_task.scratchpad.persistence))
    return run, producer


def subgraph_of(action: Any) -> Any:
    """The graph a node runs, found as LangGraph finds it: the node itself, a step of a
    sequence, or a graph a function node refers to (`sub.invoke(...)` in its body). A graph
    compiled with `checkpointer=False` does not count."""
    from ferrograph.pregel.main import CompiledStateGraph

    candidates: list[Any] = [action]
    if not isinstance(action, Runnable) and callable(action):
        candidates.extend(_nonlocals(action))
    for c in candidates:
        if isinstance(c, CompiledStateGraph) or (
                isinstance(c, Runnable) and hasattr(c, "get_subgraphs")
                and hasattr(c, "get_graph")):
            if getattr(c, "checkpointer", None) is not False:
                return c
        elif isinstance(c, RunnableLambda):
            candidates.extend(c.deps)
        elif isinstance(c, Runnable) and isinstance(getattr(c, "steps", None), list):
            candidates.extend(c.steps)  # RunnableSequence, LangGraph's RunnableSeq
        elif isinstance(c, Runnable) and hasattr(c, "func") and hasattr(c, "afunc"):
            candidates.extend(_nonlocals(c.func if c.func is not None else c.afunc))
    return None


def _nonlocals(fn: Any) -> list[Any]:
    if fn is None:
        return []
    try:
        found = get_function_nonlocals(fn)
    except Exception:  # noqa: BLE001 - a callable whose source cannot be read
        return []
    return [getattr(v, "__self__", v) for v in found]
