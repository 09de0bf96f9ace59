"""What the server keeps besides checkpoints: assistants (the system assistant of each graph,
and those clients create) and threads, each in memory and written through to a table in the
checkpoints' SQLite database, and runs (in memory: a run lives as long as the server).
Checkpoints themselves are the LangGraph saver's."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ferrograph.server.graphs import ServedGraph
from ferrograph.server.wire import dumps, iso, loads, now

THREAD_STATUSES = ("idle", "busy", "interrupted", "error")
RUN_STATUSES = ("pending", "running", "success", "error", "timeout", "interrupted")


@dataclass
class Assistant:
    assistant_id: str
    graph_id: str
    created_at: datetime
    name: str
    config: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=lambda: {"created_by": "system"})
    description: str | None = None
    version: int = 1

    updated_at: datetime | None = None
    versions: list[dict[str, Any]] = field(default_factory=list)
    """Every version, oldest first, as `AssistantVersion` objects."""

    def to_json(self) -> dict[str, Any]:
        return {"assistant_id": self.assistant_id, "graph_id": self.graph_id,
                "config": self.config, "context": self.context, "metadata": self.metadata,
                "name": self.name, "created_at": iso(self.created_at),
                "updated_at": iso(self.updated_at or self.created_at),
                "version": self.version, "description": self.description}

    def record_version(self) -> None:
        """Keeps the assistant as it is now as its version `self.version`."""
        self.updated_at = now()
        self.versions.append({
            "assistant_id": self.assistant_id, "version": self.version,
            "graph_id": self.graph_id, "config": self.config, "context": self.context,
            "metadata": self.metadata, "created_at": iso(self.updated_at), "name": self.name,
            "description": self.description})

    def restore(self, version: int) -> bool:
        """Makes `version` the current one; False if there is no such version."""
        for kept in self.versions:
            if kept["version"] == version:
                self.graph_id, self.config, self.context = (
                    kept["graph_id"], kept["config"], kept["context"])
                self.metadata, self.name, self.description = (
                    kept["metadata"], kept["name"], kept["description"])
                self.version, self.updated_at = version, now()
                return True
        return False


def system_assistants(graphs: dict[str, ServedGraph]) -> dict[str, Assistant]:
    """One assistant per graph, as LangGraph creates them at start (uuid5 of the graph id)."""
    at = now()
    return {g.assistant_id: Assistant(g.assistant_id, g.graph_id, at, name=g.graph_id)
            for g in graphs.values()}


class AssistantStore:
    """Assistants in memory: the graphs' system assistants (made anew at each start) and
    those clients create, which are written through, with their versions, to the table
    `ferrograph_assistants` on the saver's connection."""

    def __init__(self, saver: Any, system: dict[str, Assistant]) -> None:
        self.saver = saver
        self.assistants = dict(system)

    async def open(self) -> None:
        async with self.saver.lock:
            await self.saver.conn.execute(
                "CREATE TABLE IF NOT EXISTS ferrograph_assistants (assistant_id TEXT PRIMARY "
                "KEY, created_at TEXT, updated_at TEXT, version INTEGER, versions TEXT)")
            await self.saver.conn.commit()
            async with self.saver.conn.execute(
                    "SELECT assistant_id, created_at, updated_at, version, versions FROM "
                    "ferrograph_assistants") as cur:
                rows = await cur.fetchall()
        for assistant_id, created, updated, version, versions in rows:
            kept = loads(versions)
            assistant = Assistant(assistant_id, "", datetime.fromisoformat(created), name="",
                                  versions=kept)
            assistant.restore(version)
            assistant.updated_at = datetime.fromisoformat(updated)
            self.assistants[assistant_id] = assistant

    async def save(self, assistant: Assistant) -> None:
        self.assistants[assistant.assistant_id] = assistant
        async with self.saver.lock:
            await self.saver.conn.execute(
                "INSERT OR REPLACE INTO ferrograph_assistants VALUES (?, ?, ?, ?, ?)",
                (assistant.assistant_id, iso(assistant.created_at),
                 iso(assistant.updated_at or assistant.created_at), assistant.version,
                 dumps(assistant.versions).decode()))
            await self.saver.conn.commit()

    async def delete(self, assistant_id: str) -> None:
        self.assistants.pop(assistant_id, None)
        async with self.saver.lock:
            await self.saver.conn.execute(
                "DELETE FROM ferrograph_assistants WHERE assistant_id = ?", (assistant_id,))
            await self.saver.conn.commit()


@dataclass
class Thread:
    thread_id: str
    created_at: datetime
    updated_at: datetime
    state_updated_at: datetime
    metadata: dict[str, Any]
    status: str = "idle"
    values: Any = None
    interrupts: dict[str, Any] = field(default_factory=dict)
    error: Any = None

    def to_json(self) -> dict[str, Any]:
        return {"thread_id": self.thread_id, "created_at": iso(self.created_at),
                "updated_at": iso(self.updated_at),
                "state_updated_at": iso(self.state_updated_at), "metadata": self.metadata,
                "status": self.status, "config": {}, "values": self.values,
                "error": self.error, "interrupts": self.interrupts}

    @property
    def graph_id(self) -> str | None:
        return self.metadata.get("graph_id")


_THREAD_COLUMNS = ("thread_id", "created_at", "updated_at", "state_updated_at", "metadata",
                   "status", "state_values", "interrupts", "error")


class ThreadStore:
    """Threads in memory, each change written through to the table `ferrograph_threads` on
    the saver's own aiosqlite connection (so `:memory:` keeps both in one database and a
    file never has two writers)."""

    def __init__(self, saver: Any) -> None:
        self.saver = saver
        self.threads: dict[str, Thread] = {}

    async def open(self) -> None:
        await self.saver.setup()
        async with self.saver.lock:
            await self.saver.conn.execute(
                "CREATE TABLE IF NOT EXISTS ferrograph_threads (thread_id TEXT PRIMARY KEY, "
                "created_at TEXT, updated_at TEXT, state_updated_at TEXT, metadata TEXT, "
                "status TEXT, state_values TEXT, interrupts TEXT, error TEXT)")
            await self.saver.conn.commit()
            async with self.saver.conn.execute(
                    f"SELECT {', '.join(_THREAD_COLUMNS)} FROM ferrograph_threads") as cur:
                rows = await cur.fetchall()
        for row in rows:
            (tid, created, updated, state_updated, metadata, status, values, interrupts,
             error) = row
            self.threads[tid] = Thread(
                tid, datetime.fromisoformat(created), datetime.fromisoformat(updated),
                datetime.fromisoformat(state_updated), loads(metadata),
                # a thread busy when the server stopped has no run any more
                "idle" if status == "busy" else status, loads(values), loads(interrupts),
                loads(error))

    def get(self, thread_id: str) -> Thread | None:
        return self.threads.get(thread_id)

    async def save(self, thread: Thread) -> None:
        thread.updated_at = now()
        self.threads[thread.thread_id] = thread
        row = (thread.thread_id, iso(thread.created_at), iso(thread.updated_at),
               iso(thread.state_updated_at), dumps(thread.metadata).decode(), thread.status,
               dumps(thread.values).decode(), dumps(thread.interrupts).decode(),
               dumps(thread.error).decode())
        async with self.saver.lock:
            await self.saver.conn.execute(
                f"INSERT OR REPLACE INTO ferrograph_threads ({', '.join(_THREAD_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_THREAD_COLUMNS))})", row)
            await self.saver.conn.commit()

    async def delete(self, thread_id: str) -> None:
        self.threads.pop(thread_id, None)
        async with self.saver.lock:
            await self.saver.conn.execute(
                "DELETE FROM ferrograph_threads WHERE thread_id = ?", (thread_id,))
            await self.saver.conn.commit()
        await self.saver.adelete_thread(thread_id)

    async def copy_checkpoints(self, source: str, target: str) -> None:
        """Every checkpoint and pending write of thread `source`, under thread `target`
        (checkpoint ids unchanged, as LangGraph's server copies a thread)."""
        async with self.saver.lock:
            await self.saver.conn.execute(
                "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
                "parent_checkpoint_id, type, checkpoint, metadata) SELECT ?, checkpoint_ns, "
                "checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata FROM "
                "checkpoints WHERE thread_id = ?", (target, source))
            await self.saver.conn.execute(
                "INSERT INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, "
                "task_path, idx, channel, type, value) SELECT ?, checkpoint_ns, checkpoint_id, "
                "task_id, task_path, idx, channel, type, value FROM writes WHERE thread_id = ?",
                (target, source))
            await self.saver.conn.commit()

    async def delete_run_checkpoints(self, thread_id: str, run_id: str) -> None:
        """Removes the checkpoints a run wrote (and their pending writes): a rollback. The
        run is known by the `run_id` every checkpoint's metadata records."""
        where = ("thread_id = ? AND json_extract(CAST(metadata AS TEXT), '$.run_id') = ?")
        async with self.saver.lock:
            await self.saver.conn.execute(
                f"DELETE FROM writes WHERE thread_id = ? AND checkpoint_id IN "
                f"(SELECT checkpoint_id FROM checkpoints WHERE {where})",
                (thread_id, thread_id, run_id))
            await self.saver.conn.execute(f"DELETE FROM checkpoints WHERE {where}",
                                          (thread_id, run_id))
            await self.saver.conn.commit()

    def search(self, *, metadata: dict[str, Any] | None = None,
               values: dict[str, Any] | None = None, ids: list[str] | None = None,
               status: str | None = None, sort_by: str = "created_at",
               sort_order: str = "desc") -> list[Thread]:
        found = [t for t in self.threads.values()
                 if (not ids or t.thread_id in ids)
                 and (status is None or t.status == status)
                 and _contains(t.metadata, metadata)
                 and (not values or (isinstance(t.values, dict) and _contains(t.values, values)))]
        found.sort(key=lambda t: getattr(t, sort_by), reverse=sort_order != "asc")
        return found


def _contains(have: dict[str, Any], wanted: dict[str, Any] | None) -> bool:
    """JSONB `@>` as the server's search uses it: every wanted key with an equal value."""
    return not wanted or all(k in have and have[k] == v for k, v in wanted.items())


@dataclass
class RunRecord:
    """A run as the API shows it; the running part is `execute.RunTask`."""

    run_id: str
    thread_id: str
    assistant_id: str
    created_at: datetime
    metadata: dict[str, Any]
    kwargs: dict[str, Any]
    multitask_strategy: str
    status: str = "pending"
    updated_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "thread_id": self.thread_id,
                "assistant_id": self.assistant_id, "created_at": iso(self.created_at),
                "updated_at": iso(self.updated_at or self.created_at), "status": self.status,
                "metadata": self.metadata, "multitask_strategy": self.multitask_strategy,
                "kwargs": self.kwargs, "langsmith_session_name": None}
