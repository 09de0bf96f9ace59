"""Persistence rows of the side-by-side comparison (`benches/compare.py` builds and times them).

    python benches/compare.py --only persistence --out /tmp/p.md    # these rows alone
    python benches/compare.py --only ckpt_pg_sync,chat10_mem --out /tmp/p.md

The graph code is the same for both engines; only the import changes (`{engine}.graph`, and the
saver from `{engine}.checkpoint.memory` / `.sqlite` / `.postgres`, which are LangGraph's own
savers either way). Rows:

- `ckpt_{mem,sqlite,pg}_{sync,exit}`: `invoke` of a 100-node chain of plain functions (one
  `x` counter) with a checkpointer, `durability="sync"` (a checkpoint put before each next
  superstep: 102 checkpoints a run) or `"exit"` (one put at the end); a new `thread_id` per
  run. `InMemorySaver`; `SqliteSaver` on a file in a temporary directory; `PostgresSaver` on a
  throwaway local PostgreSQL (`tests/services.py`'s `PostgresServer`, Debian's binaries).
- `chat10_{mem,sqlite}`: a `MessagesState` graph of one node appending an `AIMessage` that
  echoes the last human message (no model), invoked 10 times on one new `thread_id` (default
  durability, `"async"`): the time of all 10 turns.
- `history1000`: `list(get_state_history(config))` of a 1,000-checkpoint thread (200 runs of
  a 3-node chain on one `thread_id` with `InMemorySaver`, built once, untimed).
"""

from __future__ import annotations

import contextlib
import importlib
import sqlite3
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import compare
from compare import IMPLS, Scenario, lib
from langchain_core.messages import AIMessage, HumanMessage

HERE = Path(__file__).resolve().parent

SAVERS = ("mem", "sqlite", "pg")
DURABILITIES = ("sync", "exit")
CHAIN = 100
TURNS = 10
HISTORY = 1000
MEM_INNER = 5
"""Runs back to back per timed repeat of the `ckpt_mem_*` rows (a run takes milliseconds:
one alone is at the mercy of the machine's noise)."""
NAMES = ([f"ckpt_{s}_{d}" for s in SAVERS for d in DURABILITIES]
         + ["chat10_mem", "chat10_sqlite", f"history{HISTORY}"])
"""Every persistence row, in report order; `--only persistence` selects them all."""

NOTES = [
    f"- `ckpt_*`: one `invoke` of the {CHAIN}-node chain per timed run ({MEM_INNER} back to "
    "back per timed repeat for `ckpt_mem_*`), each on a new `thread_id`, "
    "divided by its supersteps. `_sync`: `durability=\"sync\"`, a checkpoint written before "
    f"each next superstep ({CHAIN + 2} a run); `_exit`: `durability=\"exit\"`, the checkpoints "
    "built but one written, at the end. Savers: LangGraph's own for both engines "
    "(`InMemorySaver`; `SqliteSaver` on a file in a temporary directory; `PostgresSaver` on a "
    "local throwaway PostgreSQL over TCP, `tests/services.py`). Both engines make the same "
    "saver calls (a `put` per checkpoint, a `put_writes` per task: 203 SQLite commits a "
    "`_sync` run), so the `sqlite` and `pg` `_sync` rows mostly time the disk's syncs and the "
    "server's round trips, and move with the machine's other disk traffic.",
    f"- `chat10_*`: {TURNS} `invoke`s on one new `thread_id` of a `MessagesState` graph whose "
    "node appends an `AIMessage` echoing the last human message (no model), default "
    "durability (`\"async\"`); the state grows by two messages a turn.",
    f"- `history{HISTORY}`: `list(graph.get_state_history(config))` of a thread of {HISTORY:,} "
    f"checkpoints, built untimed by {HISTORY // 5} `invoke`s of a 3-node chain on one "
    "`thread_id` with `InMemorySaver` (5 checkpoints a run). A thread made by one long chain "
    "instead holds checkpoints whose `channel_versions` and `versions_seen` grow with the "
    "step, so listing it is quadratic (both engines).",
]


def saver_module(impl: str, kind: str) -> Any:
    return importlib.import_module(f"{impl}.checkpoint." + {
        "mem": "memory", "sqlite": "sqlite", "pg": "postgres"}[kind])


class Services:
    """What the savers need: a temporary directory for SQLite files and, when a `pg` row is
    wanted, a PostgreSQL server (None when it cannot be started here)."""

    def __init__(self, tmp: Path, pg_url: str | None) -> None:
        self.tmp = tmp
        self.pg_url = pg_url
        self.closers: list[Any] = []

    def saver(self, impl: str, kind: str) -> Any:
        mod = saver_module(impl, kind)
        if kind == "mem":
            return mod.InMemorySaver()
        if kind == "sqlite":
            conn = sqlite3.connect(self.tmp / f"{impl}-{uuid.uuid4().hex[:8]}.sqlite",
                                   check_same_thread=False)
            self.closers.append(conn)
            saver = mod.SqliteSaver(conn)
        else:
            import psycopg
            from psycopg.rows import dict_row

            conn = psycopg.connect(self.pg_url, autocommit=True, prepare_threshold=0,
                                   row_factory=dict_row)
            self.closers.append(conn)
            saver = mod.PostgresSaver(conn)
        saver.setup()
        return saver


@contextlib.contextmanager
def services(names: list[str]) -> Iterator[Services]:
    """Starts what the rows `names` need; stops it on exit."""
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fg-pbench-")))
        pg_url = None
        if any(n.startswith("ckpt_pg_") for n in names):
            sys.path.insert(0, str(HERE.parent))  # the repo's tests package
            from tests.services import PostgresServer, ServiceUnavailable

            try:
                pg_url = stack.enter_context(PostgresServer()).url
            except ServiceUnavailable as e:
                print(f"  persistence: no PostgreSQL, pg rows skipped ({e})", file=sys.stderr)
        svc = Services(tmp, pg_url)
        try:
            yield svc
        finally:
            for conn in svc.closers:
                conn.close()


def thread(limit: int | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"configurable": {"thread_id": uuid.uuid4().hex}}
    if limit:
        config["recursion_limit"] = limit
    return config


def chain_rows(svc: Services, kind: str, durability: str) -> Scenario:
    graphs = {k: compare.chain_graph(lib(k), CHAIN, checkpointer=svc.saver(k, kind))
              for k in IMPLS}
    last: dict[str, dict[str, Any]] = {}

    def run(impl: str) -> Any:
        last[impl] = thread(10 * CHAIN)
        return graphs[impl].invoke({"x": 0}, last[impl], durability=durability)

    def check(impl: str, result: Any) -> bool:
        saved = list(graphs[impl].get_state_history(last[impl]))
        return (result == {"x": CHAIN} and saved[0].values == {"x": CHAIN}
                and len(saved) == (CHAIN + 2 if durability == "sync" else 1))

    name = {"mem": "InMemorySaver", "sqlite": "SqliteSaver (file)",
            "pg": "PostgresSaver (local server)"}[kind]
    return Scenario(
        f"ckpt_{kind}_{durability}",
        f"invoke a {CHAIN}-node chain, {name}, `durability=\"{durability}\"`",
        {k: (lambda k=k: run(k)) for k in IMPLS}, lambda r: False,
        checks={k: (lambda r, k=k: check(k, r)) for k in IMPLS},
        per=CHAIN, unit="superstep", inner=MEM_INNER if kind == "mem" else 1)


def chat_graph(L: Any, saver: Any) -> Any:
    def echo(state: Any) -> dict[str, Any]:
        return {"messages": [AIMessage(content=state["messages"][-1].content)]}

    messages_state = importlib.import_module(f"{L.name}.graph").MessagesState
    return (L.StateGraph(messages_state).add_node("echo", echo)
            .add_edge(L.START, "echo").compile(checkpointer=saver))


def chat_rows(svc: Services, kind: str) -> Scenario:
    graphs = {k: chat_graph(lib(k), svc.saver(k, kind)) for k in IMPLS}

    def run(impl: str) -> Any:
        config = thread()
        for i in range(TURNS):
            result = graphs[impl].invoke({"messages": [HumanMessage(content=f"turn {i}")]},
                                         config)
        return [(type(m).__name__, m.content) for m in result["messages"]]

    expected = [(cls, f"turn {i}") for i in range(TURNS) for cls in ("HumanMessage", "AIMessage")]
    name = {"mem": "InMemorySaver", "sqlite": "SqliteSaver (file)"}[kind]
    return Scenario(
        f"chat{TURNS}_{kind}", f"{TURNS}-turn chat thread, `MessagesState` echo node, {name}",
        {k: (lambda k=k: run(k)) for k in IMPLS}, lambda r: r == expected,
        per=TURNS, unit="turn")


def history_rows(svc: Services) -> Scenario:
    configs = {}
    graphs = {}
    for k in IMPLS:
        graphs[k] = compare.chain_graph(lib(k), 3, checkpointer=svc.saver(k, "mem"))
        configs[k] = thread()
        for _ in range(HISTORY // 5):  # 5 checkpoints a run: input, start, one per node
            graphs[k].invoke({"x": 0}, configs[k], durability="sync")

    def run(impl: str) -> Any:
        snapshots = list(graphs[impl].get_state_history(configs[impl]))
        return len(snapshots), snapshots[0].values, snapshots[-1].metadata["step"]

    return Scenario(
        f"history{HISTORY}", f"`get_state_history` of a {HISTORY:,}-checkpoint thread "
        f"({HISTORY // 5} runs of a 3-node chain, InMemorySaver), list all",
        {k: (lambda k=k: run(k)) for k in IMPLS},
        lambda r: r == (HISTORY, {"x": 3}, -1), per=HISTORY, unit="snapshot")


def scenarios(svc: Services, names: list[str]) -> list[Scenario]:
    """The rows `names` (in `NAMES` order); pg rows only if PostgreSQL is up."""
    out: list[Scenario] = []
    for name in NAMES:
        if name not in names:
            continue
        if name.startswith("ckpt_"):
            _, kind, durability = name.split("_")
            if kind == "pg" and svc.pg_url is None:
                continue
            out.append(chain_rows(svc, kind, durability))
        elif name.startswith("chat"):
            out.append(chat_rows(svc, name.rsplit("_", 1)[1]))
        else:
            out.append(history_rows(svc))
        print(f"  {name}: built", file=sys.stderr)
    return out
