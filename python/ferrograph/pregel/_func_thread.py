"""An entrypoint's thread on its saver, in LangGraph's format: the channels (`__start__`,
`__end__`, `__previous__`), the writes saved as each task ends (`put_writes`, `durability`:
now, on the loop's flush, or at the run's exit), the step's checkpoint (`save_checkpoint`),
and, outside a run, the thread's `snapshot` and `update_state`.

`FuncThread` is the saver side of `FuncRun` (`_func`); it reads the run's `saver`, `thread`,
`checkpoint`, `pending`, `durability` and `outbox`.
"""

from __future__ import annotations

from typing import Any

from ferrograph.pregel._thread_format import (
    INPUT,
    INTERRUPT,
    NULL_TASK_ID,
    PULL,
    checkpoint_id,
    copy_checkpoint,
    now_iso,
    task_id,
    task_statuses,
)
from ferrograph.types import PregelTask, StateSnapshot

START = "__start__"
END = "__end__"
PREVIOUS = "__previous__"


def empty_entrypoint_checkpoint() -> dict[str, Any]:
    """The checkpoint of an entrypoint's thread before its first step: LangGraph 1.2's
    `empty_checkpoint()` (no `pending_sends`, which `_checkpoint`'s keeps for graphs); its id
    and time are set when it is saved."""
    return {"v": 4, "id": "", "ts": "", "channel_values": {}, "channel_versions": {},
            "versions_seen": {INPUT: {}}, "updated_channels": None}


class FuncThread:
    """`FuncRun`'s writes to its saver (or, on an event loop, to its `outbox`)."""

    unsaved: tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | None = None
    """`durability="exit"`: the newest checkpoint, not saved yet (with its metadata and
    the versions that changed since the last saved)."""
    saved_id: str | None = None

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

    def at_checkpoint(self) -> dict[str, Any]:
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
            self._saver_call("put_writes", self.at_checkpoint(), writes, tid)

    def flush_exit(self) -> None:
        """`durability="exit"`: the run's newest checkpoint (if it made one), then the
        writes still pending against it (nothing under any other durability)."""
        if self.durability != "exit":
            return
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
            self._saver_call("put_writes", self.at_checkpoint(), w, tid)

    def save_checkpoint(self, source: str, step: int, new_versions: dict[str, Any]) -> None:
        """The run's checkpoint, as of step `step`, saved (or kept for the run's exit)."""
        ck = self.checkpoint
        ck["id"] = checkpoint_id(step)
        ck["ts"] = now_iso()
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
            self.unsaved = (copy_checkpoint(ck, own_rows=True), dict(self.metadata), versions)
            return
        config = {"configurable": {**self.thread["configurable"]}}
        if self.saved_id:
            config["configurable"]["checkpoint_id"] = self.saved_id
            self.parent_config = {"configurable": {**self.thread["configurable"],
                                                   "checkpoint_id": self.saved_id}}
        else:
            config["configurable"].pop("checkpoint_id", None)
            self.parent_config = None
        self._saver_call("put", config, copy_checkpoint(ck, own_rows=True), dict(self.metadata),
                         dict(new_versions))
        self.saved_id = ck["id"]

    def next_version(self, current: Any) -> Any:
        if self.saver is not None:
            return self.saver.get_next_version(current, None)
        return (current or 0) + 1


def snapshot(graph: Any, saved: Any, saver: Any) -> StateSnapshot:
    """LangGraph's `StateSnapshot` of an entrypoint's saved checkpoint: the function's task
    next while `__start__` holds an input, with its interrupts, error or result."""
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
        ck = copy_checkpoint(saved.checkpoint, own_rows=True)
        step = (saved.metadata or {}).get("step", -1) + 1
    else:
        ck = empty_entrypoint_checkpoint()
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
    ck["ts"] = now_iso()
    put_config = {"configurable": dict(configurable)}
    if saved is not None:
        put_config["configurable"]["checkpoint_id"] = saved.checkpoint["id"]
    else:
        put_config["configurable"].pop("checkpoint_id", None)
    return saver.put(put_config, ck, {"source": "update", "step": step, "parents": {}},
                     new_versions)
