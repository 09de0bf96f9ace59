"""How a run's thread becomes the Rust run it continues: `ThreadStart`, the loading half of
`Persistence`. The thread's newest checkpoint (or the one the config names) is restored
into a Rust `Run` (`restore_run`, one call), or a fresh run starts; a new input is written
in and saved as the input checkpoint; a resume takes its `Command` (answers to interrupts,
update, route) as the null task's writes, and a replay of a past checkpoint forks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.base import CheckpointTuple

from ferrograph._core import Run
from ferrograph.errors import EmptyInputError
from ferrograph.pregel._delta import afetch_histories, restored_values, stamp_pairs, with_pending
from ferrograph.pregel._thread_format import (
    INTERRUPT,
    NOT_STATE,
    NULL_TASK_ID,
    RESUME,
    TASKS,
    Versions,
    WireSend,
    is_interrupt_id,
    our_command,
    task_statuses,
)
from ferrograph.types import Command, Send

if TYPE_CHECKING:
    from ferrograph.pregel._checkpoint import Persistence
    from ferrograph.pregel._loop import GraphRun


_NO_RUN_ID = object()
"""Stands for a run without `metadata.run_id` (never equal to a saved one)."""


class ThreadStart:
    """The loading half of `Persistence` (see the module doc); the attributes it reads
    and sets are `Persistence`'s."""

    def start(self, run: GraphRun, input: Any) -> Run:
        """The Rust run this run continues from: the thread's checkpoint with `input`
        written in (a new input), or as it was (None or a `Command`: a resume)."""
        return self._begin(run, input, self.saver.get_tuple(self.config))

    async def astart(self, run: GraphRun, input: Any) -> Run:
        """`start` for a run driven on an event loop: the saver's async methods, and from
        now on its writes wait in `outbox` for the driver to `aflush` them."""
        self.outbox = []
        saved = await self.saver.aget_tuple(self.config)
        if self.graph.delta_keys:
            self.delta_histories = await afetch_histories(self.graph, self.saver, saved)
        rust = self._begin(run, input, saved)
        await self.aflush()
        return rust

    def _begin(self, run: GraphRun, input: Any, saved: CheckpointTuple | None) -> Run:
        addressed = bool(self.config["configurable"].get("checkpoint_id"))
        if saved is None and addressed:
            raise ValueError(
                f"No checkpoint {self.config['configurable']['checkpoint_id']!r} in thread "
                f"{self.config['configurable'].get('thread_id')!r}")
        is_command = isinstance(input, Command)
        self.delta_addressed = addressed
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
            if not self.reapply and self.graph.delta_keys:
                # A new branch: its checkpoints must not replay the writes saved here.
                self.delta_forced = with_pending(self.graph, self.pending)
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
            run.input = our_command(
                (saved.checkpoint.get("channel_values") or {}).get("__start__"))
            return rust
        # A `Command` on a thread with no checkpoint is the run's input (as in LangGraph:
        # its resume value finds no interrupt to answer).
        if input is None:
            raise EmptyInputError("Received no input for __start__")
        if saved is not None:
            rust.write_input()
            if self.graph.delta_keys:  # the writes dropped here are not to be replayed
                self.delta_forced = with_pending(self.graph, self.pending)
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
        if self.graph.delta_keys:
            self.delta_stored_versions = dict(saved.checkpoint.get("channel_versions") or {})
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
            if self.graph.delta_keys:
                writes = stamp_pairs(self.graph, writes)
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
                if self.exit_writes:  # taken: no longer saved at the end (as LangGraph)
                    self.exit_writes = _without_null_resume(self.exit_writes)
                return value
        return None if self.parent is None else self.parent.take_null_resume()


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
    if graph.delta_keys:
        histories, persistence.delta_histories = persistence.delta_histories, None
        values.update(restored_values(graph, persistence.saver, saved, histories))
    sends = [(graph.node_ids[s.node], s.arg) for s in values.get(TASKS) or ()
             if getattr(s, "node", None) in graph.node_ids]
    # The saver's version names go as they are, with their ranks (nodes the plan does not
    # have, like `__input__` and `__interrupt__`, are not read).
    return Run.restore(graph.plan, graph.reducers, values,
                       checkpoint.get("channel_versions") or {}, seen, sends,
                       (saved.metadata or {}).get("step", -1), recursion_limit, rank)


def _without_null_resume(exit_writes: list[tuple[str, list[tuple[str, Any]], str]]
                         ) -> list[tuple[str, list[tuple[str, Any]], str]]:
    """`exit_writes` without the run's resume value (the null task's `RESUME` write); a
    null task entry left with nothing is dropped."""
    kept = []
    for tid, writes, path in exit_writes:
        if tid == NULL_TASK_ID:
            writes = [(c, v) for c, v in writes if c != RESUME]
            if not writes:
                continue
        kept.append((tid, writes, path))
    return kept
