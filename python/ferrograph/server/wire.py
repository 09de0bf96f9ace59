"""What goes on the wire: JSON as LangGraph's server writes it (LangChain messages as their
`model_dump()`, interrupts as `{value, id, ...}`, exceptions as `{error, message}`), server-sent
event frames, timestamps and the UUIDv7 ids of threads and runs."""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections import deque
from datetime import datetime, timezone
from typing import Any

import orjson


def _default(obj: Any) -> Any:
    """orjson's fallback, in the order LangGraph's server tries (langgraph_api.serde)."""
    from ferrograph.types import Send

    if isinstance(obj, Send):
        return {"node": obj.node, "args": obj.arg}
    if hasattr(obj, "model_dump") and callable(obj.model_dump) and not isinstance(obj, type):
        return obj.model_dump()
    if hasattr(obj, "_asdict") and callable(obj._asdict) and not isinstance(obj, type):
        return obj._asdict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, BaseException):
        return error_body(obj)
    if isinstance(obj, (set, frozenset, deque)):
        return list(obj)
    if isinstance(obj, (uuid.UUID, os.PathLike)):
        return str(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    return repr(obj)


def dumps(value: Any) -> bytes:
    """Compact JSON, as the server sends it (non-string dict keys allowed, as orjson's
    `OPT_NON_STR_KEYS` makes them strings)."""
    return orjson.dumps(value, default=_default,
                        option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


_SHOWN_ERRORS = frozenset({
    "ValueError", "TypeError", "KeyError", "AttributeError", "RuntimeError", "RecursionError",
    "TimeoutError", "InvalidUpdateError", "GraphBubbleUp", "EmptyInputError", "TaskNotFound",
    "HTTPException", "UserInterrupt"})
"""Exception classes (and their subclasses, by name: ferrograph's and LangGraph's alike) whose
message LangGraph's server shows clients; others show only their class name."""


def error_body(exc: BaseException) -> dict[str, str]:
    """An exception as the `error` event and the run's `__error__` carry it: the class, and
    its message if the class is one LangGraph's server shows (the server log has the rest)."""
    shown = any(c.__name__ in _SHOWN_ERRORS for c in type(exc).__mro__)
    return {"error": type(exc).__name__,
            "message": str(exc) if shown else "An internal error occurred"}


def sse_frame(event: str, data: Any, event_id: str | None = None) -> bytes:
    """One server-sent event, CRLF-separated as sse-starlette frames LangGraph's events;
    `event_id` (resumable runs) as its `id:` line."""
    frame = b"event: " + event.encode() + b"\r\ndata: " + dumps(data) + b"\r\n"
    if event_id is not None:
        frame += b"id: " + event_id.encode() + b"\r\n"
    return frame + b"\r\n"


def event_id_key(event_id: str) -> tuple[int, int]:
    """An event id (`<epoch ms>-<sequence>`) as something to order by; `-1` (and anything
    unreadable) comes before every id."""
    ms, _, seq = event_id.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return -1, -1


HEARTBEAT = b": heartbeat\r\n\r\n"
"""The comment LangGraph's server sends every 5 s of silence (clients ignore it)."""


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime | None) -> str | None:
    """ISO-8601 with `+00:00`, as the server's timestamps."""
    return None if moment is None else moment.isoformat()


def uuid7() -> str:
    """A time-ordered UUID (version 7), the form of LangGraph's thread and run ids."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def parse_uuid(text: str) -> str | None:
    """`text` as a canonical UUID string, None if it is not one."""
    try:
        return str(uuid.UUID(text))
    except (ValueError, AttributeError, TypeError):
        return None
