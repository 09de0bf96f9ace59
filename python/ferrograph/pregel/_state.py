"""A thread's state as a caller reads and edits it: `get_state`, `get_state_history`,
`update_state` and `bulk_update_state`, on the checkpoints `_checkpoint` saves.

A snapshot is read by restoring the checkpoint into a Rust run (as a resume would) and
planning its next step: that gives the tasks and their ids; the writes saved against the
checkpoint give their results, errors and interrupts. An update is applied as LangGraph
applies it: as if node `as_node` had returned `values` (its edges fire, its routers run),
saved as a new checkpoint with `source="update"`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid5

from langgraph.checkpoint.base import CheckpointTuple

from ferrograph._core import ConcurrentUpdate
from ferrograph.errors import InvalidUpdateError
from ferrograph.pregel._checkpoint import Persistence
from ferrograph.pregel._delta import COUNTERS, overwritten, with_pending
from ferrograph.pregel._errors import concurrent_update_error
from ferrograph.pregel._thread_format import (
    INPUT,
    INTERRUPT,
    NOT_STATE,
    NULL_TASK_ID,
    PULL,
    PUSH,
    now_iso,
    task_id,
    task_path_str,
    task_statuses,
    with_checkpoint_map,
)
from ferrograph.pregel._thread_format import checkpoint_id as new_checkpoint_id
from ferrograph.pregel._thread_start import restore_run
from ferrograph.pregel._write import branch_writes, map_input, output_writes, result_dict
from ferrograph.types import PregelTask, StateSnapshot

if TYPE_CHECKING:
    from ferrograph._core import Run
    from ferrograph.pregel.main import CompiledStateGraph

END = "__end__"
COPY = "__copy__"
"""`update_state`'s `as_node` that copies the checkpoint (a fork) before updating it."""
SNAPSHOT_LIMIT = 1
"""Steps a restored run may plan when it is only read (one: the next)."""


def graph_for(graph: CompiledStateGraph, config: dict[str, Any]) -> CompiledStateGraph:
    """The graph whose thread `config` names: a subgraph's, when its `checkpoint_ns` is a
    path of tasks (`inner:<id>|deeper:<id>`), as LangGraph hands it to that subgraph."""
    ns = ((config or {}).get("configurable") or {}).get("checkpoint_ns") or ""
    for part in filter(None, ns.split("|")):
        subgraph = graph.subgraph_of(part.split(":")[0])
        if subgraph is None:
            raise ValueError(f"Subgraph {part.split(':')[0]} not found")
        graph = subgraph
    return graph


def saver_of(graph: CompiledStateGraph) -> Any:
    saver = graph.checkpointer
    if saver in (None, True, False):
        raise ValueError("No checkpointer set")
    return saver


def thread_config(config: dict[str, Any] | None) -> dict[str, Any]:
    configurable = dict((config or {}).get("configurable") or {})
    if "thread_id" in configurable and not isinstance(configurable["thread_id"], str):
        configurable["thread_id"] = str(configurable["thread_id"])
    return {**(config or {}), "configurable": configurable}


def _planned_tasks(graph: CompiledStateGraph, rust: Run, checkpoint_id: str, ns: str,
                   step: int) -> list[tuple[str, str, tuple[Any, ...]]]:
    """The next step's tasks as `(id, name, path)`, named as LangGraph names them."""
    out = []
    for node_id, push, _arg in rust.next_tasks():
        name = graph.node_names[node_id]
        task_ns = f"{ns}|{name}" if ns else name
        if push is None:
            tid = task_id(checkpoint_id, task_ns, str(step), name, PULL,
                          *graph.triggers[node_id])
            out.append((tid, name, (PULL, name)))
        else:
            tid = task_id(checkpoint_id, task_ns, str(step), name, PUSH, str(push))
            out.append((tid, name, (PUSH, push, False)))
    # As LangGraph lists a checkpoint's next tasks: sends first, then nodes in the order
    # they were added (not by name, as a running step orders them).
    added = graph.node_order
    out.sort(key=lambda task: (task[2][0] == PULL, added.get(task[1], -1)
                               if task[2][0] == PULL else 0))
    return out


def snapshot(graph: CompiledStateGraph, saver: Any, config: dict[str, Any],
             saved: CheckpointTuple | None, *, live: bool,
             subgraphs: bool = False) -> StateSnapshot:
    """The thread's state at `saved`. `live` (the thread's newest state, no checkpoint id
    asked for): values include what finished tasks of the open step wrote, `next` only the
    tasks still to run, and only unanswered interrupts."""
    if saved is None:
        return StateSnapshot({}, (), config, None, None, None, (), ())
    persistence = Persistence(graph, saver, saved.config, None)
    rust = restore_run(persistence, saved, SNAPSHOT_LIMIT)
    pending = [(str(t), c, v) for t, c, v in saved.pending_writes or ()]
    step = saved.metadata.get("step", -1) + 1
    # The step's tasks are those of the checkpoint; the null task's writes (a resume's
    # `Command`) show in the values only, as in LangGraph.
    tasks = _planned_tasks(graph, rust, saved.checkpoint["id"],
                           saved.config["configurable"].get("checkpoint_ns", ""), step)
    if null := [(c, v) for t, c, v in pending if t == NULL_TASK_ID and c not in NOT_STATE]:
        rust.apply_external(persistence.engine_writes(null))
    statuses = task_statuses(pending)
    done = {tid for tid, _, _ in tasks if tid in statuses and statuses[tid].finished}
    if live and done:
        finished = [(i, persistence.engine_writes(statuses[tid].output))
                    for i, (tid, _, _) in enumerate(tasks) if tid in done]
        try:
            rust.apply(finished)
        except ConcurrentUpdate as e:
            raise concurrent_update_error(e.args[0]) from None
    output_keys = set(graph.key_names)
    ns = saved.config["configurable"].get("checkpoint_ns", "")
    shown = []
    for tid, name, path in tasks:
        state = _subgraph_state(graph, saver, saved, ns, tid, name, subgraphs)
        status = statuses.get(tid)
        if status is None:
            shown.append(PregelTask(tid, name, path, state=state))
            continue
        result = result_dict([(c, v) for c, v in status.output if c in output_keys])
        if graph.root:  # the root value itself, as the graph's output is
            result = result.get("__root__")
        interrupts = () if live and status.finished else tuple(status.interrupts)
        shown.append(PregelTask(tid, name, path, status.error, interrupts, state,
                                result if status.finished else None))
    values = rust.read(None)
    if graph.root:
        values = values.get("__root__")
    return StateSnapshot(
        values,
        tuple(name for tid, name, _ in tasks if not (live and tid in done)),
        with_checkpoint_map(saved.config, saved.metadata),
        saved.metadata,
        saved.checkpoint["ts"],
        with_checkpoint_map(saved.parent_config, saved.metadata),
        tuple(shown),
        tuple(i for t in shown for i in t.interrupts),
    )


def _subgraph_state(graph: CompiledStateGraph, saver: Any, saved: CheckpointTuple, ns: str,
                    tid: str, name: str, recurse: bool) -> Any:
    """A subgraph task's `state`: where its checkpoints are (its config), or with
    `recurse` its own snapshot."""
    subgraph = graph.subgraph_of(name)
    if subgraph is None:
        return None
    task_ns = f"{ns}|{name}:{tid}" if ns else f"{name}:{tid}"
    config = {"configurable": {"thread_id": saved.config["configurable"]["thread_id"],
                               "checkpoint_ns": task_ns}}
    if not recurse:
        return config
    if subgraph.checkpointer is True:
        config["configurable"]["checkpoint_ns"] = "|".join(
            part.split(":")[0] for part in task_ns.split("|"))
    return snapshot(subgraph, saver, config, saver.get_tuple(config), live=True,
                    subgraphs=True)


def get_state(graph: CompiledStateGraph, config: dict[str, Any], *,
              subgraphs: bool = False) -> StateSnapshot:
    saver = saver_of(graph)
    config = thread_config(config)
    saved = saver.get_tuple(config)
    graph = graph_for(graph, config)
    return snapshot(graph, saver, config, saved,
                    live=not config["configurable"].get("checkpoint_id"), subgraphs=subgraphs)


def get_state_history(graph: CompiledStateGraph, config: dict[str, Any], *,
                      filter: dict[str, Any] | None = None, before: Any = None,
                      limit: int | None = None) -> Iterator[StateSnapshot]:
    saver = saver_of(graph)
    config = thread_config(config)
    config["configurable"].setdefault("checkpoint_ns", "")
    graph = graph_for(graph, config)
    # Read whole first, as LangGraph does: a saver may hold its database cursor (and lock)
    # while its `list` is iterated, and a snapshot reads the saver again (delta keys).
    for saved in list(saver.list(config, filter=filter, before=before, limit=limit)):
        yield snapshot(graph, saver, saved.config, saved, live=False)


def _infer_as_node(graph: CompiledStateGraph, versions_seen: dict[str, Any]) -> str | None:
    """The node an update without `as_node` is made as: the one that ran last (LangGraph's
    rule; None when two ran last together, or none ran)."""
    if len(graph.node_names) == 1:
        return graph.node_names[0]
    seen = {n: s for n, s in versions_seen.items() if n in graph.node_ids}
    last = sorted((v, n) for n, s in seen.items() for v in s.values())
    if not last:  # nothing ran yet: the update is the thread's input
        return "__start__"
    if len(last) == 1 or last[-1][0] != last[-2][0]:
        return last[-1][1]
    return None


def bulk_update_state(graph: CompiledStateGraph, config: dict[str, Any],
                      supersteps: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """Applies each superstep's updates as one checkpoint (see the module doc)."""
    saver = saver_of(graph)
    if len(supersteps) == 0:
        raise ValueError("No supersteps provided")
    if any(len(u) == 0 for u in supersteps):
        raise ValueError("No updates provided")
    current = thread_config(config)
    graph = graph_for(graph, current)  # a subgraph's namespace: the update is that graph's
    for i, updates in enumerate(supersteps):
        current = _update_step(graph, saver, current, [_as_update(u) for u in updates],
                               is_first=i == 0)
    return current


def _as_update(update: Any) -> tuple[Any, str | None, str | None]:
    values, as_node, *rest = (*update, None, None)[:3] if isinstance(update, tuple) \
        else (update.values, update.as_node, update.task_id)
    return values, as_node, rest[0] if rest else None


def _update_step(graph: CompiledStateGraph, saver: Any, config: dict[str, Any],
                 updates: list[tuple[Any, str | None, str | None]], *,
                 is_first: bool = False) -> dict[str, Any]:
    saved = saver.get_tuple(config)
    if updates[0][1] == COPY:
        return _copy_step(graph, saver, saved, updates)
    persistence = Persistence(graph, saver, config, "sync")
    if graph.delta_keys:
        persistence.delta_fresh_update = saved is None
        if is_first and saved is not None:  # the new checkpoint must not replay these
            persistence.delta_forced = with_pending(graph, saved.pending_writes or ())
    if saved is not None:
        rust = restore_run(persistence, saved, SNAPSHOT_LIMIT + 1)
        persistence.adopt(saved)
        versions_seen = saved.checkpoint.get("versions_seen") or {}
    else:
        rust = persistence.fresh_run(SNAPSHOT_LIMIT + 1)
        versions_seen = {}
    values, as_node, _ = updates[0]
    if values is None and as_node == END:
        if len(updates) > 1:
            raise InvalidUpdateError("Cannot apply multiple updates when clearing state")
        if saved is not None:
            _finish_open_step(graph, persistence, rust, saved)
        persistence.save(rust, "update")
        return persistence.put_config  # type: ignore[return-value]
    if as_node == INPUT:  # as a new input: the run starts over from it
        if len(updates) > 1:
            raise InvalidUpdateError("Cannot apply multiple updates when updating as input")
        if values is None:
            raise InvalidUpdateError("Received no input writes for __start__")
        if saved is not None:
            rust.write_input()
        persistence.save(rust, "input", start_value=values)
        return persistence.put_config  # type: ignore[return-value]
    if len(updates) == 1:
        if as_node is None:
            as_node = _infer_as_node(graph, versions_seen)
        if as_node is None:
            raise InvalidUpdateError("Ambiguous update, specify as_node")
        if as_node not in graph.node_ids:
            raise InvalidUpdateError(f"Node {as_node} does not exist")
    else:
        for _values, node, _tid in updates:
            if node is None:
                raise InvalidUpdateError("as_node is required when applying multiple updates")
            if node not in graph.node_ids:
                raise InvalidUpdateError(f"Node {node} does not exist")
    state = rust.read(None)
    planned: dict[str, list[str]] = {}  # the tasks the checkpoint was to run, by node
    if saved is not None:
        for tid, name, _ in _planned_tasks(graph, rust, saved.checkpoint["id"],
                                           persistence.ns, persistence.saved_step + 1):
            planned.setdefault(name, []).append(tid)
    # The update's writes are also saved against the checkpoint it builds on, under the
    # task of `as_node` that was to run (as LangGraph keeps them), unless the thread has
    # moved past that checkpoint.
    keep_writes = saved is not None and _is_latest(saver, saved)
    for i, (values, node, given_tid) in enumerate(updates):
        node = node or as_node
        writes: list[Any] = []
        if node == "__start__":  # as the thread's input, mapped as a run maps its input
            writes = [] if values is None else output_writes(
                graph, node, map_input(graph, values, strict=False))[0]
        elif values is not None:
            writes, _ = output_writes(graph, node, values)
        if node in graph.branches:
            branch_writes(graph, node, config, state, writes, values)
        if graph.delta_keys:
            saved_form = persistence.saved_form(writes, graph.node_ids[node])
            persistence.delta_forced |= overwritten(graph, saved_form)
            if not keep_writes and is_first:  # the thread moved on: snapshotted instead
                persistence.delta_forced |= with_pending(graph, [(None, c, v)
                                                                 for c, v in saved_form])
        if keep_writes:
            tid = given_tid or (planned[node].pop(0) if planned.get(node)
                                else _update_task_id(saved.checkpoint["id"], i))
            if saved_form := persistence.saved_form(writes, graph.node_ids[node]):
                if graph.delta_keys:  # in the order they were given, when replayed
                    saver.put_writes(saved.config, saved_form, tid,
                                     task_path_str((INTERRUPT, i)))
                else:
                    saver.put_writes(saved.config, saved_form, tid)
        try:
            rust.apply_external(writes, graph.node_ids[node])
        except ConcurrentUpdate as e:
            raise concurrent_update_error(e.args[0]) from None
    persistence.save(rust, "update")
    return persistence.put_config  # type: ignore[return-value]


def _copy_step(graph: CompiledStateGraph, saver: Any, saved: CheckpointTuple | None,
               updates: list[tuple[Any, str | None, str | None]]) -> dict[str, Any]:
    """`as_node="__copy__"`: the checkpoint copied as a sibling (same parent, `source`
    "fork"), and, when `values` is a list of `(values, as_node)` updates, those applied to
    the copy as one more step, each as the copy's next task of its node (LangGraph's)."""
    if len(updates) > 1:
        raise InvalidUpdateError("Cannot copy checkpoint with multiple updates")
    if saved is None:
        raise InvalidUpdateError("Cannot copy a non-existent checkpoint")
    values = updates[0][0]
    step = saved.metadata.get("step", -1)
    copy = {**saved.checkpoint, "id": new_checkpoint_id(step), "ts": now_iso(),
            "updated_channels": None}
    parent = saved.parent_config or {**saved.config, "configurable": {
        **saved.config["configurable"], "checkpoint_id": None}}
    metadata = {"source": "fork", "step": step + 1,
                "parents": saved.metadata.get("parents", {})}
    if COUNTERS in saved.metadata:  # the copy has the same values and the same parent
        metadata[COUNTERS] = saved.metadata[COUNTERS]
    copied = with_checkpoint_map(saver.put(parent, copy, metadata, {}), saved.metadata)
    if not (isinstance(values, list) and values):
        return copied  # type: ignore[return-value]
    persistence = Persistence(graph, saver, copied, "sync")
    rust = restore_run(persistence, saver.get_tuple(copied), SNAPSHOT_LIMIT + 1)
    planned: dict[str, list[str]] = {}
    for tid, name, _ in _planned_tasks(graph, rust, copy["id"], persistence.ns, step + 2):
        planned.setdefault(name, []).append(tid)
    grouped: dict[str | None, list[tuple[Any, str | None, str | None]]] = {}
    for item in values:
        if not isinstance(item, Sequence) or isinstance(item, str):
            raise InvalidUpdateError(f"Invalid update item: {item} when copying checkpoint")
        item_values, as_node = item[:2]
        group = grouped.setdefault(as_node, [])
        tids = planned.get(as_node, [])
        group.append((item_values, as_node, tids[len(group)] if len(group) < len(tids)
                      else None))
    return _update_step(graph, saver, copied, [u for group in grouped.values() for u in group])


def _is_latest(saver: Any, saved: CheckpointTuple) -> bool:
    configurable = saved.config["configurable"]
    latest = saver.get_tuple({"configurable": {
        "thread_id": configurable["thread_id"],
        "checkpoint_ns": configurable.get("checkpoint_ns", "")}})
    return latest is not None and latest.checkpoint["id"] == saved.checkpoint["id"]


def _update_task_id(checkpoint_id: str, i: int) -> str:
    """LangGraph's task id for the `i`th update of a step with no task of its node."""
    return str(uuid5(UUID(checkpoint_id), INTERRUPT if i == 0 else f"{INTERRUPT}:{i}"))


def _finish_open_step(graph: CompiledStateGraph, persistence: Persistence, rust: Run,
                      saved: CheckpointTuple) -> None:
    """`update_state(None, as_node=END)`: the open step's finished tasks count as done."""
    pending = [(str(t), c, v) for t, c, v in saved.pending_writes or ()]
    if null := [(c, v) for t, c, v in pending if t == NULL_TASK_ID and c not in NOT_STATE]:
        rust.apply_external(persistence.engine_writes(null))
    step = saved.metadata.get("step", -1) + 1
    tasks = _planned_tasks(graph, rust, saved.checkpoint["id"], persistence.ns, step)
    statuses = task_statuses(pending)
    rust.apply([(i, persistence.engine_writes(statuses[tid].output)
                 if tid in statuses else []) for i, (tid, _, _) in enumerate(tasks)])

