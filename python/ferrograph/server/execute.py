"""Running runs: one asyncio task per run, one run at a time per thread (later runs wait:
LangGraph's `enqueue`), the graph's `astream` (or, for `stream_mode="events"`, its
`astream_events`) turned into LangGraph's server events, and the
events handed to whoever listens (the creating request's stream, `join_stream`), the final
result to whoever waits (`wait`, `join`). Cancelling a run cancels its task, which closes
the graph's stream (the engine stops the run and cancels its nodes).

Run records are written to the database at each change of status. A run the server stops
during (shutdown) goes back to `pending`, as LangGraph's worker returns a run it lost to the
queue; the next server on the same database runs it again as its next attempt (`restore`),
with the same `run_id`, so the graph resumes from the run's last checkpoint rather than
re-running the nodes whose writes were saved."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ferrograph.server.auth import AuthUser
from ferrograph.server.database import LeaseLost, Statement
from ferrograph.server.graphs import ServedGraph
from ferrograph.server.state import interrupt_json
from ferrograph.server.storage import RunRecord, RunStore, Thread, ThreadStore
from ferrograph.server.wire import error_body, event_id_key, now, sse_frame

logger = logging.getLogger("ferrograph.server")

END = object()
"""What a listener's queue gets after the run's last event."""

NODES_KEY = "ferrograph_nodes"
TAGS_KEY = "ferrograph_tags"
"""The run's `config.configurable` keys of ferrograph's server-side filter: only items from
these nodes (and subgraph nodes as `parent/child`) or with these tags are produced, exactly as
`stream(..., nodes=..., tags=...)` (see README, "Server")."""

MAX_ATTEMPTS = 3
"""Starts a run gets before a restart fails it instead (LangGraph's BG_JOB_MAX_RETRIES)."""


@dataclass
class RunSpec:
    """What a run executes: the request, resolved against its assistant and thread."""

    served: ServedGraph
    input: Any
    command: dict[str, Any] | None
    config: dict[str, Any]
    context: Any
    stream_modes: list[str]
    subgraphs: bool
    interrupt_before: Any
    interrupt_after: Any
    durability: str | None
    nodes: list[str] | None
    tags: list[str] | None
    temporary: bool
    """A stateless run's thread, deleted when the run ends."""
    after_seconds: float = 0
    """`after_seconds`: the run stays `pending` that long before it starts."""
    resumable: bool = False
    """`stream_resumable`: events keep ids and stay for a later `join_stream` to replay."""


@dataclass
class RunTask:
    """A run while the server holds it: its record, spec, listeners and outcome."""

    record: RunRecord
    spec: RunSpec | None
    """None for a run that ended before this server started (read from the database)."""
    listeners: list[asyncio.Queue] = field(default_factory=list)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    result: Any = None
    """The `wait`/`join` body: the last values (with `__interrupt__`), `{"__error__": ...}`
    after a failure, `{}` when cancelled before any values."""
    task: asyncio.Task | None = None
    cancel_reason: str | None = None
    rollback: bool = False
    """Cancelled with `action="rollback"`: the run and its checkpoints are deleted."""
    history: list[tuple[tuple[int, int], str, bytes]] = field(default_factory=list)
    """A resumable run's events so far: `(id key, event, frame)`."""
    lost: bool = False
    """Another server took the run over (this one's lease on it ran out, `shared.py`):
    stopped without writing or relaying anything more about it."""
    start_written: asyncio.Future | None = None
    """The write of its start (running, its thread busy), under way while the graph starts."""
    fence: int = 0
    """The fencing token of this server's claim on the run (`shared.py`): its writes about
    the run hold only while the run's row still has it."""
    _sequence: int = 0

    def subscribe(self, last_event_id: str | None = None,
                  from_start: bool = False) -> asyncio.Queue:
        """A queue of the run's events from now on; with `last_event_id` (a resumable run)
        first those stored after that id (`-1`: all of them). `from_start`: the stream of
        the request that created the run (here, nothing was published before it)."""
        queue: asyncio.Queue = asyncio.Queue()
        if last_event_id is not None:
            after = event_id_key(last_event_id)
            for key, event, frame in self.history:
                if key > after:
                    queue.put_nowait((event, frame))
        if self.finished.is_set():
            queue.put_nowait(END)
        else:
            self.listeners.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        with contextlib.suppress(ValueError):
            self.listeners.remove(queue)

    def publish(self, event: str, data: Any) -> None:
        if self.spec is not None and self.spec.resumable and self._kept(event):
            event_id = self._next_event_id()
            frame = sse_frame(event, data, event_id)
            self.history.append((event_id_key(event_id), event, frame))
        elif not self.listeners:
            return
        else:
            frame = sse_frame(event, data)
        for queue in self.listeners:
            queue.put_nowait((event, frame))

    def _next_event_id(self) -> str:
        """ids LangGraph's way (`<epoch ms>-<n>`), but with a sequence that makes them
        unique within a millisecond (LangGraph's in-memory server always uses 0)."""
        self._sequence += 1
        return f"{time.time_ns() // 1_000_000}-{self._sequence}"

    def _kept(self, event: str) -> bool:
        """Whether a resumable run stores `event` for replay: as LangGraph's server, only
        those of the requested modes (and `metadata`), not e.g. the `error` event."""
        mode = event.split("|", 1)[0]
        modes = self.spec.stream_modes
        return mode in modes or mode == "metadata" or (
            mode == "messages" and "messages-tuple" in modes)

    def cancel(self, reason: str, rollback: bool = False) -> None:
        """Cancels the run's task, once (a second request finds it already cancelling)."""
        if self.cancel_reason is None and self.task is not None and not self.task.done():
            self.cancel_reason = reason
            self.rollback = rollback
            self.task.cancel()


class EventShaper:
    """The graph's stream items as LangGraph's server names and shapes them: the requested
    modes (`messages-tuple` is the engine's `messages`; `messages` becomes
    `messages/metadata` + `messages/partial` | `messages/complete`), subgraph namespaces in
    the event name (`updates|child:<task id>`)."""

    def __init__(self, requested: list[str], subgraphs: bool) -> None:
        self.requested = set(requested)
        # `events` is no mode of the graph's stream: `astream_events` drives such a run
        self.wants_events = "events" in self.requested
        self.subgraphs = subgraphs
        self.messages: dict[str, Any] = {}
        self.last_values: Any = None

    def engine_modes(self) -> list[str]:
        modes = {"messages" if m == "messages-tuple" else m for m in self.requested
                 if m != "events"}
        modes.add("values")  # the `wait`/`join` result is the run's last values
        return sorted(modes)

    def shape(self, item: Any) -> list[tuple[str, Any]]:
        if self.subgraphs:
            ns, mode, chunk = item
        else:
            (mode, chunk), ns = item, ()
        suffix = "|" + "|".join(ns) if ns else ""
        if mode == "values" and not ns:
            self.last_values = chunk
        if mode == "messages":
            out = []
            if "messages-tuple" in self.requested:
                out.append(("messages" + suffix, chunk))
            if "messages" in self.requested:
                out.extend(self._v1_messages(chunk, suffix))
            return out
        if mode in self.requested:
            return [(mode + suffix, chunk)]
        return []

    def _v1_messages(self, chunk: Any, suffix: str) -> list[tuple[str, Any]]:
        from langchain_core.messages import BaseMessageChunk, message_chunk_to_message

        message, metadata = chunk
        out = []
        if message.id in self.messages:
            self.messages[message.id] += message
        else:
            self.messages[message.id] = message
            out.append(("messages/metadata" + suffix, {message.id: {"metadata": metadata}}))
        kind = "messages/partial" if isinstance(message, BaseMessageChunk) else "messages/complete"
        out.append((kind + suffix, [message_chunk_to_message(self.messages[message.id])]))
        return out


class Runner:
    """Starts, tracks and cancels runs; owns their tasks (`close` ends them all)."""

    def __init__(self, threads: ThreadStore, run_store: RunStore, saver: Any) -> None:
        self.threads = threads
        self.run_store = run_store
        self.saver = saver
        self.runs: dict[str, RunTask] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.closing = False

    def active_runs(self, thread_id: str) -> list[RunTask]:
        return [r for r in self.runs.values() if r.record.thread_id == thread_id
                and r.record.status in ("pending", "running")]

    async def start(self, record: RunRecord, spec: RunSpec,
                    changes: list[Statement] | None = None) -> RunTask:
        """Records the run (with `changes`, e.g. its new thread, in the same batch) and
        starts it."""
        record.rerun = rerun_json(spec)
        await self.threads.db.run([*(changes or ()), *self.run_store.changes(record)])
        run = RunTask(record, spec)
        self.runs[record.run_id] = run
        run.task = asyncio.get_running_loop().create_task(self._execute(run))
        return run

    async def forget(self, run_id: str) -> None:
        """Drops a finished run (`DELETE` of a run, a rollback)."""
        self.runs.pop(run_id, None)
        await self.run_store.delete(run_id)

    async def restore(self, graphs: dict[str, ServedGraph]) -> None:
        """The runs of earlier servers on this database: those that ended, to show; those
        pending or running when their server stopped, started again (the next attempt)."""
        for record in await self.run_store.load():
            if record.status not in ("pending", "running"):
                run = RunTask(record, None)
                thread = self.threads.get(record.thread_id)
                run.result = record.result if record.result is not None else (
                    thread.values if thread is not None and thread.values else {})
                run.finished.set()
                self.runs[record.run_id] = run
                continue
            spec = _spec_from(record, graphs)
            if spec is not None and record.attempt < MAX_ATTEMPTS:
                record.status = "pending"
                await self.start(record, spec)
                continue
            self.runs[record.run_id] = await self.fail_unrunnable(record, spec is not None)

    async def fail_unrunnable(self, record: RunRecord, served: bool,
                              fence: int = 0) -> RunTask:
        """Fails a run that may not start again: it has had its `MAX_ATTEMPTS`, or its
        graph is not served (`served` False). `fence`: the claim's token (`shared.py`)."""
        failure = RuntimeError(
            f"Run {record.run_id} exceeded max attempts ({MAX_ATTEMPTS})." if served else
            f"Run {record.run_id} was not restarted: its graph is not served.")
        logger.error("%s", failure)
        run = RunTask(record, None, fence=fence)
        run.result = record.result = {"__error__": error_body(failure)}
        record.status, record.updated_at = "error", now()
        changes = self.run_store.changes(record)
        thread = self.threads.get(record.thread_id)
        if thread is not None:  # as LangGraph's worker fails such a run
            thread.status, thread.error = "error", error_body(failure)
            changes += self.threads.changes(thread)
        await self._write(run, changes)
        run.finished.set()
        return run

    async def close(self) -> None:
        """Stops every run (the server is stopping): running and pending runs are left
        `pending` in the database, for the next server to run (see the module doc)."""
        self.closing = True
        tasks = [r.task for r in self.runs.values() if r.task and not r.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _stopped_by_shutdown(self, run: RunTask) -> bool:
        """Stopped by no client (the server is stopping), or another took the run over
        (whatever a client asked of it is then the other's to do)."""
        return run.lost or (self.closing and run.cancel_reason is None)

    async def _write(self, run: RunTask, statements: list[Statement]) -> None:
        """Writes what the run changed (its record, its thread) in one transaction; in a
        cluster only while the run is still this server's (`shared.py`: else `LeaseLost`)."""
        await self.threads.db.run(statements)

    def _saver_for(self, run: RunTask) -> Any:
        """The checkpointer the run's graph writes with."""
        return self.saver

    async def _execute(self, run: RunTask) -> None:
        record, spec = run.record, run.spec
        assert spec is not None
        lock = self._locks.setdefault(record.thread_id, asyncio.Lock())
        requeued = False
        try:
            if spec.after_seconds > 0:
                await asyncio.sleep(spec.after_seconds)  # a scheduled run
            async with lock:
                await self._run_graph(run)
            requeued = run.lost
        except asyncio.CancelledError:
            requeued = self._stopped_by_shutdown(run)
            if record.status == "pending" and not requeued:  # cancelled waiting for the thread
                record.status = "interrupted"
                run.result = record.result = {}
                record.updated_at = now()
                with contextlib.suppress(LeaseLost):
                    await self._write(run, self.run_store.changes(record))
        except LeaseLost:
            requeued = True  # another server's run now: nothing more is written here
        finally:
            for queue in run.listeners:
                queue.put_nowait(END)
            run.listeners.clear()
            run.finished.set()
            if spec.temporary and not requeued:
                await self._delete_temporary(run)
            if run.rollback and not run.lost:
                await self.forget(record.run_id)
            if not self.active_runs(record.thread_id):
                self._locks.pop(record.thread_id, None)

    def _abandons(self, run: RunTask, failure: Exception) -> bool:
        """Whether the run stops without an outcome after `failure` (for another attempt
        elsewhere: `shared.py`); a single server reports every failure."""
        return False

    async def _delete_temporary(self, run: RunTask) -> None:
        """A stateless run ended: its thread goes (with its checkpoints and runs)."""
        await self.threads.delete(run.record.thread_id)

    async def _run_graph(self, run: RunTask) -> None:
        """Runs the graph, then records the thread's outcome; only then does the run show
        its final status (a client that sees it finished sees the thread updated)."""
        record, spec = run.record, run.spec
        assert spec is not None
        thread = self.threads.get(record.thread_id)
        record.status = "running"
        record.attempt += 1
        record.updated_at = now()
        spec.config["metadata"]["run_attempt"] = record.attempt
        changes = self.run_store.changes(record)
        if thread is not None:
            thread.status = "busy"
            changes += self.threads.changes(thread)
        # Written while the graph starts, not before (a first token sooner); awaited before
        # anything else is written about the run, so the database sees the changes in order.
        started = run.start_written = asyncio.ensure_future(self._write(run, changes))
        began = time.monotonic()
        shaper = EventShaper(spec.stream_modes, spec.subgraphs)
        failure: BaseException | None = None
        graph = None
        try:
            run.publish("metadata", {"run_id": record.run_id, "attempt": record.attempt})
            graph = await spec.served.build(spec.config,
                                            None if spec.temporary else self._saver_for(run))
            kwargs: dict[str, Any] = {"stream_mode": shaper.engine_modes(),
                                      "subgraphs": spec.subgraphs}
            for name in ("interrupt_before", "interrupt_after", "durability", "context",
                         "nodes", "tags"):
                if getattr(spec, name) is not None:
                    kwargs[name] = getattr(spec, name)
            graph_input = _command(spec.command) if spec.command else spec.input
            if shaper.wants_events:
                await self._stream_events(run, shaper, graph, graph_input, kwargs)
            else:
                stream = graph.astream(graph_input, spec.config, **kwargs)
                async with contextlib.aclosing(stream):
                    async for item in stream:
                        for event, data in shaper.shape(item):
                            run.publish(event, data)
            status = "success"
            run.result = shaper.last_values if shaper.last_values is not None else {}
        except asyncio.CancelledError:
            if self._stopped_by_shutdown(run):
                # the thread stays busy, its checkpoints as they are: the next server runs
                # the run again (a new attempt)
                await asyncio.shield(started)
                if not run.lost:  # a run another server took over is its now
                    record.status, record.updated_at = "pending", now()
                    await self._write(run, self.run_store.changes(record))
                raise
            status = "interrupted"
            run.result = shaper.last_values if shaper.last_values is not None else {}
            failure = _UserInterrupt(run.cancel_reason or "run cancelled")
        except Exception as e:  # the graph failed: reported to clients, not raised
            if self._abandons(run, e):
                # left as it is for another attempt (`lost`): nothing more is written
                started.add_done_callback(lambda f: f.cancelled() or f.exception())
                return
            logger.exception("run %s failed", record.run_id)
            status = "error"
            run.result = {"__error__": error_body(e)}
            run.publish("error", error_body(e))
            failure = e
        try:
            await asyncio.shield(started)
            if run.rollback and thread is not None and not spec.temporary:
                # the run's checkpoints (known by the `run_id` in their metadata) go
                await self._write(run, self.threads.db.run_checkpoints_deletion(
                    thread.thread_id, record.run_id))
                failure = None  # as if the run had not been
            if thread is not None and not spec.temporary:
                await self._after_run(run, status, thread, graph, failure)
        finally:
            if not run.lost:  # else another server's now: its outcome is the other's
                record.status, record.updated_at, record.result = status, now(), run.result
                logger.info("run %s of %s on thread %s: %s after %.0f ms (attempt %d)",
                            record.run_id, spec.served.graph_id,
                            "(stateless)" if spec.temporary else record.thread_id, status,
                            (time.monotonic() - began) * 1000, record.attempt)
                if not run.rollback:
                    await self._write(run, self.run_store.changes(record))

    @staticmethod
    async def _stream_events(run: RunTask, shaper: EventShaper, graph: Any, graph_input: Any,
                             kwargs: dict[str, Any]) -> None:
        """A run asked for `events`: as LangGraph's server, the graph's `astream_events`
        (v2) drives it; the graph's own stream items (its root run's `on_chain_stream`)
        become the other modes' events, every other event goes out whole as `events`
        (never namespaced; those tagged `langsmith:hidden` not at all)."""
        root = run.record.run_id
        stream = graph.astream_events(graph_input, run.spec.config, version="v2", **kwargs)
        async with contextlib.aclosing(stream):
            async for event in stream:
                if "langsmith:hidden" in (event.get("tags") or ()):
                    continue
                if event["event"] == "on_chain_stream" and event["run_id"] == root:
                    for name, data in shaper.shape(event["data"]["chunk"]):
                        run.publish(name, data)
                else:
                    run.publish("events", event)

    async def _after_run(self, run: RunTask, status: str, thread: Thread, graph: Any,
                         failure: BaseException | None) -> None:
        """The thread after a run: its graph and assistant, values, interrupts, status."""
        spec = run.spec
        thread.metadata.setdefault("graph_id", spec.served.graph_id)
        thread.metadata.setdefault("assistant_id", spec.config["configurable"]["assistant_id"])
        next_nodes: tuple[str, ...] = ()
        if graph is not None:
            try:
                state = await graph.aget_state(
                    {"configurable": {"thread_id": thread.thread_id}})
            except Exception:  # noqa: BLE001 - the thread keeps its last known state
                state = None
            if state is not None:
                if spec.nodes is not None and isinstance(state.values, dict) and \
                        status == "success":
                    # with a node filter the last `values` item may predate the last
                    # steps: the result is the thread's state
                    run.result = {**state.values, **({"__interrupt__": list(
                        state.interrupts)} if state.interrupts else {})}
                thread.values = state.values
                thread.interrupts = {t.id: [interrupt_json(i) for i in t.interrupts]
                                     for t in state.tasks if t.interrupts}
                next_nodes = state.next
                thread.state_updated_at = now()
        thread.error = error_body(failure) if failure is not None else None
        thread.status = ("error" if failure is not None and not isinstance(
            failure, _UserInterrupt) else "interrupted" if next_nodes else "idle")
        await self._write(run, self.threads.changes(thread))


class _UserInterrupt(Exception):
    """A run cancelled by a client (LangGraph's server names it `UserInterrupt`)."""


_UserInterrupt.__name__ = "UserInterrupt"


def _command(command: dict[str, Any]) -> Any:
    """A run's `command` as LangGraph's server makes it: `goto` a list (of node names and
    `Send`s) or None, an `update` of `[key, value]` pairs as tuples."""
    from ferrograph.types import Command, Send

    goto = command.get("goto")
    if goto is not None and not isinstance(goto, list):
        goto = [goto]
    update = command.get("update")
    if isinstance(update, list) and all(
            isinstance(u, list) and len(u) == 2 and isinstance(u[0], str) for u in update):
        update = [tuple(u) for u in update]
    return Command(resume=command.get("resume"), update=update,
                   goto=[g if isinstance(g, str) else Send(g["node"], g["input"])
                         for g in goto] if goto else None)


def rerun_json(spec: RunSpec) -> dict[str, Any]:
    """What a run needs to run again, besides its record's `kwargs`."""
    return {"graph_id": spec.served.graph_id, "durability": spec.durability,
            "nodes": spec.nodes, "tags": spec.tags, "after_seconds": spec.after_seconds}


def _spec_from(record: RunRecord, graphs: dict[str, ServedGraph]) -> RunSpec | None:
    """The spec of a run read back from the database (None when its graph is not served).
    Its config has no `run_id` (the tracers' id of a later attempt is a new one, as under
    LangGraph); `metadata.run_id` is kept, so the graph resumes the run."""
    served = graphs.get(record.rerun.get("graph_id", ""))
    if served is None:
        return None
    kwargs, rerun = record.kwargs, record.rerun
    config = {k: v for k, v in kwargs["config"].items() if k != "run_id"}
    configurable = config.get("configurable") or {}
    if isinstance(configurable.get("langgraph_auth_user"), dict):
        # the caller, stored as JSON, is a user again (as LangGraph's worker makes it)
        config["configurable"] = {**configurable, "langgraph_auth_user": AuthUser(
            configurable["langgraph_auth_user"])}
    scheduled_at = record.created_at.timestamp() + (rerun.get("after_seconds") or 0)
    return RunSpec(
        served=served, input=kwargs.get("input"), command=kwargs.get("command"),
        config=config, context=kwargs.get("context") or None,
        stream_modes=kwargs.get("stream_mode") or ["values"],
        subgraphs=bool(kwargs.get("subgraphs")),
        interrupt_before=kwargs.get("interrupt_before"),
        interrupt_after=kwargs.get("interrupt_after"), durability=rerun.get("durability"),
        nodes=rerun.get("nodes"), tags=rerun.get("tags"),
        temporary=bool(kwargs.get("temporary")), resumable=bool(kwargs.get("resumable")),
        after_seconds=max(0.0, scheduled_at - time.time()))
