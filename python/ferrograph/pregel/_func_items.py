"""The items of a functional run: each goes to the run's consumer (a queue read by the
sync driver, or the event loop's), and, when a run streaming subgraphs runs this
entrypoint from a task, to that run's stream too; `checkpoints`/`debug`/`tasks` items,
`custom` items under the caller's namespace, and ferrograph's `messages`/`tools`
handlers on the function's callbacks (`_Producer`).

`FuncItems` is the stream side of `FuncRun` (`_func`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ferrograph.pregel._func_thread import END
from ferrograph.pregel._thread_format import now_iso, task_statuses

if TYPE_CHECKING:
    from ferrograph.pregel._func import FuncRun
    from ferrograph.pregel._func_calls import FuncTask


class FuncItems:
    """`FuncRun`'s items."""

    def emit(self, mode: str, payload: Any, ns: tuple[str, ...] | None = None) -> None:
        """An item of this run: to its own stream, and when a run streaming subgraphs runs
        this entrypoint from a task, to that run's too (under this run's namespace)."""
        if ns is None:
            ns = self.outer_ns
        forward = self.forward
        if forward is not None and mode in forward[1]:
            forward[0]((ns, mode, payload))
        if mode in self.modes:
            self._deliver((ns, mode, payload))

    def _deliver(self, item: tuple[tuple[str, ...], str, Any]) -> None:
        """Hands an item to this run's consumer (from any thread)."""
        if self.loop is not None and threading.get_ident() != self.loop_thread:
            self.loop.call_soon_threadsafe(self.items.put_nowait, item)
        elif self.loop is None:
            self.items.put(item)
        elif self.defer:
            # A task ending on the loop: its item is handed over three turns later, so that
            # what awaits the task goes on first (LangGraph's order of items and events).
            self.inflight += 1
            self.loop.call_soon(self._defer, item, 3)
        else:
            self.items.put_nowait(item)

    defer = False
    inflight = 0

    def _defer(self, item: Any, turns: int) -> None:
        if turns > 1:
            self.loop.call_soon(self._defer, item, turns - 1)  # type: ignore[union-attr]
            return
        self.inflight -= 1
        self.items.put_nowait(item)

    forward: tuple[Callable[[Any], None], frozenset[str]] | None = None
    """The stream of the run whose task runs this one, and its modes (subgraphs=True)."""
    loop_thread = 0

    def _snapshot_payload(self, tasks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        ck = self.checkpoint
        config = self.at_checkpoint() if self.saver is not None else {"configurable": {
            "checkpoint_ns": self.parent_ns, "checkpoint_id": ck["id"]}}
        if self.saver is not None:
            config = {"configurable": {**{k: v for k, v in self.thread["configurable"].items()
                                          if k != "checkpoint_id"},
                                       "checkpoint_id": ck["id"]}}
        return {
            "config": config,
            "parent_config": self.parent_config,
            "values": ck["channel_values"].get(END),
            "metadata": dict(self.metadata),
            "next": [t["name"] for t in tasks or ()],
            "tasks": tasks or [],
        }

    def emit_checkpoint(self, next_names: list[str]) -> None:
        if not ({"debug", "checkpoints"} & self.modes):
            return
        tasks = []
        if next_names:
            tid = self.node_task_id(self.step + 1)
            status = task_statuses(self.pending).get(tid)
            interrupts = tuple({"value": i.value, "id": i.id,
                                "response_schema": i.response_schema}
                               for i in (status.interrupts if status else ()))
            entry: dict[str, Any] = {"id": tid, "name": self.graph.name_of_node}
            if status is not None and status.error is not None:
                entry.update(error=status.error, state=None)
            elif status is not None and status.finished:
                entry.update(result=dict(status.output).get(END), interrupts=interrupts,
                             state=None)
            else:
                entry.update(interrupts=interrupts, state=None)
            tasks = [entry]
        payload = self._snapshot_payload(tasks)
        if self.saver is None:
            payload["config"] = {"configurable": {"checkpoint_ns": self.parent_ns,
                                                  "checkpoint_id": self.checkpoint["id"]}}
        self.emit("checkpoints", payload)
        self.emit("debug", {"step": self.metadata.get("step"), "timestamp": self.checkpoint["ts"],
                            "type": "checkpoint", "payload": payload})

    def emit_task_start(self, t: FuncTask, input: Any, triggers: tuple[str, ...]) -> None:
        if not ({"debug", "tasks"} & self.modes):
            return
        payload = {"id": t.id, "name": t.name, "input": input, "triggers": triggers}
        self.emit("tasks", payload)
        self.emit("debug", {"step": self.step, "timestamp": now_iso(), "type": "task",
                            "payload": payload})

    def emit_task_end(self, t: FuncTask, result: dict[str, Any], error: Any = None,
                      interrupts: Sequence[Any] = ()) -> None:
        if not ({"debug", "tasks"} & self.modes):
            return
        payload = {"id": t.id, "name": t.name, "error": error, "result": result,
                   "interrupts": [{"value": i.value, "id": i.id,
                                   "response_schema": i.response_schema}
                                  for i in interrupts]}
        self.emit("tasks", payload)
        self.emit("debug", {"step": self.step, "timestamp": now_iso(), "type": "task_result",
                            "payload": payload})

    def add_stream_handlers(self, t: FuncTask) -> None:
        """`messages` / `tools` modes: ferrograph's handlers on the function's callbacks,
        inherited by the tasks it calls (whose items stream under the graph's namespace)."""
        if not ({"messages", "tools"} & self.modes):
            return
        from ferrograph.pregel._handlers import with_handler
        from ferrograph.pregel._messages import TaskMessages
        from ferrograph.pregel._tools import TaskTools
        producer = _Producer(self)
        callbacks = self.node_callbacks
        if "messages" in self.modes:
            callbacks = with_handler(callbacks, TaskMessages(
                producer, set(), None, t.ns, self.outer_ns, self.subgraphs))
        if "tools" in self.modes:
            callbacks = with_handler(callbacks, TaskTools(producer, t.ns, self.outer_ns,
                                                          self.subgraphs))
        self.node_callbacks = callbacks

    def child_stream(self, t: FuncTask) -> tuple[Callable[[Any], None], frozenset[str]]:
        """What an entrypoint a task runs forwards its items to: this run's stream when it
        streams subgraphs, and whatever this run forwards to."""
        own = frozenset(self.modes) if self.subgraphs else frozenset()

        def push(item: Any) -> None:
            forward = self.forward
            if forward is not None and item[1] in forward[1]:
                forward[0](item)
            if item[1] in own:
                self._deliver(item)
        return push, own | (self.forward[1] if self.forward else frozenset())

    def writer_for(self, t: FuncTask) -> Callable[[Any], None]:
        """Task `t`'s `custom` stream writer (nothing when no stream takes `custom`)."""
        if "custom" not in self.modes and not (self.forward and "custom" in self.forward[1]):
            return lambda _item: None
        # LangGraph's: under the namespace of the task's caller (the function's, for a task)
        ns = tuple(t.ns.split("|")[:-1])

        def write(item: Any) -> None:
            self.emit("custom", item, ns)
        return write

    @property
    def outer_ns(self) -> tuple[str, ...]:
        """The namespace of this run's items (its own: the calling task's, when run by one)."""
        return tuple(self.parent_ns.split("|")) if self.parent_ns else ()


class _Producer:
    """The chunk producer ferrograph's stream handlers push to, for a functional run."""

    __slots__ = ("run",)

    def __init__(self, run: FuncRun) -> None:
        self.run = run

    def push(self, mode: int, payload: Any) -> None:
        from ferrograph.pregel._messages import MODE_FORWARD
        from ferrograph.pregel._stream import MODE_NAMES
        if mode == MODE_FORWARD:
            ns, name, item = payload
            self.run.emit(name, item, ns)
        else:
            self.run.emit(MODE_NAMES[mode], payload, self.run.outer_ns)
