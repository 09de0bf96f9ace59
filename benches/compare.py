"""Side-by-side benchmark: the same scenarios on ferrograph and on langgraph, interleaved.

    python benches/compare.py            # full run, writes benches/RESULTS.md
    python benches/compare.py --quick    # fewer repeats and smaller fan-outs
    python benches/compare.py --only chain100 msgs_one_256

Every scenario is checked for correctness on both implementations before it is timed.
Timings are medians (and minimums) of interleaved repeats in one process; the machine is
small and noisy, so read ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import itertools
import operator
import os
import platform
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata as pkg_metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

HERE = Path(__file__).resolve().parent
WORDS = 100
REPLY = " ".join(f"w{i}" for i in range(WORDS))


def lib(name: str) -> SimpleNamespace:
    graph = importlib.import_module(f"{name}.graph")
    return SimpleNamespace(name=name, StateGraph=graph.StateGraph, START=graph.START,
                           END=graph.END)


IMPLS = ("ferrograph", "langgraph")


def fake_model(text: str = REPLY) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=itertools.cycle([AIMessage(content=text)]))


# -- graphs -------------------------------------------------------------------------------


class Counter(TypedDict):
    x: int


class Fan(TypedDict):
    log: Annotated[list, operator.add]


def chain_graph(L: Any, n: int) -> Any:
    b = L.StateGraph(Counter)
    for i in range(n):
        b.add_node(f"n{i}", lambda s: {"x": s["x"] + 1})
        b.add_edge(L.START if i == 0 else f"n{i - 1}", f"n{i}")
    return b.compile()


def fanout_graph(L: Any, n: int = 5) -> Any:
    b = L.StateGraph(Fan)
    names = [f"f{i}" for i in range(n)]
    for name in names:
        b.add_node(name, lambda s, name=name: {"log": [name]})
        b.add_edge(L.START, name)
    b.add_node("join", lambda s: {"log": ["join"]})
    b.add_edge(names, "join")
    return b.compile()


def async_chain_graph(L: Any) -> Any:
    async def step(state: Counter) -> dict[str, Any]:
        return {"x": state["x"] + 1}

    b = L.StateGraph(Counter)
    for i in range(3):
        b.add_node(f"n{i}", step)
        b.add_edge(L.START if i == 0 else f"n{i - 1}", f"n{i}")
    return b.compile()


def concurrent_ainvoke(graph: Any, n: int) -> list[Any]:
    async def main() -> list[Any]:
        return list(await asyncio.gather(*(graph.ainvoke({"x": 0}) for _ in range(n))))

    return asyncio.run(main())


class Branches(TypedDict):
    out: Annotated[list, operator.add]


def branches_graph(L: Any, n: int, make_model: Callable[[], Any]) -> Any:
    b = L.StateGraph(Branches)
    for i in range(n):
        model = make_model()

        def node(state: Branches, model: Any = model) -> dict[str, Any]:
            return {"out": [len(model.invoke("go").content)]}

        b.add_node(f"branch_{i}", node)
        b.add_edge(L.START, f"branch_{i}")
    return b.compile()


class Seed(TypedDict):
    topic: str
    joke: str
    poem: str


def seed_graph(L: Any, model: Any) -> Any:
    def write_joke(state: Seed):
        r = model.invoke([{"role": "user", "content": f"Write a joke about {state['topic']}"}])
        return {"joke": r.content}

    def write_poem(state: Seed):
        r = model.invoke([{"role": "user",
                           "content": f"Write a short poem about {state['topic']}"}])
        return {"poem": r.content}

    return (L.StateGraph(Seed).add_node(write_joke).add_node(write_poem)
            .add_edge(L.START, "write_joke").add_edge(L.START, "write_poem").compile())


# -- runs -----------------------------------------------------------------------------------


def consume_messages(graph: Any, inputs: Any, keep: str | None, impl: str) -> dict[str, str]:
    """Streams `messages`, keeping `keep` (all when None); returns text per node."""
    kwargs = {"nodes": [keep]} if keep and impl == "ferrograph" else {}
    text: dict[str, list[str]] = {}
    for chunk, md in graph.stream(inputs, stream_mode="messages", **kwargs):
        node = md["langgraph_node"]
        if keep is None or node == keep:
            text.setdefault(node, []).append(chunk.content)
    return {k: "".join(v) for k, v in text.items()}


def no_graph(models: list[Any]) -> dict[str, str]:
    """The floor: the same models streamed from one thread each, consumed in one loop."""
    q: queue.SimpleQueue = queue.SimpleQueue()

    def run(i: int, model: Any) -> None:
        for chunk in model.stream("go"):
            q.put((i, chunk.content))
        q.put((i, None))

    threads = [threading.Thread(target=run, args=(i, m)) for i, m in enumerate(models)]
    for t in threads:
        t.start()
    text: dict[str, list[str]] = {}
    done = 0
    while done < len(models):
        i, piece = q.get()
        if piece is None:
            done += 1
        else:
            text.setdefault(f"branch_{i}", []).append(piece)
    for t in threads:
        t.join()
    return {k: "".join(v) for k, v in text.items()}


@dataclass
class Scenario:
    name: str
    what: str
    run: dict[str, Callable[[], Any]]
    """Per implementation (or "nograph"): a zero-argument run returning a checkable value."""
    check: Callable[[Any], bool]
    per: int = 1
    """Divide timings by this (e.g. steps) to report per-unit cost."""
    unit: str = "run"
    notes: str = ""
    times: dict[str, list[float]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


def build_scenarios(quick: bool) -> list[Scenario]:
    libs = {name: lib(name) for name in IMPLS}
    out: list[Scenario] = []

    graphs = {k: chain_graph(L, 100) for k, L in libs.items()}
    cfg = {"recursion_limit": 1000}
    out.append(Scenario(
        "chain100", "invoke a 100-node chain of trivial nodes",
        {k: (lambda g=g: g.invoke({"x": 0}, cfg)) for k, g in graphs.items()},
        lambda r: r == {"x": 100}, per=100, unit="superstep"))
    graphs = {k: chain_graph(L, 3) for k, L in libs.items()}
    out.append(Scenario(
        "chain3", "invoke a 3-node chain",
        {k: (lambda g=g: g.invoke({"x": 0})) for k, g in graphs.items()},
        lambda r: r == {"x": 3}))
    graphs = {k: fanout_graph(L) for k, L in libs.items()}
    out.append(Scenario(
        "fanout5", "invoke START -> 5 parallel nodes -> join",
        {k: (lambda g=g: g.invoke({"log": []})) for k, g in graphs.items()},
        lambda r: sorted(r["log"][:5]) == [f"f{i}" for i in range(5)] and r["log"][5] == "join"))

    for n in ((1, 8, 64) if quick else (1, 8, 64, 256)):
        expected = {f"branch_{i}": REPLY for i in range(n)}
        graphs = {k: branches_graph(L, n, fake_model) for k, L in libs.items()}
        models = [fake_model() for _ in range(n)]
        runs_all = {k: (lambda g=g, k=k: consume_messages(g, {"out": []}, None, k))
                    for k, g in graphs.items()}
        runs_all["nograph"] = lambda models=models: no_graph(models)
        out.append(Scenario(
            f"msgs_all_{n}", f"messages mode, {n} branches x {WORDS} words, keep all",
            runs_all, lambda r, e=expected: r == e, per=n * (2 * WORDS - 1), unit="chunk"))
        runs_one = {k: (lambda g=g, k=k: consume_messages(g, {"out": []}, "branch_0", k))
                    for k, g in graphs.items()}
        out.append(Scenario(
            f"msgs_one_{n}", f"messages mode, {n} branches, keep branch_0 "
            "(ferrograph: nodes=[...]; langgraph: metadata filter)",
            runs_one, lambda r: r == {"branch_0": REPLY}))

    for n in ((100,) if quick else (1000,)):
        graphs = {k: async_chain_graph(L) for k, L in libs.items()}
        out.append(Scenario(
            f"ainvoke_{n}", f"{n} concurrent `ainvoke` of a 3-node graph of async nodes",
            {k: (lambda g=g, n=n: concurrent_ainvoke(g, n)) for k, g in graphs.items()},
            lambda r, n=n: r == [{"x": 3}] * n, per=n, unit="run"))

    seed_model = fake_model("ha " * 30 + "end")
    graphs = {k: seed_graph(L, seed_model) for k, L in libs.items()}
    runs = {k: (lambda g=g, k=k: consume_messages(g, {"topic": "cats"}, None, k))
            for k, g in graphs.items()}
    runs["nograph"] = lambda: no_graph([seed_model, seed_model])
    out.append(Scenario("seed_all", "the seed graph with fake models, keep all", runs,
                        lambda r: len(r) == 2))
    runs = {k: (lambda g=g, k=k: consume_messages(g, {"topic": "cats"}, "write_poem", k))
            for k, g in graphs.items()}
    out.append(Scenario("seed_poem", "the seed graph, keep write_poem", runs,
                        lambda r: list(r) == ["write_poem"]))
    return out


def openai_scenario(server: Any) -> Scenario:
    from ferrograph.local_openai import poem_about

    libs = {name: lib(name) for name in IMPLS}
    model = server.chat_model()
    graphs = {k: seed_graph(L, model) for k, L in libs.items()}
    runs = {k: (lambda g=g, k=k: consume_messages(g, {"topic": "cats"}, "write_poem", k))
            for k, g in graphs.items()}
    return Scenario("seed_openai", "the seed with the real ChatOpenAI over HTTP (embedded "
                    "server), keep write_poem", runs,
                    lambda r: r == {"write_poem": poem_about("cats")})


def measure(scenarios: list[Scenario], repeats: int) -> None:
    for s in scenarios:
        for impl, fn in s.run.items():
            try:
                result = fn()
                if not s.check(result):
                    s.failures[impl] = f"wrong result: {str(result)[:200]}"
            except Exception as e:  # noqa: BLE001 - reported in the table
                s.failures[impl] = f"{type(e).__name__}: {e}"
        order = [k for k in s.run if k not in s.failures]
        for _ in range(repeats):
            for impl in order:  # interleaved: noise hits both alike
                t0 = time.perf_counter()
                s.run[impl]()
                s.times.setdefault(impl, []).append(time.perf_counter() - t0)
        print(f"  {s.name}: done", file=sys.stderr)


def current_rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_during(fn: Callable[[], Any]) -> float:
    """MiB by which resident memory rose above its level before `fn`, at its highest
    (sampled every millisecond while `fn` runs)."""
    base = current_rss_mib()
    peak = base
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.001):
            peak = max(peak, current_rss_mib())

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        fn()
    finally:
        done.set()
        sampler.join()
    return max(peak, current_rss_mib()) - base


def peak_rss(kind: str, n: int) -> float:
    """`peak_rss_during` one `messages` run of `kind` at `n` branches, in a fresh process."""
    code = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
import compare
if {kind!r} == "nograph":
    models = [compare.fake_model() for _ in range({n})]
    run = lambda: compare.no_graph(models)
else:
    g = compare.branches_graph(compare.lib({kind!r}), {n}, compare.fake_model)
    run = lambda: compare.consume_messages(g, {{"out": []}}, None, {kind!r})
print(compare.peak_rss_during(run))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return float(done.stdout.strip().splitlines()[-1])


def fmt(seconds: float) -> str:
    if seconds >= 0.1:
        return f"{seconds * 1e3:.0f} ms"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def report(scenarios: list[Scenario], rss: dict[str, float], repeats: int, command: str) -> str:
    versions = {p: pkg_metadata.version(p) for p in
                ("ferrograph", "langgraph", "langchain-core", "langchain-openai")}
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    lines = [
        "# ferrograph vs langgraph",
        "",
        f"Command: `{command}` — {repeats} interleaved repeats per scenario, one process.",
        f"Machine: {os.cpu_count()} cores, {cpu}; Python {platform.python_version()}; "
        + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
        "Median (min) wall time per run; `per unit` divides the median by the unit count. "
        "Ratio = ferrograph / langgraph (below 1: ferrograph is faster). `nograph` streams "
        "the same models from one thread each with no graph: the floor.",
        "",
        "| scenario | ferrograph | langgraph | ratio | nograph | per unit (fg / lg / nograph) |",
        "|---|---|---|---|---|---|",
    ]
    for s in scenarios:
        med = {k: statistics.median(v) for k, v in s.times.items()}
        mins = {k: min(v) for k, v in s.times.items()}

        def cell(k: str, med=med, mins=mins, s=s) -> str:
            if k in s.failures:
                return f"FAILED ({s.failures[k]})"
            if k not in med:
                return "—"
            return f"{fmt(med[k])} ({fmt(mins[k])})"

        ratio = (f"{med['ferrograph'] / med['langgraph']:.3f}"
                 if "ferrograph" in med and "langgraph" in med else "—")
        per = " / ".join(fmt(med[k] / s.per) if k in med else "—"
                         for k in ("ferrograph", "langgraph", "nograph"))
        lines.append(f"| `{s.name}` {s.what} | {cell('ferrograph')} | {cell('langgraph')} | "
                     f"{ratio} | {cell('nograph')} | {per} per {s.unit} |")
    if rss:
        lines += ["", "Peak resident memory added by one 256-branch `messages` run (fresh "
                  "process each, sampled every millisecond):", "",
                  "| ferrograph | langgraph | nograph |", "|---|---|---|",
                  "| " + " | ".join(f"{rss[k]:.1f} MiB" for k in
                                   ("ferrograph", "langgraph", "nograph")) + " |"]
    lines += ["", "Notes:", "",
              "- langgraph's sync executor runs at most `min(32, cores + 4)` tasks at once "
              "(6 here); ferrograph runs every branch of a step at once.",
              "- `msgs_one_*`: langgraph streams every model and the loop drops other nodes' "
              "chunks; ferrograph's `nodes=` means the other models are not asked to stream."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--no-write", action="store_true", help="print, don't write RESULTS.md")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 7)
    scenarios = build_scenarios(args.quick)
    from ferrograph.local_openai import LocalOpenAIServer

    with LocalOpenAIServer() as server:
        scenarios.append(openai_scenario(server))
        if args.only:
            scenarios = [s for s in scenarios if s.name in args.only]
        measure(scenarios, repeats)
    rss = {}
    if not args.quick and (not args.only or "rss_256" in args.only):
        rss = {k: peak_rss(k, 256) for k in ("ferrograph", "langgraph", "nograph")}
    command = "python benches/compare.py" + (" " + " ".join(argv or sys.argv[1:])).rstrip()
    text = report(scenarios, rss, repeats, command.strip())
    print(text)
    if not args.no_write:
        (HERE / "RESULTS.md").write_text(text)
    return 1 if any(s.failures for s in scenarios) else 0


if __name__ == "__main__":
    sys.exit(main())

