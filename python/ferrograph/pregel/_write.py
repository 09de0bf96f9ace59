"""Turning what nodes return into engine writes.

A node's result (a dict, a `Command`, a state object, a list of commands) becomes a list of
engine writes, `(WRITE_KEY, key id, value)`, `(WRITE_GOTO, node id, None)` or
`(WRITE_SEND, node id, arg)`, that the Rust scheduler applies at the end of the step, plus the
`(key, value)` pairs the `updates` and `tasks` stream modes show. The graph's input becomes the
start node's writes, and a node's conditional edges add the routes they pick. Both drivers
(the Rust `invoke` driver through its hooks, and the Python step loop) call these functions.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config

from ferrograph._schema import ROOT, annotated_keys, input_as_pairs, object_update
from ferrograph.config import CONFIG_KEY_RUN, CONFIG_KEY_TASK
from ferrograph.constants import END, START
from ferrograph.errors import (
    EmptyInputError,
    ErrorCode,
    InvalidUpdateError,
    ParentCommand,
    create_error_message,
)
from ferrograph.pregel._delta import stamp_writes
from ferrograph.pregel._foreign import from_langgraph
from ferrograph.pregel._trace import atraced_route, traced_route
from ferrograph.types import Command, Send, TimeoutPolicy, update_as_pairs

if TYPE_CHECKING:
    from ferrograph.pregel.main import CompiledStateGraph

WRITE_KEY, WRITE_GOTO, WRITE_SEND, WRITE_HANDLED = 0, 1, 2, 3
HANDLED_WRITE = (WRITE_HANDLED, 0, None)
"""Marks the writes of a task whose node failed and whose error handler recovered: the
node's edges do not fire (only the handler's routes), as in LangGraph."""


SYNC_TIMEOUT = ("Node timeouts are only supported for async nodes because sync Python "
                "execution cannot be safely cancelled in-process.")


def sync_timeout_unsupported(name: str) -> ValueError:
    """LangGraph's error for a timeout on a node that runs synchronously."""
    return ValueError(f"{SYNC_TIMEOUT} Node {name!r} is sync.")




def _in_async_run() -> bool:
    """Whether the routing task belongs to a run driven on an event loop (it routes on
    the loop, or its streaming run says so)."""
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        pass
    config = var_child_runnable_config.get()
    run = config.get("configurable", {}).get(CONFIG_KEY_RUN) if config else None
    return getattr(run, "aloop", None) is not None


class TimedArg:
    """A `Send`'s argument with the timeout (`Send(..., timeout=...)`) of its task, as the
    engine carries it to the task (unwrapped when the task is planned)."""

    __slots__ = ("arg", "timeout")

    def __init__(self, arg: Any, timeout: TimeoutPolicy) -> None:
        self.arg = arg
        self.timeout = timeout


class Handled:
    """What a node with an error handler returns when it failed and its handler (the node
    `node`, LangGraph's `__error_handler__<name>`) returned `output` for it; `error` is the
    node's failure."""

    __slots__ = ("node", "output", "error")

    def __init__(self, node: str, output: Any, error: BaseException) -> None:
        self.node = node
        self.output = output
        self.error = error


def map_input(graph: CompiledStateGraph, value: Any, strict: bool = False) -> Any:
    """The state writes of the graph's input. Keys the input schema lacks are dropped, as
    in LangGraph; under `strict` (a caller's own input, not a parent graph's state handed
    to a subgraph) with a warning naming those that are no state key at all (typos)."""
    if value is None:
        raise EmptyInputError(f"Received no input for {START}")
    if isinstance(value, Command):
        return _command_input(graph, value)
    if graph.root:  # the input is the root value (made writes as a node's update would be)
        return Command(update=[(ROOT, value)])
    pairs = input_as_pairs(value)
    if pairs is None:
        raise InvalidUpdateError(
            create_error_message(
                message=f"Expected dict, got {value}",
                error_code=ErrorCode.INVALID_GRAPH_NODE_RETURN_VALUE,
            )
        )
    if strict and (unknown := [k for k, _ in pairs
                               if k not in graph.key_ids and k not in graph.managed]):
        warnings.warn(
            f"Unknown key(s) in the graph input: {', '.join(map(repr, unknown))} "
            f"(dropped); the graph's state keys are: {', '.join(map(repr, graph.key_names))}",
            stacklevel=2,
        )
    return {k: v for k, v in pairs if k in graph.input_key_set}


def _command_input(graph: CompiledStateGraph, command: Command) -> Command:
    """A `Command` given as the run's input, as LangGraph applies it without a checkpointer:
    the start node returns it, so its update is written and its goto routes (beside START's
    edges). LangGraph also writes the update once before the first step, which only reducer
    keys show: they get it twice."""
    if command.resume is not None:
        raise RuntimeError("Cannot use Command(resume=...) without checkpointer")
    if command.graph == Command.PARENT:
        raise InvalidUpdateError("There is no parent graph")
    pairs = update_as_pairs(command.update)
    if not pairs and not command.goto:
        raise EmptyInputError("Received empty Command input")
    twice = [(k, v) for k, v in pairs
             if k in graph.key_ids and graph.reducers[graph.key_ids[k]] is not None]
    return Command(update=pairs + twice, goto=command.goto)


PUSHED_WRITES: dict[str, Command] = {}
"""Per running task id: the state writes its node made with `push_message`, as a `Command`
applied before what the node returns (taken by the driver when the node ends)."""


def push_write(config: RunnableConfig, key: str, value: Any) -> None:
    """Records a write of the running node (`config` is its task's, or a runnable's inside
    it), applied with its update. Inside a graph compiled by LangGraph, LangGraph's own."""
    configurable = config.get("configurable") or {}
    send = configurable.get("__pregel_send")
    if send is not None:
        send([(key, value)])
        return
    task_id = configurable.get("__pregel_task_id")
    if task_id is None:
        raise RuntimeError("push_message with a state_key must be called from a node")
    PUSHED_WRITES.setdefault(task_id, Command(update=[])).update.append((key, value))


def with_pushed(task_id: str, output: Any) -> Any:
    """The node's result with the writes it pushed first (as a list of updates)."""
    if PUSHED_WRITES and (pushed := PUSHED_WRITES.pop(task_id, None)) is not None:
        return [pushed, output]
    return output


def output_writes(graph: CompiledStateGraph, node: str,
                  output: Any) -> tuple[list[Any], list[tuple[str, Any]]]:
    """Turns a node's return value into engine writes and `(key, value)` state writes."""
    writes: list[Any] = []
    pairs: list[tuple[str, Any]] = []
    if type(output) is Handled:  # its error handler's result stands in, under its name
        _collect_writes(graph, output.node, output.output, writes, pairs)
        if graph.delta_keys:
            stamp_writes(graph, writes, pairs)
        writes.append(HANDLED_WRITE)
        return writes, pairs
    _collect_writes(graph, node, output, writes, pairs)
    if graph.delta_keys:
        stamp_writes(graph, writes, pairs)
    return writes, pairs


def _collect_writes(graph: CompiledStateGraph, node: str, output: Any,
                    writes: list[Any], pairs: list[tuple[str, Any]]) -> None:
    if output is None:
        return
    if graph.root:
        _collect_root_writes(graph, node, output, writes, pairs)
        return
    key_ids = graph.key_ids
    if isinstance(output, dict):
        for k, v in output.items():
            if k in key_ids:
                writes.append((WRITE_KEY, key_ids[k], v))
                pairs.append((k, v))
    elif isinstance(output, Command):
        _command_writes(graph, node, output, writes, pairs)
    elif isinstance(output, (list, tuple)) and output and any(
        isinstance(i, Command) for i in output
    ):
        for item in output:
            _collect_writes(graph, node, item, writes, pairs)
    elif (converted := from_langgraph(output)) is not output:
        # LangGraph's `Command`s (a node of a graph LangGraph built, or code calling its
        # prebuilt tools): as ours.
        _collect_writes(graph, node, converted, writes, pairs)
    elif annotated_keys(type(output)) and not isinstance(output, (str, bytes)):
        # A state object: LangGraph reads each state key off it, in state order.
        for k, v in object_update(output, graph.key_names):
            writes.append((WRITE_KEY, key_ids[k], v))
            pairs.append((k, v))
    else:
        raise InvalidUpdateError(
            create_error_message(
                message=f"Expected dict, got {output}",
                error_code=ErrorCode.INVALID_GRAPH_NODE_RETURN_VALUE,
            )
        )


def _command_writes(graph: CompiledStateGraph, node: str, command: Command,
                    writes: list[Any], pairs: list[tuple[str, Any]]) -> None:
    """The writes of a `Command` a node returned: its update's state keys, and its goto as
    routes. One addressed to the enclosing graph is raised to it (`ParentCommand`), which
    applies it as its own node's result."""
    if command.graph == Command.PARENT:
        raise ParentCommand(Command(update=command.update, goto=command.goto,
                                    resume=command.resume))
    key_ids = graph.key_ids
    for k, v in update_as_pairs(command.update):
        if k in key_ids:
            writes.append((WRITE_KEY, key_ids[k], v))
            pairs.append((k, v))
    goto = command.goto
    if isinstance(goto, (str, Send)):
        goto = [goto]
    _route(graph, node, list(goto), writes, "Command")


def _collect_root_writes(graph: CompiledStateGraph, node: str, output: Any,
                         writes: list[Any], pairs: list[tuple[str, Any]]) -> None:
    """`_collect_writes` for a graph whose state is its root key: whatever the node returns
    (other than None, a `Command` or a list holding commands) is the root's update, as in
    LangGraph (its `_get_root`)."""
    if isinstance(output, Command):
        _command_writes(graph, node, output, writes, pairs)
    elif isinstance(output, (list, tuple)) and output and any(
        isinstance(i, Command) for i in output
    ):
        for item in output:
            if item is not None:
                _collect_root_writes(graph, node, item, writes, pairs)
    else:
        writes.append((WRITE_KEY, 0, output))
        pairs.append((ROOT, output))
        if isinstance(output, Send):  # LangGraph both writes it and sends it
            _route(graph, node, [output], writes, "Send")


def _route(graph: CompiledStateGraph, source: str, destinations: list[Any],
           writes: list[Any], via: str) -> None:
    for dest in destinations:
        if isinstance(dest, Send):
            if dest.node == END:
                raise InvalidUpdateError("Cannot send a packet to the END node")
            node_id = graph.node_ids.get(dest.node)
            if node_id is None or dest.node == START:
                raise InvalidUpdateError(
                    f"{via} at node '{source}' sent a packet to unknown node "
                    f"'{dest.node}'; the graph's nodes are: {', '.join(graph.runners)}"
                )
            if dest.timeout is None:
                writes.append((WRITE_SEND, node_id, dest.arg))
            elif not graph.runners[dest.node].on_loop:
                # A sync node cannot be timed: LangGraph refuses it under invoke/stream and
                # runs it untimed under ainvoke/astream.
                if not _in_async_run():
                    raise sync_timeout_unsupported(dest.node)
                writes.append((WRITE_SEND, node_id, dest.arg))
            else:  # the task's own timeout rides with its argument (see `TimedArg`)
                writes.append((WRITE_SEND, node_id, TimedArg(dest.arg, dest.timeout)))
        elif dest == END:
            continue
        elif dest is None or dest == START:
            raise ValueError("Branch did not return a valid destination")
        else:
            node_id = graph.node_ids.get(dest)
            if node_id is None:
                raise InvalidUpdateError(
                    f"{via} at node '{source}' routed to unknown node '{dest}'; "
                    f"the graph's nodes are: {', '.join(graph.runners)}"
                )
            writes.append((WRITE_GOTO, node_id, None))


def branch_writes(graph: CompiledStateGraph, name: str, config: RunnableConfig,
                  state: dict[str, Any], writes: list[Any], result: Any = None,
                  managed: dict[str, Any] | None = None) -> list[Any]:
    """Evaluates the conditional edges leaving node `name` (whose task returned `result`
    and wrote `writes`, extended in place and returned) against `state`, the state at the
    step's start, as it would be with this task's writes (and only this task's) applied,
    and the task's `managed` values."""
    if type(result) is Handled:  # the node failed: its conditional edges are not taken
        return writes
    state = _branch_state(graph, state, writes)
    task = config.get("configurable", {}).get(CONFIG_KEY_TASK) if config else None
    node_run = getattr(task, "node_run", None)
    token = var_child_runnable_config.set(config)
    try:
        for i, (branch, keys, coerce, extra, managed_keys) in enumerate(graph.branches[name]):
            value = _router_input(state, keys, coerce, result if extra else None,
                                  _managed_for(managed, managed_keys))
            if node_run is None:
                destinations = branch.route(value, config)
            else:  # in a chain run of its own, inside the node's
                destinations = branch.destinations(traced_route(
                    node_run, i + (2 if name == START else graph.runners[name].step_count + 2), branch.path, value, config,
                    branch.decide, task.async_run))
            _route(graph, name, destinations, writes, "Branch")
    finally:
        var_child_runnable_config.reset(token)
    return writes


async def abranch_writes(graph: CompiledStateGraph, name: str, config: RunnableConfig,
                         state: dict[str, Any], writes: list[Any], result: Any = None,
                         managed: dict[str, Any] | None = None) -> None:
    """`branch_writes` on an event loop, awaiting async routing functions there."""
    if type(result) is Handled:
        return
    state = _branch_state(graph, state, writes)
    node_run = _node_run(config)
    token = var_child_runnable_config.set(config)
    try:
        for i, (branch, keys, coerce, extra, managed_keys) in enumerate(graph.branches[name]):
            value = _router_input(state, keys, coerce, result if extra else None,
                                  _managed_for(managed, managed_keys))
            if node_run is None:
                destinations = await branch.aroute(value, config)
            else:
                destinations = branch.destinations(await atraced_route(
                    node_run, i + (2 if name == START else graph.runners[name].step_count + 2), branch.path, value, config, branch.adecide))
            _route(graph, name, destinations, writes, "Branch")
    finally:
        var_child_runnable_config.reset(token)


def _node_run(config: RunnableConfig) -> Any:
    """The chain run of the task whose routers run (None: the run is not traced)."""
    task = config.get("configurable", {}).get(CONFIG_KEY_TASK) if config else None
    return getattr(task, "node_run", None)


def _branch_state(graph: CompiledStateGraph, state: dict[str, Any],
                  writes: list[Any]) -> dict[str, Any]:
    """The state routers read: `state` with this task's writes applied."""
    for kind, key, value in list(writes):
        if kind != WRITE_KEY:
            continue
        name = graph.key_names[key]
        reducer = graph.reducers[key]
        state[name] = reducer(state[name], value) if reducer and name in state else value
    return state


def _managed_for(managed: dict[str, Any] | None,
                 keys: tuple[str, ...]) -> dict[str, Any] | None:
    """The task's `managed` values a router reads (its schema's managed `keys`)."""
    if not managed or not keys:
        return None
    return {k: managed[k] for k in keys if k in managed}


def _router_input(state: dict[str, Any], keys: list[str] | None, coerce: Any,
                  result: Any, managed: dict[str, Any] | None) -> Any:
    """What one router is given: the keys of its schema that have values (`keys` None: the
    whole state) and the `managed` values it reads, made into its schema's object when that
    is a class (`coerce`). A dict `result` of the node (given for unannotated routers of
    dict schemas) adds the keys it returned that are not among those, state keys or not:
    LangGraph's way for a node to pass its router something it does not keep."""
    if keys is not None:
        state = {k: state[k] for k in keys if k in state}
    if managed:
        state = {**state, **managed}
    if coerce is not None:
        return coerce(state)
    if result and isinstance(result, dict):
        return {**result, **state}
    return state


def update_payload(result_writes: list[tuple[str, Any]], keys: frozenset[str],
                    single_key: str | None = None) -> Any:
    """The `updates`-mode value of one task: its writes to output keys (None: no writes)."""
    writes = [(k, v) for k, v in result_writes if k in keys]
    if not writes:
        return None
    if single_key is not None:  # bare values, as LangGraph gives a single output channel's
        return writes[0][1] if len(writes) == 1 else [v for _, v in writes]
    names = [k for k, _ in writes]
    if len(set(names)) == len(names):
        return dict(writes)
    return [{k: v} for k, v in writes]


def result_dict(writes: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in writes:
        if key in result:
            existing = result[key]
            if isinstance(existing, dict) and "$writes" in existing:
                existing["$writes"].append(value)
            else:
                result[key] = {"$writes": [existing, value]}
        else:
            result[key] = value
    return result

