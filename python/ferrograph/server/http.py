"""Request and response helpers shared by the routes: JSON bodies and path ids checked as
LangGraph's server checks them, its `{"detail": ...}` errors, JSON responses."""

from __future__ import annotations

import os
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ferrograph.server.bodies import BodyError, check
from ferrograph.server.wire import dumps, loads, parse_uuid


class ApiError(Exception):
    """An HTTP error with LangGraph's body, `{"detail": ...}`."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None
                 ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> Response:
    return Response(dumps(data), status_code=status, headers=headers,
                    media_type="application/json")


def error_response(status: int, detail: str, headers: Any = None) -> Response:
    return json_response({"detail": detail}, status, dict(headers) if headers else None)


MAX_BODY_ENV = "HTTP_MAX_REQUEST_BODY_BYTES"
"""The environment variable of the largest request body, in bytes (LangGraph's name)."""
DEFAULT_MAX_BODY_BYTES = 300 * 1024 * 1024
"""LangGraph's server's default: what it takes, ferrograph takes."""


def max_body_bytes_from_env() -> int:
    value = os.environ.get(MAX_BODY_ENV, "")
    return int(value) if value.strip().isdigit() else DEFAULT_MAX_BODY_BYTES


async def _raw_body(request: Request) -> bytes:
    """The body, read once (kept on the request) and no further than the server's limit:
    beyond it, LangGraph's 413."""
    if not hasattr(request.state, "raw_body"):
        limit = request.app.state.max_body_bytes
        too_large = ApiError(413, f"Request body too large (limit: {limit} bytes)")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large  # refused before reading it
        chunks = bytearray()
        async for chunk in request.stream():
            chunks += chunk
            if len(chunks) > limit:
                raise too_large
        request.state.raw_body = bytes(chunks)
    return request.state.raw_body


async def json_body(request: Request, shape: str) -> dict[str, Any]:
    """The body as the JSON object `shape` (see `bodies.BODIES`) describes; anything else
    is LangGraph's 422 (an empty body is not JSON). Read and checked once per request:
    asked again (a route and the helper it calls), the same object comes back."""
    checked = getattr(request.state, "checked_body", None)
    if checked is not None and checked[0] == shape:
        return checked[1]
    try:
        body = loads(await _raw_body(request))
    except ValueError:
        raise ApiError(422, "Invalid JSON in request body") from None
    try:
        check(body, shape)
    except BodyError as e:
        raise ApiError(422, str(e)) from None
    request.state.checked_body = (shape, body)
    return body


def path_id(request: Request, name: str, label: str) -> str:
    """A UUID from the path; anything else is LangGraph's 422."""
    return _uuid(request.path_params[name], label)


def body_id(body: dict[str, Any], field: str, label: str) -> str | None:
    """A UUID the body may give (None when it gives none); anything else is LangGraph's 422."""
    value = body.get(field)
    return None if value is None else _uuid(value, label)


def _uuid(value: Any, label: str) -> str:
    found = parse_uuid(value)
    if found is None:
        raise ApiError(422, f"Invalid {label} ID: must be a UUID")
    return found


def query_flag(request: Request, name: str, default: bool = False) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return default
    return value.lower() in ("true", "1", "yes")


def page(body: dict[str, Any], default_limit: int = 10) -> tuple[int, int]:
    limit, offset = body.get("limit", default_limit), body.get("offset", 0)
    if not isinstance(limit, int) or not isinstance(offset, int) or limit < 0 or offset < 0:
        raise ApiError(422, "limit and offset must be non-negative integers")
    return limit, offset


def paginated(items: list[Any], limit: int, offset: int) -> Response:
    """A page of `items` with LangGraph's `x-pagination-total` / `x-pagination-next`."""
    chosen = items[offset:offset + limit]
    headers = {"x-pagination-total": str(len(items))}
    if offset + limit < len(items):
        headers["x-pagination-next"] = str(offset + limit)
    return json_response([i.to_json() if hasattr(i, "to_json") else i for i in chosen],
                         headers=headers)
