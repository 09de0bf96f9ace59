"""How a failing run reports itself: LangGraph's notes on a task's exception and LangGraph's
errors for the engine's own failures (recursion limit, concurrent writes)."""

from __future__ import annotations

import asyncio
from typing import Any

from ferrograph.errors import (
    ErrorCode,
    GraphBubbleUp,
    GraphRecursionError,
    InvalidUpdateError,
    NodeCancelledError,
    create_error_message,
)


def note_task_error(e: BaseException, name: str, task_id: str) -> BaseException:
    """The error a failed task reports. As LangGraph does: the exception itself reaches the
    caller, with a note saying in which task (and, through subgraphs, which enclosing tasks)
    it happened. Signals for an enclosing graph, KeyboardInterrupt and StreamClosed pass as
    they are. An `asyncio.CancelledError` that the node raised itself (always so for a sync
    node; on the loop, the async driver tells) becomes LangGraph's `NodeCancelledError`, so
    that it fails the run rather than pass for a cancellation."""
    if isinstance(e, asyncio.CancelledError):
        error = NodeCancelledError(name)
        error.__cause__ = e
        return error
    if getattr(e, _SKIP_NOTE, False):  # noted by the error handler's task it failed in
        delattr(e, _SKIP_NOTE)
        return e
    _note(e, f"During task with name '{name}' and id '{task_id}'")
    return e


_SKIP_NOTE = "_ferrograph_skip_note"


def skip_next_note(e: BaseException) -> None:
    """`note_task_error` leaves `e` as it is once: it was noted in a task of its own (an
    error handler's) inside the task that reports it."""
    try:
        setattr(e, _SKIP_NOTE, True)
    except (AttributeError, TypeError):
        pass


_HANDLED_FAILURE = "_ferrograph_handled_failure"


def mark_handler_failure(e: BaseException, failure: Any) -> None:
    """Marks `e`, raised by an error handler, with the node's failure it was handling (a
    `NodeError`): a checkpointed run saves both, so a resume runs the handler again rather
    than the node (LangGraph's rule)."""
    try:
        setattr(e, _HANDLED_FAILURE, failure)
    except (AttributeError, TypeError):
        pass


def handled_failure(e: BaseException) -> Any:
    """The node failure (`NodeError`) an error handler was handling when it raised `e`."""
    return getattr(e, _HANDLED_FAILURE, None)


def note_preparing_error(e: BaseException, name: str, path: tuple[Any, ...]) -> None:
    """`note_task_error` for a failure before the task ran: reading its input (a node's
    input schema refusing the state), noted with the task's path as LangGraph does."""
    _note(e, f"Before task with name '{name}' and path '{path}'")


def reports_failure(e: BaseException) -> bool:
    """Whether `e` is a task's failure (noted, and streamed as the task's result), rather
    than a signal for an enclosing graph, KeyboardInterrupt or StreamClosed."""
    return isinstance(e, Exception) and not isinstance(e, GraphBubbleUp)


def _note(e: BaseException, note: str) -> None:
    if reports_failure(e) and hasattr(e, "add_note"):
        e.add_note(note)


def recursion_error(limit: int) -> GraphRecursionError:
    return GraphRecursionError(
        create_error_message(
            message=f"Recursion limit of {limit} reached without hitting a stop condition. "
            "You can increase the limit by setting the `recursion_limit` config key.",
            error_code=ErrorCode.GRAPH_RECURSION_LIMIT,
        )
    )


def concurrent_update_error(key: str) -> InvalidUpdateError:
    return InvalidUpdateError(
        create_error_message(
            message=f"At key '{key}': Can receive only one value per step. "
            "Use an Annotated key to handle multiple values.",
            error_code=ErrorCode.INVALID_CONCURRENT_GRAPH_UPDATE,
        )
    )

