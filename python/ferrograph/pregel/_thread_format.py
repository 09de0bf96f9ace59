"""LangGraph's thread format, as both engines read and write it: the names of its special
channels and writes, task, checkpoint and interrupt ids (LangGraph's hashes and uuid6),
what a task's saved writes say of it (`TaskStatus`), the saver's names of the engine's
channel versions (`Versions`), writes in saved form and back, and the classes interrupts,
sends and commands are saved as (LangGraph's names, so a thread moves between engines).

Pure data and functions: `Persistence` (`_checkpoint`), the state API (`_state`), the node
cache and the functional API's thread build on them.
"""

from __future__ import annotations

import binascii
import dataclasses
import importlib.util
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from langgraph.checkpoint.base import id as _uuid6_state
from xxhash import xxh3_128_hexdigest

from ferrograph._core import new_checkpoint_id, new_checkpoint_stamp, next_version_name
from ferrograph.errors import InvalidUpdateError
from ferrograph.pregel._write import WRITE_GOTO, WRITE_KEY, WRITE_SEND
from ferrograph.types import Command, Interrupt, Send

if TYPE_CHECKING:
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


def task_path_str(tup: Any) -> str:
    """LangGraph's text of a task path (a part of a PUSH task's id; savers order a
    checkpoint's writes by it)."""
    if isinstance(tup, (tuple, list)):
        return "~" + ", ".join(task_path_str(x) for x in tup)
    if isinstance(tup, int) and not isinstance(tup, bool):
        return f"{tup:010d}"
    return str(tup)


def task_id(checkpoint_id: str, *parts: str) -> str:
    """LangGraph's task id: a uuid-shaped XXH3-128 of the checkpoint id and the task's
    namespace, step, name and path, so the same task of the same checkpoint has the same
    id in any process and either engine."""
    return task_id_of(binascii.unhexlify(checkpoint_id.replace("-", ""))
                      + "".join(parts).encode())


def task_id_of(key: bytes) -> str:
    """`task_id` of the bytes it hashes (the checkpoint id's 16, then the parts')."""
    digest = xxh3_128_hexdigest(key)
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def pull_id_parts(graph: Any, ns: str) -> dict[int, tuple[bytes, bytes]]:
    """Per node id, the bytes a pull task's id hashes before the step (its namespace `ns`)
    and after it (its name, `PULL` and its triggers), see `task_id`: kept on the graph."""
    by_ns = graph.__dict__.get("_pull_id_parts")
    if by_ns is None:
        by_ns = graph._pull_id_parts = {}
    parts = by_ns.get(ns)
    if parts is None:
        parts = by_ns[ns] = {}
    return parts


def add_pull_id_parts(graph: Any, ns: str, parts: dict[int, tuple[bytes, bytes]],
                      node_id: int, name: str) -> tuple[bytes, bytes]:
    """Node `node_id`'s (`name`'s) entry of `pull_id_parts`, made and kept."""
    task_ns = f"{ns}|{name}" if ns else name
    found = parts[node_id] = (task_ns.encode(),
                              "".join((name, PULL, *graph.triggers[node_id])).encode())
    return found


def checkpoint_id(step: int) -> str:
    """A new checkpoint id: LangGraph's `str(uuid6(clock_seq=step))` (a version 6 uuid of
    the time, the step and random bits, later than any it made before in this process:
    the last time is LangGraph's own), made in Rust (`new_checkpoint_id`)."""
    text, _uuid6_state._last_v6_timestamp = new_checkpoint_id(
        step, _uuid6_state._last_v6_timestamp)
    return text


def checkpoint_id_and_time(step: int) -> tuple[str, str]:
    """`checkpoint_id(step)` and `now_iso()` from one reading of the clock."""
    text, ts, _uuid6_state._last_v6_timestamp = new_checkpoint_stamp(
        step, _uuid6_state._last_v6_timestamp)
    return text, ts


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


VERSIONING_SAVERS = (
    ("langgraph.checkpoint.memory", "InMemorySaver"),
    ("langgraph.checkpoint.sqlite", "SqliteSaver"),
    ("langgraph.checkpoint.sqlite.aio", "AsyncSqliteSaver"),
    ("langgraph.checkpoint.postgres.base", "BasePostgresSaver"),
)
"""LangGraph's savers whose `get_next_version` is `next_version_name`'s rule."""


def is_stock_method(saver_type: type, method: str, savers: tuple[tuple[str, str], ...]) -> bool:
    """Whether `saver_type`'s `method` is the one of one of LangGraph's `savers` (module,
    class): not overridden, so what it does is known (savers of extras not installed are
    skipped). Answered once per type and method."""
    key = (saver_type, method)
    known = _STOCK_METHODS.get(key)
    if known is None:
        stock = []
        for module, name in savers:
            try:
                stock.append(getattr(getattr(importlib.import_module(module), name), method))
            except (ImportError, AttributeError):  # an extra that is not installed
                continue
        known = _STOCK_METHODS[key] = getattr(saver_type, method, None) in stock
    return known


_STOCK_METHODS: dict[tuple[type, str], bool] = {}


def _namer(saver: Any) -> Callable[[Any], Any]:
    """See `Versions.namer`."""
    if is_stock_method(type(saver), "get_next_version", VERSIONING_SAVERS) and (
            "get_next_version" not in getattr(saver, "__dict__", ())):
        return next_version_name
    method = saver.get_next_version
    return lambda current: method(current, None)


class Versions:
    """The saver's names of the engine's channel versions (index: engine version)."""

    __slots__ = ("names", "saver", "namer")

    def __init__(self, saver: Any, names: list[Any] | None = None) -> None:
        self.saver = saver
        self.names: list[Any] = names if names is not None else [None]
        self.namer: Callable[[Any], Any] | None = None
        """The name after a name: the saver's `get_next_version`, or for LangGraph's own
        savers (theirs not replaced, on the class or the saver) the same names made in
        Rust (`next_version_name`). Looked up at the first `cover`."""

    def cover(self, latest: int) -> list[Any]:
        """The names, with one made for each engine version up to `latest`."""
        names = self.names
        if len(names) <= latest:
            namer = self.namer
            if namer is None:
                namer = self.namer = _namer(self.saver)
            while len(names) <= latest:
                names.append(namer(names[-1]))
        return names

    def made_in_rust(self) -> bool:
        """Whether the names are those of LangGraph's own savers (`next_version_name`),
        which the Rust steps make too (`rust/src/python/thread_save.rs`)."""
        if self.namer is None:
            self.namer = _namer(self.saver)
        return self.namer is next_version_name

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


def tracked_arg(graph: CompiledStateGraph, arg: Any) -> Any:
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


def interrupt_dict(interrupt: Any) -> dict[str, Any]:
    return {"value": interrupt.value, "id": interrupt.id,
            "response_schema": getattr(interrupt, "response_schema", None)}


def our_command(value: Any) -> Any:
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


def empty_checkpoint() -> dict[str, Any]:
    """LangGraph's `empty_checkpoint()`, the checkpoint of a run before it starts. Its id
    and time are never saved nor used (a run saves or loads a checkpoint first), so they
    are made once: a snapshot or an update builds a `Persistence` per checkpoint."""
    return {**_EMPTY_CHECKPOINT, "channel_values": {}, "channel_versions": {},
            "versions_seen": {}, "pending_sends": []}


def now_iso() -> str:
    """LangGraph's `datetime.now(timezone.utc).isoformat()` (no fraction on a whole
    second), the date and time of day formatted once a second."""
    global _SECOND
    second, micros = divmod(time.time_ns() // 1000, 1_000_000)
    known = _SECOND
    if known[0] != second:
        known = _SECOND = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{known[1]}.{micros:06d}+00:00" if micros else f"{known[1]}+00:00"


_SECOND: tuple[int, str] = (-1, "")
"""The last second `now_iso` formatted (one tuple, replaced whole: threads share it)."""


_EMPTY_CHECKPOINT: dict[str, Any] = {
    "v": CHECKPOINT_FORMAT, "id": checkpoint_id(-2), "ts": now_iso(), "channel_values": {},
    "channel_versions": {}, "versions_seen": {}, "pending_sends": [], "updated_channels": None}

