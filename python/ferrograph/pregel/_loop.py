"""One run of a compiled graph: `GraphRun`, its state and its supersteps.

`GraphRun` holds a run's state around the Rust scheduler (`Run`, which plans each step's
tasks and applies their writes) and describes the run once for every driver:
`supersteps()` yields, step after step, the items before the step, a `Step` for the driver
to execute, and the items after it (the step's writes are applied between those). Its other
parts have modules of their own: making and preparing tasks (`_task.TaskSetup`), running
one and keeping its outcome (`_outcome.TaskOutcome`), the items around a step
(`_step_items.StepItems`).

The drivers execute the steps: `_sync.batches` for `stream`/`invoke` (the consumer thread
drains the chunk channel while nodes run on worker threads), `_async.AsyncDriver` for
`astream`/`ainvoke` (the event loop is the consumer; async nodes are its tasks). Whatever is
produced off the consumer's thread (tokens, custom items, task completions, subgraph items)
travels through one bounded `ChunkChannel`, drained a batch at a time.

Checkpointing and interrupts hook in at `supersteps()`: before a step (breakpoints) and
after its writes are applied (`Persistence.save`).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ferrograph._core import ChunkChannel, ConcurrentUpdate, OutOfSteps, Run
from ferrograph.config import CONFIG_KEY_NODE_FINISHED, CONFIG_KEY_RUN_ID, CONFIG_KEY_TASK
from ferrograph.errors import GraphDrained, GraphInterrupt, GraphRecursionError
from ferrograph.pregel._checkpoint import Persistence
from ferrograph.pregel._errors import concurrent_update_error, recursion_error
from ferrograph.pregel._handlers import without_our_handlers
from ferrograph.pregel._outcome import TaskOutcome
from ferrograph.pregel._step_items import StepItems
from ferrograph.pregel._stream import CHANNEL_CAPACITY, Item, StreamSpec, open_channel
from ferrograph.pregel._task import (
    Step,
    Task,
    TaskSetup,
    calling_persisted_task,
    numbered_config,
    recursion_limit,
    task_bases,
    without_run_ids,
)
from ferrograph.pregel._trace import RunTrace, areport_pause, report_pause, report_resume
from ferrograph.runtime import RunControl

if TYPE_CHECKING:
    from ferrograph.pregel._async import AsyncDriver
    from ferrograph.pregel.main import CompiledStateGraph

_NO_ITEMS: tuple[()] = ()
"""What a step hands on when it has no items (most steps of most runs): no list made."""


class GraphRun(TaskSetup, TaskOutcome, StepItems):
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
        self._task_config = without_run_ids(config)  # copied by each task's config
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
        if self.saving is not None:
            for t in tasks:  # (a loop: no generator per step, as `any` would make)
                if t.saved_writes is not None:
                    items = [*items, *self._reused_items(tasks)]
                    break
        return items, False

    def after_step(self, tasks: list[Task]) -> tuple[list[Any] | tuple[()], bool]:
        """Applies the step's writes; the items that follows, and whether the run stops."""
        spec = self.spec
        paused = None
        for t in tasks:  # (a loop: no generator made per step, as `any` would need)
            if t.paused:
                paused = [i for t in tasks for i in t.interrupts]
                break
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
            self.saving.step_applied(tasks)
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
