"""The run-scoped values a node can ask for with a `runtime` parameter (LangGraph 1.2's
`langgraph.runtime`: `Runtime`, `ExecutionInfo`, `ServerInfo`, `RunControl`, `get_runtime`).

A run shares one `Runtime` among its tasks (it rides in each task's config under LangGraph's
key, where a graph compiled by LangGraph that a task runs also finds it). What differs per task,
`execution_info`, is filled in when a node asks for its runtime (a `runtime` parameter or
`get_runtime()`), so tasks that never ask cost nothing for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any, Generic, TypeVar

from ferrograph.config import CONFIG_KEY_RUN_ID, CONFIG_KEY_RUNTIME, CONFIG_KEY_TASK_ID, get_config
from ferrograph.types import StreamWriter

ContextT = TypeVar("ContextT")


@dataclass(frozen=True, slots=True)
class ExecutionInfo:
    """Read-only facts about the execution of the running node."""

    checkpoint_id: str
    """The checkpoint the task runs from ("" without a checkpointer: ferrograph makes no
    checkpoints then)."""
    checkpoint_ns: str
    """The task's namespace (`node:<task id>`, under its parent graph's when nested)."""
    task_id: str
    thread_id: str | None = None
    """`configurable["thread_id"]`, when given."""
    run_id: str | None = None
    """The config's `run_id`, when given."""
    node_attempt: int = 1
    """Which attempt of the node this is (1-indexed; more under a retry policy)."""
    node_first_attempt_time: float | None = None
    """Unix time of the node's first attempt."""

    def patch(self, **overrides: Any) -> ExecutionInfo:
        """A copy with the given fields replaced."""
        return replace(self, **overrides)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What LangGraph Server puts in the config (`assistant_id`, `graph_id`,
    `langgraph_auth_user`); None when the run has none of them."""

    assistant_id: str
    graph_id: str
    user: Any = None
    """The authenticated user (LangGraph SDK's `BaseUser` protocol), if any."""


class RunControl:
    """Run-scoped control for cooperative draining: once `request_drain()` is called (from
    any thread), the run stops before its next step and raises `GraphDrained`.

    One per run: a control stays drained once asked to."""

    __slots__ = ("_drain_reason",)

    def __init__(self) -> None:
        self._drain_reason: str | None = None

    def request_drain(self, reason: str = "shutdown") -> None:
        self._drain_reason = reason

    @property
    def drain_requested(self) -> bool:
        return self._drain_reason is not None

    @property
    def drain_reason(self) -> str | None:
        return self._drain_reason


def _discard(_: Any) -> None:
    """The stream writer outside a streamed run: items go nowhere."""


def _no_op_heartbeat() -> None:
    """The heartbeat outside an idle-timed attempt (a `TimeoutPolicy` with `idle_timeout`)."""


@dataclass(kw_only=True, slots=True, frozen=True)
class Runtime(Generic[ContextT]):
    """What a node's `runtime: Runtime[Context]` parameter receives."""

    context: ContextT = None  # type: ignore[assignment]
    """The run's context (`context=`), or its caller's for a graph a node runs."""
    store: Any = None
    """The graph's store (`compile(store=...)`)."""
    stream_writer: StreamWriter = field(default=_discard)
    """Writes `custom` stream items (discards them when nobody streams that mode)."""
    heartbeat: Callable[[], None] = field(default=_no_op_heartbeat)
    """Progress signal for idle timeouts (a no-op outside an idle-timed attempt)."""
    previous: Any = None
    """The previous return value for the thread (functional API with a checkpointer)."""
    execution_info: ExecutionInfo | None = None
    """The running node's execution facts (None outside a node)."""
    server_info: ServerInfo | None = None
    """LangGraph Server's identifiers from the config (None without them)."""
    control: RunControl | None = None
    """The run's drain control (a run's tasks and the graphs they run share it)."""

    def merge(self, other: Runtime[ContextT]) -> Runtime[ContextT]:
        """`other`, with what it leaves unset taken from this runtime."""
        return Runtime(
            context=other.context or self.context,
            store=other.store or self.store,
            stream_writer=(other.stream_writer if other.stream_writer is not _discard
                           else self.stream_writer),
            heartbeat=(other.heartbeat if other.heartbeat is not _no_op_heartbeat
                       else self.heartbeat),
            previous=self.previous if other.previous is None else other.previous,
            execution_info=other.execution_info or self.execution_info,
            server_info=other.server_info or self.server_info,
            control=other.control or self.control,
        )

    def override(self, **overrides: Any) -> Runtime[ContextT]:
        """A copy with the given fields replaced."""
        return replace(self, **overrides)

    def patch_execution_info(self, **overrides: Any) -> Runtime[ContextT]:
        """A copy whose `execution_info` has the given fields replaced."""
        if self.execution_info is None:
            raise RuntimeError("Cannot patch execution_info before it has been set")
        return replace(self, execution_info=self.execution_info.patch(**overrides))

    @property
    def drain_requested(self) -> bool:
        return self.control.drain_requested if self.control is not None else False

    @property
    def drain_reason(self) -> str | None:
        return self.control.drain_reason if self.control is not None else None


DEFAULT_RUNTIME: Runtime[Any] = Runtime()

# Made once per run (and per task that asks for its runtime): built through the slots' own
# setters, a fraction of the frozen dataclass's `__init__` or `replace`.
_RUNTIME_SLOTS = tuple(Runtime.__dict__[f.name] for f in fields(Runtime))
_INFO_SLOTS = tuple(ExecutionInfo.__dict__[f.name] for f in fields(ExecutionInfo))
(_set_context, _set_store, _set_writer, _set_heartbeat, _set_previous, _set_info,
 _set_server_info, _set_control) = (slot.__set__ for slot in _RUNTIME_SLOTS)
_new = object.__new__


class _UnfrozenRuntime(Generic[ContextT]):
    """`Runtime`'s very layout (the same slots, in order, over the same base) without its
    frozen `__setattr__`: a run's runtime is filled in as one of these with plain attribute
    stores, then made a `Runtime` by `__class__` assignment, which CPython allows between
    classes of one layout. That is a third of the cost of eight slot-setter calls, and
    every run pays it (checked once at import; `_slow_run_runtime` otherwise)."""

    __slots__ = Runtime.__slots__


def run_runtime(context: Any, store: Any, server_info: ServerInfo | None,
                control: RunControl) -> Runtime[Any]:
    """`Runtime(context=..., store=..., server_info=..., control=...)`, fast."""
    runtime = _new(_UnfrozenRuntime)
    runtime.context = context
    runtime.store = store
    runtime.stream_writer = _discard
    runtime.heartbeat = _no_op_heartbeat
    runtime.previous = None
    runtime.execution_info = None
    runtime.server_info = server_info
    runtime.control = control
    runtime.__class__ = Runtime  # type: ignore[assignment]
    return runtime  # type: ignore[return-value]


def _slow_run_runtime(context: Any, store: Any, server_info: ServerInfo | None,
                      control: RunControl) -> Runtime[Any]:
    """`run_runtime` through the slots' setters, where `__class__` assignment is refused."""
    runtime = _new(Runtime)
    _set_context(runtime, context)
    _set_store(runtime, store)
    _set_writer(runtime, _discard)
    _set_heartbeat(runtime, _no_op_heartbeat)
    _set_previous(runtime, None)
    _set_info(runtime, None)
    _set_server_info(runtime, server_info)
    _set_control(runtime, control)
    return runtime


try:
    if run_runtime(1, 2, None, None) != Runtime(context=1, store=2):  # type: ignore[arg-type]
        run_runtime = _slow_run_runtime  # noqa: F811 - the fallback
except TypeError:  # a layout CPython will not swap between
    run_runtime = _slow_run_runtime  # noqa: F811 - the fallback


def _with_execution_info(runtime: Runtime[Any], info: ExecutionInfo) -> Runtime[Any]:
    """`replace(runtime, execution_info=info)`, fast."""
    copy = _new(Runtime)
    for slot in _RUNTIME_SLOTS:
        slot.__set__(copy, slot.__get__(runtime))
    _set_info(copy, info)
    return copy


def _execution_info(*values: Any) -> ExecutionInfo:
    """`ExecutionInfo(*values)` (every field, in order), fast."""
    info = _new(ExecutionInfo)
    for slot, value in zip(_INFO_SLOTS, values, strict=True):
        slot.__set__(info, value)
    return info


def server_info_of(configurable: dict[str, Any]) -> ServerInfo | None:
    """LangGraph Server's identifiers in a run's `configurable`, as LangGraph reads them."""
    assistant_id = configurable.get("assistant_id")
    graph_id = configurable.get("graph_id")
    user = configurable.get("langgraph_auth_user")
    if user is not None and not hasattr(user, "identity"):
        user = None
    if assistant_id is None and graph_id is None and user is None:
        return None
    return ServerInfo(assistant_id=str(assistant_id) if assistant_id else "",
                      graph_id=str(graph_id) if graph_id else "", user=user)


def task_runtime(config: dict[str, Any], attempt: int = 1,
                 first_attempt_time: float | None = None) -> Runtime[Any]:
    """The runtime of the task `config` belongs to, with its `execution_info` (the run's
    runtime is shared by its tasks, which differ only in that)."""
    configurable = config.get("configurable") or {}
    runtime = configurable.get(CONFIG_KEY_RUNTIME, DEFAULT_RUNTIME)
    task_id = configurable.get(CONFIG_KEY_TASK_ID)
    if task_id is None or not isinstance(runtime, Runtime):
        return runtime
    info = runtime.execution_info
    if info is not None and info.task_id == task_id:
        return runtime  # made for this task already (a retried attempt's)
    run_id = config.get("run_id") or configurable.get(CONFIG_KEY_RUN_ID)
    return _with_execution_info(runtime, _execution_info(
        configurable.get("checkpoint_id") or "",
        configurable.get("checkpoint_ns") or "",
        task_id,
        configurable.get("thread_id"),
        str(run_id) if run_id else None,
        attempt,
        time.time() if first_attempt_time is None else first_attempt_time,
    ))


def get_runtime(context_schema: type[ContextT] | None = None) -> Runtime[ContextT]:
    """The runtime of the node that is running now."""
    return task_runtime(get_config())


__all__ = ["ExecutionInfo", "RunControl", "Runtime", "ServerInfo", "get_runtime"]
