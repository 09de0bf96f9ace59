"""The Postgres stores, LangGraph's own (`langgraph.store.postgres`), from the
`ferrograph[postgres]` extra. The async one is also in `ferrograph.store.postgres.aio`."""

from __future__ import annotations

from ferrograph._extras import missing_extra

try:
    from langgraph.store.postgres import AsyncPostgresStore, PostgresStore
except ImportError as exc:
    raise missing_extra("postgres", "ferrograph.store.postgres", exc) from exc

__all__ = ["AsyncPostgresStore", "PostgresStore"]
