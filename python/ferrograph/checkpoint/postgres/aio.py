"""The asyncio Postgres checkpointer, LangGraph's own (`langgraph.checkpoint.postgres.aio`),
from the `ferrograph[postgres]` extra."""

from __future__ import annotations

from ferrograph._extras import missing_extra

try:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
except ImportError as exc:
    raise missing_extra("postgres", "ferrograph.checkpoint.postgres.aio", exc) from exc

__all__ = ["AsyncPostgresSaver"]
