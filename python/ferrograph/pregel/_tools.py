"""Reporting the tool calls a task makes, for `tools` mode.

As with `messages`, one handler is made per task, and only for tasks whose node someone
subscribed to: a tool called in any other node reports to nobody. The items are
LangGraph's: `tool-started` (with the call's input), `tool-output-delta` (what the tool
streams through LangGraph's `ToolRuntime.emit_output_delta`), then `tool-finished` or
`tool-error`, keyed by the tool call's id (the tool run's id when the call has none).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, TypeVar, cast
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from ferrograph._core import ChannelClosed
from ferrograph.constants import TAG_NOSTREAM
from ferrograph.errors import GraphDrained, GraphInterrupt
from ferrograph.pregel._messages import (
    MODE_FORWARD,
    LoopProducer,
    StreamClosed,
    _StreamingCallbackHandler,
    graph_namespace,
)

try:  # the writer LangGraph's `ToolRuntime.emit_output_delta` reads
    from langgraph.pregel._tools import _tool_call_writer
except ImportError:  # LangGraph without `tools` mode: nothing reads it
    _tool_call_writer = ContextVar("ferrograph_tool_call_writer", default=None)

try:
    from langgraph.errors import GraphDrained as _LgDrained
    from langgraph.errors import GraphInterrupt as _LgInterrupt
    _PAUSED: tuple[type[BaseException], ...] = (GraphInterrupt, GraphDrained, _LgInterrupt,
                                                _LgDrained)
except ImportError:
    _PAUSED = (GraphInterrupt, GraphDrained)

if TYPE_CHECKING:
    from ferrograph._core import ChunkProducer

T = TypeVar("T")
MODE_TOOLS = 9


class TaskTools(BaseCallbackHandler, _StreamingCallbackHandler):
    """Streams the tool calls of one task (and of the graphs compiled by LangGraph it runs,
    under their own namespace when the task's subgraph items stream) into the channel."""

    run_inline = True  # called on the calling thread, in the tool's context: events in order
    raise_error = True  # a closed stream must reach the tool call

    def __init__(self, producer: ChunkProducer | LoopProducer, checkpoint_ns: str | None,
                 namespace: tuple[str, ...] = (), forwards: bool = False) -> None:
        self.producer = producer
        self.checkpoint_ns = checkpoint_ns
        """The task's own namespace (`langgraph_checkpoint_ns` of its tool calls)."""
        self.namespace = namespace
        """The namespace of the task's graph (its items' namespace)."""
        self.forwards = forwards
        self._calls: dict[UUID, tuple[tuple[str, ...] | None, str, Token[Any]]] = {}

    def tap_output_aiter(self, run_id: UUID, output: AsyncIterator[T]) -> AsyncIterator[T]:
        return output

    def tap_output_iter(self, run_id: UUID, output: Iterator[T]) -> Iterator[T]:
        return output

    def _namespace(self, metadata: dict[str, Any] | None, tags: list[str] | None
                   ) -> tuple[str, ...] | None | bool:
        """None: the call streams as the task's; a namespace: as a LangGraph graph's the
        task runs; False: not at all."""
        if not metadata or (tags and TAG_NOSTREAM in tags):
            return False
        ns_key = metadata.get("langgraph_checkpoint_ns")
        if not ns_key or ns_key == self.checkpoint_ns or self.checkpoint_ns is None:
            return None
        ns = graph_namespace(metadata)
        if ns == self.namespace:
            return None
        return ns if self.forwards else False

    def _push(self, ns: tuple[str, ...] | None, item: dict[str, Any]) -> None:
        try:
            if ns is None:
                self.producer.push(MODE_TOOLS, item)
            else:
                self.producer.push(MODE_FORWARD, (ns, "tools", item))
        except ChannelClosed:
            raise StreamClosed from None  # nobody reads this stream any more

    def on_tool_start(self, serialized: dict[str, Any], input_str: str, *, run_id: UUID,
                      parent_run_id: UUID | None = None, tags: list[str] | None = None,
                      metadata: dict[str, Any] | None = None,
                      inputs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        ns = self._namespace(metadata, tags)
        if ns is False:
            return
        ns = cast("tuple[str, ...] | None", ns)
        call_id = cast("str | None", kwargs.get("tool_call_id")) or str(run_id)
        name = (serialized or {}).get("name") or kwargs.get("name") or ""

        def writer(delta: Any) -> None:
            self._push(ns, {"event": "tool-output-delta", "tool_call_id": call_id,
                            "delta": delta})

        token = _tool_call_writer.set(writer)
        self._calls[run_id] = (ns, call_id, token)
        item: dict[str, Any] = {"event": "tool-started", "tool_call_id": call_id,
                                "tool_name": name}
        if inputs is not None:
            item["input"] = inputs
        self._push(ns, item)

    def _ended(self, run_id: UUID) -> tuple[tuple[str, ...] | None, str] | None:
        entry = self._calls.pop(run_id, None)
        if entry is None:
            return None
        try:
            _tool_call_writer.reset(entry[2])
        except ValueError:  # ended in another context than it started in
            pass
        return entry[0], entry[1]

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if (ended := self._ended(run_id)) is not None:
            self._push(ended[0], {"event": "tool-finished", "tool_call_id": ended[1],
                                  "output": output})

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        # An interrupted or drained tool is paused, not failed (as in LangGraph).
        if (ended := self._ended(run_id)) is not None and not isinstance(error, _PAUSED):
            self._push(ended[0], {"event": "tool-error", "tool_call_id": ended[1],
                                  "message": str(error)})

