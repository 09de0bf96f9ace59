"""The errors a graph raises, under LangGraph's names and with LangGraph's messages."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

__all__ = (
    "EmptyChannelError",
    "ErrorCode",
    "GraphBubbleUp",
    "GraphDrained",
    "GraphInterrupt",
    "GraphRecursionError",
    "InvalidUpdateError",
    "EmptyInputError",
    "NodeCancelledError",
    "NodeError",
    "NodeInterrupt",
    "NodeTimeoutError",
    "ParentCommand",
    "TaskNotFound",
    "UnknownInterruptError",
    "create_error_message",
    "is_invalid_resume",
)

TROUBLESHOOTING_BASE = "https://docs.langchain.com/oss/python/langgraph/errors/"


class ErrorCode(Enum):
    """Codes naming LangGraph's troubleshooting pages (kept identical: users follow them)."""

    GRAPH_RECURSION_LIMIT = "GRAPH_RECURSION_LIMIT"
    INVALID_CONCURRENT_GRAPH_UPDATE = "INVALID_CONCURRENT_GRAPH_UPDATE"
    INVALID_GRAPH_NODE_RETURN_VALUE = "INVALID_GRAPH_NODE_RETURN_VALUE"
    MULTIPLE_SUBGRAPHS = "MULTIPLE_SUBGRAPHS"
    INVALID_CHAT_HISTORY = "INVALID_CHAT_HISTORY"


def create_error_message(*, message: str, error_code: ErrorCode) -> str:
    """`message` followed by the troubleshooting link for `error_code`."""
    return f"{message}\nFor troubleshooting, visit: {TROUBLESHOOTING_BASE}{error_code.value}"


class EmptyChannelError(Exception):
    """A channel was read before anything was written to it."""


class GraphBubbleUp(Exception):
    """Base of the signals that travel up through nodes to the run (not failures)."""


class GraphDrained(GraphBubbleUp):
    """The run stopped between steps because a drain was requested
    (`RunControl.request_drain`)."""

    def __init__(self, reason: str = "shutdown") -> None:
        self.reason = reason
        super().__init__(f"Graph drained: {reason}")


class GraphRecursionError(RecursionError):
    """The run reached `recursion_limit` supersteps without finishing."""


class InvalidUpdateError(Exception):
    """A node or input wrote something the state cannot take."""


class GraphInterrupt(GraphBubbleUp):
    """The run paused at an interrupt."""

    def __init__(self, interrupts: Sequence[Any] = ()) -> None:
        super().__init__(interrupts)


def overwritten_twice() -> InvalidUpdateError:
    """Two `Overwrite` values for one key in one step (LangGraph's error)."""
    return InvalidUpdateError(create_error_message(
        message="Can receive only one Overwrite value per super-step.",
        error_code=ErrorCode.INVALID_CONCURRENT_GRAPH_UPDATE))


def is_interrupt(error: BaseException) -> bool:
    """Whether `error` is a pause at an interrupt or a breakpoint: ours, or LangGraph's (a
    graph compiled by LangGraph that a task ran), recognised by class name."""
    return isinstance(error, GraphInterrupt) or any(
        cls.__name__ == "GraphInterrupt" for cls in type(error).__mro__)


class NodeInterrupt(GraphInterrupt):
    """Deprecated in LangGraph: raised by a node to pause the run."""

    def __init__(self, value: Any, id: str | None = None) -> None:
        warnings.warn(
            "NodeInterrupt is deprecated. Please use `langgraph.types.interrupt` instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__([{"value": value, "id": id}])


class ParentCommand(GraphBubbleUp):
    """Carries a `Command(graph=Command.PARENT)` from a subgraph node to its parent."""

    args: tuple[Any]

    def __init__(self, command: Any) -> None:
        super().__init__(command)


class EmptyInputError(Exception):
    """The graph was given an empty input."""


class TaskNotFound(Exception):
    """A task referred to by id does not exist."""


class UnknownInterruptError(Exception):
    """A resume value does not match the pending interrupts."""

    def __init__(
        self,
        message: str,
        *,
        reason: Literal["not_pending", "empty_map", "ambiguous"],
        interrupt_ids: Sequence[str] = (),
        pending_ids: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.interrupt_ids = tuple(interrupt_ids)
        self.pending_ids = tuple(pending_ids)


@dataclass(frozen=True, slots=True)
class NodeError:
    """What a node's error handler is told about the failure."""

    node: str
    error: BaseException


class NodeCancelledError(Exception):
    """A node's own code raised `asyncio.CancelledError`."""

    def __init__(self, node: str, message: str | None = None) -> None:
        super().__init__(message or f"Node {node!r} raised asyncio.CancelledError")
        self.node = node


class NodeTimeoutError(Exception):
    """A node ran longer than its timeout policy allows."""

    def __init__(
        self,
        node: str,
        elapsed: float,
        *,
        kind: Literal["idle", "run"],
        idle_timeout: float | None = None,
        run_timeout: float | None = None,
    ) -> None:
        if kind == "idle":
            if idle_timeout is None:
                raise ValueError("idle_timeout is required when kind='idle'")
            message = (
                f"Node '{node}' exceeded its idle timeout of {idle_timeout:.3f}s without "
                f"making progress (elapsed: {elapsed:.3f}s)."
            )
            self.timeout = idle_timeout
        else:
            if run_timeout is None:
                raise ValueError("run_timeout is required when kind='run'")
            message = (
                f"Node '{node}' exceeded its run timeout of {run_timeout:.3f}s "
                f"(elapsed: {elapsed:.3f}s)."
            )
            self.timeout = run_timeout
        super().__init__(message)
        self.node = node
        self.elapsed = elapsed
        self.kind = kind
        self.run_timeout = run_timeout
        self.idle_timeout = idle_timeout


_INVALID_RESUME = "_langgraph_invalid_resume"
"""The mark of a refused resume value: LangGraph's attribute, so that its own code (a
`ToolNode` in one of our graphs) tells our invalid resumes apart too."""


def is_invalid_resume(error: BaseException) -> bool:
    """Whether `error` came from a resume value the graph refused."""
    return bool(getattr(error, _INVALID_RESUME, False))
