"""The asyncio driver: `astream` and `ainvoke`, on the caller's event loop.

Async nodes (and runnables) run as tasks of the loop; sync nodes run on worker threads, as
under `stream`. `AsyncDriver.batches` (for `astream`) makes the loop the chunk channel's
consumer: it sleeps on the channel's waker, so it is woken once per batch of chunks, and
tasks on the loop push through non-blocking producers (`LoopProducer`) that await room, so
a full channel never blocks the loop. `AsyncDriver.run` (for `ainvoke`) streams nothing and
needs no channel at all.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from ferrograph._core import ChunkChannel
from ferrograph.errors import is_invalid_resume
from ferrograph.pregel._cache import alookup, arun_step, astore
from ferrograph.pregel._call import raised_by_the_node as _raised_by_the_node
from ferrograph.pregel._dispatch import DRAIN_BATCH, Dispatch
from ferrograph.pregel._executor import DEFAULT_POOL
from ferrograph.pregel._loop import GraphRun
from ferrograph.pregel._messages import LoopProducer
from ferrograph.pregel._stream import CONTROL_NODE, MODE_DONE, Item
from ferrograph.pregel._task import Step, Task
from ferrograph.pregel._trace import aend_trace, areport_resume, astart_trace, atraced_task
from ferrograph.pregel._write import abranch_writes


class AsyncDriver:
    """Drives one `GraphRun` on the running event loop."""

    __slots__ = ("run", "loop", "_wake", "_ended", "_room_waiters")

    def __init__(self, run: GraphRun) -> None:
        self.run = run
        self.loop = asyncio.get_running_loop()
        # The consumer's state under `batches` (made there: `run_to_end` needs none of it).
        self._wake: asyncio.Future[None] | None = None
        """The future the consumer sleeps on."""
        self._ended: deque[Task]
        """Async tasks that ended; their chunks are all queued by then."""
        self._room_waiters: deque[asyncio.Future[None]]
        """Backlogged producers on the loop, waiting for the consumer to drain."""

    # -- astream ------------------------------------------------------------------------------

    async def batches(self) -> AsyncIterator[list[Item]]:
        """The run's items in lists, a drained batch at a time (one generator hop per
        batch). On leaving — the end, a failure, `aclose()`, cancellation — the channel is
        closed and every task still running is cancelled and awaited."""
        run, loop = self.run, self.loop
        run.aloop = self
        run.streams_outputs = True
        self._ended, self._room_waiters = deque(), deque()
        channel = run.open_channel()
        channel.set_waker(functools.partial(_wake_loop, loop, threading.get_ident(),
                                            self._wake_up))
        control = channel.producer(CONTROL_NODE, 0)
        running: set[asyncio.Task[None]] = set()
        await astart_trace(run)
        error: BaseException | None = None
        try:
            await run.abegin()
            await areport_resume(run)
            for part in run.supersteps():
                await run.aflush()  # what the thread owes so far, before the run goes on
                if type(part) is Step:
                    if run.graph.cache_policies:  # looked up in the cache first
                        steps = arun_step(run, part, functools.partial(
                            self._execute_streaming, channel=channel, control=control,
                            step=part.number, running=running))
                    else:
                        steps = self._execute_streaming(part.tasks, channel, control,
                                                        part.number, running)
                    async for batch in steps:
                        yield batch
                else:
                    yield part
        except BaseException as e:
            error = e
            raise
        finally:
            channel.close()  # releases producers on worker threads (their models stop)
            for task in running:
                task.cancel()
            if running:
                await asyncio.wait(running)
            try:
                await run.aended(error)
            except BaseException as e:  # a lifecycle handler that raises (`raise_error`)
                await aend_trace(run, e)
                raise
            await aend_trace(run, error)

    async def _execute_streaming(self, tasks: list[Task], channel: ChunkChannel,
                                 control: Any, step: int,
                                 running: set[asyncio.Task[None]]
                                 ) -> AsyncIterator[list[Item]]:
        run, loop, ended = self.run, self.loop, self._ended

        def launch(t: Task) -> None:
            runner = t.runner
            if runner is None:  # the start node: mapping the input, nothing to wait for
                run.run_task(t)
                ended.append(t)
            elif runner.on_loop:
                task = loop.create_task(self._run_streaming_task(t))
                running.add(task)
                task.add_done_callback(running.discard)
            else:  # sync nodes never run on the loop, not even alone in their step
                DEFAULT_POOL.submit(functools.partial(run.run_and_report, t, control))

        dispatch = Dispatch(tasks, run.max_concurrency, launch)
        step_timeout = run.graph.step_timeout
        deadline = loop.time() + step_timeout if step_timeout else None
        while dispatch.pending:
            if deadline is not None and loop.time() >= deadline:
                raise TimeoutError  # the caller cancels the step's tasks
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
                for items in run.batch_items(batch, step, dispatch.task_ended):
                    yield items
                if dispatch.pending and run.saving is not None and run.saving.outbox:
                    # a task ended while others run on: its writes are saved now (as
                    # LangGraph's), so a run stopped mid-step does not run it again
                    await run.aflush()
            else:
                wake = self._wake = loop.create_future()
                if channel.arm():
                    try:
                        if deadline is None:
                            await wake
                        else:
                            await asyncio.wait((wake,), timeout=deadline - loop.time())
                    finally:
                        self._wake = None

    async def _run_streaming_task(self, t: Task) -> None:
        """Runs an event-loop task of `batches`; its end is announced by `_ended`."""
        await self._run_task(t)
        self._ended.append(t)
        self._wake_up()

    def on_this_loop(self) -> bool:
        """Whether the event loop running now is this driver's."""
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    def outlet_of(self, task: Task, producer: Any) -> LoopProducer:
        """The task's producer for use on this event loop (see `LoopProducer`), made from
        `producer` on first use. One per task, so the task has a single backlog, which
        `_run_task` flushes before the task counts as ended."""
        if task.outlet is None:
            task.outlet = LoopProducer(producer, self.loop, self._wait_for_room)
        return task.outlet

    def _wake_up(self) -> None:
        """Wakes the consumer of `batches` if it sleeps (on the loop's thread)."""
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _wait_for_room(self) -> None:
        """For backlogged producers on the loop: returns once the consumer has drained."""
        room = self.loop.create_future()
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

    # -- ainvoke ------------------------------------------------------------------------------

    async def run_to_end(self) -> None:
        """Runs the graph to the end (or a breakpoint), streaming nothing."""
        run = self.run
        run.streams_outputs = True
        if run.user_callbacks is None and run.saving is None:
            # Nothing to trace, load or save (most runs): none of the hooks around the
            # steps has anything to do, so none of their coroutines is made.
            await self._steps_to_end()
            return
        await astart_trace(run)
        error: BaseException | None = None
        try:
            await run.abegin()
            await areport_resume(run)
            await self._steps_to_end()
        except BaseException as e:
            error = e
            raise
        finally:
            try:
                await run.aended(error)
            except BaseException as e:  # a lifecycle handler that raises (`raise_error`)
                await aend_trace(run, e)
                raise
            await aend_trace(run, error)

    async def _steps_to_end(self) -> None:
        run = self.run
        # `GraphRun.supersteps` without its items (none are streamed).
        while tasks := run.plan_step():
            if run.before_step(tasks, run.run.step)[1]:
                return
            to_run, misses = tasks, None
            if run.graph.cache_policies:  # looked up in the cache first (see `_cache`)
                to_run, _, misses = await alookup(run, tasks)
            if not to_run:
                pass
            elif run.graph.step_timeout:
                await self._execute_timed(to_run, run.graph.step_timeout)
            elif len(to_run) == 1:  # most steps: no fan-out to manage
                await self._run_task(to_run[0])
                if to_run[0].error is not None:
                    raise to_run[0].error
            else:
                await self._execute(to_run)
            if misses:
                await astore(run, misses)
            stop = run.after_step(tasks)[1]
            if run.saving is not None:
                await run.aflush()
            if stop:
                return
        run.final_values = run.run.read(run.result_ids)

    async def _execute_timed(self, tasks: list[Task], step_timeout: float) -> None:
        """`_execute` under the graph's `step_timeout`: past it, the step's tasks are
        cancelled and the run fails with LangGraph's `TimeoutError("Timed out")`."""
        try:
            await asyncio.wait_for(self._execute(tasks), step_timeout)
        except TimeoutError:
            if any(t.error is not None for t in tasks):
                raise
            raise TimeoutError from None  # LangGraph's (asyncio's) has no message

    async def _execute(self, tasks: list[Task]) -> None:
        """Runs a step's tasks at once (at most `max_concurrency`); the first failure
        cancels the others, except a refused answer to an interrupt (`is_invalid_resume`):
        it is raised once the others end, so a task answered in the same resume is not cut
        off after its side effects (LangGraph's rule)."""
        limit_to = self.run.max_concurrency
        limit = asyncio.Semaphore(limit_to) if limit_to else None

        async def bounded(t: Task) -> None:
            async with limit:  # type: ignore[union-attr]
                await self._run_task(t)

        running = [asyncio.ensure_future(bounded(t) if limit else self._run_task(t))
                   for t in tasks]
        try:
            saving = self.run.saving
            for future in asyncio.as_completed(running):
                await future
                failed = next((t for t in tasks if t.error is not None
                               and not is_invalid_resume(t.error)), None)
                if failed is not None:
                    raise failed.error
                if saving is not None and saving.outbox:  # as in `_execute_streaming`
                    await self.run.aflush()
        finally:
            for future in running:  # a failure (or our own cancellation) stops siblings
                future.cancel()
        for t in tasks:
            if t.error is not None:
                raise t.error

    # -- tasks --------------------------------------------------------------------------------

    async def _run_task(self, t: Task) -> None:
        """Runs a task from the event loop, recording its writes or its error (raises only
        its own cancellation)."""
        run, runner = self.run, t.runner
        if runner is None:  # the start node: mapping the input, nothing to wait for
            run.run_task(t)
        elif runner.on_loop:
            if not run.prepared(t):
                return
            if t.saved_writes is not None:  # it finished before the thread paused
                return
            try:
                if run.user_callbacks is not None:  # its routers run inside its trace
                    await atraced_task(t, self._finish_task, run.streams_outputs)
                    if t.outlet is not None:
                        await t.outlet.flush()
                    return
                output = await runner.acall(t.input, t.config)
                if t.name in run.graph.branches:
                    await self._finish_task(t, output)
                else:  # no router to await: no coroutine to make for it
                    run.finish_task(t, output)
                if t.outlet is not None:
                    await t.outlet.flush()
            except asyncio.CancelledError as e:
                if not _raised_by_the_node():
                    raise
                run.record_error(t, e)  # LangGraph's NodeCancelledError
            except BaseException as e:  # noqa: BLE001 - recorded like the sync path does
                run.record_error(t, e)
        else:
            # Sync nodes go off the loop, to the loop's executor (as asyncio code expects:
            # its size is the caller's to set).
            await self.loop.run_in_executor(None, run.run_task, t)

    async def _finish_task(self, t: Task, output: Any) -> None:
        """`GraphRun.finish_task` on the event loop: async routers are awaited there."""
        run = self.run
        run.take_output(t, output)
        if t.name in run.graph.branches:
            await abranch_writes(run.graph, t.name, t.config, run.run.read(None), t.writes,
                                 output, run.router_managed(t))
        run.task_done(t)
        run.emit_output(t, output)


def _wake_loop(loop: asyncio.AbstractEventLoop, loop_thread: int,
               fn: Callable[[], None]) -> None:
    """The channel's waker for `AsyncDriver.batches`: runs `fn` (which only resolves a
    future) at once when the chunk was pushed on the loop's own thread, by an async node;
    from any other thread it schedules `fn` there, which also wakes the loop's selector (a
    write to its self-pipe, too dear to pay for every batch a task on the loop produces)."""
    if threading.get_ident() == loop_thread:
        fn()
        return
    try:
        loop.call_soon_threadsafe(fn)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        pass
