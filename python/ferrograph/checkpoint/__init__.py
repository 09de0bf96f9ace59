"""Checkpoint types and the saver interface, as in `langgraph.checkpoint.base`.

ferrograph persists with LangGraph's own checkpointers (the `langgraph-checkpoint` package and
its SQLite and Postgres savers), so these are the same objects, re-exported. Savers live in
`ferrograph.checkpoint.memory`, `.sqlite`, `.sqlite.aio`, `.postgres` and `.postgres.aio`."""

from __future__ import annotations

from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    EmptyChannelError,
    PendingWrite,
    SerializerProtocol,
    copy_checkpoint,
    create_checkpoint,
    empty_checkpoint,
    get_checkpoint_id,
    get_checkpoint_metadata,
)

__all__ = [
    "BaseCheckpointSaver",
    "ChannelVersions",
    "Checkpoint",
    "CheckpointMetadata",
    "CheckpointTuple",
    "EmptyChannelError",
    "PendingWrite",
    "SerializerProtocol",
    "copy_checkpoint",
    "create_checkpoint",
    "empty_checkpoint",
    "get_checkpoint_id",
    "get_checkpoint_metadata",
]
