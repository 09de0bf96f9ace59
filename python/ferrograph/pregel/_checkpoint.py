"""A run's thread: loading its checkpoint into the run, saving one after each step, and the
writes of each task, all in LangGraph's checkpoint format on any LangGraph saver.

`Persistence` is the part of a `GraphRun` that talks to the saver. It starts the run from the
thread's checkpoint (or a fresh one), names each task as LangGraph names it (task ids are a
hash of the checkpoint id, so a thread's pending writes find their task again, whichever
engine resumes it), saves each finished task's writes as the task ends, and a checkpoint
after each step. What a checkpoint holds comes from the Rust run in one call per step,
which returns only what changed since the last (`Run.checkpoint_changes`): the checkpoint's
dicts are kept and updated, and the saver gets shallow copies of them. A checkpoint is read
back into a Rust run in one call (`Run.restore`, with the saver's version names and their
ranks).

Versions: the engine counts channel versions 1, 2, ... (one per applied step); the saver
names them (`get_next_version`), and `Versions` keeps the names. A thread's versions are
read back in order, so comparisons mean the same on both sides.
"""

from __future__ import annotations

import binascii
import dataclasses
import importlib.util
import os
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from langgraph.checkpoint.base import CheckpointTuple
from langgraph.checkpoint.base import id as _uuid6_state
from xxhash import xxh3_128_hexdigest

from ferrograph._core import Run
from ferrograph.errors import EmptyInputError, InvalidUpdateError
from ferrograph.pregel._errors import handled_failure
from ferrograph.pregel._write import WRITE_GOTO, WRITE_KEY, WRITE_SEND
from ferrograph.types import Command, Interrupt, Send

if TYPE_CHECKING:
    from ferrograph.pregel._loop import GraphRun, Task
    from ferrograph.pregel.main import CompiledStateGraph

NULL_TASK_ID = "00000000-0000-0000-0000-000000000000"
INPUT = "__input__"
INTERRUPT = "__interrupt__"
RESUME = "__resume__"
ERROR = "__error__"
ERROR_SOURCE_NODE = "__error_source_node__"
NO_WRITES = "__no_writes__"
RETURN = "__return__"
TASKS = "__pregel_tasks"
PULL = "__pregel_pull"
PUSH = "__pregel_push"
CONTROL_WRITES = frozenset((ERROR, ERROR_SOURCE_NODE, INTERRUPT, RESUME))
NOT_STATE = frozenset((*CONTROL_WRITES, NO_WRITES, RETURN))
CHECKPOINT_FORMAT = 4
"""LangGraph 1.2's checkpoint `v`."""

Durability = Literal["sync", "async", "exit"]


def task_id(checkpoint_id: str, *parts: str) -> str:
    """LangGraph's task id: a uuid-shaped XXH3-128 of the checkpoint id and the task's
    namespace, step, name and path, so the same task of the same checkpoint has the same
    id in any process and either engine."""
    digest = xxh3_128_hexdigest(binascii.unhexlify(checkpoint_id.replace("-", ""))
                                + "".join(parts).encode())
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def checkpoint_id(step: int) -> str:
    """A new checkpoint id: LangGraph's `str(uuid6(clock_seq=step))` (a version 6 uuid of
    the time, the step and random bits, later than any it made before in this process:
    the last time is LangGraph's own), without building a `UUID` on the way."""
    stamp = time.time_ns() // 100 + 0x01B21DD213814000
    last = _uuid6_state._last_v6_timestamp
    if last is not None and stamp <= last:
        stamp = last + 1
    _uuid6_state._last_v6_timestamp = stamp
    h = "%032x" % (((stamp >> 12) & 0xFFFFFFFFFFFF) << 80 | (0x6000 | stamp & 0x0FFF) << 64
                   | (0x8000 | step & 0x3FFF) << 48 | random.getrandbits(48))
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def interrupt_id(task_ns: str, answered: int) -> str:
    """LangGraph's interrupt id: by the task's namespace and how many answers it has."""
    return xxh3_128_hexdigest((f"{task_ns}|{answered}" if answered else task_ns).encode())


@dataclass(slots=True)
class TaskStatus:
    """What a task's saved writes say of it (LangGraph's reading: finished iff it has an
    output write)."""

    output: list[tuple[str, Any]] = field(default_factory=list)
    interrupts: list[Any] = field(default_factory=list)
    resume: list[Any] | None = None
    error: BaseException | None = None
    error_source: str | None = None
    """The node whose failure the task's error handler was handling when it failed too."""

    @property
    def finished(self) -> bool:
        return bool(self.output)


def task_statuses(writes: Iterable[tuple[str, str, Any]]) -> dict[str, TaskStatus]:
    statuses: dict[str, TaskStatus] = {}
    for tid, channel, value in writes:
        if tid == NULL_TASK_ID:
            continue
        status = statuses.setdefault(tid, TaskStatus())
        if channel == INTERRUPT:
            status.interrupts.extend(
                our_interrupt(i) for i in (value if isinstance(value, Sequence) else [value]))
        elif channel == ERROR:
            status.error = status.error or value
        elif channel == RESUME:
            status.resume = value if isinstance(value, list) else [value]
        elif channel == ERROR_SOURCE_NODE:
            status.error_source = str(value)
        elif channel not in CONTROL_WRITES:
            status.output.append((channel, value))
    return statuses


class Versions:
    """The saver's names of the engine's channel versions (index: engine version)."""

    __slots__ = ("names", "saver")

    def __init__(self, saver: Any, names: list[Any] | None = None) -> None:
        self.saver = saver
        self.names: list[Any] = names if names is not None else [None]

    def cover(self, latest: int) -> list[Any]:
        """The names, with one made for each engine version up to `latest`."""
        names = self.names
        while len(names) <= latest:
            names.append(self.saver.get_next_version(names[-1], None))
        return names

    @classmethod
    def ranked(cls, saver: Any, checkpoint: dict[str, Any]
               ) -> tuple[Versions, dict[Any, int]]:
        """The names found in `checkpoint`, and each one's engine version (in order)."""
        found = set((checkpoint.get("channel_versions") or {}).values())
        for seen in (checkpoint.get("versions_seen") or {}).values():
            found.update(seen.values())
        ordered = sorted(found)
        return cls(saver, [None, *ordered]), {name: i for i, name in enumerate(ordered, 1)}

    @classmethod
    def read(cls, saver: Any, checkpoint: dict[str, Any]
             ) -> tuple[Versions, dict[str, int], dict[str, dict[str, int]]]:
        """The names found in `checkpoint`, and its versions as engine versions (in order)."""
        versions, rank = cls.ranked(saver, checkpoint)
        return (versions,
                {c: rank[v] for c, v in (checkpoint.get("channel_versions") or {}).items()},
                {n: {c: rank[v] for c, v in seen.items()}
                 for n, seen in (checkpoint.get("versions_seen") or {}).items()})


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


_NO_RUN_ID = object()
"""Stands for a run without `metadata.run_id` (never equal to a saved one)."""


class Persistence:
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
        self.checkpoint: dict[str, Any] = _empty_checkpoint()
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
        self.exit_writes: list[tuple[str, list[tuple[str, Any]]]] = []
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
        self.call_names: list[str] = []
        """Names of the tasks nodes called (`ferrograph.func.task`): LangGraph's empty rows
        of `versions_seen`, kept from checkpoint to checkpoint."""

    # -- starting -----------------------------------------------------------------------------

    def start(self, run: GraphRun, input: Any) -> Run:
        """The Rust run this run continues from: the thread's checkpoint with `input`
        written in (a new input), or as it was (None or a `Command`: a resume)."""
        return self._begin(run, input, self.saver.get_tuple(self.config))

    async def astart(self, run: GraphRun, input: Any) -> Run:
        """`start` for a run driven on an event loop: the saver's async methods, and from
        now on its writes wait in `outbox` for the driver to `aflush` them."""
        self.outbox = []
        rust = self._begin(run, input, await self.saver.aget_tuple(self.config))
        await self.aflush()
        return rust

    async def aflush(self) -> None:
        """Hands the saver, in order, the writes waiting in `outbox` (async runs)."""
        outbox = self.outbox
        while outbox:
            method, args = outbox.pop(0)
            await getattr(self.saver, method)(*args)

    def _put_writes(self, config: dict[str, Any], writes: list[tuple[str, Any]],
                    tid: str) -> None:
        if self.outbox is not None:
            self.outbox.append(("aput_writes", (config, writes, tid)))
        else:
            self.saver.put_writes(config, writes, tid)

    def _begin(self, run: GraphRun, input: Any, saved: CheckpointTuple | None) -> Run:
        addressed = bool(self.config["configurable"].get("checkpoint_id"))
        if saved is None and addressed:
            raise ValueError(
                f"No checkpoint {self.config['configurable']['checkpoint_id']!r} in thread "
                f"{self.config['configurable'].get('thread_id')!r}")
        is_command = isinstance(input, Command)
        if saved is not None:
            rust = restore_run(self, saved, run.recursion_limit)
            self.adopt(saved)
        else:
            rust = self.fresh_run(run.recursion_limit)
        # A top-level run whose `metadata.run_id` is that of the saved checkpoint re-enters
        # that run (LangGraph's server retrying a run after a restart): it resumes.
        same_run = (self.parent is None and saved is not None
                    and self.run_metadata.get("run_id", _NO_RUN_ID)
                    == (saved.metadata or {}).get("run_id"))
        resuming = saved is not None and (
            input is None or is_command or same_run
            or (self.parent is not None and self.parent.resumed))
        if resuming:
            time_travel = addressed and not (is_command and input.resume is not None)
            if time_travel:
                # Time travel: the writes saved against that checkpoint are rerun.
                self.reapply = False
                self.pending = [w for w in self.pending if w[1] != RESUME]
            if is_command:
                self._take_command(rust, input)
            null_writes = [(c, v) for t, c, v in self.pending if t == NULL_TASK_ID
                           and c not in NOT_STATE]
            if null_writes:
                rust.apply_external(self.engine_writes(null_writes))
            if time_travel and self.metadata.get("source") not in ("update", "fork"):
                # Replaying a past checkpoint starts a branch of the thread: a fork
                # checkpoint of its own (LangGraph's), which the replayed steps follow.
                self.pending = [w for w in self.pending if w[1] != INTERRUPT]
                self.save(rust, "fork")
                rust.advance_step()
            self.resumed = True
            # Breakpoints already passed do not stop the resumed run again.
            self.interrupt_seen = self._versions_now(rust)
            # The start node, when the thread stopped before it ran, maps the saved input.
            run.input = _ours_command(
                (saved.checkpoint.get("channel_values") or {}).get("__start__"))
            return rust
        # A `Command` on a thread with no checkpoint is the run's input (as in LangGraph:
        # its resume value finds no interrupt to answer).
        if input is None:
            raise EmptyInputError("Received no input for __start__")
        if saved is not None:
            rust.write_input()
            self.pending = []
        self.save(rust, "input", start_value=input)
        return rust

    def adopt(self, saved: CheckpointTuple) -> None:
        """Continues the thread from `saved` (its newest checkpoint, or the one asked for)."""
        self.checkpoint = saved.checkpoint
        self.metadata = dict(saved.metadata or {})
        self.parent_config = saved.parent_config
        self.pending = [(str(t), c, v) for t, c, v in saved.pending_writes or ()]
        self.saved_id = saved.checkpoint["id"]
        self.saved_step = self.metadata.get("step", -1)
        self.config = {**self.config, "configurable": {
            **self.config["configurable"], **saved.config["configurable"]}}

    def fresh_run(self, recursion_limit: int) -> Run:
        """The Rust run of a thread with no checkpoint yet."""
        graph = self.graph
        self.versions.cover(1)
        return Run(graph.plan, graph.reducers, graph.start_values(), recursion_limit)

    def _take_command(self, rust: Run, command: Command) -> None:
        """A resume's `Command`: its answer(s) for the pending interrupts, its update and
        route, saved as the null task's writes (LangGraph's place for them)."""
        writes: list[tuple[str, Any]] = []
        resume = command.resume
        if resume is not None:
            if isinstance(resume, dict) and resume and all(
                    is_interrupt_id(k) for k in resume):
                self.resume_map = dict(resume)
            else:
                pending = self.pending_interrupts()
                if len({i.id for i in pending}) > 1:  # a task's, and its caller's: one
                    raise RuntimeError(
                        "When there are multiple pending interrupts, you must specify the "
                        "interrupt id when resuming. Docs: https://docs.langchain.com/oss/"
                        "python/langgraph/interrupts#handling-multiple-interrupts.")
                writes.append((RESUME, resume))
        for key, value in command._update_as_tuples():
            writes.append((key, value))
        goto = command.goto
        for dest in ([goto] if isinstance(goto, (str, Send)) else goto or ()):
            if isinstance(dest, Send):
                writes.append((TASKS, WireSend(dest.node, dest.arg)))
            else:
                writes.append((f"branch:to:{dest}", None))
        if not writes and self.resume_map is None:
            raise EmptyInputError("Received empty Command input")
        if writes:
            self.put_writes(NULL_TASK_ID, writes)

    def pending_interrupts(self) -> list[Any]:
        return [i for s in task_statuses(self.pending).values() if not s.finished
                for i in s.interrupts]

    def take_null_resume(self) -> Any:
        """The run's resume value, for the first interrupt that asks for it (and only it);
        a graph run by a task takes its caller's when it has none of its own."""
        for i, (tid, channel, value) in enumerate(self.pending):
            if tid == NULL_TASK_ID and channel == RESUME:
                del self.pending[i]
                return value
        return None if self.parent is None else self.parent.take_null_resume()

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

    def task_ended(self, t: Task) -> None:
        """Saves what a task left: its writes, its interrupt or its error (on the thread
        that ran it, as it ends, so a crash later in the step loses nothing)."""
        if t.saved_writes is not None:
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
        self.put_writes(t.id, writes)

    def handler_task_id(self, t: Task) -> str:
        """LangGraph's id of the task in which `t`'s error handler runs."""
        name = t.runner.error_handler_node  # type: ignore[union-attr]
        ns = f"{self.ns}|{name}" if self.ns else name
        return task_id(self.checkpoint["id"], ns, str(t.step), name, PUSH,
                       "node_error_handler", t.id)

    def put_writes(self, tid: str, writes: list[tuple[str, Any]]) -> None:
        if tid == NULL_TASK_ID:
            special = {c for c, _ in writes if c in CONTROL_WRITES}
            self.pending = [w for w in self.pending
                            if not (w[0] == tid and w[1] in special)]
        elif self.pending:
            self.pending = [w for w in self.pending if w[0] != tid]
        self.pending.extend([(tid, c, v) for c, v in writes])
        if self.durability == "exit":
            self.exit_writes.append((tid, writes))
            return
        self._put_writes(self._at_checkpoint(), writes, tid)

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
            interrupts = tuple(_as_dict(i) for i in status.interrupts) if status else ()
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
        """Each written channel's version, by the saver's name."""
        names = self.versions.cover(rust.latest_version)
        return {channel: names[v] for channel, v in
                zip(self.graph.channel_names, rust.channel_versions, strict=True) if v}

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
        `versions_seen` are replaced, never changed, so sharing them is safe)."""
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
        new_values, removed, new_versions, new_seen, sends = rust.checkpoint_changes(
            names, wire_value(start_value), reset)
        for key in self.graph.untracked_keys:  # LangGraph's `UntrackedValue`: never saved
            new_values.pop(key, None)
        if sends:
            new_values[TASKS] = [WireSend(node, _tracked(self.graph, arg)) for node, arg in sends]
            new_versions[TASKS] = names[rust.latest_version]
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
            if sends and old_versions.get(TASKS) == new_versions[TASKS]:
                del changed[TASKS]
        versions.update(new_versions)
        for node, row in new_seen.items():
            if row:
                seen[node] = row
            else:
                seen.pop(node, None)
        if self.interrupt_seen:
            seen[INTERRUPT] = dict(self.interrupt_seen)
        else:
            seen.pop(INTERRUPT, None)
        seen.setdefault(INPUT, {})
        for name in self.call_names:  # tasks called from nodes (`ferrograph.func.task`)
            seen.setdefault(name, {})
        self._live_versions = versions
        self.checkpoint = {
            "v": CHECKPOINT_FORMAT,
            "id": checkpoint_id(step),
            "ts": now_iso(),
            "channel_values": values,
            "channel_versions": versions,
            "versions_seen": seen,
            # Channels this step wrote that hold something now (LangGraph's list).
            "updated_channels": sorted([c for c in changed if c in values]),
        }
        if _CHECK_CHECKPOINTS:
            _check_checkpoint(self, rust, names, start_value)
        self.metadata = {"source": source, "step": step,
                         "parents": dict(self.parents) if self.parent is not None
                         else self.metadata.get("parents") or {}}
        self.pending = []
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
            saved = self.saver.put(put_config, copy_checkpoint(self.checkpoint), self.metadata,
                                   new_versions)
        self.put_config = saved
        self.saved_id = self.checkpoint["id"]
        self.config = {**self.config, "configurable": {
            **self.config["configurable"], **saved["configurable"]}}

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
        self._put(dict(self.checkpoint["channel_versions"]))
        self._flush_exit_writes()

    def _flush_exit_writes(self) -> None:
        writes, self.exit_writes = self.exit_writes, []
        for tid, ws in writes:
            self._put_writes(self._at_checkpoint(), ws, tid)


def saved_form(graph: CompiledStateGraph, writes: Iterable[tuple[int, int, Any]],
               node_id: int | None, *, tracked_only: bool = True) -> list[tuple[str, Any]]:
    """Engine writes as LangGraph saves (or caches) them — state keys, routes, sends — with
    node `node_id`'s static edges. `tracked_only`: without `UntrackedValue` keys, also
    inside `Send` arguments (what a checkpoint may hold)."""
    untracked = graph.untracked_keys if tracked_only else frozenset()
    out: list[tuple[str, Any]] = []
    for kind, target, value in writes:
        if kind == WRITE_KEY:
            if graph.key_names[target] not in untracked:
                out.append((graph.key_names[target], value))
        elif kind == WRITE_GOTO:
            out.append((f"branch:to:{graph.node_names[target]}", None))
        elif kind == WRITE_SEND:
            if untracked and isinstance(value, dict):
                value = {k: v for k, v in value.items() if k not in untracked}
            out.append((TASKS, WireSend(graph.node_names[target], value)))
    if node_id is not None:
        out.extend(graph.static_writes[node_id])
    return out


def engine_writes(graph: CompiledStateGraph, writes: Iterable[tuple[str, Any]],
                  skip: frozenset[str] | set[str] = frozenset()) -> list[tuple[int, int, Any]]:
    """Saved (or cached) writes as the engine applies them; the node's static edges come
    from the plan (barrier arrivals and `skip` are left out)."""
    out: list[tuple[int, int, Any]] = []
    for channel, value in writes:
        if channel in NOT_STATE or channel in skip:
            continue
        if (key := graph.key_ids.get(channel)) is not None:
            out.append((WRITE_KEY, key, value))
        elif channel == TASKS:
            node = graph.node_ids.get(getattr(value, "node", None))
            if node is not None:
                out.append((WRITE_SEND, node, value.arg))
        elif channel.startswith("branch:to:"):
            node = graph.node_ids.get(channel[len("branch:to:"):])
            if node is not None:
                out.append((WRITE_GOTO, node, None))
        elif not channel.startswith("join:"):
            raise InvalidUpdateError(f"Unknown channel {channel!r} in saved writes")
    return out


def _tracked(graph: CompiledStateGraph, arg: Any) -> Any:
    """A pending `Send`'s argument as saved: without untracked keys (LangGraph's rule)."""
    untracked = graph.untracked_keys
    if untracked and isinstance(arg, dict):
        return {k: v for k, v in arg.items() if k not in untracked}
    return arg


def with_checkpoint_map(config: dict[str, Any] | None,
                         metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    """A subgraph checkpoint's config names the checkpoints of the graphs around it
    (`checkpoint_map`), as LangGraph's does."""
    parents = (metadata or {}).get("parents")
    if config is None or not parents:
        return config
    conf = config["configurable"]
    return {**config, "configurable": {**conf, "checkpoint_map": {
        **parents, conf["checkpoint_ns"]: conf["checkpoint_id"]}}}


def restore_run(persistence: Persistence, saved: CheckpointTuple, recursion_limit: int) -> Run:
    """The Rust run `saved` describes (its versions kept by `persistence`)."""
    graph = persistence.graph
    checkpoint = saved.checkpoint
    persistence.versions, rank = Versions.ranked(persistence.saver, checkpoint)
    seen = checkpoint.get("versions_seen") or {}
    persistence.interrupt_seen = dict(seen.get(INTERRUPT) or {})
    values = checkpoint.get("channel_values") or {}
    # A key the checkpoint has no value for starts as in a new run (a reducer's empty value).
    starts = zip(graph.key_names, graph.start_values(), strict=True)
    values = {**{k: v for k, v in starts if v is not None}, **values}
    sends = [(graph.node_ids[s.node], s.arg) for s in values.get(TASKS) or ()
             if getattr(s, "node", None) in graph.node_ids]
    # The saver's version names go as they are, with their ranks (nodes the plan does not
    # have, like `__input__` and `__interrupt__`, are not read).
    return Run.restore(graph.plan, graph.reducers, values,
                       checkpoint.get("channel_versions") or {}, seen, sends,
                       (saved.metadata or {}).get("step", -1), recursion_limit, rank)


def _wire_types() -> tuple[type[Interrupt], type[Send], type[Command]]:
    """The classes interrupts and sends are saved as. With LangGraph installed, they are
    saved under LangGraph's names (the serializer records a class by module and name), so
    the stored bytes are LangGraph's and a thread moves between the engines; our classes
    otherwise. Nothing of LangGraph is imported here."""
    if importlib.util.find_spec("langgraph") is None:
        return Interrupt, Send, Command

    class WireInterrupt(Interrupt):
        __slots__ = ()

    class WireSend(Send):
        __slots__ = ()

    @dataclasses.dataclass(kw_only=True, slots=True, frozen=True)
    class WireCommand(Command):
        pass

    for cls, name in ((WireInterrupt, "Interrupt"), (WireSend, "Send"),
                      (WireCommand, "Command")):
        cls.__module__, cls.__name__, cls.__qualname__ = "langgraph.types", name, name
    return WireInterrupt, WireSend, WireCommand


WireInterrupt, WireSend, WireCommand = _wire_types()


def wire_value(value: Any) -> Any:
    """`value` as it is saved (a `Command` under LangGraph's name, see `_wire_types`)."""
    if type(value) is Command:
        return WireCommand(graph=value.graph, update=value.update, resume=value.resume,
                           goto=value.goto)
    return value


def our_interrupt(interrupt: Any) -> Interrupt:
    """A saved interrupt (LangGraph's class, when it was saved under its name) as ours."""
    if type(interrupt) is Interrupt:
        return interrupt
    return Interrupt(interrupt.value, interrupt.id,
                     response_schema=getattr(interrupt, "response_schema", None))


def _as_dict(interrupt: Any) -> dict[str, Any]:
    return {"value": interrupt.value, "id": interrupt.id,
            "response_schema": getattr(interrupt, "response_schema", None)}


def _ours_command(value: Any) -> Any:
    """A saved input: a `Command` saved under LangGraph's name comes back as ours."""
    if type(value).__name__ == "Command" and not isinstance(value, Command):
        return Command(graph=value.graph, update=value.update, resume=value.resume,
                       goto=value.goto)
    return value


def is_interrupt_id(key: Any) -> bool:
    return isinstance(key, str) and len(key) == 32 and all(
        c in "0123456789abcdef" for c in key)


def copy_checkpoint(checkpoint: dict[str, Any], *, own_rows: bool = False) -> dict[str, Any]:
    """What the saver gets: its own dicts (`Persistence.save` updates ours in place), which
    share the rows of `versions_seen` (replaced, never changed). With `own_rows`, its own
    rows and list of `updated_channels` too (None when empty), for a run that changes them
    in place (the functional API's, `_func_thread`)."""
    copy = {**checkpoint,
            "channel_values": dict(checkpoint["channel_values"]),
            "channel_versions": dict(checkpoint["channel_versions"]),
            "versions_seen": dict(checkpoint["versions_seen"])}
    if own_rows:
        copy["versions_seen"] = {k: dict(v) for k, v in checkpoint["versions_seen"].items()}
        copy["updated_channels"] = list(checkpoint.get("updated_channels") or []) or None
    return copy


def _empty_checkpoint() -> dict[str, Any]:
    """LangGraph's `empty_checkpoint()`, the checkpoint of a run before it starts. Its id
    and time are never saved nor used (a run saves or loads a checkpoint first), so they
    are made once: a snapshot or an update builds a `Persistence` per checkpoint."""
    return {**_EMPTY_CHECKPOINT, "channel_values": {}, "channel_versions": {},
            "versions_seen": {}, "pending_sends": []}


def now_iso(now: Any = datetime.now, utc: timezone = timezone.utc) -> str:
    return now(utc).isoformat()


_EMPTY_CHECKPOINT: dict[str, Any] = {
    "v": CHECKPOINT_FORMAT, "id": checkpoint_id(-2), "ts": now_iso(), "channel_values": {},
    "channel_versions": {}, "versions_seen": {}, "pending_sends": [], "updated_channels": None}

_CHECK_CHECKPOINTS = bool(os.environ.get("FERROGRAPH_CHECK_CHECKPOINTS"))
"""Debugging: each checkpoint built from changes is compared with one built from scratch."""


def _check_checkpoint(persistence: Persistence, rust: Run, names: list[Any],
                      start_value: Any) -> None:
    # From scratch (`reset`): all of it, nothing kept; what the next step reports is the
    # change since now, which the kept dicts (just checked) equal.
    values, _, versions, seen, sends = rust.checkpoint_changes(
        names, wire_value(start_value), True)
    seen = {node: row for node, row in seen.items() if row}
    for key in persistence.graph.untracked_keys:
        values.pop(key, None)
    if persistence.interrupt_seen:
        seen[INTERRUPT] = dict(persistence.interrupt_seen)
    seen.setdefault(INPUT, {})
    if sends:
        values[TASKS] = [WireSend(node, _tracked(persistence.graph, arg)) for node, arg in sends]
        versions[TASKS] = names[rust.latest_version]
    checkpoint = persistence.checkpoint
    for field_name, full in (("channel_values", values), ("channel_versions", versions),
                             ("versions_seen", seen)):
        built = checkpoint[field_name]
        if built.keys() != full.keys() or any(
                built[k] is not full[k] and built[k] != full[k] for k in full):
            raise AssertionError(f"checkpoint {field_name}: built {built!r}, full {full!r}")

