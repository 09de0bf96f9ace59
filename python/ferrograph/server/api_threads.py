"""Thread routes: create, get, update, delete, copy, search, count, and the thread's state
(get, update, history), with LangGraph's paths, bodies and status codes, each asking the
custom auth (resource `threads`) as LangGraph's in-memory server does: a thread its filter
hides answers as a missing one."""

from __future__ import annotations

import copy
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
    query_flag,
)
from ferrograph.server.state import empty_state, state_json, thread_config
from ferrograph.server.storage import THREAD_STATUSES, Thread
from ferrograph.server.wire import now, parse_uuid, uuid7

if TYPE_CHECKING:
    from ferrograph.server.app import ServerState

_SORT_KEYS = ("thread_id", "status", "created_at", "updated_at", "state_updated_at")


def _server(request: Request) -> ServerState:
    return request.app.state.server


async def allowed_thread(request: Request, thread_id: str, action: str,
                         missing: ApiError, **value: Any) -> Thread:
    """The thread, if it exists and the custom auth lets the caller `action` it (its
    handler sees `{"thread_id": ..., **value}`); else `missing`."""
    filters = await authorize(request, "threads", action,
                              {"thread_id": uuid.UUID(thread_id), **value})
    thread = _server(request).threads.get(thread_id)
    if thread is None or not matches(thread.metadata, filters):
        raise missing
    return thread


async def readable_thread(request: Request) -> Thread:
    """The path's thread, if the caller may read it; else LangGraph's 404."""
    thread_id = path_id(request, "thread_id", "thread")
    return await allowed_thread(request, thread_id, "read",
                                ApiError(404, f"Thread with ID {thread_id} not found"))


async def thread_graph(server: ServerState, thread: Thread) -> Any:
    """The graph of the thread's runs, bound to the server's saver; None before any run.
    Until its first run ends, the thread's metadata has no graph: as LangGraph's server, the
    graph of a run on the thread is taken."""
    graph_id = thread.graph_id or next(
        (r.record.kwargs["config"]["configurable"].get("graph_id")
         for r in server.runner.runs.values() if r.record.thread_id == thread.thread_id), "")
    served = server.graphs.get(graph_id)
    if served is None:
        return None
    return await served.build(thread_config(thread.thread_id), server.saver)


async def create_thread(request: Request) -> Response:
    server, body = _server(request), await json_body(request, "ThreadCreate")
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ApiError(422, "metadata must be an object")
    thread_id = body_id(body, "thread_id", "thread")
    if body.get("graph_id"):
        metadata = {**metadata, "graph_id": body["graph_id"]}
    new_id = thread_id or uuid7()
    if_exists = body.get("if_exists") or "raise"
    filters = await authorize(request, "threads", "create", {
        "thread_id": uuid.UUID(new_id), "metadata": metadata, "if_exists": if_exists})
    if thread_id is not None:
        if server.cluster is not None:  # another instance may have made it
            await server.threads.refresh(thread_id)
        existing = server.threads.get(thread_id)
        if existing is not None:
            if if_exists == "do_nothing" and matches(existing.metadata, filters):
                return json_response(existing.to_json())
            raise ApiError(409, f"Thread with ID {thread_id} already exists")
    at = now()
    thread = Thread(new_id, at, at, at, copy.deepcopy(metadata))
    await server.threads.save(thread)
    return json_response(thread.to_json())


async def get_thread(request: Request) -> Response:
    return json_response((await readable_thread(request)).to_json())


async def patch_thread(request: Request) -> Response:
    server = _server(request)
    thread_id = path_id(request, "thread_id", "thread")
    if server.threads.get(thread_id) is None:
        raise ApiError(404, "Not Found")
    body = await json_body(request, "ThreadPatch")
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ApiError(422, "metadata must be an object")
    thread = await allowed_thread(request, thread_id, "update", ApiError(404, "Not Found"),
                                  metadata=metadata)
    thread.metadata = {**thread.metadata, **metadata}
    await server.threads.save(thread)
    return json_response(thread.to_json())


async def delete_thread(request: Request) -> Response:
    server = _server(request)
    thread_id = path_id(request, "thread_id", "thread")
    thread = await allowed_thread(request, thread_id, "delete",
                                  ApiError(404, f"Thread with ID {thread_id} not found"))
    for run in server.runner.active_runs(thread.thread_id):
        run.cancel("thread deleted")
        if run.task is not None:
            await run.finished.wait()
    await server.threads.delete(thread.thread_id)  # its runs' records too, as LangGraph
    for run_id in [r for r, run in server.runner.runs.items()
                   if run.record.thread_id == thread.thread_id]:
        server.runner.runs.pop(run_id)
    return Response(status_code=204)


async def _search(request: Request, request_body: dict[str, Any], limit: int, offset: int
                  ) -> list[Thread]:
    for thread_id in request_body.get("ids") or ():
        if parse_uuid(thread_id) is None:
            raise ApiError(400, f"Invalid thread ID {thread_id}")
    status = request_body.get("status")
    if status is not None and status not in THREAD_STATUSES:
        raise ApiError(422, f"{status!r} is not one of {list(THREAD_STATUSES)}")
    sort_by = request_body.get("sort_by") or "created_at"
    if sort_by not in _SORT_KEYS:
        raise ApiError(422, f"{sort_by!r} is not one of {list(_SORT_KEYS)}")
    # the handler sees (and may add to) the metadata the search looks for
    metadata = request_body.get("metadata") or {}
    values = request_body.get("values") or {}
    filters = await authorize(request, "threads", "search", {
        "metadata": metadata, "values": values, "status": status, "limit": limit,
        "offset": offset})
    found = _server(request).threads.search(
        metadata=metadata, values=values, ids=request_body.get("ids"), status=status,
        sort_by=sort_by, sort_order=request_body.get("sort_order") or "desc")
    return [t for t in found if matches(t.metadata, filters)]


async def copy_thread(request: Request) -> Response:
    server = _server(request)
    source_id = parse_uuid(request.path_params["thread_id"])
    if source_id is None:  # LangGraph's server answers this route so
        raise ApiError(400, "badly formed hexadecimal UUID string")
    copy_id = uuid7()
    read = await authorize(request, "threads", "read", {"thread_id": uuid.UUID(source_id)})
    # the caller must be allowed to create threads; where the copy is visible is not its say
    await authorize(request, "threads", "create", {"thread_id": uuid.UUID(copy_id)})
    source = server.threads.get(source_id)
    if source is None or not matches(source.metadata, read):
        raise ApiError(409, "Conflict")  # LangGraph's answer to a copy of no thread
    at = now()
    # a copy starts idle, as LangGraph's (its checkpoints hold any interrupt still open)
    duplicate = Thread(copy_id, at, at, at, copy.deepcopy(source.metadata), "idle",
                       source.values)
    await server.threads.copy_checkpoints(source.thread_id, duplicate.thread_id)
    await server.threads.save(duplicate)
    shown = duplicate.to_json()
    for key in ("values", "interrupts", "error"):  # LangGraph's copy answers without them
        del shown[key]
    return json_response(shown)


async def search_threads(request: Request) -> Response:
    body = await json_body(request, "ThreadSearchRequest")
    limit, offset = page(body)
    return paginated(await _search(request, body, limit, offset), limit, offset)


async def count_threads(request: Request) -> Response:
    body = await json_body(request, "ThreadCountRequest")
    return json_response(len(await _search(request, body, 0, 0)))


async def _state(request: Request, checkpoint: dict[str, Any] | None,
                 subgraphs: bool) -> Response:
    server = _server(request)
    thread = await readable_thread(request)
    graph = await thread_graph(server, thread)
    if graph is None:
        return json_response(empty_state())
    snapshot = await graph.aget_state(thread_config(thread.thread_id, checkpoint),
                                      subgraphs=subgraphs)
    return json_response(state_json(snapshot))


async def get_state(request: Request) -> Response:
    checkpoint_id = request.path_params.get("checkpoint_id")
    return await _state(request, {"checkpoint_id": checkpoint_id} if checkpoint_id else None,
                        query_flag(request, "subgraphs"))


async def post_state_checkpoint(request: Request) -> Response:
    body = await json_body(request, "ThreadStateCheckpointRequest")
    return await _state(request, body.get("checkpoint"), bool(body.get("subgraphs")))


async def update_state(request: Request) -> Response:
    server = _server(request)
    thread_id = path_id(request, "thread_id", "thread")
    update = await authorize(request, "threads", "update", {"thread_id": uuid.UUID(thread_id)})
    thread = await readable_thread(request)
    if not matches(thread.metadata, update):  # readable but not the caller's to change
        raise ApiError(403, "Forbidden")
    body = await json_body(request, "ThreadStateUpdate")
    graph = await thread_graph(server, thread)
    if graph is None:
        raise ApiError(400, f"Thread '{thread.thread_id}' has no assigned graph ID. This "
                            "usually occurs when no runs have been made on this particular "
                            "thread. This operation requires a graph ID. Please ensure a run "
                            "has been made for the thread or manually update the thread "
                            "metadata (by setting the 'graph_id' field) before running this "
                            "operation.")
    config = thread_config(thread.thread_id, body.get("checkpoint")
                           or ({"checkpoint_id": body["checkpoint_id"]}
                               if body.get("checkpoint_id") else None))
    as_node = body.get("as_node")
    if as_node is not None and as_node not in graph.builder.nodes and not as_node.startswith(
            "__"):
        raise ApiError(400, f"Node {as_node} does not exist")
    try:
        new = await graph.aupdate_state(config, body.get("values"), as_node=as_node)
    except (ValueError, KeyError) as e:
        raise ApiError(400, str(e)) from None
    snapshot = await graph.aget_state(thread_config(thread.thread_id))
    thread.values = snapshot.values
    thread.state_updated_at = now()
    thread.status = "interrupted" if snapshot.next else "idle"
    await server.threads.save(thread)
    c = new["configurable"]
    ref = {"thread_id": c["thread_id"], "checkpoint_ns": c.get("checkpoint_ns", ""),
           "checkpoint_id": c["checkpoint_id"]}
    return json_response({"checkpoint": ref, "configurable": ref,
                          "checkpoint_id": c["checkpoint_id"]})


async def history(request: Request) -> Response:
    server = _server(request)
    thread = await readable_thread(request)
    body = await json_body(request, "ThreadStateSearch")
    limit = body.get("limit", 10)
    graph = await thread_graph(server, thread)
    if graph is None:
        return json_response([])
    before = body.get("before")
    if isinstance(before, str):
        before = {"configurable": {"checkpoint_id": before}}
    elif isinstance(before, dict) and "configurable" not in before:
        before = {"configurable": before}
    states = []
    async for snapshot in graph.aget_state_history(
            thread_config(thread.thread_id, body.get("checkpoint")),
            filter=body.get("metadata"), before=before, limit=limit):
        states.append(state_json(snapshot))
    return json_response(states)


ROUTES = [
    Route("/threads", create_thread, methods=["POST"]),
    Route("/threads/search", search_threads, methods=["POST"]),
    Route("/threads/count", count_threads, methods=["POST"]),
    Route("/threads/{thread_id}", get_thread, methods=["GET"]),
    Route("/threads/{thread_id}", patch_thread, methods=["PATCH"]),
    Route("/threads/{thread_id}", delete_thread, methods=["DELETE"]),
    Route("/threads/{thread_id}/state", get_state, methods=["GET"]),
    Route("/threads/{thread_id}/state", update_state, methods=["POST"]),
    Route("/threads/{thread_id}/state/checkpoint", post_state_checkpoint, methods=["POST"]),
    Route("/threads/{thread_id}/state/{checkpoint_id}", get_state, methods=["GET"]),
    Route("/threads/{thread_id}/history", history, methods=["POST"]),
    Route("/threads/{thread_id}/history", history, methods=["GET"]),
    Route("/threads/{thread_id}/copy", copy_thread, methods=["POST"]),
]
