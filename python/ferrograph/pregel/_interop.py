"""A graph compiled by LangGraph inside a ferrograph run (a node of ours, or run by one).

LangGraph's run reads a few entries of the task config it is given, with LangGraph's meaning:
`checkpoint_ns` and `__pregel_task_id` (it runs as that task's subgraph, its namespace below
the task's), `__pregel_runtime` (our `Runtime`: its context and store), and `__pregel_stream`
(`ForeignStream` below: the stream its items also go to). Those are the only LangGraph keys
a task config carries (but for a node LangGraph's own code wrote: see `_foreign`);
ferrograph's own objects live under `__ferrograph_*` keys.

What reaches our run's stream from LangGraph's, when the caller streams subgraphs:
- items of its stream modes (`values`, `updates`, `custom` of nodes using the writer LangGraph
  gives them, `tasks`, `debug`), through `ForeignStream`, already as `(namespace, mode, item)`;
- `custom` items of nodes using the task's writer (LangGraph hands its nodes their caller's),
  through that writer, which tells them apart by the config they are written under
  (`foreign_namespace`);
- `messages`: its models' tokens and its nodes' output messages, through the task's
  `TaskMessages` handler, inherited by everything the task runs, which tells them apart by
  the namespace in their metadata (`_messages.graph_namespace`).
Nothing of it is streamed otherwise, as in LangGraph.

No LangGraph import here: everything is read by attribute, so ferrograph does not need
LangGraph installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.runnables.config import var_child_runnable_config

from ferrograph._core import ChannelClosed
from ferrograph.pregel._messages import StreamClosed
from ferrograph.pregel._stream import MODE_FORWARD

if TYPE_CHECKING:
    from ferrograph.pregel._loop import GraphRun
    from ferrograph.pregel._task import Task

NS_SEP = "|"


def foreign_namespace(own_ns: str) -> tuple[str, ...] | None:
    """The namespace of the graph whose task is running now, when it is not the task whose
    namespace is `own_ns` (None: it is that task, or no task at all)."""
    config = var_child_runnable_config.get()
    if not config:
        return None
    ns = (config.get("configurable") or {}).get("checkpoint_ns")
    if not ns or ns == own_ns:
        return None
    return tuple(ns.split(NS_SEP)[:-1])


class ForeignStream:
    """What a LangGraph run nested in a task finds under `__pregel_stream` (LangGraph's
    `StreamProtocol`: `modes`, and a call per `(namespace, mode, item)`): its items join the
    task's own in our run's chunk channel, as a ferrograph subgraph's do.

    Given to a task only when its subgraphs' items stream to the caller, so a LangGraph run
    streams nothing to a caller that did not ask for subgraphs, as in LangGraph."""

    __slots__ = ("modes", "_run", "_task", "_producer")

    def __init__(self, run: GraphRun, task: Task) -> None:
        self.modes = set(run.spec.modes)
        self._run = run
        self._task = task
        self._producer: Any = None

    def __call__(self, chunk: tuple[tuple[str, ...], str, Any]) -> None:
        run = self._run
        try:
            if run.aloop is not None and run.aloop.on_this_loop():
                # On the consumer's own event loop (LangGraph's `astream` in an async node):
                # a push that waited for room would stop the loop that makes room.
                producer = run.aloop.outlet_of(self._task, self._blocking())
            else:
                producer = self._blocking()
            producer.push(MODE_FORWARD, chunk)
        except ChannelClosed:
            raise StreamClosed from None  # nobody reads this stream any more

    def _blocking(self) -> Any:
        producer = self._producer
        if producer is None:
            task = self._task
            producer = self._producer = self._run.channel.producer(  # type: ignore[union-attr]
                task.node_id, task.index)
        return producer


def is_langgraph_graph(action: Any) -> bool:
    """Whether a node's action is a graph compiled by LangGraph (a `Pregel`)."""
    return any(c.__name__ == "Pregel" and c.__module__.startswith("langgraph.")
               for c in type(action).__mro__)


def langgraph_task_config(config: dict[str, Any]) -> dict[str, Any]:
    """The task's config for a graph compiled by LangGraph that is the task's node: its
    runtime as LangGraph's `Runtime`, which LangGraph takes as its parent runtime whole (it
    keeps only the `context` of any other object), so that the graph shares the run's drain
    control as a LangGraph subgraph does. LangGraph is imported here only: the node is one
    of LangGraph's graphs, so it is installed."""
    from langgraph.runtime import Runtime as LangGraphRuntime

    from ferrograph.config import CONFIG_KEY_RUNTIME
    from ferrograph.runtime import Runtime, task_runtime

    ours = task_runtime(config)
    if not isinstance(ours, Runtime):
        return config
    theirs = LangGraphRuntime(
        context=ours.context, store=ours.store, stream_writer=ours.stream_writer,
        heartbeat=ours.heartbeat, previous=ours.previous, execution_info=None,
        server_info=ours.server_info, control=ours.control)  # type: ignore[arg-type]
    return {**config, "configurable": {**config["configurable"], CONFIG_KEY_RUNTIME: theirs}}
