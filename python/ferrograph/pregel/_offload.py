"""Whole runs handed from an event loop to worker threads, in batches (`ainvoke` of a graph
of sync nodes: `offload`).

`asyncio.to_thread` per run costs an executor hand-over and a wake-up of the loop (a write
to its self-pipe) per run: with thousands of concurrent `ainvoke` those hops, not the runs,
are most of the time. Here each event loop has one `LoopOffload`: runs queue up, runners
on the loop's default executor (so its size, the caller's to set, still caps how many run
at once) claim them one after another, and what ended goes back to the loop in batches,
with one `call_soon_threadsafe` for every batch the loop has not yet picked up.

One runner starts with the first queued run. More are recruited only when the queue does
not move: the scout (`DEFAULT_SCOUT`) keeps looking while runs wait and, when none started
or ended across looks that found the GIL free (runners blocked in their nodes), doubles
the runners, up to the executor's size. Cheap runs all go through one thread; blocking ones still run side by side.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from ferrograph.pregel._executor import DEFAULT_SCOUT

_DEFAULT_RUNNERS = 32
"""The cap when the loop's executor does not say its size (a ThreadPoolExecutor's most)."""

_PROMPT_LOOK_SECONDS = 0.004
"""A scout's look this soon after its previous one (it polls every millisecond) found the
GIL free in between (the interpreter's switch interval is 5 ms)."""

_Job = tuple[asyncio.Future, contextvars.Context, Callable[..., Any], tuple[Any, ...]]


class LoopOffload:
    """One event loop's queue of runs for worker threads (see the module doc)."""

    __slots__ = ("_loop", "_jobs", "_ended", "_lock", "_runners", "_delivering", "_started",
                 "_finished", "_seen_moved", "_last_look", "_stuck_looks", "_watching",
                 "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)
        """Weak: the registry (`_OFFLOADS`) holds this while the loop lives, no longer."""
        self._jobs: deque[_Job] = deque()
        self._ended: list[tuple[asyncio.Future, Any, BaseException | None]] = []
        self._lock = threading.Lock()
        self._runners = 0
        """Runners started and not yet gone (queued on the executor, or running)."""
        self._delivering = False
        """Whether a delivery of `_ended` is scheduled on the loop and not run yet."""
        self._started = 0
        self._finished = 0
        """Runs started and ended so far (the scout compares them between two looks)."""
        self._seen_moved = 0
        self._last_look = 0.0
        self._stuck_looks = 0
        self._watching = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop (None once it is gone: nobody awaits its runs any more)."""
        return self._loop()

    def submit(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any],
               *args: Any) -> asyncio.Future:
        """`fn(*args)` on a worker thread, in a copy of this context (as `to_thread`); the
        future has its result. On the loop's thread. A run whose future is cancelled
        before a runner takes it never starts."""
        future = loop.create_future()
        job = (future, contextvars.copy_context(), fn, args)
        with self._lock:
            self._jobs.append(job)
            start = self._runners == 0
            if start:
                self._runners = 1
            watch = not start and not self._watching
            if watch:
                self._watching = True
        if start:
            self._start_runners(loop, 1)
        elif watch:  # runs wait behind a runner: the scout sees whether they move
            DEFAULT_SCOUT.watch(self._check)
        return future

    def _start_runners(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        """On the loop's thread: `count` more runners (already counted in `_runners`)."""
        for _ in range(count):
            try:
                loop.run_in_executor(None, self._serve)
            except RuntimeError as e:  # the executor is shut down: nothing will run them
                with self._lock:
                    self._runners -= 1
                    failed = list(self._jobs) if not self._runners else []
                    if failed:
                        self._jobs.clear()
                for future, _, _, _ in failed:
                    if not future.done():
                        future.set_exception(e)

    def _serve(self) -> None:
        """A runner, on a worker thread: runs queued runs until none is left."""
        jobs, lock = self._jobs, self._lock
        while True:
            with lock:
                if not jobs:
                    self._runners -= 1
                    return
                future, context, fn, args = jobs.popleft()
                self._started += 1
            if future.done():  # cancelled while queued: never started, as with `to_thread`
                continue
            error: BaseException | None = None
            result = None
            try:
                result = context.run(fn, *args)
            except BaseException as e:  # noqa: BLE001 - handed to the caller's future
                error = e
            with lock:
                self._ended.append((future, result, error))
                self._finished += 1
                schedule = not self._delivering
                self._delivering = True
            if schedule:
                try:
                    self.loop.call_soon_threadsafe(self._deliver)  # type: ignore[union-attr]
                except (RuntimeError, AttributeError):  # the loop is closed, or gone
                    with lock:
                        self._delivering = False
                        self._ended.clear()

    def _deliver(self) -> None:
        """On the loop's thread: every run ended since the last delivery, to its future."""
        with self._lock:
            batch, self._ended = self._ended, []
            self._delivering = False
        for future, result, error in batch:
            if future.done():  # its caller was cancelled meanwhile
                continue
            if error is None:
                future.set_result(result)
                continue
            try:
                future.set_exception(error)
            except TypeError as refused:  # StopIteration cannot go into a future: the
                future.set_exception(refused)  # rest of the batch is still delivered

    def _check(self) -> None:
        """On the scout's thread: while runs wait and, twice in a row, none started or
        ended since a prompt look before (the GIL free in between: the runners are blocked
        in their nodes, not waiting for it), doubles the runners (up to the executor's
        size). A late look means the GIL was busy: more runners would only contend."""
        now = time.monotonic()
        loop = self.loop
        with self._lock:
            if not self._jobs or loop is None:
                self._watching = False
                return
            moved = self._started + self._finished
            prompt = now - self._last_look < _PROMPT_LOOK_SECONDS
            self._stuck_looks = self._stuck_looks + 1 if (
                prompt and moved == self._seen_moved) else 0
            self._seen_moved, self._last_look = moved, now
            more = 0
            if self._stuck_looks >= 2:
                self._stuck_looks = 0
                more = max(0, min(self._runners, _runner_cap(loop) - self._runners))
                self._runners += more
        if more:
            try:
                loop.call_soon_threadsafe(self._start_runners, loop, more)
            except RuntimeError:  # the loop is closed
                with self._lock:
                    self._runners -= more
        DEFAULT_SCOUT.watch(self._check)


def _runner_cap(loop: asyncio.AbstractEventLoop) -> int:
    # The default executor's size: a ThreadPoolExecutor keeps it in `_max_workers`.
    executor = getattr(loop, "_default_executor", None)
    return getattr(executor, "_max_workers", None) or _DEFAULT_RUNNERS


_OFFLOADS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopOffload] = (
    weakref.WeakKeyDictionary())


def offload(fn: Callable[..., Any], *args: Any) -> asyncio.Future:
    """`asyncio.to_thread(fn, *args)` through the running loop's batched runners."""
    loop = asyncio.get_running_loop()
    queue = _OFFLOADS.get(loop)
    if queue is None:
        queue = _OFFLOADS[loop] = LoopOffload(loop)
    return queue.submit(loop, fn, *args)
