"""What the server keeps besides checkpoints: assistants (the system assistant of each graph,
and those clients create), threads and runs, each in memory and written through to a table of
the server's database (`database.py`: SQLite or PostgreSQL), from which a restarted server
reads them back. Checkpoints themselves are the LangGraph saver's."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ferrograph.server.database import Database, Statement, upsert
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


_ASSISTANT_COLUMNS = ("assistant_id", "created_at", "updated_at", "version", "versions")


class AssistantStore:
    """Assistants in memory: the graphs' system assistants (made anew at each start) and
    those clients create, which are written through, with their versions, to the table
    `ferrograph_assistants`."""

    def __init__(self, db: Database, system: dict[str, Assistant]) -> None:
        self.db = db
        self._system = system
        self.assistants = dict(system)

    async def open(self) -> None:
        rows = await self.db.fetchall(
            f"SELECT {', '.join(_ASSISTANT_COLUMNS)} FROM ferrograph_assistants")
        for assistant_id, created, updated, version, versions in rows:
            kept = loads(versions)
            assistant = Assistant(assistant_id, "", datetime.fromisoformat(created), name="",
                                  versions=kept)
            assistant.restore(version)
            assistant.updated_at = datetime.fromisoformat(updated)
            self.assistants[assistant_id] = assistant

    async def refresh(self) -> None:
        """Reads them again (several servers share the database: another may have changed
        them). The system assistants stay those made at start."""
        self.assistants = dict(self._system)
        await self.open()

    async def save(self, assistant: Assistant) -> None:
        self.assistants[assistant.assistant_id] = assistant
        await self.db.run([(upsert("ferrograph_assistants", _ASSISTANT_COLUMNS, "assistant_id"),
                            (assistant.assistant_id, iso(assistant.created_at),
                             iso(assistant.updated_at or assistant.created_at),
                             assistant.version, dumps(assistant.versions).decode()))])

    async def delete(self, assistant_id: str) -> None:
        self.assistants.pop(assistant_id, None)
        await self.db.run([("DELETE FROM ferrograph_assistants WHERE assistant_id = ?",
                            (assistant_id,))])


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
    config: dict[str, Any] = field(default_factory=dict)
    """As LangGraph's server keeps it: set when a run is created on the thread while it is
    not busy (`api_runs.thread_config_for_run`)."""

    def to_json(self) -> dict[str, Any]:
        return {"thread_id": self.thread_id, "created_at": iso(self.created_at),
                "updated_at": iso(self.updated_at),
                "state_updated_at": iso(self.state_updated_at), "metadata": self.metadata,
                "status": self.status, "config": self.config, "values": self.values,
                "error": self.error, "interrupts": self.interrupts}

    @property
    def graph_id(self) -> str | None:
        return self.metadata.get("graph_id")


_THREAD_COLUMNS = ("thread_id", "created_at", "updated_at", "state_updated_at", "metadata",
                   "status", "state_values", "interrupts", "error", "config")


class ThreadStore:
    """Threads in memory, each change written through to the table `ferrograph_threads`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.threads: dict[str, Thread] = {}

    async def open(self) -> None:
        rows = await self.db.fetchall(
            f"SELECT {', '.join(_THREAD_COLUMNS)} FROM ferrograph_threads")
        for row in rows:
            thread = _thread_from_row(row)
            if thread.status == "busy":  # busy again once its re-queued run starts
                thread.status = "idle"
            self.threads[thread.thread_id] = thread

    async def refresh(self, thread_id: str | None = None) -> None:
        """Reads the thread (every thread: None) again from the database, which several
        servers share (`cluster.py`); one no longer there is dropped."""
        where, params = ("WHERE thread_id = ?", (thread_id,)) if thread_id else ("", ())
        rows = await self.db.fetchall(
            f"SELECT {', '.join(_THREAD_COLUMNS)} FROM ferrograph_threads {where}", params)
        found = {row[0]: _thread_from_row(row) for row in rows}
        if thread_id is None:
            self.threads = found
        elif thread_id in found:
            self.threads[thread_id] = found[thread_id]
        else:
            self.threads.pop(thread_id, None)

    def get(self, thread_id: str) -> Thread | None:
        return self.threads.get(thread_id)

    async def save(self, thread: Thread) -> None:
        await self.db.run(self.changes(thread))

    def changes(self, thread: Thread) -> list[Statement]:
        """Records `thread` as changed now: in memory at once, and the statements that
        write it (for `save`, or with others in one `Database.run`)."""
        thread.updated_at = now()
        self.threads[thread.thread_id] = thread
        row = (thread.thread_id, iso(thread.created_at), iso(thread.updated_at),
               iso(thread.state_updated_at), dumps(thread.metadata).decode(), thread.status,
               dumps(thread.values).decode(), dumps(thread.interrupts).decode(),
               dumps(thread.error).decode(), dumps(thread.config).decode())
        return [(upsert("ferrograph_threads", _THREAD_COLUMNS, "thread_id"), row)]

    async def delete(self, thread_id: str) -> None:
        """The thread, its runs' records and its checkpoints."""
        self.threads.pop(thread_id, None)
        await self.db.run([("DELETE FROM ferrograph_threads WHERE thread_id = ?", (thread_id,)),
                           ("DELETE FROM ferrograph_runs WHERE thread_id = ?", (thread_id,))])
        await self.db.saver.adelete_thread(thread_id)

    async def copy_checkpoints(self, source: str, target: str) -> None:
        """Every checkpoint and pending write of thread `source`, under thread `target`
        (checkpoint ids unchanged, as LangGraph's server copies a thread)."""
        await self.db.copy_checkpoints(source, target)

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


def _thread_from_row(row: tuple[Any, ...]) -> Thread:
    (tid, created, updated, state_updated, metadata, status, values, interrupts, error,
     config) = row
    return Thread(tid, datetime.fromisoformat(created), datetime.fromisoformat(updated),
                  datetime.fromisoformat(state_updated), loads(metadata), status,
                  loads(values), loads(interrupts), loads(error),
                  loads(config) if config else {})


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
    attempt: int = 0
    """How many times the run has started: one the server stopped during is run again
    after a restart, as the next attempt (see `execute.Runner.restore`)."""
    rerun: dict[str, Any] = field(default_factory=dict)
    """What the run needs, besides `kwargs`, to run again (`execute.rerun_json`)."""
    result: Any = None
    """The `wait`/`join` body once the run ended (read back by other servers)."""

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "thread_id": self.thread_id,
                "assistant_id": self.assistant_id, "created_at": iso(self.created_at),
                "updated_at": iso(self.updated_at or self.created_at), "status": self.status,
                "metadata": self.metadata, "multitask_strategy": self.multitask_strategy,
                "kwargs": self.kwargs, "langsmith_session_name": None}


_RUN_COLUMNS = ("run_id", "thread_id", "assistant_id", "created_at", "updated_at", "status",
                "metadata", "kwargs", "multitask_strategy", "attempt", "rerun", "result")
RUN_SELECT = f"SELECT {', '.join(_RUN_COLUMNS)} FROM ferrograph_runs"
"""Every column of run records, for `run_from_row`."""


class RunStore:
    """Run records, written to the table `ferrograph_runs` at each change of status (the
    running runs themselves are `execute.Runner`'s)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def load(self, where: str = "", params: tuple[Any, ...] = ()) -> list[RunRecord]:
        """Every run kept (or those `where` selects), oldest first."""
        rows = await self.db.fetchall(f"{RUN_SELECT} {where} ORDER BY created_at", params)
        return [run_from_row(row) for row in rows]

    async def save(self, record: RunRecord) -> None:
        await self.db.run(self.changes(record))

    @staticmethod
    def changes(record: RunRecord) -> list[Statement]:
        """The statements that write `record` (for `save`, or with others in one
        `Database.run`)."""
        row = (record.run_id, record.thread_id, record.assistant_id, iso(record.created_at),
               iso(record.updated_at or record.created_at), record.status,
               dumps(record.metadata).decode(), dumps(record.kwargs).decode(),
               record.multitask_strategy, record.attempt, dumps(record.rerun).decode(),
               None if record.result is None else dumps(record.result).decode())
        return [(upsert("ferrograph_runs", _RUN_COLUMNS, "run_id"), row)]

    async def delete(self, run_id: str) -> None:
        await self.db.run([("DELETE FROM ferrograph_runs WHERE run_id = ?", (run_id,))])


def run_from_row(row: tuple[Any, ...]) -> RunRecord:
    """A run record from the columns of `RUN_SELECT` (or a `RETURNING` of them)."""
    (run_id, thread_id, assistant_id, created, updated, status, metadata, kwargs, strategy,
     attempt, rerun, result) = row
    return RunRecord(run_id, thread_id, assistant_id, datetime.fromisoformat(created),
                     loads(metadata), loads(kwargs), strategy, status,
                     datetime.fromisoformat(updated) if updated else None, attempt,
                     loads(rerun), None if result is None else loads(result))
