"""The worker threads that run a superstep's tasks.

Unlike a fixed-size pool, this one starts a thread whenever every worker is busy, so a step
with a thousand branches runs a thousand tasks at once (the caller bounds that with
`max_concurrency`). Work goes to the most recently idle worker, so under a steady load the
same few threads stay warm and the rest of a burst's threads time out and exit: the thread
count returns to what the load needs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

IDLE_LINGER_SECONDS = 2.0
"""How long an idle worker waits for more work before exiting."""


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

    def submit(self, fn: Callable[[], None]) -> None:
        """Runs `fn` on a worker; `fn` must not raise (it reports its own outcome)."""
        with self._lock:
            if self._idle:
                worker = self._idle.pop()
                worker.work = fn
                worker.wake.set()
                return
            self._threads += 1
        threading.Thread(target=self._serve, args=(fn,), name=self._name, daemon=True).start()

    def _serve(self, fn: Callable[[], None]) -> None:
        me = _Worker()
        while True:
            fn()
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
