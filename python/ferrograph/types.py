"""Values users hand to the graph or get back from it: routing, retries, stream parts."""

from __future__ import annotations

import pickle
import random
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any, ClassVar, Generic, Literal, NamedTuple, TypedDict, TypeVar

from ferrograph._schema import annotated_keys, object_update

StreamMode = Literal["values", "updates", "checkpoints", "tasks", "debug", "messages", "custom"]
"""What `stream()` emits; see README for each mode's item shape."""

StreamWriter = Callable[[Any], None]
"""Callable a node receives (as its `writer` parameter) to emit `custom` stream items."""

All = Literal["*"]


def _timeout_seconds(value: float | timedelta | None, *, field: str) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds <= 0:
        raise ValueError(f"{field} must be greater than 0")
    return seconds


@dataclass(frozen=True, slots=True)
class TimeoutPolicy:
    """How long one attempt of a node may run (LangGraph 1.2's): `run_timeout`, a hard
    wall-clock cap; `idle_timeout`, the longest time without progress (a
    `runtime.heartbeat()`, or under `refresh_on="auto"` also a custom stream item). When
    one is exceeded the attempt is cancelled with `NodeTimeoutError` (which the retry
    policy may retry). Only async nodes can be timed: sync code cannot be cancelled."""

    run_timeout: float | timedelta | None = None
    idle_timeout: float | timedelta | None = None
    refresh_on: Literal["auto", "heartbeat"] = "auto"

    @classmethod
    def coerce(cls, value: float | timedelta | TimeoutPolicy | None) -> TimeoutPolicy | None:
        """`value` as a policy of positive seconds: a number or `timedelta` is a
        `run_timeout`; None (or a policy without timeouts) is None."""
        if value is None:
            return None
        if not isinstance(value, TimeoutPolicy):
            value = cls(run_timeout=value)
        if value.refresh_on not in ("auto", "heartbeat"):
            raise ValueError("refresh_on must be 'auto' or 'heartbeat'")
        run_timeout = _timeout_seconds(value.run_timeout, field="run_timeout")
        idle_timeout = _timeout_seconds(value.idle_timeout, field="idle_timeout")
        if run_timeout is None and idle_timeout is None:
            return None
        if all(v is None or type(v) is float for v in (value.run_timeout, value.idle_timeout)):
            return value  # already coerced (frozen, so shared)
        return cls(run_timeout=run_timeout, idle_timeout=idle_timeout,
                   refresh_on=value.refresh_on)


class Send:
    """Run `node` in the next step with `arg` as its whole input (map-reduce fan-out);
    `timeout` (seconds, a `timedelta` or a `TimeoutPolicy`) replaces the node's own for
    that task."""

    __slots__ = ("node", "arg", "timeout")

    def __init__(self, /, node: str, arg: Any,
                 timeout: float | timedelta | TimeoutPolicy | None = None) -> None:
        self.node = node
        self.arg = arg
        self.timeout = TimeoutPolicy.coerce(timeout)

    def __hash__(self) -> int:
        return hash((self.node, self.arg, self.timeout))

    def __repr__(self) -> str:
        if self.timeout is None:
            return f"Send(node={self.node!r}, arg={self.arg!r})"
        return f"Send(node={self.node!r}, arg={self.arg!r}, timeout={self.timeout!r})"

    def __eq__(self, value: object) -> bool:
        return (isinstance(value, Send) and self.node == value.node
                and self.arg == value.arg and self.timeout == value.timeout)


N = TypeVar("N", bound=Hashable)


def update_as_pairs(update: Any) -> list[tuple[str, Any]]:
    """The `(key, value)` pairs a node's update stands for (dict, pairs, or a state object)."""
    if update is None:
        return []
    if isinstance(update, dict):
        return list(update.items())
    if isinstance(update, (list, tuple)) and all(
        isinstance(t, tuple) and len(t) == 2 and isinstance(t[0], str) for t in update
    ):
        return list(update)
    if keys := annotated_keys(type(update)):  # a state object: Pydantic, dataclass, ...
        return object_update(update, keys)
    return [("__root__", update)]


@dataclass(kw_only=True, slots=True, frozen=True)
class Command(Generic[N]):
    """Returned by a node to update state and choose where to go next in one value."""

    graph: str | None = None
    update: Any | None = None
    resume: dict[str, Any] | Any | None = None
    goto: Send | Sequence[Send | N] | N = ()

    def __repr__(self) -> str:
        given = ", ".join(f"{k}={v!r}" for k, v in asdict(self).items() if v)
        return f"Command({given})"

    def _update_as_tuples(self) -> Sequence[tuple[str, Any]]:
        return update_as_pairs(self.update)

    PARENT: ClassVar[Literal["__parent__"]] = "__parent__"


def default_retry_on(exc: Exception) -> bool:
    """Retry on errors that are usually transient (network, 5xx), not on programming errors."""
    import httpx  # langchain-openai's transport; imported lazily to keep import time low

    if isinstance(exc, ConnectionError):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return 500 <= exc.response.status_code < 600
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int):
        return 500 <= status < 600
    return not isinstance(
        exc,
        (ValueError, TypeError, ArithmeticError, ImportError, LookupError, NameError,
         SyntaxError, RuntimeError, ReferenceError, StopIteration, StopAsyncIteration, OSError),
    )


class RetryPolicy(NamedTuple):
    """How often and how patiently a failing node is retried."""

    initial_interval: float = 0.5
    backoff_factor: float = 2.0
    max_interval: float = 128.0
    max_attempts: int = 3
    jitter: bool = True
    retry_on: type[Exception] | Sequence[type[Exception]] | Callable[[Exception], bool] = (
        default_retry_on
    )

    def should_retry(self, exc: Exception) -> bool:
        if isinstance(self.retry_on, type):
            return isinstance(exc, self.retry_on)
        if isinstance(self.retry_on, Sequence):
            return isinstance(exc, tuple(self.retry_on))
        return bool(self.retry_on(exc))

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        interval = min(self.max_interval,
                       self.initial_interval * self.backoff_factor ** (attempt - 1))
        return interval + random.uniform(0, 1) if self.jitter else interval


def _freeze(obj: Any, depth: int = 10) -> Hashable:
    """`obj` made hashable for a cache key, as LangGraph freezes it (mappings sorted)."""
    if isinstance(obj, Hashable) or depth <= 0:
        return obj
    if isinstance(obj, Mapping):
        return tuple(sorted((k, _freeze(v, depth - 1)) for k, v in obj.items()))
    if isinstance(obj, Sequence):
        return tuple(_freeze(x, depth - 1) for x in obj)
    if hasattr(obj, "tobytes"):  # numpy arrays and the like
        return (type(obj).__name__, obj.tobytes(), obj.shape if hasattr(obj, "shape") else None)
    return obj


def default_cache_key(*args: Any, **kwargs: Any) -> str | bytes:
    """LangGraph's default cache key of a node's input: the pickled, frozen arguments."""
    return pickle.dumps((_freeze(args), _freeze(kwargs)), protocol=5, fix_imports=False)


KeyFuncT = TypeVar("KeyFuncT", bound=Callable[..., "str | bytes"])


@dataclass(kw_only=True, slots=True, frozen=True)
class CachePolicy(Generic[KeyFuncT]):
    """How a node's results are cached (`add_node(..., cache_policy=...)`, with
    `compile(cache=...)`): `key_func` makes the key of the node's input (default: a hash of
    the pickled input), `ttl` is how many seconds an entry lives (None: for ever)."""

    key_func: KeyFuncT = default_cache_key  # type: ignore[assignment]
    ttl: int | None = None


@dataclass(slots=True)
class Overwrite:
    """Written to a reducer key, replaces its value instead of going through the reducer
    (LangGraph's). Two in one step for the same key are an `InvalidUpdateError`."""

    value: Any


@dataclass(frozen=True, slots=True)
class GraphOutput(Generic[N]):
    """What `invoke(..., version="v2")` returns: the final output and any interrupts."""

    value: Any
    interrupts: tuple[Any, ...] = ()

    def __getitem__(self, key: str) -> Any:
        if key == "__interrupt__":
            return self.interrupts
        if isinstance(self.value, dict):
            return self.value[key]
        try:
            return getattr(self.value, key)
        except AttributeError:
            raise KeyError(key) from None

    def __contains__(self, key: object) -> bool:
        if key == "__interrupt__":
            return bool(self.interrupts)
        if isinstance(self.value, dict):
            return key in self.value
        return isinstance(key, str) and hasattr(self.value, key)


class ValuesStreamPart(TypedDict):
    type: Literal["values"]
    ns: tuple[str, ...]
    data: Any


class UpdatesStreamPart(TypedDict):
    type: Literal["updates"]
    ns: tuple[str, ...]
    data: dict[str, Any]


class MessagesStreamPart(TypedDict):
    type: Literal["messages"]
    ns: tuple[str, ...]
    data: tuple[Any, dict[str, Any]]


class CustomStreamPart(TypedDict):
    type: Literal["custom"]
    ns: tuple[str, ...]
    data: Any


class TasksStreamPart(TypedDict):
    type: Literal["tasks"]
    ns: tuple[str, ...]
    data: dict[str, Any]


class DebugStreamPart(TypedDict):
    type: Literal["debug"]
    ns: tuple[str, ...]
    data: dict[str, Any]


StreamPart = (
    ValuesStreamPart
    | UpdatesStreamPart
    | MessagesStreamPart
    | CustomStreamPart
    | TasksStreamPart
    | DebugStreamPart
)

@dataclass(frozen=True, slots=True)
class TracePolicy:
    """How a node's own run is traced (LangGraph 1.2's `TracePolicy`).

    `process_inputs` / `process_outputs` get the node's real input / output and return what
    the user's tracers (`BaseTracer` callbacks) record on the node's run instead. Other
    callback handlers, the `messages` stream and the node itself see the real values; the
    node's child runs and the graph's own run are not affected. A processor that raises is
    logged and the real value recorded. Not meant for redacting secrets."""

    process_inputs: Callable[[Any], Any] | None = None
    process_outputs: Callable[[Any], Any] | None = None


_PLACEHOLDER_INTERRUPT_ID = "placeholder-id"


@dataclass(init=False, slots=True)
class Interrupt:
    """A question a node asked with `interrupt()`: its `value`, and the `id` a resume may
    answer it by (`Command(resume={id: answer})`)."""

    value: Any
    id: str
    response_schema: Any = None

    def __init__(self, value: Any, id: str = _PLACEHOLDER_INTERRUPT_ID, *,
                 response_schema: Any = None) -> None:
        self.value = value
        self.id = id
        self.response_schema = response_schema


class PregelTask(NamedTuple):
    """A task of a saved step, as `get_state` shows it."""

    id: str
    name: str
    path: tuple[Any, ...]
    error: Exception | None = None
    interrupts: tuple[Interrupt, ...] = ()
    state: Any = None
    result: Any | None = None


class StateUpdate(NamedTuple):
    """One update of `bulk_update_state`: `values` written as if `as_node` returned them."""

    values: dict[str, Any] | None
    as_node: str | None = None
    task_id: str | None = None


class StateSnapshot(NamedTuple):
    """A thread's state at one checkpoint (`get_state`, `get_state_history`)."""

    values: dict[str, Any] | Any
    next: tuple[str, ...]
    config: dict[str, Any]
    metadata: dict[str, Any] | None
    created_at: str | None
    parent_config: dict[str, Any] | None
    tasks: tuple[PregelTask, ...]
    interrupts: tuple[Interrupt, ...]


def _validated(adapter: Any, answer: Any) -> Any:
    """A resume value checked against the interrupt's `response_schema` (None: as given); a
    refused one raises the `ValidationError` marked as an invalid resume (`is_invalid_resume`)."""
    if adapter is None:
        return answer
    from pydantic import ValidationError

    from ferrograph.errors import _INVALID_RESUME
    try:
        return adapter.validate_python(answer)
    except ValidationError as e:
        setattr(e, _INVALID_RESUME, True)
        raise


def interrupt(value: Any, *, response_schema: Any = None) -> Any:
    """Pauses the run at this point of the node, handing `value` to the caller (under
    `__interrupt__`); the node runs again from its start when the thread is resumed with
    `Command(resume=answer)`, and this call then returns the answer. Several calls in one
    node are answered in order. Needs a checkpointer."""
    from ferrograph.config import CONFIG_KEY_TASK, get_config
    from ferrograph.errors import GraphInterrupt

    conf = get_config()["configurable"]
    task = conf.get(CONFIG_KEY_TASK)
    if task is None and conf.get("__pregel_scratchpad") is not None:
        # Called in a task of a graph compiled by LangGraph (run by one of ours, or the
        # other way round): LangGraph's run keeps the answers, so its interrupt asks.
        from langgraph.types import interrupt as langgraph_interrupt
        if langgraph_interrupt is not interrupt:  # (an import shim may map it to this one)
            return langgraph_interrupt(value, response_schema=response_schema)
    pad = getattr(task, "scratchpad", None)
    adapter = None
    if response_schema is not None and not isinstance(response_schema, dict):
        from pydantic import TypeAdapter
        adapter = TypeAdapter(response_schema)
    if pad is None:  # no checkpointer: the run stops here, with nothing to resume it by
        from ferrograph.pregel._thread_format import interrupt_id
        raise GraphInterrupt((Interrupt(value, interrupt_id(conf.get("checkpoint_ns", ""), 0),
                                        response_schema=response_schema),))
    index = pad.next_index()
    if index < len(pad.resume):
        pad.resume_written = pad.resume[: index + 1]
        answer = pad.resume[index]
        return _validated(adapter, answer)
    answer = pad.take_null_resume()
    if answer is not None:
        pad.resume.append(answer)
        pad.resume_written = list(pad.resume)
        return _validated(adapter, answer)
    from ferrograph.pregel._thread_format import interrupt_id
    schema = adapter.json_schema() if adapter else response_schema
    raise GraphInterrupt((Interrupt(value, interrupt_id(conf["checkpoint_ns"],
                                                        len(pad.resume)),
                                    response_schema=schema),))


def omit_payload(_value: Any) -> dict[str, Any]:
    """A `TracePolicy` processor recording an empty payload (the run and its timing kept)."""
    return {}


def _register_safe_msgpack_types() -> None:
    """Lets LangGraph's serializer rebuild these types as it rebuilds LangGraph's own: in
    its strict mode (`allowed_msgpack_modules=None`) only listed types are constructed, and
    LangGraph's list names `langgraph.types` alone, so a ferrograph `Send` (in a state, or
    saved by a user's own code) came back as a bare list. ferrograph's are the same plain
    data classes, so they join the list (`langgraph-checkpoint` is a dependency)."""
    from langgraph.checkpoint.serde import _msgpack

    ours = {(__name__, name) for name in ("Send", "TimeoutPolicy", "Interrupt", "Command",
                                          "StateSnapshot", "PregelTask", "Overwrite")}
    if not ours <= _msgpack.SAFE_MSGPACK_TYPES:
        _msgpack.SAFE_MSGPACK_TYPES = _msgpack.SAFE_MSGPACK_TYPES | ours


_register_safe_msgpack_types()


__all__ = [
    "All",
    "CachePolicy",
    "Command",
    "CustomStreamPart",
    "DebugStreamPart",
    "GraphOutput",
    "Interrupt",
    "MessagesStreamPart",
    "Overwrite",
    "PregelTask",
    "RetryPolicy",
    "Send",
    "StateSnapshot",
    "StateUpdate",
    "StreamMode",
    "StreamPart",
    "StreamWriter",
    "TasksStreamPart",
    "TimeoutPolicy",
    "TracePolicy",
    "UpdatesStreamPart",
    "ValuesStreamPart",
    "default_cache_key",
    "default_retry_on",
    "interrupt",
    "omit_payload",
]
