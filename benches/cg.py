"""Runs one engine scenario of `compare.py` 3×N times, for counting instructions under
callgrind (benches/PROFILE.md, "Per-run cost of the engine"): the difference between two
counts of different N is the per-run cost, startup, imports and graph building cancelled out.

    python benches/cg.py SCENARIO N [IMPL]

SCENARIO: chain3, chain100, fanout5 (`invoke`), ainvoke (N concurrent `ainvoke` of the async
chain in one `asyncio.gather`), ainvoke_sync (the same of the sync chain3). IMPL: ferrograph
(default) or langgraph.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402


def scenario(name: str, impl: str) -> tuple[Any, Any]:
    """The graph of `name` and the input it is invoked with."""
    lib = compare.lib(impl)
    if name.startswith("chain"):
        return compare.chain_graph(lib, int(name[5:])), {"x": 0}
    if name.startswith("fanout"):
        return compare.fanout_graph(lib, int(name[6:])), {"log": []}
    if name == "ainvoke":
        return compare.async_chain_graph(lib), None
    if name == "ainvoke_sync":
        return compare.chain_graph(lib, 3), None
    raise SystemExit(f"unknown scenario {name!r}")


def main() -> None:
    name, count = sys.argv[1], int(sys.argv[2])
    impl = sys.argv[3] if len(sys.argv) > 3 else "ferrograph"
    graph, value = scenario(name, impl)
    # As compare.py: the long chain runs past the default recursion limit, the rest with none.
    config = {"recursion_limit": 1000} if name == "chain100" else None
    for _ in range(3):  # two warm-ups and the measured one
        if value is None:
            compare.concurrent_ainvoke(graph, count)
        else:
            for _ in range(count):
                graph.invoke(value, config)


if __name__ == "__main__":
    main()
