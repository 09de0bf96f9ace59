"""`StateGraph`: LangGraph's graph-building API, compiled to a Rust plan."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import threading
import time
import warnings
from collections.abc import (
    AsyncIterator,
    Callable,
    Generator,
    Hashable,
    Iterator,
    Sequence,
)
from contextlib import aclosing
from types import UnionType
from typing import (
    Any,
    Generic,
    Literal,
    Optional,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import ensure_config, var_child_runnable_config
from langchain_core.runnables.graph import Graph as DrawableGraph

from ferrograph._core import DirectGraph, GraphPlan, validate_node_name
from ferrograph.config import CONFIG_KEY_RUNTIME
from ferrograph.constants import END, START
from ferrograph.errors import (
    EmptyInputError,
    ErrorCode,
    GraphRecursionError,
    InvalidUpdateError,
    ParentCommand,
    create_error_message,
)
from ferrograph.graph._schema import (
    KeySchema,
    input_as_pairs,
    make_coercer,
    read_schema,
    schema_defaults,
    schema_hints,
)
from ferrograph.pregel._executor import DEFAULT_POOL, DEFAULT_SCOUT
from ferrograph.pregel._loop import (
    CHANNEL_CAPACITY,
    DEFAULT_RECURSION_LIMIT,
    MODE_FORWARD,
    MODE_IDS,
    WRITE_GOTO,
    WRITE_KEY,
    WRITE_SEND,
    GraphRun,
    StreamSpec,
    Task,
    invoke_direct,
    note_preparing_error,
    note_task_error,
)
from ferrograph.runtime import Runtime
from ferrograph.types import (
    Command,
    GraphOutput,
    RetryPolicy,
    Send,
    StreamWriter,
    update_as_pairs,
)

logger = logging.getLogger(__name__)

StateT = TypeVar("StateT")
ContextT = TypeVar("ContextT")

_EMPTY = inspect.Parameter.empty
_INJECTABLE: dict[str, tuple[Any, ...] | None] = {
    "config": (RunnableConfig, "RunnableConfig", Optional[RunnableConfig],  # noqa: UP045
               "Optional[RunnableConfig]", _EMPTY),
    "writer": (StreamWriter, "StreamWriter", _EMPTY),
    "runtime": None,
    "store": ("BaseStore", "Optional[BaseStore]", _EMPTY),
}
"""The parameters a node (or router) is given by name, and the annotations under which it
is (None: any). As in LangGraph, a parameter annotated otherwise is left to its default."""
_INJECTABLE_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _node_name(action: Any) -> str:
    if isinstance(action, Runnable):
        return action.get_name()
    name = getattr(action, "__name__", None)
    return name if name is not None else action.__class__.__name__


def _first_param_schema(action: Any) -> Any:
    """The schema class a function node annotates its first parameter with, if any."""
    if not (inspect.isfunction(action) or inspect.ismethod(action)):
        return None
    try:
        hints = get_type_hints(action)
        first = next(iter(inspect.signature(action).parameters), None)
    except Exception:
        return None
    hint = hints.get(first) if first else None
    if isinstance(hint, type) and schema_hints(hint):
        return hint
    return None


class NodeSpec:
    """A node as declared with `add_node`."""

    def __init__(self, name: str, action: Any, *, metadata: dict[str, Any] | None,
                 input_schema: Any, retry_policy: Any, defer: bool,
                 destinations: tuple[str, ...] | dict[str, str] | None) -> None:
        self.name = name
        self.action = action
        self.metadata = metadata or {}
        self.input_schema = input_schema
        self.retry_policy = retry_policy
        self.defer = defer
        self.destinations = destinations
        self.inject = () if isinstance(action, Runnable) else injected_params(action)
        """The parameters the node is given by name (see `injected_params`)."""


class BranchSpec:
    """A conditional edge: a routing function and, optionally, its declared targets."""

    def __init__(self, path: Any, ends: dict[Hashable, str] | None) -> None:
        self.path = path
        self.ends = ends
        self.inject = () if isinstance(path, Runnable) else injected_params(path)

    def route(self, state: Any, config: RunnableConfig) -> list[Any]:
        result = self._call(state, config)
        if inspect.isawaitable(result):
            result = run_blocking(result)
        return self._destinations(result)

    async def aroute(self, state: Any, config: RunnableConfig) -> list[Any]:
        """`route` on an event loop: an async routing function is awaited there."""
        if isinstance(self.path, Runnable):
            result = await self.path.ainvoke(state, config)
        else:
            result = self._call(state, config)
            if inspect.isawaitable(result):
                result = await result
        return self._destinations(result)

    def _call(self, state: Any, config: RunnableConfig) -> Any:
        if isinstance(self.path, Runnable):
            return self.path.invoke(state, config)
        if self.inject:
            return self.path(state, **injected_values(self.inject, config))
        return self.path(state)

    def _destinations(self, result: Any) -> list[Any]:
        if not isinstance(result, (list, tuple)):
            result = [result]
        if self.ends:
            result = [r if isinstance(r, Send) else self.ends[r] for r in result]
        return list(result)


async def _await(awaitable: Any) -> Any:
    return await awaitable


def run_blocking(awaitable: Any) -> Any:
    """Runs `awaitable` to completion from synchronous code: on a fresh event loop, or, when
    this thread already runs one (sync code called from async code), on a short-lived
    thread of its own so that loop is not re-entered."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_await(awaitable))
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append((True, asyncio.run(_await(awaitable))))
        except BaseException as e:  # noqa: BLE001 - re-raised on the calling thread
            outcome.append((False, e))

    thread = threading.Thread(target=target, name="ferrograph-coroutine")
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if ok:
        return value
    raise value


def injected_params(fn: Any) -> tuple[str, ...]:
    """The parameters of `_INJECTABLE` that `fn` is given: named so, passable by keyword
    and annotated as LangGraph expects. A `config` annotated with another type is not
    given, with LangGraph's warning."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return ()
    found = []
    for name, expected in _INJECTABLE.items():
        param = params.get(name)
        if param is None or param.kind not in _INJECTABLE_KINDS:
            continue
        annotation = param.annotation
        if expected is not None and annotation not in expected and not (
                name == "store" and _is_store_class(annotation)):
            if name == "config" and annotation is not _EMPTY:
                warnings.warn("The 'config' parameter should be typed as 'RunnableConfig' or "
                              f"'RunnableConfig | None', not '{annotation}'. ",
                              UserWarning, stacklevel=4)
            continue
        found.append(name)
    return tuple(found)


def injected_values(params: tuple[str, ...], config: RunnableConfig) -> dict[str, Any]:
    """The keyword arguments for `params` (from `injected_params`) in a task's `config`."""
    runtime = config["configurable"][CONFIG_KEY_RUNTIME]
    values = {"config": config, "writer": runtime.stream_writer, "runtime": runtime,
              "store": runtime.store}
    return {param: values[param] for param in params}


def _is_store_class(annotation: Any) -> bool:
    """`BaseStore` or `BaseStore | None`: langgraph's class (not a dependency), by name."""
    union = get_origin(annotation) in (Union, UnionType)
    named = [a for a in (get_args(annotation) if union else (annotation,))
             if a is not type(None)]
    return len(named) == 1 and getattr(named[0], "__name__", None) == "BaseStore"


class StateGraph(Generic[StateT, ContextT]):
    """A graph whose nodes read and update a shared state (LangGraph's `StateGraph`)."""

    def __init__(
        self,
        state_schema: type[StateT],
        context_schema: type[ContextT] | None = None,
        *,
        input_schema: type[Any] | None = None,
        output_schema: type[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.state_schema = state_schema
        self.context_schema = context_schema
        self.input_schema = input_schema or state_schema
        self.output_schema = output_schema or state_schema
        self.nodes: dict[str, NodeSpec] = {}
        self.edges: set[tuple[str, str]] = set()
        self.waiting_edges: set[tuple[tuple[str, ...], str]] = set()
        self.branches: dict[str, dict[str, BranchSpec]] = {}
        self.keys: dict[str, KeySchema] = {}
        self.compiled = False
        for schema in (state_schema, self.input_schema, self.output_schema):
            self._add_schema(schema)

    def _add_schema(self, schema: Any) -> None:
        for key in read_schema(schema):
            existing = self.keys.get(key.name)
            if existing is None or (existing.reducer is None and key.reducer is not None):
                self.keys[key.name] = key

    @property
    def _all_edges(self) -> set[tuple[str, str]]:
        return self.edges | {(s, e) for starts, e in self.waiting_edges for s in starts}

    def add_node(
        self,
        node: str | Any,
        action: Any = None,
        *,
        defer: bool = False,
        metadata: dict[str, Any] | None = None,
        input_schema: type[Any] | None = None,
        retry_policy: RetryPolicy | Sequence[RetryPolicy] | None = None,
        cache_policy: Any = None,
        destinations: dict[str, str] | tuple[str, ...] | None = None,
        **kwargs: Any,
    ) -> StateGraph[StateT, ContextT]:
        """Adds a node: a function or runnable of the state, named by `node` or itself."""
        if not isinstance(node, str):
            action = node
            node = _node_name(action)
            if node is None:
                raise ValueError("Node name must be provided if action is not a function")
        if action is None:
            raise RuntimeError
        if not (callable(action) or isinstance(action, Runnable)):
            raise TypeError(
                "Expected a Runnable, callable or dict.Instead got an unsupported type: "
                f"{type(action)}"
            )
        if self.compiled:
            logger.warning(
                "Adding a node to a graph that has already been compiled. This will "
                "not be reflected in the compiled graph."
            )
        validate_node_name(node, list(self.nodes))
        if cache_policy is not None:
            raise NotImplementedError("ferrograph does not cache node results yet: "
                                      f"add node `{node}` without `cache_policy`")
        schema = input_schema or _first_param_schema(action)
        if schema is not None:
            self._add_schema(schema)
        self.nodes[node] = NodeSpec(
            node, action, metadata=metadata, input_schema=schema or self.state_schema,
            retry_policy=retry_policy, defer=defer, destinations=destinations,
        )
        return self

    def add_edge(self, start_key: str | list[str], end_key: str) -> StateGraph[StateT, ContextT]:
        """Adds an edge; a list of sources makes `end_key` wait for all of them."""
        if self.compiled:
            logger.warning(
                "Adding an edge to a graph that has already been compiled. This will "
                "not be reflected in the compiled graph."
            )
        if isinstance(start_key, str):
            if start_key == END:
                raise ValueError("END cannot be a start node")
            if end_key == START:
                raise ValueError("START cannot be an end node")
            self.edges.add((start_key, end_key))
            return self
        for start in start_key:
            if start == END:
                raise ValueError("END cannot be a start node")
            if start not in self.nodes:
                raise ValueError(f"Need to add_node `{start}` first")
        if end_key == START:
            raise ValueError("START cannot be an end node")
        if end_key != END and end_key not in self.nodes:
            raise ValueError(f"Need to add_node `{end_key}` first")
        self.waiting_edges.add((tuple(start_key), end_key))
        return self

    def add_conditional_edges(
        self,
        source: str,
        path: Callable[..., Any] | Runnable[Any, Any],
        path_map: dict[Hashable, str] | list[str] | None = None,
    ) -> StateGraph[StateT, ContextT]:
        """Routes from `source` to the node(s) `path` returns (mapped through `path_map`)."""
        if self.compiled:
            logger.warning(
                "Adding an edge to a graph that has already been compiled. This will "
                "not be reflected in the compiled graph."
            )
        name = (path.get_name() if isinstance(path, Runnable)
                else getattr(path, "__name__", None))
        if not name or name == "<lambda>":
            name = "condition"  # LangGraph's name for an anonymous router
        branches = self.branches.setdefault(source, {})
        if name in branches:
            raise ValueError(f"Branch with name `{name}` already exists for node `{source}`")
        if isinstance(path_map, dict):
            ends: dict[Hashable, str] | None = dict(path_map)
        elif isinstance(path_map, list):
            ends = {n: n for n in path_map}
        else:
            ends = _ends_from_return_hint(path)
        branches[name] = BranchSpec(path, ends)
        return self

    def add_sequence(self, nodes: Sequence[Any]) -> StateGraph[StateT, ContextT]:
        """Adds nodes chained one after the other."""
        if len(nodes) < 1:
            raise ValueError("Sequence requires at least one node.")
        previous = None
        for item in nodes:
            if isinstance(item, tuple) and len(item) == 2:
                name, action = item
            else:
                name, action = _node_name(item), item
            if name in self.nodes:
                raise ValueError(
                    f"Node names must be unique: node with the name '{name}' already exists. "
                    "If you need to use two different runnables/callables with the same name "
                    "(for example, using `lambda`), please provide them as tuples "
                    "(name, runnable/callable)."
                )
            self.add_node(name, action)
            if previous is not None:
                self.add_edge(previous, name)
            previous = name
        return self

    def set_entry_point(self, key: str) -> StateGraph[StateT, ContextT]:
        return self.add_edge(START, key)

    def set_conditional_entry_point(
        self, path: Callable[..., Any] | Runnable[Any, Any],
        path_map: dict[Hashable, str] | list[str] | None = None,
    ) -> StateGraph[StateT, ContextT]:
        return self.add_conditional_edges(START, path, path_map)

    def set_finish_point(self, key: str) -> StateGraph[StateT, ContextT]:
        return self.add_edge(key, END)

    def compile(
        self,
        checkpointer: Any = None,
        *,
        cache: Any = None,
        store: Any = None,
        interrupt_before: Sequence[str] | Literal["*"] | None = None,
        interrupt_after: Sequence[str] | Literal["*"] | None = None,
        debug: bool = False,
        name: str | None = None,
    ) -> CompiledStateGraph:
        """Validates the graph and compiles it into a runnable graph."""
        if checkpointer not in (None, False, True):
            raise NotImplementedError(
                "ferrograph does not persist runs yet: compile without a checkpointer "
                f"(got {type(checkpointer).__name__})"
            )
        if cache is not None:
            raise NotImplementedError("ferrograph does not cache node results yet: "
                                      "compile without `cache`")
        before = ["*"] if interrupt_before == "*" else list(interrupt_before or ())
        after = ["*"] if interrupt_after == "*" else list(interrupt_after or ())
        node_specs = []
        for spec in self.nodes.values():
            ends = spec.destinations
            if isinstance(ends, dict):
                ends = tuple(ends)
            node_specs.append((spec.name, spec.defer, list(ends or ())))
        branches = [
            (source, name, list(b.ends.values()) if b.ends is not None else None)
            for source, by_name in self.branches.items()
            for name, b in by_name.items()
        ]
        plan = GraphPlan(
            [(k.name, k.reducer is not None) for k in self.keys.values()],
            node_specs,
            sorted(self.edges),
            [(list(s), e) for s, e in sorted(self.waiting_edges)],
            branches,
            before,
            after,
        )
        self.compiled = True
        return CompiledStateGraph(self, plan, name=name or "LangGraph", store=store,
                                  checkpointer=checkpointer, debug=debug)


def _ends_from_return_hint(path: Any) -> dict[Hashable, str] | None:
    fn = getattr(path, "func", None) or path
    try:
        hint = get_type_hints(fn).get("return")
    except Exception:
        return None
    if hint is not None and get_origin(hint) is Literal:
        return {name: name for name in get_args(hint)}
    return None


class NodeRunner:
    """How one node is called: its input keys, injected parameters and retry policy."""

    def __init__(self, spec: NodeSpec, key_ids: dict[str, int]) -> None:
        self.name = spec.name
        self.action = spec.action
        self.metadata = spec.metadata
        self.is_runnable = isinstance(spec.action, Runnable)
        self.is_subgraph = isinstance(spec.action, CompiledStateGraph)
        fn = spec.action if not self.is_runnable else None
        self.is_async = fn is not None and (
            inspect.iscoroutinefunction(fn)
            or inspect.iscoroutinefunction(type(fn).__call__)
        )
        self.on_loop = self.is_async or self.is_runnable
        """Under `ainvoke`/`astream`, runs as a task of the event loop (else on a worker)."""
        self.inject = spec.inject
        input_keys = [k.name for k in read_schema(spec.input_schema)] or list(key_ids)
        self.input_ids = [key_ids[k] for k in input_keys if k in key_ids]
        self.coerce = make_coercer(spec.input_schema)
        policy = spec.retry_policy
        self.retry: tuple[RetryPolicy, ...] = (
            () if policy is None else (policy,) if isinstance(policy, RetryPolicy)
            else tuple(policy)
        )
        if not self.retry:  # one coroutine frame less per task on the event loop
            self.acall = self._acall_once  # type: ignore[method-assign]

    def read_input(self, run: Any) -> Any:
        values = run.read(self.input_ids)
        return self.coerce(values) if self.coerce is not None else values

    def call(self, input: Any, config: RunnableConfig) -> Any:
        """Calls the node on `input` with the task's `config` (retrying as its policy says)
        and returns what it returned."""
        if not self.retry:
            return self._call_once(input, config)
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._call_once(input, config)
            except Exception as exc:
                policy = next((p for p in self.retry if p.should_retry(exc)), None)
                if policy is None or attempt >= policy.max_attempts:
                    raise
                time.sleep(policy.delay(attempt))

    def _call_once(self, input: Any, config: RunnableConfig) -> Any:
        token = var_child_runnable_config.set(config)
        try:
            if self.is_runnable:
                try:
                    return self.action.invoke(input, config)
                except ParentCommand as e:
                    if self.is_subgraph:
                        command = e.args[0]
                        return Command(update=command.update, goto=command.goto,
                                       resume=command.resume)
                    raise
            result = self.action(input, **self._injected(config))
            if self.is_async:
                result = run_blocking(result)
            return result
        finally:
            var_child_runnable_config.reset(token)

    async def acall(self, input: Any, config: RunnableConfig) -> Any:
        """`call` on the event loop: async nodes are awaited in place, sync ones run on a
        worker thread."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._acall_once(input, config)
            except Exception as exc:
                policy = next((p for p in self.retry if p.should_retry(exc)), None)
                if policy is None or attempt >= policy.max_attempts:
                    raise
                await asyncio.sleep(policy.delay(attempt))

    async def _acall_once(self, input: Any, config: RunnableConfig) -> Any:
        token = var_child_runnable_config.set(config)
        try:
            if self.is_runnable:
                try:
                    return await self.action.ainvoke(input, config)
                except ParentCommand as e:
                    if self.is_subgraph:
                        command = e.args[0]
                        return Command(update=command.update, goto=command.goto,
                                       resume=command.resume)
                    raise
            return await self.action(input, **self._injected(config))
        finally:
            var_child_runnable_config.reset(token)

    def _injected(self, config: RunnableConfig) -> dict[str, Any]:
        return injected_values(self.inject, config) if self.inject else {}


def _run_config(config: RunnableConfig | None) -> dict[str, Any]:
    """The run's config, completed as LangGraph does (its own default recursion limit, not
    langchain-core's 25, unless the caller or an enclosing run set one)."""
    limit = (config or {}).get("recursion_limit")
    if limit is None and (parent := var_child_runnable_config.get()):
        limit = parent.get("recursion_limit")
    config = ensure_config(config)
    config["recursion_limit"] = DEFAULT_RECURSION_LIMIT if limit is None else limit
    return config


def _stream_spec(graph: CompiledStateGraph, modes: frozenset[str], subgraphs: bool,
                 nodes: Sequence[str] | None) -> StreamSpec:
    if nodes is None:
        return StreamSpec(modes, subgraphs)
    if isinstance(nodes, str):
        nodes = [nodes]
    if not all(isinstance(n, str) for n in nodes):
        raise TypeError(f"nodes= takes node names (str), got {list(nodes)!r}")
    own: set[str] = set()
    inner: dict[str, set[str] | None] = {}
    for path in nodes:
        head, _, rest = path.partition("/")
        runner = graph.runners.get(head)
        if runner is None:
            raise ValueError(
                f"Unknown node {path!r} in nodes=: this graph's nodes are "
                f"{', '.join(repr(n) for n in graph.runners)}"
            )
        if not rest:
            own.add(head)
            continue
        if not runner.is_subgraph:
            raise ValueError(f"Unknown node {path!r} in nodes=: {head!r} is not a subgraph")
        runner.action._check_nodes([rest])
        inner.setdefault(head, set()).add(rest)
    resolved = {name: (None if name in own else frozenset(v)) for name, v in inner.items()}
    for name in own:
        if graph.runners[name].is_subgraph:
            resolved[name] = None
    return StreamSpec(modes, subgraphs or bool(inner), frozenset(own), resolved)


class ItemShape:
    """How the run's `(namespace, mode, item)` triples are handed to the caller: the shape
    `stream_mode`, `subgraphs` and `version` ask for, as in LangGraph."""

    __slots__ = ("modes", "single", "subgraphs", "v2")

    def __init__(self, modes: list[str], single: bool, subgraphs: bool, version: str) -> None:
        self.modes = frozenset(modes)
        self.single = single
        self.subgraphs = subgraphs
        self.v2 = version == "v2"

    def __call__(self, ns: tuple[str, ...], mode: str, item: Any) -> Any:
        if self.v2:
            if mode == "values":
                return {"type": mode, "ns": ns, "data": item, "interrupts": ()}
            return {"type": mode, "ns": ns, "data": item}
        if self.subgraphs:
            return (ns, item) if self.single else (ns, mode, item)
        return item if self.single else (mode, item)

    def format(self, batch: list[tuple[tuple[str, ...], str, Any]]) -> list[Any]:
        """A batch of the run's items in this shape (items of modes not asked for left out)."""
        modes = self.modes
        if self.v2 or self.subgraphs:
            return [self(ns, mode, item) for ns, mode, item in batch if mode in modes]
        if self.single:
            return [item for _ns, mode, item in batch if mode in modes]
        return [(mode, item) for _ns, mode, item in batch if mode in modes]


class RunStream(itertools.chain):
    """What `stream()` returns: an iterator over the run's items (close it to stop early).

    A chain over the run's batches, so each item is handed over by C code: the Python work
    is done once per batch."""

    __slots__ = ("run", "shape", "_batches", "_current")

    run: GraphRun
    shape: ItemShape
    _batches: Generator[list[Any], None, None]
    _current: list[list[Any]]
    """The batch being handed over (in a list of its own: the stream and the generator
    share it without referring to each other, so a dropped stream is freed, and its run
    stopped, at once)."""

    @classmethod
    def over(cls, run: GraphRun, shape: ItemShape) -> RunStream:
        batches = run.batches()
        current: list[list[Any]] = [[]]
        stream = cls.from_iterable(_formatted(batches, shape, current))
        stream.run, stream.shape, stream._batches, stream._current = (run, shape, batches,
                                                                       current)
        return stream

    def close(self) -> None:
        """Stops the run: producers still streaming are released, nothing more is yielded."""
        self._current[0].clear()  # the rest of the batch being handed over
        self._batches.close()


def _formatted(batches: Iterator[list[Any]], shape: ItemShape,
               current: list[list[Any]]) -> Iterator[list[Any]]:
    for batch in batches:
        current[0] = shape.format(batch)
        del batch
        yield current[0]
        # Handed over: let go of the items before waiting for the next batch, so they are
        # freed now rather than outlive young collections (and get the full ones to run).
        current[0].clear()


class CompiledStateGraph(Runnable[Any, Any]):
    """A compiled `StateGraph`: run it with `invoke` or `stream`."""

    stream_mode = "updates"

    def __init__(self, builder: StateGraph, plan: GraphPlan, *, name: str, store: Any,
                 checkpointer: Any, debug: bool) -> None:
        self.builder = builder
        self.plan = plan
        self.name = name
        self.store = store
        self.checkpointer = checkpointer
        self.debug = debug
        keys = list(builder.keys.values())
        self.key_ids = {k.name: i for i, k in enumerate(keys)}
        self.key_names = [k.name for k in keys]
        self.reducers = [k.reducer for k in keys]
        self._start = [k.start for k in keys]
        self.output_keys = [k.name for k in read_schema(builder.output_schema)]
        ids = [self.key_ids[k] for k in self.key_names]
        self.default_output = (list(self.key_names), ids, frozenset(ids),
                               frozenset(self.key_names),
                               [self.key_ids[k] for k in self.output_keys])
        """A run's output names and ids when no `output_keys` are given (see GraphRun)."""
        self.default_runtime = Runtime(store=store)
        """The runtime of runs without a context (immutable, so shared)."""
        self.output_key_set = frozenset(self.key_ids)
        self.input_key_set = frozenset(k.name for k in read_schema(builder.input_schema))
        self.node_names = plan.node_names
        self.triggers = [plan.trigger_names(i) for i in range(len(self.node_names))]
        self.runners = {name: NodeRunner(spec, self.key_ids)
                        for name, spec in builder.nodes.items()}
        self.has_async_nodes = any(r.on_loop for r in self.runners.values())
        self.node_ids = {name: plan.node_id(name) for name in self.node_names}
        self.interrupt_before = frozenset(
            i for i in range(len(self.node_names)) if plan.interrupts_before(i))
        self.interrupt_after = frozenset(
            i for i in range(len(self.node_names)) if plan.interrupts_after(i))
        self.branches = {
            source: list(by_name.items()) for source, by_name in builder.branches.items()
        }
        self.state_coerce = make_coercer(builder.state_schema)
        self.defaults = schema_defaults(builder.state_schema)
        self.task_metadata = [self._task_metadata(i) for i in range(len(self.node_names))]
        """Per node id: the metadata its pull and push tasks start from (the node's own and
        the `langgraph_*` keys that are the same for all its tasks; a push task's
        `langgraph_path` is its own)."""
        self.direct = self._direct_graph()
        """What `invoke` runs when it can go without a `GraphRun` (see `invoke_direct`)."""

    def _task_metadata(self, node_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
        name = self.node_names[node_id]
        runner = self.runners.get(name)
        node_metadata = {**(runner.metadata if runner is not None else {}),
                         "langgraph_node": name}
        return ({**node_metadata, "langgraph_triggers": self.triggers[node_id],
                 "langgraph_path": ("__pregel_pull", name)},
                {**node_metadata, "langgraph_triggers": ("__pregel_push",)})

    def _direct_graph(self) -> DirectGraph:
        nodes = []
        for node_id, name in enumerate(self.node_names):
            runner = self.runners.get(name)
            pull_metadata, push_metadata = self.task_metadata[node_id]
            if runner is None:  # the start node: the driver maps the input itself
                call, plain, input_ids, coerce = None, False, [], None
            else:
                plain = not (runner.is_runnable or runner.is_async or runner.inject
                             or runner.retry)
                call = runner.action if plain else runner.call
                input_ids, coerce = runner.input_ids, runner.coerce
            nodes.append((call, plain, input_ids, coerce, pull_metadata, push_metadata,
                          name in self.branches))
        return DirectGraph(
            self.plan, nodes, self.key_ids,
            [name in self.input_key_set for name in self.key_names], self.reducers,
            (var_child_runnable_config, CompiledStateGraph.map_input,
             CompiledStateGraph.output_writes, CompiledStateGraph.branch_writes,
             note_task_error, note_preparing_error, DEFAULT_POOL.submit, DEFAULT_SCOUT.watch))

    # -- what the run loop asks of the graph -------------------------------------------------

    def start_values(self) -> list[Any]:
        return [start() if start is not None else None for start in self._start]

    def map_input(self, value: Any, strict: bool = False) -> Any:
        """The state writes of the graph's input. `strict` (a caller's own input, not a
        parent graph's state handed to a subgraph) refuses keys the input schema lacks."""
        if value is None:
            raise EmptyInputError(f"Received no input for {START}")
        pairs = input_as_pairs(value)
        if pairs is None:
            raise InvalidUpdateError(
                create_error_message(
                    message=f"Expected dict, got {value}",
                    error_code=ErrorCode.INVALID_GRAPH_NODE_RETURN_VALUE,
                )
            )
        if strict and (unknown := [k for k, _ in pairs if k not in self.key_ids]):
            raise InvalidUpdateError(
                f"Unknown key(s) in the graph input: {', '.join(map(repr, unknown))}; the "
                f"graph's state keys are: {', '.join(map(repr, self.key_names))}"
            )
        return {k: v for k, v in pairs if k in self.input_key_set}

    def output_writes(self, node: str, output: Any) -> tuple[list[Any], list[tuple[str, Any]]]:
        """Turns a node's return value into engine writes and `(key, value)` state writes."""
        writes: list[Any] = []
        pairs: list[tuple[str, Any]] = []
        self._collect_writes(node, output, writes, pairs)
        return writes, pairs

    def _collect_writes(self, node: str, output: Any, writes: list[Any],
                        pairs: list[tuple[str, Any]]) -> None:
        if output is None:
            return
        key_ids = self.key_ids
        if isinstance(output, dict):
            for k, v in output.items():
                if k in key_ids:
                    writes.append((WRITE_KEY, key_ids[k], v))
                    pairs.append((k, v))
        elif isinstance(output, Command):
            if output.graph == Command.PARENT:
                # Addressed to the enclosing graph, which applies it as its own node's result.
                raise ParentCommand(Command(update=output.update, goto=output.goto,
                                            resume=output.resume))
            for k, v in update_as_pairs(output.update):
                if k in key_ids:
                    writes.append((WRITE_KEY, key_ids[k], v))
                    pairs.append((k, v))
            goto = output.goto
            if isinstance(goto, (str, Send)):
                goto = [goto]
            self._route(node, list(goto), writes, "Command")
        elif isinstance(output, (list, tuple)) and output and any(
            isinstance(i, Command) for i in output
        ):
            for item in output:
                self._collect_writes(node, item, writes, pairs)
        elif schema_hints(type(output)) and not isinstance(output, (str, bytes)):
            for k, v in update_as_pairs(output):
                if k in key_ids:
                    writes.append((WRITE_KEY, key_ids[k], v))
                    pairs.append((k, v))
        else:
            raise InvalidUpdateError(
                create_error_message(
                    message=f"Expected dict, got {output}",
                    error_code=ErrorCode.INVALID_GRAPH_NODE_RETURN_VALUE,
                )
            )

    def _route(self, source: str, destinations: list[Any], writes: list[Any],
               via: str) -> None:
        for dest in destinations:
            if isinstance(dest, Send):
                if dest.node == END:
                    raise InvalidUpdateError("Cannot send a packet to the END node")
                node_id = self.node_ids.get(dest.node)
                if node_id is None or dest.node == START:
                    raise InvalidUpdateError(
                        f"{via} at node '{source}' sent a packet to unknown node "
                        f"'{dest.node}'; the graph's nodes are: {', '.join(self.runners)}"
                    )
                writes.append((WRITE_SEND, node_id, dest.arg))
            elif dest == END:
                continue
            elif dest is None or dest == START:
                raise ValueError("Branch did not return a valid destination")
            else:
                node_id = self.node_ids.get(dest)
                if node_id is None:
                    raise InvalidUpdateError(
                        f"{via} at node '{source}' routed to unknown node '{dest}'; "
                        f"the graph's nodes are: {', '.join(self.runners)}"
                    )
                writes.append((WRITE_GOTO, node_id, None))

    def branch_writes(self, name: str, config: RunnableConfig, state: dict[str, Any],
                      writes: list[Any]) -> list[Any]:
        """Evaluates the conditional edges leaving node `name` (whose task wrote `writes`,
        extended in place and returned) against `state`, the state at the step's start, as
        it would be with this task's writes (and only this task's) applied."""
        state = self._branch_state(state, writes)
        token = var_child_runnable_config.set(config)
        try:
            for _name, branch in self.branches[name]:
                self._route(name, branch.route(state, config), writes, "Branch")
        finally:
            var_child_runnable_config.reset(token)
        return writes

    async def abranch_writes(self, name: str, config: RunnableConfig, state: dict[str, Any],
                             writes: list[Any]) -> None:
        """`branch_writes` on an event loop, awaiting async routing functions there."""
        state = self._branch_state(state, writes)
        token = var_child_runnable_config.set(config)
        try:
            for _name, branch in self.branches[name]:
                destinations = await branch.aroute(state, config)
                self._route(name, destinations, writes, "Branch")
        finally:
            var_child_runnable_config.reset(token)

    def _branch_state(self, state: dict[str, Any], writes: list[Any]) -> Any:
        """The state a router sees: `state` with this task's writes applied."""
        for kind, key, value in list(writes):
            if kind != WRITE_KEY:
                continue
            name = self.key_names[key]
            reducer = self.reducers[key]
            state[name] = reducer(state[name], value) if reducer and name in state else value
        if self.state_coerce is not None:
            state = self.state_coerce(state)
        return state

    def _context(self, context: Any) -> Any:
        """The run context, built from a dict when the graph declares a context class."""
        schema = self.builder.context_schema
        if isinstance(context, dict) and schema is not None and make_coercer(schema):
            return schema(**context)
        return context

    def _check_nodes(self, nodes: Sequence[str]) -> None:
        _stream_spec(self, frozenset(), False, nodes)

    # -- the public API ---------------------------------------------------------------------

    def get_name(self, suffix: str | None = None, *, name: str | None = None) -> str:
        return name or self.name

    @property
    def InputType(self) -> Any:  # noqa: N802 - Runnable's name
        return self.builder.input_schema

    @property
    def OutputType(self) -> Any:  # noqa: N802 - Runnable's name
        return self.builder.output_schema

    def stream(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        context: Any = None,
        stream_mode: str | Sequence[str] | None = None,
        print_mode: str | Sequence[str] = (),
        output_keys: str | Sequence[str] | None = None,
        interrupt_before: Any = None,
        interrupt_after: Any = None,
        durability: Any = None,
        subgraphs: bool = False,
        debug: bool | None = None,
        version: Literal["v1", "v2"] = "v1",
        nodes: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        buffer_size: int = CHANNEL_CAPACITY,
        **kwargs: Any,
    ) -> Iterator[Any]:
        """Runs the graph, yielding what `stream_mode` asks for as it happens.

        `nodes=` (ferrograph) keeps only items from those nodes, and is applied where items
        are produced: a model in a node nobody listens to is not asked to stream at all.
        `buffer_size` (ferrograph) bounds the items waiting for the consumer; producers wait
        when it is full.
        """
        if stream_mode is None:
            stream_mode = self.stream_mode
        single = isinstance(stream_mode, str)
        modes = [stream_mode] if single else list(stream_mode)
        for mode in modes:
            if mode not in MODE_IDS:
                raise ValueError(
                    f"Invalid stream_mode {mode!r}: expected one of "
                    f"{', '.join(repr(m) for m in MODE_IDS)}"
                )
        if version not in ("v1", "v2"):
            raise ValueError(f"Invalid version {version!r}: expected 'v1' or 'v2'")
        config = _run_config(config)
        spec = _stream_spec(self, frozenset(modes), subgraphs, nodes)
        if tags is not None:
            tags = [tags] if isinstance(tags, str) else list(tags)
            if not all(isinstance(t, str) for t in tags):
                raise TypeError(f"tags= takes tag names (str), got {tags!r}")
            spec.tags = frozenset(tags)
        spec.state_objects = version == "v2"
        run = GraphRun(self, input, config, spec, context=self._context(context),
                       output_keys=output_keys, buffer_size=buffer_size,
                       interrupt_before=self._breakpoints(interrupt_before),
                       interrupt_after=self._breakpoints(interrupt_after))
        return RunStream.over(run, ItemShape(modes, single, subgraphs, version))


    async def astream(self, input: Any, config: RunnableConfig | None = None,
                      **kwargs: Any) -> AsyncIterator[Any]:
        """`stream` for asyncio callers, run on this event loop: async nodes are tasks of the
        loop, sync nodes run on worker threads, items are handed over a batch at a time
        with at most `buffer_size` waiting. Leaving the loop, `aclose()` or cancelling stops
        the run and cancels the nodes still running."""
        stream = self.stream(input, config, **kwargs)
        shape = stream.shape
        stream.close()  # nothing of it ran: the run is driven by `abatches` below
        async with aclosing(stream.run.abatches()) as batches:
            async for batch in batches:
                for item in shape.format(batch):
                    yield item

    async def ainvoke(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        context: Any = None,
        stream_mode: str = "values",
        output_keys: str | Sequence[str] | None = None,
        interrupt_before: Any = None,
        interrupt_after: Any = None,
        version: Literal["v1", "v2"] = "v1",
        **kwargs: Any,
    ) -> Any:
        """`invoke` for asyncio callers, run on this event loop: async nodes are awaited as
        tasks of the loop (a failing one cancels its siblings; cancelling the caller cancels
        them all), sync nodes run on worker threads."""
        config = _run_config(config)
        if stream_mode != "values":  # as `invoke` does: the streamed items, as a list
            return [item async for item in self.astream(
                input, config, context=context, stream_mode=stream_mode,
                output_keys=output_keys, interrupt_before=interrupt_before,
                interrupt_after=interrupt_after, **kwargs)]
        configurable = config.get("configurable", {})
        parent = configurable.get("__pregel_stream")
        parent_task = configurable.get("__pregel_task")
        single_key = isinstance(output_keys, str)
        keys = [output_keys] if single_key else output_keys
        if parent is not None and parent_task is not None and parent.on_this_loop():
            # A subgraph node of an `astream` run: it runs on the same loop, so cancelling
            # or failing the enclosing run reaches its nodes too.
            result = await self._ainvoke_nested(input, config, parent, parent_task, keys)
            return self._result(result, output_keys if single_key else None, version)
        if not self.has_async_nodes or parent is not None:
            # A graph of sync nodes only goes off the loop in one hop rather than one per
            # node; so does a subgraph feeding a sync run's stream (it pushes there from a
            # worker thread, where waiting for room blocks nobody).
            return await asyncio.to_thread(
                self.invoke, input, config, context=context, stream_mode=stream_mode,
                output_keys=output_keys, interrupt_before=interrupt_before,
                interrupt_after=interrupt_after, version=version, **kwargs)
        run = GraphRun(self, input, config, StreamSpec(frozenset()),
                       context=self._context(context), output_keys=keys,
                       interrupt_before=self._breakpoints(interrupt_before),
                       interrupt_after=self._breakpoints(interrupt_after))
        await run.arun()
        return self._result(run.final_values, output_keys if single_key else None, version)

    def _breakpoints(self, names: Any) -> frozenset[int] | None:
        """Node ids of per-run breakpoints (None: the compiled ones). As in LangGraph, names
        that are not nodes are ignored here."""
        if names is None:
            return None
        if names == "*":
            return frozenset(range(1, len(self.node_names)))
        return frozenset(i for n in names if (i := self.node_ids.get(n)) not in (None, 0))

    def _result(self, values: dict[str, Any], single_key: str | None, version: str) -> Any:
        result = values.get(single_key) if single_key is not None else values
        return GraphOutput(result) if version == "v2" else result

    def invoke(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        context: Any = None,
        stream_mode: str = "values",
        output_keys: str | Sequence[str] | None = None,
        interrupt_before: Any = None,
        interrupt_after: Any = None,
        version: Literal["v1", "v2"] = "v1",
        **kwargs: Any,
    ) -> Any:
        """Runs the graph to the end and returns its final state (output keys only)."""
        config = _run_config(config)
        parent = config.get("configurable", {}).get("__pregel_stream")
        parent_task = config.get("configurable", {}).get("__pregel_task")
        single_key = isinstance(output_keys, str)
        keys = [output_keys] if single_key else output_keys
        if stream_mode != "values":
            return list(self.stream(input, config, context=context, stream_mode=stream_mode,
                                    output_keys=output_keys, interrupt_before=interrupt_before,
                                    interrupt_after=interrupt_after, **kwargs))
        if parent is not None and parent_task is not None:
            result = self._invoke_nested(input, config, parent, parent_task, keys)
        elif (parent is None and interrupt_before is None and interrupt_after is None
              and not (self.interrupt_before or self.interrupt_after)
              and not config.get("callbacks")):
            result = invoke_direct(self, input, config, self._context(context), keys)
        else:
            run = GraphRun(self, input, config, StreamSpec(frozenset()),
                           context=self._context(context), output_keys=keys,
                           interrupt_before=self._breakpoints(interrupt_before),
                           interrupt_after=self._breakpoints(interrupt_after))
            for _ in run:
                pass
            result = run.final_values
        return self._result(result, output_keys if single_key else None, version)

    def _invoke_nested(self, input: Any, config: RunnableConfig, parent: GraphRun,
                       parent_task: Task, keys: Sequence[str] | None) -> Any:
        """Runs as a node of `parent`: streams into the parent's run when it asks for it."""
        run, producer = self._nested_run(input, config, parent, parent_task, keys)
        if producer is not None and parent.on_this_loop():
            # Called synchronously by a node running on the parent's event loop: a push
            # that waited for room there would stop the very loop that makes room.
            producer = parent.outlet_of(parent_task, producer)
        for item in run:
            if producer is not None:
                producer.push(MODE_FORWARD, item)
        return run.final_values

    async def _ainvoke_nested(self, input: Any, config: RunnableConfig, parent: GraphRun,
                              parent_task: Task, keys: Sequence[str] | None) -> Any:
        """`_invoke_nested` on the loop of a parent run by `astream`."""
        run, producer = self._nested_run(input, config, parent, parent_task, keys)
        if producer is None:
            await run.arun()
            return run.final_values
        outlet = parent.outlet_of(parent_task, producer)
        async with aclosing(run.abatches()) as batches:
            async for batch in batches:
                for item in batch:
                    outlet.push(MODE_FORWARD, item)
                if outlet.backlog:
                    await outlet.flush()  # the parent's consumer is behind: wait for it
        return run.final_values

    def _nested_run(self, input: Any, config: RunnableConfig, parent: GraphRun,
                    parent_task: Task, keys: Sequence[str] | None) -> tuple[GraphRun, Any]:
        """The run of this graph as a node of `parent`, and the producer its items are
        forwarded through (None when the parent does not stream them)."""
        configurable = {k: v for k, v in config.get("configurable", {}).items()
                        if k not in ("__pregel_stream", "__pregel_task")}
        config = {**config, "configurable": configurable}
        namespace = (*parent.namespace, f"{parent_task.name}:{parent_task.id}")
        if parent.spec.forwards(parent_task.name):
            inner = parent.spec.inner.get(parent_task.name)
            spec = StreamSpec(parent.spec.modes, True, inner, tags=parent.spec.tags,
                              state_objects=parent.spec.state_objects)
            producer = parent.channel.producer(parent_task.node_id, parent_task.index)
        else:
            spec, producer = StreamSpec(frozenset()), None
        run = GraphRun(self, input, config, spec, namespace=namespace,
                       context=parent.context, output_keys=keys,
                       seen_messages=parent.seen_messages, strict_input=False)
        return run, producer

    def get_graph(self, config: RunnableConfig | None = None, *, xray: int | bool = False
                  ) -> DrawableGraph:
        """The graph's topology, for drawing (e.g. `get_graph().draw_mermaid()`)."""
        builder = self.builder
        edges: set[tuple[str, str, bool, str | None]] = set()
        for source, target in builder._all_edges:
            edges.add((source, target, False, None))
        for source, by_name in builder.branches.items():
            for branch in by_name.values():
                if branch.ends is not None:
                    for label, target in branch.ends.items():
                        label = str(label)
                        edges.add((source, target, True, label if label != target else None))
                else:
                    for target in [*builder.nodes, END]:
                        if target != source:
                            edges.add((source, target, True, None))
        for name, spec in builder.nodes.items():
            ends = spec.destinations
            pairs = ends.items() if isinstance(ends, dict) else ((e, e) for e in ends or ())
            for target, label in pairs:
                edges.add((name, target, True, label if label != target else None))
        # Nodes nothing leads away from end the run; those edges are drawn last.
        termini = {t for _, t, _, _ in edges if t != END} - {s for s, _, _, _ in edges}
        ordered = sorted(edges, key=lambda e: (e[0], e[1]))
        ordered += [(t, END, False, None) for t in sorted(termini)]

        graph = DrawableGraph()
        drawn = {START: graph.add_node(None, START)}
        for name, spec in builder.nodes.items():
            metadata = dict(spec.metadata or {})
            if spec.defer:
                metadata["defer"] = True
            node_id = self.node_ids[name]
            before = self.plan.interrupts_before(node_id)
            after = self.plan.interrupts_after(node_id)
            if before or after:
                metadata["__interrupt"] = ",".join(
                    w for w, on in (("before", before), ("after", after)) if on)
            drawn[name] = graph.add_node(spec.action, name, metadata=metadata or None)
        for source, target, conditional, label in ordered:
            if target not in drawn:
                drawn[target] = graph.add_node(None, target)
            graph.add_edge(drawn[source], drawn[target], label, conditional)
        return graph


__all__ = ["StateGraph", "CompiledStateGraph", "GraphRecursionError"]
