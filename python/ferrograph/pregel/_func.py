"""The functional API's run: an entrypoint is LangGraph's one-node graph (`__start__` -> the
function -> `__end__` / `__previous__`), and each `task` call made while it runs is a PUSH
task of its step, named, hashed, saved and resumed as LangGraph's `call` tasks are.

A thread is LangGraph's: the input checkpoint (step -1, or the thread's next step), the
function's task (id by LangGraph's PULL formula), each call's task (id by LangGraph's PUSH
`call` formula: the parent task's path and the call's index), their writes (`__return__`,
`__interrupt__`, `__resume__`, `__error__`, `__end__`, `__previous__`) saved against the
checkpoint as each task ends, and the step's checkpoint once the function returned. A
resume reruns the function; calls whose `__return__` was saved are answered from it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

from langchain_core.runnables.config import var_child_runnable_config
from xxhash import xxh3_128_hexdigest

from ferrograph.config import CONFIG_KEY_RUNTIME, CONFIG_KEY_TASK, CONFIG_KEY_TASK_ID
from ferrograph.errors import EmptyInputError, GraphBubbleUp, GraphInterrupt
from ferrograph.pregel._checkpoint import (
    ERROR,
    INPUT,
    INTERRUPT,
    NULL_TASK_ID,
    PULL,
    PUSH,
    RESUME,
    RETURN,
    Scratchpad,
    _is_interrupt_id,
    _ours,
    _wire_types,
    checkpoint_id,
    interrupt_id,
    task_id,
    task_statuses,
)
from ferrograph.pregel._executor import DEFAULT_POOL
from ferrograph.runtime import DEFAULT_RUNTIME, ExecutionInfo, Runtime
from ferrograph.types import Command, Interrupt, PregelTask, StateSnapshot

START = "__start__"
END = "__end__"
PREVIOUS = "__previous__"
CONFIG_KEY_CALL = "__pregel_call"
CONFIG_KEY_SCRATCHPAD = "__pregel_scratchpad"
CONFIG_KEY_CHECKPOINT_NS = "checkpoint_ns"
CACHE_NS_WRITES = "__pregel_ns_writes"
_TASK_TAGS = ["seq:step:1"]
_MISSING = object()


def task_identifier(func: Any) -> str | None:
    """LangGraph's `identifier` of a task's function (its cache namespace):
    `module.qualname`, async functions included."""
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    module = getattr(func, "__module__", None)
    if name is None or module is None:
        return None
    return f"{module}.{name}"


def _returned(writes: Any) -> Any:
    """A task's result in its cached writes (LangGraph's entry: `[("__return__", value)]`)."""
    return next((v for c, v in writes if c == RETURN), None)


def task_path_str(tup: Any) -> str:
    """LangGraph's text of a task path (a part of a PUSH task's id)."""
    if isinstance(tup, (tuple, list)):
        return "~" + ", ".join(task_path_str(x) for x in tup)
    if isinstance(tup, int) and not isinstance(tup, bool):
        return f"{tup:010d}"
    return str(tup)


def task_name(func: Any) -> str:
    if hasattr(func, "__name__"):
        return func.__name__
    if hasattr(func, "func"):
        return func.func.__name__
    return func.__class__.__name__


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _is_async(func: Any) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None))  # noqa: B004 - an object whose __call__ is async


class Call:
    __slots__ = ("func", "input", "retry_policy", "cache_policy", "timeout", "callbacks")

    def __init__(self, func: Any, input: tuple[tuple[Any, ...], dict[str, Any]], *,
                 retry_policy: Any = None, cache_policy: Any = None, timeout: Any = None,
                 callbacks: Any = None) -> None:
        self.func = func
        self.input = input
        self.retry_policy = retry_policy
        self.cache_policy = cache_policy
        self.timeout = timeout
        self.callbacks = callbacks


class FuncTask:
    """One task of the step: the function's (PULL) or a call's (PUSH). `interrupt()` finds
    its answers in `scratchpad`."""

    __slots__ = ("id", "name", "path", "ns", "scratchpad", "calls", "config", "run",
                 "futures", "lock", "graphs_started", "checkpoint_map")

    def __init__(self, run: FuncRun, tid: str, name: str, path: tuple[Any, ...], ns: str,
                 resume: list[Any]) -> None:
        self.run = run
        self.id = tid
        self.name = name
        self.path = path
        self.ns = ns
        self.scratchpad = Scratchpad(resume, run)
        self.calls = 0
        self.config: dict[str, Any] = {}
        self.futures: list[Any] = []
        self.lock = threading.Lock()
        self.graphs_started = 0
        self.checkpoint_map: dict[str, str] | None = None

    def next_graph_index(self) -> int:
        """How many graphs this task started before (LangGraph's subgraph counter)."""
        with self.lock:
            index = self.graphs_started
            self.graphs_started += 1
            return index

    def next_call(self) -> int:
        with self.lock:
            index = self.calls
            self.calls += 1
            return index


class FuncRun:
    """One invoke/stream of an entrypoint."""

    def __init__(self, graph: Any, input: Any, config: dict[str, Any], *, context: Any,
                 modes: list[str], durability: str | None, subgraphs: bool,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.graph = graph
        self.input = input
        self.modes = set(modes)
        self.subgraphs = subgraphs
        self.loop = loop
        saver = graph.checkpointer
        self.caller: Any = None
        """The thread of the run whose task runs this entrypoint (ours or a graph's)."""
        configurable = config.get("configurable") or {}
        if configurable.get(CONFIG_KEY_TASK_ID) and saver in (None, True):
            from ferrograph.pregel._loop import _calling_persisted_task, numbered_config
            calling = _calling_persisted_task(config)
            if calling is not None:
                self.caller = calling.scratchpad.persistence
                # the task's second and later graphs: `ns|1`, ... (LangGraph's counter)
                config = numbered_config(config, calling.next_graph_index())
                configurable = config.get("configurable") or {}
        self.config = config
        self.parent_ns = configurable.get(CONFIG_KEY_CHECKPOINT_NS, "") if configurable.get(
            CONFIG_KEY_TASK_ID) else ""
        if self.parent_ns and saver in (None, True):
            if self.caller is not None and self.caller.saver is not None:
                saver = self.caller.saver
                durability = durability or self.caller.durability
            elif saver is None:
                saver = configurable.get("__pregel_checkpointer")
        if saver in (False, True):
            saver = None
        self.saver = saver
        self.durability = durability or "async"
        if self.durability not in ("sync", "async", "exit"):
            raise ValueError(f"Invalid durability {self.durability!r}")
        if saver is not None and not configurable.get("thread_id") and configurable.get(
                "thread_id") != 0:
            raise ValueError(
                "Checkpointer requires one or more of the following 'configurable' keys: "
                "thread_id, checkpoint_ns, checkpoint_id")
        thread = {k: v for k, v in configurable.items() if not k.startswith("__")}
        if saver is not None and not isinstance(thread.get("thread_id"), str):
            thread["thread_id"] = str(thread["thread_id"])
        thread["checkpoint_ns"] = self.parent_ns
        if self.parent_ns:
            thread.pop("checkpoint_id", None)
        self.thread = {"configurable": thread}
        self.addressed = thread.get("checkpoint_id")
        """The checkpoint the caller asked to run from (None: the thread's newest)."""
        self.reapply = True
        """Whether saved writes of finished tasks stand in for running them again."""
        self.store = graph.store if graph.store is not None else (
            getattr(configurable.get(CONFIG_KEY_RUNTIME), "store", None))
        self.cache = graph.cache
        self.context = context
        self.checkpoint: dict[str, Any] = _empty_checkpoint()
        self.metadata: dict[str, Any] = {}
        self.parent_config: dict[str, Any] | None = None
        self.pending: list[tuple[str, str, Any]] = []
        self.exit_writes: list[tuple[str, list[tuple[str, Any]]]] = []
        self.outbox: list[tuple[str, tuple[Any, ...]]] | None = [] if loop else None
        self.step = -1
        self.resume_map: dict[str, Any] | None = None
        self.ran_names: list[str] = []
        self.lock = threading.RLock()
        self.items: Any = None  # queue of (ns, mode, payload)
        self.output: Any = _MISSING
        self.interrupts: list[Any] = []
        self.put_config: dict[str, Any] | None = None
        self.statuses: dict[str, Any] = {}

    # -- the saver ----------------------------------------------------------------------------

    def _saver_call(self, method: str, *args: Any) -> Any:
        if self.outbox is not None:
            self.outbox.append(("a" + method, args))
            return None
        return getattr(self.saver, method)(*args)

    async def aflush(self) -> None:
        outbox = self.outbox
        while outbox:
            method, args = outbox.pop(0)
            result = await getattr(self.saver, method)(*args)
            if method == "aput":
                self.put_config = result

    def _at_checkpoint(self) -> dict[str, Any]:
        return {"configurable": {**self.thread["configurable"],
                                 "checkpoint_id": self.checkpoint["id"]}}

    def put_writes(self, tid: str, writes: list[tuple[str, Any]]) -> None:
        with self.lock:
            if tid == NULL_TASK_ID:
                special = {c for c, _ in writes}
                self.pending = [w for w in self.pending
                                if not (w[0] == tid and w[1] in special)]
            else:
                self.pending = [w for w in self.pending if w[0] != tid]
            self.pending.extend((tid, c, v) for c, v in writes)
            if self.saver is None:
                return
            if self.durability == "exit":
                if tid != NULL_TASK_ID:  # (LangGraph keeps a resume's only in memory)
                    self.exit_writes.append((tid, writes))
                return
            self._saver_call("put_writes", self._at_checkpoint(), writes, tid)

    def _flush_exit(self) -> None:
        """`durability="exit"`: the run's newest checkpoint (if it made one), then the
        writes still pending against it."""
        if self.unsaved is not None:
            copy, metadata, versions = self.unsaved
            self.unsaved = None
            config = {"configurable": {**self.thread["configurable"]}}
            if self.saved_id:
                config["configurable"]["checkpoint_id"] = self.saved_id
            else:
                config["configurable"].pop("checkpoint_id", None)
            self._saver_call("put", config, copy, metadata, versions)
            self.saved_id = copy["id"]
        writes, self.exit_writes = self.exit_writes, []
        for tid, w in writes:
            self._saver_call("put_writes", self._at_checkpoint(), w, tid)

    unsaved: tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | None = None
    saved_id: str | None = None

    def _save_checkpoint(self, source: str, step: int, new_versions: dict[str, Any]) -> None:
        ck = self.checkpoint
        ck["id"] = checkpoint_id(step)
        ck["ts"] = _now()
        self.metadata = {"source": source, "step": step, "parents": {}}
        if self.parent_ns:
            self.metadata["parents"] = self.parents
        self.step = step
        if self.saver is None:
            self.parent_config = None
            return
        if self.durability == "exit":
            versions = dict(self.unsaved[2]) if self.unsaved is not None else {}
            versions.update(new_versions)
            self.unsaved = (_copy(ck), dict(self.metadata), versions)
            return
        config = {"configurable": {**self.thread["configurable"]}}
        if self.saved_id:
            config["configurable"]["checkpoint_id"] = self.saved_id
            self.parent_config = {"configurable": {**self.thread["configurable"],
                                                   "checkpoint_id": self.saved_id}}
        else:
            config["configurable"].pop("checkpoint_id", None)
            self.parent_config = None
        self._saver_call("put", config, _copy(ck), dict(self.metadata), dict(new_versions))
        self.saved_id = ck["id"]

    def _next_version(self, current: Any) -> Any:
        if self.saver is not None:
            return self.saver.get_next_version(current, None)
        return (current or 0) + 1

    # -- starting -----------------------------------------------------------------------------

    def begin(self, saved: Any) -> bool:
        """Loads the thread and writes the input; returns whether the function runs."""
        input = self.input
        is_command = isinstance(input, Command)
        if saved is not None:
            self.checkpoint = _copy(saved.checkpoint)
            self.metadata = dict(saved.metadata or {})
            self.parent_config = saved.parent_config
            self.pending = [(str(t), c, v) for t, c, v in saved.pending_writes or ()]
            self.step = self.metadata.get("step", -1)
            self.saved_id = saved.checkpoint["id"]
            self.thread = {"configurable": {**self.thread["configurable"],
                                            **saved.config["configurable"]}}
        caller = self.caller
        if caller is not None and caller.resume_map and not self.resume_map:
            self.resume_map = caller.resume_map
        if saved is not None and (input is None or is_command or (
                caller is not None and caller.resumed)):
            self.resumed = True
            time_travel = bool(self.addressed) and not (
                is_command and input.resume is not None)
            if time_travel:  # replaying a past checkpoint: its saved writes are rerun
                self.reapply = False
                self.pending = [w for w in self.pending if w[1] != RESUME]
            if is_command:
                self._take_command(input)
            ck = self.checkpoint
            seen = ck["versions_seen"].setdefault(INTERRUPT, {})
            seen.update(ck["channel_versions"])
            if time_travel and self.metadata.get("source") not in ("update", "fork"):
                # LangGraph's fork checkpoint: the replay is a branch of the thread
                self.pending = []
                ck["updated_channels"] = None
                self._save_checkpoint("fork", self.step + 1, {})
            if END in ck["channel_values"]:
                self.emit("values", ck["channel_values"][END], self.outer_ns)
            if START not in ck["channel_values"]:
                self._emit_checkpoint([])
                return False
            self._emit_checkpoint(["main"])
            self.step += 1
            return True
        if input is None or (is_command and input.resume is None and not input.update):
            raise EmptyInputError("Received no input for __start__")
        if is_command:
            input = input.resume
        # a new input: the input checkpoint
        ck = self.checkpoint
        if saved is not None:
            self.pending = []
        version = self._next_version(max(ck["channel_versions"].values(), default=None))
        ck["channel_values"][START] = input
        ck["channel_versions"][START] = version
        ck["versions_seen"].setdefault(INPUT, {})
        ck["updated_channels"] = [START]
        self._save_checkpoint("input", self.step + 1 if saved is not None else -1,
                              {START: version})
        self._emit_checkpoint(["main"])
        self.step += 1
        return True

    def _take_command(self, command: Command) -> None:
        resume = command.resume
        if resume is None:
            if command.update is None and command.goto in ((), None):
                raise EmptyInputError("Received empty Command input")
            return
        if isinstance(resume, dict) and resume and all(_is_interrupt_id(k) for k in resume):
            self.resume_map = dict(resume)
            return
        pending = [i for s in task_statuses(self.pending).values() if not s.finished
                   for i in s.interrupts]
        ids = {i.id for i in pending}
        if len(ids) > 1:
            raise RuntimeError(
                "When there are multiple pending interrupts, you must specify the "
                "interrupt id when resuming. Docs: https://docs.langchain.com/oss/"
                "python/langgraph/interrupts#handling-multiple-interrupts.")
        self.put_writes(NULL_TASK_ID, [(RESUME, resume)])

    resumed = False
    caller: Any = None

    @property
    def ns(self) -> str:
        return self.parent_ns

    @property
    def parents(self) -> dict[str, str]:
        """Checkpoint ids of the enclosing runs, by namespace (LangGraph's `parents`)."""
        mapped = (self.config.get("configurable") or {}).get("checkpoint_map")
        caller = self.caller
        if not mapped and caller is not None:  # run by a ferrograph graph's task
            return {**getattr(caller, "parents", {}), caller.ns: caller.checkpoint["id"]}
        return dict(mapped or {})

    def called(self, name: str) -> None:
        """A task of this name was called (its empty row of `versions_seen`)."""

    def nested(self, graph: Any, config: dict[str, Any]) -> Any:
        """The thread of a ferrograph graph one of this run's tasks runs: the same saver
        and thread, under the task's namespace (as `Persistence.nested`)."""
        if self.saver is None:
            return None
        from ferrograph.pregel._checkpoint import Persistence
        ns = (config.get("configurable") or {}).get("checkpoint_ns", "")
        if graph.checkpointer is True:
            ns = "|".join(part.split(":")[0] for part in ns.split("|"))
        child = Persistence(graph, self.saver, {"configurable": {
            "thread_id": self.thread["configurable"]["thread_id"], "checkpoint_ns": ns}},
            self.durability)  # type: ignore[arg-type]
        child.parent = self  # type: ignore[assignment]
        child.resume_map = self.resume_map
        child.parents = {**self.parents, self.parent_ns: self.checkpoint["id"]} \
            if self.parent_ns else {"": self.checkpoint["id"]}
        if self.outbox is not None:
            child.outbox = self.outbox
        return child

    def take_null_resume(self) -> Any:
        with self.lock:
            for i, (tid, channel, value) in enumerate(self.pending):
                if tid == NULL_TASK_ID and channel == RESUME:
                    del self.pending[i]
                    return value
        caller = getattr(self, "caller", None)
        return None if caller is None else caller.take_null_resume()

    # -- items --------------------------------------------------------------------------------

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

    def _wake(self) -> None:
        if self.loop is not None:
            if threading.get_ident() != self.loop_thread:
                self.loop.call_soon_threadsafe(self.items.put_nowait, None)
            else:
                self.items.put_nowait(None)

    def _snapshot_payload(self, tasks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        ck = self.checkpoint
        config = self._at_checkpoint() if self.saver is not None else {"configurable": {
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

    def _emit_checkpoint(self, next_names: list[str]) -> None:
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
        self.emit("debug", {"step": self.step, "timestamp": _now(), "type": "task",
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
        self.emit("debug", {"step": self.step, "timestamp": _now(), "type": "task_result",
                            "payload": payload})

    # -- tasks --------------------------------------------------------------------------------

    def node_task_id(self, step: int) -> str:
        name = self.graph.name_of_node
        ns = f"{self.parent_ns}|{name}" if self.parent_ns else name
        return task_id(self.checkpoint["id"], ns, str(step), name, PULL, START)

    def _resume_for(self, tid: str, ns: str) -> list[Any]:
        status = self.statuses.get(tid)
        resume = list(status.resume or ()) if status is not None else []
        if self.resume_map:
            key = interrupt_id(ns, len(resume))
            if key not in self.resume_map:
                key = interrupt_id(ns, 0)
            if key in self.resume_map:
                resume.append(self.resume_map[key])
        return resume

    def task_config(self, t: FuncTask, callbacks: Any = None) -> dict[str, Any]:
        base = self.config
        configurable = {k: v for k, v in (base.get("configurable") or {}).items()
                        if not k.startswith("__pregel_") and k != "checkpoint_id"}
        runtime = Runtime(context=self.context, store=self.store,
                          stream_writer=self._writer(t),
                          previous=self.checkpoint["channel_values"].get(PREVIOUS),
                          execution_info=ExecutionInfo(
                              checkpoint_id=self.checkpoint["id"], checkpoint_ns=t.ns,
                              task_id=t.id,
                              thread_id=configurable.get("thread_id"),
                              run_id=str(rid) if (rid := base.get("run_id")) else None))
        configurable.update({
            CONFIG_KEY_CHECKPOINT_NS: t.ns,
            CONFIG_KEY_TASK_ID: t.id,
            CONFIG_KEY_RUNTIME: runtime,
            CONFIG_KEY_TASK: t,
            CONFIG_KEY_CALL: self.make_call(t),
            "__pregel_checkpointer": self.saver,
            "checkpoint_map": t.checkpoint_map or {
                **((base.get("configurable") or {}).get("checkpoint_map") or {}),
                self.parent_ns: self.checkpoint["id"]},
        })
        if self.subgraphs or self.forward is not None:
            configurable["__ferrograph_func_stream"] = self._child_stream(t)
        metadata = {**(base.get("metadata") or {}),
                    "langgraph_step": self.step, "langgraph_node": t.name,
                    "langgraph_triggers": (START,) if t.path[0] == PULL else (PUSH,),
                    "langgraph_path": t.path, "langgraph_checkpoint_ns": t.ns}
        config = {**{k: v for k, v in base.items() if k not in ("run_id", "run_name")},
                  "configurable": configurable, "metadata": metadata, "run_name": t.name}
        config["callbacks"] = callbacks
        t.config = config
        return config

    def add_stream_handlers(self, t: FuncTask) -> None:
        """`messages` / `tools` modes: ferrograph's handlers on the function's callbacks,
        inherited by the tasks it calls (whose items stream under the graph's namespace)."""
        if not ({"messages", "tools"} & self.modes):
            return
        from ferrograph.pregel._messages import TaskMessages
        from ferrograph.pregel._tools import TaskTools
        from ferrograph.pregel._trace import with_handler
        producer = _Producer(self)
        callbacks = self.node_callbacks
        if "messages" in self.modes:
            callbacks = with_handler(callbacks, TaskMessages(
                producer, set(), None, t.ns, self.outer_ns, self.subgraphs))
        if "tools" in self.modes:
            callbacks = with_handler(callbacks, TaskTools(producer, t.ns, self.outer_ns,
                                                          self.subgraphs))
        self.node_callbacks = callbacks

    def _child_stream(self, t: FuncTask) -> tuple[Callable[[Any], None], frozenset[str]]:
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

    def _writer(self, t: FuncTask) -> Callable[[Any], None]:
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

    def make_call(self, parent: FuncTask) -> Callable[..., Any]:
        def call(func: Any, input: Any, *, retry_policy: Any = None, cache_policy: Any = None,
                 callbacks: Any = None, timeout: Any = None) -> Any:
            return self.call(parent, Call(func, input, retry_policy=retry_policy,
                                          cache_policy=cache_policy, timeout=timeout,
                                          callbacks=callbacks))
        return call

    def call(self, parent: FuncTask, call: Call) -> Any:
        try:
            in_loop = self.loop is not None and asyncio.current_task() is not None
        except RuntimeError:
            in_loop = False
        if self.loop is None and _is_async(call.func):
            raise RuntimeError("In an sync context async tasks cannot be called")
        index = parent.next_call()
        name = task_name(call.func)
        base_ns = f"{parent.ns}|{name}"
        tid = task_id(self.checkpoint["id"], base_ns, str(self.step), name, PUSH,
                      task_path_str(parent.path), str(index))
        ns = f"{base_ns}:{tid}"
        t = FuncTask(self, tid, name, (PUSH, parent.path, index, True), ns,
                     self._resume_for(tid, ns))
        # LangGraph's: a call's checkpoint map adds its caller's namespace
        t.checkpoint_map = {**(parent.checkpoint_map or (
            (parent.config.get("configurable") or {}).get("checkpoint_map") or {})),
            parent.ns: self.checkpoint["id"]}
        with self.lock:
            if name not in self.ran_names:
                self.ran_names.append(name)
                self.called(name)
        status = self.statuses.get(tid)
        fut: Any = asyncio.Future(loop=self.loop) if in_loop else concurrent.futures.Future()
        if status is not None and (status.finished or status.error is not None) \
                and self.reapply:
            self.emit_task_start(t, call.input, (PUSH,))
            ret = next((v for c, v in status.output if c == RETURN), None)
            if status.error is not None and not status.finished:
                err = status.error
                fut.set_exception(err if isinstance(err, BaseException) else Exception(err))
            else:
                fut.set_result(ret)
            return fut
        self.emit_task_start(t, call.input, (PUSH,))
        config = self.task_config(t, call.callbacks)
        policy = call.retry_policy or self.graph.retry_policy
        if _is_async(call.func):
            assert self.loop is not None
            coro = self._arun_task(t, call, config, policy)
            if in_loop:
                task = self.loop.create_task(coro, context=contextvars.copy_context())
                inner = task
            else:
                inner = asyncio.run_coroutine_threadsafe(coro, self.loop)
        else:
            ctx = contextvars.copy_context()
            inner = concurrent.futures.Future()

            def target() -> None:
                try:
                    inner.set_result(ctx.run(self._run_task, t, call, config, policy))
                except BaseException as e:  # noqa: BLE001
                    inner.set_exception(e)
            DEFAULT_POOL.submit(target)
        parent.futures.append(inner)
        _chain(inner, fut, self.loop if in_loop else None)
        return fut

    def _cache_key(self, call: Call) -> Any:
        """LangGraph's cache key of a call: `(namespace, key, ttl)` (None: not cached)."""
        policy = call.cache_policy
        if policy is None or self.cache is None:
            return None
        args, kwargs = call.input
        key = policy.key_func(*args, **kwargs)
        return ((CACHE_NS_WRITES, task_identifier(call.func) or "__dynamic__"),
                xxh3_128_hexdigest(key.encode() if isinstance(key, str) else key),
                policy.ttl)

    def _finish_task(self, t: FuncTask, value: Any, cached: bool = False) -> Any:
        writes: list[tuple[str, Any]] = [(RETURN, value)]
        if t.scratchpad.resume_written is not None:
            writes.insert(0, (RESUME, t.scratchpad.resume_written))
        self.put_writes(t.id, writes)
        update = {t.name: value}
        if cached:
            update["__metadata__"] = {"cached": True}
        self.emit("updates", update, self.outer_ns)
        self.emit_task_end(t, {RETURN: value})
        return value

    def _task_failed(self, t: FuncTask, e: BaseException) -> None:
        if isinstance(e, GraphInterrupt):
            wire = _wire_types()[0]
            writes: list[tuple[str, Any]] = [(INTERRUPT, [
                wire(i.value, i.id, response_schema=getattr(i, "response_schema", None))
                for i in e.args[0]])]
            if t.scratchpad.resume_written is not None:
                writes.append((RESUME, t.scratchpad.resume_written))
            self.put_writes(t.id, writes)
        elif isinstance(e, GraphBubbleUp):
            pass
        elif isinstance(e, Exception):
            self.put_writes(t.id, [(ERROR, e)])
            self.emit_task_end(t, {}, error=e)

    def _run_task(self, t: FuncTask, call: Call, config: dict[str, Any], policy: Any) -> Any:
        key = self._cache_key(call)
        if key is not None:
            found = self.cache.get([key[:2]])
            if key[:2] in found:
                return self._finish_task(t, _returned(found[key[:2]]), cached=True)
        args, kwargs = call.input
        try:
            inputs = _trace_inputs(call.func, args, kwargs)
            value = _retrying(lambda: _traced(config, t.name, inputs, lambda c: _with_config(
                c, call.func, args, kwargs), _TASK_TAGS), _policies(policy))
            _wait_all(t)
        except BaseException as e:
            self._task_failed(t, e)
            raise
        if key is not None:
            self.cache.set({key[:2]: ([(RETURN, value)], key[2])})  # LangGraph's entry
        return self._finish_task(t, value)

    async def _arun_task(self, t: FuncTask, call: Call, config: dict[str, Any],
                         policy: Any) -> Any:
        key = self._cache_key(call)
        if key is not None:
            found = await self.cache.aget([key[:2]])
            if key[:2] in found:
                return self._finish_task(t, _returned(found[key[:2]]), cached=True)
        args, kwargs = call.input
        timeout = call.timeout

        inputs = _trace_inputs(call.func, args, kwargs)

        async def once() -> Any:
            if timeout is not None:
                return await _timed(t.name, lambda c: _atraced(c, t.name, inputs, once_in,
                                                               _TASK_TAGS), config, timeout)
            return await _atraced(config, t.name, inputs, once_in, _TASK_TAGS)

        async def once_in(config: dict[str, Any]) -> Any:
            token = var_child_runnable_config.set(config)
            try:
                return await call.func(*args, **kwargs)
            finally:
                var_child_runnable_config.reset(token)
        try:
            value = await _aretrying(once, _policies(policy))
            await _await_all(t)
        except BaseException as e:
            self._task_failed(t, e)
            raise
        if key is not None:
            await self.cache.aset({key[:2]: ([(RETURN, value)], key[2])})
        return self._finish_task(t, value)

    # -- the function's task ------------------------------------------------------------------

    def node_task(self) -> tuple[FuncTask, Any]:
        name = self.graph.name_of_node
        tid = self.node_task_id(self.step)
        base = f"{self.parent_ns}|{name}" if self.parent_ns else name
        ns = f"{base}:{tid}"
        self.statuses = task_statuses(self.pending)
        t = FuncTask(self, tid, name, (PULL, name), ns, self._resume_for(tid, ns))
        return t, self.checkpoint["channel_values"].get(START)

    def node_finished(self, t: FuncTask) -> Any:
        status = self.statuses.get(t.id)
        if status is not None and status.finished and self.reapply:
            return dict(status.output)
        return None

    def node_cache_key(self, value: Any) -> Any:
        """LangGraph's cache key of the function's task (`entrypoint(cache_policy=...)`)."""
        policy = self.graph.cache_policy
        if policy is None or self.cache is None:
            return None
        from ferrograph.pregel._cache import namespace
        key = policy.key_func(value)
        return (namespace(self.graph.name_of_node, self.graph.func),
                xxh3_128_hexdigest(key.encode() if isinstance(key, str) else key), policy.ttl)

    @staticmethod
    def node_writes(result: Any) -> list[tuple[str, Any]]:
        from ferrograph.func import entrypoint as _ep
        value = result.value if isinstance(result, _ep.final) else result
        save = result.save if isinstance(result, _ep.final) else result
        return [(END, value), (PREVIOUS, save)]

    def node_done(self, t: FuncTask, result: Any,
                  cached: dict[str, Any] | None = None) -> None:
        if cached is not None:
            value, save = cached.get(END), cached.get(PREVIOUS)
        else:
            (_, value), (_, save) = self.node_writes(result)
        writes: list[tuple[str, Any]] = [(END, value), (PREVIOUS, save)]
        if t.scratchpad.resume_written is not None:
            writes.insert(0, (RESUME, t.scratchpad.resume_written))
        self.put_writes(t.id, writes)
        update = {t.name: value}
        if cached is not None:
            update["__metadata__"] = {"cached": True}
        self.emit("updates", update, self.outer_ns)
        self.emit_task_end(t, {END: value})
        self.apply(t, {END: value, PREVIOUS: save})

    def apply(self, t: FuncTask, values: dict[str, Any]) -> None:
        ck = self.checkpoint
        start_version = ck["channel_versions"].get(START)
        ck["versions_seen"].setdefault(t.name, {})[START] = start_version
        for name in self.ran_names:
            ck["versions_seen"].setdefault(name, {})
        version = self._next_version(max(ck["channel_versions"].values(), default=None))
        new_versions = {}
        updated = []
        if START in ck["channel_values"]:
            del ck["channel_values"][START]
            ck["channel_versions"][START] = version
            new_versions[START] = version
        for k, v in values.items():
            ck["channel_values"][k] = v
            ck["channel_versions"][k] = version
            new_versions[k] = version
            updated.append(k)
        ck["updated_channels"] = updated
        self.pending = []
        if self.durability == "exit":
            self.exit_writes = []
        self._save_checkpoint("loop", self.step, new_versions)
        self.output = ck["channel_values"].get(END)
        self.emit("values", self.output, self.outer_ns)
        self._emit_checkpoint([])

    def node_interrupted(self, t: FuncTask, e: GraphInterrupt) -> None:
        wire = _wire_types()[0]
        interrupts = tuple(_ours(i) if not isinstance(i, Interrupt) else i for i in e.args[0])
        writes: list[tuple[str, Any]] = [(INTERRUPT, [
            wire(i.value, i.id, response_schema=i.response_schema) for i in interrupts])]
        if t.scratchpad.resume_written is not None:
            writes.append((RESUME, t.scratchpad.resume_written))
        self.put_writes(t.id, writes)
        if self.durability == "exit":
            self._flush_exit()
        self.interrupts.extend(interrupts)
        self.emit("updates", {INTERRUPT: interrupts}, self.outer_ns)
        current = self.checkpoint["channel_values"].get(END)
        self.emit("values", {**current, INTERRUPT: interrupts} if isinstance(current, dict)
                  else {INTERRUPT: interrupts}, self.outer_ns)
        self.emit_task_end(t, {}, interrupts=interrupts)

    def node_failed(self, t: FuncTask, e: BaseException) -> None:
        if isinstance(e, Exception) and not isinstance(e, GraphBubbleUp):
            self.put_writes(t.id, [(ERROR, e)])
            if self.durability == "exit":
                self._flush_exit()
            self.emit_task_end(t, {}, error=e)

    node_callbacks: Any = None
    root_run: Any = None

    def config_for_node(self, t: FuncTask) -> dict[str, Any]:
        return self.task_config(t, self.node_callbacks)


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


def _chain(inner: Any, outer: Any, loop: asyncio.AbstractEventLoop | None) -> None:
    def done(f: Any) -> None:
        if f.cancelled():
            if loop is not None:
                loop.call_soon_threadsafe(_cancel, outer)
            else:
                outer.cancel()
            return
        exc = f.exception()
        if loop is not None:
            loop.call_soon_threadsafe(_settle, outer, exc, None if exc else f.result())
        else:
            _settle(outer, exc, None if exc else f.result())
    inner.add_done_callback(done)

    def cancelled(f: Any) -> None:
        if f.cancelled() and not inner.done():
            inner.cancel()
    outer.add_done_callback(cancelled)


def _cancel(f: Any) -> None:
    if not f.done():
        f.cancel()


def _settle(f: Any, exc: Any, value: Any) -> None:
    if f.done():
        return
    if exc is not None:
        f.set_exception(exc)
    else:
        f.set_result(value)


def _policies(policy: Any) -> Sequence[Any]:
    if policy is None:
        return ()
    if isinstance(policy, (list, tuple)) and not hasattr(policy, "_fields"):
        return policy
    return (policy,)


def _with_config(config: dict[str, Any], func: Any, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> Any:
    token = var_child_runnable_config.set(config)
    try:
        return func(*args, **kwargs)
    finally:
        var_child_runnable_config.reset(token)


def _retrying(fn: Callable[[], Any], policies: Sequence[Any]) -> Any:
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except GraphBubbleUp:
            raise
        except Exception as exc:
            policy = next((p for p in policies if p.should_retry(exc)), None) if policies \
                else None
            if policy is None or attempt >= policy.max_attempts:
                raise
            time.sleep(policy.delay(attempt))


async def _aretrying(fn: Callable[[], Any], policies: Sequence[Any]) -> Any:
    attempt = 0
    while True:
        attempt += 1
        try:
            return await fn()
        except GraphBubbleUp:
            raise
        except Exception as exc:
            policy = next((p for p in policies if p.should_retry(exc)), None) if policies \
                else None
            if policy is None or attempt >= policy.max_attempts:
                raise
            await asyncio.sleep(policy.delay(attempt))


async def _timed(name: str, fn: Callable[[dict[str, Any]], Any], config: dict[str, Any],
                 policy: Any) -> Any:
    """`await fn(config)` as its own asyncio task, cancelled with `NodeTimeoutError` after
    `run_timeout` seconds, or `idle_timeout` seconds without progress (a heartbeat, or under
    `refresh_on="auto"` a custom item): `NodeRunner._timed`'s rule, for the functional API."""
    from ferrograph.errors import NodeTimeoutError
    loop = asyncio.get_running_loop()
    run_s, idle_s = policy.run_timeout, policy.idle_timeout
    start = loop.time()
    last = [start]
    if idle_s is not None:
        def touch() -> None:
            last[0] = loop.time()

        runtime = config["configurable"][CONFIG_KEY_RUNTIME]
        overrides: dict[str, Any] = {"heartbeat": touch}
        if policy.refresh_on == "auto":
            writer = runtime.stream_writer

            def write(item: Any) -> None:
                touch()
                writer(item)
            overrides["stream_writer"] = write
        config = {**config, "configurable": {**config["configurable"],
                                             CONFIG_KEY_RUNTIME: runtime.override(**overrides)}}
    attempt = asyncio.ensure_future(fn(config))
    kind = "run"
    try:
        while True:
            deadline, kind = min(
                (d, k) for d, k in ((start + run_s if run_s is not None else None, "run"),
                                    (last[0] + idle_s if idle_s is not None else None, "idle"))
                if d is not None)
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            done, _ = await asyncio.wait((attempt,), timeout=remaining)
            if done:
                return attempt.result()
    except BaseException:
        attempt.cancel()
        raise
    attempt.cancel()
    attempt.add_done_callback(lambda f: f.cancelled() or f.exception())
    raise NodeTimeoutError(name, loop.time() - start, kind=kind,  # type: ignore[arg-type]
                           idle_timeout=idle_s, run_timeout=run_s)


def _trace_inputs(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A task's inputs as LangGraph traces them: its arguments by name."""
    try:
        sig = inspect.signature(func)
        bound = sig.bind_partial(*args, **kwargs)
    except (TypeError, ValueError):
        return {"args": args, "kwargs": kwargs}
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    arguments.pop("self", None)
    arguments.pop("cls", None)
    for name, param in sig.parameters.items():
        if param.kind == inspect.Parameter.VAR_KEYWORD and name in arguments:
            arguments.update(arguments.pop(name))
    return arguments


def stream_handler(run: Any) -> Any:
    """The `astream_events` / `astream_log` handler among a run's handlers (None: none)."""
    from langchain_core.tracers._streaming import _StreamingCallbackHandler
    return next((h for h in run.handlers if isinstance(h, _StreamingCallbackHandler)
                 and type(h).__module__.startswith("langchain_core")), None)


def _traced(config: dict[str, Any], name: str, inputs: Any,
            fn: Callable[[dict[str, Any]], Any], tags: list[str] | None = None) -> Any:
    """`fn(config)` as a chain run named `name` of the config's callbacks (if any)."""
    if not config.get("callbacks"):
        return fn(config)
    from langchain_core.runnables.config import get_callback_manager_for_config
    manager = get_callback_manager_for_config(config)
    if tags:
        manager.add_tags(tags, inherit=False)
    run = manager.on_chain_start(None, inputs, name=name)
    try:
        output = fn({**config, "callbacks": run.get_child()})
    except BaseException as e:
        run.on_chain_error(e)
        raise
    if (handler := stream_handler(run)) is not None:
        for _ in handler.tap_output_iter(run.run_id, iter([output])):
            pass
    run.on_chain_end(output)
    return output


async def _one(value: Any) -> AsyncIterator[Any]:
    yield value


async def _atraced(config: dict[str, Any], name: str, inputs: Any,
                   fn: Callable[[dict[str, Any]], Any], tags: list[str] | None = None) -> Any:
    if not config.get("callbacks"):
        return await fn(config)
    from langchain_core.runnables.config import get_async_callback_manager_for_config
    manager = get_async_callback_manager_for_config(config)
    if tags:
        manager.add_tags(tags, inherit=False)
    run = await manager.on_chain_start(None, inputs, name=name)
    try:
        output = await fn({**config, "callbacks": run.get_child()})
    except BaseException as e:
        await run.on_chain_error(e)
        raise
    if (handler := stream_handler(run)) is not None:
        async for _ in handler.tap_output_aiter(run.run_id, _one(output)):
            pass
    await run.on_chain_end(output)
    return output


def _wait_all(t: FuncTask) -> None:
    """Waits for the calls a task made and did not wait for (they end inside its task)."""
    for f in list(t.futures):
        if isinstance(f, concurrent.futures.Future):
            try:
                f.result()
            except BaseException:  # noqa: BLE001 - the caller saw it, or chose not to
                pass


async def _await_all(t: FuncTask) -> None:
    for f in list(t.futures):
        try:
            if isinstance(f, concurrent.futures.Future):
                await asyncio.wrap_future(f)
            else:
                await f
        except BaseException:  # noqa: BLE001
            pass


def _empty_checkpoint() -> dict[str, Any]:
    return {"v": 4, "id": "", "ts": "", "channel_values": {}, "channel_versions": {},
            "versions_seen": {INPUT: {}}, "updated_channels": None}


def _copy(ck: dict[str, Any]) -> dict[str, Any]:
    return {**ck, "channel_values": dict(ck["channel_values"]),
            "channel_versions": dict(ck["channel_versions"]),
            "versions_seen": {k: dict(v) for k, v in ck["versions_seen"].items()},
            "updated_channels": list(ck.get("updated_channels") or []) or None}


# -- driving a run ------------------------------------------------------------------------------

def run_sync(run: FuncRun, call_node: Callable[[Any, dict[str, Any]], Any]) -> Iterator[Any]:
    """Runs `run` on this thread's consumer loop, the function on a worker thread; yields
    `(ns, mode, payload)` items as they come."""
    run.items = queue.SimpleQueue()
    saved = run.saver.get_tuple(run.thread) if run.saver is not None else None
    if run.saver is not None and saved is None and run.thread["configurable"].get(
            "checkpoint_id"):
        saved = None
    runs = run.begin(saved)
    yield from _drain_nowait(run.items)
    if not runs:
        return
    t, value = run.node_task()
    if run.root_run is not None:
        run.node_callbacks = run.root_run.get_child(f"graph:step:{run.step}")
    run.add_stream_handlers(t)
    finished = run.node_finished(t)
    if finished is not None:
        run.apply(t, {END: finished.get(END), PREVIOUS: finished.get(PREVIOUS)})
        yield from _drain_nowait(run.items)
        return
    run.emit_task_start(t, value, (START,))
    node_key = run.node_cache_key(value)
    if node_key is not None and node_key[:2] in (found := run.cache.get([node_key[:2]])):
        run.node_done(t, None, cached=dict(found[node_key[:2]]))
        if run.durability == "exit":
            run._flush_exit()
        yield from _drain_nowait(run.items)
        return
    config = run.config_for_node(t)
    ctx = contextvars.copy_context()
    outcome: list[Any] = []
    done = object()

    def target() -> None:
        try:
            result = ctx.run(_retrying, lambda: _traced(config, t.name, value,
                                                        lambda c: call_node(value, c)),
                             _policies(run.graph.retry_policy))
            _wait_all(t)
            outcome.append((True, result))
        except BaseException as e:  # noqa: BLE001
            _wait_all(t)
            outcome.append((False, e))
        run.items.put(done)
    DEFAULT_POOL.submit(target)
    while True:
        item = run.items.get()
        if item is done:
            break
        yield item
    ok, result = outcome[0]
    if ok:
        run.node_done(t, result)
        if node_key is not None:
            run.cache.set({node_key[:2]: (run.node_writes(result), node_key[2])})
    elif isinstance(result, GraphInterrupt):
        run.node_interrupted(t, result)
        if run.parent_ns:  # run by a task: the task pauses too (LangGraph's subgraph rule)
            if run.durability == "exit":
                run._flush_exit()
            raise GraphInterrupt(tuple(run.interrupts))
    else:
        run.node_failed(t, result)
        yield from _drain_nowait(run.items)
        raise result
    if run.durability == "exit":
        run._flush_exit()
    yield from _drain_nowait(run.items)


def _drain_nowait(q: Any) -> Iterator[Any]:
    while True:
        try:
            item = q.get_nowait()
        except (queue.Empty, asyncio.QueueEmpty):
            return
        if item is not None:
            yield item


async def run_async(run: FuncRun, call_node: Callable[[Any, dict[str, Any]], Any],
                    is_async: bool) -> AsyncIterator[Any]:
    loop = asyncio.get_running_loop()
    run.loop = loop
    run.loop_thread = threading.get_ident()
    run.outbox = [] if run.saver is not None else None
    run.items = asyncio.Queue()
    saved = await run.saver.aget_tuple(run.thread) if run.saver is not None else None
    runs = run.begin(saved)
    await run.aflush()
    for item in _drain_nowait(run.items):
        yield item
    if not runs:
        return
    t, value = run.node_task()
    if run.root_run is not None:
        run.node_callbacks = run.root_run.get_child(f"graph:step:{run.step}")
    run.add_stream_handlers(t)
    finished = run.node_finished(t)
    if finished is not None:
        run.apply(t, {END: finished.get(END), PREVIOUS: finished.get(PREVIOUS)})
        await run.aflush()
        for item in _drain_nowait(run.items):
            yield item
        return
    run.emit_task_start(t, value, (START,))
    node_key = run.node_cache_key(value)
    if node_key is not None and node_key[:2] in (
            found := await run.cache.aget([node_key[:2]])):
        run.node_done(t, None, cached=dict(found[node_key[:2]]))
        if run.durability == "exit":
            run._flush_exit()
        await run.aflush()
        for item in _drain_nowait(run.items):
            yield item
        return
    config = run.config_for_node(t)
    policies = _policies(run.graph.retry_policy)
    timeout = run.graph.timeout

    async def body() -> Any:
        if is_async:
            async def once() -> Any:
                if timeout is not None:
                    return await _timed(t.name, lambda c: _atraced(c, t.name, value, once_in),
                                        config, timeout)
                return await _atraced(config, t.name, value, once_in)

            async def once_in(config: dict[str, Any]) -> Any:
                token = var_child_runnable_config.set(config)
                try:
                    return await call_node(value, config)
                finally:
                    var_child_runnable_config.reset(token)
            try:
                return await _aretrying(once, policies)
            finally:
                await _await_all(t)
        ctx = contextvars.copy_context()

        def sync_body() -> Any:
            try:
                return _retrying(lambda: _traced(config, t.name, value,
                                                 lambda c: call_node(value, c)), policies)
            finally:
                _wait_all(t)
        return await loop.run_in_executor(None, ctx.run, sync_body)

    node = loop.create_task(body())
    node.add_done_callback(lambda _f: run.items.put_nowait(None))
    run.defer = True
    try:
        while not node.done() or not run.items.empty() or run.inflight:
            item = await run.items.get()
            if item is not None:
                yield item  # before the saver's writes are awaited: what awaits the task
                # that made it may go on meanwhile, so the item goes first (LangGraph's order)
            await run.aflush()
    except BaseException:
        node.cancel()
        raise
    finally:
        run.defer = False
    try:
        result = node.result()
        ok = True
    except BaseException as e:  # noqa: BLE001
        result, ok = e, False
    if ok:
        run.node_done(t, result)
        if node_key is not None:
            await run.cache.aset({node_key[:2]: (run.node_writes(result), node_key[2])})
    elif isinstance(result, GraphInterrupt):
        run.node_interrupted(t, result)
        if run.parent_ns:
            if run.durability == "exit":
                run._flush_exit()
            await run.aflush()
            raise GraphInterrupt(tuple(run.interrupts))
    else:
        run.node_failed(t, result)
        await run.aflush()
        for item in _drain_nowait(run.items):
            yield item
        raise result
    if run.durability == "exit":
        run._flush_exit()
    await run.aflush()
    for item in _drain_nowait(run.items):
        yield item


# -- state --------------------------------------------------------------------------------------

def snapshot(graph: Any, saved: Any, saver: Any) -> StateSnapshot:
    ck = saved.checkpoint
    metadata = saved.metadata or {}
    values = ck["channel_values"].get(END)
    name = graph.name_of_node
    tasks: list[PregelTask] = []
    interrupts: list[Any] = []
    if START in ck["channel_values"]:
        step = metadata.get("step", -1) + 1
        ns = saved.config["configurable"].get("checkpoint_ns", "")
        base = f"{ns}|{name}" if ns else name
        tid = task_id(ck["id"], base, str(step), name, PULL, START)
        statuses = task_statuses((str(a), b, c) for a, b, c in saved.pending_writes or ())
        status = statuses.get(tid)
        error = None
        task_interrupts: tuple[Any, ...] = ()
        result = None
        if status is not None:
            task_interrupts = tuple(status.interrupts)
            error = status.error
            if status.finished:
                result = dict(status.output).get(END)
        interrupts.extend(task_interrupts)
        tasks.append(PregelTask(tid, name, (PULL, name), error, task_interrupts, None, result))
    return StateSnapshot(
        values,
        tuple(t.name for t in tasks),
        saved.config,
        metadata,
        ck.get("ts"),
        saved.parent_config,
        tuple(tasks),
        tuple(interrupts),
    )


def update_state(graph: Any, saver: Any, config: dict[str, Any], values: Any,
                 as_node: str | None) -> dict[str, Any]:
    """LangGraph's `update_state` of an entrypoint's thread: `values` written as the
    function's return (`__end__` and `__previous__`), in a checkpoint of source `update`."""
    from uuid import UUID, uuid5

    from ferrograph.errors import InvalidUpdateError
    name = graph.name_of_node
    if as_node is not None and as_node != name:
        raise InvalidUpdateError(f"Node {as_node} does not exist")
    configurable = {k: v for k, v in (config.get("configurable") or {}).items()
                    if not k.startswith("__")}
    configurable.setdefault("checkpoint_ns", "")
    thread = {"configurable": configurable}
    saved = saver.get_tuple(thread)
    if saved is not None:
        ck = _copy(saved.checkpoint)
        step = (saved.metadata or {}).get("step", -1) + 1
    else:
        ck = _empty_checkpoint()
        ck["versions_seen"] = {}
        step = 0
    from ferrograph.func import entrypoint as _ep
    value = values.value if isinstance(values, _ep.final) else values
    save = values.save if isinstance(values, _ep.final) else values
    writes = [(END, value), (PREVIOUS, save)]
    if saved is not None:
        latest = saver.get_tuple({"configurable": {
            "thread_id": configurable["thread_id"],
            "checkpoint_ns": configurable["checkpoint_ns"]}})
        if latest is not None and latest.checkpoint["id"] == saved.checkpoint["id"]:
            if START in saved.checkpoint["channel_values"]:
                ns = configurable["checkpoint_ns"]
                base = f"{ns}|{name}" if ns else name
                tid = task_id(saved.checkpoint["id"], base, str(step), name, PULL, START)
            else:
                tid = str(uuid5(UUID(saved.checkpoint["id"]), INTERRUPT))
            saver.put_writes(saved.config, writes, tid)
    version = saver.get_next_version(max(ck["channel_versions"].values(), default=None), None)
    new_versions: dict[str, Any] = {}
    if START in ck["channel_values"]:
        del ck["channel_values"][START]
        ck["channel_versions"][START] = version
        new_versions[START] = version
    for k, v in writes:
        ck["channel_values"][k] = v
        ck["channel_versions"][k] = version
        new_versions[k] = version
    ck["versions_seen"].setdefault(name, {})
    ck["updated_channels"] = None
    ck["id"] = checkpoint_id(step)
    ck["ts"] = _now()
    put_config = {"configurable": dict(configurable)}
    if saved is not None:
        put_config["configurable"]["checkpoint_id"] = saved.checkpoint["id"]
    else:
        put_config["configurable"].pop("checkpoint_id", None)
    return saver.put(put_config, ck, {"source": "update", "step": step, "parents": {}},
                     new_versions)


# -- tasks called from a graph's node -----------------------------------------------------------

class _NoGraph:
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
        runtime = runtime.override(stream_writer=self._writer(t), execution_info=ExecutionInfo(
            checkpoint_id=self.checkpoint["id"], checkpoint_ns=t.ns, task_id=t.id,
            thread_id=configurable.get("thread_id")))
        configurable.update({
            CONFIG_KEY_CHECKPOINT_NS: t.ns,
            CONFIG_KEY_TASK_ID: t.id,
            CONFIG_KEY_RUNTIME: runtime,
            CONFIG_KEY_TASK: t,
            CONFIG_KEY_CALL: self.make_call(t),
        })
        if t.checkpoint_map is not None:
            configurable["checkpoint_map"] = t.checkpoint_map
        metadata = {**(base.get("metadata") or {}),
                    "langgraph_step": self.step, "langgraph_node": t.name,
                    "langgraph_triggers": (PUSH,), "langgraph_path": t.path,
                    "langgraph_checkpoint_ns": t.ns}
        config = {**{k: v for k, v in base.items() if k not in ("run_id", "run_name")},
                  "configurable": configurable, "metadata": metadata, "run_name": t.name,
                  "callbacks": callbacks}
        t.config = config
        return config

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
