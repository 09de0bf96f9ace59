"""Task calls from the node of a ferrograph `StateGraph`: `NodeCalls`, a `FuncRun` whose
calls are PUSH tasks of the node's step, named and saved in the graph's thread (through
that run's `Persistence`) as LangGraph saves calls made from a node; `graph_node_call`, the
`call` a `task` uses there.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from ferrograph.config import CONFIG_KEY_RUNTIME, CONFIG_KEY_TASK, CONFIG_KEY_TASK_ID
from ferrograph.pregel._func import FuncRun
from ferrograph.pregel._func_calls import (
    CONFIG_KEY_CALL,
    CONFIG_KEY_CHECKPOINT_NS,
    Call,
    FuncTask,
)
from ferrograph.pregel._thread_format import checkpoint_id, task_statuses
from ferrograph.runtime import DEFAULT_RUNTIME, ExecutionInfo


class _NoGraph:
    """What `FuncRun` reads of its entrypoint, for calls made from a graph's node."""

    retry_policy: tuple[Any, ...] = ()
    name_of_node = ""


class NodeCalls(FuncRun):
    """The `task` calls of one node of a ferrograph graph: PUSH tasks of the node's step,
    named and saved in the graph's thread as LangGraph's calls from a node are."""

    def __init__(self, task: Any, config: dict[str, Any]) -> None:
        configurable = config.get("configurable") or {}
        pad = getattr(task, "scratchpad", None)
        persistence = pad.persistence if pad is not None else None
        self.persistence = persistence
        self.graph = _NoGraph()  # type: ignore[assignment]
        self.saver = persistence.saver if persistence is not None else None
        self.config = config
        self.modes = set()
        self.subgraphs = False
        self.loop = None
        self.parent_ns = configurable.get(CONFIG_KEY_CHECKPOINT_NS, "")
        self.checkpoint = {"id": persistence.checkpoint["id"] if persistence is not None
                           else checkpoint_id(task.step), "channel_values": {}}
        self.step = task.step
        self.lock = threading.RLock()
        self.ran_names = []
        self.statuses = task_statuses(persistence.pending) if persistence is not None else {}
        self.resume_map = persistence.resume_map if persistence is not None else None
        self.reapply = persistence.reapply if persistence is not None else True
        run = configurable.get("__ferrograph_run")
        self.cache = getattr(getattr(run, "graph", None), "cache", None)
        self.store = getattr(configurable.get(CONFIG_KEY_RUNTIME), "store", None)
        self.context = getattr(configurable.get(CONFIG_KEY_RUNTIME), "context", None)
        self.producer = None
        if run is not None and getattr(run, "channel", None) is not None:
            self.producer = task.outlet or run.channel.producer(task.node_id, task.index)
            self.modes = {m for m in ("updates", "custom") if run.spec.wants(m, task.name)}
        self.parent = FuncTask(self, task.id, task.name, task.path,
                               configurable.get(CONFIG_KEY_CHECKPOINT_NS, ""), [])
        if persistence is not None:
            self.parent.checkpoint_map = {**persistence.parents,
                                          persistence.ns: self.checkpoint["id"]}

    def emit(self, mode: str, payload: Any, ns: tuple[str, ...] = ()) -> None:
        if mode not in self.modes or self.producer is None:
            return
        from ferrograph.pregel._stream import MODE_IDS
        try:
            self.producer.push(MODE_IDS[mode], payload)
        except Exception:  # noqa: BLE001 - the consumer is gone
            pass

    def called(self, name: str) -> None:
        persistence = self.persistence
        if persistence is not None and name not in persistence.call_names:
            persistence.call_names.append(name)

    def put_writes(self, tid: str, writes: list[tuple[str, Any]]) -> None:
        if self.persistence is not None:
            with self.lock:
                self.persistence.put_writes(tid, writes)

    def take_null_resume(self) -> Any:
        return None if self.persistence is None else self.persistence.take_null_resume()

    def nested(self, graph: Any, config: dict[str, Any]) -> Any:
        return None if self.persistence is None else self.persistence.nested(graph, config)

    def task_config(self, t: FuncTask, callbacks: Any = None) -> dict[str, Any]:
        base = self.config
        configurable = {k: v for k, v in (base.get("configurable") or {}).items()
                        if not k.startswith(("__pregel_", "__ferrograph_"))}
        runtime = (base.get("configurable") or {}).get(CONFIG_KEY_RUNTIME) or DEFAULT_RUNTIME
        runtime = runtime.override(stream_writer=self.writer_for(t), execution_info=ExecutionInfo(
            checkpoint_id=self.checkpoint["id"], checkpoint_ns=t.ns, task_id=t.id,
            thread_id=configurable.get("thread_id")))
        extra = {"checkpoint_map": t.checkpoint_map} if t.checkpoint_map is not None else {}
        # (a call's path is a PUSH path: `langgraph_triggers` is `(PUSH,)`)
        return self.config_for_task(t, configurable, runtime, extra, callbacks)

    def call(self, parent: FuncTask, call: Call) -> Any:
        try:
            self.loop = asyncio.get_running_loop()
            self.loop_thread = threading.get_ident()
        except RuntimeError:
            self.loop = None
        return super().call(parent, call)


def graph_node_call(config: dict[str, Any]) -> Callable[..., Any]:
    """The `call` of a task called from the node of a ferrograph graph whose `config` this is
    (KeyError when it is none: not called from a task)."""
    configurable = config.get("configurable") or {}
    task = configurable.get(CONFIG_KEY_TASK)
    if task is None or isinstance(task, FuncTask) or configurable.get(
            CONFIG_KEY_TASK_ID) != task.id or task.config is None:
        raise KeyError(CONFIG_KEY_CALL)
    own = task.config.setdefault("configurable", {})
    calls = own.get("__ferrograph_node_calls")
    if calls is None:
        calls = own["__ferrograph_node_calls"] = NodeCalls(task, task.config)
    return calls.make_call(calls.parent)
