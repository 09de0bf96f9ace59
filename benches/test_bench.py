"""pytest-benchmark versions of a few comparison scenarios (run on demand):

    pytest benches/ --benchmark-only

`pytest` from the repository root collects only `tests/`.
"""

from __future__ import annotations

import compare
import pytest

IMPLS = ["ferrograph", "langgraph"]


@pytest.mark.parametrize("impl", IMPLS)
def test_chain3(benchmark, impl):
    benchmark.group = "chain3"
    graph = compare.chain_graph(compare.lib(impl), 3)
    assert benchmark(graph.invoke, {"x": 0}) == {"x": 3}


@pytest.mark.parametrize("impl", IMPLS)
def test_fanout5(benchmark, impl):
    benchmark.group = "fanout5"
    graph = compare.fanout_graph(compare.lib(impl))
    assert benchmark(graph.invoke, {"log": []})["log"][-1] == "join"


@pytest.mark.parametrize("impl", IMPLS)
def test_msgs_all_8(benchmark, impl):
    benchmark.group = "msgs_all_8"
    graph = compare.branches_graph(compare.lib(impl), 8, compare.fake_model)
    result = benchmark(compare.consume_messages, graph, {"out": []}, None, impl)
    assert result == {f"branch_{i}": compare.REPLY for i in range(8)}


@pytest.mark.parametrize("impl", IMPLS)
def test_amsgs_8(benchmark, impl):
    benchmark.group = "amsgs_8"
    graph = compare.branches_graph(compare.lib(impl), 8, compare.fake_model, is_async=True)
    result = benchmark(compare.aconsume_messages, graph, {"out": []})
    assert result == {f"branch_{i}": (compare.REPLY, compare.CHUNKS) for i in range(8)}


@pytest.mark.parametrize("impl", IMPLS)
def test_ainvoke_100(benchmark, impl):
    benchmark.group = "ainvoke_100"
    graph = compare.async_chain_graph(compare.lib(impl))
    assert benchmark(compare.concurrent_ainvoke, graph, 100) == [{"x": 3}] * 100
