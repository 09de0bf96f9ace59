"""The asyncio Postgres store, LangGraph's own (`langgraph.store.postgres.aio`), from the
`ferrograph[postgres]` extra."""

from __future__ import annotations

from ferrograph._extras import missing_extra

try:
    from langgraph.store.postgres.aio import AsyncPostgresStore
except ImportError as exc:
    raise missing_extra("postgres", "ferrograph.store.postgres.aio", exc) from exc

__all__ = ["AsyncPostgresStore"]
