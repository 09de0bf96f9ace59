"""LangGraph's `DeltaChannel` (beta: a reducer key whose checkpoints hold, instead of its
value, the writes that made it) on ferrograph's engine.

The key's reducer (`DeltaReducer`) is called once per step with the step's writes, as
LangGraph's channel calls it; the messages written to it get ids (LangGraph's
`ensure_message_ids`). In a thread, a checkpoint holds a `_DeltaSnapshot` of the key only
every `snapshot_frequency` updates (LangGraph's `counters_since_delta_snapshot` metadata
counts them), when an `Overwrite` or a new branch needs one, or at the end of a
`durability="exit"` run; otherwise the key is left out, and its value is rebuilt from the
saver's `get_delta_channel_history` (the nearest snapshot, then the writes saved since).

Graphs without such a key only ever test `graph.delta_keys` (an empty dict).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ferrograph.errors import overwritten_twice

if TYPE_CHECKING:
    from langgraph.checkpoint.base import CheckpointTuple

    from ferrograph._core import Run
    from ferrograph.pregel._checkpoint import Persistence
    from ferrograph.pregel.main import CompiledStateGraph

COUNTERS = "counters_since_delta_snapshot"
"""The checkpoint metadata field: per delta key, `(updates, supersteps)` since its last
snapshot (keys at `(0, 0)` left out, the field too when all are)."""

MAX_SUPERSTEPS_SINCE_SNAPSHOT = int(
    os.environ.get("LANGGRAPH_DELTA_MAX_SUPERSTEPS_SINCE_SNAPSHOT", "5000"))
"""LangGraph's bound on the steps between two snapshots of a key, written or not."""


def is_delta_channel(obj: Any) -> bool:
    """Whether `obj` is LangGraph's `DeltaChannel` (by class; LangGraph is not imported)."""
    return any(c.__name__ == "DeltaChannel" and c.__module__.startswith("langgraph.channels")
               for c in type(obj).__mro__)


def overwrite_of(value: Any) -> tuple[bool, Any]:
    """`(True, v)` for an `Overwrite(v)` (ours, LangGraph's, or its two dict forms)."""
    kind = type(value)
    if kind is dict:
        if len(value) == 1 and "__overwrite__" in value:
            return True, value["__overwrite__"]
        if value.get("type") == "__overwrite__" and "value" in value:
            return True, value["value"]
        return False, None
    if kind.__name__ == "Overwrite" and kind.__module__ in ("ferrograph.types",
                                                            "langgraph.types"):
        return True, value.value
    return False, None


class DeltaReducer:
    """A delta key's reducer, as the engine calls it (`fold`: once per step, from Rust)."""

    __slots__ = ("channel", "reducer", "typ", "frequency")

    def __init__(self, channel: Any, typ: Callable[[], Any] | None) -> None:
        self.channel = channel
        """LangGraph's `DeltaChannel` the key is annotated with."""
        self.reducer: Callable[[Any, list[Any]], Any] = channel.reducer
        self.typ = typ or channel.typ
        self.frequency: int = channel.snapshot_frequency

    def __call__(self, current: Any, update: Any) -> Any:  # a caller folding one write
        return self.fold(current, [update])

    def empty(self) -> Any:
        return self.typ()

    def fold(self, current: Any, updates: list[Any]) -> Any:
        """The key's value after a step wrote `updates` (LangGraph's `DeltaChannel.update`):
        one `Overwrite` replaces it (a second is an error), else one reducer call."""
        replaced = None
        for value in updates:
            is_overwrite, new = overwrite_of(value)
            if is_overwrite:
                if replaced is not None:
                    raise overwritten_twice()
                replaced = (new,)
        if replaced is not None:
            new = replaced[0]
            return self.typ() if new is None else copy.copy(new)
        return self.reducer(self.typ() if current is None else current, list(updates))

    def rebuilt(self, history: Mapping[str, Any]) -> Any:
        """The value a saver's history gives (LangGraph's `replay_writes`): its seed (a
        snapshot, or a plain value a thread saved before the key was a delta key; none:
        empty), then its writes in one reducer call, from the last `Overwrite` on."""
        value = unwrapped(history.get("seed"), self)
        rest = [v for _, _, v in history.get("writes") or ()]
        start = 0
        for i, v in enumerate(rest):
            is_overwrite, new = overwrite_of(v)
            if is_overwrite:
                value, start = (self.typ() if new is None else copy.copy(new)), i + 1
        rest = rest[start:]
        return self.reducer(value, rest) if rest else value


def unwrapped(stored: Any, reducer: DeltaReducer) -> Any:
    """A delta key's value from what a checkpoint stores for it (None: empty)."""
    if stored is None:
        return reducer.empty()
    if type(stored).__name__ == "_DeltaSnapshot":
        return stored.value
    return stored


def checkpoint_id(step: int) -> str:
    from ferrograph.pregel._thread_format import checkpoint_id as new_id

    return new_id(step)


def _snapshot(value: Any) -> Any:
    from langgraph.checkpoint.serde.types import _DeltaSnapshot

    return _DeltaSnapshot(value)


# -- message ids --------------------------------------------------------------------------


def stamp_pairs(graph: CompiledStateGraph, pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """`(key, value)` writes with ids given to the messages written to delta keys (as
    LangGraph's loop does before saving and applying them)."""
    from langgraph.pregel._messages import ensure_message_ids

    out = list(pairs)
    ensure_message_ids(graph.delta_keys, out)
    return out


def stamp_writes(graph: CompiledStateGraph, writes: list[Any],
                 pairs: list[tuple[str, Any]]) -> None:
    """`stamp_pairs` for a node's engine writes and its `(key, value)` writes, in place."""
    names = graph.key_names
    delta = graph.delta_keys
    at = [i for i, w in enumerate(writes) if w[0] == 0 and names[w[1]] in delta]  # 0: WRITE_KEY
    if not at:
        return
    stamped = stamp_pairs(graph, [(names[writes[i][1]], writes[i][2]) for i in at])
    for i, (_, value) in zip(at, stamped, strict=True):
        old = writes[i][2]
        if value is not old:
            writes[i] = (writes[i][0], writes[i][1], value)
            for j, (k, v) in enumerate(pairs):
                if v is old:
                    pairs[j] = (k, value)
                    break


# -- restoring ------------------------------------------------------------------------------


def _to_rebuild(graph: CompiledStateGraph, checkpoint: dict[str, Any]) -> list[str]:
    """The delta keys `checkpoint` holds no value of but was written (LangGraph's rule)."""
    values = checkpoint.get("channel_values") or {}
    versions = checkpoint.get("channel_versions") or {}
    return [k for k in graph.delta_keys if k in versions and k not in values]


def restored_values(graph: CompiledStateGraph, saver: Any, saved: CheckpointTuple,
                    histories: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The delta keys' values at `saved` (`histories`: the saver's, fetched already)."""
    values = saved.checkpoint.get("channel_values") or {}
    out = {k: unwrapped(values[k], graph.delta_reducers[k])
           for k in graph.delta_keys if k in values}
    if (missing := _to_rebuild(graph, saved.checkpoint)):
        if histories is None:
            histories = saver.get_delta_channel_history(config=saved.config, channels=missing)
        for k in missing:
            out[k] = graph.delta_reducers[k].rebuilt(histories.get(k) or {})
    return out


async def afetch_histories(graph: CompiledStateGraph, saver: Any,
                           saved: CheckpointTuple | None) -> Mapping[str, Any] | None:
    """The saver's histories `restored_values` needs, fetched with its async method."""
    if saved is None or not (missing := _to_rebuild(graph, saved.checkpoint)):
        return None
    return await saver.aget_delta_channel_history(config=saved.config, channels=missing)


def with_pending(graph: CompiledStateGraph, writes: Iterable[tuple[Any, str, Any]]) -> set[str]:
    """The delta keys among `writes`' channels (`(task, channel, value)`)."""
    return {c for _, c, _ in writes if c in graph.delta_keys}


def overwritten(graph: CompiledStateGraph, pairs: Iterable[tuple[str, Any]]) -> set[str]:
    """The delta keys `(key, value)` writes give an `Overwrite`."""
    return {c for c, v in pairs if c in graph.delta_keys and overwrite_of(v)[0]}


# -- saving ---------------------------------------------------------------------------------


def checkpoint_deltas(persistence: Persistence, rust: Run, values: dict[str, Any],
                      changed: dict[str, Any], versions: dict[str, Any], source: str,
                      step: int) -> dict[str, Any]:
    """Makes the checkpoint being saved hold the delta keys as LangGraph's does: none,
    except the snapshots due (their version goes to the saver with `changed`, so it stores
    them); returns the counters for its metadata. `persistence.metadata` is still the
    previous checkpoint's."""
    graph = persistence.graph
    delta = graph.delta_keys
    for key in delta:
        values.pop(key, None)
    forced = persistence.delta_forced
    # An `Overwrite` is snapshotted: replaying the writes before it would be wrong.
    forced.update(c for _, c, v in persistence.pending if c in delta and overwrite_of(v)[0])
    if persistence.delta_fresh_update:  # `update_state` on a thread without a checkpoint
        counters: dict[str, tuple[int, int]] = {}
        due = {k for k in delta if k in versions}
    else:
        previous = persistence.metadata.get(COUNTERS) or {}
        counters = {}
        for key in delta:
            updates, steps = previous.get(key, (0, 0))
            counters[key] = (updates + (key in changed), steps + 1)
        due = {k for k, (updates, steps) in counters.items() if k in versions and (
            updates >= graph.delta_reducers[k].frequency or steps >= MAX_SUPERSTEPS_SINCE_SNAPSHOT)}
        due.update(forced)  # (one never written too: its snapshot ends the walk here)
    if persistence.durability == "exit":  # snapshots at the end (`exit_deltas`)
        if persistence.delta_stub_id is None:  # (made before the run's checkpoints' ids)
            persistence.delta_stub_id = checkpoint_id(-2)
        persistence.delta_exit_values = rust.read([graph.key_ids[k] for k in delta])
        if source == "loop" and persistence.delta_first_step is None:
            persistence.delta_first_step = step
        # The writes of the step this checkpoint ends (those after it, if the run ends
        # first, are saved against the run's checkpoint itself).
        persistence.delta_exit_writes.extend(persistence.delta_step_writes)
        persistence.delta_step_writes = []
        return {k: v for k, v in counters.items() if v != (0, 0)}
    _put_snapshots(persistence, rust, due, values, set(changed), versions, counters)
    for key in due:
        changed[key] = versions[key]
    return {k: v for k, v in counters.items() if v != (0, 0)}


def _put_snapshots(persistence: Persistence, rust: Run, due: set[str], values: dict[str, Any],
                   moved: set[str], versions: dict[str, Any],
                   counters: dict[str, tuple[int, int]]) -> None:
    """Puts a snapshot of each `due` key in `values`. A saver stores a value only under a
    new version: a key whose version has not `moved` since the saver's last checkpoint
    gets one (LangGraph's bump; the engine's own version of it stays, and the next write
    supersedes the bump)."""
    if not due:
        return
    graph = persistence.graph
    current = rust.read([graph.key_ids[k] for k in due])
    for key in due:
        reducer = graph.delta_reducers[key]
        values[key] = _snapshot(current[key] if key in current else reducer.empty())
        counters[key] = (0, 0)
        if key not in moved:
            versions[key] = persistence.saver.get_next_version(versions.get(key), None)
    persistence.delta_forced.difference_update(due)


def exit_deltas(persistence: Persistence) -> None:
    """At the end of a `durability="exit"` run, before its one checkpoint is saved, as
    LangGraph's loop ends one: the delta keys due (by their counters, or forced) are
    snapshotted in it; the writes the run made to the others are saved against the
    checkpoint it started from (a stub root checkpoint on a new thread), under task ids
    that keep them in step order, so that they are replayed."""
    graph = persistence.graph
    checkpoint = persistence.checkpoint
    versions = checkpoint["channel_versions"]
    writes = persistence.delta_exit_writes
    persistence.delta_exit_writes = []
    if persistence.delta_addressed and persistence.saved_id is not None:
        # A checkpoint asked for by id may have children, which replay what is saved on it.
        persistence.delta_forced.update(w[3] for w in writes)
    counters = {k: tuple(v) for k, v in (persistence.metadata.get(COUNTERS) or {}).items()}
    due = {k for k, (updates, steps) in counters.items() if k in versions and (
        updates >= graph.delta_reducers[k].frequency
        or steps >= MAX_SUPERSTEPS_SINCE_SNAPSHOT)} | persistence.delta_forced
    if pending := [w for w in writes if w[3] not in due]:
        _save_exit_writes(persistence, pending)
    stored = persistence.delta_stored_versions
    for key in due:
        value = persistence.delta_exit_values.get(key, MISSING)
        checkpoint["channel_values"][key] = _snapshot(
            graph.delta_reducers[key].empty() if value is MISSING else value)
        counters[key] = (0, 0)
        if key not in versions or versions[key] == stored.get(key):
            versions[key] = persistence.saver.get_next_version(versions.get(key), None)
    counters = {k: v for k, v in counters.items() if v != (0, 0)}
    if counters:
        persistence.metadata[COUNTERS] = counters
    else:
        persistence.metadata.pop(COUNTERS, None)


MISSING = object()


def _save_exit_writes(persistence: Persistence,
                      pending: list[tuple[int, str, str, str, Any]]) -> None:
    from ferrograph.pregel._thread_format import empty_checkpoint, now_iso

    if persistence.saved_id is None:  # a new thread: the writes go on a stub root
        stub = {**empty_checkpoint(), "id": persistence.delta_stub_id, "ts": now_iso()}
        config = {"configurable": {k: v for k, v in persistence.config["configurable"].items()
                                   if k != "checkpoint_id"}}
        if persistence.outbox is not None:
            persistence.outbox.append(("aput", (config, stub, {"step": -2}, {})))
        else:
            persistence.saver.put(config, stub, {"step": -2}, {})
        persistence.saved_id = stub["id"]
    anchor = {"configurable": {**persistence.config["configurable"],
                               "checkpoint_ns": persistence.ns,
                               "checkpoint_id": persistence.saved_id}}
    first = persistence.delta_first_step
    grouped: dict[tuple[str, str], list[tuple[str, Any]]] = {}
    for step, tid, path, channel, value in pending:
        if tid == NULL_TASK_ID:
            key = (_exit_task_id(step, tid), "")
        elif step == first:
            key = (_exit_task_id(step, tid), path)
        else:  # after every real task id and path, in step order
            parts = tid.split("-")
            key = (f"ffffffff-{step >> 16:04x}-{step & 0xFFFF:04x}-{parts[3]}-{parts[4]}",
                   f"~~{step:010d}{path}")
        grouped.setdefault(key, []).append((channel, value))
    for (tid, path), entries in grouped.items():
        persistence._put_writes(anchor, entries, tid, path)


NULL_TASK_ID = "00000000-0000-0000-0000-000000000000"


def _exit_task_id(step: int, tid: str) -> str:
    """LangGraph's task id for a run's delta writes saved at its exit: the step in the
    first group (so they sort in step order), never the null task's."""
    parts = tid.split("-")
    synthetic = f"{step:08d}-{parts[1]}-{parts[2]}-{parts[3]}-{parts[4]}"
    if synthetic == NULL_TASK_ID:
        return f"{step:08d}-0000-0000-0000-000000000001"
    return synthetic
