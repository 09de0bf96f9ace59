"""Differential testing helpers: build one graph with either implementation, run it, and
compare what the two runs did after normalising the values that differ from run to run.

`candidate()` is ferrograph, or langgraph itself when FERROGRAPH_PARITY_IMPL=langgraph (to
check that the scenarios and the normalisation are stable against the oracle alone).
`oracle()` is always langgraph.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

import pytest

IMPL_ENV = "FERROGRAPH_PARITY_IMPL"
LIB_NAMES = ("langgraph", "ferrograph")

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# LangGraph's debug timestamps: datetime.now(timezone.utc).isoformat(), which leaves the
# fraction out when the microseconds are 0 (one time in a million: a rare flake otherwise).
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$")


@dataclasses.dataclass(frozen=True)
class Lib:
    """The public names a graph is built from, taken from one implementation."""

    name: str
    StateGraph: Any
    START: str
    END: str
    MessagesState: Any
    add_messages: Callable[..., Any]
    Send: Any
    Command: Any
    RetryPolicy: Any
    StreamWriter: Any
    Runtime: Any
    get_stream_writer: Callable[[], Any]
    get_config: Callable[[], Any]
    errors: Any

    def __repr__(self) -> str:
        return f"Lib({self.name})"


def load(name: str) -> Lib:
    """`Lib` for "langgraph" or "ferrograph", imported the way a user would import it."""
    graph = importlib.import_module(f"{name}.graph")
    types = importlib.import_module(f"{name}.types")
    config = importlib.import_module(f"{name}.config")
    runtime = importlib.import_module(f"{name}.runtime")
    return Lib(
        name=name,
        StateGraph=graph.StateGraph,
        START=graph.START,
        END=graph.END,
        MessagesState=graph.MessagesState,
        add_messages=graph.add_messages,
        Send=types.Send,
        Command=types.Command,
        RetryPolicy=types.RetryPolicy,
        StreamWriter=types.StreamWriter,
        Runtime=runtime.Runtime,
        get_stream_writer=config.get_stream_writer,
        get_config=config.get_config,
        errors=importlib.import_module(f"{name}.errors"),
    )


@functools.cache
def oracle() -> Lib:
    return load("langgraph")


def candidate_name() -> str:
    return os.environ.get(IMPL_ENV, "ferrograph")


@functools.cache
def _candidate(name: str) -> Lib:
    return load(name)


def candidate() -> Lib:
    """The implementation under test. Fails (never skips) the calling test if it is missing."""
    name = candidate_name()
    try:
        return _candidate(name)
    except ImportError as e:
        pytest.fail(f"cannot import the implementation under test {name!r}: {e!r}", pytrace=False)


# --------------------------------------------------------------------------- normalisation


def normalise(value: Any) -> Any:
    """A comparable copy of `value`: uuids (task ids, message ids, namespaces) become "<id>",
    debug timestamps "<time>", messages / models / dataclasses / library objects plain dicts
    tagged with their class name. Containers keep their type (tuple vs list matters)."""
    from langchain_core.messages import BaseMessage
    from pydantic import BaseModel

    if isinstance(value, str):
        return _UUID.sub("<id>", value)
    if isinstance(value, dict):
        return {
            k: "<time>" if k == "timestamp" and _is_timestamp(v) else normalise(v)
            for k, v in value.items()
        }
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(normalise(v) for v in value)
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, BaseException):
        return {"__exception__": type(value).__name__, "str": normalise(str(value))}
    if isinstance(value, BaseMessage):
        return {"__message__": type(value).__name__, **normalise(value.model_dump())}
    if isinstance(value, BaseModel):
        return {"__model__": type(value).__name__, **normalise(dict(value))}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {"__dataclass__": type(value).__name__, **normalise(fields)}
    if type(value).__module__.split(".")[0] in LIB_NAMES:
        return {"__object__": type(value).__name__, **normalise(_attributes(value))}
    return value


def _is_timestamp(value: Any) -> bool:
    return isinstance(value, str) and bool(_TIMESTAMP.match(value))


def _attributes(obj: Any) -> dict[str, Any]:
    if hasattr(obj, "_asdict"):
        return dict(obj._asdict())
    names = [n for c in type(obj).__mro__ for n in getattr(c, "__slots__", ())]
    attrs = {n: getattr(obj, n) for n in names if hasattr(obj, n)}
    attrs.update(getattr(obj, "__dict__", {}))
    return {k: v for k, v in attrs.items() if not k.startswith("_")}


def sort_key(value: Any) -> str:
    """A total order on normalised values that ignores dict key order."""
    if isinstance(value, dict):
        return "{" + ",".join(sorted(f"{k!r}:{sort_key(v)}" for k, v in value.items())) + "}"
    if isinstance(value, (list, tuple)):
        return type(value).__name__ + "[" + ",".join(sort_key(v) for v in value) + "]"
    return repr(value)


# --------------------------------------------------------------------------- outcomes


@dataclasses.dataclass(frozen=True)
class Raised:
    """An exception as the user sees it: its class chain (with the implementation's package
    name replaced by "<lib>"), and its message."""

    types: tuple[str, ...]
    message: str

    @classmethod
    def of(cls, error: BaseException) -> Raised:
        chain = []
        for c in type(error).__mro__:
            if c in (object, BaseException, Exception):
                continue
            module = c.__module__
            top, _, rest = module.partition(".")
            chain.append(f"<lib>.{rest}.{c.__qualname__}" if top in LIB_NAMES else c.__qualname__)
        return cls(tuple(chain), normalise(str(error)))


def outcome(fn: Callable[[], Any]) -> Any:
    """The normalised result of `fn()`, or `Raised` for the exception it raised."""
    try:
        return normalise(fn())
    except Exception as e:  # noqa: BLE001 - the exception is the outcome being compared
        return Raised.of(e)


def drain(items: Iterable[Any]) -> tuple[list[Any], Raised | None]:
    """Everything a stream yielded before it ended (not normalised), and what it raised."""
    out: list[Any] = []
    try:
        for item in items:
            out.append(item)
    except Exception as e:  # noqa: BLE001 - the exception is part of what is compared
        return out, Raised.of(e)
    return out, None


# --------------------------------------------------------------------------- scenarios


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A graph built only through `lib.*` plus the arguments it is run with.

    `parallel` marks graphs with several tasks in one superstep: LangGraph emits their
    updates / custom items / task results in completion order, so those streams are compared
    order-insensitively within a step (see `canonical`)."""

    name: str
    build: Callable[[Lib], Any]
    input: Any
    config: dict[str, Any] | None = None
    context: Any = None
    parallel: bool = False

    def __str__(self) -> str:
        return self.name

    def kwargs(self) -> dict[str, Any]:
        return {} if self.context is None else {"context": self.context}

    def invoke(self, lib: Lib, **kwargs: Any) -> Any:
        graph = self.build(lib)
        return graph.invoke(self.input, self.config, **self.kwargs(), **kwargs)

    def stream(self, lib: Lib, **kwargs: Any) -> tuple[list[Any], Raised | None]:
        graph = self.build(lib)
        return drain(graph.stream(self.input, self.config, **self.kwargs(), **kwargs))


# --------------------------------------------------------------------------- stream shapes


@dataclasses.dataclass(frozen=True)
class Shape:
    """How items of one `stream()` call are laid out."""

    stream_mode: Any = "values"
    subgraphs: bool = False
    version: str = "v1"

    def kwargs(self) -> dict[str, Any]:
        # stream_mode=None: not passed at all (LangGraph's StateGraph default is "updates")
        kw: dict[str, Any] = {} if self.stream_mode is None else {"stream_mode": self.stream_mode}
        if self.subgraphs:
            kw["subgraphs"] = True
        if self.version != "v1":
            kw["version"] = self.version
        return kw

    def split(self, item: Any) -> tuple[tuple[str, ...], str, Any]:
        """(namespace, mode, payload) of one item."""
        if self.version == "v2":
            return tuple(item["ns"]), item["type"], item["data"]
        ns: tuple[str, ...] = ()
        if self.subgraphs:
            ns, item = item[0], item[1:]
            if len(item) == 1:
                item = item[0]
        if isinstance(self.stream_mode, list):
            return ns, item[0], item[1]
        return ns, self.stream_mode or "updates", item


def is_task_start(mode: str, payload: Any) -> bool:
    if mode == "tasks":
        return "input" in payload
    return mode == "debug" and payload.get("type") == "task"


def canonical(
    items: list[Any], shape: Shape, layout: dict[tuple[str, ...], list[int]] | None = None
) -> Any:
    """A form of a parallel run's stream that does not depend on thread timing.

    Items are grouped by namespace (a subgraph's items interleave with its siblings' at
    random). Each namespace's sequence is cut into supersteps: a `values` item closes one;
    a run of task-start events (tasks / debug) opens one; a debug `step` change opens one.
    Streams with none of these markers (only updates / custom) are cut by `layout`: chunk
    sizes per namespace, measured on the oracle. Task starts keep their order (LangGraph
    emits them in task order); everything else in a step is sorted."""
    by_ns: dict[tuple[str, ...], list[Any]] = {}
    for item in items:
        by_ns.setdefault(shape.split(item)[0], []).append(item)
    return {
        ns: _steps(seq, shape, None if layout is None else layout.get(ns, []))
        for ns, seq in by_ns.items()
    }


def _steps(items: list[Any], shape: Shape, layout: list[int] | None) -> list[Any]:
    if layout is not None:
        if sum(layout) != len(items):
            return ["layout does not fit", items]
        chunks, at = [], 0
        for size in layout:
            chunks.append(items[at : at + size])
            at += size
    else:
        chunks, current, prev_start, prev_step = [], [], False, None
        for item in items:
            _, mode, payload = shape.split(item)
            start = is_task_start(mode, payload)
            step = payload.get("step") if mode == "debug" else prev_step
            if current and ((start and not prev_start) or step != prev_step):
                chunks.append(current)
                current = []
            current.append(item)
            prev_start, prev_step = start, step
            if mode == "values":
                chunks.append(current)
                current = []
        if current:
            chunks.append(current)
    out = []
    for chunk in chunks:
        starts = [i for i in chunk if is_task_start(*shape.split(i)[1:])]
        rest = sorted((i for i in chunk if not is_task_start(*shape.split(i)[1:])), key=sort_key)
        out.append(starts + rest)
    return out


def layout_of(items: list[Any], shape: Shape) -> dict[tuple[str, ...], list[int]]:
    """Per namespace, the sizes of the runs of non-`values` items between `values` items:
    how a stream of the same graph without `values` splits into supersteps. `items` come
    from a run with "values" added to the stream modes."""
    sizes: dict[tuple[str, ...], list[int]] = {}
    runs: dict[tuple[str, ...], int] = {}
    for item in items:
        ns, mode, _ = shape.split(item)
        ns = normalise(ns)
        sizes.setdefault(ns, [])
        if mode == "values":
            if runs.get(ns):
                sizes[ns].append(runs[ns])
            runs[ns] = 0
        else:
            runs[ns] = runs.get(ns, 0) + 1
    for ns, run in runs.items():
        if run:
            sizes[ns].append(run)
    return sizes


def task_link_problems(items: list[Any], shape: Shape) -> list[str]:
    """Problems with task ids in a tasks / debug stream (empty list: none): every result
    names the id of an earlier start with the same name in the same namespace, ids are not
    reused, and a namespace "node:<id>" names the id of a started task `node` of its parent.

    Call it on items *before* normalisation (uuids are kept)."""
    problems: list[str] = []
    started: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {}  # (mode, id) -> task
    for item in items:
        ns, mode, payload = shape.split(item)
        if mode == "debug":
            payload = payload["payload"]
        elif mode != "tasks":
            continue
        if ns:
            name, _, tid = ns[-1].partition(":")
            if started.get((mode, tid)) != (tuple(ns[:-1]), name):
                problems.append(f"namespace {ns[-1]!r} is not a started task of its parent")
        key = (tuple(ns), payload["name"])
        if "input" in payload:
            if (mode, payload["id"]) in started:
                problems.append(f"task id reused by {payload['name']!r}")
            started[(mode, payload["id"])] = key
        elif started.get((mode, payload["id"])) != key:
            problems.append(f"result of {payload['name']!r} names no started task")
    return problems


# --------------------------------------------------------------------------- comparisons


def compared_stream(
    scenario: Scenario, shape: Shape, cand: Lib, orc: Lib
) -> tuple[tuple[Any, Raised | None], tuple[Any, Raised | None]]:
    """(candidate, oracle) forms of one `stream()` call of `scenario`, each with the error
    the stream ended with. Exact item order for sequential graphs, `canonical` otherwise."""
    runs = [scenario.stream(lib, **shape.kwargs()) for lib in (cand, orc)]
    for lib, (items, _) in zip((cand, orc), runs, strict=True):
        problems = task_link_problems(items, shape)
        assert not problems, f"{lib.name}: {problems}"
    if not scenario.parallel:
        return tuple((normalise(items), err) for items, err in runs)  # type: ignore[return-value]
    layout = None
    modes = shape.stream_mode if isinstance(shape.stream_mode, list) else [shape.stream_mode]
    modes = [m or "updates" for m in modes]
    if not {"values", "tasks", "debug"} & set(modes):
        combined = Shape([*modes, "values"], shape.subgraphs, shape.version)
        layout = layout_of(scenario.stream(orc, **combined.kwargs())[0], combined)
    return tuple(  # type: ignore[return-value]
        (canonical(normalise(items), shape, layout), err) for items, err in runs
    )


def stored_thread(saver: Any, config: dict[str, Any]) -> list[Any]:
    """The thread as stored, ids and times left out, versions by their number."""
    def version(v: Any) -> int:
        return int(str(v).split(".")[0])

    out = []
    for t in saver.list(config):
        ck = t.checkpoint
        out.append({
            "values": ck["channel_values"], "updated": ck.get("updated_channels"),
            "versions": {c: version(v) for c, v in ck["channel_versions"].items()},
            "seen": {n: {c: version(v) for c, v in row.items()}
                     for n, row in ck["versions_seen"].items()},
            "metadata": {k: ({ns: "?" for ns in v} if k == "parents" else v)
                         for k, v in t.metadata.items() if k != "run_id"},
            "writes": sorted((c, re.sub(r"id='\w+'", "id=?", repr(v)))
                             for _, c, v in t.pending_writes or ()),
        })
    return out
