"""A thread's checkpoints as the API shows them (`ThreadState`), read and written through the
graph's own `aget_state`, `aget_state_history` and `aupdate_state`."""

from __future__ import annotations

from typing import Any


def interrupt_json(interrupt: Any) -> dict[str, Any]:
    """An interrupt in a thread's state: `{"id", "value"}` (LangGraph's server order)."""
    return {"id": interrupt.id, "value": interrupt.value}


def checkpoint_ref(config: dict[str, Any] | None) -> dict[str, Any] | None:
    if not config or not config["configurable"].get("checkpoint_id"):
        return None  # e.g. a subgraph that has not started yet
    c = config["configurable"]
    return {"checkpoint_id": c.get("checkpoint_id"), "thread_id": c.get("thread_id"),
            "checkpoint_ns": c.get("checkpoint_ns", "")}


def state_json(snapshot: Any) -> dict[str, Any]:
    """A `StateSnapshot` as a `ThreadState`."""
    checkpoint = checkpoint_ref(snapshot.config)
    parent = checkpoint_ref(snapshot.parent_config)
    tasks = []
    for t in snapshot.tasks:
        sub = t.state
        tasks.append({
            "id": t.id, "name": t.name, "path": list(t.path), "error": t.error,
            "interrupts": [interrupt_json(i) for i in t.interrupts],
            "checkpoint": checkpoint_ref(sub) if isinstance(sub, dict) else None,
            "state": state_json(sub) if sub is not None and not isinstance(sub, dict)
            else None,
            "result": t.result})
    return {"values": snapshot.values, "next": list(snapshot.next), "tasks": tasks,
            "metadata": snapshot.metadata, "created_at": snapshot.created_at,
            "checkpoint": checkpoint, "parent_checkpoint": parent,
            "interrupts": [interrupt_json(i) for i in snapshot.interrupts],
            "checkpoint_id": checkpoint["checkpoint_id"] if checkpoint else None,
            "parent_checkpoint_id": parent["checkpoint_id"] if parent else None}


def empty_state() -> dict[str, Any]:
    """The state of a thread no graph has run on."""
    return {"values": {}, "next": [], "tasks": [], "metadata": None, "created_at": None,
            "checkpoint": None, "parent_checkpoint": None, "interrupts": [],
            "checkpoint_id": None, "parent_checkpoint_id": None}


def thread_config(thread_id: str, checkpoint: dict[str, Any] | None = None) -> dict[str, Any]:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint:
        configurable.update({k: v for k, v in checkpoint.items() if v is not None})
        configurable["thread_id"] = thread_id
    return {"configurable": configurable}
