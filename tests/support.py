"""Small helpers shared by the tests."""

from __future__ import annotations

import threading
import time

from ferrograph.pregel._executor import IDLE_LINGER_SECONDS


def settle_threads(baseline: int) -> int:
    """The thread count once idle workers have exited, or after a deadline if they don't."""
    deadline = time.monotonic() + IDLE_LINGER_SECONDS + 3
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    return threading.active_count()
