"""One run of a compiled graph: the superstep loop around the Rust scheduler.

The Rust `Run` decides which tasks run in each step and applies their writes; this module
runs the tasks (inline, or on worker threads when several run at once or one streams live),
and turns what they produce into stream items. Everything produced off the consumer thread
(tokens, custom items, task completions, subgraph items) travels through one bounded
`ChunkChannel`, drained a batch at a time.

Three drivers share the step logic: `__iter__` (`stream`/`invoke`: the consumer thread
drains the channel, nodes run on worker threads), `abatches` (`astream`: the consumer is the
event loop, woken through the channel's waker once per batch; async nodes are tasks of
that loop and sync nodes run on worker threads) and `arun` (`ainvoke`: nothing streams,
so no channel at all).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import CallbackManager

from ferrograph._core import (
    ChannelClosed,
    ChunkChannel,
    ConcurrentUpdate,
    OutOfSteps,
    Run,
    new_task_id,
    reseed_task_ids,
)
from ferrograph.config import CONFIG_KEY_RUNTIME
from ferrograph.errors import (
    ErrorCode,
    GraphBubbleUp,
    GraphRecursionError,
    InvalidUpdateError,
    create_error_message,
)
from ferrograph.pregel._executor import DEFAULT_POOL, DEFAULT_SCOUT
from ferrograph.pregel._messages import (
    MODE_MESSAGES,
    AsyncTaskMessages,
    LoopProducer,
    StreamClosed,
    TaskMessages,
    iter_messages,
    user_tags,
)
from ferrograph.runtime import Runtime

if TYPE_CHECKING:
    from ferrograph.graph.state import CompiledStateGraph, NodeRunner

# Stream modes as the chunk channel numbers them.
MODE_VALUES = 0
MODE_UPDATES = 1
MODE_CUSTOM = 3
MODE_TASKS = 4
MODE_DEBUG = 5
MODE_DONE = 7
"""Internal: a task finished (payload: its outcome)."""
MODE_FORWARD = 8
"""Internal: an item from a subgraph (payload: `(namespace, mode, item)`)."""

MODE_IDS = {
    "values": MODE_VALUES,
    "updates": MODE_UPDATES,
    "messages": MODE_MESSAGES,
    "custom": MODE_CUSTOM,
    "tasks": MODE_TASKS,
    "debug": MODE_DEBUG,
    "checkpoints": 6,
}
MODE_NAMES = {v: k for k, v in MODE_IDS.items()}

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
CONTROL_NODE = 0xFFFF_FFFF
"""Node id of the run's own producer (task completions), always subscribed."""

WRITE_KEY, WRITE_GOTO, WRITE_SEND = 0, 1, 2
CHANNEL_CAPACITY = 4096
DRAIN_BATCH = 1024
DRAIN_WAIT_SECONDS = 0.2
RAMP_START = 1
"""Tasks of a live step started before `_Dispatch` has seen whether they keep the GIL busy."""
RAMP_TICK_SECONDS = 0.002
RAMP_FREE_GIL_SECONDS = 0.001
"""A GIL taken back within this was free (a busy one takes the switch interval, 5 ms)."""
RAMP_FREE_LOOKS = 2
RAMP_PATIENCE_SECONDS = 0.25


@dataclass(slots=True)
class StreamSpec:
    """What the consumer asked for, resolved against one graph."""

    modes: frozenset[str]
    subgraphs: bool = False
    nodes: frozenset[str] | None = None
    """Subscribed node names of this graph (None: all)."""
    inner: dict[str, frozenset[str] | None] = field(default_factory=dict)
    """For subgraph nodes: the filter their own run applies (None: all of its nodes)."""
    tags: frozenset[str] | None = None
    state_objects: bool = False
    """`values` items as state-schema objects (Pydantic, dataclass), as `version="v2"` has."""

    def wants(self, mode: str, node: str) -> bool:
        return mode in self.modes and (self.nodes is None or node in self.nodes)

    def forwards(self, node: str) -> bool:
        """Whether the run of subgraph node `node` streams its own items to this run."""
        return self.subgraphs and bool(self.modes) and (
            self.nodes is None or node in self.nodes or node in self.inner
        )


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


def recursion_limit(config: dict[str, Any]) -> int:
    limit = config.get("recursion_limit", DEFAULT_RECURSION_LIMIT)
    if not isinstance(limit, int) or limit < 1:
        raise ValueError("recursion_limit must be at least 1")
    return limit


def task_bases(graph: CompiledStateGraph, config: dict[str, Any],
               context: Any) -> tuple[dict[str, Any], dict[str, Any], Runtime, bool]:
    """What every task config of a run starts from: the caller's `configurable` without the
    engine's own keys, the run's metadata (with the run identifiers found in `configurable`,
    as LangGraph does), the runtime; and whether the run's input is the caller's own (a
    graph run as a node gets its parent's whole state: extra keys are expected there)."""
    configurable = config.get("configurable", {})
    base_configurable = {k: v for k, v in configurable.items() if not k.startswith("__pregel_")}
    metadata = dict(config.get("metadata") or {})
    if base_configurable:
        for key in PROPAGATED_TO_METADATA:
            value = base_configurable.get(key)
            if value and key not in metadata:
                metadata[key] = value
    runtime = (graph.default_runtime if context is None
               else Runtime(context=context, store=graph.store))
    return base_configurable, metadata, runtime, "__pregel_task" not in configurable


def invoke_direct(graph: CompiledStateGraph, input: Any, config: dict[str, Any], context: Any,
                  result_keys: Sequence[str] | None) -> dict[str, Any]:
    """`invoke` without a `GraphRun`: the Rust driver (`DirectGraph`) runs the whole graph,
    calling the nodes itself. For runs that stream nothing, report to no callbacks and stop
    at no breakpoint; what tasks see (config, metadata, errors) is as under `GraphRun`."""
    limit = recursion_limit(config)
    if result_keys is None:
        *_, result_ids = graph.default_output
    else:
        for key in result_keys:
            if key not in graph.key_ids:
                raise ValueError(f"Key {key} not in channels")
        result_ids = [graph.key_ids[k] for k in result_keys]
    configurable, metadata, runtime, strict = task_bases(graph, config, context)
    configurable[CONFIG_KEY_RUNTIME] = runtime
    configurable["__pregel_stream"] = None
    configurable["__pregel_task"] = None
    try:
        return graph.direct.invoke(
            graph, input, strict, graph.start_values(), limit, {**config, "callbacks": None},
            configurable, metadata, result_ids, config.get("max_concurrency") or None)
    except OutOfSteps:
        raise recursion_error(limit) from None
    except ConcurrentUpdate as e:
        raise concurrent_update_error(e.args[0]) from None


class GraphRun:
    """Runs `graph` on `input` and yields `(namespace, mode, item)` for the modes in `spec`."""

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
    ) -> None:
        self.graph = graph
        # Per-run breakpoints replace the compiled ones, as in LangGraph.
        self.interrupt_before = (graph.interrupt_before if interrupt_before is None
                                 else interrupt_before)
        self.interrupt_after = graph.interrupt_after if interrupt_after is None else interrupt_after
        self.input = input
        self.config = config
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
        self._prepare_early = "tasks" in spec.modes or "debug" in spec.modes
        """Whether a step's tasks are all prepared when it is planned: its start items show
        each task's input and metadata."""
        self.run = Run(graph.plan, graph.reducers, graph.start_values(), limit)
        self.channel: ChunkChannel | None = None
        self.final_values: dict[str, Any] = {}
        self.interrupted = False
        self._user_callbacks = _without_our_handlers(config.get("callbacks"))
        (self._base_configurable, self._base_metadata, self._runtime,
         is_callers_input) = task_bases(graph, config, context)
        self.strict_input = is_callers_input if strict_input is None else strict_input
        self.seen_messages: set[str] = seen_messages if seen_messages is not None else set()
        """Ids of messages already emitted in `messages` mode, shared with subgraph runs."""
        # Under `abatches` only: the consumer's loop and the future it sleeps on; the rest of
        # its state (`_ended`, `_room_waiters`) is made by `abatches` itself.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Future[None] | None = None

    # -- stream plumbing -------------------------------------------------------------------

    def _open_channel(self) -> ChunkChannel:
        graph = self.graph
        spec = self.spec
        if spec.nodes is None:
            node_ids = None
        else:
            node_ids = [graph.plan.node_id(n) for n in {*spec.nodes, *spec.inner}]
            node_ids.append(CONTROL_NODE)
        modes = (1 << MODE_DONE) | (1 << MODE_FORWARD)
        for mode in spec.modes:
            modes |= 1 << MODE_IDS[mode]
        # With nothing streamed, only task completions cross: a small buffer is plenty.
        capacity = self.buffer_size if spec.modes else min(self.buffer_size, 64)
        return ChunkChannel(capacity, node_ids, modes)

    def _values_item(self, values: dict[str, Any]) -> Any:
        if self.single_key is not None:
            return values.get(self.single_key)
        if self.spec.state_objects and self.graph.state_coerce is not None:
            return self.graph.state_coerce(values)
        return values

    def _emit(self, mode: str, item: Any) -> tuple[tuple[str, ...], str, Any]:
        return (self.namespace, mode, item)

    # -- the loop -----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[tuple[tuple[str, ...], str, Any]]:
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[list[tuple[tuple[str, ...], str, Any]]]:
        """The run's items in lists, a drained batch at a time (what `stream` hands on; one
        generator hop per batch, not per item)."""
        channel = self.channel = self._open_channel()
        control = channel.producer(CONTROL_NODE, 0)
        trace = self._start_trace()
        error: BaseException | None = None
        try:
            yield from self._steps(channel, control)
        except BaseException as e:
            error = e
            raise
        finally:
            # Wakes and fails every producer still running (a consumer that stopped early,
            # or a failed step): their models stop streaming instead of blocking forever.
            channel.close()
            self._end_trace(trace, error)

    def _start_trace(self) -> Any:
        """With user callbacks, opens the run's own chain run (named after the graph), under
        which every node's run nests; None without callbacks (nothing to report to)."""
        if self._user_callbacks is None:
            return None
        manager = CallbackManager.configure(
            inheritable_callbacks=self._user_callbacks,
            inheritable_tags=self.config.get("tags"),
            inheritable_metadata=self._base_metadata,
        )
        inputs = self.input if isinstance(self.input, dict) else {"input": self.input}
        trace = manager.on_chain_start(None, inputs,
                                       name=self.config.get("run_name") or self.graph.name)
        self._user_callbacks = trace.get_child()
        return trace

    def _end_trace(self, trace: Any, error: BaseException | None) -> None:
        if trace is None:
            return
        if error is None:
            trace.on_chain_end(self.final_values)
        else:
            trace.on_chain_error(error)

    def _plan_step(self) -> list[Task]:
        """The tasks of the next superstep (none: the run is over)."""
        run = self.run
        try:
            planned = run.next_tasks()
        except OutOfSteps:
            raise recursion_error(self.recursion_limit) from None
        step = run.step
        tasks = [self._new_task(i, node_id, push, arg, step)
                 for i, (node_id, push, arg) in enumerate(planned)]
        if self._prepare_early:
            for t in tasks:
                if not self._prepared(t):
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

    def _interrupts(self, tasks: list[Task], which: frozenset[int]) -> bool:
        if which and any(t.node_id in which for t in tasks if t.node_id != 0):
            self.interrupted = True
            return True
        return False

    def _before_step(self, tasks: list[Task], step: int) -> tuple[list[Any], bool]:
        """The items before a step's tasks run, and whether the run stops there."""
        if self._interrupts(tasks, self.interrupt_before):
            return list(self._interrupt_items()), True
        return list(self._task_start_items([t for t in tasks if t.node_id != 0], step)), False

    def _after_step(self, tasks: list[Task]) -> tuple[list[Any], bool]:
        """Applies the step's writes; the items that follows, and whether the run stops."""
        spec = self.spec
        written = self._apply_step(tasks)
        items = []
        if "values" in spec.modes and self.output_id_set.intersection(written):
            if spec.nodes is None or any(spec.wants("values", t.name) for t in tasks):
                items.append(self._emit("values",
                                        self._values_item(self.run.read(self.output_ids))))
        if self._interrupts(tasks, self.interrupt_after):
            items.extend(self._interrupt_items())
            return items, True
        return items, False

    def _steps(self, channel: ChunkChannel, control: Any) -> Iterator[list[Any]]:
        while tasks := self._plan_step():
            step = self.run.step
            items, stop = self._before_step(tasks, step)
            if items:
                yield items
            if stop:
                return
            yield from self._execute(tasks, channel, control, step)
            items, stop = self._after_step(tasks)
            if items:
                yield items
            if stop:
                return
        self.final_values = self.run.read(self.result_ids)

    async def abatches(self) -> AsyncIterator[list[tuple[tuple[str, ...], str, Any]]]:
        """`__iter__` with the running event loop as the consumer (what `astream` needs),
        yielding the items in lists, a drained batch at a time (one generator hop per batch).

        Async nodes (and runnables) run as tasks of this loop; their chunks go through
        non-blocking producers that await room, so a full channel never blocks the loop.
        Sync nodes run on worker threads, as under `stream`. The loop sleeps on the
        channel's waker, so it is woken once per batch of chunks, not once per chunk. On
        leaving — the end, a failure, `aclose()`, cancellation — the channel is closed and
        every task still running is cancelled and awaited."""
        loop = self._loop = asyncio.get_running_loop()
        self._ended: deque[Task] = deque()
        """Async tasks that ended; their chunks are all queued by then."""
        self._room_waiters: deque[asyncio.Future[None]] = deque()
        """Backlogged producers on the loop, waiting for the consumer to drain."""
        channel = self.channel = self._open_channel()
        channel.set_waker(functools.partial(_wake_loop, loop, threading.get_ident(),
                                            self._wake_up))
        control = channel.producer(CONTROL_NODE, 0)
        running: set[asyncio.Task[None]] = set()
        trace = self._start_trace()
        error: BaseException | None = None
        try:
            while tasks := self._plan_step():
                step = self.run.step
                items, stop = self._before_step(tasks, step)
                if items:
                    yield items
                if stop:
                    return
                async for batch in self._aexecute_streaming(tasks, channel, control, step,
                                                            running):
                    yield batch
                items, stop = self._after_step(tasks)
                if items:
                    yield items
                if stop:
                    return
            self.final_values = self.run.read(self.result_ids)
        except BaseException as e:
            error = e
            raise
        finally:
            channel.close()  # releases producers on worker threads (their models stop)
            for task in running:
                task.cancel()
            if running:
                await asyncio.wait(running)
            self._end_trace(trace, error)

    async def _aexecute_streaming(self, tasks: list[Task], channel: ChunkChannel,
                                  control: Any, step: int,
                                  running: set[asyncio.Task[None]]
                                  ) -> AsyncIterator[list[Any]]:
        loop = self._loop
        assert loop is not None
        ended = self._ended

        def launch(t: Task) -> None:
            runner = t.runner
            if runner is None:  # the start node: mapping the input, nothing to wait for
                self._run_task(t)
                ended.append(t)
            elif runner.on_loop:
                task = loop.create_task(self._arun_streaming_task(t))
                running.add(task)
                task.add_done_callback(running.discard)
            else:  # sync nodes never run on the loop, not even alone in their step
                DEFAULT_POOL.submit(functools.partial(self._run_and_report, t, control))

        dispatch = _Dispatch(tasks, self.max_concurrency, launch)
        while dispatch.pending:
            batch = channel.drain(DRAIN_BATCH, 0.0)
            if batch is None:
                raise RuntimeError("the stream channel closed while tasks were running")
            if batch:
                self._release_room(len(batch))
            elif ended:
                # Only with the channel empty: an ended task's chunks are all queued by then,
                # so they are yielded before its completion.
                batch = ((0, MODE_DONE, ended.popleft()),)
            if batch:
                for items in self._batch_items(batch, step, dispatch.task_ended):
                    yield items
            else:
                wake = self._wake = loop.create_future()
                if channel.arm():
                    try:
                        await wake
                    finally:
                        self._wake = None

    async def _arun_streaming_task(self, t: Task) -> None:
        """Runs an event-loop task of `abatches`; its end is announced by `_ended`."""
        await self._arun_task(t)
        self._ended.append(t)
        self._wake_up()

    def on_this_loop(self) -> bool:
        """Whether this run is driven by `abatches` on the event loop running now."""
        if self._loop is None:
            return False
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def outlet_of(self, task: Task, producer: Any) -> LoopProducer:
        """The task's producer for use on this run's event loop (see `LoopProducer`), made
        from `producer` on first use. One per task, so the task has a single backlog, which
        `_arun_task` flushes before the task counts as ended."""
        if task.outlet is None:
            task.outlet = LoopProducer(producer, self._loop,  # type: ignore[arg-type]
                                       self._wait_for_room)
        return task.outlet

    def _wake_up(self) -> None:
        """Wakes the consumer of `abatches` if it sleeps (on the loop's thread)."""
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _wait_for_room(self) -> None:
        """For backlogged producers on the loop: returns once the consumer has drained."""
        room = self._loop.create_future()  # type: ignore[union-attr]
        self._room_waiters.append(room)
        await room

    def _release_room(self, drained: int) -> None:
        """Wakes as many backlogged producers as chunks were drained, first come first
        served: waking all of them would have most find the channel full again."""
        waiters = self._room_waiters
        while waiters and drained:
            room = waiters.popleft()
            if not room.done():
                room.set_result(None)
                drained -= 1

    async def arun(self) -> None:
        """Runs the graph to the end on the running event loop, streaming nothing (what
        `ainvoke` needs): async nodes run as tasks of this loop, sync nodes on workers."""
        trace = self._start_trace()
        try:
            while tasks := self._plan_step():
                if self._interrupts(tasks, self.interrupt_before):
                    break
                if len(tasks) == 1:  # most steps: no fan-out to manage
                    await self._arun_task(tasks[0])
                    if tasks[0].error is not None:
                        raise tasks[0].error
                else:
                    await self._aexecute(tasks)
                self._apply_step(tasks)
                if self._interrupts(tasks, self.interrupt_after):
                    break
        except BaseException as e:
            self._end_trace(trace, e)
            raise
        self.final_values = self.run.read(self.result_ids)
        self._end_trace(trace, None)

    async def _aexecute(self, tasks: list[Task]) -> None:
        """Runs a step's tasks at once (at most `max_concurrency`); the first failure
        cancels the others."""
        limit = asyncio.Semaphore(self.max_concurrency) if self.max_concurrency else None

        async def bounded(t: Task) -> None:
            async with limit:  # type: ignore[union-attr]
                await self._arun_task(t)

        running = [asyncio.ensure_future(bounded(t) if limit else self._arun_task(t))
                   for t in tasks]
        try:
            for future in asyncio.as_completed(running):
                await future
                failed = next((t for t in tasks if t.error is not None), None)
                if failed is not None:
                    raise failed.error
        finally:
            for future in running:  # a failure (or our own cancellation) stops siblings
                future.cancel()
        for t in tasks:
            if t.error is not None:
                raise t.error

    async def _arun_task(self, t: Task) -> None:
        """Runs a task from the event loop, recording its writes or its error (raises only
        its own cancellation)."""
        runner = t.runner
        if runner is None:  # the start node: mapping the input, nothing to wait for
            self._run_task(t)
        elif runner.on_loop:
            if not self._prepared(t):
                return
            try:
                output = await runner.acall(t.input, t.config)
                await self._afinish_task(t, output)
                if t.outlet is not None:
                    await t.outlet.flush()
            except asyncio.CancelledError:
                raise
            except BaseException as e:  # noqa: BLE001 - recorded like the sync path does
                self._record_error(t, e)
        else:
            # Sync nodes go off the loop, to the loop's executor (as asyncio code expects:
            # its size is the caller's to set).
            await asyncio.get_running_loop().run_in_executor(None, self._run_task, t)

    def _interrupt_items(self) -> Iterator[Any]:
        self.final_values = self.run.read(self.result_ids)
        if "updates" in self.spec.modes:
            yield self._emit("updates", {"__interrupt__": ()})

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
                yield self._emit("tasks", payload)
            if spec.wants("debug", t.name):
                yield self._emit("debug", _debug("task", step, payload))

    def _task_end_items(self, t: Task, step: int) -> Iterator[Any]:
        spec = self.spec
        if t.node_id == 0:
            return
        if spec.wants("updates", t.name):
            yield self._emit("updates", {t.name: t.update})
        if "tasks" in spec.modes or "debug" in spec.modes:
            payload = {
                "id": t.id,
                "name": t.name,
                "error": None,
                "result": _result_dict(t.result_writes),
                "interrupts": [],
            }
            if spec.wants("tasks", t.name):
                yield self._emit("tasks", payload)
            if spec.wants("debug", t.name):
                yield self._emit("debug", _debug("task_result", step, payload))

    def _streams_live(self, t: Task) -> bool:
        """Whether a task produces items while it runs (so it must not run on this thread)."""
        # Any node may run a graph inside it (as a node or by calling `invoke`), so with
        # subgraph streaming every subscribed node counts as live.
        spec, name = self.spec, t.name
        return t.runner is not None and (spec.wants("messages", name)
                                         or spec.wants("custom", name) or spec.forwards(name))

    def _execute(self, tasks: list[Task], channel: ChunkChannel, control: Any,
                 step: int) -> Iterator[list[Any]]:
        if len(tasks) == 1 and not self._streams_live(tasks[0]):
            t = tasks[0]  # most steps: no crew to gather, the task runs right here
            self._run_task(t)
            if t.error is not None:
                raise t.error
            if items := list(self._task_end_items(t, step)):
                yield items
            return
        if not any(self._streams_live(t) for t in tasks):
            yield from self._execute_sharing(tasks, channel, control, step)
            return

        def launch(t: Task) -> None:
            DEFAULT_POOL.submit(functools.partial(self._run_and_report, t, control))

        # The tasks the consumer listens to start first (sorting is stable).
        tasks = sorted(tasks, key=lambda t: not self._streams_live(t))
        dispatch = _Dispatch(tasks, self.max_concurrency, launch, ramp=True)
        while dispatch.pending:
            # A bounded wait, so Ctrl-C (delivered only between Python bytecodes) is seen.
            batch = channel.drain(DRAIN_BATCH, dispatch.wait_seconds())
            if batch is None:
                raise RuntimeError("the stream channel closed while tasks were running")
            yield from self._batch_items(batch, step, dispatch.task_ended)
            del batch  # handed over: not kept alive through the next wait
            dispatch.adapt(channel.take_gil_wait())

    def _execute_sharing(self, tasks: list[Task], channel: ChunkChannel, control: Any,
                         step: int) -> Iterator[list[Any]]:
        """A step in which no task streams while it runs: this thread runs tasks too,
        taking them from the queue the workers take from (see `_Crew`). Cheap nodes are all
        done here before a worker has even woken, with no hand-over per task, while slow or
        blocking ones still run side by side."""
        crew = _Crew(tasks, self.max_concurrency, functools.partial(self._run_and_report,
                                                                    control=control))
        unclaimed = crew.unclaimed
        if crew.helpers:
            DEFAULT_SCOUT.watch(crew)
        elsewhere = len(tasks)  # tasks whose end arrives through the channel

        def ended_elsewhere() -> None:
            nonlocal elsewhere
            elsewhere -= 1

        try:
            while unclaimed:
                try:
                    t = unclaimed.popleft()
                except IndexError:  # a worker took the last one
                    break
                elsewhere -= 1
                self._run_task(t)
                if t.error is not None:
                    raise t.error
                if items := list(self._task_end_items(t, step)):
                    yield items
            while elsewhere:
                # A bounded wait, so Ctrl-C (delivered only between bytecodes) is seen.
                batch = channel.drain(DRAIN_BATCH, DRAIN_WAIT_SECONDS)
                if batch is None:
                    raise RuntimeError("the stream channel closed while tasks were running")
                yield from self._batch_items(batch, step, ended_elsewhere)
        finally:
            unclaimed.clear()  # after a failure or an early exit, nothing more starts

    def _batch_items(self, batch: Iterable[tuple[int, int, Any]], step: int,
                     task_ended: Callable[[], None]) -> Iterator[list[Any]]:
        """The stream items of drained chunks, as one list. A task's completion raises its
        error (after yielding the items before it) or adds its end items, after telling
        `task_ended` (which may start the next)."""
        items: list[Any] = []
        namespace = self.namespace
        try:
            for _task_key, mode, payload in batch:
                if mode == MODE_DONE:
                    if payload.error is not None:
                        raise payload.error
                    task_ended()
                    items.extend(self._task_end_items(payload, step))
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

    def _run_and_report(self, t: Task, control: Any) -> None:
        """On a worker thread: runs the task, then tells the consumer through the channel."""
        self._run_task(t)
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
        if push is None:
            path: tuple[Any, ...] = ("__pregel_pull", name)
            triggers = graph.triggers[node_id]
        else:
            path = ("__pregel_push", push, False)
            triggers = ("__pregel_push",)
        task = Task(index, node_id, name, new_task_id(), path, triggers,
                    self.input if node_id == 0 else arg, None, graph.runners.get(name), step)
        if node_id == 0 and name not in graph.branches:
            task.config = {}  # the start node only maps the input: no node code sees a config
        return task

    def _prepared(self, task: Task) -> bool:
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
            task.input = task.runner.read_input(self.run)  # type: ignore[union-attr]
        checkpoint_ns = f"{name}:{task.id}"
        if self.namespace:
            checkpoint_ns = "|".join((*self.namespace, checkpoint_ns))
        pull_metadata, push_metadata = self.graph.task_metadata[node_id]
        metadata = {
            **self._base_metadata,
            **(pull_metadata if pull else push_metadata),
            "langgraph_step": step,
            "langgraph_checkpoint_ns": checkpoint_ns,
        }
        if not pull:
            metadata["langgraph_path"] = task.path
        callbacks = self._user_callbacks
        runtime = self._runtime  # shared unless the task streams: its writer discards
        if task.runner is not None and self.spec.modes:
            callbacks, runtime = self._stream_outlets(task, callbacks, runtime, step)
        task.config = {
            **self.config,
            "metadata": metadata,
            "callbacks": callbacks,
            "configurable": {
                **self._base_configurable,
                "checkpoint_ns": checkpoint_ns,
                CONFIG_KEY_RUNTIME: runtime,
                "__pregel_task_id": task.id,
                "__pregel_stream": self if self.spec.modes else None,
                "__pregel_task": task,
            },
        }

    def _stream_outlets(self, task: Task, callbacks: Any, runtime: Runtime,
                        step: int) -> tuple[Any, Runtime]:
        """Gives a subscribed task its ways to stream: the messages handler (added to its
        callbacks) and the custom writer (in its runtime)."""
        spec, name, runner = self.spec, task.name, task.runner
        wants_messages, wants_custom = spec.wants("messages", name), spec.wants("custom", name)
        if (wants_messages or wants_custom) and self._loop is not None \
                and runner.on_loop:  # type: ignore[union-attr]
            self.outlet_of(task, self.channel.producer(task.node_id, task.index, step))
        if wants_messages:
            seen = self.seen_messages
            seen.update(m.id for m in iter_messages(task.input) if m.id is not None)
            if task.outlet is not None:
                task.messages = AsyncTaskMessages(task.outlet, seen, spec.tags)
            else:
                producer = self.channel.producer(task.node_id, task.index, step)
                task.messages = TaskMessages(producer, seen, spec.tags)
            callbacks = _with_handler(callbacks, task.messages)
        if wants_custom:
            runtime = runtime.override(stream_writer=self._writer_for(task))
        return callbacks, runtime

    def _writer_for(self, task: Task) -> Callable[[Any], None]:
        producer = task.outlet or self.channel.producer(task.node_id, task.index)

        def write(item: Any) -> None:
            try:
                producer.push(MODE_CUSTOM, item)
            except ChannelClosed:
                raise StreamClosed from None  # nobody reads this stream any more

        return write

    def _run_task(self, t: Task) -> None:
        """Runs a task to completion, recording its writes or its error (never raises)."""
        if not self._prepared(t):
            return
        try:
            if t.node_id == 0:
                output = self.graph.map_input(t.input, strict=self.strict_input)
            else:
                output = (t.runner.call(t.input, t.config) if self._user_callbacks is None
                          else self._traced_call(t))
            self._finish_task(t, output)
        except BaseException as e:  # noqa: BLE001 - recorded; the consumer raises it
            self._record_error(t, e)

    def _traced_call(self, t: Task) -> Any:
        """Calls the node inside a chain run of its own, so the user's callbacks and tracers
        see one run per node (named after it) with the node's model calls nested below."""
        manager = CallbackManager.configure(
            inheritable_callbacks=t.config["callbacks"],
            inheritable_tags=t.config.get("tags"),
            inheritable_metadata=t.config["metadata"],
        )
        inputs = t.input if isinstance(t.input, dict) else {"input": t.input}
        run = manager.on_chain_start(None, inputs, name=t.name)
        t.config = {**t.config, "callbacks": run.get_child()}
        try:
            output = t.runner.call(t.input, t.config)
        except BaseException as e:
            run.on_chain_error(e)
            raise
        run.on_chain_end(output if isinstance(output, dict) else {"output": output})
        return output

    def _finish_task(self, t: Task, output: Any) -> None:
        """Turns what the node returned into the task's writes, routes and messages."""
        self._take_output(t, output)
        if t.name in self.graph.branches:
            self.graph.branch_writes(t.name, t.config, self.run.read(None), t.writes)
        self._emit_output(t, output)

    async def _afinish_task(self, t: Task, output: Any) -> None:
        """`_finish_task` on the event loop: async routers are awaited there."""
        self._take_output(t, output)
        if t.name in self.graph.branches:
            await self.graph.abranch_writes(t.name, t.config, self.run.read(None), t.writes)
        self._emit_output(t, output)

    def _take_output(self, t: Task, output: Any) -> None:
        writes, result_writes = self.graph.output_writes(t.name, output)
        t.result_writes = result_writes
        if self._wants_updates:
            t.update = _update_payload(result_writes, self.output_name_set, self.single_key)
        t.writes = writes

    @staticmethod
    def _emit_output(t: Task, output: Any) -> None:
        if t.messages is not None:
            t.messages.emit_output(output, {**t.config["metadata"], "ls_integration": "langgraph"})

    @staticmethod
    def _record_error(t: Task, e: BaseException) -> None:
        note_task_error(e, t.name, t.id)
        t.error = e


class _Dispatch:
    """Starts a step's tasks, at most `limit` at once (`max_concurrency`; None: all).

    With `ramp` (tasks on worker threads, which share one GIL), it starts `RAMP_START` of
    them and lets more run only while the interpreter has time to spare. The consumer tells
    `adapt` how long it last waited to take the GIL back after sleeping on the channel: at
    once means no thread wanted it (the running tasks wait, on the network or on each
    other); when that is so on `RAMP_FREE_LOOKS` looks in a row (one look per
    `RAMP_TICK_SECONDS`; a single one may fall between two tasks of a worker), the number
    allowed to run doubles. A wait of the interpreter's switch interval means the running
    tasks keep it busy, and more threads would only take turns with them. When no task has
    ended (nor more been let run) for `RAMP_PATIENCE_SECONDS`, one more may run in any case:
    the running ones may be waiting for a sibling not started yet while something else
    keeps the GIL busy. Tasks that wait on I/O thus all run at once after a few ticks, while
    busy ones run a few at a time instead of hundreds of threads thrashing (each holding a
    half-done call, whose objects then outlive the collector's young passes)."""

    __slots__ = ("queue", "pending", "running", "limit", "allowed", "launch", "_looked",
                 "_progressed", "_free_looks")

    def __init__(self, tasks: list[Task], limit: int | None,
                 launch: Callable[[Task], None], ramp: bool = False) -> None:
        self.queue = list(reversed(tasks))
        self.pending = len(tasks)
        self.running = 0
        self.limit = limit or len(tasks)
        self.allowed = min(self.limit, RAMP_START) if ramp else self.limit
        self.launch = launch
        self._looked = self._progressed = time.monotonic()
        self._free_looks = 0
        self._fill()

    def _fill(self) -> None:
        while self.queue and self.running < self.allowed:
            self.running += 1
            self.launch(self.queue.pop())

    def task_ended(self) -> None:
        self.pending -= 1
        self.running -= 1
        self._fill()
        if self.queue:
            self._progressed = time.monotonic()

    def wait_seconds(self) -> float:
        """How long the consumer may sleep on the channel: a tick while tasks wait to
        start."""
        return RAMP_TICK_SECONDS if self.queue and self.allowed < self.limit \
            else DRAIN_WAIT_SECONDS

    def adapt(self, gil_wait: float | None) -> None:
        """Lets more tasks run if the GIL was free (see the class doc); `gil_wait` is the
        channel's `take_gil_wait()`."""
        if not self.queue or self.allowed >= self.limit:
            return
        now = time.monotonic()
        if now - self._looked < RAMP_TICK_SECONDS:
            return
        self._looked = now
        free = gil_wait is not None and gil_wait < RAMP_FREE_GIL_SECONDS
        self._free_looks = self._free_looks + 1 if free else 0
        idle = self._free_looks >= RAMP_FREE_LOOKS
        if idle or now - self._progressed >= RAMP_PATIENCE_SECONDS:
            self._free_looks = 0
            self.allowed = min(self.limit, 2 * self.allowed if idle else self.allowed + 1)
            self._progressed = now
            self._fill()


class _Crew:
    """The runners of a step that `_execute_sharing` runs: the consumer thread and the
    workers it recruits, all taking tasks from `unclaimed`.

    The consumer starts no worker itself: it asks the scout (`DEFAULT_SCOUT`) to look at
    the crew, which the scout does a poll later, and only once it has the GIL: when the
    consumer blocks in a node (or after the switch interval). If tasks are still unclaimed
    by then the step is slow, and the scout recruits two workers; each worker that gets a task recruits two more before
    running it, so the crew doubles while work is waiting: 1,000 blocking branches are all
    running after about ten wake-ups, and a cheap step costs no wake-up at all.
    `max_concurrency` caps the runners, the consumer included."""

    __slots__ = ("unclaimed", "helpers", "hired", "run")

    def __init__(self, tasks: list[Task], limit: int | None,
                 run: Callable[[Task], None]) -> None:
        self.unclaimed = deque(tasks)
        self.helpers = min(limit or len(tasks), len(tasks)) - 1
        self.hired = itertools.count()  # `next` is atomic: no lock to respect the cap
        self.run = run

    def __call__(self) -> None:
        """For the scout (which calls the crew itself): workers for whatever is still
        waiting."""
        self.recruit(2)

    def recruit(self, wanted: int) -> None:
        for _ in range(wanted):
            if not self.unclaimed or next(self.hired) >= self.helpers:
                return
            DEFAULT_POOL.submit(self.work)

    def work(self) -> None:
        """On a worker: runs unclaimed tasks until none is left."""
        while True:
            try:
                t = self.unclaimed.popleft()
            except IndexError:
                return
            self.recruit(2)
            self.run(t)


def _wake_loop(loop: asyncio.AbstractEventLoop, loop_thread: int,
               fn: Callable[[], None]) -> None:
    """The channel's waker for `abatches`: runs `fn` (which only resolves a future) at once
    when the chunk was pushed on the loop's own thread, by an async node; from any other
    thread it schedules `fn` there, which also wakes the loop's selector (a write to its
    self-pipe, too dear to pay for every batch a task on the loop produces)."""
    if threading.get_ident() == loop_thread:
        fn()
        return
    try:
        loop.call_soon_threadsafe(fn)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        pass


# Task ids are a per-process random prefix and a counter (see `rust/src/task_id.rs`): a forked
# child draws its own prefix so that it does not repeat the parent's ids.
os.register_at_fork(after_in_child=reseed_task_ids)


def note_task_error(e: BaseException, name: str, task_id: str) -> None:
    """As LangGraph does: the exception itself reaches the caller, with a note saying in
    which task (and, through subgraphs, which enclosing tasks) it happened. Signals for an
    enclosing graph, KeyboardInterrupt and StreamClosed pass as they are."""
    _note(e, f"During task with name '{name}' and id '{task_id}'")


def note_preparing_error(e: BaseException, name: str, path: tuple[Any, ...]) -> None:
    """`note_task_error` for a failure before the task ran: reading its input (a node's
    input schema refusing the state), noted with the task's path as LangGraph does."""
    _note(e, f"Before task with name '{name}' and path '{path}'")


def _note(e: BaseException, note: str) -> None:
    if isinstance(e, Exception) and not isinstance(e, GraphBubbleUp) and hasattr(e, "add_note"):
        e.add_note(note)


def recursion_error(limit: int) -> GraphRecursionError:
    return GraphRecursionError(
        create_error_message(
            message=f"Recursion limit of {limit} reached without hitting a stop condition. "
            "You can increase the limit by setting the `recursion_limit` config key.",
            error_code=ErrorCode.GRAPH_RECURSION_LIMIT,
        )
    )


def concurrent_update_error(key: str) -> InvalidUpdateError:
    return InvalidUpdateError(
        create_error_message(
            message=f"At key '{key}': Can receive only one value per step. "
            "Use an Annotated key to handle multiple values.",
            error_code=ErrorCode.INVALID_CONCURRENT_GRAPH_UPDATE,
        )
    )


def _update_payload(result_writes: list[tuple[str, Any]], keys: frozenset[str],
                    single_key: str | None = None) -> Any:
    """The `updates`-mode value of one task: its writes to output keys (None: no writes)."""
    writes = [(k, v) for k, v in result_writes if k in keys]
    if not writes:
        return None
    if single_key is not None:
        return writes[-1][1]
    names = [k for k, _ in writes]
    if len(set(names)) == len(names):
        return dict(writes)
    return [{k: v} for k, v in writes]


def _result_dict(writes: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in writes:
        if key in result:
            existing = result[key]
            if isinstance(existing, dict) and "$writes" in existing:
                existing["$writes"].append(value)
            else:
                result[key] = {"$writes": [existing, value]}
        else:
            result[key] = value
    return result


def _debug(kind: str, step: int, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "step": step,
        "timestamp": datetime.now(timezone.utc).isoformat(),
        "type": kind,
        "payload": payload,
    }


def _with_handler(callbacks: Any, handler: TaskMessages) -> Any:
    """The user's callbacks (a list or a callback manager) plus `handler`, inherited by
    everything the node runs."""
    if callbacks is None or isinstance(callbacks, list):
        return [*(callbacks or ()), handler]
    manager = callbacks.copy()
    manager.add_handler(handler, inherit=True)
    return manager


def _without_our_handlers(callbacks: Any) -> Any:
    """The user's callbacks, without streaming handlers of an enclosing ferrograph run."""
    if callbacks is None:
        return None
    if isinstance(callbacks, list):
        kept = [h for h in callbacks if not isinstance(h, TaskMessages)]
        return kept or None
    handlers = getattr(callbacks, "handlers", None)
    if handlers is not None and any(isinstance(h, TaskMessages) for h in handlers):
        manager = callbacks.copy()
        for h in list(manager.handlers):
            if isinstance(h, TaskMessages):
                manager.remove_handler(h)
        return manager
    return callbacks
