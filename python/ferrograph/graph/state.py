"""`StateGraph`: LangGraph's graph-building API.

The builder records nodes, edges, conditional edges and the state schema's keys, checks
what can be checked as they are added, and `compile()` validates the whole graph into a Rust
`GraphPlan` (LangGraph's channels and triggers) wrapped in a `CompiledStateGraph`, the
runtime object in `ferrograph.pregel.main`.
"""

from __future__ import annotations

import inspect
import logging
import types
from collections.abc import Callable, Hashable, Sequence
from datetime import timedelta
from typing import (
    Any,
    Generic,
    Literal,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

from langchain_core.runnables import Runnable, RunnableLambda, RunnableParallel
from langgraph.checkpoint.base import BaseCheckpointSaver
from typing_extensions import TypeVar

from ferrograph._core import GraphPlan, validate_node_name
from ferrograph._schema import KeySchema, read_managed, read_schema, schema_hints
from ferrograph.constants import END, START
from ferrograph.errors import GraphRecursionError
from ferrograph.pregel._call import BranchSpec, injected_params
from ferrograph.pregel._write import sync_timeout_unsupported
from ferrograph.pregel.main import CompiledStateGraph
from ferrograph.types import Command, RetryPolicy, TimeoutPolicy

logger = logging.getLogger(__name__)

# As in LangGraph: StateGraph[State] and StateGraph[State, Context] are valid type expressions.
StateT = TypeVar("StateT")
ContextT = TypeVar("ContextT", default=None)
InputT = TypeVar("InputT", default=StateT)
OutputT = TypeVar("OutputT", default=StateT)


def _node_name(action: Any) -> str:
    if isinstance(action, Runnable):
        return action.get_name()
    name = getattr(action, "__name__", None)
    return name if name is not None else action.__class__.__name__


def _callable_hints(action: Any) -> dict[str, Any] | None:
    """The type hints of a function, method or callable object's `__call__`, as LangGraph
    reads them for a node or router; None for anything else or unresolvable annotations."""
    call = getattr(action, "__call__", None)  # noqa: B004 - the method itself, as LangGraph
    if not (inspect.isfunction(action) or inspect.ismethod(action) or inspect.ismethod(call)):
        return None
    try:
        return (get_type_hints(call) if inspect.ismethod(call) else {}) or get_type_hints(action)
    except Exception:  # unresolvable annotations: as if there were none
        return None


def _first_param_schema(action: Any) -> Any:
    """The schema class (a class with annotated keys) that the first parameter of a function,
    method or callable object's `__call__` is annotated with, as LangGraph finds it; None
    for anything else."""
    hints = _callable_hints(action)
    if not hints:
        return None
    try:
        first = next(iter(inspect.signature(action).parameters), None)
    except (TypeError, ValueError):
        return None
    hint = hints.get(first) if first else None
    if isinstance(hint, type) and schema_hints(hint):
        return hint
    return None


def _branch_input_schema(path: Any) -> Any:
    """The schema class a router annotates its first parameter with (`_first_param_schema`;
    for a `RunnableLambda`, its function's); None for other runnables."""
    if isinstance(path, RunnableLambda):
        path = getattr(path, "func", None) or getattr(path, "afunc", None)
    elif isinstance(path, Runnable):
        return None
    return _first_param_schema(path)


def _command_ends(action: Any) -> tuple[str, ...]:
    """The destinations a node declares with a return annotation `Command[Literal[...]]`
    (also inside a Union); () without one."""
    hints = _callable_hints(action)
    if not hints:
        return ()
    returned = hints.get("return")
    if get_origin(returned) in (Union, types.UnionType):
        returned = next((a for a in get_args(returned) if _is_command(get_origin(a))),
                        returned)
    if _is_command(get_origin(returned)) and (args := get_args(returned)) \
            and get_origin(args[0]) is Literal:
        return get_args(args[0])
    return ()


def _is_command(origin: Any) -> bool:
    """ferrograph's `Command`, or LangGraph's in a graph that mixes the two."""
    return origin is Command or (
        isinstance(origin, type) and origin.__name__ == "Command"
        and origin.__module__.startswith("langgraph."))


DEFAULT_ERROR_HANDLER_NODE = "__default_error_handler__"


def _timeout_policy(value: Any) -> TimeoutPolicy | None:
    """`value` (seconds, a `timedelta` or a `TimeoutPolicy`) as a `TimeoutPolicy`."""
    return TimeoutPolicy.coerce(value)


def _can_be_timed(action: Any) -> bool:
    """Whether a node can run under a timeout: an async function, or a runnable (which
    runs with `ainvoke`; a `RunnableLambda` only of an async function)."""
    if isinstance(action, RunnableLambda):
        return hasattr(action, "afunc")
    return isinstance(action, Runnable) or inspect.iscoroutinefunction(action) or \
        inspect.iscoroutinefunction(type(action).__call__)


class NodeSpec:
    """A node as declared with `add_node`."""

    def __init__(self, name: str, action: Any, *, metadata: dict[str, Any] | None,
                 input_schema: Any, retry_policy: Any, defer: bool,
                 destinations: tuple[str, ...] | dict[str, str] | None,
                 trace_policy: Any = None, error_handler_node: str | None = None,
                 is_error_handler: bool = False, timeout: Any = None,
                 cache_policy: Any = None) -> None:
        self.name = name
        self.trace_policy = trace_policy
        self.action = action
        self.metadata = metadata or {}
        self.input_schema = input_schema
        self.retry_policy = retry_policy
        self.defer = defer
        self.destinations = destinations
        self.ends = destinations if destinations is not None else _command_ends(action)
        """Where its `Command`s may go: `destinations`, else the `Literal` of a return
        annotation `Command[Literal[...]]`, as LangGraph infers them."""
        self.inject = () if isinstance(action, Runnable) else injected_params(action)
        """The parameters the node is given by name (see `injected_params`)."""
        self.error_handler_node = error_handler_node
        """The node that handles its failures (LangGraph's `__error_handler__<name>`)."""
        self.is_error_handler = is_error_handler
        """Whether it is such a node: run only for a failed node, never handled itself."""
        self.timeout = timeout
        """Its `TimeoutPolicy` (None: none)."""
        self.cache_policy = cache_policy
        """Its `CachePolicy` (None: its results are not cached; see `pregel/_cache.py`)."""


class StateGraph(Generic[StateT, ContextT, InputT, OutputT]):
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
        self.key_types: dict[str, Any] = {}
        """Per key, the type of its channel: its annotation in the first schema naming it."""
        self.managed: dict[str, type] = {}
        """Managed keys (`RemainingSteps`, `IsLastStep`: see `ferrograph.managed`) and
        their kinds; they are not state keys."""
        self.compiled = False
        self._node_defaults: dict[str, Any] = dict.fromkeys(
            ("retry_policy", "cache_policy", "error_handler", "timeout"))
        """What `set_node_defaults` set (None: no default)."""
        self._schemas: set[Any] = set()
        self._add_schema(state_schema)
        self._add_schema(self.input_schema, allow_managed=False)
        self._add_schema(self.output_schema, allow_managed=False)

    def set_node_defaults(
        self,
        *,
        retry_policy: RetryPolicy | Sequence[RetryPolicy] | None = None,
        cache_policy: Any = None,
        error_handler: Any = None,
        timeout: Any = None,
    ) -> StateGraph[StateT, ContextT]:
        """Sets policies for every node of this graph (not its subgraphs), as LangGraph 1.2
        does: applied at `compile()`, to nodes added before or after; a node's own
        `add_node` values win. `retry_policy` and `timeout` also apply to error-handler
        nodes; `error_handler` only to the other nodes (the node
        `__default_error_handler__`); `cache_policy` too, as in LangGraph (an error
        handler's result is never cached). Arguments left None keep the earlier default."""
        defaults = self._node_defaults
        if retry_policy is not None:
            defaults["retry_policy"] = retry_policy
        if cache_policy is not None:
            defaults["cache_policy"] = cache_policy
        if error_handler is not None:
            defaults["error_handler"] = error_handler
        if timeout is not None:
            defaults["timeout"] = _timeout_policy(timeout)
        return self

    def _apply_node_defaults(self) -> None:
        """Gives the nodes the defaults of `set_node_defaults` (where they have none), as
        LangGraph's `compile()` does."""
        defaults = self._node_defaults
        handler_name = None
        if defaults["error_handler"] is not None:
            handler_name = DEFAULT_ERROR_HANDLER_NODE
            existing = self.nodes.get(handler_name)
            if existing is not None and not existing.is_error_handler:
                raise ValueError(f"Auto-generated default error handler node "
                                 f"`{handler_name}` already exists.")
            self.nodes[handler_name] = NodeSpec(  # a later compile's default replaces it
                handler_name, defaults["error_handler"], metadata=None,
                input_schema=self.state_schema, retry_policy=None, defer=False,
                destinations=None, is_error_handler=True)
        for spec in self.nodes.values():
            if (handler_name is not None and not spec.is_error_handler
                    and spec.error_handler_node is None):
                spec.error_handler_node = handler_name
            if defaults["retry_policy"] is not None and spec.retry_policy is None:
                spec.retry_policy = defaults["retry_policy"]
            if defaults["timeout"] is not None and spec.timeout is None:
                spec.timeout = defaults["timeout"]
            if (defaults["cache_policy"] is not None and not spec.is_error_handler
                    and spec.cache_policy is None):  # never an error handler's, as LangGraph
                spec.cache_policy = defaults["cache_policy"]

    def _add_schema(self, schema: Any, allow_managed: bool = True) -> None:
        try:
            if schema in self._schemas:
                return
            self._schemas.add(schema)
        except TypeError:  # an unhashable schema: read every time
            pass
        managed = read_managed(schema)
        if managed and not allow_managed:
            raise ValueError(
                f"Invalid managed channels detected in {getattr(schema, '__name__', '')}: "
                f"{', '.join(managed)}. Managed channels are not permitted in Input/Output "
                "schema."
            )
        for name, kind in managed.items():
            if self.managed.setdefault(name, kind) is not kind:
                raise ValueError(f"Managed value '{name}' already exists with a different type")
        for key in read_schema(schema):
            self.key_types.setdefault(key.name, key.annotation)
            existing = self.keys.get(key.name)
            if existing is None or (existing.reducer is None and key.reducer is not None):
                self.keys[key.name] = key

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
        trace_policy: Any = None,
        error_handler: Any = None,
        timeout: float | timedelta | TimeoutPolicy | None = None,
        **kwargs: Any,
    ) -> StateGraph[StateT, ContextT]:
        """Adds a node: a function or runnable of the state, named by `node` or itself.

        `trace_policy` (a `TracePolicy`, ferrograph's or LangGraph's) sets what the user's
        tracers record on the node's run. `error_handler` (as in LangGraph 1.2) is called,
        with the node's input (and its `error: NodeError` parameter, if it has one), when the
        node fails after its retries; it becomes the node `__error_handler__<node>`, whose
        result stands in for the node's (its update applied, its `Command` routing; the
        node's own edges are not taken). Its failure fails the run.

        `timeout` (seconds or a `timedelta`: a run timeout; or a `TimeoutPolicy`) bounds each
        attempt of an async node, which fails with `NodeTimeoutError` when exceeded (its
        retry policy and error handler then apply); `compile()` refuses it on a sync node,
        as LangGraph does."""
        timeout = _timeout_policy(timeout)
        if not isinstance(node, str):
            action = node
            node = _node_name(action)
            if node is None:
                raise ValueError("Node name must be provided if action is not a function")
        if action is None:
            raise RuntimeError
        if isinstance(action, dict):  # LangGraph's coercion: its values run in parallel
            action = RunnableParallel(action)
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
        schema = input_schema or _first_param_schema(action)
        handler_name = None
        if error_handler is not None:
            handler_name = f"__error_handler__{node}"
            if handler_name in self.nodes:
                raise ValueError(
                    f"Auto-generated error handler node `{handler_name}` already exists.")
            self.nodes[handler_name] = NodeSpec(
                handler_name, error_handler, metadata=None,
                input_schema=schema or self.state_schema, retry_policy=None, defer=False,
                destinations=None, is_error_handler=True)
        if schema is not None:
            self._add_schema(schema)
        self.nodes[node] = NodeSpec(
            node, action, metadata=metadata, input_schema=schema or self.state_schema,
            retry_policy=retry_policy, defer=defer, destinations=destinations,
            trace_policy=trace_policy, error_handler_node=handler_name, timeout=timeout,
            cache_policy=cache_policy,
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
        schema = _branch_input_schema(path)
        if schema is not None:  # its keys are state keys, private ones included
            self._add_schema(schema)
        branches[name] = BranchSpec(path, ends, schema)
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
        if checkpointer not in (None, True, False) and not isinstance(
                checkpointer, BaseCheckpointSaver):
            raise TypeError(
                "Invalid checkpointer provided. Expected an instance of "
                "`BaseCheckpointSaver`, `True`, `False`, or `None`. "
                f"Received {type(checkpointer).__name__!s}. "
                "Pass a proper saver (e.g., InMemorySaver, AsyncPostgresSaver).")
        self._apply_node_defaults()
        for spec in self.nodes.values():
            if spec.timeout is not None and not _can_be_timed(spec.action):
                raise sync_timeout_unsupported(spec.name)
        before = ["*"] if interrupt_before == "*" else list(interrupt_before or ())
        after = ["*"] if interrupt_after == "*" else list(interrupt_after or ())
        node_specs = []
        for spec in self.nodes.values():
            ends = spec.ends
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
            [k.name for k in self.keys.values() if k.ephemeral],
        )
        self.compiled = True
        return CompiledStateGraph(self, plan, name=name or "LangGraph", store=store, cache=cache,
                                  checkpointer=checkpointer, debug=debug,
                                  interrupt_before_nodes=before, interrupt_after_nodes=after)


def _ends_from_return_hint(path: Any) -> dict[Hashable, str] | None:
    fn = getattr(path, "func", None) or path
    try:
        hint = get_type_hints(fn).get("return")
    except Exception:
        return None
    if hint is not None and get_origin(hint) is Literal:
        return {name: name for name in get_args(hint)}
    return None


__all__ = ["StateGraph", "CompiledStateGraph", "GraphRecursionError"]
