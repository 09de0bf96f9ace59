"""How the tasks of a step whose items are read as they come are started.

`Dispatch` starts them at most `max_concurrency` at once and, for tasks on threads, only as
many as the GIL has room for. A step where nothing is handed over before it ends is shared
instead between the calling thread and a crew of workers (`Crew`, in Rust:
`rust/src/python/crew.rs`, the policy the Rust `invoke` driver uses too). The drivers
(`_sync`, `_async`) decide which a step gets.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ferrograph.pregel._task import Task

DRAIN_BATCH = 1024
"""The most chunks the consumer takes from the channel at once."""
DRAIN_WAIT_SECONDS = 0.2
"""The longest the consumer sleeps on the channel before looking at signals (Ctrl-C)."""
RAMP_START = 1
"""Tasks of a live step started before `Dispatch` has seen whether they keep the GIL busy."""
RAMP_TICK_SECONDS = 0.002
RAMP_FREE_GIL_SECONDS = 0.001
"""A GIL taken back within this was free (a busy one takes the switch interval, 5 ms)."""
RAMP_FREE_LOOKS = 2
RAMP_PATIENCE_SECONDS = 0.25


class Dispatch:
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

