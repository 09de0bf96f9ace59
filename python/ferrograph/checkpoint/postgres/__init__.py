"""The Postgres checkpointers, LangGraph's own (`langgraph.checkpoint.postgres`), from the
`ferrograph[postgres]` extra. The async one is also in `ferrograph.checkpoint.postgres.aio`."""

from __future__ import annotations

from ferrograph._extras import missing_extra

try:
    from langgraph.checkpoint.postgres import PostgresSaver, ShallowPostgresSaver
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
except ImportError as exc:
    raise missing_extra("postgres", "ferrograph.checkpoint.postgres", exc) from exc

__all__ = ["AsyncPostgresSaver", "PostgresSaver", "ShallowPostgresSaver"]
