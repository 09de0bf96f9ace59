"""The synchronous driver: `stream` and `invoke` (when not on the Rust driver).

The calling thread is the consumer: it runs the run's supersteps, executes each step's tasks
(on this thread, shared with a crew of workers, or all on workers when they stream live)
and drains the chunk channel into batches of items for `RunStream`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import Any

from ferrograph._core import ChunkChannel, Crew
from ferrograph.errors import is_invalid_resume
from ferrograph.pregel._cache import run_step
from ferrograph.pregel._direct_thread import thread_steps
from ferrograph.pregel._dispatch import DRAIN_BATCH, DRAIN_WAIT_SECONDS, Dispatch
from ferrograph.pregel._executor import DEFAULT_POOL, DEFAULT_SCOUT
from ferrograph.pregel._loop import GraphRun
from ferrograph.pregel._outcome import raise_refused_answer
from ferrograph.pregel._stream import CONTROL_NODE, Item
from ferrograph.pregel._task import Step, Task
from ferrograph.pregel._trace import end_trace, report_resume, start_trace


def batches(run: GraphRun) -> Iterator[list[Item]]:
    """The run's items in lists, a drained batch at a time (what `stream` hands on; one
    generator hop per batch, not per item)."""
    channel = run.open_channel()
    control = channel.producer(CONTROL_NODE, 0)
    start_trace(run)
    error: BaseException | None = None
    try:
        for part in run.supersteps():
            if type(part) is Step:
                if run.graph.cache_policies:  # looked up in the cache first (see `_cache`)
                    yield from run_step(run, part, functools.partial(
                        _execute, run, channel=channel, control=control, step=part.number))
                else:
                    yield from _execute(run, part.tasks, channel, control, part.number)
            else:
                yield part
    except BaseException as e:
        error = e
        raise
    finally:
        # Wakes and fails every producer still running (a consumer that stopped early,
        # or a failed step): their models stop streaming instead of blocking forever.
        channel.close()
        try:
            run.ended(error)
        except BaseException as e:  # a lifecycle handler that raises (`raise_error`)
            end_trace(run, e)
            raise
        end_trace(run, error)


FAILED_STEP_WAIT_SECONDS = 0.01
"""The slice a failed step waits in for its running siblings (see `StartedTasks.wait`)."""


class StartedTasks:
    """Counts the step's tasks that ended on workers. When a task fails, the step waits for
    its siblings already running before the error goes on (as LangGraph's executor does on
    leaving): their writes are saved, and none runs on once the caller has the error. Nothing
    new starts meanwhile, and the channel is drained (the items dropped) so none waits on it.
    A consumer that stops early or Ctrl-C does not wait."""

    __slots__ = ("ended",)

    def __init__(self) -> None:
        # One entry per task ended (`list.append` is atomic): no lock to make per step, on
        # the path every parallel step takes; only a failure ever waits on it.
        self.ended: list[None] = []

    def track(self, work: Callable[..., None], *args: Any) -> Callable[..., None]:
        ended = self.ended

        def tracked(*more: Any) -> None:
            try:
                work(*args, *more)
            finally:
                ended.append(None)
        return tracked

    def wait(self, count: int, channel: ChunkChannel) -> None:
        """Waits for `count` tasks started on workers (some may have ended already). Each
        reports its end on the channel just before it counts as ended, so draining it (the
        items dropped) is the wait; a short slice covers the moment in between."""
        while len(self.ended) < count:
            if channel.drain(DRAIN_BATCH, FAILED_STEP_WAIT_SECONDS) is None:
                time.sleep(FAILED_STEP_WAIT_SECONDS)  # closed: nothing to free, only wait


def run_to_end(run: GraphRun) -> None:
    """Runs `run` to its end (or breakpoint), dropping its items (`invoke`). A run that
    streams nothing takes its steps without `supersteps`' generator (see `_steps_to_end`)."""
    if run.spec.modes:
        for _ in batches(run):
            pass
        return
    channel = run.open_channel()
    control = channel.producer(CONTROL_NODE, 0)
    start_trace(run)
    error: BaseException | None = None
    try:
        run.begin()
        report_resume(run)
        _steps_to_end(run, channel, control)
    except BaseException as e:
        error = e
        raise
    finally:
        channel.close()  # as in `batches`: producers still running fail
        try:
            run.ended(error)
        except BaseException as e:
            end_trace(run, e)
            raise
        end_trace(run, error)


def _steps_to_end(run: GraphRun, channel: ChunkChannel, control: Any) -> None:
    """`GraphRun.supersteps` without its items (a run that streams none makes only those it
    drops: a breakpoint's, a reused task's)."""
    graph = run.graph
    rust_steps = thread_steps(run)
    while True:
        if rust_steps is not None:  # plain steps on the Rust driver (see `_direct_thread`)
            if (handed := rust_steps()) is None:
                break
            tasks, ran = handed
            if ran:  # a task paused (or refused its answer): the step ends here
                raise_refused_answer(tasks)
                if run.after_step(tasks)[1]:
                    return
                continue
        elif not (tasks := run.plan_step()):
            break
        number = run.run.step
        if run.before_step(tasks, number)[1]:
            return
        if graph.cache_policies:  # looked up in the cache first (see `_cache`)
            for _ in run_step(run, Step(tasks, number), functools.partial(
                    _execute, run, channel=channel, control=control, step=number)):
                pass
        elif len(tasks) == 1 and not graph.step_timeout:
            t = tasks[0]  # most steps: the task runs right here (nothing streams live)
            run.run_task(t)
            if t.error is not None:
                raise t.error
        else:
            for _ in _execute(run, tasks, channel, control, number):
                pass
        if run.after_step(tasks)[1]:
            return
    run.final_values = run.run.read(run.result_ids)


def _execute(run: GraphRun, tasks: list[Task], channel: ChunkChannel, control: Any,
             step: int) -> Iterator[list[Item]]:
    """Runs one step's tasks, yielding what they produce and their end items; the first
    task to fail raises its error (after the items produced before it)."""
    step_timeout = run.graph.step_timeout
    if step_timeout:
        yield from _execute_timed(run, tasks, channel, control, step, step_timeout)
        return
    if len(tasks) == 1 and not run.streams_live(tasks[0]):
        t = tasks[0]  # most steps: no crew to gather, the task runs right here
        run.run_task(t)
        if items := list(run.task_end_items(t, step)):
            yield items
        if t.error is not None:
            raise t.error
        return
    if not any(run.streams_live(t) or run.reports_end(t) for t in tasks):
        # Nothing is handed over before the step ends: this thread may run tasks too.
        yield from _execute_sharing(run, tasks, channel, control, step)
        return

    started = StartedTasks()
    launched = 0

    def launch(t: Task) -> None:
        nonlocal launched
        launched += 1
        DEFAULT_POOL.submit(started.track(run.run_and_report, t, control))

    # The tasks the consumer listens to start first (sorting is stable).
    tasks = sorted(tasks, key=lambda t: not run.streams_live(t))
    dispatch = Dispatch(tasks, run.max_concurrency, launch, ramp=True)
    try:
        while dispatch.pending:
            # A bounded wait, so Ctrl-C (delivered only between Python bytecodes) is seen.
            batch = channel.drain(DRAIN_BATCH, dispatch.wait_seconds())
            if batch is None:
                raise RuntimeError("the stream channel closed while tasks were running")
            yield from run.batch_items(batch, step, dispatch.task_ended)
            del batch  # handed over: not kept alive through the next wait
            dispatch.adapt(channel.take_gil_wait())
    except Exception:  # a task failed: the others already running end first
        dispatch.queue.clear()
        started.wait(launched, channel)
        raise
    raise_refused_answer(tasks)

def _execute_timed(run: GraphRun, tasks: list[Task], channel: ChunkChannel, control: Any,
                   step: int, step_timeout: float) -> Iterator[list[Item]]:
    """`_execute` under the graph's `step_timeout`: every task on a worker, and the step
    failing with LangGraph's `TimeoutError("Timed out")` once it has taken longer (time
    the caller spends between items counts). Sync nodes cannot be stopped: they run on."""
    deadline = time.monotonic() + step_timeout

    def launch(t: Task) -> None:
        DEFAULT_POOL.submit(functools.partial(run.run_and_report, t, control))

    dispatch = Dispatch(tasks, run.max_concurrency, launch, ramp=True)
    while dispatch.pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("Timed out")
        batch = channel.drain(DRAIN_BATCH, min(dispatch.wait_seconds(), remaining))
        if batch is None:
            raise RuntimeError("the stream channel closed while tasks were running")
        yield from run.batch_items(batch, step, dispatch.task_ended)
        del batch
    raise_refused_answer(tasks)


def _execute_sharing(run: GraphRun, tasks: list[Task], channel: ChunkChannel, control: Any,
                     step: int) -> Iterator[list[Item]]:
    """A step in which nothing is handed over before it ends: this thread runs tasks too,
    claiming them from the queue the workers claim from (see `Crew` in
    `rust/src/python/crew.rs`, which recruits them only once the step proves slow). Cheap
    nodes are all done here before a worker has even woken, with no hand-over per task,
    while slow or blocking ones still run side by side."""

    started = StartedTasks()

    def run_index(i: int) -> None:  # on a worker
        run.run_and_report(tasks[i], control)

    crew = Crew(len(tasks), run.max_concurrency, started.track(run_index), DEFAULT_POOL.submit)
    if crew.helpers:
        DEFAULT_SCOUT.watch(crew.scout_handle())
    elsewhere = len(tasks)  # tasks whose end arrives through the channel
    here = 0  # tasks this thread claimed

    def ended_elsewhere() -> None:
        nonlocal elsewhere
        elsewhere -= 1

    try:
        while (i := crew.claim()) is not None:
            t = tasks[i]
            elsewhere -= 1
            here += 1
            run.run_task(t)
            if t.error is not None and not is_invalid_resume(t.error):
                raise t.error
        while elsewhere:
            # A bounded wait, so Ctrl-C (delivered only between bytecodes) is seen.
            batch = channel.drain(DRAIN_BATCH, DRAIN_WAIT_SECONDS)
            if batch is None:
                raise RuntimeError("the stream channel closed while tasks were running")
            yield from run.batch_items(batch, step, ended_elsewhere)
        raise_refused_answer(tasks)
    except Exception:  # a task failed: the others already running end first
        never_started = crew.close()
        started.wait(len(tasks) - here - never_started, channel)
        raise
    finally:
        crew.close()  # after a failure or an early exit, nothing more starts
