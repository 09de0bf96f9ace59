"""Threads on real databases: a SQLite file and a PostgreSQL server (tests/services.py), with
the sync savers under `invoke`/`stream` and the async ones under `ainvoke`/`astream`.

Each case runs the same graph on ferrograph and on LangGraph, each with a saver of its own
on the same kind of database, and compares what the caller sees (values, interrupts,
`get_state`, the history's shape); and a thread started by one engine is resumed by the
other on the same database."""

from __future__ import annotations

import asyncio
import operator
import uuid
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Annotated, Any, TypedDict

import langgraph.graph as lg_graph
import langgraph.types as lg_types
import pytest

import ferrograph.graph as fg_graph
import ferrograph.types as fg_types
from ferrograph.checkpoint.postgres import PostgresSaver
from ferrograph.checkpoint.postgres.aio import AsyncPostgresSaver
from ferrograph.checkpoint.sqlite import SqliteSaver
from ferrograph.checkpoint.sqlite.aio import AsyncSqliteSaver

ENGINES = {"ferrograph": (fg_graph, fg_types), "langgraph": (lg_graph, lg_types)}


class Log(TypedDict, total=False):
    log: Annotated[list, operator.add]


def approval_graph(engine: str, saver: Any) -> Any:
    """`work` then `ask` (which asks with `interrupt()`) then `done`."""
    graph, types = ENGINES[engine]

    def work(state: Log) -> dict[str, Any]:
        return {"log": ["work"]}

    def ask(state: Log) -> dict[str, Any]:
        return {"log": [f"ask:{types.interrupt({'seen': list(state['log'])})}"]}

    def done(state: Log) -> dict[str, Any]:
        return {"log": ["done"]}

    builder = graph.StateGraph(Log)
    builder.add_node("work", work)
    builder.add_node("ask", ask)
    builder.add_node("done", done)
    builder.add_edge(graph.START, "work")
    builder.add_edge("work", "ask")
    builder.add_edge("ask", "done")
    return builder.compile(checkpointer=saver)


def _shape(snapshot: Any) -> Any:
    return (snapshot.values, snapshot.next, snapshot.metadata and snapshot.metadata["step"],
            snapshot.metadata and snapshot.metadata["source"],
            [t.name for t in snapshot.tasks], [i.value for i in snapshot.interrupts])


def run_sync(engine: str, saver: Any, thread: str) -> Any:
    graph, types = ENGINES[engine]
    app = approval_graph(engine, saver)
    config = {"configurable": {"thread_id": thread}}
    first = app.invoke({"log": []}, config)
    paused = _shape(app.get_state(config))
    resumed = list(app.stream(types.Command(resume="yes"), config, stream_mode="updates"))
    second = app.invoke({"log": ["again"]}, config)
    history = [_shape(s) for s in app.get_state_history(config)]
    return {"first": {k: v for k, v in first.items() if k != "__interrupt__"},
            "asked": [i.value for i in first["__interrupt__"]], "paused": paused,
            "resumed": resumed, "second": {k: v for k, v in second.items()
                                           if k != "__interrupt__"}, "history": history}


async def run_async(engine: str, saver: Any, thread: str) -> Any:
    graph, types = ENGINES[engine]
    app = approval_graph(engine, saver)
    config = {"configurable": {"thread_id": thread}}
    first = await app.ainvoke({"log": []}, config)
    paused = _shape(await app.aget_state(config))
    resumed = [c async for c in app.astream(types.Command(resume="yes"), config,
                                            stream_mode="updates")]
    history = [_shape(s) async for s in app.aget_state_history(config)]
    return {"first": {k: v for k, v in first.items() if k != "__interrupt__"},
            "asked": [i.value for i in first["__interrupt__"]], "paused": paused,
            "resumed": resumed, "history": history}


@contextmanager
def sqlite_saver(tmp_path: Path) -> Iterator[Any]:
    with SqliteSaver.from_conn_string(str(tmp_path / f"{uuid.uuid4().hex}.sqlite")) as saver:
        yield saver


@contextmanager
def postgres_saver(url: str) -> Iterator[Any]:
    with PostgresSaver.from_conn_string(url) as saver:
        saver.setup()
        yield saver


@asynccontextmanager
async def async_sqlite_saver(tmp_path: Path) -> Any:
    async with AsyncSqliteSaver.from_conn_string(
            str(tmp_path / f"{uuid.uuid4().hex}.sqlite")) as saver:
        yield saver


@asynccontextmanager
async def async_postgres_saver(url: str) -> Any:
    async with AsyncPostgresSaver.from_conn_string(url) as saver:
        await saver.setup()
        yield saver


@pytest.fixture(params=["sqlite", "postgres"])
def sync_saver(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Any]:
    if request.param == "sqlite":
        return lambda: sqlite_saver(tmp_path)
    url = request.getfixturevalue("postgres_url")
    return lambda: postgres_saver(url)


@pytest.fixture(params=["sqlite", "postgres"])
def async_saver(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Any]:
    if request.param == "sqlite":
        return lambda: async_sqlite_saver(tmp_path)
    url = request.getfixturevalue("postgres_url")
    return lambda: async_postgres_saver(url)


def test_a_thread_on_a_database_matches_langgraph(sync_saver: Callable[[], Any]):
    seen = {}
    for engine in ENGINES:
        with sync_saver() as saver:
            seen[engine] = run_sync(engine, saver, f"{engine}-{uuid.uuid4().hex}")
    assert seen["ferrograph"] == seen["langgraph"]
    assert seen["ferrograph"]["second"] == {"log": ["work", "ask:yes", "done", "again", "work"]}


def test_a_thread_on_a_database_matches_langgraph_async(async_saver: Callable[[], Any]):
    async def both() -> dict[str, Any]:
        seen = {}
        for engine in ENGINES:
            async with async_saver() as saver:
                seen[engine] = await run_async(engine, saver, f"{engine}-{uuid.uuid4().hex}")
        return seen

    seen = asyncio.run(both())
    assert seen["ferrograph"] == seen["langgraph"]
    assert seen["ferrograph"]["resumed"][-1] == {"done": {"log": ["done"]}}


@pytest.mark.parametrize("first", ["langgraph", "ferrograph"])
def test_a_thread_moves_between_engines_on_a_database(first: str,
                                                      sync_saver: Callable[[], Any]):
    """Run to the interrupt with one engine; resume, and take a second turn, with the other,
    on the same database."""
    second = "ferrograph" if first == "langgraph" else "langgraph"
    thread = {"configurable": {"thread_id": f"moved-{uuid.uuid4().hex}"}}
    with sync_saver() as saver:
        asked = approval_graph(first, saver).invoke({"log": []}, thread)["__interrupt__"]
        other = approval_graph(second, saver)
        assert [i.value for i in other.get_state(thread).interrupts] == [
            i.value for i in asked]
        resumed = other.invoke(ENGINES[second][1].Command(resume="ok"), thread)
        again = approval_graph(first, saver).invoke({"log": ["more"]}, thread)
        steps = [s.metadata["step"] for s in other.get_state_history(thread)]
    assert resumed == {"log": ["work", "ask:ok", "done"]}
    assert again["log"] == ["work", "ask:ok", "done", "more", "work"]
    assert steps == sorted(steps, reverse=True) and len(steps) == len(set(steps))


def test_a_saver_that_fails_mid_run_leaves_the_thread_resumable(tmp_path: Path):
    """The saver's error reaches the caller; the thread resumes from its last good
    checkpoint."""

    class FailingOnce(SqliteSaver):
        fail_at_step: int | None = 1

        def put(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
            if metadata.get("step") == self.fail_at_step:
                self.fail_at_step = None
                raise OSError("disk full")
            return super().put(config, checkpoint, metadata, new_versions)

    import sqlite3

    conn = sqlite3.connect(str(tmp_path / "db.sqlite"), check_same_thread=False)
    saver = FailingOnce(conn)
    app = approval_graph("ferrograph", saver)
    config = {"configurable": {"thread_id": "t"}}
    with pytest.raises(OSError, match="disk full"):
        app.invoke({"log": []}, config)
    assert app.get_state(config).metadata["step"] == 0  # the last checkpoint saved
    out = app.invoke(None, config)
    assert out["log"] == ["work"] and [i.value for i in out["__interrupt__"]] == [
        {"seen": ["work"]}]
    assert app.invoke(fg_types.Command(resume="y"), config) == {
        "log": ["work", "ask:y", "done"]}
    conn.close()
