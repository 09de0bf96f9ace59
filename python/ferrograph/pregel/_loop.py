"""One run of a compiled graph: its state, its supersteps and its tasks.

`GraphRun` holds a run's state around the Rust scheduler (`Run`, which plans each step's
tasks and applies their writes) and describes the run once for every driver:
`supersteps()` yields, step after step, the items before the step, a `Step` for the driver
to execute, and the items after it (the step's writes are applied between those). A task
is prepared (input read, config and stream outlets built) on the thread that starts it, run
by `run_task`, and its result turned into writes (`_write`).

The drivers execute the steps: `_sync.batches` for `stream`/`invoke` (the consumer thread
drains the chunk channel while nodes run on worker threads), `_async.AsyncDriver` for
`astream`/`ainvoke` (the event loop is the consumer; async nodes are its tasks). Whatever is
produced off the consumer's thread (tokens, custom items, task completions, subgraph items)
travels through one bounded `ChunkChannel`, drained a batch at a time.

Checkpointing and interrupts hook in at `supersteps()`: before a step (breakpoints) and
after its writes are applied.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import TYPE_CHECKING, Any

from ferrograph._core import (
    ChannelClosed,
    ChunkChannel,
    ConcurrentUpdate,
    OutOfSteps,
    Run,
    new_task_id,
    reseed_task_ids,
)
from ferrograph._schema import managed_values
from ferrograph.config import (
    CONFIG_KEY_NODE_FINISHED,
    CONFIG_KEY_RUN,
    CONFIG_KEY_RUN_ID,
    CONFIG_KEY_RUNTIME,
    CONFIG_KEY_STREAM,
    CONFIG_KEY_TASK,
    CONFIG_KEY_TASK_ID,
    CONFIG_KEY_TIMEOUT,
)
from ferrograph.errors import (
    GraphDrained,
    GraphInterrupt,
    GraphRecursionError,
    is_interrupt,
    is_invalid_resume,
)
from ferrograph.pregel._checkpoint import Persistence
from ferrograph.pregel._errors import (
    concurrent_update_error,
    note_preparing_error,
    note_task_error,
    recursion_error,
    reports_failure,
)
from ferrograph.pregel._interop import ForeignStream, foreign_namespace
from ferrograph.pregel._messages import (
    AsyncTaskMessages,
    LoopProducer,
    StreamClosed,
    TaskMessages,
    iter_messages,
    user_tags,
)
from ferrograph.pregel._stream import (
    CHANNEL_CAPACITY,
    MODE_CUSTOM,
    MODE_DONE,
    MODE_FORWARD,
    MODE_NAMES,
    StreamSpec,
    open_channel,
)
from ferrograph.pregel._tools import TaskTools
from ferrograph.pregel._trace import (
    RunTrace,
    areport_pause,
    report_pause,
    report_resume,
    traced_start,
    traced_task,
    with_handler,
    without_our_handlers,
    without_streaming,
)
from ferrograph.pregel._write import (
    PUSHED_WRITES,
    Handled,
    TimedArg,
    branch_writes,
    map_input,
    output_writes,
    result_dict,
    update_payload,
    with_pushed,
)
from ferrograph.runtime import RunControl, Runtime, run_runtime, server_info_of
from ferrograph.types import Command

if TYPE_CHECKING:
    from ferrograph.pregel._async import AsyncDriver
    from ferrograph.pregel._call import NodeRunner
    from ferrograph.pregel.main import CompiledStateGraph

PROPAGATED_TO_METADATA = (
    "thread_id", "checkpoint_id", "checkpoint_ns", "task_id", "run_id", "assistant_id", "graph_id",
)
DEFAULT_RECURSION_LIMIT = int(os.getenv("LANGGRAPH_DEFAULT_RECURSION_LIMIT", "10007"))
"""LangGraph 1.2's default (and the variable that changes it)."""
ENGINE_METADATA_KEYS = frozenset((
    "thread_id", "checkpoint_id", "checkpoint_ns", "checkpoint_map", "langgraph_step",
    "langgraph_node", "langgraph_triggers", "langgraph_path", "langgraph_checkpoint_ns",
))
"""Task metadata the engine sets itself (left out of `tasks` payloads)."""

Item = tuple[tuple[str, ...], str, Any]
"""A run's stream item: `(namespace, mode, payload)`."""
_NO_ITEMS: tuple[()] = ()
"""What a step hands on when it has no items (most steps of most runs): no list made."""


@dataclass(slots=True)
class Task:
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


class GraphRun:
    """One run of `graph` on `input`, producing `(namespace, mode, item)` items for what
    `spec` subscribes to. A driver executes it (see the module doc)."""

    def __init__(
        self,
        graph: CompiledStateGraph,
        input: Any,
        config: dict[str, Any],
        spec: StreamSpec,
        *,
        namespace: tuple[str, ...] = (),
        context: Any = None,
        output_keys: Sequence[str] | None = None,
        result_keys: Sequence[str] | None = None,
        seen_messages: set[str] | None = None,
        strict_input: bool | None = None,
        buffer_size: int = CHANNEL_CAPACITY,
        interrupt_before: frozenset[int] | None = None,
        interrupt_after: frozenset[int] | None = None,
        stop_check: Callable[[], None] | None = None,
        control: RunControl | None = None,
        durability: Any = None,
        caller_thread: Persistence | None = None,
    ) -> None:
        self.graph = graph
        self.stop_check = stop_check
        """Called before each step; what it raises stops the run there."""
        # Per-run breakpoints replace the compiled ones, as in LangGraph.
        self.interrupt_before = (graph.interrupt_before if interrupt_before is None
                                 else interrupt_before)
        self.interrupt_after = graph.interrupt_after if interrupt_after is None else interrupt_after
        self.input = input
        self.config = config
        self.run_id = config.get("run_id")
        """The id the run's chain run takes (the caller's `run_id`): not its tasks'."""
        self._task_config = {k: v for k, v in config.items() if k not in ("run_id", "run_name")}
        self.trace: RunTrace | None = None
        """With user callbacks: the run's chain run (see `_trace`)."""
        self.pause_status = "pending"
        """LangGraph's loop status when the run paused (a breakpoint's, or `pending`)."""
        self.resume_reported = False
        """Whether the lifecycle handlers were told the run resumed (see `_trace`)."""
        self.streams_outputs = False
        """Whether this is a run LangGraph makes through `astream` (`astream`, `ainvoke`):
        the caller's streaming handlers are then handed each node's output, as LangGraph
        streams its nodes there only (and its routers take their async path)."""
        self.spec = spec
        self.namespace = namespace
        self.context = context
        # As in LangGraph: `values` items carry every state key unless `output_keys` says
        # otherwise, while the run's result (what `invoke` returns) has the output schema's.
        # A single key name (not a list) makes items that key's bare value, as in LangGraph.
        self.single_key = output_keys if isinstance(output_keys, str) else None
        if self.single_key is not None:
            output_keys = [self.single_key]
        keys = graph.key_ids
        for key in (*(output_keys or ()), *(result_keys or ())):
            if key not in keys:
                raise ValueError(f"Key {key} not in channels")
        if output_keys is None and result_keys is None:
            (self.output_names, self.output_ids, self.output_id_set, self.output_name_set,
             self.result_ids) = graph.default_output
        else:
            self.output_names = list(output_keys or graph.key_names)
            self.output_ids = [keys[k] for k in self.output_names]
            self.output_id_set = frozenset(self.output_ids)
            self.output_name_set = frozenset(self.output_names)
            if result_keys is None:
                result_keys = output_keys if output_keys is not None else graph.output_keys
            self.result_ids = [keys[k] for k in result_keys]
        self.recursion_limit = limit = recursion_limit(config)
        if not isinstance(buffer_size, int) or buffer_size < 1:
            raise ValueError(f"buffer_size must be a positive int, got {buffer_size!r}")
        self.buffer_size = buffer_size
        self.max_concurrency = config.get("max_concurrency") or None
        self._wants_updates = "updates" in spec.modes
        self._wants_values = "values" in spec.modes
        self._prepare_early = "tasks" in spec.modes or "debug" in spec.modes
        """Whether a step's tasks are all prepared when it is planned: its start items show
        each task's input and metadata."""
        self.channel: ChunkChannel | None = None
        self.final_values: dict[str, Any] = {}
        self.paused: list[Any] = []
        """The questions of the nodes that paused the run at `interrupt()`."""
        self.interrupted = False
        callbacks = config.get("callbacks")
        # Run from a task with a config of its own (the task's keys gone): a graph of its
        # own, whose items a caller streaming subgraphs still takes, as in LangGraph.
        own_graph = not namespace and CONFIG_KEY_TASK not in config.get("configurable", {})
        self.user_callbacks = None if callbacks is None else without_our_handlers(
            callbacks, own_graph)
        self.node_finished = config.get("configurable", {}).get(CONFIG_KEY_NODE_FINISHED)
        """LangGraph's node-finished callback, when the caller gave one."""
        self.nested = bool(namespace) or not own_graph
        """Run by a task: a pause (interrupt, breakpoint) pauses that task."""
        (self._base_configurable, self.base_metadata, self._runtime,
         is_callers_input) = task_bases(graph, config, context, control)
        if self.run_id is not None:
            self._base_configurable[CONFIG_KEY_RUN_ID] = self.run_id
        self.control: RunControl = self._runtime.control  # type: ignore[assignment]
        """Asked before each step whether to stop there (`RunControl.request_drain`)."""
        self.strict_input = is_callers_input if strict_input is None else strict_input
        self.seen_messages: set[str] = seen_messages if seen_messages is not None else set()
        """Ids of messages already emitted in `messages` mode, shared with subgraph runs."""
        self.aloop: AsyncDriver | None = None
        """The driver, when this run is driven on an event loop (`astream`, `ainvoke`)."""
        self.saving: Persistence | None = None
        """The run's thread, when the graph has a checkpointer (see `_checkpoint`)."""
        saver = graph.checkpointer
        caller = caller_thread
        if caller is None and (calling := calling_persisted_task(config)) is not None:
            caller = calling.scratchpad.persistence
            self.config = config = numbered_config(config, calling.next_graph_index())
        if saver not in (None, True, False) and caller is None:
            self.saving = Persistence(graph, saver, config, durability)
        elif caller is not None and saver is not False:
            # A graph run by a task of a persisted run keeps its checkpoints in the same
            # thread, under the task's namespace (LangGraph's subgraph persistence).
            self.saving = caller.nested(graph, config)
        self._streams_checkpoints = self.saving is not None and (
            "checkpoints" in spec.modes or "debug" in spec.modes)
        if self.saving is not None:
            self.run = None  # type: ignore[assignment]  # the thread's: see `begin`
        else:
            self.run = Run(graph.plan, graph.reducers, graph.start_values(), limit)

    # -- the superstep loop, as every driver runs it ------------------------------------------

    def begin(self) -> None:
        """Loads the thread the run continues (a run with a checkpointer; the drivers call
        this, or `abegin` on an event loop, before the first step)."""
        if self.run is None:
            self.run = self.saving.start(self, self.input)  # type: ignore[union-attr]

    async def abegin(self) -> None:
        if self.run is None:
            self.run = await self.saving.astart(self, self.input)  # type: ignore[union-attr]

    def supersteps(self) -> Iterator[list[Item] | Step]:
        """The run, step after step: lists of items to hand on, and for each step a `Step`
        that the driver executes before it asks for what follows (the items after the step,
        its writes applied). Ends when no task is left, or at a breakpoint.

        A step is `plan_step`, `before_step`, the driver's execution, `after_step`; a driver
        that hands on no items (`ainvoke`) calls those three itself rather than pay for a
        generator."""
        self.begin()
        report_resume(self)
        if self.saving is not None and self.saving.resumed and self._wants_values:
            # A resumed run first shows the state it resumes from, as LangGraph's does.
            yield [self.emit("values", self.values_item(self.run.read(self.output_ids)))]
        while True:
            try:
                tasks = self.plan_step()
            except GraphRecursionError:
                if self._streams_checkpoints:  # the last checkpoint saved, as LangGraph does
                    yield list(self._checkpoint_items([]))
                raise
            if not tasks:
                break
            number = self.run.step
            if self._streams_checkpoints:
                yield list(self._checkpoint_items(tasks))
            items, stop = self.before_step(tasks, number)
            if items:
                yield items
            if stop:
                return
            yield Step(tasks, number)
            items, stop = self.after_step(tasks)
            if items:
                yield items
            if stop:
                return
        if self._streams_checkpoints:
            yield list(self._checkpoint_items([]))
        self.final_values = self.run.read(self.result_ids)

    def plan_step(self) -> list[Task]:
        """The tasks of the next superstep (none: the run is over)."""
        if self.stop_check is not None:
            self.stop_check()
        run = self.run
        try:
            planned = run.next_tasks()
        except OutOfSteps:
            raise recursion_error(self.recursion_limit) from None
        step = run.step
        tasks = [self._new_task(i, node_id, push, arg, step)
                 for i, (node_id, push, arg) in enumerate(planned)]
        if self.saving is not None and tasks:
            self.saving.name_tasks(tasks, step)
        if self._prepare_early:
            for t in tasks:
                if not self.prepared(t):
                    raise t.error  # type: ignore[misc]
        return tasks

    def _apply_step(self, tasks: list[Task]) -> list[int]:
        """Applies the step's writes; returns the ids of the state keys written."""
        try:
            return self.run.apply([(t.index, t.writes) for t in tasks])
        except ConcurrentUpdate as e:
            raise concurrent_update_error(e.args[0]) from None
        finally:
            # A task's config refers back to the task (and to this run): dropping it now
            # frees each task when the step ends, instead of leaving cycles for the
            # collector, whose full passes over them cost more than the step itself.
            for t in tasks:
                t.config = {}

    def _interrupts(self, tasks: list[Task], which: frozenset[int], status: str) -> bool:
        if which and any(t.node_id in which for t in tasks if t.node_id != 0) and (
                self.saving is None or self.saving.should_interrupt(self.run)):
            self.interrupted = True
            self.pause_status = status
            return True
        return False

    def before_step(self, tasks: list[Task], step: int) -> tuple[list[Any] | tuple[()], bool]:
        """The items before a step's tasks run, and whether the run stops there."""
        # (Most runs have no breakpoints: no call to look for them.)
        if self.interrupt_before and self._interrupts(tasks, self.interrupt_before,
                                                           "interrupt_before"):
            if self.nested:  # the breakpoint pauses the task that runs this graph
                raise GraphInterrupt(())
            return list(self._interrupt_items()), True
        if self.control.drain_requested:  # after breakpoints, as in LangGraph
            raise GraphDrained(self.control.drain_reason or "shutdown")
        items: list[Any] | tuple[()] = _NO_ITEMS
        if self._prepare_early:  # `tasks` or `debug` mode: the start items
            items = list(self._task_start_items([t for t in tasks if t.node_id != 0], step))
        if self.saving is not None and any(t.saved_writes is not None for t in tasks):
            items = [*items, *self._reused_items(tasks)]
        return items, False

    def _reused_items(self, tasks: list[Task]) -> Iterator[Any]:
        """Tasks that finished before the thread paused take their saved writes now; their
        updates go out first, marked as LangGraph marks them (`cached`)."""
        for t in tasks:
            if t.saved_writes is None:
                continue
            self.reuse_saved(t)
            if self.spec.wants("updates", t.name) and t.node_id != 0:
                yield self.emit("updates", {t.name: t.update,
                                            "__metadata__": {"cached": True}})

    def after_step(self, tasks: list[Task]) -> tuple[list[Any] | tuple[()], bool]:
        """Applies the step's writes; the items that follows, and whether the run stops."""
        spec = self.spec
        if not any(t.paused for t in tasks):
            paused = None
        else:
            paused = [i for t in tasks for i in t.interrupts]
        if paused is not None and self.nested:
            # A graph run by a task pauses that task: the question goes up to the run
            # that has the caller (its thread holds this graph's checkpoints).
            self._apply_step(tasks)
            self.interrupted = True
            raise GraphInterrupt(tuple(paused))
        written = self._apply_step(tasks)
        if paused is not None:
            # The step stays open in the thread (its writes are saved); the caller sees
            # the state with them applied, and the questions, as from LangGraph.
            self.interrupted = True
            self.final_values = self.run.read(self.result_ids)
            self.paused = paused
            items = []
            if self._wants_values and self.output_id_set.intersection(written):
                items.append(self.emit("values", self.values_item(
                    self.run.read(self.output_ids))))
            if not paused and "updates" in self.spec.modes:  # paused by a graph's breakpoint
                items.append(self.emit("updates", {"__interrupt__": ()}))
            return items, True
        if self.saving is not None:
            self.saving.save(self.run, "loop")
            self.saving.resumed = False  # graphs its later tasks run start afresh
        items: list[Any] | tuple[()] = _NO_ITEMS
        if self._wants_values and self.output_id_set.intersection(written):
            if spec.nodes is None or any(spec.wants("values", t.name) for t in tasks):
                items = [self.emit("values", self.values_item(self.run.read(self.output_ids)))]
        if self.interrupt_after and self._interrupts(tasks, self.interrupt_after,
                                                         "interrupt_after"):
            if self.nested:
                raise GraphInterrupt(())
            if self._streams_checkpoints:
                following = self.plan_step()
                items = [*items, *self._checkpoint_items(following)]
            return [*items, *self._interrupt_items()], True
        return items, False

    def _checkpoint_items(self, tasks: list[Task]) -> Iterator[Any]:
        """The `checkpoints` (and `debug`) item of the thread's newest checkpoint, with the
        tasks of the step that starts from it, as LangGraph streams it."""
        saving = self.saving
        if saving is None:
            return
        payload = saving.checkpoint_payload(
            self.values_item(self.run.read(self.output_ids)), tasks, self.output_name_set)
        if "checkpoints" in self.spec.modes:
            yield self.emit("checkpoints", payload)
        if "debug" in self.spec.modes:
            yield self.emit("debug", {"step": saving.metadata.get("step"),
                                      "timestamp": saving.checkpoint["ts"],
                                      "type": "checkpoint", "payload": payload})

    def _interrupt_items(self) -> Iterator[Any]:
        self.final_values = self.run.read(self.result_ids)
        if "updates" in self.spec.modes:
            yield self.emit("updates", {"__interrupt__": ()})

    def _task_start_items(self, tasks: list[Task], step: int) -> Iterator[Any]:
        spec = self.spec
        if "tasks" not in spec.modes and "debug" not in spec.modes:
            return
        for t in tasks:
            payload = {"id": t.id, "name": t.name, "input": t.input, "triggers": t.triggers}
            # The user's metadata (run and node) and tags ride along, as in LangGraph.
            metadata = {k: v for k, v in t.config["metadata"].items()
                        if k not in ENGINE_METADATA_KEYS}
            if tags := user_tags(t.config.get("tags")):
                metadata["tags"] = tags
            if metadata:
                payload["metadata"] = metadata
            if spec.wants("tasks", t.name):
                yield self.emit("tasks", payload)
            if spec.wants("debug", t.name):
                yield self.emit("debug", debug_item("task", step, payload))

    def task_end_items(self, t: Task, step: int) -> Iterator[Any]:
        """The items of a task's end: its update, and its result in `tasks`/`debug` modes
        (for a failed task, only the result, with its error, as LangGraph streams it before
        raising)."""
        spec = self.spec
        if t.node_id == 0 or t.saved_writes is not None:  # (a reused task's went out first)
            return
        if t.paused:
            yield from self._paused_items(t, step)
            return
        error = t.error
        if error is not None and not reports_failure(error):
            return
        if t.handled is not None:
            yield from self._handled_end_items(t, step)
            return
        if error is None and spec.wants("updates", t.name):
            yield self.emit("updates", {t.name: t.update})
        if "tasks" in spec.modes or "debug" in spec.modes:
            payload = {
                "id": t.id,
                "name": t.name,
                "error": error,
                "result": result_dict(t.result_writes) if error is None else {},
                "interrupts": [],
            }
            if spec.wants("tasks", t.name):
                yield self.emit("tasks", payload)
            if spec.wants("debug", t.name):
                yield self.emit("debug", debug_item("task_result", step, payload))

    def _paused_items(self, t: Task, step: int) -> Iterator[Any]:
        """The items of a task that paused at `interrupt()`, as LangGraph streams them."""
        spec, paused = self.spec, {"__interrupt__": t.interrupts}
        if not t.interrupts:  # a graph it ran stopped at a breakpoint: said once, at the end
            return
        if spec.wants("updates", t.name):
            yield self.emit("updates", paused)
        if spec.wants("values", t.name):
            if self.single_key is not None:
                yield self.emit("values", paused)
            else:
                yield self.emit("values", {**self.run.read(self.output_ids), **paused})
        if "tasks" in spec.modes or "debug" in spec.modes:
            payload = {"id": t.id, "name": t.name, "error": None, "result": {},
                       "interrupts": [{"value": i.value, "id": i.id,
                                       "response_schema": i.response_schema}
                                      for i in t.interrupts]}
            if spec.wants("tasks", t.name):
                yield self.emit("tasks", payload)
            if spec.wants("debug", t.name):
                yield self.emit("debug", debug_item("task_result", step, payload))

    def _handled_end_items(self, t: Task, step: int) -> Iterator[Any]:
        """The end items of a task whose node failed and whose error handler recovered, as
        LangGraph streams its two tasks: the node's failure, then the handler's update and
        result, under the handler's name."""
        spec, handled = self.spec, t.handled
        assert handled is not None
        both = "tasks" in spec.modes or "debug" in spec.modes
        if both:
            yield from self._result_items(t, step, t.id, t.name, handled.error, {})
        if spec.wants("updates", t.name):
            yield self.emit("updates", {handled.node: t.update})
        if both:
            yield from self._result_items(t, step, new_task_id(), handled.node, None,
                                          result_dict(t.result_writes))

    def _result_items(self, t: Task, step: int, task_id: str, name: str,
                      error: BaseException | None, result: Any) -> Iterator[Any]:
        payload = {"id": task_id, "name": name, "error": error, "result": result,
                   "interrupts": []}
        if self.spec.wants("tasks", t.name):
            yield self.emit("tasks", payload)
        if self.spec.wants("debug", t.name):
            yield self.emit("debug", debug_item("task_result", step, payload))

    def reports_end(self, t: Task) -> bool:
        """Whether the consumer is handed an item when the task ends (so its end must not
        wait behind a sibling running on the consumer's thread)."""
        spec, name = self.spec, t.name
        return spec.wants("updates", name) or spec.wants("tasks", name) \
            or spec.wants("debug", name)

    def streams_live(self, t: Task) -> bool:
        """Whether a task produces items while it runs (so it must not run on this thread)."""
        # Any node may run a graph inside it (as a node or by calling `invoke`), so with
        # subgraph streaming every subscribed node counts as live.
        spec, name = self.spec, t.name
        return t.runner is not None and (spec.wants("messages", name)
                                         or spec.wants("custom", name)
                                         or spec.wants("tools", name) or spec.forwards(name))

    def batch_items(self, batch: Iterable[tuple[int, int, Any]], step: int,
                     task_ended: Callable[[], None]) -> Iterator[list[Any]]:
        """The stream items of drained chunks, as one list. A task's completion raises its
        error (after yielding the items before it) or adds its end items, after telling
        `task_ended` (which may start the next)."""
        items: list[Any] = []
        namespace = self.namespace
        try:
            for _task_key, mode, payload in batch:
                if mode == MODE_DONE:
                    items.extend(self.task_end_items(payload, step))
                    if payload.error is not None and not is_invalid_resume(payload.error):
                        raise payload.error  # a refused answer waits: see `refused_answer`
                    task_ended()
                elif mode == MODE_FORWARD:
                    items.append(payload)  # already (namespace, mode, item)
                else:
                    items.append((namespace, MODE_NAMES[mode], payload))
        except BaseException:
            if items:
                yield items
            raise
        if items:
            yield items

    def run_and_report(self, t: Task, control: Any) -> None:
        """On a worker thread: runs the task, then tells the consumer through the channel."""
        self.run_task(t)
        try:
            control.push(MODE_DONE, t)
        except ChannelClosed:
            pass  # the consumer is gone; nothing is waiting for this task

    # -- tasks --------------------------------------------------------------------------------

    def _new_task(self, index: int, node_id: int, push: int | None, arg: Any,
                  step: int) -> Task:
        """A planned task, not prepared yet: a step's tasks are prepared as they start, so
        the first of hundreds starts (and streams) without waiting for the others'."""
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
        task = Task(index, node_id, name, new_task_id(), path, triggers,
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

    def run_task(self, t: Task) -> None:
        """Runs a task to completion, recording its writes or its error (never raises)."""
        if not self.prepared(t):
            return
        if t.saved_writes is not None:
            return  # its saved writes stand in (see `_reused_items`)
        try:
            if t.node_id == 0:
                input = t.input
                if self.saving is not None and type(input) is Command and input.resume is not None:
                    # A thread's first input may be a resume: it has nothing to answer.
                    input = (dataclasses.replace(input, resume=None)
                             if input.update is not None or input.goto else {})
                output = map_input(self.graph, input, strict=self.strict_input)
                if self.trace is not None and t.name in self.graph.branches:
                    traced_start(t, output, self.finish_task, self.streams_outputs)  # a run for its routers
                    return
            else:
                if self.user_callbacks is not None:
                    traced_task(t, self.finish_task, self.streams_outputs)  # its routers run inside its trace
                    return
                output = t.runner.call(t.input, t.config)
            self.finish_task(t, output)
        except BaseException as e:  # noqa: BLE001 - recorded; the consumer raises it
            self.record_error(t, e)

    def finish_task(self, t: Task, output: Any) -> None:
        """Turns what the node returned into the task's writes, routes and messages."""
        self.take_output(t, output)
        if t.name in self.graph.branches:
            branch_writes(self.graph, t.name, t.config, self.run.read(None), t.writes,
                          t.input if t.runner is None else output, self.router_managed(t))
        self.emit_output(t, output)

    def router_managed(self, t: Task) -> dict[str, Any] | None:
        """The graph's managed values as routers after task `t` see them (None: the graph
        has none); each router takes those its schema names."""
        managed = self.graph.managed
        return managed_values(managed, t.step, self.recursion_limit) if managed else None

    def reuse_saved(self, t: Task) -> None:
        """A task that finished before the thread was interrupted: its saved writes stand
        in for running it."""
        saved = t.saved_writes or []
        t.writes = self.saving.engine_writes(saved)  # type: ignore[union-attr]
        graph = self.graph
        t.result_writes = [(c, v) for c, v in saved if c in graph.key_ids]
        if self._wants_updates:
            t.update = update_payload(t.result_writes, self.output_name_set, self.single_key)

    def take_output(self, t: Task, output: Any) -> None:
        if type(output) is Handled:  # its pushes are inside (see `NodeRunner`)
            t.handled = output
        elif PUSHED_WRITES:
            output = with_pushed(t.id, output)
        writes, result_writes = output_writes(self.graph, t.name, output)
        t.result_writes = result_writes
        if self._wants_updates:
            t.update = update_payload(result_writes, self.output_name_set, self.single_key)
        t.writes = writes
        if self.saving is not None:
            self.saving.task_ended(t)
        if self.node_finished is not None and t.node_id != 0:
            self.node_finished(t.name)

    @staticmethod
    def emit_output(t: Task, output: Any) -> None:
        if t.messages is not None:
            if type(output) is Handled:
                output = output.output
            # LangGraph's run tags its metadata unless the caller's config did (create_agent)
            t.messages.emit_output(output, {"ls_integration": "langgraph", **t.config["metadata"]})

    def record_error(self, t: Task, e: BaseException) -> None:
        if PUSHED_WRITES:
            PUSHED_WRITES.pop(t.id, None)
        if is_interrupt(e):  # a pause, not a failure: siblings run on
            t.paused = True
            t.interrupts = tuple(e.args[0]) if e.args and e.args[0] else ()
            t.writes = []
            if self.saving is not None and t.interrupts:
                self.saving.task_ended(t)
            return
        t.error = note_task_error(e, t.name, t.id)
        if self.saving is not None and reports_failure(t.error):
            self.saving.task_ended(t)

    def output(self) -> dict[str, Any]:
        """What `invoke` returns: the final values, and the questions of a paused run."""
        if self.paused:
            return {**self.final_values, "__interrupt__": self.paused}
        return self.final_values

    def ended(self, error: BaseException | None = None) -> None:
        """The run is over (done, paused or failed with `error`): what the thread still
        owes is saved."""
        if self.saving is not None and self.run is not None:
            self.saving.finish(error is not None)
        if error is None:
            report_pause(self)

    async def aended(self, error: BaseException | None = None) -> None:
        """`ended` on an event loop: the saver's writes still waiting are handed over."""
        if self.saving is not None and self.run is not None:
            self.saving.finish(error is not None)
        await self.aflush()
        if error is None:
            await areport_pause(self)

    async def aflush(self) -> None:
        if self.saving is not None and self.saving.outbox:
            await self.saving.aflush()


    # -- shared with the drivers --------------------------------------------------------------

    def open_channel(self) -> ChunkChannel:
        self.channel = open_channel(self.graph, self.spec, self.buffer_size)
        return self.channel

    def values_item(self, values: dict[str, Any]) -> Any:
        if self.single_key is not None:
            return values.get(self.single_key)
        if self.spec.state_objects and self.graph.state_coerce is not None:
            return self.graph.state_coerce(values)
        return values

    def emit(self, mode: str, item: Any) -> Item:
        return (self.namespace, mode, item)


def raise_refused_answer(tasks: Iterable[Task]) -> None:
    """At the end of a step: a task's refused answer to an interrupt (`is_invalid_resume`)
    fails the run only once the step's other tasks are done, so a task answered in the same
    resume is not cut off after its side effects (LangGraph's rule); any other failure
    stopped the step when it happened."""
    for t in tasks:
        if t.error is not None:
            raise t.error


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


def debug_item(kind: str, step: int, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "step": step,
        "timestamp": datetime.now(timezone.utc).isoformat(),
        "type": kind,
        "payload": payload,
    }


# Task ids are a per-process random prefix and a counter (see `rust/src/task_id.rs`): a forked
# child draws its own prefix so that it does not repeat the parent's ids.
os.register_at_fork(after_in_child=reseed_task_ids)
