"""The server's database: where checkpoints (LangGraph's saver) and the server's own tables
(assistants, threads, runs) live. One interface, `Database`, with two implementations: SQLite
(a file or `:memory:`, LangGraph's `AsyncSqliteSaver` and its connection) and PostgreSQL
(`DATABASE_URI`, LangGraph's `AsyncPostgresSaver` on a psycopg pool). The stores in
`storage.py` write the same SQL to both (`?` placeholders); only the statements on the
savers' own tables differ. The schema is created at start by numbered migrations, recorded in
`ferrograph_schema`."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ferrograph.server.wire import iso, now

Statement = tuple[str, tuple[Any, ...]]

MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, ["CREATE TABLE IF NOT EXISTS ferrograph_assistants (assistant_id TEXT PRIMARY KEY, "
         "created_at TEXT, updated_at TEXT, version INTEGER, versions TEXT)",
         "CREATE TABLE IF NOT EXISTS ferrograph_threads (thread_id TEXT PRIMARY KEY, "
         "created_at TEXT, updated_at TEXT, state_updated_at TEXT, metadata TEXT, "
         "status TEXT, state_values TEXT, interrupts TEXT, error TEXT)"]),
    (2, ["CREATE TABLE IF NOT EXISTS ferrograph_runs (run_id TEXT PRIMARY KEY, "
         "thread_id TEXT NOT NULL, assistant_id TEXT, created_at TEXT, updated_at TEXT, "
         "status TEXT, metadata TEXT, kwargs TEXT, multitask_strategy TEXT, "
         "attempt INTEGER, rerun TEXT)",
         "CREATE INDEX IF NOT EXISTS ferrograph_runs_by_thread ON ferrograph_runs "
         "(thread_id)"]),
    # a run's result (the `wait`/`join` body) and, for several instances on one database
    # (`cluster.py`), the queue's and the leases' columns
    (3, [f"ALTER TABLE ferrograph_runs ADD COLUMN IF NOT EXISTS {column}" for column in (
        "result TEXT", "owner TEXT", "lease_until DOUBLE PRECISION",
        "not_before DOUBLE PRECISION", "cancel TEXT")]),
    # the fencing token of a run's lease (one more at each claim: a worker's writes about the
    # run hold only while it is theirs), and the queue's own index (the runs that are not
    # over), so a claim does not read every run kept
    (4, ["ALTER TABLE ferrograph_runs ADD COLUMN IF NOT EXISTS fence BIGINT",
         "CREATE INDEX IF NOT EXISTS ferrograph_runs_queue ON ferrograph_runs (created_at) "
         "WHERE status IN ('pending', 'running')"]),
    # a thread's `config` (LangGraph's: the config of the run created on it when idle)
    (5, ["ALTER TABLE ferrograph_threads ADD COLUMN IF NOT EXISTS config TEXT"]),
]
"""The server's tables, by schema version (applied in order, each once)."""


class LeaseLost(Exception):
    """A write fenced by a run's lease (`Database.run_fenced`) found the run claimed by
    another worker since: nothing of it was written."""


class DatabaseError(Exception):
    """The database cannot be used (a bad URI, a server that does not answer): the message
    names it, for `ferrograph serve` to print."""


def redacted(uri: str) -> str:
    """`uri` with its password (if any) replaced by `***`, to show in messages."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def is_postgres_uri(uri: str) -> bool:
    return uri.startswith(("postgres://", "postgresql://"))


def upsert(table: str, columns: tuple[str, ...], key: str) -> str:
    """An insert that replaces the row with the same `key` (SQLite and PostgreSQL alike)."""
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
            f"({', '.join('?' * len(columns))}) ON CONFLICT ({key}) DO UPDATE SET {updates}")


class Database:
    """The saver and the server's tables in one database (see the module doc)."""

    saver: Any
    describe: str
    """How messages name the database (the URI without its password, or the file)."""
    remote = False
    """A server that can go away while we run (`/ok` asks it by default)."""
    _migration_lock: list[Statement] = []

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def run(self, statements: list[Statement]) -> None:
        """The statements in one transaction."""
        raise NotImplementedError

    async def fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def run_fenced(self, guard: Statement, statements: list[Statement]) -> None:
        """The statements in one transaction that first runs `guard` (a query that locks the
        row that entitles the writer); no row: `LeaseLost`, and nothing is written."""
        raise NotImplementedError

    async def ping(self) -> None:
        """Returns when the database answers a query; raises otherwise."""
        await self.fetchall("SELECT 1")

    async def copy_checkpoints(self, source: str, target: str) -> None:
        """Every checkpoint and pending write of thread `source` under thread `target`."""
        raise NotImplementedError

    _WRITES_TABLE: str
    """The saver's table of pending writes."""
    _RUN_ID: str
    """SQL reading a checkpoint's `metadata.run_id`."""

    def run_checkpoints_deletion(self, thread_id: str, run_id: str) -> list[Statement]:
        """The statements removing the checkpoints (and their writes) whose metadata names
        `run_id`."""
        where = f"thread_id = ? AND {self._RUN_ID} = ?"
        return [
            (f"DELETE FROM {self._WRITES_TABLE} WHERE thread_id = ? AND checkpoint_id IN "
             f"(SELECT checkpoint_id FROM checkpoints WHERE {where})",
             (thread_id, thread_id, run_id)),
            (f"DELETE FROM checkpoints WHERE {where}", (thread_id, run_id))]

    @staticmethod
    def _dialect(sql: str) -> str:
        """A migration's statement as this database spells it."""
        return sql

    async def migrate(self) -> None:
        """Brings the server's tables to the newest schema (idempotent)."""
        await self.run([("CREATE TABLE IF NOT EXISTS ferrograph_schema (version INTEGER "
                         "PRIMARY KEY, applied_at TEXT)", ())])
        done = {v for (v,) in await self.fetchall("SELECT version FROM ferrograph_schema")}
        for version, statements in MIGRATIONS:
            if version in done:
                continue
            # statements are IF NOT EXISTS and the record ON CONFLICT DO NOTHING, so a
            # second server migrating at the same moment changes nothing
            await self.run([*self._migration_lock,
                            *((self._dialect(s), ()) for s in statements),
                            ("INSERT INTO ferrograph_schema (version, applied_at) VALUES "
                             "(?, ?) ON CONFLICT (version) DO NOTHING",
                             (version, iso(now())))])


class SqliteDatabase(Database):
    """A SQLite file (or `:memory:`): the saver's own aiosqlite connection carries the
    server's tables too, so `:memory:` keeps both in one database and a file never has two
    writers."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.describe = f"the SQLite database {path}"
        self._context: Any = None

    def check(self) -> None:
        if self.path == ":memory:":
            return
        try:
            sqlite3.connect(self.path).close()
        except sqlite3.Error as e:
            raise DatabaseError(f"cannot open {self.describe}: {e}") from None

    async def open(self) -> None:
        from ferrograph.checkpoint.sqlite.aio import AsyncSqliteSaver

        self._context = AsyncSqliteSaver.from_conn_string(self.path)
        self.saver = await self._context.__aenter__()
        await self.saver.setup()
        await self.migrate()

    async def close(self) -> None:
        if self._context is not None:
            await self._context.__aexit__(None, None, None)

    async def run(self, statements: list[Statement]) -> None:
        async with self.saver.lock:
            for sql, params in statements:
                await self.saver.conn.execute(sql, params)
            await self.saver.conn.commit()

    async def fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        async with self.saver.lock, self.saver.conn.execute(sql, params) as cur:
            return [tuple(row) for row in await cur.fetchall()]

    async def copy_checkpoints(self, source: str, target: str) -> None:
        await self.run([
            (_COPY_CHECKPOINTS, (target, source)),
            ("INSERT INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, "
             "task_path, idx, channel, type, value) SELECT ?, checkpoint_ns, checkpoint_id, "
             "task_id, task_path, idx, channel, type, value FROM writes WHERE thread_id = ?",
             (target, source))])

    @staticmethod
    def _dialect(sql: str) -> str:
        # SQLite has no `ADD COLUMN IF NOT EXISTS`; a file has one server, which migrates
        # it once (the version is recorded in the same transaction)
        return sql.replace("ADD COLUMN IF NOT EXISTS", "ADD COLUMN")

    _WRITES_TABLE = "writes"
    _RUN_ID = "json_extract(CAST(metadata AS TEXT), '$.run_id')"


_COPY_CHECKPOINTS = (
    "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, "
    "type, checkpoint, metadata) SELECT ?, checkpoint_ns, checkpoint_id, parent_checkpoint_id, "
    "type, checkpoint, metadata FROM checkpoints WHERE thread_id = ?")
"""Copies a thread's checkpoints (the table both savers name alike) under another thread."""

_MIGRATION_LOCK_KEY = 0x66657272  # "ferr": one advisory lock for every ferrograph server
_SETUP_LOCK_KEY = 0x66657273


class PostgresDatabase(Database):
    """PostgreSQL at `uri`: one psycopg connection pool for the saver and the server's
    tables (the saver needs its connections in autocommit with dict rows)."""

    _migration_lock = [("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK_KEY,))]
    remote = True

    def __init__(self, uri: str, max_connections: int = 10) -> None:
        self.uri = uri
        self.describe = f"DATABASE_URI {redacted(uri)}"
        self.max_connections = max_connections
        self.pool: Any = None

    def check(self) -> None:
        """Connects once, so a bad URI or a server that does not answer stops the server
        before it starts, with psycopg's reason."""
        try:
            import psycopg
        except ImportError as exc:
            from ferrograph._extras import missing_extra

            raise missing_extra("postgres", "ferrograph serve with DATABASE_URI", exc) from exc
        try:
            psycopg.connect(self.uri, connect_timeout=10).close()
        except psycopg.Error as e:
            reason = str(e).strip().replace(self.uri, redacted(self.uri))
            raise DatabaseError(f"cannot connect to {self.describe}: {reason}") from None

    async def open(self) -> None:
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        from ferrograph.checkpoint.postgres.aio import AsyncPostgresSaver

        self.pool = AsyncConnectionPool(
            self.uri, min_size=1, max_size=self.max_connections, open=False,
            # a connection the server dropped (a restart) is replaced, not handed out
            check=AsyncConnectionPool.check_connection,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row})
        await self.pool.open(wait=True, timeout=30)
        self.saver = AsyncPostgresSaver(self.pool)
        # the saver's own migrations do not expect company: instances starting together
        # take turns (a lock of this session, beside the migrations' transaction lock).
        # Tried, not waited for: a waiting statement would hold up the saver's
        # CREATE INDEX CONCURRENTLY in the instance that has the lock.
        async with self.pool.connection() as conn:
            while not (await (await conn.execute(
                    "SELECT pg_try_advisory_lock(%s) AS got", (_SETUP_LOCK_KEY,))
                    ).fetchone())["got"]:
                await asyncio.sleep(0.1)
            try:
                await self.saver.setup()
                await self.migrate()
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK_KEY,))

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")

    async def run(self, statements: list[Statement]) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            for sql, params in statements:
                await conn.execute(self._sql(sql), params)

    async def run_fenced(self, guard: Statement, statements: list[Statement]) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            if await (await conn.execute(self._sql(guard[0]), guard[1])).fetchone() is None:
                raise LeaseLost(guard[1][0])  # leaving the block rolls back: nothing written
            for sql, params in statements:
                await conn.execute(self._sql(sql), params)

    async def fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        from psycopg.rows import tuple_row

        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(self._sql(sql), params)
            return await cur.fetchall()

    async def copy_checkpoints(self, source: str, target: str) -> None:
        await self.run([
            (_COPY_CHECKPOINTS, (target, source)),
            ("INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, "
             "blob) SELECT ?, checkpoint_ns, channel, version, type, blob FROM "
             "checkpoint_blobs WHERE thread_id = ?", (target, source)),
            ("INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, "
             "task_id, task_path, idx, channel, type, blob) SELECT ?, checkpoint_ns, "
             "checkpoint_id, task_id, task_path, idx, channel, type, blob FROM "
             "checkpoint_writes WHERE thread_id = ?", (target, source))])

    _WRITES_TABLE = "checkpoint_writes"
    _RUN_ID = "metadata->>'run_id'"


def database_for(uri: str) -> SqliteDatabase | PostgresDatabase:
    """The database a `postgres://` URI or a SQLite path (`:memory:` included) names."""
    return PostgresDatabase(uri) if is_postgres_uri(uri) else SqliteDatabase(uri)
