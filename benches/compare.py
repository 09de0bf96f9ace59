"""Side-by-side benchmark: the same scenarios on ferrograph and on langgraph, interleaved.

    python benches/compare.py            # full run, writes benches/RESULTS.md
    python benches/compare.py --quick    # fewer repeats and smaller fan-outs
    python benches/compare.py --only chain100 msgs_one_256
    python benches/compare.py --quick --only amsgs_64,ainvoke_10000 --out /tmp/r.md
    python benches/compare.py --only persistence --out /tmp/p.md

`--only` takes scenario names (spaces or commas; a sized name such as `amsgs_512` builds that
size even with `--quick`), `rss_256` for the 256-branch memory rows alone and `persistence`
for the checkpointer rows (`benches/persistence.py`; the `ckpt_pg_*` rows start a throwaway
PostgreSQL with `tests/services.py`, and are skipped when it cannot start). Every scenario
is checked for correctness on both implementations before it is timed. Timings are medians
(and minimums) of interleaved repeats in one process; the machine is small and noisy, so read
ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import itertools
import json
import operator
import os
import platform
import queue
import re
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

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tracers._streaming import _StreamingCallbackHandler

HERE = Path(__file__).resolve().parent
WORDS = 100
REPLY = " ".join(f"w{i}" for i in range(WORDS))
CHUNKS = 2 * WORDS - 1
"""Chunks per reply: GenericFakeChatModel streams the words and the spaces between them."""


def lib(name: str) -> SimpleNamespace:
    graph = importlib.import_module(f"{name}.graph")
    return SimpleNamespace(name=name, StateGraph=graph.StateGraph, START=graph.START,
                           END=graph.END)


IMPLS = ("ferrograph", "langgraph")


class LoopFakeChatModel(GenericFakeChatModel):
    """GenericFakeChatModel whose async stream makes its chunks on the event loop, yielding to
    it after each one (as a network client's stream does), instead of langchain-core's default
    `_astream`, which fetches every chunk of the sync stream from a worker thread."""

    async def _astream(self, messages: Any, stop: Any = None, run_manager: Any = None,
                       **kwargs: Any) -> Any:
        for chunk in self._stream(messages, stop=stop, **kwargs):
            yield chunk
            await asyncio.sleep(0)


def fake_model(text: str = REPLY, on_loop: bool = False) -> GenericFakeChatModel:
    cls = LoopFakeChatModel if on_loop else GenericFakeChatModel
    return cls(messages=itertools.cycle([AIMessage(content=text)]))


# -- graphs -------------------------------------------------------------------------------


class ToolCallingFakeChatModel(GenericFakeChatModel):
    """A scripted model that takes tools (what `create_agent` binds them to)."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> ToolCallingFakeChatModel:
        return self


AGENT_TOOL_CALLS = 10


def agent_graph(impl: str) -> Any:
    """`langchain.agents.create_agent` with one tool, its model calling the tool
    `AGENT_TOOL_CALLS` times (one call a turn) before it answers; on ferrograph through
    `ferrograph.adapt`."""
    from langchain.agents import create_agent
    from langchain_core.tools import tool

    @tool
    def add(a: int, b: int) -> int:
        """Adds two numbers."""
        return a + b

    turns = [AIMessage("", tool_calls=[{"name": "add", "args": {"a": i, "b": 1},
                                         "id": f"call-{i}", "type": "tool_call"}])
             for i in range(AGENT_TOOL_CALLS)]
    model = ToolCallingFakeChatModel(messages=itertools.cycle([*turns, AIMessage("done")]))
    graph = create_agent(model, [add])
    if impl == "ferrograph":
        import ferrograph

        graph = ferrograph.adapt(graph)
    return graph


def agent_checks(result: Any) -> bool:
    """The run's messages: the question, a call and its answer per tool call, the answer."""
    messages = result["messages"]
    return len(messages) == 2 + 2 * AGENT_TOOL_CALLS and messages[-1].content == "done" \
        and messages[-2].content == str(AGENT_TOOL_CALLS)


class Counter(TypedDict):
    x: int


class Fan(TypedDict):
    log: Annotated[list, operator.add]


def chain_graph(L: Any, n: int, checkpointer: Any = None) -> Any:
    b = L.StateGraph(Counter)
    for i in range(n):
        b.add_node(f"n{i}", lambda s: {"x": s["x"] + 1})
        b.add_edge(L.START if i == 0 else f"n{i - 1}", f"n{i}")
    return b.compile(checkpointer=checkpointer)


COLD_RUN = """
import json, sys, time
sys.path.insert(0, {benches!r})
import compare
graph = compare.chain_graph(compare.lib({name!r}), {n})
t0 = time.perf_counter()
result = graph.invoke({{"x": 0}}, {{"recursion_limit": 1000}})
took = time.perf_counter() - t0
print(json.dumps([result, took]))
"""


def cold_chain_invoke(name: str, n: int) -> tuple[Any, float]:
    """One `invoke` of an `n`-node chain in a new interpreter (`python -c`): the first run
    of a process, its caches cold. Returns its result and the seconds the invoke took."""
    script = COLD_RUN.format(benches=str(Path(__file__).resolve().parent), name=name, n=n)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    result, took = json.loads(out.strip().splitlines()[-1])
    return result, took


def fanout_graph(L: Any, n: int = 5) -> Any:
    b = L.StateGraph(Fan)
    names = [f"f{i}" for i in range(n)]
    for name in names:
        b.add_node(name, lambda s, name=name: {"log": [name]})
        b.add_edge(L.START, name)
    b.add_node("join", lambda s: {"log": ["join"]})
    b.add_edge(names, "join")
    return b.compile()


def tasks_entrypoint(name: str, n: int = 10) -> Any:
    """An `@entrypoint` calling `n` `@task`s in parallel and summing their results."""
    func = importlib.import_module(f"{name}.func")

    @func.task
    def square(i: int) -> int:
        return i * i

    @func.entrypoint()
    def workflow(count: int) -> int:
        return sum(f.result() for f in [square(i) for i in range(count)])
    return workflow


def async_chain_graph(L: Any) -> Any:
    async def step(state: Counter) -> dict[str, Any]:
        return {"x": state["x"] + 1}

    b = L.StateGraph(Counter)
    for i in range(3):
        b.add_node(f"n{i}", step)
        b.add_edge(L.START if i == 0 else f"n{i - 1}", f"n{i}")
    return b.compile()


def concurrent_ainvoke(graph: Any, n: int,
                       latencies: list[tuple[float, float]] | None = None) -> list[Any]:
    """`n` concurrent `ainvoke` in one event loop. Appends to `latencies`, per run, the time
    from its start (the first step of its coroutine inside the gather) to its end, and the
    time from the gather's start to its end."""
    took: list[tuple[float, float]] = []

    async def one(submitted: float) -> Any:
        t0 = time.perf_counter()
        result = await graph.ainvoke({"x": 0})
        t1 = time.perf_counter()
        took.append((t1 - t0, t1 - submitted))
        return result

    async def main() -> list[Any]:
        submitted = time.perf_counter()
        return list(await asyncio.gather(*(one(submitted) for _ in range(n))))

    results = asyncio.run(main())
    if latencies is not None:
        latencies.extend(took)
    return results


class Branches(TypedDict):
    out: Annotated[list, operator.add]


def branches_graph(L: Any, n: int, make_model: Callable[[], Any],
                   is_async: bool = False) -> Any:
    """START -> `n` parallel nodes, each calling its own model (`await model.ainvoke` when
    `is_async`)."""
    b = L.StateGraph(Branches)
    for i in range(n):
        model = make_model()
        if is_async:
            async def node(state: Branches, model: Any = model) -> dict[str, Any]:
                return {"out": [len((await model.ainvoke("go")).content)]}
        else:
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


def joined(pieces: dict[str, list[str]], counts: bool = False) -> dict[str, Any]:
    """Text per node (with `counts`: (text, number of chunks) per node)."""
    return {k: ("".join(v), len(v)) if counts else "".join(v) for k, v in pieces.items()}


def consume_messages(graph: Any, inputs: Any, keep: str | None, impl: str) -> dict[str, str]:
    """Streams `messages`, keeping `keep` (all when None); returns text per node."""
    kwargs = {"nodes": [keep]} if keep and impl == "ferrograph" else {}
    text: dict[str, list[str]] = {}
    for chunk, md in graph.stream(inputs, stream_mode="messages", **kwargs):
        node = md["langgraph_node"]
        if keep is None or node == keep:
            text.setdefault(node, []).append(chunk.content)
    return joined(text)


def first_token(graph: Any, inputs: Any, node: str, impl: str) -> tuple[str, float]:
    """Streams `messages` until the first non-empty chunk of `node`, then stops the run;
    returns that chunk's text and the seconds it took to arrive."""
    kwargs = {"nodes": [node]} if impl == "ferrograph" else {}
    t0 = time.perf_counter()
    stream = graph.stream(inputs, stream_mode="messages", **kwargs)
    try:
        for chunk, md in stream:
            if md["langgraph_node"] == node and chunk.content:
                return chunk.content, time.perf_counter() - t0
    finally:
        stream.close()
    raise AssertionError(f"{node} streamed nothing")


def first_token_no_graph(model: Any, prompt: Any = "go") -> tuple[str, float]:
    """The floor of `first_token`: the model's own stream, stopped after its first token."""
    t0 = time.perf_counter()
    stream = model.stream(prompt)
    try:
        for chunk in stream:
            if chunk.content:
                return chunk.content, time.perf_counter() - t0
    finally:
        stream.close()
    raise AssertionError("the model streamed nothing")


def aconsume_messages(graph: Any, inputs: Any) -> dict[str, tuple[str, int]]:
    """`astream` in `messages` mode on a fresh event loop, keeping every chunk; returns
    (text, chunk count) per node."""
    async def main() -> dict[str, list[str]]:
        text: dict[str, list[str]] = {}
        async for chunk, md in graph.astream(inputs, stream_mode="messages"):
            text.setdefault(md["langgraph_node"], []).append(chunk.content)
        return text

    return joined(asyncio.run(main()), counts=True)


def aconsume_events(runnable: Any, inputs: Any) -> tuple[str, int]:
    """`astream_events(version="v2")` on a fresh event loop, keeping every model chunk;
    returns (text, chunk count)."""
    async def main() -> list[str]:
        return [e["data"]["chunk"].content
                async for e in runnable.astream_events(inputs, version="v2")
                if e["event"] == "on_chat_model_stream"]

    chunks = asyncio.run(main())
    return "".join(chunks), len(chunks)


def no_graph(models: list[Any], via_invoke: bool = False) -> dict[str, str]:
    """The floor: the same models streamed from one thread each, consumed in one loop.

    `via_invoke`: each model called as a graph node calls it, `model.invoke` with a
    streaming callback handler (which makes `invoke` stream; the handler queues each
    chunk), instead of iterating `model.stream`: LangChain's per-token callback dispatch
    and `invoke`'s merge of the chunks are then in the floor, as they are in the graphs."""
    q: queue.SimpleQueue = queue.SimpleQueue()

    def run(i: int, model: Any) -> None:
        if via_invoke:
            model.invoke("go", config={"callbacks": [CollectTokens(q.put, key=i)]})
        else:
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
    return joined(text)


class CollectTokens(BaseCallbackHandler, _StreamingCallbackHandler):
    """A streaming callback handler, as the graphs give a subscribed node's model: its
    presence makes `invoke`/`ainvoke` stream, and each chunk's content goes to `put`
    (as `(key, content)` when a key is given)."""

    run_inline = True  # called on the event loop, as the graphs' handlers are

    def __init__(self, put: Callable[[Any], Any], key: Any = None) -> None:
        self.put = put
        self.key = key

    def on_llm_new_token(self, token: str, *, chunk: Any = None, **kwargs: Any) -> None:
        content = chunk.message.content
        self.put(content if self.key is None else (self.key, content))


def ano_graph(models: list[Any]) -> dict[str, tuple[str, int]]:
    """The async floor: `asyncio.gather` of the models' `ainvoke`, each with a streaming
    callback handler collecting its chunks (what a graph node's model call does)."""
    text: dict[str, list[str]] = {f"branch_{i}": [] for i in range(len(models))}

    async def main() -> None:
        await asyncio.gather(*(
            m.ainvoke("go", config={"callbacks": [CollectTokens(text[f"branch_{i}"].append)]})
            for i, m in enumerate(models)))

    asyncio.run(main())
    return joined(text, counts=True)


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
    repeats: dict[str, int] = field(default_factory=dict)
    """Per implementation: fewer timed repeats than the run's (a slow one at a large size)."""
    inner: int = 1
    """Runs back to back per timed repeat, the repeat's time divided by them: for runs of
    microseconds, which one call times badly (timer and cold-cache noise)."""
    checks: dict[str, Callable[[Any], bool]] = field(default_factory=dict)
    """Per kind: a check in place of `check` (a floor that returns something else)."""
    self_timed: bool = False
    """The run returns `(value, seconds)`: the time it measured itself (e.g. to a first
    token), which is what is reported."""
    latencies: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """Per implementation: per-run latencies its timed repeats recorded (concurrent runs:
    from the run's start, from the gather's start)."""
    times: dict[str, list[float]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


KINDS = (*IMPLS, "nograph")
INVOKE_FLOOR = "nograph_invoke"
"""A second floor, timed with `nograph` where a scenario has it: the models called with
`invoke` and a streaming handler, as a graph node calls them (`no_graph(via_invoke=True)`)."""
SLOW_AT = 5000
"""From this many concurrent `ainvoke`, langgraph is timed once (~2 ms a run: 20 s a repeat)."""


def msgs_scenarios(n: int, kinds: tuple[str, ...] = KINDS) -> list[Scenario]:
    """`msgs_all_{n}` and `msgs_one_{n}`: sync branches, `stream` in `messages` mode
    (`msgs_all_{n}` with both floors: the models' `stream`, and their `invoke`)."""
    expected = {f"branch_{i}": REPLY for i in range(n)}
    graphs = {k: branches_graph(lib(k), n, fake_model) for k in kinds if k in IMPLS}
    runs_all = {k: (lambda g=g, k=k: consume_messages(g, {"out": []}, None, k))
                for k, g in graphs.items()}
    if "nograph" in kinds:
        models = [fake_model() for _ in range(n)]
        runs_all["nograph"] = lambda models=models: no_graph(models)
        runs_all[INVOKE_FLOOR] = lambda models=models: no_graph(models, via_invoke=True)
    runs_one = {k: (lambda g=g, k=k: consume_messages(g, {"out": []}, "branch_0", k))
                for k, g in graphs.items()}
    return [
        Scenario(f"msgs_all_{n}", f"messages mode, {n} branches x {WORDS} words, keep all",
                 runs_all, lambda r, e=expected: r == e, per=n * CHUNKS, unit="chunk"),
        Scenario(f"msgs_one_{n}", f"messages mode, {n} branches, keep branch_0 "
                 "(ferrograph: nodes=[...]; langgraph: metadata filter)",
                 runs_one, lambda r: r == {"branch_0": REPLY}),
    ]


def amsgs_scenarios(n: int, kinds: tuple[str, ...] = KINDS,
                    on_loop: bool = False) -> list[Scenario]:
    """`amsgs_{n}`: async branches awaiting `model.ainvoke`, `astream` in `messages` mode
    (`amsgs_loop_{n}`: with models whose chunks are made on the event loop)."""
    expected = {f"branch_{i}": (REPLY, CHUNKS) for i in range(n)}

    def make_model() -> Any:
        return fake_model(on_loop=on_loop)

    graphs = {k: branches_graph(lib(k), n, make_model, is_async=True)
              for k in kinds if k in IMPLS}
    runs = {k: (lambda g=g: aconsume_messages(g, {"out": []})) for k, g in graphs.items()}
    if "nograph" in kinds:
        models = [make_model() for _ in range(n)]
        runs["nograph"] = lambda models=models: ano_graph(models)
    model = "LoopFakeChatModel" if on_loop else "GenericFakeChatModel"
    return [Scenario(
        f"amsgs_{'loop_' if on_loop else ''}{n}", f"async nodes, `astream` messages mode, {n} "
        f"branches x {WORDS} words (`await model.ainvoke`, {model}), keep all", runs,
        lambda r, e=expected: r == e, per=n * CHUNKS, unit="chunk")]


def ainvoke_scenarios(n: int, sync: bool = False,
                      kinds: tuple[str, ...] = IMPLS) -> list[Scenario]:
    """`ainvoke_{n}` (`ainvoke_{n}_sync`): `n` concurrent `ainvoke` of a 3-node chain of async
    (sync) nodes in one event loop; records per-run latencies."""
    graphs = {k: chain_graph(lib(k), 3) if sync else async_chain_graph(lib(k))
              for k in kinds if k in IMPLS}
    latencies: dict[str, list[tuple[float, float]]] = {k: [] for k in graphs}
    runs = {k: (lambda g=g, lat=latencies[k]: concurrent_ainvoke(g, n, lat))
            for k, g in graphs.items()}
    return [Scenario(
        f"ainvoke_{n}" + ("_sync" if sync else ""),
        f"{n} concurrent `ainvoke` of a 3-node graph of {'sync' if sync else 'async'} nodes",
        runs, lambda r: r == [{"x": 3}] * n, per=n, unit="run", latencies=latencies,
        repeats={"langgraph": 1} if n >= SLOW_AT else {})]


SIZED: dict[str, tuple[str, Callable[..., list[Scenario]]]] = {
    "msgs": (r"msgs_(?:all|one)_(\d+)", msgs_scenarios),
    "amsgs": (r"amsgs_(\d+)", amsgs_scenarios),
    "amsgs_loop": (r"amsgs_loop_(\d+)",
                   lambda n, kinds=KINDS: amsgs_scenarios(n, kinds, on_loop=True)),
    "ainvoke": (r"ainvoke_(\d+)", ainvoke_scenarios),
    "ainvoke_sync": (r"ainvoke_(\d+)_sync",
                     lambda n, kinds=IMPLS: ainvoke_scenarios(n, True, kinds)),
}
"""Scenario families of any size: a name pattern and its builder (size, kinds=...)."""


def find_scenario(name: str, kinds: tuple[str, ...] = KINDS) -> Scenario:
    """The sized scenario `name` (e.g. `amsgs_256`), built for `kinds` only."""
    for pattern, build in SIZED.values():
        if m := re.fullmatch(pattern, name):
            return next(s for s in build(int(m.group(1)), kinds=kinds) if s.name == name)
    raise KeyError(name)


def build_scenarios(quick: bool, only: list[str] | None = None) -> list[Scenario]:
    libs = {name: lib(name) for name in IMPLS}
    out: list[Scenario] = []

    graphs = {k: chain_graph(L, 100) for k, L in libs.items()}
    cfg = {"recursion_limit": 1000}
    out.append(Scenario(
        "chain100", "invoke a 100-node chain of trivial nodes",
        {k: (lambda g=g: g.invoke({"x": 0}, cfg)) for k, g in graphs.items()},
        lambda r: r == {"x": 100}, per=100, unit="superstep", inner=20))
    out += stream_chain_scenarios(graphs, cfg)
    out.append(Scenario(
        "chain100_cold", "invoke a 100-node chain once, in a fresh process per run (the "
        "process started, the graph built, untimed)",
        {k: (lambda k=k: cold_chain_invoke(k, 100)) for k in libs},
        lambda r: r == {"x": 100}, per=100, unit="superstep", self_timed=True,
        repeats={"langgraph": 3}))
    graphs = {k: chain_graph(L, 3) for k, L in libs.items()}
    out.append(Scenario(
        "chain3", "invoke a 3-node chain",
        {k: (lambda g=g: g.invoke({"x": 0})) for k, g in graphs.items()},
        lambda r: r == {"x": 3}, inner=200))
    graphs = {k: fanout_graph(L) for k, L in libs.items()}
    out.append(Scenario(
        "fanout5", "invoke START -> 5 parallel nodes -> join",
        {k: (lambda g=g: g.invoke({"log": []})) for k, g in graphs.items()},
        lambda r: sorted(r["log"][:5]) == [f"f{i}" for i in range(5)] and r["log"][5] == "join",
        inner=100))

    graphs = {k: agent_graph(k) for k in IMPLS}
    question = {"messages": [{"role": "user", "content": "add them up"}]}
    out.append(Scenario(
        "agent10", f"invoke a `create_agent` tool loop: {AGENT_TOOL_CALLS} tool calls a run "
        "(ferrograph: `ferrograph.adapt`)",
        {k: (lambda g=g: g.invoke(question)) for k, g in graphs.items()},
        agent_checks, inner=5))

    flows = {k: tasks_entrypoint(k) for k in libs}
    out.append(Scenario(
        "func_tasks10", "invoke an @entrypoint that calls 10 @tasks in parallel",
        {k: (lambda w=w: w.invoke(10)) for k, w in flows.items()},
        lambda r: r == sum(i * i for i in range(10)), per=10, unit="task", inner=20))

    for family, full, small in (("msgs", (1, 8, 64, 256), (1, 8, 64)),
                                ("amsgs", (64, 256), (64,)), ("amsgs_loop", (64, 256), (64,)),
                                ("ainvoke", (1000, 10000), (100,)),
                                ("ainvoke_sync", (10000,), (100,))):
        pattern, build = SIZED[family]
        named = {int(m.group(1)) for name in only or () if (m := re.fullmatch(pattern, name))}
        for n in sorted(set(small if quick else full) | named):  # named sizes even if --quick
            out += build(n)

    seed_model = fake_model("ha " * 30 + "end")
    graphs = {k: seed_graph(L, seed_model) for k, L in libs.items()}
    runs = {k: (lambda g=g, k=k: consume_messages(g, {"topic": "cats"}, None, k))
            for k, g in graphs.items()}
    runs["nograph"] = lambda: no_graph([seed_model, seed_model])
    out.append(Scenario("seed_all", "the seed graph with fake models, keep all", runs,
                        lambda r: len(r) == 2))
    runs = {k: (lambda g=g, k=k: consume_messages(g, {"topic": "cats"}, "write_poem", k))
            for k, g in graphs.items()}
    runs["nograph"] = lambda: no_graph([seed_model, seed_model])  # both models: the floor
    out.append(Scenario("seed_poem", "the seed graph, keep write_poem (nograph: both models)",
                        runs, lambda r: list(r) == ["write_poem"],
                        checks={"nograph": lambda r: len(r) == 2}))
    graphs = {k: branches_graph(L, 1, fake_model) for k, L in libs.items()}
    runs = {k: (lambda g=g: aconsume_events(g, {"out": []})) for k, g in graphs.items()}
    events_model = fake_model()
    runs["nograph"] = lambda: aconsume_events(events_model, "go")
    out.append(Scenario("events", f"`astream_events` v2 of one node streaming {WORDS} words "
                        "(GenericFakeChatModel; nograph: the model's own `astream_events`)",
                        runs, lambda r: r == (REPLY, CHUNKS), per=CHUNKS, unit="chunk"))
    n = 8 if quick else 256
    graphs = {k: branches_graph(L, n, fake_model) for k, L in libs.items()}
    runs = {k: (lambda g=g, k=k: first_token(g, {"out": []}, "branch_0", k))
            for k, g in graphs.items()}
    ttft_model = fake_model()
    runs["nograph"] = lambda: first_token_no_graph(ttft_model)
    out.append(Scenario(f"ttft_{n}", f"time to the first token of branch_0 of {n} streaming "
                        "branches (ferrograph: nodes=[...]; langgraph: metadata filter; "
                        "nograph: its model alone)", runs, lambda r: r == "w0",
                        self_timed=True))
    return out


STREAM_CHAIN = ("stream100_updates", "stream100_values", "stream100_updates_async")
"""`stream` / `astream` of the `chain100` graph: their target's reference is `chain100`."""


def astream_list(graph: Any, input: Any, config: dict[str, Any], mode: str) -> list[Any]:
    async def main() -> list[Any]:
        return [item async for item in graph.astream(input, config, stream_mode=mode)]
    return asyncio.run(main())


def stream_chain_scenarios(graphs: dict[str, Any], cfg: dict[str, Any]) -> list[Scenario]:
    """`stream100_*`: the 100-node chain of `chain100` streamed (`updates`, `values`, and
    `updates` by `astream`): what a step costs a caller that streams."""
    updates = [{f"n{i}": {"x": i + 1}} for i in range(100)]
    values = [{"x": i} for i in range(101)]
    return [
        Scenario("stream100_updates", "`stream` (updates) of the 100-node chain",
                 {k: (lambda g=g: list(g.stream({"x": 0}, cfg, stream_mode="updates")))
                  for k, g in graphs.items()},
                 lambda r: r == updates, per=100, unit="superstep", inner=20),
        Scenario("stream100_values", "`stream` (values) of the 100-node chain",
                 {k: (lambda g=g: list(g.stream({"x": 0}, cfg, stream_mode="values")))
                  for k, g in graphs.items()},
                 lambda r: r == values, per=100, unit="superstep", inner=20),
        Scenario("stream100_updates_async", "`astream` (updates) of the 100-node chain",
                 {k: (lambda g=g: astream_list(g, {"x": 0}, cfg, "updates"))
                  for k, g in graphs.items()},
                 lambda r: r == updates, per=100, unit="superstep", inner=10),
    ]


def openai_scenarios(server: Any) -> list[Scenario]:
    from ferrograph.local_openai import poem_about

    libs = {name: lib(name) for name in IMPLS}
    model = server.chat_model()
    graphs = {k: seed_graph(L, model) for k, L in libs.items()}
    runs = {k: (lambda g=g, k=k: consume_messages(g, {"topic": "cats"}, "write_poem", k))
            for k, g in graphs.items()}
    ttft = {k: (lambda g=g, k=k: first_token(g, {"topic": "cats"}, "write_poem", k))
            for k, g in graphs.items()}
    prompt = [{"role": "user", "content": "Write a short poem about cats"}]
    ttft["nograph"] = lambda: first_token_no_graph(model, prompt)
    first = poem_about("cats").split(" ")[0]
    # ferrograph.models.ChatOpenAI (its streams read in Rust) on ferrograph against the real
    # langchain_openai.ChatOpenAI on langgraph: the client's cost per chunk, in a graph.
    from ferrograph.models import ChatOpenAI as RustChatOpenAI

    rust_graph = seed_graph(libs["ferrograph"], RustChatOpenAI(
        model=server.model, base_url=server.base_url, api_key="local"))
    rust_runs = {"ferrograph": lambda: consume_messages(
                     rust_graph, {"topic": "cats"}, "write_poem", "ferrograph"),
                 "langgraph": runs["langgraph"]}
    return [Scenario("seed_openai_rust", "the seed over HTTP (embedded server), keep "
                     "write_poem: ferrograph with ferrograph.models.ChatOpenAI, langgraph with "
                     "langchain_openai.ChatOpenAI", rust_runs,
                     lambda r: r == {"write_poem": poem_about("cats")}),
            Scenario("seed_openai", "the seed with the real ChatOpenAI over HTTP (embedded "
                     "server), keep write_poem", runs,
                     lambda r: r == {"write_poem": poem_about("cats")}),
            Scenario("ttft_seed_openai", "time to the first poem token, the seed with the real "
                     "ChatOpenAI over HTTP (nograph: the poem's model call alone)", ttft,
                     lambda r: bool(r) and first.startswith(r.strip()), self_timed=True)]


def measure(scenarios: list[Scenario], repeats: int) -> None:
    for s in scenarios:
        for impl, fn in s.run.items():
            try:
                result = fn()
                if s.self_timed:
                    result = result[0]
                if not s.checks.get(impl, s.check)(result):
                    s.failures[impl] = f"wrong result: {str(result)[:200]}"
            except Exception as e:  # noqa: BLE001 - reported in the table
                s.failures[impl] = f"{type(e).__name__}: {e}"
        for recorded in s.latencies.values():
            recorded.clear()  # the check run's are not timed
        order = [k for k in s.run if k not in s.failures]
        for i in range(repeats):
            for impl in order:  # interleaved: noise hits both alike
                if i >= s.repeats.get(impl, repeats):
                    continue
                run = s.run[impl]
                t0 = time.perf_counter()
                for _ in range(s.inner):
                    result = run()
                took = (time.perf_counter() - t0) / s.inner
                s.times.setdefault(impl, []).append(result[1] if s.self_timed else took)
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


RSS_ROWS = {
    "msgs_all_256": "one 256-branch `messages` run, sync nodes (`stream`)",
    "amsgs_256": "one 256-branch `messages` run, async nodes (`astream`)",
    "ainvoke_10000": "10,000 concurrent `ainvoke`, async nodes",
    "ainvoke_10000_sync": "10,000 concurrent `ainvoke`, sync nodes",
}
"""Scenarios whose peak memory is measured (in a fresh process per implementation)."""


def peak_rss(kind: str, name: str) -> float:
    """`peak_rss_during` one run of `kind` in scenario `name`, in a fresh process (the
    scenario built for `kind` alone, run once, unwarmed)."""
    code = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
import compare
run = compare.find_scenario({name!r}, ({kind!r},)).run[{kind!r}]
print(compare.peak_rss_during(run))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return float(done.stdout.strip().splitlines()[-1])


def fmt(seconds: float) -> str:
    if seconds >= 10:
        return f"{seconds:.1f} s"
    if seconds >= 0.1:
        return f"{seconds * 1e3:.0f} ms"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def targets(scenarios: list[Scenario], rss: dict[str, dict[str, float]]) -> list[str]:
    """The issue's targets as measured in this run: one row each, met or not."""
    med = {s.name: {k: statistics.median(v) for k, v in s.times.items()} for s in scenarios}
    per = {s.name: s.per for s in scenarios}
    rows: list[tuple[str, str, bool]] = []

    def have(name: str, *kinds: str) -> bool:
        return name in med and all(k in med[name] for k in kinds)

    for name, limit, what in (("chain100", 3e-6, "per superstep"),
                              ("chain100_cold", 3e-6, "per superstep"),
                              ("chain3", 10e-6, "per run"), ("fanout5", 30e-6, "per run")):
        if have(name, "ferrograph"):
            got = med[name]["ferrograph"] / per[name]
            rows.append((f"`{name}` ≤ {fmt(limit)} {what}", fmt(got), got <= limit))
    for name in STREAM_CHAIN[:2]:
        if have(name, "ferrograph") and have("chain100", "ferrograph"):
            ratio = med[name]["ferrograph"] / med["chain100"]["ferrograph"]
            rows.append((f"`{name}` within 2× of `chain100` (invoke) per superstep",
                         f"{ratio:.2f}× invoke", ratio <= 2))
    for s in scenarios:
        name = s.name
        if re.fullmatch(r"msgs_all_\d+", name) and have(name, "ferrograph", "nograph"):
            ratio = med[name]["ferrograph"] / med[name]["nograph"]
            got = f"{ratio:.2f}× nograph"
            if have(name, INVOKE_FLOOR):
                got += f" ({med[name]['ferrograph'] / med[name][INVOKE_FLOOR]:.2f}× invoke floor)"
            rows.append((f"`{name}` per chunk within 10% of nograph", got, ratio <= 1.1))
        elif re.fullmatch(r"amsgs_(loop_)?\d+", name) and have(name, "ferrograph", "nograph"):
            ratio = med[name]["ferrograph"] / med[name]["nograph"]
            rows.append((f"`{name}` no slower than nograph", f"{ratio:.2f}× nograph",
                         ratio <= 1.0))
    if have("msgs_one_256", "ferrograph", "langgraph"):
        speedup = med["msgs_one_256"]["langgraph"] / med["msgs_one_256"]["ferrograph"]
        rows.append(("`msgs_one_256` ≥ 15× faster than langgraph", f"{speedup:.0f}×",
                     speedup >= 15))
    if have("seed_poem", "ferrograph", "nograph"):
        ratio = med["seed_poem"]["ferrograph"] / med["seed_poem"]["nograph"]
        rows.append(("`seed_poem` faster than both models with no graph",
                     f"{ratio:.2f}× nograph", ratio < 1))
    for name in ("ainvoke_10000", "ainvoke_10000_sync"):
        if have(name, "ferrograph"):
            got = med[name]["ferrograph"]
            rows.append((f"`{name}` < 0.5 s", fmt(got), got < 0.5))
    import openai_rows  # beside this file, as persistence.py

    rows += openai_rows.target_rows(med, per)
    if "msgs_all_256" in rss and {"ferrograph", "nograph"} <= rss["msgs_all_256"].keys():
        extra = rss["msgs_all_256"]["ferrograph"] - rss["msgs_all_256"]["nograph"]
        rows.append(("peak RSS at 256 branches within 5 MiB of nograph",
                     f"{extra:+.1f} MiB", extra <= 5))
    if not rows:
        return []
    lines = ["", "Targets (issues 5 and 16), from the medians above:", "",
             "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {what} | {got} | {'yes' if ok else 'no'} |" for what, got, ok in rows]
    if not all(ok for _, _, ok in rows):
        lines += ["", "Where a target is not met, [`PROFILE.md`](PROFILE.md) shows what the "
                  "time goes to."]
    return lines


def report(scenarios: list[Scenario], rss: dict[str, dict[str, float]], repeats: int,
           command: str) -> str:
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
        "One row alone: `python benches/compare.py --only <scenario> --out /tmp/row.md` "
        "(add `--repeats N`). The server's rows (`ferrograph serve` beside `langgraph dev`) "
        "are in [`SERVER.md`](SERVER.md), by `python benches/server.py`.",
        "",
        "Median (min) wall time per run; `per unit` divides the median by the unit count. "
        "Ratio = ferrograph / langgraph (below 1: ferrograph is faster). `nograph` streams "
        "the same models from one thread each with no graph: the floor (`amsgs_*`: the same "
        "models' `ainvoke` gathered on one event loop). `msgs_all_*` add a second floor, "
        "timed with the others: the invoke floor, each model called as a node calls it, "
        "`model.invoke` with a streaming callback handler (LangChain's per-token callback "
        "dispatch and `invoke`'s merge of the chunks are in it, as they are in both graphs).",
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
            runs = len(s.times[k])
            fewer = f", {runs} run{'s' if runs > 1 else ''}" if runs != repeats else ""
            text = f"{fmt(med[k])} ({fmt(mins[k])}){fewer}"
            if k == "nograph" and INVOKE_FLOOR in s.run:
                text += f"; invoke floor {cell(INVOKE_FLOOR)}"
            return text

        ratio = (f"{med['ferrograph'] / med['langgraph']:.3f}"
                 if "ferrograph" in med and "langgraph" in med else "—")
        per = " / ".join(fmt(med[k] / s.per) if k in med else "—"
                         for k in ("ferrograph", "langgraph", "nograph"))
        lines.append(f"| `{s.name}` {s.what} | {cell('ferrograph')} | {cell('langgraph')} | "
                     f"{ratio} | {cell('nograph')} | {per} per {s.unit} |")
    timed = [s for s in scenarios if any(len(v) > 1 for v in s.latencies.values())]
    if timed:
        lines += ["", "Per-run latency in the concurrent `ainvoke` rows, all timed repeats "
                  "pooled: from a run's start (the first step of its coroutine inside the "
                  "`asyncio.gather`) to its end, and from the gather's start to the run's end "
                  "(what a caller submitting all runs at once waits):", "",
                  "| scenario | ferrograph p50 / p99 | langgraph p50 / p99 | p99 ratio | "
                  "since gather start p99 (fg / lg) |", "|---|---|---|---|---|"]
        for s in timed:
            p = {k: [percentile([r[j] for r in v], q) for j in (0, 1) for q in (50, 99)]
                 for k, v in s.latencies.items() if len(v) > 1}  # start p50, p99; gather..

            def pair(k: str, i: int, j: int, p=p) -> str:
                return f"{fmt(p[k][i])} / {fmt(p[k][j])}" if k in p else "—"

            ratio = (f"{p['ferrograph'][1] / p['langgraph'][1]:.2g}"
                     if "ferrograph" in p and "langgraph" in p else "—")
            gathered = " / ".join(fmt(p[k][3]) if k in p else "—"
                                  for k in ("ferrograph", "langgraph"))
            lines.append(f"| `{s.name}` | {pair('ferrograph', 0, 1)} | "
                         f"{pair('langgraph', 0, 1)} | {ratio} | {gathered} |")
    if rss:
        lines += ["", "Peak resident memory added by one run (fresh process per implementation, "
                  "sampled every millisecond):", "",
                  "| run | ferrograph | langgraph | nograph |", "|---|---|---|---|"]
        for name, by_kind in rss.items():
            lines.append(f"| `{name}` {RSS_ROWS[name]} | " + " | ".join(
                f"{by_kind[k]:.1f} MiB" if k in by_kind else "—" for k in KINDS) + " |")
    lines += targets(scenarios, rss)
    lines += ["", "Notes:", "",
              "- `chain100`, `chain3`, `fanout5`: each timed repeat runs the graph "
              "back to back (20, 200 and 100 times) and divides, so one call's timer and "
              "cold-cache noise do not swamp runs of microseconds; both implementations alike.",
              "- `stream100_*`: `chain100`'s graph streamed, each repeat 20 runs back to back "
              "(the `astream` row 10, each in its own `asyncio.run`); their target compares "
              "ferrograph's cost per superstep with its own `invoke` of the same graph "
              "(`chain100`, timed in the same run).",
              "- `chain100_cold`: each timed repeat starts a new interpreter (`python -c`), "
              "builds the chain untimed and times its first `invoke` alone (langgraph: 3 "
              "processes); the median of the processes.",
              "- `ttft_*`: from calling `stream` to the first non-empty chunk of the node "
              "listened to, then the stream is closed (not timed).",
              "- langgraph's sync executor runs at most `min(32, cores + 4)` tasks at once "
              "(6 here). ferrograph has no cap: a step's tasks that block (on the network, "
              "on each other) all run at once; a streaming step whose tasks keep the GIL "
              "busy, like these fake models, runs a few at a time (see README).",
              "- `msgs_one_*`: langgraph streams every model and the loop drops other nodes' "
              "chunks; ferrograph's `nodes=` means the other models are not asked to stream.",
              "- `amsgs_*`: both graphs give each node's model a streaming callback handler, "
              "which makes `ainvoke` stream; `nograph` does the same without a graph "
              "(`asyncio.gather` of `model.ainvoke(..., callbacks=[handler])`, the handler "
              "keeping each chunk), rather than `astream`, so callback dispatch per token is "
              "in the floor as it is in the graphs. The check asserts each node's text and its "
              f"{CHUNKS} chunks. GenericFakeChatModel has no async stream of its own: "
              "langchain-core's default fetches each chunk from a worker thread (two thread "
              "hops a chunk, most of these rows' cost). `amsgs_loop_*` use LoopFakeChatModel, "
              "which makes its chunks on the event loop and yields after each, as a network "
              "client does: closer to what the graphs themselves add.",
              "- Concurrent `ainvoke` latency: an async node that never suspends lets a "
              "ferrograph run finish in one step of the loop, so its latency from its own start "
              "is its own cost; the runs of langgraph interleave. The since-gather-start "
              "column compares what callers wait.",
              f"- `ainvoke_N` with N ≥ {SLOW_AT:,}: langgraph is timed once (after its check "
              "run; about 20 s a run here), ferrograph every repeat; rows with fewer runs say "
              "so. `_sync`: a graph of sync nodes only, which ferrograph runs in one hop to "
              "a worker thread (the loop's default executor; concurrent runs batched onto "
              "its runners, results back a batch at a time) and langgraph node by node in "
              "the executor."]
    import persistence

    if any(s.name in persistence.NAMES for s in scenarios):
        lines += persistence.NOTES
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats and smaller sizes, no memory rows unless named")
    parser.add_argument("--only", nargs="*", help="scenario names (spaces or commas), "
                        "rss_256 for the 256-branch memory rows")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--no-rss", action="store_true", help="skip the memory rows")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md",
                        help="where to write the report (default benches/RESULTS.md)")
    parser.add_argument("--no-write", action="store_true", help="print, don't write a file")
    args = parser.parse_args(argv)
    sys.modules.setdefault("compare", sys.modules[__name__])  # one module for persistence.py
    import openai_rows
    import persistence

    only = [n for arg in args.only or () for n in arg.split(",") if n] or None
    if only and set(only) & set(STREAM_CHAIN) and "chain100" not in only:
        only.append("chain100")  # the reference of their target
    if only and "persistence" in only:
        only = [n for n in only if n != "persistence"] + persistence.NAMES
    repeats = args.repeats or (3 if args.quick else 7)
    scenarios = build_scenarios(args.quick, only)
    from ferrograph.local_openai import LocalOpenAIServer

    wanted = [n for n in persistence.NAMES if not only or n in only]
    wanted_models = [n for n in openai_rows.NAMES if not only or n in only]
    with LocalOpenAIServer() as server, persistence.services(wanted) as svc, \
            (openai_rows.model_server() if wanted_models else contextlib.nullcontext()) as url:
        scenarios += openai_scenarios(server)
        scenarios += persistence.scenarios(svc, wanted)
        if url is not None:
            scenarios += openai_rows.scenarios(url, wanted_models)
        if only:
            known = {s.name for s in scenarios} | {"rss_256", *persistence.NAMES,
                                                    *openai_rows.NAMES}
            if unknown := set(only) - known:
                parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
            scenarios = [s for s in scenarios if s.name in only]
        measure(scenarios, repeats)
    names = {s.name for s in scenarios} | (
        {n for n in RSS_ROWS if n.endswith("_256")} if only and "rss_256" in only else set())
    built = {s.name: s for s in scenarios}
    rss = {} if args.no_rss else {
        name: {k: peak_rss(k, name) for k in (built.get(name) or find_scenario(name)).run
               if k in KINDS}
        for name in RSS_ROWS if name in names}
    if rss:
        print("  rss: done", file=sys.stderr)
    command = "python benches/compare.py" + (" " + " ".join(argv or sys.argv[1:])).rstrip()
    text = report(scenarios, rss, repeats, command.strip())
    print(text)
    if not args.no_write:
        args.out.write_text(text)
    return 1 if any(s.failures for s in scenarios) else 0


if __name__ == "__main__":
    sys.exit(main())

