"""`ferrograph serve`: the LangGraph Server API (the one `langgraph dev` serves and
`langgraph-sdk` / `RemoteGraph` speak) on ferrograph's engine.

Modules by concern: `graphs` (langgraph.json, loading and binding graphs), `database`
(SQLite or PostgreSQL: the saver and the server's tables), `storage` (assistants, threads, run
records), `execute` (running runs, their events), `state` (thread
state as the API shows it), `wire` (JSON and SSE on the wire), `http` (request checks and
errors), `api_*` (routes), `app` (the Starlette app and `serve`). Needs the `server` extra."""

from ferrograph.server.app import create_app, serve
from ferrograph.server.database import DatabaseError
from ferrograph.server.graphs import GraphLoadError, load_config

__all__ = ["DatabaseError", "GraphLoadError", "create_app", "load_config", "serve"]
