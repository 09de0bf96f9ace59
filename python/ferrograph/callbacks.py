"""Graph lifecycle callbacks (LangGraph's `langgraph.callbacks`): a handler in
`config["callbacks"]` that derives from `GraphCallbackHandler` is told when a run pauses at
an interrupt or breakpoint (`on_interrupt`) and when a run resumes a thread (`on_resume`).

Handlers are called as LangChain calls its own: one that raises is logged and the run goes
on, unless the handler sets `raise_error`. A handler deriving from LangGraph's own
`GraphCallbackHandler` is recognised too (by its class, without importing LangGraph), so a
program that keeps that import works unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeAlias
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager
from langchain_core.callbacks.manager import ahandle_event, handle_event

from ferrograph.types import Interrupt

GraphLifecycleStatus: TypeAlias = Literal[
    "input", "pending", "done", "interrupt_before", "interrupt_after", "out_of_steps"]
"""The run's status when a lifecycle event was captured."""


@dataclass(frozen=True)
class GraphInterruptEvent:
    """The run paused: at `interrupt()` in a node, or at a breakpoint (no interrupts)."""

    run_id: UUID | None
    status: GraphLifecycleStatus
    checkpoint_id: str
    checkpoint_ns: tuple[str, ...]
    interrupts: tuple[Interrupt, ...]


@dataclass(frozen=True)
class GraphResumeEvent:
    """The run resumed a thread from its checkpoint `checkpoint_id`."""

    run_id: UUID | None
    status: GraphLifecycleStatus
    checkpoint_id: str
    checkpoint_ns: tuple[str, ...]


GraphLifecycleEvent: TypeAlias = GraphInterruptEvent | GraphResumeEvent


class GraphCallbackHandler(BaseCallbackHandler):
    """Derive from this (and pass it in `config["callbacks"]`) to hear of a graph's pauses
    and resumes; other handlers are not told of them."""

    def on_interrupt(self, event: GraphInterruptEvent) -> Any:
        """The run paused for one or more interrupts (or at a breakpoint)."""

    def on_resume(self, event: GraphResumeEvent) -> Any:
        """The run resumed from a saved checkpoint."""


def is_graph_handler(handler: Any) -> bool:
    """Ours, or LangGraph's `GraphCallbackHandler` (known by its class's name and module)."""
    if isinstance(handler, GraphCallbackHandler):
        return True
    return any(c.__name__ == "GraphCallbackHandler" and c.__module__ == "langgraph.callbacks"
               for c in type(handler).__mro__)


def graph_handlers(callbacks: Any) -> list[BaseCallbackHandler]:
    """The lifecycle handlers among a config's callbacks (a list, a manager, a handler)."""
    if callbacks is None:
        return []
    if isinstance(callbacks, BaseCallbackManager):
        found = list(callbacks.handlers)
    elif isinstance(callbacks, BaseCallbackHandler):
        found = [callbacks]
    elif isinstance(callbacks, Sequence) and not isinstance(callbacks, (str, bytes)):
        found = list(callbacks)
    else:
        raise TypeError("callbacks must be a handler, sequence, or manager")
    return [h for h in found if is_graph_handler(h)]


class LifecycleReporter:
    """Tells a run's lifecycle handlers of its pauses and resumes (the run's id in each
    event: that of its chain run, when it has one)."""

    __slots__ = ("handlers", "run_id")

    def __init__(self, handlers: list[BaseCallbackHandler], run_id: UUID | None) -> None:
        self.handlers = handlers
        self.run_id = run_id

    def report(self, event: GraphLifecycleEvent) -> None:
        event = replace(event, run_id=self.run_id)
        kind = "on_resume" if isinstance(event, GraphResumeEvent) else "on_interrupt"
        handle_event(self.handlers, kind, None, event)

    async def areport(self, event: GraphLifecycleEvent) -> None:
        event = replace(event, run_id=self.run_id)
        kind = "on_resume" if isinstance(event, GraphResumeEvent) else "on_interrupt"
        await ahandle_event(self.handlers, kind, None, event)


__all__ = [
    "GraphCallbackHandler",
    "GraphInterruptEvent",
    "GraphLifecycleEvent",
    "GraphLifecycleStatus",
    "GraphResumeEvent",
]
