"""A step's stream items: `StepItems`, the part of `GraphRun` that makes the items around a
step for the modes the caller subscribed to: `tasks`/`debug` start and end items, `updates`
of each task, `checkpoints`, the items of a pause, and the items of a batch of drained
chunks (a task's completion among them). Which tasks must run live (off the consumer's
thread) is decided here too, from the same subscription.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ferrograph._core import new_task_id
from ferrograph.errors import is_invalid_resume
from ferrograph.pregel._errors import reports_failure
from ferrograph.pregel._messages import user_tags
from ferrograph.pregel._stream import MODE_DONE, MODE_FORWARD, MODE_NAMES
from ferrograph.pregel._write import result_dict

if TYPE_CHECKING:
    from ferrograph.pregel._task import Task

ENGINE_METADATA_KEYS = frozenset((
    "thread_id", "checkpoint_id", "checkpoint_ns", "checkpoint_map", "langgraph_step",
    "langgraph_node", "langgraph_triggers", "langgraph_path", "langgraph_checkpoint_ns",
))
"""Task metadata the engine sets itself (left out of `tasks` payloads)."""


class StepItems:
    """A step's items: the part of `GraphRun` that makes them (the attributes it reads
    are the run's)."""

    def _reused_items(self, tasks: list[Task]) -> Iterator[Any]:
        """Tasks that finished before the thread paused take their saved writes now; their
        updates go out first, marked as LangGraph marks them (`cached`)."""
        for t in tasks:
            if t.saved_writes is None:
                continue
            self.reuse_saved(t)
            if self.spec.wants("updates", t.name) and t.node_id != 0:
                yield self.emit("updates", {t.name: t.update,
                                            "__metadata__": {"cached": True}})

    def _checkpoint_items(self, tasks: list[Task]) -> Iterator[Any]:
        """The `checkpoints` (and `debug`) item of the thread's newest checkpoint, with the
        tasks of the step that starts from it, as LangGraph streams it."""
        saving = self.saving
        if saving is None:
            return
        payload = saving.checkpoint_payload(
            self.values_item(self.run.read(self.output_ids)), tasks, self.output_name_set)
        if "checkpoints" in self.spec.modes:
            yield self.emit("checkpoints", payload)
        if "debug" in self.spec.modes:
            yield self.emit("debug", {"step": saving.metadata.get("step"),
                                      "timestamp": saving.checkpoint["ts"],
                                      "type": "checkpoint", "payload": payload})

    def _interrupt_items(self) -> Iterator[Any]:
        self.final_values = self.run.read(self.result_ids)
        if "updates" in self.spec.modes:
            yield self.emit("updates", {"__interrupt__": ()})

    def _task_start_items(self, tasks: list[Task], step: int) -> Iterator[Any]:
        spec = self.spec
        if "tasks" not in spec.modes and "debug" not in spec.modes:
            return
        for t in tasks:
            payload = {"id": t.id, "name": t.name, "input": t.input, "triggers": t.triggers}
            # The user's metadata (run and node) and tags ride along, as in LangGraph.
            metadata = {k: v for k, v in t.config["metadata"].items()
                        if k not in ENGINE_METADATA_KEYS}
            if tags := user_tags(t.config.get("tags")):
                metadata["tags"] = tags
            if metadata:
                payload["metadata"] = metadata
            if spec.wants("tasks", t.name):
                yield self.emit("tasks", payload)
            if spec.wants("debug", t.name):
                yield self.emit("debug", debug_item("task", step, payload))

    def task_end_items(self, t: Task, step: int) -> Iterator[Any]:
        """The items of a task's end: its update, and its result in `tasks`/`debug` modes
        (for a failed task, only the result, with its error, as LangGraph streams it before
        raising)."""
        spec = self.spec
        if t.node_id == 0 or t.saved_writes is not None:  # (a reused task's went out first)
            return
        if t.paused:
            yield from self._paused_items(t, step)
            return
        error = t.error
        if error is not None and not reports_failure(error):
            return
        if t.handled is not None:
            yield from self._handled_end_items(t, step)
            return
        if error is None and spec.wants("updates", t.name):
            yield self.emit("updates", {t.name: t.update})
        if "tasks" in spec.modes or "debug" in spec.modes:
            payload = {
                "id": t.id,
                "name": t.name,
                "error": error,
                "result": result_dict(t.result_writes) if error is None else {},
                "interrupts": [],
            }
            if spec.wants("tasks", t.name):
                yield self.emit("tasks", payload)
            if spec.wants("debug", t.name):
                yield self.emit("debug", debug_item("task_result", step, payload))

    def _paused_items(self, t: Task, step: int) -> Iterator[Any]:
        """The items of a task that paused at `interrupt()`, as LangGraph streams them."""
        spec, paused = self.spec, {"__interrupt__": t.interrupts}
        if not t.interrupts:  # a graph it ran stopped at a breakpoint: said once, at the end
            return
        if spec.wants("updates", t.name):
            yield self.emit("updates", paused)
        if spec.wants("values", t.name):
            if self.single_key is not None:
                yield self.emit("values", paused)
            else:
                yield self.emit("values", {**self.run.read(self.output_ids), **paused})
        if "tasks" in spec.modes or "debug" in spec.modes:
            payload = {"id": t.id, "name": t.name, "error": None, "result": {},
                       "interrupts": [{"value": i.value, "id": i.id,
                                       "response_schema": i.response_schema}
                                      for i in t.interrupts]}
            if spec.wants("tasks", t.name):
                yield self.emit("tasks", payload)
            if spec.wants("debug", t.name):
                yield self.emit("debug", debug_item("task_result", step, payload))

    def _handled_end_items(self, t: Task, step: int) -> Iterator[Any]:
        """The end items of a task whose node failed and whose error handler recovered, as
        LangGraph streams its two tasks: the node's failure, then the handler's update and
        result, under the handler's name."""
        spec, handled = self.spec, t.handled
        assert handled is not None
        both = "tasks" in spec.modes or "debug" in spec.modes
        if both:
            yield from self._result_items(t, step, t.id, t.name, handled.error, {})
        if spec.wants("updates", t.name):
            yield self.emit("updates", {handled.node: t.update})
        if both:
            yield from self._result_items(t, step, new_task_id(), handled.node, None,
                                          result_dict(t.result_writes))

    def _result_items(self, t: Task, step: int, task_id: str, name: str,
                      error: BaseException | None, result: Any) -> Iterator[Any]:
        payload = {"id": task_id, "name": name, "error": error, "result": result,
                   "interrupts": []}
        if self.spec.wants("tasks", t.name):
            yield self.emit("tasks", payload)
        if self.spec.wants("debug", t.name):
            yield self.emit("debug", debug_item("task_result", step, payload))

    def reports_end(self, t: Task) -> bool:
        """Whether the consumer is handed an item when the task ends (so its end must not
        wait behind a sibling running on the consumer's thread)."""
        spec, name = self.spec, t.name
        return spec.wants("updates", name) or spec.wants("tasks", name) \
            or spec.wants("debug", name)

    def streams_live(self, t: Task) -> bool:
        """Whether a task produces items while it runs (so it must not run on this thread)."""
        # Any node may run a graph inside it (as a node or by calling `invoke`), so with
        # subgraph streaming every subscribed node counts as live.
        spec, name = self.spec, t.name
        return t.runner is not None and (spec.wants("messages", name)
                                         or spec.wants("custom", name)
                                         or spec.wants("tools", name) or spec.forwards(name))

    def batch_items(self, batch: Iterable[tuple[int, int, Any]], step: int,
                     task_ended: Callable[[], None]) -> Iterator[list[Any]]:
        """The stream items of drained chunks, as one list. A task's completion raises its
        error (after yielding the items before it) or adds its end items, after telling
        `task_ended` (which may start the next)."""
        items: list[Any] = []
        namespace = self.namespace
        try:
            for _task_key, mode, payload in batch:
                if mode == MODE_DONE:
                    items.extend(self.task_end_items(payload, step))
                    if payload.error is not None and not is_invalid_resume(payload.error):
                        raise payload.error  # a refused answer waits: see `refused_answer`
                    task_ended()
                elif mode == MODE_FORWARD:
                    items.append(payload)  # already (namespace, mode, item)
                else:
                    items.append((namespace, MODE_NAMES[mode], payload))
        except BaseException:
            if items:
                yield items
            raise
        if items:
            yield items


def debug_item(kind: str, step: int, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "step": step,
        "timestamp": datetime.now(timezone.utc).isoformat(),
        "type": kind,
        "payload": payload,
    }
