"""Run routes: create (background), stream (server-sent events), wait, join, join_stream,
get, list, cancel, delete, on a thread or stateless (`/runs/...`), with LangGraph's bodies,
status codes and SSE framing. Runs belong to their thread for the custom auth (resource
`threads`: `create_run`, `read`, `search`, `update` to cancel, `delete`), as in LangGraph."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ferrograph.server.auth import authorize, matches, run_user
from ferrograph.server.database import Statement
from ferrograph.server.execute import END, NODES_KEY, TAGS_KEY, RunSpec, RunTask
from ferrograph.server.http import ApiError, body_id, json_body, json_response, path_id
from ferrograph.server.storage import Assistant, RunRecord, Thread
from ferrograph.server.wire import HEARTBEAT, dumps, now, parse_uuid, sse_frame, uuid7

if TYPE_CHECKING:
    from ferrograph.server.app import ServerState

HEARTBEAT_SECONDS = 5.0
_BEAT = object()  # queued by an idle stream's heartbeat timer
_NOTHING_TO_CANCEL = ("No matching runs to cancel. Please verify the thread ID and run IDs are "
                      "correct, and the runs haven't been deleted or completed.")


def _server(request: Request) -> ServerState:
    return request.app.state.server


# -- the request ----------------------------------------------------------------------------

def _body_shape(request: Request) -> str:
    """The run body's name in LangGraph's API: a run on a thread or stateless, and one whose
    response follows it (stream, wait: it may say `on_disconnect`) or not."""
    stateful = "thread_id" in request.path_params
    follows = request.url.path.endswith(("/stream", "/wait"))
    return (f"RunCreate{'Streaming' if follows else ''}"
            f"{'Stateful' if stateful else 'Stateless'}")


def _stream_modes(body: dict[str, Any]) -> list[str]:
    """The requested modes (checked by the body's shape), once each, in order."""
    modes = body.get("stream_mode", ["values"])
    return list(dict.fromkeys([modes] if isinstance(modes, str) else modes))


def _resolve_assistant(server: ServerState, ref: str) -> Assistant:
    found = parse_uuid(ref)
    if found is not None:
        assistant = server.assistants.get(found)
        if assistant is None:
            raise ApiError(404, "Thread or assistant not found.")
        return assistant
    for assistant in server.assistants.values():
        if assistant.graph_id == ref:
            return assistant
    graphs = ", ".join(server.graphs)
    raise ApiError(422, f"Invalid assistant: '{ref}'. Must be either:\n- A valid assistant "
                        f"UUID, or\n- One of the registered graphs: {graphs}")


def _filter(configurable: dict[str, Any], key: str) -> list[str] | None:
    value = configurable.pop(key, None)
    if value is None:
        return None
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(422, f"config.configurable.{key} must be a list of names")
    return value


def _check_nodes(served_graph: Any, nodes: list[str]) -> None:
    """An unknown top-level node in the filter is the request's fault (422); names inside
    subgraphs (`parent/child`) are checked by the engine when the run starts."""
    known = list(getattr(served_graph, "node_names", None) or served_graph.nodes)
    for name in nodes:
        if name.split("/", 1)[0] not in known:
            raise ApiError(422, f"Unknown node {name!r} in {NODES_KEY}: the graph's nodes "
                                f"are {', '.join(n for n in known if not n.startswith('__'))}")


_NOT_FOUND = "Thread or assistant not found."


def _run_thread_id(request: Request) -> str:
    """The run's thread id: the path's, or a new one for a stateless run."""
    if "thread_id" not in request.path_params:
        return uuid7()
    thread_id = parse_uuid(request.path_params["thread_id"])
    if thread_id is None:  # LangGraph's server answers each route so
        if _body_shape(request) == "RunCreateStateful":
            raise ApiError(422, "Invalid thread ID")
        raise ApiError(400, "badly formed hexadecimal UUID string")
    return thread_id


async def _thread_for_run(server: ServerState, thread_id: str, stateless: bool,
                          if_not_exists: str, filters: dict[str, Any] | None,
                          new_metadata: dict[str, Any]
                          ) -> tuple[Thread, bool, list[Statement]]:
    """The run's thread (created, with `new_metadata`, for a stateless run or when
    `if_not_exists="create"`; one the auth's `filters` hide is missing); whether it existed
    before; and what writes a new one (with the run's record, in one batch)."""
    thread = None if stateless else server.threads.get(thread_id)
    if thread is not None:
        if not matches(thread.metadata, filters):
            raise ApiError(404, _NOT_FOUND)
        return thread, True, []
    if not stateless and if_not_exists != "create":
        raise ApiError(404, _NOT_FOUND)
    at = now()
    thread = Thread(thread_id, at, at, at, new_metadata)
    return thread, False, server.threads.changes(thread)


def thread_config_for_run(assistant: Assistant, thread: Thread | None,
                          request_config: dict[str, Any]) -> dict[str, Any]:
    """A thread's `config` once a run is created on it (None: a new thread), as LangGraph's
    server merges it: the assistant's config, the thread's, the request's, each over the
    last, with `configurable` the assistant's and the thread's only."""
    had = thread.config if thread is not None else {}
    return copy.deepcopy({
        **assistant.config, **had, **request_config,
        "configurable": {**(assistant.config.get("configurable") or {}),
                         **(had.get("configurable") or {})}})


def _run_config(assistant: Assistant, thread: Thread, run_id: str, body: dict[str, Any],
                request_config: dict[str, Any], request_configurable: dict[str, Any],
                run_metadata: dict[str, Any], caller: dict[str, Any]) -> dict[str, Any]:
    """The config a run's graph gets, as LangGraph's server makes it: the assistant's config
    under the request's, the caller (`langgraph_auth_user`, ...), the run's identifiers in
    `configurable` and `metadata` (with the thread's and the request's metadata), the
    checkpoint to start from, and the run's id."""
    assistant_configurable = assistant.config.get("configurable") or {}
    configurable = {**assistant_configurable, **request_configurable, **caller,
                    "run_id": run_id, "thread_id": thread.thread_id,
                    "graph_id": assistant.graph_id, "assistant_id": assistant.assistant_id,
                    "user_id": request_configurable.get("user_id")
                    or assistant_configurable.get("user_id")
                    or caller["langgraph_auth_user_id"]}
    if body.get("checkpoint_id"):
        configurable["checkpoint_id"] = body["checkpoint_id"]
    if isinstance(body.get("checkpoint"), dict):
        configurable.update({k: v for k, v in body["checkpoint"].items()
                             if v is not None and k != "thread_id"})
    return {
        **{k: v for k, v in assistant.config.items() if k != "configurable"},
        **{k: v for k, v in request_config.items() if k != "configurable"},
        "configurable": configurable,
        "metadata": {**thread.metadata, **run_metadata, "run_attempt": 1,
                     "run_id": run_id, "thread_id": thread.thread_id},
        # the run's own id (for tracers), as LangGraph's server sets it
        "run_id": uuid.UUID(run_id),
    }


def _run_metadata(assistant: Assistant, thread_metadata: dict[str, Any],
                  request_config: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    """The run's `metadata` as the API shows it: the assistant's, the thread's (when it
    existed), the request config's and the request's, with the run's graph and assistant."""
    return {**assistant.metadata, **thread_metadata, **(request_config.get("metadata") or {}),
            **metadata, "graph_id": assistant.graph_id,
            "assistant_id": assistant.assistant_id}


async def _allowed_to_run(request: Request, assistant: Assistant, value: dict[str, Any]
                          ) -> dict[str, Any] | None:
    """The custom auth's filter on the run's thread (`threads`/`create_run`, which may stamp
    `value["metadata"]`); a non-system assistant must also be readable by the caller."""
    filters = await authorize(request, "threads", "create_run", value)
    if assistant.metadata.get("created_by") != "system":
        readable = await authorize(request, "assistants", "read",
                                   {"assistant_id": uuid.UUID(assistant.assistant_id)})
        if not matches(assistant.metadata, readable):
            raise ApiError(404, _NOT_FOUND)
    return filters


async def create_run(request: Request) -> RunTask:
    """Checks the request, then starts the run (it waits for the thread's earlier runs)."""
    server, body = _server(request), await json_body(request, _body_shape(request))
    assistant = _resolve_assistant(server, body["assistant_id"])
    modes = _stream_modes(body)
    strategy = body.get("multitask_strategy", "enqueue")
    interrupt_before = body.get("interrupt_before")
    interrupt_after = body.get("interrupt_after")
    after_seconds = max(body.get("after_seconds") or 0, 0)
    request_config = body.get("config") or {}
    served = server.graphs.get(assistant.graph_id)
    if served is None:  # an assistant kept from a config that served its graph
        raise ApiError(404, "Thread or assistant not found.")
    stateless = "thread_id" not in request.path_params
    thread_id = _run_thread_id(request)
    if_not_exists = body.get("if_not_exists", "reject")
    temporary = stateless and body.get("on_completion", "delete") != "keep"

    run_id = uuid7()
    metadata = dict(body.get("metadata") or {})  # the auth may stamp it
    run_kwargs = {"input": body.get("input"), "command": body.get("command"),
                  "config": request_config, "context": body.get("context") or {},
                  "stream_mode": modes}
    filters = await _allowed_to_run(request, assistant, {
        "thread_id": None if temporary else uuid.UUID(thread_id),
        "assistant_id": uuid.UUID(assistant.assistant_id), "run_id": uuid.UUID(run_id),
        "status": "pending", "metadata": metadata,
        "prevent_insert_if_inflight": strategy == "reject", "multitask_strategy": strategy,
        "if_not_exists": if_not_exists, "after_seconds": after_seconds,
        "kwargs": run_kwargs})
    # what an auth handler changed in the run's kwargs is what the run gets, as on
    # LangGraph's server: the config changed in place; the input, command and context
    # also replaced
    graph_input, command = run_kwargs.get("input"), run_kwargs.get("command")
    request_configurable = dict(request_config.get("configurable") or {})
    nodes = _filter(request_configurable, NODES_KEY)
    tags = _filter(request_configurable, TAGS_KEY)
    if nodes:
        _check_nodes(await served.build({"configurable": {}}, None), nodes)
    thread, existed, thread_changes = await _thread_for_run(
        server, thread_id, stateless, if_not_exists, filters,
        {"graph_id": assistant.graph_id, "assistant_id": assistant.assistant_id,
         **(request_config.get("metadata") or {}), **metadata})
    run_metadata = _run_metadata(assistant, thread.metadata if existed else {}, request_config,
                                 metadata)
    active = server.runner.active_runs(thread.thread_id)
    if active and strategy == "reject":
        raise ApiError(409, "Thread is already running a task. Wait for it to finish or "
                            "choose a different multitask strategy.")
    if active and strategy in ("interrupt", "rollback"):
        for run in active:
            run.cancel(f"interrupted by a new run ({strategy})",
                       rollback=strategy == "rollback")
    if not existed:
        thread.config = thread_config_for_run(assistant, None, request_config)
        thread_changes = server.threads.changes(thread)
    elif not active and thread.status != "busy":
        thread.config = thread_config_for_run(assistant, thread, request_config)
        thread_changes = [("UPDATE ferrograph_threads SET config = ? WHERE thread_id = ?",
                           (dumps(thread.config).decode(), thread.thread_id))]

    config = _run_config(assistant, thread, run_id, body, request_config, request_configurable,
                         run_metadata, run_user(request))
    context = {**assistant.context, **(run_kwargs.get("context") or {})} or None
    spec = RunSpec(served=served, input=graph_input, command=command, config=config,
                   context=context, stream_modes=modes,
                   subgraphs=bool(body.get("stream_subgraphs")),
                   interrupt_before=interrupt_before, interrupt_after=interrupt_after,
                   durability=body.get("durability"), nodes=nodes, tags=tags,
                   temporary=temporary, resumable=bool(body.get("stream_resumable")),
                   after_seconds=after_seconds)
    kwargs = {"input": graph_input, "command": command, "config": config,
              "context": context or {}, "stream_mode": modes,
              "interrupt_before": interrupt_before, "interrupt_after": interrupt_after,
              "temporary": temporary, "subgraphs": spec.subgraphs, "resumable": spec.resumable,
              "durability": body.get("durability") or "async"}
    record = RunRecord(run_id, thread.thread_id, assistant.assistant_id, now(), run_metadata,
                       kwargs, strategy)
    return await server.runner.start(record, spec, thread_changes)


def _run_path(run: RunTask, stateless: bool) -> str:
    """The run's `content-location` (`/runs/{id}` for a stateless run)."""
    rid, tid = run.record.run_id, run.record.thread_id
    return f"/runs/{rid}" if stateless else f"/threads/{tid}/runs/{rid}"


# -- the responses --------------------------------------------------------------------------

async def _sse(run: RunTask, queue: asyncio.Queue, cancel_on_disconnect: bool,
               modes: set[str] | None = None) -> AsyncIterator[bytes]:
    """The run's events as they come, a heartbeat comment in every 5 s of silence. A client
    gone (the response cancelled or its write failing) cancels the run if it asked to.

    The events queued by the time the response is ready to write go out in one write: when
    the run produces faster than the socket takes (many tokens a millisecond), a write per
    event would cost a send and a task switch per token."""
    loop = asyncio.get_running_loop()
    try:
        while True:
            if queue.empty():
                # The heartbeat is a timer that queues a marker, not `wait_for` (whose extra
                # task costs each event a turn of the loop on its way to the socket).
                beat = loop.call_later(HEARTBEAT_SECONDS, queue.put_nowait, _BEAT)
                try:
                    item = await queue.get()
                finally:
                    beat.cancel()
            else:
                item = queue.get_nowait()
            frames: list[bytes] = []
            while True:
                if item is END:
                    if frames:
                        yield b"".join(frames)
                    return
                if item is _BEAT:
                    frames.append(HEARTBEAT)
                else:
                    event, frame = item
                    if modes is None or event.split("|", 1)[0] in modes or event == "error" or (
                            event.startswith("messages") and "messages" in modes):
                        frames.append(frame)
                if queue.empty():
                    break
                item = queue.get_nowait()
            if frames:
                yield b"".join(frames)
    finally:
        run.unsubscribe(queue)
        if cancel_on_disconnect and not run.finished.is_set():
            run.cancel("the client disconnected (on_disconnect='cancel')")


def _sse_response(run: RunTask, queue: asyncio.Queue, cancel_on_disconnect: bool,
                  headers: dict[str, str], modes: set[str] | None = None) -> Response:
    return StreamingResponse(
        _sse(run, queue, cancel_on_disconnect, modes),
        media_type="text/event-stream; charset=utf-8",
        headers={"cache-control": "no-store", "x-accel-buffering": "no",
                 "connection": "keep-alive", **headers})


async def _result_body(run: RunTask) -> AsyncIterator[bytes]:
    """A newline every 5 s while the run goes on (JSON parsers skip leading whitespace),
    then the run's result."""
    while not run.finished.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(run.finished.wait(), HEARTBEAT_SECONDS)
        if not run.finished.is_set():
            yield b"\n"
    yield dumps(run.result)


async def stream_run(request: Request) -> Response:
    run = await create_run(request)
    body = await json_body(request, _body_shape(request))  # as create_run read it
    queue = run.subscribe(from_start=True)
    stateless = "thread_id" not in request.path_params
    base = _run_path(run, stateless)
    return _sse_response(run, queue, body.get("on_disconnect") == "cancel",
                         {"location": f"{base}/stream", "content-location": base})


async def background_run(request: Request) -> Response:
    run = await create_run(request)
    base = _run_path(run, "thread_id" not in request.path_params)
    return json_response(run.record.to_json(), headers={"content-location": base})


async def wait_run(request: Request) -> Response:
    run = await create_run(request)
    base = _run_path(run, "thread_id" not in request.path_params)
    return StreamingResponse(_result_body(run), media_type="application/json",
                             headers={"location": f"{base}/join", "content-location": base})


def _run_or_404(request: Request, missing: str = "Run not found") -> RunTask:
    """The path's run; unknown: a 404 with LangGraph's `detail` for the route (`missing`)."""
    server = _server(request)
    thread_id = path_id(request, "thread_id", "thread")
    run_id = path_id(request, "run_id", "run")
    run = server.runner.runs.get(run_id)
    if run is None or run.record.thread_id != thread_id:
        raise ApiError(404, missing)
    return run


async def _thread_allows(request: Request, action: str, missing: ApiError,
                         value: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Asks the custom auth whether the caller may `action` the path's thread (the handler
    sees `{"thread_id", **value}`): `missing` when its filter hides the thread. Returns the
    filter."""
    thread_id = path_id(request, "thread_id", "thread")
    filters = await authorize(request, "threads", action,
                              {"thread_id": uuid.UUID(thread_id), **(value or {})})
    if filters and not _thread_matches(_server(request), thread_id, filters):
        raise missing
    return filters


def _thread_matches(server: ServerState, thread_id: str, filters: dict[str, Any] | None
                    ) -> bool:
    """Whether the thread exists and passes the auth's filter (with no filter: True)."""
    thread = server.threads.get(thread_id)
    return not filters or (thread is not None and matches(thread.metadata, filters))


async def _readable_thread(request: Request) -> Thread:
    """The path's thread, if it exists and the caller may read it; else LangGraph's 404."""
    thread_id = path_id(request, "thread_id", "thread")
    missing = ApiError(404, f"Thread with ID {thread_id} not found")
    await _thread_allows(request, "read", missing)
    thread = _server(request).threads.get(thread_id)
    if thread is None:
        raise missing
    return thread


async def get_run(request: Request) -> Response:
    await _readable_thread(request)
    return json_response(_run_or_404(request, "Not Found").record.to_json())


async def list_runs(request: Request) -> Response:
    server = _server(request)
    thread = await _readable_thread(request)
    thread_id = thread.thread_id
    searchable = await authorize(request, "threads", "search",
                                 {"thread_id": uuid.UUID(thread_id), "metadata": {}})
    status = request.query_params.get("status")  # unknown: no run has it (LangGraph's way)
    try:
        limit = int(request.query_params.get("limit", 10))
        offset = int(request.query_params.get("offset", 0))
    except ValueError:
        raise ApiError(422, "limit and offset must be integers") from None
    runs = [r.record for r in server.runner.runs.values() if r.record.thread_id == thread_id
            and (status is None or r.record.status == status)
            and matches(thread.metadata, searchable)]
    runs.sort(key=lambda r: r.created_at, reverse=True)
    return json_response([r.to_json() for r in runs[offset:offset + limit]])


async def join_run(request: Request) -> Response:
    await _thread_allows(request, "read", ApiError(404, "Thread not found"))
    try:
        run = _run_or_404(request)
    except ApiError as e:
        if e.status != 404:
            raise
        return json_response({"__error__": {"error": "HTTPException",
                                            "message": "404: Run not found"}})
    base = _run_path(run, False)
    return StreamingResponse(_result_body(run), media_type="application/json",
                             headers={"location": f"{base}/join", "content-location": base})


async def join_stream(request: Request) -> Response:
    tid, rid = path_id(request, "thread_id", "thread"), path_id(request, "run_id", "run")
    base = f"/threads/{tid}/runs/{rid}"
    try:
        await _thread_allows(request, "read", ApiError(404, "Thread not found"))
        run = _run_or_404(request)
    except ApiError as e:
        # LangGraph's server starts the stream, then reports it in one `error` event
        return StreamingResponse(
            iter([sse_frame("error", {"error": "HTTPException",
                                      "message": f"{e.status}: {e.detail}"})]),
            media_type="text/event-stream; charset=utf-8",
            headers={"location": f"{base}/stream", "content-location": base})
    raw = request.query_params.get("stream_mode") or ""
    modes: set[str] | None = None
    if raw:
        from ferrograph.server.wire import loads

        try:
            parsed = loads(raw)
        except ValueError:
            parsed = raw
        modes = {parsed} if isinstance(parsed, str) else set(parsed)
        modes.add("metadata")
    cancel = request.query_params.get("cancel_on_disconnect", "false").lower() in (
        "true", "1", "yes")
    base = _run_path(run, False)
    last_event_id = request.headers.get("last-event-id")
    return _sse_response(run, run.subscribe(last_event_id), cancel,
                         {"location": f"{base}/stream", "content-location": base}, modes)


async def cancel_run(request: Request) -> Response:
    action = request.query_params.get("action", "interrupt")
    await _thread_allows(request, "update", ApiError(404, "No runs found to cancel."), {
        "action": action, "metadata": {
            "run_ids": [uuid.UUID(path_id(request, "run_id", "run"))], "status": None}})
    run = _run_or_404(request, "No runs found to cancel.")
    if run.finished.is_set():
        raise ApiError(404, _NOTHING_TO_CANCEL)
    action = request.query_params.get("action", "interrupt")
    if action not in ("interrupt", "rollback"):
        raise ApiError(422, f"{action!r} is not one of ['interrupt', 'rollback']")
    run.cancel(f"interrupt requested via POST /threads/{run.record.thread_id}/runs/"
               f"{run.record.run_id}/cancel", rollback=action == "rollback")
    if request.query_params.get("wait", "0").lower() in ("1", "true"):
        await run.finished.wait()
        return json_response(run.result)
    return Response(status_code=202)


async def cancel_many(request: Request) -> Response:
    """`POST /runs/cancel`: a thread's runs named in `run_ids`, or every run with `status`
    (`pending`, `running` or `all`)."""
    server, body = _server(request), await json_body(request, "RunsCancel")
    action = request.query_params.get("action", "interrupt")
    if action not in ("interrupt", "rollback"):
        action = "interrupt"  # as LangGraph's server takes an unknown action
    status = body.get("status")
    if status is not None and (body.get("thread_id") or body.get("run_ids")):
        raise ApiError(422, "When providing a 'status', 'thread_id' and 'run_ids' must be "
                            "omitted. The 'status' parameter cancels all runs with the given "
                            "status, regardless of thread or run ID.")
    thread_id = body_id(body, "thread_id", "thread")
    run_ids = {body_id({"run_id": r}, "run_id", "run") for r in body.get("run_ids") or []}
    statuses = ("pending", "running") if status == "all" else (status,)
    # as LangGraph's server: the runs named (or with the status), then those still going
    filters = await authorize(request, "threads", "update", {
        "thread_id": uuid.UUID(thread_id) if thread_id else None, "action": action,
        "metadata": {"run_ids": [uuid.UUID(r) for r in run_ids], "status": status}})
    named = [r for r in server.runner.runs.values()
             if (r.record.status in statuses if status is not None else
                 r.record.thread_id == thread_id and r.record.run_id in run_ids)
             and _thread_matches(server, r.record.thread_id, filters)]
    if not named:
        raise ApiError(404, "No runs found to cancel.")
    chosen = [r for r in named if not r.finished.is_set()]
    if not chosen:
        raise ApiError(404, _NOTHING_TO_CANCEL)
    for run in chosen:
        run.cancel(f"{action} requested via POST /runs/cancel", rollback=action == "rollback")
    for run in chosen:
        await run.finished.wait()
    return Response(status_code=204)


async def delete_run(request: Request) -> Response:
    await _thread_allows(request, "delete", ApiError(404, "Not Found"),
                         {"run_id": uuid.UUID(path_id(request, "run_id", "run"))})
    run = _run_or_404(request)
    if not run.finished.is_set():
        raise ApiError(409, "Run is still running: cancel it first")
    await _server(request).runner.forget(run.record.run_id)
    return Response(status_code=204)


ROUTES = [
    Route("/runs/stream", stream_run, methods=["POST"]),
    Route("/runs/wait", wait_run, methods=["POST"]),
    Route("/runs", background_run, methods=["POST"]),
    Route("/runs/cancel", cancel_many, methods=["POST"]),
    Route("/threads/{thread_id}/runs/stream", stream_run, methods=["POST"]),
    Route("/threads/{thread_id}/runs/wait", wait_run, methods=["POST"]),
    Route("/threads/{thread_id}/runs", background_run, methods=["POST"]),
    Route("/threads/{thread_id}/runs", list_runs, methods=["GET"]),
    Route("/threads/{thread_id}/runs/{run_id}", get_run, methods=["GET"]),
    Route("/threads/{thread_id}/runs/{run_id}", delete_run, methods=["DELETE"]),
    Route("/threads/{thread_id}/runs/{run_id}/join", join_run, methods=["GET"]),
    Route("/threads/{thread_id}/runs/{run_id}/stream", join_stream, methods=["GET"]),
    Route("/threads/{thread_id}/runs/{run_id}/cancel", cancel_run, methods=["POST"]),
]
