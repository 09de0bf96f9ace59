"""The server: a Starlette app over ferrograph's runtime, serving the graphs of a
`langgraph.json` with the LangGraph Server API (`create_app`), behind the config's custom
auth if it has one, and a web page at `/`, and `serve`, which runs it with uvicorn
(`ferrograph serve`). Assistants, threads, runs and
checkpoints live in one database (`database.py`): SQLite (a file or `:memory:`) or
PostgreSQL (`DATABASE_URI`). With `REDIS_URI` too, several instances share that PostgreSQL
and a Redis (`shared.py`, `cluster.py`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from ferrograph.server import api_assistants, api_runs, api_threads, page
from ferrograph.server.auth import AuthMiddleware, ServerAuth
from ferrograph.server.cluster import Cluster, lease_seconds_from_env
from ferrograph.server.database import Database, DatabaseError, PostgresDatabase, database_for
from ferrograph.server.execute import Runner
from ferrograph.server.graphs import ServedGraph, load_config
from ferrograph.server.http import ApiError, error_response, max_body_bytes_from_env
from ferrograph.server.storage import (
    Assistant,
    AssistantStore,
    RunStore,
    ThreadStore,
    system_assistants,
)

logger = logging.getLogger("ferrograph.server")


@dataclass
class ServerState:
    """What the routes share: the graphs, their assistants, the database (and its saver),
    threads and runs."""

    graphs: dict[str, ServedGraph]
    system: dict[str, Assistant]
    """The graphs' system assistants."""
    database: Database
    saver: Any = None
    auth: ServerAuth | None = None
    """The config's custom auth (`auth`), None without one."""
    cluster: Cluster | None = None
    """Redis, when several instances share the database (`REDIS_URI`)."""
    assistant_store: AssistantStore = field(init=False)
    threads: ThreadStore = field(init=False)
    runner: Runner = field(init=False)

    @property
    def assistants(self) -> dict[str, Assistant]:
        return self.assistant_store.assistants


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.detail, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail, exc.headers)


def create_app(config: str | os.PathLike[str] | None = None, db: str = ":memory:",
               graphs: dict[str, ServedGraph] | None = None,
               max_body_bytes: int | None = None, redis_uri: str | None = None,
               jobs: int = 10) -> Starlette:
    """The ASGI app serving `config`'s graphs (or `graphs`), kept in `db`: a SQLite file,
    `:memory:`, or a `postgres://` URI. Graphs load here, so a broken one fails before the
    server listens. Request bodies over `max_body_bytes` (default:
    `$HTTP_MAX_REQUEST_BODY_BYTES`, else 300 MiB, as LangGraph's server) are refused with a
    413. With `redis_uri` (`db` then a PostgreSQL one) the instance is one of several
    sharing them, whose workers run up to `jobs` runs at once."""
    auth = None
    if graphs is None:
        loaded = load_config(config)
        graphs, auth = loaded.graphs, loaded.auth
    state = ServerState(graphs, system_assistants(graphs), database_for(db), auth=auth)
    if redis_uri:
        if not isinstance(state.database, PostgresDatabase):
            raise DatabaseError("REDIS_URI needs DATABASE_URI: several instances share a "
                                "PostgreSQL database, not a SQLite one")
        state.cluster = Cluster(redis_uri)
        # the workers' runs and the requests share the pool: room for both
        state.database.max_connections = max(state.database.max_connections, jobs + 10)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        database = state.database
        await database.open()
        try:
            state.saver = database.saver
            state.threads = ThreadStore(database)
            await state.threads.open()
            state.assistant_store = AssistantStore(database, state.system)
            await state.assistant_store.open()
            if state.cluster is not None:
                from ferrograph.server.shared import SharedRunner

                # The engine's `aget_state` reads a thread on a thread of the default
                # executor, whose sync saver call waits for the event loop; with every one
                # of asyncio's few default threads (cores + 4) waiting so, runs waiting for
                # a thread in turn stall. Room for every run of this instance and requests.
                asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(
                    max_workers=4 * jobs + 32, thread_name_prefix="ferrograph-serve"))
                await state.cluster.open()
                state.runner = SharedRunner(
                    state.threads, RunStore(database), database.saver, state.cluster,
                    graphs, jobs, lease_seconds_from_env())
            else:
                state.runner = Runner(state.threads, RunStore(database), database.saver)
            await state.runner.restore(graphs)
            try:
                yield
            finally:
                await state.runner.close()
        finally:
            if state.cluster is not None:
                await state.cluster.close()
            await database.close()

    middleware = [Middleware(AuthMiddleware, auth=auth)] if auth is not None else []
    if state.cluster is not None:
        from ferrograph.server.shared import SharedReads

        middleware.insert(0, Middleware(SharedReads, state=state))
    app = Starlette(
        routes=[*api_assistants.ROUTES, *api_threads.ROUTES, *api_runs.ROUTES, *page.ROUTES],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error},
        middleware=middleware, lifespan=lifespan)
    app.state.server = state
    app.state.max_body_bytes = (max_body_bytes if max_body_bytes is not None
                                else max_body_bytes_from_env())
    return app


def serve(config: str, host: str = "127.0.0.1", port: int = 2024,
          db: str = ":memory:", graphs: dict[str, ServedGraph] | None = None,
          redis_uri: str | None = None, jobs: int = 10) -> None:
    """Runs the server until interrupted (`ferrograph serve`): `config`'s graphs, or
    `graphs` (`config` then only names where they come from). The database is tried first:
    one that cannot be used raises `DatabaseError` naming it, before anything starts."""
    import uvicorn

    app = create_app(None if graphs is not None else config, db, graphs=graphs,
                     redis_uri=redis_uri, jobs=jobs)
    state = app.state.server
    state.database.check()
    if state.cluster is not None:
        state.cluster.check()
    # The event loop that writes every client's events shares the GIL with the threads
    # running sync nodes; each time it gives the GIL up (every socket write, every poll) a
    # busy node thread keeps it for the interpreter's switch interval. 1 ms, not Python's
    # 5, bounds what that adds to each event's way out (FERROGRAPH_SWITCH_INTERVAL: seconds).
    sys.setswitchinterval(float(os.environ.get("FERROGRAPH_SWITCH_INTERVAL", "0.001")))
    _log_to_console()
    logger.info("ferrograph serve: %d graph%s from %s: %s", len(state.graphs),
                "" if len(state.graphs) == 1 else "s", config, ", ".join(state.graphs))
    logger.info("kept in %s%s", state.database.describe,
                f"; custom auth {state.auth.path}" if state.auth is not None else "")
    if state.cluster is not None:
        logger.info("one of several instances: %s, queue and leases in the database; "
                    "instance %s runs up to %d runs at once", state.cluster.describe,
                    state.cluster.instance_id, jobs)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    logger.info("API at http://%s:%d, the web page at http://%s:%d/", shown, port, shown, port)
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5)


def _log_to_console() -> None:
    """The server's own log lines (start, each run's end, failures) on stderr, in uvicorn's
    format beside its lines."""
    class UvicornStyle(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return f"{record.levelname + ':':<10}{super().format(record)}"

    handler = logging.StreamHandler()
    handler.setFormatter(UvicornStyle("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
