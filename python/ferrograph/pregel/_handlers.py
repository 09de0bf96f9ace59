"""The callback handlers of a run's tasks: ferrograph's streaming handlers (`TaskMessages`,
`TaskTools`) beside the user's (`with_handler`), the call's own event stream left out of a
task nobody listens to (`without_streaming`), an enclosing run's handlers left out of a
graph's own run (`without_our_handlers`), and `astream_events`' handler called in place
from sync code (`InlineEvents`, `inline_events`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler

from ferrograph.pregel._messages import TaskMessages, _StreamingCallbackHandler
from ferrograph.pregel._tools import TaskTools

OURS = (TaskMessages, TaskTools)
"""ferrograph's own streaming handlers."""

try:
    from langchain_core.tracers.event_stream import _AstreamEventsCallbackHandler
except ImportError:  # another langchain-core: its handler is called the usual way
    _AstreamEventsCallbackHandler = None  # type: ignore[assignment,misc]

_EVENTS = ("on_llm_start", "on_chat_model_start", "on_llm_new_token", "on_llm_end",
           "on_llm_error", "on_chain_start", "on_chain_end", "on_chain_error", "on_tool_start",
           "on_tool_end", "on_tool_error", "on_text", "on_retry", "on_agent_action",
           "on_agent_finish", "on_retriever_start", "on_retriever_end", "on_retriever_error",
           "on_custom_event", "on_stream_event")


def _run_to_end(coroutine: Any) -> None:
    """Runs a coroutine that never suspends, in place."""
    try:
        coroutine.send(None)
    except StopIteration:
        return
    coroutine.close()
    raise RuntimeError("astream_events' handler suspended: it cannot be run in place")


class InlineEvents(BaseCallbackHandler, _StreamingCallbackHandler):
    """`astream_events`' handler, called from sync code (a node on a worker thread, its
    model's tokens). The handler's methods are coroutines that never suspend (each only
    queues its event for the consumer's loop), so they are run to their end in place;
    LangChain would make an event loop to run each on, per call: most of a token's cost."""

    run_inline = True

    def __init__(self, events: Any) -> None:
        self.events = events
        self.raise_error = events.raise_error

    def tap_output_iter(self, run_id: Any, output: Iterator[Any]) -> Iterator[Any]:
        return self.events.tap_output_iter(run_id, output)

    def tap_output_aiter(self, run_id: Any, output: AsyncIterator[Any]) -> AsyncIterator[Any]:
        return self.events.tap_output_aiter(run_id, output)


def _forwarder(name: str) -> Callable[..., None]:
    def forward(self: InlineEvents, *args: Any, **kwargs: Any) -> None:
        _run_to_end(getattr(self.events, name)(*args, **kwargs))

    forward.__name__ = name
    return forward


for _name in _EVENTS:
    setattr(InlineEvents, _name, _forwarder(_name))
for _name in ("ignore_llm", "ignore_chain", "ignore_agent", "ignore_retriever", "ignore_retry",
              "ignore_chat_model", "ignore_custom_event"):
    setattr(InlineEvents, _name, property(lambda self, n=_name: getattr(self.events, n)))


def inline_events(manager: Any) -> Any:
    """`manager` with `astream_events`' handler called in place (see `InlineEvents`)."""
    if _AstreamEventsCallbackHandler is None:
        return manager

    def swap(handlers: list[Any]) -> list[Any]:
        return [InlineEvents(h) if type(h) is _AstreamEventsCallbackHandler else h
                for h in handlers]

    if any(type(h) is _AstreamEventsCallbackHandler for h in manager.handlers):
        manager.handlers = swap(manager.handlers)
        manager.inheritable_handlers = swap(manager.inheritable_handlers)
    return manager


def with_handler(callbacks: Any, handler: TaskMessages | TaskTools) -> Any:
    """The user's callbacks (a list or a callback manager) plus `handler`, inherited by
    everything the node runs."""
    if callbacks is None or isinstance(callbacks, list):
        return [*(callbacks or ()), handler]
    manager = callbacks.copy()
    manager.add_handler(handler, inherit=True)
    return manager


def _call_stream(handler: Any) -> bool:
    """Whether `handler` is the stream of this very call (`astream_events`' handler, or
    `astream_log`'s), which `nodes=` narrows; the user's own handlers are left alone."""
    return type(handler).__name__ in ("_AstreamEventsCallbackHandler",
                                      "LogStreamCallbackHandler") \
        and type(handler).__module__.startswith("langchain_core.tracers.")


def without_streaming(callbacks: Any) -> Any:
    """`callbacks` without the call's own event stream (see `_call_stream`): for a task
    whose node the caller does not listen to (`nodes=`), so its models do not stream."""
    if callbacks is None:
        return None
    if isinstance(callbacks, list):
        return [h for h in callbacks if not _call_stream(h)]
    if not any(_call_stream(h) for h in callbacks.handlers):
        return callbacks
    manager = callbacks.copy()
    for h in list(manager.handlers):
        if _call_stream(h):
            manager.remove_handler(h)
    return manager


def without_our_handlers(callbacks: Any, keep_forwarding: bool = False) -> Any:
    """The user's callbacks, without streaming handlers of an enclosing ferrograph run.

    With `keep_forwarding` (a graph run from a task as a graph of its own, not as the task's
    subgraph: called with a config of its own), the handlers of a task whose subgraph items
    stream are kept, so the graph's model tokens and tool calls reach that stream under the
    graph's own (root) namespace, as LangGraph's handlers with `subgraphs` take them."""
    if callbacks is None:
        return None

    def dropped(h: Any) -> bool:
        return isinstance(h, OURS) and not (keep_forwarding and h.forwards)

    if isinstance(callbacks, list):
        kept = [h for h in callbacks if not dropped(h)]
        return kept or None
    handlers = getattr(callbacks, "handlers", None)
    if handlers is not None and any(dropped(h) for h in handlers):
        manager = callbacks.copy()
        for h in list(manager.handlers):
            if dropped(h):
                manager.remove_handler(h)
        return manager
    return callbacks
