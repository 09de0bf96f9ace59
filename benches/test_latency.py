"""Latency checks that only a clock can make, kept out of the test suite (CI runs `pytest`
on `tests/` only: timings there race on a loaded machine). Run: `pytest benches/test_latency.py`.
"""

from __future__ import annotations

import operator
import time
from typing import Annotated, Any, TypedDict

from ferrograph.graph import START, StateGraph


class Log(TypedDict):
    log: Annotated[list, operator.add]


def test_a_waiting_consumer_gets_the_first_item_without_waiting_for_a_busy_producer():
    """A producer that keeps the GIL busy hands it to a consumer that was waiting, rather
    than keeping it until the switch interval. The interval is made 3 s and the bound 1.5 s,
    so the difference shows whatever the machine's load; the producer first gives the
    consumer 0.3 s to fall asleep on the channel (it needs microseconds: only if it is
    awake at the push is there no one to hand the GIL to)."""
    import sys

    from ferrograph.config import get_stream_writer

    pushed_at: list[float] = []

    def busy(state: Log) -> dict[str, Any]:
        time.sleep(0.3)  # the consumer is asleep on the channel by now
        pushed_at.append(time.monotonic())
        get_stream_writer()("first")
        end = time.monotonic() + 3.2
        while time.monotonic() < end:  # pure Python: gives the GIL up only when asked
            pass
        return {"log": ["done"]}

    builder = StateGraph(Log)
    builder.add_node("busy", busy)
    builder.add_edge(START, "busy")
    graph = builder.compile()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(3.0)
    try:
        stream = graph.stream({"log": []}, stream_mode="custom")
        assert next(stream) == "first"
        received_at = time.monotonic()
        assert list(stream) == []
    finally:
        sys.setswitchinterval(interval)
    assert received_at - pushed_at[0] < 1.5
