"""The worker threads that run a superstep's tasks.

Unlike a fixed-size pool, this one starts a thread whenever every worker is busy, so a step
with a thousand branches runs a thousand tasks at once (the caller bounds that with
`max_concurrency`). Idle workers exit after a short linger, so the thread count returns to
where it was once runs finish.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

IDLE_LINGER_SECONDS = 2.0
"""How long an idle worker waits for more work before exiting."""


class WorkerPool:
    """Runs submitted callables on daemon threads, starting a new one when none is idle."""

    def __init__(self, name: str = "ferrograph-worker") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._work: deque[Callable[[], None]] = deque()
        self._wakeup = threading.Condition(self._lock)
        self._idle = 0
        self._threads = 0

    @property
    def thread_count(self) -> int:
        return self._threads

    def submit(self, fn: Callable[[], None]) -> None:
        """Runs `fn` on a worker; `fn` must not raise (it reports its own outcome)."""
        with self._lock:
            self._work.append(fn)
            if self._idle > len(self._work) - 1:
                self._wakeup.notify()
                return
            self._threads += 1
        thread = threading.Thread(target=self._worker, name=self._name, daemon=True)
        thread.start()

    def _worker(self) -> None:
        lock = self._lock
        while True:
            with lock:
                while not self._work:
                    self._idle += 1
                    woke = self._wakeup.wait(IDLE_LINGER_SECONDS)
                    self._idle -= 1
                    if not woke and not self._work:
                        self._threads -= 1
                        return
                fn = self._work.popleft()
            fn()


DEFAULT_POOL = WorkerPool()
