"""Fencing a worker's writes about a run by its lease (`shared.py`): the guard statement
that finds the worker's claim still on the run's row, and a checkpointer whose every write
runs behind that guard, in the write's own transaction."""

from __future__ import annotations

from typing import Any

from ferrograph.server.database import LeaseLost

FENCE = ("SELECT 1 FROM ferrograph_runs WHERE run_id = ? AND owner = ? AND fence = ? "
         "FOR KEY SHARE")
"""The guard of a worker's writes about a run: the run is still its claim. The row lock
holds off another's claim (`FOR UPDATE`) until the write commits, yet not the renewals,
status writes and cancel requests of the run (`FOR NO KEY UPDATE`)."""


def caused_by(failure: BaseException, kind: type[BaseException]) -> bool:
    """Whether `failure`, or an exception it was raised from or during, is a `kind`."""
    seen: set[int] = set()
    while failure is not None and id(failure) not in seen:
        if isinstance(failure, kind):
            return True
        seen.add(id(failure))
        failure = failure.__cause__ or failure.__context__
    return False


_fenced_saver_class: Any = None


def fenced_saver(pool: Any, fence: tuple[str, str, int], on_lost: Any) -> Any:
    """A saver (LangGraph's `AsyncPostgresSaver` on `pool`) for one run's graph, whose every
    write (checkpoint, pending writes) is one transaction that first checks the run's fence
    (`FENCE` with `fence`): refused, `on_lost()` and `LeaseLost`, nothing written."""
    global _fenced_saver_class
    if _fenced_saver_class is None:
        from contextlib import asynccontextmanager

        from psycopg.rows import dict_row

        from ferrograph.checkpoint.postgres.aio import AsyncPostgresSaver

        guard_sql = FENCE.replace("?", "%s")

        class FencedSaver(AsyncPostgresSaver):
            @asynccontextmanager
            async def _cursor(self, *, pipeline: bool = False) -> Any:
                if not pipeline:  # reads (the saver's writes all ask for a pipeline)
                    async with super()._cursor() as cur:
                        yield cur
                    return
                async with self.lock, self.conn.connection() as conn, conn.transaction():
                    guard = await conn.execute(guard_sql, self.fence)
                    if await guard.fetchone() is None:
                        self.on_lost()
                        raise LeaseLost(self.fence[0])
                    async with conn.pipeline(), conn.cursor(
                            binary=True, row_factory=dict_row) as cur:
                        yield cur

        _fenced_saver_class = FencedSaver
    saver = _fenced_saver_class(pool)
    saver.fence, saver.on_lost = fence, on_lost
    return saver
