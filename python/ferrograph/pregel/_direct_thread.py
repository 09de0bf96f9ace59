"""A checkpointed `invoke`'s plain steps on the Rust driver (`run_thread_steps`,
`rust/src/python/direct_thread.rs`).

`GraphRun` runs a run with a thread step by step in Python. Most steps of most runs are
tasks of nodes that just run, and for a run that streams nothing, reports to nobody and stops
at no breakpoint, those go by the Rust driver instead: it plans, prepares, calls (a step of
several tasks shared with workers, as the direct driver shares one) and applies, and calls
back here for what the thread needs (naming the step's tasks as LangGraph names them, saving
each task's writes or failure as it ends, saving the checkpoint), through the same
`Persistence` and `GraphRun` methods the Python loop calls — or, for a step of one pull task
with nothing pending, in Rust (`rust/src/python/thread_save.rs`, given its parts by
`thread_save`), on the same `Persistence` attributes. Any other step (the start node,
tasks with saved writes or answers, a node with an error handler) goes back to the Python
loop at its step boundary, as does a step in which a node paused; the Python loop comes back
here for the steps after it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.base import id as _uuid6_state

from ferrograph._core import ConcurrentUpdate, OutOfSteps, run_thread_steps
from ferrograph.config import (
    CONFIG_KEY_RUN,
    CONFIG_KEY_RUNTIME,
    CONFIG_KEY_TASK,
    CONFIG_KEY_TASK_ID,
)
from ferrograph.errors import is_invalid_resume
from ferrograph.pregel import _checkpoint
from ferrograph.pregel._checkpoint import Scratchpad
from ferrograph.pregel._errors import concurrent_update_error, recursion_error
from ferrograph.pregel._task import Task
from ferrograph.pregel._thread_format import (
    CONTROL_WRITES,
    PULL,
    add_pull_id_parts,
    pull_id_parts,
)

if TYPE_CHECKING:
    from ferrograph.pregel._loop import GraphRun
    from ferrograph.pregel.main import CompiledStateGraph

RUN_OVER, STEP_PLANNED, STEP_RUN = 0, 1, 2
"""What `run_thread_steps` returns (see the Rust module)."""


def thread_steps(run: GraphRun) -> Callable[[], tuple[list[Task], bool] | None] | None:
    """For a run the Rust driver may take steps of: a call that runs steps until the run is
    over (None) or one is the Python loop's: `(tasks, ran)`, its tasks planned and named (not
    run), or run (`ran`: a task paused or refused its answer, recorded on it). A failed task's
    error is raised. None: a run whose steps all go by the Python loop."""
    graph = run.graph
    saving = run.saving
    if not (saving is not None and saving.parent is None and not saving.ns
            and graph.direct_by_build and graph.direct is not None and not graph.delta_keys
            and not run.nested and not run.spec.modes and not run.interrupt_before
            and not run.interrupt_after and graph.step_timeout is None
            and run.user_callbacks is None and run.node_finished is None
            and run.trace is None):
        return None
    steps = ThreadSteps(run)
    configurable = {**run._base_configurable, "checkpoint_ns": None,
                    CONFIG_KEY_RUNTIME: run._runtime, CONFIG_KEY_TASK_ID: None,
                    CONFIG_KEY_RUN: None, CONFIG_KEY_TASK: None}  # (the order `_prepare` sets)
    config = {**run._task_config, "callbacks": None}
    calls = {"name_step": steps.name_step, "task_finished": saving.task_ended,
             "task_failed": steps.task_failed, "step_applied": steps.step_applied,
             "steps": steps, "fast": thread_save(run)}

    def run_steps() -> tuple[list[Task], bool] | None:
        try:
            outcome = run_thread_steps(graph.direct, run.run, graph, run.strict_input, config,
                                       configurable, run.base_metadata, run.max_concurrency,
                                       run.stop_check, run.control, calls)
        except OutOfSteps:
            raise recursion_error(run.recursion_limit) from None
        except ConcurrentUpdate as e:
            raise concurrent_update_error(e.args[0]) from None
        if outcome == RUN_OVER:
            return None
        return steps.planned, outcome == STEP_RUN

    return run_steps


class ThreadSteps:
    """The thread's calls of one run's Rust steps (see `run_thread_steps`)."""

    __slots__ = ("run", "planned", "plain", "pulls")

    def __init__(self, run: GraphRun) -> None:
        self.run = run
        self.planned: list[Task] = []
        """The tasks of the step planned last."""
        self.plain, self.pulls = _node_tables(run.graph)

    def name_step(self, planned: list[tuple[int, int | None, Any]],
                  step: int) -> list[Task] | None:
        """The step's tasks made and named as `GraphRun.plan_step` makes them, for the Rust
        driver to run; None for a step that is the Python loop's (kept in `planned`). (A step
        of one fresh pull task is mostly named in Rust: `thread_save.rs`, change both.)"""
        run = self.run
        saving = run.saving
        if len(planned) == 1 and not saving.pending and not saving.resume_map:  # type: ignore[union-attr]
            node_id, push, _ = planned[0]
            if push is None and self.plain[node_id]:  # (most steps)
                name, path, triggers, runner = self.pulls[node_id]
                t = Task(0, node_id, name, "", path, triggers, None, None, runner, step)
                saving.name_fresh_pull(t, step)  # type: ignore[union-attr]
                self.planned = tasks = [t]
                return tasks
        self.planned = tasks = [run._new_task(i, node_id, push, arg, step)
                                for i, (node_id, push, arg) in enumerate(planned)]
        saving.name_tasks(tasks, step)  # type: ignore[union-attr]
        plain = self.plain
        for t in tasks:
            if not (plain[t.node_id] and t.saved_writes is None and t.failed_before is None
                    and t.timeout is None and not t.scratchpad.resume):
                return None
        return tasks

    def task_failed(self, t: Task, error: BaseException) -> BaseException | None:
        """Records the node's failure or pause on `t` as the Python loop does (and saves
        it); the error that fails the step at once, or None: a pause or a refused answer,
        after which the step's other tasks run on (see `raise_refused_answer`)."""
        self.run.record_error(t, error)
        failure = t.error
        return failure if failure is not None and not is_invalid_resume(failure) else None

    def step_applied(self, tasks: list[Task]) -> None:
        for t in tasks:
            t.config = {}  # (frees the task now: its config refers back to it)
        saving = self.run.saving
        saving.step_applied(tasks)  # type: ignore[union-attr]
        saving.save(self.run.run, "loop")  # type: ignore[union-attr]
        saving.resumed = False  # type: ignore[union-attr]


def thread_save(run: GraphRun) -> dict[str, Any] | None:
    """What the Rust steps take the thread's side of a common step with (naming its one
    pull task, saving its writes and its checkpoint: `rust/src/python/thread_save.rs`);
    None for a run whose saving stays in Python: an async run's outbox, untracked keys,
    checked checkpoints, a saver that names versions itself or whose `put` keeps the dicts
    it gets, a state key named like one of LangGraph's control writes."""
    saving = run.saving
    graph = run.graph
    at_exit = saving.durability == "exit"  # type: ignore[union-attr]
    if (saving.outbox is not None or graph.untracked_keys  # type: ignore[union-attr]
            or _checkpoint._CHECK_CHECKPOINTS
            or not saving.versions.made_in_rust()  # type: ignore[union-attr]
            or (not at_exit and saving.put_copies())):  # type: ignore[union-attr]
        return None
    nodes = _pull_nodes(graph)
    if nodes is None:
        return None
    saver = saving.saver  # type: ignore[union-attr]
    return {"saving": saving, "task_type": Task, "scratchpad_type": Scratchpad,
            "nodes": nodes, "key_names": graph.key_names,
            "branch_names": [f"branch:to:{name}" for name in graph.node_names],
            "uuid_state": _uuid6_state,
            "put": None if at_exit else saver.put,
            "put_writes": None if at_exit else saver.put_writes,
            "run_metadata": saving.run_metadata or None}  # type: ignore[union-attr]


def _pull_nodes(graph: CompiledStateGraph) -> list[tuple[Any, ...] | None] | None:
    """`thread_save`'s `nodes` (made once per graph): by node id, for a node whose tasks
    may run on the Rust driver, its pull task's name, path, triggers, runner, the bytes
    its id hashes before and after the step, and its static edges as saved; None for a
    graph with a state key named like a control write."""
    if "_thread_save_nodes" in graph.__dict__:
        return graph._thread_save_nodes
    nodes: list[tuple[Any, ...] | None] | None = None
    if CONTROL_WRITES.isdisjoint(graph.key_names):
        plain, pulls = _node_tables(graph)
        parts = pull_id_parts(graph, "")
        nodes = []
        for node_id, (name, path, triggers, runner) in enumerate(pulls):
            static = graph.static_writes[node_id]
            if not plain[node_id] or any(c in CONTROL_WRITES for c, _ in static):
                nodes.append(None)
                continue
            before, after = parts.get(node_id) or add_pull_id_parts(graph, "", parts,
                                                                    node_id, name)
            nodes.append((name, path, triggers, runner, before, after,
                          [tuple(w) for w in static]))
    graph._thread_save_nodes = nodes
    return nodes


def _node_tables(graph: CompiledStateGraph) -> tuple[list[bool], list[tuple[Any, ...]]]:
    """By node id (made once per graph): whether its tasks may run on the Rust driver (not
    the start node, nor a node with an error handler), and what its pull tasks are made of
    (`GraphRun._new_task`'s name, path, triggers and runner)."""
    tables = graph.__dict__.get("_thread_step_nodes")
    if tables is None:
        plain = [name in graph.runners and graph.runners[name].handler is None
                 for name in graph.node_names]
        plain[0] = False
        pulls = [(name, (PULL, name), graph.triggers[node_id], graph.runners.get(name))
                 for node_id, name in enumerate(graph.node_names)]
        tables = graph._thread_step_nodes = (plain, pulls)
    return tables
