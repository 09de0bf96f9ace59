"""A run's thread: `Persistence`, the part of a `GraphRun` that talks to a LangGraph saver.

It starts the run from the thread's checkpoint (`ThreadStart`, `_thread_start`), names each
task as LangGraph names it (task ids are a hash of the checkpoint id, so a thread's pending
writes find their task again, whichever engine resumes it), saves each finished task's
writes as the task ends, and a checkpoint after each step. What a checkpoint holds comes
from the Rust run in one call per step, which returns only what changed since the last
(`Run.checkpoint_changes`): the checkpoint's dicts are kept and updated, and the saver gets
shallow copies of them. The format itself (ids, versions, saved forms) is `_thread_format`'s.

Versions: the engine counts channel versions 1, 2, ... (one per applied step); the saver
names them (`get_next_version`), and `Versions` keeps the names. A thread's versions are
read back in order, so comparisons mean the same on both sides.
"""
from __future__ import annotations

import binascii
import bisect
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NoReturn

from ferrograph._core import Run
from ferrograph.pregel._delta import COUNTERS, checkpoint_deltas, exit_deltas
from ferrograph.pregel._errors import handled_failure
from ferrograph.pregel._thread_format import (
    CHECKPOINT_FORMAT,
    CONTROL_WRITES,
    ERROR,
    ERROR_SOURCE_NODE,
    INPUT,
    INTERRUPT,
    NO_WRITES,
    NULL_TASK_ID,
    PULL,
    PUSH,
    RESUME,
    TASKS,
    Durability,
    Versions,
    WireInterrupt,
    WireSend,
    add_pull_id_parts,
    checkpoint_id_and_time,
    copy_checkpoint,
    empty_checkpoint,
    engine_writes,
    interrupt_dict,
    interrupt_id,
    is_stock_method,
    pull_id_parts,
    saved_form,
    task_id,
    task_id_of,
    task_path_str,
    task_statuses,
    tracked_arg,
    wire_value,
    with_checkpoint_map,
)
from ferrograph.pregel._thread_start import ThreadStart

if TYPE_CHECKING:
    from ferrograph.pregel._task import Task
    from ferrograph.pregel.main import CompiledStateGraph


class Scratchpad:
    """A task's answers to its interrupts: those saved for it, the run's resume value (taken
    by the first interrupt that has no saved answer), and the count of interrupts called."""

    __slots__ = ("resume", "counter", "persistence", "resume_written")

    def __init__(self, resume: list[Any], persistence: Persistence | None) -> None:
        self.resume = resume
        self.counter = 0
        self.persistence = persistence
        """The thread of the task's run (a graph the task runs keeps its checkpoints there)."""
        self.resume_written: list[Any] | None = None
        """The answers the task used, saved with its writes (LangGraph's RESUME write)."""

    def next_index(self) -> int:
        index = self.counter
        self.counter += 1
        return index

    def take_null_resume(self) -> Any:
        return None if self.persistence is None else self.persistence.take_null_resume()


class Persistence(ThreadStart):
    """The saver's side of one run (see the module doc)."""

    def __init__(self, graph: CompiledStateGraph, saver: Any, config: dict[str, Any],
                 durability: Durability | None) -> None:
        configurable = config.get("configurable") or {}
        if not configurable.get("thread_id") and configurable.get("thread_id") != 0:
            raise ValueError(
                "Checkpointer requires one or more of the following 'configurable' keys: "
                "thread_id, checkpoint_ns, checkpoint_id")
        self.graph = graph
        self.saver = saver
        self.durability: Durability = durability or "async"
        if self.durability not in ("sync", "async", "exit"):
            raise ValueError(f"Invalid durability {self.durability!r}")
        self.ns = configurable.get("checkpoint_ns", "")
        self.config: dict[str, Any] = {"configurable": {
            k: v for k, v in configurable.items() if not k.startswith("__")}}
        if not isinstance(self.config["configurable"]["thread_id"], str):  # as LangGraph
            self.config["configurable"]["thread_id"] = str(configurable["thread_id"])
        self.config["configurable"].setdefault("checkpoint_ns", self.ns)
        self.run_metadata: dict[str, Any] = config.get("metadata") or {}
        """The run's `metadata`, handed to the saver with each checkpoint (which copies it
        into the checkpoint's metadata, as under LangGraph)."""
        self.checkpoint: dict[str, Any] = empty_checkpoint()
        self._live_run: Run | None = None
        self._live_versions: dict[str, Any] | None = None
        self._at: tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | None = None
        """The Rust run and `channel_versions` dict `save` last updated (see `save`)."""
        self.metadata: dict[str, Any] = {"step": -2}
        self.parent_config: dict[str, Any] | None = None
        self.pending: list[tuple[str, str, Any]] = []
        """The writes saved against the current checkpoint (loaded, then this run's)."""
        self.versions = Versions(saver)
        self.interrupt_seen: dict[str, int] = {}
        self.null_resume: tuple[Any] | None = None
        self.resume_map: dict[str, Any] | None = None
        self.saved_step: int | None = None
        """The step of the checkpoint this run started from (None: a new thread)."""
        self.put_config: dict[str, Any] | None = None
        """What the saver returned for the newest checkpoint it stored."""
        self.saved_id: str | None = None
        """The id of the newest checkpoint the saver has (None: this run saved none yet)."""
        self.exit_writes: list[tuple[str, list[tuple[str, Any]], str]] = []
        self.outbox: list[tuple[str, tuple[Any, ...]]] | None = None
        """In a run driven on an event loop: saver calls waiting for the driver (`aflush`)."""
        self.parent: Persistence | None = None
        """The thread of the run whose task runs this graph (None: a top-level run)."""
        self.parents: dict[str, str] = {}
        """Checkpoint ids of the enclosing graphs, by namespace (LangGraph's `parents`)."""
        self.resumed = False
        """Whether the run continues the thread's open step (None or `Command` input)."""
        self.reapply = True
        """Whether loaded writes of finished tasks stand in for running them again."""
        self.delta_forced: set[str] = set()
        """Delta keys the next checkpoint snapshots whatever their counters (see `_delta`)."""
        self.delta_fresh_update = False
        """Whether this is `update_state` on a thread without a checkpoint (`_delta`)."""
        self.delta_stored_versions: dict[str, Any] = {}
        """The channel versions of the checkpoint this run started from (`_delta`)."""
        self.delta_addressed = False
        """Whether the run started from a checkpoint asked for by id (`_delta`)."""
        self.delta_exit_writes: list[tuple[int, str, str, str, Any]] = []
        """Under `durability="exit"`: the run's writes to delta keys, `(step, task id,
        task path, key, value)`, and the keys' values at the newest checkpoint; the id of
        the stub root checkpoint a new thread may need (see `_delta.exit_deltas`)."""
        self.delta_step_writes: list[tuple[int, str, str, str, Any]] = []
        self.delta_first_step: int | None = None
        self.delta_exit_values: dict[str, Any] = {}
        self.delta_stub_id: str | None = None
        self.delta_histories: Any = None
        """The saver's histories of the delta keys of the checkpoint this run starts from,
        fetched by `astart` with the saver's async method."""
        self._id_of_bytes: str | None = None
        self._id_bytes = b""
        """The checkpoint id whose 16 bytes `_id_bytes` holds (task ids hash them)."""
        self._pull_parts: dict[int, tuple[bytes, bytes]] | None = None
        """`pull_id_parts` of this run's graph and namespace, once looked up."""
        self._put_copies: bool | None = None
        """Whether `put` gets copies of the checkpoint dicts (see `_serializes_at_once`)."""
        self.call_names: list[str] = []
        """Names of the tasks nodes called (`ferrograph.func.task`) and of nodes that ran
        from a `Send`: LangGraph's empty rows of `versions_seen` (a row for every task
        applied, triggers or not), kept from checkpoint to checkpoint."""

    async def aflush(self) -> None:
        """Hands the saver, in order, the writes waiting in `outbox` (async runs)."""
        outbox = self.outbox
        while outbox:
            method, args = outbox.pop(0)
            await getattr(self.saver, method)(*args)

    def _put_writes(self, config: dict[str, Any], writes: list[tuple[str, Any]],
                    tid: str, path: str = "") -> None:
        args = (config, writes, tid, path) if path else (config, writes, tid)
        if self.outbox is not None:
            self.outbox.append(("aput_writes", args))
        else:
            self.saver.put_writes(*args)

    def nested(self, graph: CompiledStateGraph, config: dict[str, Any]) -> Persistence:
        """The thread of a graph run by one of this run's tasks (`config` is the task's):
        the same saver and thread, under the task's namespace (without the task id for a
        graph compiled with `checkpointer=True`, whose history is one per thread)."""
        configurable = config.get("configurable") or {}
        ns = configurable.get("checkpoint_ns", "")
        if graph.checkpointer is True:
            ns = "|".join(part.split(":")[0] for part in ns.split("|"))
        child = Persistence(graph, self.saver, {"configurable": {
            "thread_id": self.config["configurable"]["thread_id"], "checkpoint_ns": ns}},
            self.durability)
        child.parent = self
        child.resume_map = self.resume_map
        child.parents = {**self.parents, self.ns: self.checkpoint["id"]}
        return child

    # -- tasks --------------------------------------------------------------------------------

    def name_tasks(self, tasks: list[Task], step: int) -> None:
        """Gives a step's tasks LangGraph's ids, and hands the tasks that finished before
        (their writes were saved) those writes, so they do not run again."""
        checkpoint_id = self.checkpoint["id"]
        ns = self.ns
        graph = self.graph
        if not self.pending and not self.resume_map:  # (most steps: nothing saved to reuse)
            self._name_fresh_tasks(tasks, step, checkpoint_id)
            return
        statuses = task_statuses(self.pending) if self.pending else {}
        for t in tasks:
            task_ns = f"{ns}|{t.name}" if ns else t.name
            if t.path[0] == PULL:
                t.id = task_id(checkpoint_id, task_ns, str(step), t.name, PULL,
                               *graph.triggers[t.node_id])
            else:
                t.id = task_id(checkpoint_id, task_ns, str(step), t.name, PUSH,
                               str(t.path[1]))
            status = statuses.get(t.id)
            if status is None:
                continue
            if status.finished and self.reapply:
                t.saved_writes = status.output
            else:
                if status.error_source is not None and status.error is not None:
                    error = status.error
                    t.failed_before = (error if isinstance(error, BaseException)
                                       else Exception(str(error)))  # LangGraph's reading
                resume = list(status.resume or ())
                t.scratchpad = Scratchpad(resume, self)
        for t in tasks:
            if t.saved_writes is None and t.scratchpad is None:
                t.scratchpad = Scratchpad([], self)
        if self.resume_map:  # answers by interrupt id: each task takes its own
            for t in tasks:
                if t.saved_writes is None:
                    pad = t.scratchpad
                    task_ns = f"{ns}|{t.name}:{t.id}" if ns else f"{t.name}:{t.id}"
                    key = interrupt_id(task_ns, len(pad.resume))
                    if key not in self.resume_map:
                        key = interrupt_id(task_ns, 0)
                    if key in self.resume_map:
                        pad.resume.append(self.resume_map[key])

    def _name_fresh_tasks(self, tasks: list[Task], step: int, checkpoint_id: str) -> None:
        """`name_tasks` of a step with no saved writes or answers: each task gets its id
        and an empty scratchpad. A pull task's id hashes bytes kept per node and namespace
        (`pull_id_parts`), so only the checkpoint's and the step's are made here."""
        head = self._checkpoint_id_bytes(checkpoint_id)
        step_text = str(step)
        step_bytes = step_text.encode()
        for t in tasks:
            if t.path[0] == PULL:
                t.id = self._pull_task_id(t, head, step_bytes)
            else:
                task_ns = f"{self.ns}|{t.name}" if self.ns else t.name
                t.id = task_id(checkpoint_id, task_ns, step_text, t.name, PUSH,
                               str(t.path[1]))
            t.scratchpad = Scratchpad([], self)

    def name_fresh_pull(self, t: Task, step: int) -> None:
        """`_name_fresh_tasks` of a step whose one task `t` is a pull task."""
        t.id = self._pull_task_id(t, self._checkpoint_id_bytes(self.checkpoint["id"]),
                                  str(step).encode())
        t.scratchpad = Scratchpad([], self)

    def _pull_task_id(self, t: Task, head: bytes, step_bytes: bytes) -> str:
        """Pull task `t`'s id, from the checkpoint id's bytes (`head`), the step's and those
        kept for its node and namespace (`pull_id_parts`)."""
        parts = self._pull_parts
        if parts is None:
            parts = self._pull_parts = pull_id_parts(self.graph, self.ns)
        before, after = parts.get(t.node_id) or add_pull_id_parts(
            self.graph, self.ns, parts, t.node_id, t.name)
        return task_id_of(head + before + step_bytes + after)

    def _checkpoint_id_bytes(self, checkpoint_id: str) -> bytes:
        """The 16 bytes of `checkpoint_id` (the current checkpoint's), kept per id."""
        if checkpoint_id is not self._id_of_bytes:
            self._id_bytes = binascii.unhexlify(checkpoint_id.replace("-", ""))
            self._id_of_bytes = checkpoint_id
        return self._id_bytes

    def task_writes(self, t: Task) -> list[tuple[str, Any]]:
        """A finished task's writes as LangGraph saves them: state keys, routes, sends and
        the node's static edges (`NO_WRITES` when there are none)."""
        writes = self.saved_form(t.writes, None if t.handled is not None else t.node_id)
        pad = t.scratchpad
        if pad is not None and pad.resume_written is not None:
            writes.insert(0, (RESUME, pad.resume_written))
        for c, _ in writes:
            if c not in CONTROL_WRITES:
                break
        else:
            writes.append((NO_WRITES, None))
        return writes

    def saved_form(self, writes: Iterable[tuple[int, int, Any]],
                   node_id: int | None) -> list[tuple[str, Any]]:
        return saved_form(self.graph, writes, node_id)

    def engine_writes(self, writes: Iterable[tuple[str, Any]]) -> list[tuple[int, int, Any]]:
        return engine_writes(self.graph, writes)

    def step_applied(self, tasks: list[Task]) -> None:
        """Before the checkpoint of a step applied: its pushed tasks (`Send`s) get their
        empty `versions_seen` rows, as LangGraph gives every task it applies."""
        for t in tasks:
            if t.path[0] == PUSH and t.name not in self.call_names:
                self.call_names.append(t.name)

    def task_ended(self, t: Task) -> None:
        """Saves what a task left: its writes, its interrupt or its error (on the thread
        that ran it, as it ends, so a crash later in the step loses nothing). The common
        step's is also done in Rust (`rust/src/python/thread_save.rs`: change both)."""
        if t.saved_writes is not None or t.save_failed:
            return
        if t.interrupts:
            writes: list[tuple[str, Any]] = [(INTERRUPT, [
                WireInterrupt(i.value, i.id, response_schema=i.response_schema)
                for i in t.interrupts])]
            pad = t.scratchpad
            if pad is not None and pad.resume_written is not None:
                writes.append((RESUME, pad.resume_written))
        elif t.error is not None:
            writes = [(ERROR, t.error)]
            if (failure := handled_failure(t.error)) is not None:
                # The error handler failed too: the node's failure is kept as LangGraph
                # keeps it (with the node's name), the handler's under its own task.
                writes = [(ERROR, failure.error), (ERROR_SOURCE_NODE, t.name)]
                self.put_writes(self.handler_task_id(t), [(ERROR, t.error)])
        else:
            writes = self.task_writes(t)
            path = task_path_str(t.path) if self.graph.delta_keys else ""
            try:
                self.put_writes(t.id, writes, path)
            except Exception as e:  # noqa: BLE001 - the saver's failure, raised below
                self.writes_not_saved(t, writes, e, path)
            return
        self.put_writes(t.id, writes, task_path_str(t.path) if self.graph.delta_keys else "")

    def writes_not_saved(self, t: Task, writes: list[tuple[str, Any]], error: Exception,
                         path: str = "") -> NoReturn:
        """The saver failed to store finished task `t`'s `writes`: as LangGraph's runner
        does, it is handed them again with the error after them (for a write it cannot
        store, that fails again: that error is raised), and the error is the task's failure,
        not saved again."""
        t.save_failed = True
        self.put_writes(t.id, [*writes, (ERROR, error)], path)
        raise error

    def handler_task_id(self, t: Task) -> str:
        """LangGraph's id of the task in which `t`'s error handler runs."""
        name = t.runner.error_handler_node  # type: ignore[union-attr]
        ns = f"{self.ns}|{name}" if self.ns else name
        return task_id(self.checkpoint["id"], ns, str(t.step), name, PUSH,
                       "node_error_handler", t.id)

    def put_writes(self, tid: str, writes: list[tuple[str, Any]], path: str = "") -> None:
        """Saves a task's writes against the newest checkpoint (`path`: LangGraph's text of
        the task's path, by which savers order a checkpoint's writes; given for graphs with
        delta keys, whose values are rebuilt from the writes in that order)."""
        if tid == NULL_TASK_ID:
            special = {c for c, _ in writes if c in CONTROL_WRITES}
            self.pending = [w for w in self.pending
                            if not (w[0] == tid and w[1] in special)]
        elif self.pending:
            self.pending = [w for w in self.pending if w[0] != tid]
        self.pending.extend([(tid, c, v) for c, v in writes])
        if self.durability == "exit":
            self.exit_writes.append((tid, writes, path))
            if self.graph.delta_keys:  # (saved at the end: see `_delta.exit_deltas`)
                step = self.metadata.get("step", -1) + 1
                self.delta_step_writes.extend((step, tid, path, c, v) for c, v in writes
                                              if c in self.graph.delta_keys)
            return
        self._put_writes(self._at_checkpoint(), writes, tid, path)

    # -- checkpoints --------------------------------------------------------------------------

    def subgraph_config(self, name: str, tid: str) -> dict[str, Any] | None:
        """Where the checkpoints of the graph task `tid` runs are (None: not a subgraph)."""
        if self.graph.subgraph_of(name) is None:
            return None
        ns = f"{self.ns}|{name}:{tid}" if self.ns else f"{name}:{tid}"
        return {"configurable": {"thread_id": self.config["configurable"]["thread_id"],
                                 "checkpoint_ns": ns}}

    def checkpoint_payload(self, values: Any, tasks: list[Task],
                           output_keys: frozenset[str]) -> dict[str, Any]:
        """The newest checkpoint as the `checkpoints` stream mode shows it."""
        statuses = task_statuses(self.pending) if self.pending else {}
        shown = []
        for t in tasks:
            status = statuses.get(t.id)
            state = self.subgraph_config(t.name, t.id)
            if status is not None and status.error is not None:
                shown.append({"id": t.id, "name": t.name, "error": status.error,
                              "state": state})
                continue
            interrupts = tuple(interrupt_dict(i) for i in status.interrupts) if status else ()
            result = None
            if status is not None and status.finished:
                from ferrograph.pregel._write import result_dict
                result = result_dict([(c, v) for c, v in status.output if c in output_keys])
            if result:
                shown.append({"id": t.id, "name": t.name, "result": result,
                              "interrupts": interrupts, "state": state})
            else:
                shown.append({"id": t.id, "name": t.name, "interrupts": interrupts,
                              "state": state})
        return {
            "config": with_checkpoint_map(self.put_config or self._at_checkpoint(),
                                          self.metadata),
            "parent_config": with_checkpoint_map(self.parent_config, self.metadata),
            "values": values,
            "metadata": self.metadata,
            "next": [t.name for t in tasks],
            "tasks": shown,
        }

    def _versions_now(self, rust: Run) -> dict[str, Any]:
        """Each written channel's version, by the saver's name (the sends' channel, which
        the run keeps no version of, as the newest checkpoint has it)."""
        names = self.versions.cover(rust.latest_version)
        versions = {channel: names[v] for channel, v in
                    zip(self.graph.channel_names, rust.channel_versions, strict=True) if v}
        if (sends := (self.checkpoint.get("channel_versions") or {}).get(TASKS)) is not None:
            versions[TASKS] = sends
        return versions

    def should_interrupt(self, rust: Run) -> bool:
        """Whether a breakpoint may stop the run: a channel changed since the last stop
        (LangGraph's rule, which lets a resumed run pass the breakpoint it stopped at)."""
        seen = self.interrupt_seen
        return any(channel not in seen or name > seen[channel]
                   for channel, name in self._versions_now(rust).items())

    def save(self, rust: Run, source: str, *, start_value: Any = None) -> None:
        """Makes the run's current state the thread's newest checkpoint (saved unless the
        run saves only on exit). An update takes the step after the one it updates.

        The checkpoint's dicts are kept from one checkpoint to the next and updated with
        what changed (`Run.checkpoint_changes`); the saver gets shallow copies (the rows of
        `versions_seen` are replaced, never changed, so sharing them is safe). The common
        step's (with `_finish_checkpoint` and `_put`) is also done in Rust
        (`rust/src/python/thread_save.rs`: change both)."""
        if source == "update":
            step = (-1 if self.saved_step is None else self.saved_step) + 1
        elif source == "fork":
            step = rust.step
        else:
            step = rust.step - 1
        names = self.versions.cover(rust.latest_version)
        previous = self.checkpoint
        old_versions = previous.get("channel_versions") or {}
        reset = rust is not self._live_run or old_versions is not self._live_versions
        if reset:
            self._live_run = rust
            values: dict[str, Any] = {}
            versions: dict[str, Any] = {}
            seen: dict[str, Any] = {}
        else:
            values = previous["channel_values"]
            versions = old_versions
            seen = previous["versions_seen"]
        if not reset and not self.graph.delta_keys:  # (most steps: merged in Rust)
            changed, updated, sends = rust.checkpoint_into(
                names, wire_value(start_value), values, versions, seen,
                self.graph.untracked_keys or None)
            before = versions.get(TASKS)
            if sends:
                values[TASKS] = [WireSend(node, tracked_arg(self.graph, arg))
                                 for node, arg in sends]
                name = names[rust.latest_version]
                if before != name:
                    changed[TASKS] = name
                    bisect.insort(updated, TASKS)
                versions[TASKS] = name
            elif before is not None:  # LangGraph's emptied Topic: `[]`, kept
                if values.get(TASKS):  # the sends just ran: emptied under this step's version
                    name = names[rust.latest_version]
                    if before != name:
                        changed[TASKS] = name
                    versions[TASKS] = name
                values[TASKS] = []
            else:
                values.pop(TASKS, None)
            self._finish_checkpoint(rust, source, step, values, versions, seen, changed,
                                    updated, None, names, start_value)
            return
        new_values, removed, new_versions, new_seen, sends = rust.checkpoint_changes(
            names, wire_value(start_value), reset)
        for key in self.graph.untracked_keys:  # LangGraph's `UntrackedValue`: never saved
            new_values.pop(key, None)
        tasks_before = old_versions.get(TASKS)
        if sends:
            new_values[TASKS] = [WireSend(node, tracked_arg(self.graph, arg)) for node, arg in sends]
            new_versions[TASKS] = names[rust.latest_version]
        elif tasks_before is not None:  # LangGraph's emptied Topic: `[]`, kept (as above)
            new_values[TASKS] = []
            new_versions[TASKS] = (names[rust.latest_version]
                                   if (previous.get("channel_values") or {}).get(TASKS)
                                   else tasks_before)
        else:
            removed.append(TASKS)
            versions.pop(TASKS, None)
        for channel in removed:
            values.pop(channel, None)
        values.update(new_values)
        if reset:
            changed = {c: v for c, v in new_versions.items() if old_versions.get(c) != v}
        else:  # the run reports versions that changed (the sends' one is always there)
            changed = new_versions
            if TASKS in changed and old_versions.get(TASKS) == changed[TASKS]:
                del changed[TASKS]
        versions.update(new_versions)
        for node, row in new_seen.items():
            if row:
                seen[node] = row
            else:
                seen.pop(node, None)
        if reset:  # the empty rows the run does not keep (they are never removed)
            for node, row in (previous.get("versions_seen") or {}).items():
                if not row:
                    seen.setdefault(node, {})
        # Channels this step wrote that hold something now (LangGraph's list: not a barrier
        # its node consumed).
        consumed = rust.consumed_channels
        updated = sorted([c for c in changed if c in values and (c != TASKS or values[c])
                          and c not in consumed])
        counters = None
        if self.graph.delta_keys:  # (whose checkpoints hold no value: written is enough)
            updated = sorted({*updated, *(c for c in changed if c in self.graph.delta_keys)})
            counters = checkpoint_deltas(self, rust, values, changed, versions, source, step)
        self._finish_checkpoint(rust, source, step, values, versions, seen, changed, updated,
                                counters, names, start_value)

    def _finish_checkpoint(self, rust: Run, source: str, step: int, values: dict[str, Any],
                           versions: dict[str, Any], seen: dict[str, Any],
                           changed: dict[str, Any], updated: list[str],
                           counters: dict[str, Any] | None, names: list[Any],
                           start_value: Any) -> None:
        """The rest of `save`, once the kept dicts hold the run's state: the rows of
        `versions_seen` the run does not keep, the checkpoint and its metadata, the put."""
        if self.interrupt_seen:
            seen[INTERRUPT] = dict(self.interrupt_seen)
        elif INTERRUPT in seen:
            del seen[INTERRUPT]
        if INPUT not in seen:
            seen[INPUT] = {}
        if self.call_names:  # tasks called from nodes (`ferrograph.func.task`)
            for name in self.call_names:
                seen.setdefault(name, {})
        self._live_versions = versions
        new_id, ts = checkpoint_id_and_time(step)
        self.checkpoint = {
            "v": CHECKPOINT_FORMAT,
            "id": new_id,
            "ts": ts,
            "channel_values": values,
            "channel_versions": versions,
            "versions_seen": seen,
            "updated_channels": None if source == "update" else updated,  # (LangGraph's)
        }
        if _CHECK_CHECKPOINTS:
            from ferrograph.pregel._checkpoint_check import check_checkpoint
            check_checkpoint(self, rust, names, start_value)
        if self.parent is not None:
            parents = dict(self.parents)
        else:
            parents = self.metadata.get("parents") or {}
        self.metadata = {"source": source, "step": step, "parents": parents}
        if counters:
            self.metadata[COUNTERS] = counters
        if self.pending:
            self.pending = []
        if self.exit_writes:
            self.exit_writes = []
        if self.durability != "exit":
            self._put(changed)

    def _put(self, new_versions: dict[str, Any]) -> None:
        """Hands the saver the newest checkpoint (`new_versions`: the channel versions the
        saver has not seen yet)."""
        config = self.config
        if self.saved_id is not None:
            if config["configurable"].get("checkpoint_id") != self.saved_id:
                config = {**config, "configurable": {**config["configurable"],
                                                     "checkpoint_id": self.saved_id}}
        else:
            config = {**config, "configurable": {
                k: v for k, v in config["configurable"].items() if k != "checkpoint_id"}}
        self.parent_config = config if self.saved_id is not None else None
        put_config = {**config, "metadata": self.run_metadata} if self.run_metadata else config
        if self.outbox is not None:  # an async run: saved when the driver flushes
            self.outbox.append(("aput", (put_config, copy_checkpoint(self.checkpoint),
                                         self.metadata, new_versions)))
            saved = {"configurable": {
                "thread_id": config["configurable"]["thread_id"], "checkpoint_ns": self.ns,
                "checkpoint_id": self.checkpoint["id"]}}
        else:
            checkpoint = self.checkpoint
            if self.put_copies():
                checkpoint = copy_checkpoint(checkpoint)
            saved = self.saver.put(put_config, checkpoint, self.metadata, new_versions)
        self.put_config = saved
        self.saved_id = self.checkpoint["id"]
        self.config = config = {**self.config, "configurable": {
            **self.config["configurable"], **saved["configurable"]}}
        if (config["configurable"].get("checkpoint_id") == self.saved_id
                and config["configurable"].get("checkpoint_ns") == self.ns):
            self._at = (config, self.checkpoint, config)  # what `_at_checkpoint` would make

    def put_copies(self) -> bool:
        """Whether `put` gets copies of the checkpoint dicts (see `_serializes_at_once`),
        decided once a run."""
        copies = self._put_copies
        if copies is None:
            copies = self._put_copies = not _serializes_at_once(self.saver)
        return copies

    def _at_checkpoint(self) -> dict[str, Any]:
        """The config of the newest checkpoint (the writes made against it are saved so);
        one dict per checkpoint and config, shared by its writes (no saver changes it)."""
        at = self._at
        if at is not None and at[0] is self.config and at[1] is self.checkpoint:
            return at[2]
        config = {**self.config, "configurable": {
            **self.config["configurable"], "checkpoint_ns": self.ns,
            "checkpoint_id": self.checkpoint["id"]}}
        self._at = (self.config, self.checkpoint, config)
        return config

    def finish(self, failed: bool) -> None:
        """At the run's end (finished, paused or `failed`): under `durability="exit"`,
        saves the newest checkpoint and the writes made since — except for a graph a task
        ran that ended well (its caller's thread has the outcome; LangGraph's rule), unless
        it keeps one history per thread (`checkpointer=True`: no task ids in its namespace)."""
        if (self.durability == "exit" and self.parent is not None and not failed
                and any(":" in part for part in self.ns.split("|"))):
            self.exit_writes = []
            return
        if self.durability != "exit" or self.saved_id == self.checkpoint["id"]:
            if self.durability == "exit" and self.exit_writes:
                self._flush_exit_writes()
            return
        if self.graph.delta_keys:
            exit_deltas(self)
        self._put(dict(self.checkpoint["channel_versions"]))
        self._flush_exit_writes()

    def _flush_exit_writes(self) -> None:
        writes, self.exit_writes = self.exit_writes, []
        for tid, ws, path in writes:
            self._put_writes(self._at_checkpoint(), ws, tid, path)


def _serializes_at_once(saver: Any) -> bool:
    """Whether the saver's `put` is that of LangGraph's `InMemorySaver`, `SqliteSaver` or
    `PostgresSaver` (not overridden, on its class or on itself), which keep none of the
    checkpoint's dicts (they store its bytes before they return), so it needs no copy."""
    return is_stock_method(type(saver), "put", _PUT_KEEPS_NOTHING) and (
        "put" not in getattr(saver, "__dict__", ()))


_PUT_KEEPS_NOTHING = (
    ("langgraph.checkpoint.memory", "InMemorySaver"),
    ("langgraph.checkpoint.sqlite", "SqliteSaver"),
    ("langgraph.checkpoint.postgres", "PostgresSaver"),
)


_CHECK_CHECKPOINTS = bool(os.environ.get("FERROGRAPH_CHECK_CHECKPOINTS"))
"""Debugging: each checkpoint built from changes is compared with one built from scratch."""
