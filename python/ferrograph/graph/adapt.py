"""`adapt`: a graph LangGraph built (by the user, or by a library: `create_react_agent`,
`langchain.agents.create_agent`), rebuilt as the same graph on ferrograph's engine.

A LangGraph `StateGraph` builder becomes a ferrograph `StateGraph` with the same schemas,
nodes (with their policies and error handlers), edges, waiting edges and conditional edges
(path maps included); a compiled graph is that builder compiled with the same checkpointer,
store, cache, breakpoints, name and default config. Subgraph nodes are adapted in turn.

Node and router code is kept as LangGraph's builder made it: its `RunnableCallable`s (around
the user's functions, the prebuilt `ToolNode`, an agent's model node, middleware) run through
`pregel/_foreign.py`, which gives them the config LangGraph's engine would and makes their
`Command`s, `Send`s and interrupts ferrograph's. (A user's function is not unwrapped to run
as a ferrograph node: it may call LangGraph's `interrupt()`, which needs that config.)

What ferrograph cannot run the same way raises `UntranslatableGraphError` naming it (a
channel type it lacks, a `Pregel` built by hand, the functional API's `@entrypoint`, ...),
rather than running differently.

LangGraph is not imported here: its objects are read by attribute and recognised by class
name and module.
"""

from __future__ import annotations

from typing import Any

from ferrograph.graph.state import NodeSpec, StateGraph
from ferrograph.pregel._call import BranchSpec
from ferrograph.pregel.main import CompiledStateGraph
from ferrograph.types import CachePolicy, RetryPolicy, TimeoutPolicy


class UntranslatableGraphError(NotImplementedError):
    """A LangGraph graph uses something ferrograph does not run the same way."""


_CHANNELS = {"LastValue", "BinaryOperatorAggregate", "EphemeralValue", "UntrackedValue",
             "DeltaChannel"}
"""LangGraph's state channel types ferrograph's state keys are."""


def _langgraph_class(obj: Any, module: str, *names: str) -> bool:
    """Whether `obj`'s class (or a base) is LangGraph's class of one of `names`, defined
    under `module`."""
    return any(c.__name__ in names and c.__module__.startswith(module)
               for c in type(obj).__mro__)


def adapt(graph: Any) -> Any:
    """The LangGraph `graph` on ferrograph's engine: a compiled graph (`CompiledStateGraph`,
    e.g. what `create_react_agent` or `create_agent` return) becomes ferrograph's compiled
    graph; a `StateGraph` builder becomes ferrograph's builder, to compile as usual. A
    ferrograph graph is returned as it is. Raises `UntranslatableGraphError` for a graph
    ferrograph cannot run as LangGraph would."""
    if isinstance(graph, (CompiledStateGraph, StateGraph)):
        return graph
    if _langgraph_class(graph, "langgraph.graph.state", "CompiledStateGraph"):
        return _adapt_compiled(graph)
    if _langgraph_class(graph, "langgraph.graph.state", "StateGraph"):
        return _adapt_builder(graph)
    if _langgraph_class(graph, "langgraph.pregel", "Pregel"):
        kind = ("a graph of the functional API (`@entrypoint`)"
                if "__previous__" in getattr(graph, "channels", {})  # its PREVIOUS channel
                else "a Pregel built by hand (not compiled from a StateGraph)")
        raise UntranslatableGraphError(
            f"ferrograph.adapt cannot translate {kind}: only graphs built with LangGraph's "
            "StateGraph can be adapted")
    raise TypeError(f"ferrograph.adapt expects a LangGraph StateGraph or compiled graph, "
                    f"got {type(graph).__name__}")


def _adapt_compiled(compiled: Any) -> CompiledStateGraph:
    """A compiled LangGraph `StateGraph` as ferrograph's, compiled as it was."""
    for attr, what in (("retry_policy", "a graph-wide retry policy"),
                       ("cache_policy", "a graph-wide cache policy")):
        if getattr(compiled, attr, None):
            raise UntranslatableGraphError(
                f"ferrograph.adapt cannot translate {what} set on the compiled graph "
                f"({attr}); set it on the nodes instead")
    builder = _adapt_builder(compiled.builder, compiled=True)
    graph = builder.compile(
        checkpointer=compiled.checkpointer, cache=compiled.cache, store=compiled.store,
        interrupt_before=_breakpoints(compiled.interrupt_before_nodes),
        interrupt_after=_breakpoints(compiled.interrupt_after_nodes),
        debug=compiled.debug, name=compiled.name)
    if compiled.config:
        graph.config = compiled.config
    if compiled.step_timeout is not None:
        graph.step_timeout = compiled.step_timeout
    if getattr(compiled, "stream_mode", "updates") != "updates":
        graph.stream_mode = compiled.stream_mode
    return graph


def _breakpoints(nodes: Any) -> Any:
    if nodes == "*" or nodes == ["*"]:
        return "*"
    return list(nodes) or None


def _adapt_builder(lg: Any, compiled: bool = False) -> StateGraph:
    """A LangGraph `StateGraph` builder as ferrograph's."""
    _check_channels(lg)
    try:
        fg = StateGraph(lg.state_schema, lg.context_schema, input_schema=lg.input_schema,
                        output_schema=lg.output_schema)
        for schema in getattr(lg, "schemas", {}):
            fg._add_schema(schema)
    except NotImplementedError as e:  # a managed value ferrograph does not compute
        raise UntranslatableGraphError(f"ferrograph.adapt: {e}") from None
    defaults = getattr(lg, "_node_defaults", None)
    if defaults is not None and not compiled:  # (a compiled builder's are applied already)
        fg.set_node_defaults(
            retry_policy=_retry(defaults.retry_policy),
            cache_policy=_cache(defaults.cache_policy),
            error_handler=_as_langgraph_node(defaults.error_handler,
                                             "__default_error_handler__"),
            timeout=_timeout(defaults.timeout))
    for name, spec in lg.nodes.items():
        _add_node(fg, name, spec)
    for start, end in lg.edges:
        fg.add_edge(start, end)
    for starts, end in lg.waiting_edges:
        fg.add_edge(list(starts), end)
    for source, by_name in lg.branches.items():
        for name, branch in by_name.items():
            if branch.input_schema is not None:
                fg._add_schema(branch.input_schema)
            fg.branches.setdefault(source, {})[name] = BranchSpec(
                branch.path, dict(branch.ends) if branch.ends else None,
                branch.input_schema)
    _check_keys(lg, fg)
    return fg


def _add_node(fg: StateGraph, name: str, spec: Any) -> None:
    action = spec.runnable
    if _langgraph_class(action, "langgraph.graph.state", "CompiledStateGraph"):
        action = _adapt_compiled(action)  # a subgraph node: adapted in turn
    elif _langgraph_class(action, "langgraph.pregel", "Pregel"):
        adapt(action)  # raises, naming what it is
    ends = spec.ends or None
    if getattr(spec, "timeout", None) is not None:
        # a timed sync node: refused as LangGraph's compile refuses it (a compiled graph's
        # nodes passed this already)
        from langgraph.pregel._utils import validate_timeout_supported

        validate_timeout_supported(spec.runnable, name=name)
    if getattr(spec, "is_error_handler", False):
        fg.nodes[name] = NodeSpec(
            name, action, metadata=spec.metadata, input_schema=spec.input_schema,
            retry_policy=_retry(spec.retry_policy), defer=spec.defer, destinations=ends,
            is_error_handler=True, timeout=_timeout(getattr(spec, "timeout", None)))
        return
    fg.add_node(name, action, defer=spec.defer, metadata=spec.metadata,
                input_schema=spec.input_schema, retry_policy=_retry(spec.retry_policy),
                cache_policy=_cache(spec.cache_policy), destinations=ends,
                trace_policy=getattr(spec, "trace_policy", None),
                timeout=_timeout(getattr(spec, "timeout", None)))
    fg.nodes[name].error_handler_node = getattr(spec, "error_handler_node", None)


def _as_langgraph_node(action: Any, name: str) -> Any:
    """`action` as LangGraph's compile makes a node of it (its `RunnableCallable`, which is
    given LangGraph's `NodeError` as LangGraph gives it: see `_foreign`)."""
    if action is None:
        return None
    from langgraph._internal._runnable import coerce_to_runnable  # a LangGraph graph's

    return coerce_to_runnable(action, name=name, trace=False)


def _retry(policy: Any) -> Any:
    if policy is None:
        return None
    if isinstance(policy, (list, tuple)) and not hasattr(policy, "_asdict"):
        return [_retry(p) for p in policy]
    return policy if isinstance(policy, RetryPolicy) else RetryPolicy(**policy._asdict())


def _cache(policy: Any) -> Any:
    if policy is None or isinstance(policy, CachePolicy):
        return policy
    return CachePolicy(key_func=policy.key_func, ttl=policy.ttl)


def _timeout(policy: Any) -> Any:
    if policy is None or isinstance(policy, (TimeoutPolicy, int, float)):
        return policy
    if hasattr(policy, "run_timeout"):
        return TimeoutPolicy(run_timeout=policy.run_timeout,
                             idle_timeout=policy.idle_timeout, refresh_on=policy.refresh_on)
    return policy  # a timedelta


def _check_channels(lg: Any) -> None:
    """Refuses state channels ferrograph's keys are not (see `_CHANNELS`)."""
    for key, channel in lg.channels.items():
        kind = type(channel).__name__
        if kind not in _CHANNELS or not type(channel).__module__.startswith(
                "langgraph.channels"):
            raise UntranslatableGraphError(
                f"ferrograph.adapt cannot translate the channel {kind} of state key "
                f"{key!r}: ferrograph's state keys are LangGraph's "
                f"{', '.join(sorted(_CHANNELS))}")
        if getattr(channel, "guard", True) is False:
            raise UntranslatableGraphError(
                f"ferrograph.adapt cannot translate the unguarded {kind} of state key "
                f"{key!r} (guard=False: several writes in one step)")


def _check_keys(lg: Any, fg: StateGraph) -> None:
    """Checks that ferrograph read the schemas into the very channels LangGraph did."""
    if set(fg.keys) != set(lg.channels):
        raise UntranslatableGraphError(
            "ferrograph.adapt: the state keys differ from LangGraph's channels "
            f"({sorted(fg.keys)} against {sorted(lg.channels)})")
    for key, channel in lg.channels.items():
        ours = fg.keys[key]
        kind = type(channel).__name__
        same = {
            "BinaryOperatorAggregate": ours.reducer is not None and ours.delta is None,
            "DeltaChannel": ours.delta is not None,
            "EphemeralValue": ours.ephemeral,
            "UntrackedValue": ours.untracked and ours.reducer is None,
            "LastValue": ours.reducer is None and not ours.ephemeral and not ours.untracked,
        }[kind]
        if not same:
            raise UntranslatableGraphError(
                f"ferrograph.adapt: state key {key!r} is LangGraph's {kind}, which "
                "ferrograph read otherwise from its schema")
    if set(fg.managed) != set(lg.managed):
        raise UntranslatableGraphError(
            f"ferrograph.adapt: managed values differ ({sorted(fg.managed)} against "
            f"{sorted(lg.managed)})")


__all__ = ["UntranslatableGraphError", "adapt"]
