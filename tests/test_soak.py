"""Soak: many streamed runs and many cancelled runs on one compiled graph leave the thread
count where it was and memory flat.

CI runs a short form. The long form (issue's 10,000 streamed and 1,000 cancelled runs):

    FERROGRAPH_SOAK_RUNS=10000 FERROGRAPH_SOAK_CANCELLED=1000 pytest tests/test_soak.py -s
"""

from __future__ import annotations

import gc
import itertools
import operator
import os
import threading
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from ferrograph.graph import START, StateGraph
from tests.support import settle_threads

RUNS = int(os.getenv("FERROGRAPH_SOAK_RUNS", "400"))
CANCELLED = int(os.getenv("FERROGRAPH_SOAK_CANCELLED", "100"))


class Out(TypedDict):
    out: Annotated[list, operator.add]


def rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def graph(words: int) -> Any:
    text = " ".join(f"w{i}" for i in range(words))
    b = StateGraph(Out)
    for i in range(4):
        model = GenericFakeChatModel(messages=itertools.cycle([AIMessage(content=text)]))

        def node(state: Out, model: Any = model) -> dict[str, Any]:
            return {"out": [len(model.invoke("q").content)]}

        b.add_node(f"b{i}", node)
        b.add_edge(START, f"b{i}")
    return b.compile()


def test_soak_streamed_and_cancelled_runs():
    baseline_threads = threading.active_count()
    g = graph(20)
    expected_chunks = 4 * 39
    for _ in range(20):  # warm-up: imports, caches, the worker pool
        assert len(list(g.stream({"out": []}, stream_mode="messages"))) == expected_chunks
    gc.collect()
    start_rss = rss_mib()
    t0 = time.perf_counter()
    for _ in range(RUNS):
        assert len(list(g.stream({"out": []}, stream_mode="messages"))) == expected_chunks
    streamed_s = time.perf_counter() - t0

    long = graph(5_000)
    t0 = time.perf_counter()
    for _ in range(CANCELLED):
        stream = long.stream({"out": []}, stream_mode="messages", buffer_size=32)
        for n, _item in enumerate(stream):
            if n == 50:
                break
        stream.close()
    cancelled_s = time.perf_counter() - t0
    gc.collect()
    threads_after = settle_threads(baseline_threads)
    growth = rss_mib() - start_rss
    print(f"\nsoak: {RUNS} streamed runs in {streamed_s:.1f} s, {CANCELLED} cancelled runs in "
          f"{cancelled_s:.1f} s; threads {baseline_threads} -> {threads_after}; "
          f"RSS growth {growth:.1f} MiB")
    assert threads_after <= baseline_threads
    assert growth < 25, f"RSS grew {growth:.1f} MiB"
    # and the graph still works
    assert len(list(g.stream({"out": []}, stream_mode="messages"))) == expected_chunks
