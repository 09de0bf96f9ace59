"""A run's tasks: what a task is (`Task`), the run's config completed (`run_config`) and
what every task config of a run starts from (`task_bases`), and `TaskSetup`, the part of
`GraphRun` that makes a step's tasks and prepares each one as it starts: its input read from
the Rust run, its config and metadata as LangGraph builds them, and its ways to stream
(messages and tools handlers, the custom writer, the stream a graph compiled by LangGraph
that it runs sends its items to).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import (
    ensure_config,
    merge_configs,
    var_child_runnable_config,
)

from ferrograph._core import ChannelClosed, new_task_id, reseed_task_ids
from ferrograph.config import (
    CONFIG_KEY_NODE_FINISHED,
    CONFIG_KEY_RUN,
    CONFIG_KEY_RUNTIME,
    CONFIG_KEY_STREAM,
    CONFIG_KEY_TASK,
    CONFIG_KEY_TASK_ID,
    CONFIG_KEY_TIMEOUT,
)
from ferrograph.pregel._errors import note_preparing_error
from ferrograph.pregel._handlers import with_handler, without_streaming
from ferrograph.pregel._interop import ForeignStream, foreign_namespace
from ferrograph.pregel._messages import (
    AsyncTaskMessages,
    LoopProducer,
    StreamClosed,
    TaskMessages,
    iter_messages,
)
from ferrograph.pregel._stream import MODE_CUSTOM, MODE_FORWARD
from ferrograph.pregel._tools import TaskTools
from ferrograph.pregel._write import Handled, TimedArg
from ferrograph.runtime import RunControl, Runtime, run_runtime, server_info_of

if TYPE_CHECKING:
    from ferrograph.pregel._call import NodeRunner
    from ferrograph.pregel.main import CompiledStateGraph

PROPAGATED_TO_METADATA = (
    "thread_id", "checkpoint_id", "checkpoint_ns", "task_id", "run_id", "assistant_id", "graph_id",
)
DEFAULT_RECURSION_LIMIT = int(os.getenv("LANGGRAPH_DEFAULT_RECURSION_LIMIT", "10007"))
"""LangGraph 1.2's default (and the variable that changes it)."""


@dataclass(slots=True)
class Task:
    """One task of a step: a pull task (a node its triggers started) or a push task (a
    `Send`), planned by the Rust run; what it produced (writes, `updates` payload, error,
    pause) is recorded on it for the driver and the step's end."""

    index: int
    node_id: int
    name: str
    id: str
    path: tuple[Any, ...]
    triggers: tuple[str, ...]
    input: Any
    """A pull task's is read when the task is prepared (see `GraphRun._prepare`)."""
    config: dict[str, Any] | None
    """None until the task is prepared."""
    runner: NodeRunner | None
    step: int
    messages: TaskMessages | None = None
    outlet: LoopProducer | None = None
    """Under `astream`, for a task on the event loop: its non-blocking producer."""
    writes: list[tuple[int, int, Any]] = field(default_factory=list)
    update: Any = None
    """The `updates`-mode payload of this task."""
    result_writes: list[tuple[str, Any]] = field(default_factory=list)
    error: BaseException | None = None
    handled: Handled | None = None
    """When the node failed and its error handler recovered: the handler's result."""
    timeout: Any = None
    """A pushed task's own `TimeoutPolicy` (its `Send`'s)."""
    saved_writes: list[tuple[str, Any]] | None = None
    """With a checkpointer: the writes this task saved before it was interrupted (it does
    not run again; they stand in for its result)."""
    scratchpad: Any = None
    """With a checkpointer: the task's answers to its interrupts (`_checkpoint.Scratchpad`)."""
    interrupts: tuple[Any, ...] = ()
    """The interrupts the node raised (the task paused; it runs again on resume)."""
    paused: bool = False
    """The node paused the run: at `interrupt()` (`interrupts`), or at a breakpoint of a
    graph it ran (no interrupts)."""
    failed_before: BaseException | None = None
    """With a checkpointer: the node's failure saved in the thread when its error handler
    failed too (the task runs the handler again, not the node)."""
    save_failed: bool = False
    """With a checkpointer: the saver failed to store the task's writes (its failure is the
    saver's error, which is not saved for it: see `Persistence.writes_not_saved`)."""
    graphs_started: int = 0
    """Graphs this task has run so far (LangGraph's subgraph counter): the second and later
    keep their checkpoints and stream under the task's namespace plus their number."""
    node_run: Any = None
    """With user callbacks, while the node runs: its chain run (its routers nest in it)."""
    async_run: bool = False
    """With user callbacks, while the node runs: whether its run is on the async driver
    (where LangGraph runs routers through their async path, which names an unnamed one
    differently)."""
    on_retry: Any = None
    """With user callbacks, while the node runs: what starts the chain run of its next
    attempt under a retry policy, given the config and the error (returns the config)."""

    def next_graph_index(self) -> int:
        index = self.graphs_started
        self.graphs_started += 1
        return index


def without_run_ids(config: dict[str, Any]) -> dict[str, Any]:
    """What a run's task configs copy from the run's config: all of it but the run's own
    `run_id` and `run_name` (see `GraphRun.run_id`); `config` itself when it has neither
    (most runs), not a filtered copy of it."""
    if "run_id" not in config and "run_name" not in config:
        return config
    return {k: v for k, v in config.items() if k not in ("run_id", "run_name")}


def recursion_limit(config: dict[str, Any]) -> int:
    limit = config.get("recursion_limit", DEFAULT_RECURSION_LIMIT)
    if not isinstance(limit, int) or limit < 1:
        raise ValueError("recursion_limit must be at least 1")
    return limit


def task_bases(graph: CompiledStateGraph, config: dict[str, Any], context: Any,
               control: RunControl | None = None,
               ) -> tuple[dict[str, Any], dict[str, Any], Runtime, bool]:
    """What every task config of a run starts from: the caller's `configurable` without the
    engine's own keys, the run's metadata (with the run identifiers found in `configurable`,
    as LangGraph does), the runtime; and whether the run's input is the caller's own (a
    graph run as a node gets its parent's whole state: extra keys are expected there).

    The runtime's drain control is `control`, else the calling task's run's (a graph a node
    runs drains with its caller), else a new one."""
    configurable = config.get("configurable")
    if not configurable:  # most top-level runs: nothing to filter, propagate or inherit
        return ({}, dict(config.get("metadata") or {}),
                run_runtime(context, graph.store, None, control or RunControl()), True)
    base_configurable = {k: v for k, v in configurable.items()
                         if not k.startswith(("__pregel_", "__ferrograph_"))}
    metadata = dict(config.get("metadata") or {})
    if base_configurable:
        for key in PROPAGATED_TO_METADATA:
            value = base_configurable.get(key)
            if value and key not in metadata:
                metadata[key] = value
    server_info = server_info_of(configurable) if configurable else None
    store = graph.store
    if (parent := configurable.get(CONFIG_KEY_RUNTIME)) is not None:  # a graph a task runs
        server_info = server_info or getattr(parent, "server_info", None)
        control = control or getattr(parent, "control", None)
        store = getattr(parent, "store", None)  # its caller's store, as in LangGraph
    runtime = run_runtime(context, store, server_info, control or RunControl())
    return base_configurable, metadata, runtime, CONFIG_KEY_TASK not in configurable


@dataclass(slots=True)
class Step:
    """A superstep for a driver to execute: its tasks (each records its writes or error)."""

    tasks: list[Task]
    number: int


class TaskSetup:
    """Making and preparing a run's tasks: the part of `GraphRun` that does it (the
    attributes it reads are the run's)."""

    def _new_task(self, index: int, node_id: int, push: int | None, arg: Any,
                  step: int) -> Task:
        """A planned task, not prepared yet: a step's tasks are prepared as they start, so
        the first of hundreds starts (and streams) without waiting for the others'. A run
        with a thread names its tasks afterwards (`Persistence.name_tasks`): no id here."""
        graph = self.graph
        name = graph.node_names[node_id]
        timeout = None
        if push is None:
            path: tuple[Any, ...] = ("__pregel_pull", name)
            triggers = graph.triggers[node_id]
        else:
            path = ("__pregel_push", push, False)
            triggers = ("__pregel_push",)
            if type(arg) is TimedArg:  # a `Send`'s argument with a timeout of its own
                arg, timeout = arg.arg, arg.timeout
        task = Task(index, node_id, name, "" if self.saving is not None else new_task_id(),
                    path, triggers,
                    self.input if node_id == 0 else arg, None, graph.runners.get(name), step)
        if timeout is not None:
            task.timeout = timeout
        if node_id == 0 and name not in graph.branches:
            task.config = {}  # the start node only maps the input: no node code sees a config
        return task

    def prepared(self, task: Task) -> bool:
        """Prepares `task` (see `_prepare`) unless it is; False when that failed, the
        error (noted as LangGraph does) recorded as the task's."""
        if task.config is not None:
            return True
        try:
            self._prepare(task)
        except BaseException as e:  # noqa: BLE001 - recorded; the consumer raises it
            note_preparing_error(e, task.name, task.path)
            task.error = e
            return False
        return True

    def _prepare(self, task: Task) -> None:
        """Reads a pull task's input and builds the task's config and stream outlets.

        Done when the task starts, on the thread that runs it (or for the whole step at
        once when its start items show every task). Its state reads are safe then: a
        step's writes are applied only once all its tasks have ended. LangGraph too takes
        a task's input messages as already seen only once the task starts."""
        node_id, name, step = task.node_id, task.name, task.step
        pull = task.path[0] == "__pregel_pull"
        if pull and node_id != 0:
            task.input = task.runner.read_input(  # type: ignore[union-attr]
                self.run, step, self.recursion_limit)
        checkpoint_ns = f"{name}:{task.id}"
        if self.namespace:
            checkpoint_ns = "|".join((*self.namespace, checkpoint_ns))
        elif self.saving is not None and self.saving.ns:  # a thread's graph a task runs
            checkpoint_ns = f"{self.saving.ns}|{checkpoint_ns}"
        pull_metadata, push_metadata = self.graph.task_metadata[node_id]
        metadata = {
            **self.base_metadata,
            **(pull_metadata if pull else push_metadata),
            "langgraph_step": step,
            "langgraph_checkpoint_ns": checkpoint_ns,
        }
        if not pull:
            metadata["langgraph_path"] = task.path
        configurable = {
            **self._base_configurable,
            "checkpoint_ns": checkpoint_ns,
            CONFIG_KEY_RUNTIME: self._runtime,  # shared unless the task streams custom items
            CONFIG_KEY_TASK_ID: task.id,
            CONFIG_KEY_RUN: self if self.spec.modes else None,
            CONFIG_KEY_TASK: task,
        }
        if task.timeout is not None:
            configurable[CONFIG_KEY_TIMEOUT] = task.timeout
        if not pull and task.runner.reads_state:  # type: ignore[union-attr]
            # LangGraph's ToolNode given tool calls reads the state (see `_foreign`)
            configurable["__pregel_read_state"] = partial(
                task.runner.read_input, self.run, step, self.recursion_limit)  # type: ignore[union-attr]
        if self.node_finished is not None:
            configurable[CONFIG_KEY_NODE_FINISHED] = self.node_finished
        callbacks = self.user_callbacks
        if self.trace is not None:
            callbacks = self.trace.step_callbacks(step)
        if callbacks is not None and self.spec.nodes is not None \
                and name not in self.spec.nodes and name not in self.spec.inner:
            callbacks = without_streaming(callbacks)  # nobody listens: its models need not stream
        if task.runner is not None and self.spec.modes:
            callbacks = self._stream_outlets(task, callbacks, configurable, checkpoint_ns, step)
        task.config = {
            **self._task_config,
            "metadata": metadata,
            "callbacks": callbacks,
            "configurable": configurable,
        }

    def _stream_outlets(self, task: Task, callbacks: Any, configurable: dict[str, Any],
                        checkpoint_ns: str, step: int) -> Any:
        """Gives a subscribed task its ways to stream: the messages and tools handlers (added
        to the callbacks returned), the custom writer (in its runtime) and, when its subgraphs'
        items stream, the stream a graph compiled by LangGraph sends its items to (see
        `_interop`)."""
        spec, name, runner = self.spec, task.name, task.runner
        wants_messages, wants_custom = spec.wants("messages", name), spec.wants("custom", name)
        wants_tools = spec.wants("tools", name)
        forwards = spec.forwards(name)
        if (wants_messages or wants_custom or wants_tools) and self.aloop is not None \
                and runner.on_loop:  # type: ignore[union-attr]
            self.aloop.outlet_of(task, self.channel.producer(task.node_id, task.index, step))
        if wants_messages:
            seen = self.seen_messages
            seen.update(m.id for m in iter_messages(task.input) if m.id is not None)
            if task.outlet is not None:
                task.messages = AsyncTaskMessages(task.outlet, seen, spec.tags, checkpoint_ns,
                                                  self.namespace, forwards)
            else:
                producer = self.channel.producer(task.node_id, task.index, step)
                task.messages = TaskMessages(producer, seen, spec.tags, checkpoint_ns,
                                             self.namespace, forwards)
            callbacks = with_handler(callbacks, task.messages)
        if wants_tools:
            producer = task.outlet or self.channel.producer(task.node_id, task.index, step)
            callbacks = with_handler(callbacks, TaskTools(producer, checkpoint_ns,
                                                          self.namespace, forwards))
        if wants_custom:
            writer = self._writer_for(task, checkpoint_ns if forwards else None)
            configurable[CONFIG_KEY_RUNTIME] = self._runtime.override(stream_writer=writer)
        if forwards:
            configurable[CONFIG_KEY_STREAM] = ForeignStream(self, task)
        return callbacks

    def _writer_for(self, task: Task, forwarding_ns: str | None) -> Callable[[Any], None]:
        """The task's custom writer. With `forwarding_ns` (the task's namespace, when its
        subgraphs' items stream), items written by a graph compiled by LangGraph that the
        task runs (whose nodes call this writer, their caller's) go out under their own
        namespace, as LangGraph's writer sends them."""
        producer = task.outlet or self.channel.producer(task.node_id, task.index)

        def write(item: Any) -> None:
            try:
                producer.push(MODE_CUSTOM, item)
            except ChannelClosed:
                raise StreamClosed from None  # nobody reads this stream any more

        if forwarding_ns is None:
            return write

        def write_any(item: Any) -> None:
            ns = foreign_namespace(forwarding_ns)
            if ns is None:
                write(item)
                return
            try:
                producer.push(MODE_FORWARD, (ns, "custom", item))
            except ChannelClosed:
                raise StreamClosed from None

        return write_any


def calling_persisted_task(config: dict[str, Any]) -> Task | None:
    """The task of a persisted run that runs this graph (None: not run by one)."""
    configurable = config.get("configurable") or {}
    task = configurable.get(CONFIG_KEY_TASK)
    if task is None or configurable.get(CONFIG_KEY_TASK_ID) != task.id:
        return None
    return None if task.scratchpad is None else task


def numbered_config(config: dict[str, Any], index: int) -> dict[str, Any]:
    """The config of the `index`th graph a task runs: from the second on, its checkpoint
    namespace is the task's plus the number (`node:<id>|1`), as LangGraph numbers them."""
    if not index:
        return config
    configurable = config.get("configurable") or {}
    ns = configurable.get("checkpoint_ns", "")
    return {**config, "configurable": {**configurable,
                                       "checkpoint_ns": f"{ns}|{index}" if ns else str(index)}}


# Task ids are a per-process random prefix and a counter (see `rust/src/task_id.rs`): a forked
# child draws its own prefix so that it does not repeat the parent's ids.
os.register_at_fork(after_in_child=reseed_task_ids)


def run_config(config: RunnableConfig | None,
                base: RunnableConfig | None = None) -> dict[str, Any]:
    """The run's config, completed as LangGraph does: `config` over the graph's own
    (`base`, from `with_config`), and LangGraph's default recursion limit (not
    langchain-core's 25) unless the caller, the graph or an enclosing run set one."""
    if base:
        config = merge_configs(base, config)
    parent = var_child_runnable_config.get()
    if not config and not parent:
        # A bare call outside any run (most calls): what `ensure_config` makes of nothing,
        # without its copying and filtering passes (a tenth of a small graph's `invoke`).
        return {"tags": [], "metadata": {}, "callbacks": None,
                "recursion_limit": DEFAULT_RECURSION_LIMIT, "configurable": {}}
    limit = (config or {}).get("recursion_limit")
    if limit is None and parent:
        limit = parent.get("recursion_limit")
    config = ensure_config(config)
    config["recursion_limit"] = DEFAULT_RECURSION_LIMIT if limit is None else limit
    return config
