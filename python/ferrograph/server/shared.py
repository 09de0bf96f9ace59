"""Several `ferrograph serve` instances on one PostgreSQL and one Redis (`REDIS_URI`): any
instance takes any request, any instance's workers run any run.

- PostgreSQL is the source of truth: runs, threads, assistants, checkpoints. The queue is
  the runs table: a worker claims the oldest due `pending` run of a thread that has no run
  going (`FOR UPDATE SKIP LOCKED`), which makes it `running` with this instance as `owner`
  and a lease (`lease_until`, the database's clock). A queue in PostgreSQL loses nothing when
  Redis restarts, and a claim is one row write.
- The owner renews its leases every third of their length (`FERROGRAPH_LEASE_SECONDS`). A
  run whose lease ran out (its worker died) is claimable again: the next worker runs it as
  its next attempt with the same run id, so the graph resumes from the run's last checkpoint
  with the pending writes of the tasks that finished (`pregel/_thread_start.py`), as after a
  restart; `MAX_ATTEMPTS` still bounds it.
- Fencing: each claim adds one to the run's `fence`. Every write a worker makes about a run
  (its record, its thread, its checkpoints and pending writes: `FencedSaver`) is one
  transaction that first locks the run's row and finds its own token there, and its events
  go to Redis with the token too (`cluster.RelayWriter`). A worker paused past its lease (a
  long GC, SIGSTOP) while another instance took the run over therefore writes nothing more:
  its first refused write marks the run `lost` and stops it quietly (no status, no events).
  It also relays only while its last renewal is younger than a lease, else it asks the
  database first (which closes the moment between another's claim and its first event).
- A cancel request is written on the run's row (`cancel`) and hinted through Redis; the
  owner cancels on the hint, or at its next renewal if the hint was lost.
- Requests read from PostgreSQL: `SharedReads` refreshes, before each request, what it
  reads (the path's thread and its runs, the assistants, ...), so the single-instance code
  of the routes runs unchanged on current data (one or two primary-key reads a request).
- A run's events go through a Redis stream (`cluster.py`) to whichever instance streams
  them; `RemoteRun` is the API's view of a run, wherever it executes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ferrograph.server.cluster import Cluster, RelayWriter, relay_events
from ferrograph.server.database import LeaseLost, Statement
from ferrograph.server.execute import (
    END,
    MAX_ATTEMPTS,
    Runner,
    RunSpec,
    RunTask,
    _spec_from,
    rerun_json,
)
from ferrograph.server.fencing import FENCE, caused_by, fenced_saver
from ferrograph.server.storage import RUN_SELECT, RunRecord, run_from_row
from ferrograph.server.wire import dumps, loads, parse_uuid, sse_frame

if TYPE_CHECKING:
    from ferrograph.server.app import ServerState
    from ferrograph.server.graphs import ServedGraph

logger = logging.getLogger("ferrograph.server")

POLL_SECONDS = 1.0
"""How often idle workers look at the queue, and waiters at their runs' status, without a
hint (Redis away, a hint lost)."""
FINAL = ("success", "error", "timeout", "interrupted")
STATELESS_KEPT_SECONDS = 3600
"""How long a stateless run's record outlives it (its `wait` may be on another instance)."""

_NOW = "extract(epoch FROM clock_timestamp())"
_CLAIM = f"""
UPDATE ferrograph_runs SET status = 'running', owner = ?, lease_until = {_NOW} + ?,
  fence = coalesce(fence, 0) + 1
WHERE run_id IN (
  SELECT r.run_id FROM ferrograph_runs r
  WHERE (r.status = 'pending' AND coalesce(r.not_before, 0) <= {_NOW}
         AND NOT EXISTS (
           SELECT 1 FROM ferrograph_runs o
           WHERE o.thread_id = r.thread_id AND o.run_id <> r.run_id
             AND (o.status = 'running' OR (o.status = 'pending' AND o.created_at < r.created_at
                                           AND coalesce(o.not_before, 0) <= {_NOW}))))
     OR (r.status = 'running' AND coalesce(r.lease_until, 0) < {_NOW})
  ORDER BY r.created_at LIMIT ?
  FOR UPDATE SKIP LOCKED)
RETURNING {RUN_SELECT.removeprefix("SELECT ").removesuffix(" FROM ferrograph_runs")}, fence"""
"""Claims up to `?` runs for this instance, oldest first: due pending runs of threads with
no run going (one per thread at a time, in order, as `enqueue`), and runs whose owner's
lease ran out. Each row: the record's columns, then the claim's fencing token."""

_RENEW = (f"UPDATE ferrograph_runs SET lease_until = {_NOW} + ? WHERE owner = ? AND "
          "status = 'running' AND run_id = ANY(?) RETURNING run_id, cancel")


@dataclass
class RelayedRun(RunTask):
    """A run this instance's worker executes: its events go to the run's Redis stream."""

    writer: RelayWriter | None = None
    held_until: float = 0.0
    """Until when (the loop's clock) the lease is surely held: a lease from when the last
    claim or renewal that found it was sent."""

    def publish(self, event: str, data: Any) -> None:
        if self.lost:
            return
        event_id = ""
        if self.spec.resumable and self._kept(event):
            event_id = self._next_event_id()
        self.writer.put(event, sse_frame(event, data, event_id or None), event_id)


@dataclass
class RemoteRun(RunTask):
    """The API's view of a run in a cluster, wherever it executes: its record (refreshed
    from PostgreSQL), its events read from Redis, `finished` once its status is final."""

    runner: SharedRunner | None = None
    created_here: bool = False
    """Created by this instance's request: the request's own stream (`from_start`) reads
    every event, whenever the worker started."""
    readers: dict[int, asyncio.Task] = field(default_factory=dict)

    def subscribe(self, last_event_id: str | None = None,
                  from_start: bool = False) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        from_start, self.created_here = self.created_here and from_start, False
        self.readers[id(queue)] = asyncio.get_running_loop().create_task(relay_events(
            self.runner.cluster, self.record.run_id, queue, END, self.finished,
            from_start=from_start, last_event_id=last_event_id))
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        reader = self.readers.pop(id(queue), None)
        if reader is not None:
            reader.cancel()

    def cancel(self, reason: str, rollback: bool = False) -> None:
        if self.cancel_reason is None and not self.finished.is_set():
            self.cancel_reason, self.rollback = reason, rollback
            self.runner.spawn(self.runner.request_cancel(self, reason, rollback))

    def update(self, record: RunRecord | None) -> None:
        """The run as PostgreSQL has it now (None: deleted, e.g. rolled back)."""
        if record is None:
            self.record.status = "interrupted" if self.record.status in (
                "pending", "running") else self.record.status
            self.result = {} if self.result is None else self.result
            self.finished.set()
            return
        self.record = record
        if record.status in FINAL:
            self.result = record.result if record.result is not None else {}
            self.finished.set()


class SharedRunner(Runner):
    """`Runner` for a cluster: `start` queues the run in PostgreSQL; this instance's workers
    (up to `capacity` runs at once) claim runs, run them with `Runner`'s code and relay their
    events; `runs` holds the API's views (`RemoteRun`)."""

    def __init__(self, threads: Any, run_store: Any, saver: Any, cluster: Cluster,
                 graphs: dict[str, ServedGraph], capacity: int, lease_seconds: float) -> None:
        super().__init__(threads, run_store, saver)
        self.cluster, self.graphs = cluster, graphs
        self.capacity, self.lease_seconds = capacity, lease_seconds
        self.db = threads.db
        self.executing: dict[str, RelayedRun] = {}
        self.wake = asyncio.Event()
        self._background: set[asyncio.Task] = set()
        self._timers: set[asyncio.Task] = set()
        """Hints to send when a scheduled run (`after_seconds`) is due."""
        self.claims = [0, 0]
        """Runs claimed here on a wake (a hint, a slot freed), and those found by the poll
        (a lease that ran out, a hint lost): logged at shutdown (benches/scaleout.py)."""
        self._loops: list[asyncio.Task] = []
        cluster.on_hint = self._on_hint

    def spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def restore(self, graphs: dict[str, ServedGraph]) -> None:
        """Nothing to restore: the queue and the leases bring back every unfinished run."""
        loop = asyncio.get_running_loop()
        self._loops = [loop.create_task(self._work()), loop.create_task(self._renew()),
                       loop.create_task(self._poll_views())]

    async def close(self) -> None:
        """Stops the loops and this instance's runs: they go back to `pending` for any
        instance to claim (`Runner._run_graph`)."""
        self.closing = True
        logger.info("runs claimed here: %d on a wake, %d found by the poll", *self.claims)
        for task in (*self._loops, *self._timers):
            task.cancel()
        for run in self.runs.values():
            if isinstance(run, RemoteRun):
                for reader in run.readers.values():
                    reader.cancel()
        tasks = [r.task for r in self.executing.values() if r.task and not r.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *self._loops, return_exceptions=True)
        if tasks:
            await self.cluster.hint("wake")
        await asyncio.gather(*self._background, return_exceptions=True)

    # -- the API's side ------------------------------------------------------------------

    async def start(self, record: RunRecord, spec: RunSpec,
                    changes: list[Any] | None = None) -> RunTask:
        """Queues the run (with `changes`, e.g. its new thread, in the same transaction)."""
        record.rerun = rerun_json(spec)
        await self.db.run([
            *(changes or ()), *self.run_store.changes(record),
            (f"UPDATE ferrograph_runs SET not_before = {_NOW} + ? WHERE run_id = ?",
             (spec.after_seconds, record.run_id))])
        view = RemoteRun(record, None, runner=self, created_here=True)
        self.runs[record.run_id] = view
        self.wake.set()
        await self.cluster.hint("wake")
        if spec.after_seconds > 0:  # the workers are woken when it is due too, not polled
            timer = asyncio.get_running_loop().create_task(self._hint_later(spec.after_seconds))
            self._timers.add(timer)
            timer.add_done_callback(self._timers.discard)
        return view

    async def _hint_later(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.wake.set()
        await self.cluster.hint("wake")

    async def refresh_runs(self, thread_id: str | None = None) -> None:
        """The views of the thread's runs (every run: None) as PostgreSQL has them."""
        where, params = ("WHERE thread_id = ?", (thread_id,)) if thread_id else ("", ())
        records = {r.run_id: r for r in await self.run_store.load(where, params)}
        for run_id, run in list(self.runs.items()):
            if thread_id is None or run.record.thread_id == thread_id:
                if run_id not in records:
                    self.runs.pop(run_id)
                    if isinstance(run, RemoteRun):
                        run.update(None)
        for record in records.values():
            self._view(record)

    def _view(self, record: RunRecord) -> RemoteRun:
        view = self.runs.get(record.run_id)
        if not isinstance(view, RemoteRun):
            view = RemoteRun(record, None, runner=self)
            self.runs[record.run_id] = view
        view.update(record)
        return view

    async def request_cancel(self, view: RemoteRun, reason: str, rollback: bool) -> None:
        """Cancels the run wherever it is: a run still queued here and now (no worker
        holds it), a claimed one by its owner (hinted; its lease renewal reads the row)."""
        run_id = view.record.run_id
        request = dumps({"reason": reason, "rollback": rollback}).decode()
        if rollback:
            queued = await self.db.fetchall(
                "DELETE FROM ferrograph_runs WHERE run_id = ? AND status = 'pending' "
                "RETURNING run_id", (run_id,))
        else:
            queued = await self.db.fetchall(
                "UPDATE ferrograph_runs SET status = 'interrupted', result = '{}', "
                "cancel = ? WHERE run_id = ? AND status = 'pending' RETURNING run_id",
                (request, run_id))
        if queued:
            await self.cluster.hint("done", run_id)
            return
        await self.db.run([("UPDATE ferrograph_runs SET cancel = ? WHERE run_id = ? AND "
                            "cancel IS NULL", (request, run_id))])
        await self.cluster.hint("cancel", run_id, reason=reason, rollback=rollback)

    def _on_hint(self, hint: dict[str, Any]) -> None:
        kind, run_id = hint.get("kind"), hint.get("run_id")
        if kind == "wake":
            self.wake.set()
        elif kind == "cancel" and run_id in self.executing:
            self.executing[run_id].cancel(hint.get("reason") or "run cancelled",
                                          rollback=bool(hint.get("rollback")))
        elif kind == "done":
            self.wake.set()  # its thread's next run may go
            view = self.runs.get(run_id)
            if isinstance(view, RemoteRun) and not view.finished.is_set():
                self.spawn(self._refresh_views([run_id]))

    async def _refresh_views(self, run_ids: list[str]) -> None:
        records = {r.run_id: r for r in await self.run_store.load(
            "WHERE run_id = ANY(?)", (run_ids,))}
        for run_id in run_ids:
            view = self.runs.get(run_id)
            if isinstance(view, RemoteRun):
                view.update(records.get(run_id))

    async def _poll_views(self) -> None:
        """The unfinished views' status, every `POLL_SECONDS` (in case a hint was lost)."""
        polls = 0
        while True:
            await asyncio.sleep(POLL_SECONDS)
            polls += 1
            if polls % 600 == 0:
                with contextlib.suppress(Exception):
                    await self._forget_stateless()
            waiting = [run_id for run_id, run in self.runs.items()
                       if isinstance(run, RemoteRun) and not run.finished.is_set()]
            if waiting:
                try:
                    await self._refresh_views(waiting)
                except Exception as e:  # noqa: BLE001 - the database is away: next time
                    logger.warning("runs' status not read: %s", e)

    # -- the workers' side ---------------------------------------------------------------

    async def _work(self) -> None:
        """Claims runs while this instance has room, then waits for a hint or the poll."""
        by_poll = False
        while True:
            self.wake.clear()
            while len(self.executing) < self.capacity:
                sent = asyncio.get_running_loop().time()
                try:
                    rows = await self.db.fetchall(_CLAIM, (
                        self.cluster.instance_id, self.lease_seconds,
                        self.capacity - len(self.executing)))
                except Exception as e:  # noqa: BLE001 - the database is away: poll again
                    logger.warning("queue not read: %s", e)
                    break
                if not rows:
                    break
                self.claims[1 if by_poll else 0] += len(rows)
                for row in sorted(rows, key=lambda row: row[3]):  # oldest first
                    await self._begin(run_from_row(row[:-1]), row[-1], sent)
            try:
                await asyncio.wait_for(self.wake.wait(), POLL_SECONDS)
                by_poll = False
            except asyncio.TimeoutError:
                by_poll = True

    async def _begin(self, record: RunRecord, fence: int, claimed_at: float) -> None:
        """Starts a run just claimed (`fence`: the claim's token, `claimed_at`: when the
        claim was sent)."""
        await self.threads.refresh(record.thread_id)
        spec = _spec_from(record, self.graphs)
        if spec is None or record.attempt >= MAX_ATTEMPTS:
            try:
                failed = await self.fail_unrunnable(record, spec is not None, fence)
            except LeaseLost:
                return
            writer = RelayWriter(self.cluster, record.run_id, fence)  # its streams end with it
            writer.put("error", sse_frame("error", failed.result["__error__"]), "")
            await writer.end()
            await self.cluster.hint("done", record.run_id)
            return
        spec.after_seconds = 0  # due: the claim looked at `not_before`
        if record.attempt == 0:  # the tracers' run id, as the first attempt has it
            spec.config["run_id"] = uuid.UUID(record.run_id)
        run = RelayedRun(record, spec, fence=fence,
                         held_until=claimed_at + self.lease_seconds)
        run.writer = RelayWriter(
            self.cluster, record.run_id, fence, lease_check=lambda: self._lease_held(run),
            on_refused=lambda: self._abandon(run, "lease lost to another instance (relay)"))
        self.executing[record.run_id] = run
        if record.attempt:
            logger.info("run %s taken over (attempt %d)", record.run_id, record.attempt + 1)
        run.task = asyncio.get_running_loop().create_task(self._execute_claimed(run))

    async def _execute_claimed(self, run: RelayedRun) -> None:
        try:
            await self._execute(run)
        finally:
            requeued = self._stopped_by_shutdown(run)
            # the end mark after the final status is written: a reader that sees it finds
            # the run finished. A lost run's last events are not sent: they are another's.
            await run.writer.end(mark_end=not requeued, discard=run.lost)
            if run.lost:
                logger.info("run %s: left to the instance that took it over",
                            run.record.run_id)
            if self.executing.get(run.record.run_id) is run:
                del self.executing[run.record.run_id]
            self.wake.set()
            if not requeued:
                await self.cluster.hint("done", run.record.run_id)

    async def _after_run(self, run: RunTask, status: str, thread: Any, graph: Any,
                         failure: BaseException | None) -> None:
        """`Runner._after_run` on the thread as PostgreSQL has it now: another instance may
        have changed it (its metadata, say) while the run went on."""
        await self.threads.refresh(thread.thread_id)
        fresh = self.threads.get(thread.thread_id)
        if fresh is not None:  # deleted meanwhile: nothing to record
            await super()._after_run(run, status, fresh, graph, failure)

    async def _delete_temporary(self, run: RunTask) -> None:
        """A stateless run ended: its thread and checkpoints go, its record stays a while,
        for whichever instance waits for its result (`_forget_stateless`)."""
        thread_id = run.record.thread_id
        try:
            await self._write(run, [("DELETE FROM ferrograph_threads WHERE thread_id = ?",
                                     (thread_id,))])
        except LeaseLost:
            return
        self.threads.threads.pop(thread_id, None)
        await self.db.saver.adelete_thread(thread_id)

    async def _forget_stateless(self) -> None:
        """Deletes the records of stateless runs that ended over `STATELESS_KEPT_SECONDS`
        ago (their thread is gone)."""
        await self.db.run([(
            f"DELETE FROM ferrograph_runs r WHERE status IN {FINAL!r} AND "
            f"coalesce(lease_until, 0) < {_NOW} - ? AND NOT EXISTS (SELECT 1 FROM "
            "ferrograph_threads t WHERE t.thread_id = r.thread_id)",
            (STATELESS_KEPT_SECONDS,))])

    async def _write(self, run: RunTask, statements: list[Statement]) -> None:
        """`Runner._write` fenced by the run's lease: `LeaseLost` (the run marked `lost`)
        when another instance has claimed the run since."""
        try:
            await self.db.run_fenced(
                (FENCE, (run.record.run_id, self.cluster.instance_id, run.fence)), statements)
        except LeaseLost:
            self._lose(run, "lease lost to another instance: its writes refused")
            raise

    def _saver_for(self, run: RunTask) -> Any:
        return fenced_saver(self.db.pool, (run.record.run_id, self.cluster.instance_id,
                                           run.fence),
                            lambda: self._lose(run, "lease lost to another instance: "
                                               "its checkpoint refused"))

    def _lose(self, run: RunTask, why: str) -> None:
        if not run.lost:
            logger.warning("run %s: %s; stopped here", run.record.run_id, why)
            run.lost = True

    async def _lease_held(self, run: RelayedRun) -> bool:
        """Whether the run is still this instance's: at once while its last renewal is
        younger than a lease, else by renewing it now. False: it is stopped (`lost`).
        Its start written first: a client that saw an event finds the run running and its
        thread busy, from any instance, as on a single one."""
        if run.start_written is not None and not run.start_written.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(run.start_written)
        loop = asyncio.get_running_loop()
        if run.lost or loop.time() < run.held_until:
            return not run.lost
        sent = loop.time()
        rows = await self.db.fetchall(_RENEW, (
            self.lease_seconds, self.cluster.instance_id, [run.record.run_id]))
        if rows:
            run.held_until = sent + self.lease_seconds
            return True
        self._abandon(run, "lease lost to another instance (found before relaying)")
        return False

    def _abandons(self, run: RunTask, failure: Exception) -> bool:
        """A run whose worker lost the database (a connection failure, not the graph's)
        is left to its lease: once that runs out, any instance resumes it from its last
        checkpoint as its next attempt, as a dead worker's. A run whose lease another
        instance took (a refused write) is left to that one."""
        import psycopg
        import psycopg_pool

        if run.lost or caused_by(failure, LeaseLost):
            self._lose(run, "lease lost to another instance")
            return True
        if isinstance(failure, (psycopg.OperationalError, psycopg.InterfaceError,
                                psycopg_pool.PoolTimeout)):
            logger.warning("run %s: the database failed mid-run (%s); left for another "
                           "attempt once its lease runs out", run.record.run_id, failure)
            run.lost = True
            return True
        return False

    def _abandon(self, run: RelayedRun, why: str) -> None:
        """Stops the run here without writing or relaying anything more about it (not once
        its outcome is on its way to the database: the renewal no longer finds it running)."""
        if run.record.status == "running" and run.task and not run.task.done():
            self._lose(run, why)
            run.task.cancel()

    async def _renew(self) -> None:
        """Renews the leases of the runs this instance executes; a run whose lease another
        instance took over is stopped here (`lost`), as is every run once renewals have
        failed for most of a lease (another instance may take them over any moment); a
        cancel request written on a run's row is carried out."""
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            asked = list(self.executing)  # runs claimed meanwhile are not in the answer
            sent = loop.time()
            try:
                rows = await self.db.fetchall(_RENEW, (
                    self.lease_seconds, self.cluster.instance_id, asked))
                renewed = loop.time()
            except Exception as e:  # noqa: BLE001 - the database is away: try again
                logger.warning("leases not renewed: %s", e)
                if asyncio.get_running_loop().time() - renewed > self.lease_seconds * 0.8:
                    for run in list(self.executing.values()):
                        self._abandon(run, "lease not renewed in time: stopped here")
                continue
            held = dict(rows)
            for run_id in asked:
                run = self.executing.get(run_id)
                if run is None:
                    continue
                if run_id not in held:
                    self._abandon(run, "lease lost to another instance")
                    continue
                run.held_until = sent + self.lease_seconds
                if held[run_id] and run.cancel_reason is None:
                    request = loads(held[run_id])
                    run.cancel(request.get("reason") or "run cancelled",
                               rollback=bool(request.get("rollback")))


_THREAD_PATH = re.compile(r"^/threads/([0-9a-fA-F-]{32,36})(?:/|$)")


class SharedReads:
    """ASGI middleware: before a request, what it reads is read again from PostgreSQL
    (other instances write there too). A database that does not answer: 503."""

    def __init__(self, app: Any, state: ServerState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            try:
                await self._refresh(scope["path"])
            except Exception as e:  # noqa: BLE001 - any failure: the database is away
                logger.warning("request %s: database unavailable: %s", scope["path"], e)
                from ferrograph.server.http import error_response

                await error_response(503, "The database is unavailable; try again.")(
                    scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _refresh(self, path: str) -> None:
        state = self.state
        if path in ("/", "/ok", "/info") or path.startswith("/static"):
            return
        found = _THREAD_PATH.match(path)
        thread_id = parse_uuid(found.group(1)) if found else None
        if thread_id is not None:
            await state.threads.refresh(thread_id)
            await state.runner.refresh_runs(thread_id)
        elif path.startswith("/threads/"):  # search, count: every thread
            await state.threads.refresh()
        elif path == "/runs/cancel":
            await state.runner.refresh_runs()
        if path.startswith("/assistants") or "/runs" in path:
            await state.assistant_store.refresh()
