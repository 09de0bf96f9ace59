"""Assistant routes: the system assistant of each graph and those clients create (kept in
memory, with their versions): create, get, update, delete, search, count, versions, set
latest, the graph's drawing and its schemas; plus `/ok` and `/info`. Each asks the custom
auth (resource `assistants`) as LangGraph's in-memory server does."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ferrograph.server.auth import authorize, matches
from ferrograph.server.http import (
    ApiError,
    body_id,
    json_body,
    json_response,
    page,
    paginated,
    path_id,
)
from ferrograph.server.storage import Assistant
from ferrograph.server.wire import now, parse_uuid, uuid7

if TYPE_CHECKING:
    from ferrograph.server.app import ServerState

logger = logging.getLogger("ferrograph.server")


def _server(request: Request) -> ServerState:
    return request.app.state.server


async def allowed_assistant(request: Request, assistant_id: str, action: str,
                            missing: str | None = None, **value: Any) -> Assistant:
    """The assistant, if it exists and the custom auth lets the caller `action` it (its
    handler sees `{"assistant_id": ..., **value}`); else a 404 with LangGraph's `detail`
    for the route (`missing`; by default `Assistant <id> not found`)."""
    filters = await authorize(request, "assistants", action,
                              {"assistant_id": uuid.UUID(assistant_id), **value})
    assistant = _server(request).assistants.get(assistant_id)
    if assistant is None or not matches(assistant.metadata, filters):
        raise ApiError(404, missing or f"Assistant {assistant_id} not found")
    return assistant


def _path_assistant_id(request: Request, by_name: bool) -> str:
    """The path's assistant id; with `by_name`, a graph id means that graph's system
    assistant (some routes take both)."""
    ref = request.path_params["assistant_id"]
    if by_name and parse_uuid(ref) is None:
        for assistant in _server(request).assistants.values():
            if assistant.graph_id == ref:
                return assistant.assistant_id
        raise ApiError(422, "Invalid assistant ID: must be a UUID")
    return path_id(request, "assistant_id", "assistant")


async def ok(request: Request) -> Response:
    """Health: with `check_db=1` (the default on PostgreSQL, whose server can go away) the
    database (and Redis, for one of several instances) is asked to answer within 3 s; 500
    if it does not, as LangGraph's `/ok`."""
    server = request.app.state.server
    default = "1" if server.database.remote else "0"
    if request.query_params.get("check_db", default) == "0":
        return json_response({"ok": True, "services": {}})
    services = {"database": server.database}
    if server.cluster is not None:  # several instances: ready only with Redis too
        services["redis"] = server.cluster
    health = {}
    for name, service in services.items():
        try:
            await asyncio.wait_for(service.ping(), 3.0)
            health[name] = "healthy"
        except Exception:  # noqa: BLE001 - any failure is an unhealthy service
            logger.warning("health check: %s does not answer", service.describe,
                           exc_info=True)
            health[name] = "unhealthy"
    ok = all(h == "healthy" for h in health.values())
    return json_response({"ok": ok, "services": health}, status=200 if ok else 500)


async def info(request: Request) -> Response:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("ferrograph")
    except PackageNotFoundError:
        ours = "unknown"
    return json_response({
        "version": ours, "ferrograph_version": ours,
        "flags": {"assistants": True, "crons": False, "langsmith": False},
        "host": {"kind": "self-hosted", "project_id": None, "host_revision_id": None,
                 "revision_id": None, "tenant_id": None}})


async def _search(request: Request, body: dict[str, Any], limit: int, offset: int
                  ) -> list[Assistant]:
    server = _server(request)
    graph_id = body.get("graph_id")
    metadata = body.get("metadata") or {}  # the handler sees (and may add to) it
    filters = await authorize(request, "assistants", "search", {
        "graph_id": graph_id, "metadata": metadata, "limit": limit, "offset": offset})
    if graph_id is not None and graph_id not in server.graphs:
        raise ApiError(404, f"Graph {graph_id} not found")
    found = [a for a in server.assistants.values()
             if (graph_id is None or a.graph_id == graph_id)
             and (body.get("name") is None or body["name"] in a.name)
             and all(a.metadata.get(k) == v for k, v in metadata.items())
             and matches(a.metadata, filters)]
    sort_by = body.get("sort_by") or "created_at"
    key = {"created_at": lambda a: a.created_at, "updated_at": lambda a: a.updated_at or a.created_at,
           "assistant_id": lambda a: a.assistant_id, "graph_id": lambda a: a.graph_id,
           "name": lambda a: a.name}.get(sort_by)
    if key is None:
        raise ApiError(422, f"{sort_by!r} is not a valid sort_by")
    found.sort(key=key, reverse=(body.get("sort_order") or "desc") != "asc")
    return found


async def search(request: Request) -> Response:
    body = await json_body(request, "AssistantSearchRequest")
    limit, offset = page(body)
    return paginated(await _search(request, body, limit, offset), limit, offset)


async def count(request: Request) -> Response:
    body = await json_body(request, "AssistantCountRequest")
    return json_response(len(await _search(request, body, 0, 0)))


async def get(request: Request) -> Response:
    assistant_id = path_id(request, "assistant_id", "assistant")
    return json_response((await allowed_assistant(request, assistant_id, "read",
                                                  "Not Found")).to_json())


async def _graph_of(request: Request, by_name: bool) -> Any:
    server = _server(request)
    assistant = await allowed_assistant(request, _path_assistant_id(request, by_name), "read",
                                        "Not Found")
    served = server.graphs.get(assistant.graph_id)
    if served is None:
        raise ApiError(404, f"Graph '{assistant.graph_id}' of assistant "
                            f"{assistant.assistant_id} is not served")
    return assistant, await served.build({"configurable": {}}, None)


async def get_graph(request: Request) -> Response:
    _, graph = await _graph_of(request, by_name=True)
    xray_arg = request.query_params.get("xray", "false").lower()
    xray: bool | int = (True if xray_arg == "true" else False if xray_arg in ("false", "")
                        else int(xray_arg))
    drawn = graph.get_graph(xray=xray).to_json()
    for node in drawn.get("nodes", []):
        data = node.get("data")
        if isinstance(data, dict):
            data.pop("id", None)
    return json_response(drawn)


def _state_schema(graph: Any) -> dict[str, Any]:
    """The state's JSON schema as LangGraph's server draws it: a model of the state keys,
    each typed by its annotation (`Any` where Pydantic cannot take the type)."""
    from typing import Annotated, get_args, get_origin

    from pydantic import TypeAdapter, create_model

    fields: dict[str, Any] = {}
    for key in graph.key_names:
        kind = graph.builder.key_types.get(key, Any)
        if get_origin(kind) is Annotated:  # the reducer is not part of the value's type
            kind = get_args(kind)[0]
        try:
            TypeAdapter(kind).json_schema()
            fields[key] = (kind, None)
        except Exception:  # noqa: BLE001 - a type Pydantic cannot draw
            fields[key] = (Any, None)
    return create_model(graph.get_name("State"), **fields).model_json_schema()


async def get_schemas(request: Request) -> Response:
    assistant, graph = await _graph_of(request, by_name=False)

    def schema(method: str) -> Any:
        try:
            return getattr(graph, method)()
        except Exception:  # noqa: BLE001 - a schema that cannot be drawn is shown as null
            return None

    try:
        state = _state_schema(graph)
    except Exception:  # noqa: BLE001
        state = None
    return json_response({
        "graph_id": assistant.graph_id,
        "input_schema": schema("get_input_jsonschema"),
        "output_schema": schema("get_output_jsonschema"),
        "state_schema": state,
        "config_schema": {},
        "context_schema": schema("get_context_jsonschema")})


def _unknown_graph(server: ServerState, graph_id: Any) -> ApiError:
    return ApiError(404, f"Graph '{graph_id}' not found. Expected one of: "
                         f"{sorted(server.graphs)}")


def _config_and_context(config: Any, context: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """LangGraph's pairing of an assistant's `config` and `context`: either one given fills
    the other (`context` is the config's `configurable`)."""
    config = dict(config or {})
    if not isinstance(config, dict) or not isinstance(context or {}, dict):
        raise ApiError(422, "config and context must be objects")
    if context:
        config["configurable"] = context
    else:
        context = config.get("configurable") or {}
    return config, dict(context)


async def create(request: Request) -> Response:
    server, body = _server(request), await json_body(request, "AssistantCreate")
    graph_id = body.get("graph_id")
    if graph_id not in server.graphs:
        raise _unknown_graph(server, graph_id)
    assistant_id = body_id(body, "assistant_id", "assistant")
    new_id = assistant_id or str(uuid7())
    metadata = dict(body.get("metadata") or {})  # the auth may stamp it
    config_in, context_in = dict(body.get("config") or {}), body.get("context")
    name = body.get("name") or "Untitled"
    filters = await authorize(request, "assistants", "create", {
        "assistant_id": uuid.UUID(new_id), "graph_id": graph_id, "config": config_in,
        "context": context_in, "metadata": metadata, "name": name})
    if assistant_id is not None:
        existing = server.assistants.get(assistant_id)
        if existing is not None:
            if body.get("if_exists") == "do_nothing" and matches(existing.metadata, filters):
                return json_response(existing.to_json())
            raise ApiError(409, f"Assistant {assistant_id} already exists")
    config, context = _config_and_context(config_in, context_in)
    assistant = Assistant(new_id, graph_id, now(), name=name, config=config,
                          context=context, metadata=metadata,
                          description=body.get("description"))
    assistant.record_version()
    assistant.updated_at = assistant.created_at
    await server.assistant_store.save(assistant)
    return json_response(assistant.to_json())


async def patch(request: Request) -> Response:
    server = _server(request)
    assistant_id = path_id(request, "assistant_id", "assistant")
    body = await json_body(request, "AssistantPatch")
    metadata = dict(body.get("metadata") or {})  # the auth may stamp it
    assistant = await allowed_assistant(
        request, assistant_id, "update", graph_id=body.get("graph_id"),
        config=body.get("config") or {}, context=body.get("context"), metadata=metadata,
        name=body.get("name"))
    if "graph_id" in body:
        if body["graph_id"] not in server.graphs:
            raise _unknown_graph(server, body["graph_id"])
        assistant.graph_id = body["graph_id"]
    if body.get("context") is not None:
        assistant.config, assistant.context = _config_and_context(body.get("config"),
                                                                  body["context"])
    elif body.get("config") is not None:
        assistant.config = dict(body["config"])
    if metadata:
        assistant.metadata = {**assistant.metadata, **metadata}
    for key in ("name", "description"):
        if body.get(key) is not None:
            setattr(assistant, key, body[key])
    assistant.version = max(v["version"] for v in assistant.versions or [{"version": 1}]) + 1
    assistant.record_version()
    await server.assistant_store.save(assistant)
    return json_response(assistant.to_json())


async def delete(request: Request) -> Response:
    server = _server(request)
    assistant_id = path_id(request, "assistant_id", "assistant")
    assistant = await allowed_assistant(request, assistant_id, "delete",
                                        f"Assistant with ID {assistant_id} not found")
    await server.assistant_store.delete(assistant.assistant_id)
    return Response(status_code=204)


async def versions(request: Request) -> Response:
    server = _server(request)
    assistant_id = path_id(request, "assistant_id", "assistant")
    body = await json_body(request, "AssistantVersionsSearchRequest")
    limit, offset = page(body)
    filters = await authorize(request, "assistants", "read",
                              {"assistant_id": uuid.UUID(assistant_id)})
    assistant = server.assistants.get(assistant_id)
    if assistant is None:
        raise ApiError(404, f"Assistant {assistant_id} not found")
    wanted = body.get("metadata") or {}
    found = [v for v in reversed(assistant.versions or [assistant.to_json()])
             if all(v["metadata"].get(k) == value for k, value in wanted.items())
             and matches(v["metadata"], filters)]
    if filters and not found:  # every version hidden: as LangGraph, no such assistant
        raise ApiError(404, f"Assistant {assistant_id} not found")
    return json_response(found[offset:offset + limit])


async def set_latest(request: Request) -> Response:
    server = _server(request)
    assistant_id = path_id(request, "assistant_id", "assistant")
    version = (await json_body(request, "AssistantVersionChange")).get("version")
    assistant = await allowed_assistant(request, assistant_id, "update", version=version)
    if not isinstance(version, int) or not assistant.restore(version):
        raise ApiError(404, f"Version {version} not found for assistant "
                            f"{assistant.assistant_id}")
    await server.assistant_store.save(assistant)
    return json_response(assistant.to_json())


ROUTES = [
    Route("/ok", ok, methods=["GET"]),
    Route("/info", info, methods=["GET"]),
    Route("/assistants", create, methods=["POST"]),
    Route("/assistants/search", search, methods=["POST"]),
    Route("/assistants/count", count, methods=["POST"]),
    Route("/assistants/{assistant_id}", get, methods=["GET"]),
    Route("/assistants/{assistant_id}", patch, methods=["PATCH"]),
    Route("/assistants/{assistant_id}", delete, methods=["DELETE"]),
    Route("/assistants/{assistant_id}/versions", versions, methods=["POST"]),
    Route("/assistants/{assistant_id}/latest", set_latest, methods=["POST"]),
    Route("/assistants/{assistant_id}/graph", get_graph, methods=["GET"]),
    Route("/assistants/{assistant_id}/schemas", get_schemas, methods=["GET"]),
]
