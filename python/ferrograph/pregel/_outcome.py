"""What a task leaves: `TaskOutcome`, the part of `GraphRun` that runs a prepared task
(its node, or the start node's mapping of the input) and turns its result into the task's
writes, routes, `updates` payload and messages, or records its error or its pause; with a
checkpointer, what it left is saved as it ends.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ferrograph._core import ChannelClosed
from ferrograph._schema import managed_values
from ferrograph.errors import is_interrupt
from ferrograph.pregel._errors import note_task_error, reports_failure
from ferrograph.pregel._stream import MODE_DONE
from ferrograph.pregel._trace import traced_start, traced_task
from ferrograph.pregel._write import (
    PUSHED_WRITES,
    Handled,
    branch_writes,
    map_input,
    output_writes,
    update_payload,
    with_pushed,
)
from ferrograph.types import Command

if TYPE_CHECKING:
    from ferrograph.pregel._task import Task


class TaskOutcome:
    """Running a task and keeping its outcome: the part of `GraphRun` that does it (the
    attributes it reads are the run's)."""

    def run_task(self, t: Task) -> None:
        """Runs a task to completion, recording its writes or its error (never raises)."""
        if not self.prepared(t):
            return
        if t.saved_writes is not None:
            return  # its saved writes stand in (see `_reused_items`)
        try:
            if t.node_id == 0:
                input = t.input
                if self.saving is not None and type(input) is Command and input.resume is not None:
                    # A thread's first input may be a resume: it has nothing to answer.
                    input = (dataclasses.replace(input, resume=None)
                             if input.update is not None or input.goto else {})
                output = map_input(self.graph, input, strict=self.strict_input)
                if self.trace is not None and t.name in self.graph.branches:
                    traced_start(t, output, self.finish_task, self.streams_outputs)  # a run for its routers
                    return
            else:
                if self.user_callbacks is not None:
                    traced_task(t, self.finish_task, self.streams_outputs)  # its routers run inside its trace
                    return
                output = t.runner.call(t.input, t.config)
            self.finish_task(t, output)
        except BaseException as e:  # noqa: BLE001 - recorded; the consumer raises it
            self.record_error(t, e)

    def finish_task(self, t: Task, output: Any) -> None:
        """Turns what the node returned into the task's writes, routes and messages."""
        self.take_output(t, output)
        if t.name in self.graph.branches:
            branch_writes(self.graph, t.name, t.config, self.run.read(None), t.writes,
                          t.input if t.runner is None else output, self.router_managed(t))
        self.task_done(t)
        self.emit_output(t, output)

    def router_managed(self, t: Task) -> dict[str, Any] | None:
        """The graph's managed values as routers after task `t` see them (None: the graph
        has none); each router takes those its schema names."""
        managed = self.graph.managed
        return managed_values(managed, t.step, self.recursion_limit) if managed else None

    def reuse_saved(self, t: Task) -> None:
        """A task that finished before the thread was interrupted: its saved writes stand
        in for running it."""
        saved = t.saved_writes or []
        t.writes = self.saving.engine_writes(saved)  # type: ignore[union-attr]
        graph = self.graph
        t.result_writes = [(c, v) for c, v in saved if c in graph.key_ids]
        if self._wants_updates:
            t.update = update_payload(t.result_writes, self.output_name_set, self.single_key)

    def take_output(self, t: Task, output: Any) -> None:
        if type(output) is Handled:  # its pushes are inside (see `NodeRunner`)
            t.handled = output
        elif PUSHED_WRITES:
            output = with_pushed(t.id, output)
        writes, result_writes = output_writes(self.graph, t.name, output)
        t.result_writes = result_writes
        if self._wants_updates:
            t.update = update_payload(result_writes, self.output_name_set, self.single_key)
        t.writes = writes

    def task_done(self, t: Task) -> None:
        """After its routers (whose routes and `Send`s are among its writes, saved with
        them as LangGraph saves them): the task's writes saved, `node_finished` told."""
        if self.saving is not None:
            self.saving.task_ended(t)
        if self.node_finished is not None and t.node_id != 0:
            self.node_finished(t.name)

    @staticmethod
    def emit_output(t: Task, output: Any) -> None:
        if t.messages is not None:
            if type(output) is Handled:
                output = output.output
            # LangGraph's run tags its metadata unless the caller's config did (create_agent)
            t.messages.emit_output(output, {"ls_integration": "langgraph", **t.config["metadata"]})

    def record_error(self, t: Task, e: BaseException) -> None:
        if PUSHED_WRITES:
            PUSHED_WRITES.pop(t.id, None)
        if is_interrupt(e):  # a pause, not a failure: siblings run on
            t.paused = True
            t.interrupts = tuple(e.args[0]) if e.args and e.args[0] else ()
            t.writes = []
            if self.saving is not None and t.interrupts:
                self.saving.task_ended(t)
            return
        t.error = note_task_error(e, t.name, t.id)
        if self.saving is not None and reports_failure(t.error):
            self.saving.task_ended(t)

    def run_and_report(self, t: Task, control: Any) -> None:
        """On a worker thread: runs the task, then tells the consumer through the channel."""
        self.run_task(t)
        try:
            control.push(MODE_DONE, t)
        except ChannelClosed:
            pass  # the consumer is gone; nothing is waiting for this task


def raise_refused_answer(tasks: Iterable[Task]) -> None:
    """At the end of a step: a task's refused answer to an interrupt (`is_invalid_resume`)
    fails the run only once the step's other tasks are done, so a task answered in the same
    resume is not cut off after its side effects (LangGraph's rule); any other failure
    stopped the step when it happened."""
    for t in tasks:
        if t.error is not None:
            raise t.error
