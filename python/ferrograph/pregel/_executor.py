"""The worker threads that run a superstep's tasks.

Unlike a fixed-size pool, this one starts a thread whenever every worker is busy, so a step
with a thousand branches runs a thousand tasks at once (the caller bounds that with
`max_concurrency`). Work goes to the most recently idle worker, so under a steady load the
same few threads stay warm and the rest of a burst's threads time out and exit: the thread
count returns to what the load needs.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections import deque
from collections.abc import Callable

EXIT_WAIT_SECONDS = 1.0
"""At exit, how long to wait for workers still finishing a task."""
IDLE_LINGER_SECONDS = 2.0
"""How long an idle worker (or the scout) waits for more work before exiting."""
SCOUT_POLL_SECONDS = 0.001


class _Worker:
    __slots__ = ("wake", "work")

    def __init__(self) -> None:
        self.wake = threading.Event()
        self.work: Callable[[], None] | None = None


class WorkerPool:
    """Runs submitted callables on daemon threads, starting a new one when none is idle."""

    def __init__(self, name: str = "ferrograph-worker") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        """Idle workers, most recently idle last (handed work first)."""
        self._threads = 0

    @property
    def thread_count(self) -> int:
        return self._threads

    def busy(self) -> int:
        """How many workers are running something."""
        return self._threads - len(self._idle)

    def submit(self, fn: Callable[[], None]) -> None:
        """Runs `fn` on a worker; `fn` must not raise (it reports its own outcome)."""
        with self._lock:
            if self._idle:
                worker = self._idle.pop()
                worker.work = fn
                worker.wake.set()
                return
            self._threads += 1
        worker = _Worker()
        worker.work = fn
        threading.Thread(target=self._serve, args=(worker,), name=self._name,
                         daemon=True).start()
        # Only now may the new thread run `fn`: gone straight into it, it would keep the GIL
        # from this thread, woken by `start()` and waiting for it, for a whole switch
        # interval (5 ms a thread started).
        worker.wake.set()

    def _serve(self, me: _Worker) -> None:
        me.wake.wait()
        fn = me.work
        while True:
            fn()  # type: ignore[misc]
            with self._lock:
                me.work = None
                me.wake.clear()
                self._idle.append(me)
            if not me.wake.wait(IDLE_LINGER_SECONDS):
                with self._lock:
                    if me.work is None:  # not handed work between the timeout and the lock
                        self._idle.remove(me)
                        self._threads -= 1
                        return
            fn = me.work  # type: ignore[assignment]


DEFAULT_POOL = WorkerPool()


class Scout:
    """One thread that calls `check()` on what it was asked to watch, a little later.

    For work that may or may not need more threads (a step whose cheap tasks the calling
    thread will likely finish itself): waking a worker per such step would cost more than
    the step, and so would waking this thread per step. Watching costs an append; the scout
    polls every `SCOUT_POLL_SECONDS` (with the GIL released) and checks what was watched at
    least one poll earlier, so a step that ended in the meantime costs it nothing more. It
    needs the GIL for a check, which it gets when the watched work blocks (or after the
    interpreter's switch interval): whatever is still waiting then gets its workers. With
    nothing to watch for `IDLE_LINGER_SECONDS`, the thread exits, like a pool worker."""

    def __init__(self, name: str = "ferrograph-scout") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._watched: deque[Callable[[], None]] = deque()
        self._running = False

    def watch(self, check: Callable[[], None]) -> None:
        """Calls `check` on the scout's thread soon; `check` must not block or raise."""
        self._watched.append(check)
        if not self._running:
            with self._lock:  # pairs with the exit check in `_serve`: no watch is left unseen
                if not self._running:
                    self._running = True
                    threading.Thread(target=self._serve, name=self._name, daemon=True).start()

    def _serve(self) -> None:
        watched = self._watched
        aged: list[Callable[[], None]] = []
        idle_since = time.monotonic()
        while True:
            time.sleep(SCOUT_POLL_SECONDS)
            for check in aged:  # watched a poll ago or more: its step has taken that long
                check()
            aged = [watched.popleft() for _ in range(len(watched))]
            if aged:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > IDLE_LINGER_SECONDS:
                with self._lock:
                    if not watched:  # nothing arrived between the look and the lock
                        self._running = False
                        return


DEFAULT_SCOUT = Scout()



@atexit.register
def _let_workers_finish() -> None:
    """At exit, before the interpreter stops its daemon threads: waits (briefly) for the
    workers still finishing a task (the push that reports a task's end can still be under
    way when its run is over). A daemon thread stopped by a finalizing interpreter while it
    runs Python code called from the extension's Rust code unwinds through frames that
    cannot let it through: the process would abort as it exits."""
    deadline = time.monotonic() + EXIT_WAIT_SECONDS
    while DEFAULT_POOL.busy() and time.monotonic() < deadline:
        time.sleep(0.001)  # lets them have the GIL
