"""ferrograph's checkpoint, store and cache modules: LangGraph's own objects, re-exported, and its
SQLite and Postgres savers working against a real SQLite file and a real PostgreSQL server
(tests/services.py starts it), sync and async; and the error naming the pip extra to install
when a backend's packages are missing."""

from __future__ import annotations

import asyncio
import builtins
import importlib
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ferrograph.checkpoint import BaseCheckpointSaver, CheckpointTuple, empty_checkpoint

# -- re-exports ---------------------------------------------------------------------------------

REEXPORTS = [
    (
        "ferrograph.checkpoint",
        "langgraph.checkpoint.base",
        ["BaseCheckpointSaver", "Checkpoint", "CheckpointMetadata", "CheckpointTuple",
         "ChannelVersions", "PendingWrite", "SerializerProtocol", "EmptyChannelError",
         "copy_checkpoint", "create_checkpoint", "empty_checkpoint"],
    ),
    ("ferrograph.checkpoint.memory", "langgraph.checkpoint.memory", ["InMemorySaver", "MemorySaver"]),
    ("ferrograph.checkpoint.serde", "langgraph.checkpoint.serde.jsonplus", ["JsonPlusSerializer"]),
    ("ferrograph.checkpoint.sqlite", "langgraph.checkpoint.sqlite", ["SqliteSaver"]),
    ("ferrograph.checkpoint.sqlite", "langgraph.checkpoint.sqlite.aio", ["AsyncSqliteSaver"]),
    ("ferrograph.checkpoint.sqlite.aio", "langgraph.checkpoint.sqlite.aio", ["AsyncSqliteSaver"]),
    ("ferrograph.checkpoint.postgres", "langgraph.checkpoint.postgres", ["PostgresSaver"]),
    ("ferrograph.checkpoint.postgres", "langgraph.checkpoint.postgres.aio", ["AsyncPostgresSaver"]),
    ("ferrograph.checkpoint.postgres.aio", "langgraph.checkpoint.postgres.aio", ["AsyncPostgresSaver"]),
    ("ferrograph.store.base", "langgraph.store.base", ["BaseStore", "Item", "SearchItem"]),
    ("ferrograph.store.memory", "langgraph.store.memory", ["InMemoryStore"]),
    ("ferrograph.store.postgres", "langgraph.store.postgres", ["PostgresStore", "AsyncPostgresStore"]),
    ("ferrograph.store.postgres.aio", "langgraph.store.postgres.aio", ["AsyncPostgresStore"]),
    ("ferrograph.cache.base", "langgraph.cache.base", ["BaseCache"]),
    ("ferrograph.cache.memory", "langgraph.cache.memory", ["InMemoryCache"]),
]  # fmt: skip


@pytest.mark.parametrize(("ours", "theirs", "names"), REEXPORTS, ids=[r[0] for r in REEXPORTS])
def test_modules_reexport_langgraphs_objects(ours: str, theirs: str, names: list[str]) -> None:
    mine, lg = importlib.import_module(ours), importlib.import_module(theirs)
    for name in names:
        assert getattr(mine, name) is getattr(lg, name), name
    assert set(mine.__all__) <= set(dir(mine))


def test_every_module_says_what_it_owns() -> None:
    for ours in {r[0] for r in REEXPORTS} | {"ferrograph.store", "ferrograph.cache"}:
        doc = importlib.import_module(ours).__doc__
        assert doc and doc.strip(), ours


# -- the error naming the extra -------------------------------------------------------------------

MISSING = [
    ("ferrograph.checkpoint.sqlite", "langgraph.checkpoint.sqlite", "sqlite"),
    ("ferrograph.checkpoint.sqlite.aio", "aiosqlite", "sqlite"),
    ("ferrograph.checkpoint.postgres", "langgraph.checkpoint.postgres", "postgres"),
    ("ferrograph.checkpoint.postgres.aio", "psycopg", "postgres"),
    ("ferrograph.store.postgres", "langgraph.store.postgres", "postgres"),
    ("ferrograph.store.postgres.aio", "psycopg_pool", "postgres"),
]


# Modules re-imported with the backend hidden: ours and LangGraph's backend modules.
_REIMPORTED = (
    "ferrograph.checkpoint",
    "ferrograph.store",
    "langgraph.checkpoint.sqlite",
    "langgraph.checkpoint.postgres",
    "langgraph.store.postgres",
)


@pytest.fixture
def restored_modules() -> Iterator[None]:
    """sys.modules exactly as before the test: no half-imported module left behind."""
    saved = dict(sys.modules)
    try:
        yield
    finally:
        for name in set(sys.modules) - set(saved):
            del sys.modules[name]
        sys.modules.update(saved)


@pytest.mark.parametrize(("ours", "hidden", "extra"), MISSING, ids=[m[0] for m in MISSING])
@pytest.mark.usefixtures("restored_modules")
def test_missing_backend_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, ours: str, hidden: str, extra: str
) -> None:
    """With the backend's package hidden (as if not installed), importing our module raises an
    ImportError that tells the user which extra to install."""
    real_import = builtins.__import__

    def fake_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == hidden or name.startswith(hidden + "."):
            raise ModuleNotFoundError(f"No module named {hidden!r}", name=hidden)
        return real_import(name, *args, **kwargs)

    for name in list(sys.modules):
        if name.startswith(_REIMPORTED) or name == hidden or name.startswith(hidden + "."):
            del sys.modules[name]
    monkeypatch.setattr(builtins, "__import__", fake_import)

    with pytest.raises(ImportError) as info:
        importlib.import_module(ours)
    message = str(info.value)
    assert f'pip install "ferrograph[{extra}]"' in message
    assert hidden in message
    assert info.value.name == hidden


# -- round trips on real backends -----------------------------------------------------------------


def _checkpoint_round_trip_config(thread: str) -> tuple[dict, dict, dict]:
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"messages": ["hello", {"n": 1}]}
    checkpoint["channel_versions"] = {"messages": 1}
    config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    metadata = {"source": "input", "step": -1, "parents": {}}
    return config, checkpoint, metadata


def _check_saved(saver: BaseCheckpointSaver, got: CheckpointTuple | None, checkpoint: dict) -> None:
    assert got is not None
    assert got.checkpoint["id"] == checkpoint["id"]
    assert got.checkpoint["channel_values"] == {"messages": ["hello", {"n": 1}]}
    assert got.metadata["source"] == "input"
    assert got.metadata["step"] == -1
    assert got.config["configurable"]["checkpoint_id"] == checkpoint["id"]


def _sync_round_trip(saver: BaseCheckpointSaver) -> None:
    config, checkpoint, metadata = _checkpoint_round_trip_config(uuid.uuid4().hex)
    saved = saver.put(config, checkpoint, metadata, {"messages": 1})
    saver.put_writes(saved, [("messages", "pending")], task_id="task-1")
    got = saver.get_tuple(config)
    _check_saved(saver, got, checkpoint)
    assert [(w[1], w[2]) for w in got.pending_writes] == [("messages", "pending")]
    assert [t.checkpoint["id"] for t in saver.list(config)] == [checkpoint["id"]]


async def _async_round_trip(saver: BaseCheckpointSaver) -> None:
    config, checkpoint, metadata = _checkpoint_round_trip_config(uuid.uuid4().hex)
    saved = await saver.aput(config, checkpoint, metadata, {"messages": 1})
    await saver.aput_writes(saved, [("messages", "pending")], task_id="task-1")
    got = await saver.aget_tuple(config)
    _check_saved(saver, got, checkpoint)
    assert [(w[1], w[2]) for w in got.pending_writes] == [("messages", "pending")]
    assert [t.checkpoint["id"] async for t in saver.alist(config)] == [checkpoint["id"]]


def test_sqlite_saver_on_a_file(tmp_path: Path) -> None:
    from ferrograph.checkpoint.sqlite import SqliteSaver

    path = tmp_path / "checkpoints.sqlite"
    with SqliteSaver.from_conn_string(str(path)) as saver:
        _sync_round_trip(saver)
    assert path.stat().st_size > 0
    # the file outlives the saver: a new one reads the same checkpoints
    with SqliteSaver.from_conn_string(str(path)) as saver:
        assert len(list(saver.list(None))) == 1


def test_async_sqlite_saver_on_a_file(tmp_path: Path) -> None:
    from ferrograph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async def main() -> None:
        async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "a.sqlite")) as saver:
            await _async_round_trip(saver)

    asyncio.run(main())


def test_postgres_saver(postgres_url: str) -> None:
    from ferrograph.checkpoint.postgres import PostgresSaver

    with PostgresSaver.from_conn_string(postgres_url) as saver:
        saver.setup()
        _sync_round_trip(saver)
    with PostgresSaver.from_conn_string(postgres_url) as saver:
        saver.setup()  # idempotent: migrations already applied
        assert len(list(saver.list(None))) >= 1


def test_async_postgres_saver(postgres_url: str) -> None:
    from ferrograph.checkpoint.postgres.aio import AsyncPostgresSaver

    async def main() -> None:
        async with AsyncPostgresSaver.from_conn_string(postgres_url) as saver:
            await saver.setup()
            await _async_round_trip(saver)

    asyncio.run(main())


def test_postgres_store(postgres_url: str) -> None:
    from ferrograph.store.postgres import PostgresStore

    with PostgresStore.from_conn_string(postgres_url) as store:
        store.setup()
        ns = ("users", uuid.uuid4().hex)
        store.put(ns, "prefs", {"theme": "dark"})
        item = store.get(ns, "prefs")
        assert item is not None and item.value == {"theme": "dark"}


@pytest.mark.parametrize("make", [
    lambda t: t.Send("worker", {"x": 1}),
    lambda t: t.Send("worker", {"x": 1}, timeout=t.TimeoutPolicy(run_timeout=1, idle_timeout=2)),
    lambda t: t.Command(update={"x": 1}, goto="a", resume="yes"),
    lambda t: t.Interrupt(value={"q": "ok?"}, id="i1"),
    lambda t: t.Overwrite(value=[1, 2]),
], ids=["send", "send-timeout", "command", "interrupt", "overwrite"])
def test_types_round_trip_through_the_strict_serializer(make: Any) -> None:
    """LangGraph's serializer in its strict mode (only listed types are rebuilt) gives back
    ferrograph's types as it gives back LangGraph's (LangGraph's own test:
    test_retry.py::test_send_*_round_trips_through_msgpack_serde)."""
    import langgraph.types as lg_types
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    import ferrograph.types as fg_types

    serde = JsonPlusSerializer(allowed_msgpack_modules=None)
    for types in (lg_types, fg_types):
        value = make(types)
        back = serde.loads_typed(serde.dumps_typed(value))
        assert type(back) is type(value)
        assert back == value
