"""The functional API's run: an entrypoint is LangGraph's one-node graph (`__start__` -> the
function -> `__end__` / `__previous__`), and each `task` call made while it runs is a PUSH
task of its step, named, hashed, saved and resumed as LangGraph's `call` tasks are.

A thread is LangGraph's: the input checkpoint (step -1, or the thread's next step), the
function's task (id by LangGraph's PULL formula), each call's task (id by LangGraph's PUSH
`call` formula: the parent task's path and the call's index), their writes (`__return__`,
`__interrupt__`, `__resume__`, `__error__`, `__end__`, `__previous__`) saved against the
checkpoint as each task ends, and the step's checkpoint once the function returned. A
resume reruns the function; calls whose `__return__` was saved are answered from it.

The run is `FuncRun`, put together from its concerns: the thread on the saver
(`_func_thread`), the task calls (`_func_calls`), the items (`_func_items`); here, its
state, loading the thread and taking the input (`begin`), and the function's own task
(`start_node` ... `node_done` / `node_interrupted` / `node_failed`). The drivers are in
`_func_drive`, tracing in `_func_trace`, task calls from a graph's node in `_func_node`;
retries and timeouts are `_retry`'s, as a graph node's are.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from xxhash import xxh3_128_hexdigest

from ferrograph.config import CONFIG_KEY_RUNTIME, CONFIG_KEY_TASK_ID
from ferrograph.errors import EmptyInputError, GraphBubbleUp, GraphInterrupt
from ferrograph.pregel._func_calls import CONFIG_KEY_CHECKPOINT_NS, FuncCalls, FuncTask
from ferrograph.pregel._func_items import FuncItems
from ferrograph.pregel._func_thread import (
    END,
    PREVIOUS,
    START,
    FuncThread,
    empty_entrypoint_checkpoint,
)
from ferrograph.pregel._thread_format import (
    ERROR,
    INPUT,
    INTERRUPT,
    NULL_TASK_ID,
    PULL,
    RESUME,
    WireInterrupt,
    copy_checkpoint,
    is_interrupt_id,
    our_interrupt,
    task_id,
    task_statuses,
)
from ferrograph.types import Command, Interrupt

MISSING = object()


class FuncRun(FuncThread, FuncCalls, FuncItems):
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
            from ferrograph.pregel._task import calling_persisted_task, numbered_config
            calling = calling_persisted_task(config)
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
        self.checkpoint: dict[str, Any] = empty_entrypoint_checkpoint()
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
        self.output: Any = MISSING
        self.interrupts: list[Any] = []
        self.put_config: dict[str, Any] | None = None
        self.statuses: dict[str, Any] = {}

    # -- starting -----------------------------------------------------------------------------

    def begin(self, saved: Any) -> bool:
        """Loads the thread and writes the input; returns whether the function runs."""
        input = self.input
        is_command = isinstance(input, Command)
        if saved is not None:
            self.checkpoint = copy_checkpoint(saved.checkpoint, own_rows=True)
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
                self.save_checkpoint("fork", self.step + 1, {})
            if END in ck["channel_values"]:
                self.emit("values", ck["channel_values"][END], self.outer_ns)
            if START not in ck["channel_values"]:
                self.emit_checkpoint([])
                return False
            self.emit_checkpoint(["main"])
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
        version = self.next_version(max(ck["channel_versions"].values(), default=None))
        ck["channel_values"][START] = input
        ck["channel_versions"][START] = version
        ck["versions_seen"].setdefault(INPUT, {})
        ck["updated_channels"] = [START]
        self.save_checkpoint("input", self.step + 1 if saved is not None else -1,
                             {START: version})
        self.emit_checkpoint(["main"])
        self.step += 1
        return True

    def _take_command(self, command: Command) -> None:
        resume = command.resume
        if resume is None:
            if command.update is None and command.goto in ((), None):
                raise EmptyInputError("Received empty Command input")
            return
        if isinstance(resume, dict) and resume and all(is_interrupt_id(k) for k in resume):
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

    # -- tasks --------------------------------------------------------------------------------

    def node_task_id(self, step: int) -> str:
        name = self.graph.name_of_node
        ns = f"{self.parent_ns}|{name}" if self.parent_ns else name
        return task_id(self.checkpoint["id"], ns, str(step), name, PULL, START)

    # -- the function's task ------------------------------------------------------------------

    def start_node(self) -> tuple[FuncTask, Any, bool]:
        """The function's task of this step and its input, its callbacks and stream handlers
        set; whether it had finished (its saved writes are applied: nothing runs)."""
        t, value = self.node_task()
        if self.root_run is not None:
            self.node_callbacks = self.root_run.get_child(f"graph:step:{self.step}")
        self.add_stream_handlers(t)
        finished = self.node_finished(t)
        if finished is not None:
            self.apply(t, {END: finished.get(END), PREVIOUS: finished.get(PREVIOUS)})
            return t, value, True
        self.emit_task_start(t, value, (START,))
        return t, value, False

    def node_task(self) -> tuple[FuncTask, Any]:
        name = self.graph.name_of_node
        tid = self.node_task_id(self.step)
        base = f"{self.parent_ns}|{name}" if self.parent_ns else name
        ns = f"{base}:{tid}"
        self.statuses = task_statuses(self.pending)
        t = FuncTask(self, tid, name, (PULL, name), ns, self.resume_for(tid, ns))
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
        version = self.next_version(max(ck["channel_versions"].values(), default=None))
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
        self.save_checkpoint("loop", self.step, new_versions)
        self.output = ck["channel_values"].get(END)
        self.emit("values", self.output, self.outer_ns)
        self.emit_checkpoint([])

    def node_interrupted(self, t: FuncTask, e: GraphInterrupt) -> None:
        interrupts = tuple(our_interrupt(i) if not isinstance(i, Interrupt) else i
                           for i in e.args[0])
        writes: list[tuple[str, Any]] = [(INTERRUPT, [
            WireInterrupt(i.value, i.id, response_schema=i.response_schema)
            for i in interrupts])]
        if t.scratchpad.resume_written is not None:
            writes.append((RESUME, t.scratchpad.resume_written))
        self.put_writes(t.id, writes)
        self.flush_exit()
        self.interrupts.extend(interrupts)
        self.emit("updates", {INTERRUPT: interrupts}, self.outer_ns)
        current = self.checkpoint["channel_values"].get(END)
        self.emit("values", {**current, INTERRUPT: interrupts} if isinstance(current, dict)
                  else {INTERRUPT: interrupts}, self.outer_ns)
        self.emit_task_end(t, {}, interrupts=interrupts)

    def node_failed(self, t: FuncTask, e: BaseException) -> None:
        if isinstance(e, Exception) and not isinstance(e, GraphBubbleUp):
            self.put_writes(t.id, [(ERROR, e)])
            self.flush_exit()
            self.emit_task_end(t, {}, error=e)

    node_callbacks: Any = None
    root_run: Any = None

    def config_for_node(self, t: FuncTask) -> dict[str, Any]:
        return self.task_config(t, self.node_callbacks)
