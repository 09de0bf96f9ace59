"""Capturing chat-model tokens and node output messages for `messages` mode.

One handler is made per task, and only for tasks whose node someone subscribed to: a model
in any other node never sees it, so it takes its non-streaming path and its tokens never
become Python objects. The handler derives from langchain-core's streaming handler marker,
which is what makes a chat model's plain `invoke` stream.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import fields, is_dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID, uuid4

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, LLMResult
from pydantic import BaseModel

from ferrograph._core import ChannelClosed
from ferrograph.constants import TAG_HIDDEN, TAG_NOSTREAM

try:
    from langchain_core.tracers._streaming import _StreamingCallbackHandler
except ImportError:  # older langchain-core: chat models then stream only when asked to
    _StreamingCallbackHandler = object  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from ferrograph._core import ChunkProducer

T = TypeVar("T")
MODE_MESSAGES = 2
MODE_FORWARD = 8
"""Internal: an item from a subgraph (payload: `(namespace, mode, item)`)."""


class StreamClosed(BaseException):  # noqa: N818 - a signal, like GeneratorExit
    """Ends a model call whose stream nobody reads any more.

    Not an `Exception`, so callback managers do not log it as a handler failure and model
    clients do not retry it: it unwinds the call, as `GeneratorExit` unwinds a generator."""


def _top_level_values(obj: Any) -> Sequence[Any]:
    if isinstance(obj, dict):
        return list(obj.values())
    if isinstance(obj, BaseModel):
        return [getattr(obj, k) for k in type(obj).model_fields]
    if is_dataclass(obj) and not isinstance(obj, type):
        return [getattr(obj, f.name) for f in fields(obj)]
    return ()


def iter_messages(obj: Any) -> list[BaseMessage]:
    """Messages held by a node's input or output: top-level values and lists of them."""
    if isinstance(obj, BaseMessage):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [m for m in obj if isinstance(m, BaseMessage)]
    found = []
    for value in _top_level_values(obj):
        if isinstance(value, BaseMessage):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found.extend(m for m in value if isinstance(m, BaseMessage))
    return found


def user_tags(tags: list[str] | None) -> list[str] | None:
    kept = [t for t in tags or () if not t.startswith("seq:step")]
    return kept or None


class LoopProducer:
    """A task's producer when the task runs on the consumer's own event loop (`astream`).

    A blocking push there would stop the very loop that drains the channel, so `push` never
    waits: when the channel is full the chunk joins this task's backlog, and `flush` awaits
    room for it. Once a backlog exists every later chunk of the task joins it too, so the
    task's chunks keep their order."""

    __slots__ = ("producer", "backlog", "loop", "wait_for_room")

    def __init__(self, producer: ChunkProducer, loop: asyncio.AbstractEventLoop,
                 wait_for_room: Callable[[], Awaitable[None]]) -> None:
        self.producer = producer
        self.loop = loop
        self.wait_for_room = wait_for_room
        self.backlog: deque[tuple[int, Any]] = deque()

    def push(self, mode: int, payload: Any) -> None:
        """Queues the chunk, or backlogs it when the channel is full (never waits)."""
        if self.backlog or self.producer.try_push(mode, payload) is None:
            self.backlog.append((mode, payload))

    async def flush(self) -> None:
        """Moves the backlog into the channel, awaiting room as the consumer drains.

        Called from another loop (a sync model call inside an async node has LangChain run
        our coroutine on a helper thread while the consumer's loop is blocked), it leaves
        the backlog for the task's own flush when it ends."""
        if asyncio.get_running_loop() is not self.loop:
            return
        backlog = self.backlog
        try:
            while backlog:
                mode, payload = backlog[0]
                if self.producer.try_push(mode, payload) is None:
                    await self.wait_for_room()
                else:
                    backlog.popleft()
        except ChannelClosed:
            raise StreamClosed from None


def graph_namespace(metadata: Mapping[str, Any]) -> tuple[str, ...]:
    """The namespace of the graph a task runs in, from the task's run metadata (LangGraph's
    rule: the task's own segment dropped, and one more per enclosing functional-API call)."""
    ns = tuple(str(metadata["langgraph_checkpoint_ns"]).split("|"))
    path = metadata.get("langgraph_path", ())
    drop = 1
    while len(path) == 4 and path[0] == "__pregel_push" and path[-1] is True:
        drop += 1
        path = path[1]
    return ns[:-drop]


class TaskMessages(BaseCallbackHandler, _StreamingCallbackHandler):
    """Streams one task's chat-model tokens and output messages into the chunk channel.

    A ferrograph graph the task runs streams through handlers of its own (this one is taken
    out of its callbacks), but a graph compiled by LangGraph inherits this handler: its
    models' calls and its nodes' runs reach it with their own namespace in their metadata.
    Those are streamed as LangGraph's handler streams them: under that namespace when the
    task's subgraph items stream (`forwards`), not at all otherwise."""

    run_inline = True  # called on the producing thread: no extra hop per token
    raise_error = True  # a failing push must reach the model call, not be logged and ignored
    ignore_llm = False  # asked per token: a class attribute, not the base class's property

    def __init__(self, producer: ChunkProducer | LoopProducer, seen: set[str],
                 tags: frozenset[str] | None = None, checkpoint_ns: str | None = None,
                 namespace: tuple[str, ...] = (), forwards: bool = False) -> None:
        self.producer = producer
        self.tags = tags
        """Only model calls carrying one of these tags stream (None: every call)."""
        self.seen = seen
        """Ids of messages not to emit again: the node's input and what was streamed."""
        self.checkpoint_ns = checkpoint_ns
        """The task's own namespace (`langgraph_checkpoint_ns` of its model calls)."""
        self.namespace = namespace
        """The namespace of the task's graph (its items' namespace)."""
        self.forwards = forwards
        """Whether items of graphs the task runs stream (`stream(subgraphs=True)`)."""
        self._runs: dict[UUID, tuple[tuple[str, ...] | None, dict[str, Any]]] = {}
        """Per model call: its namespace when it is not the task's graph's, its metadata."""
        self._nodes: dict[UUID, tuple[tuple[str, ...], dict[str, Any]]] = {}
        """Node runs of a LangGraph graph the task runs, whose output messages stream."""
        # The run the last token came from, and its entry: a model streams a run's tokens
        # back to back, and a UUID's hash is computed in Python, per lookup. One attribute,
        # read and replaced whole: a LangGraph graph's parallel nodes call this handler from
        # several threads at once.
        self._last: tuple[UUID | None, Any] = (None, None)

    def tap_output_aiter(self, run_id: UUID, output: AsyncIterator[T]) -> AsyncIterator[T]:
        return output  # a streaming handler's hook: the output passes through untouched

    def tap_output_iter(self, run_id: UUID, output: Iterator[T]) -> Iterator[T]:
        return output

    def _foreign(self, metadata: dict[str, Any]) -> tuple[str, ...] | None | bool:
        """For a call or run with `metadata`: None when it is the task's own, the namespace
        it streams under when it is a LangGraph graph's that streams, False when it is one
        that does not stream."""
        ns_key = metadata.get("langgraph_checkpoint_ns")
        if ns_key is None or ns_key == self.checkpoint_ns or self.checkpoint_ns is None:
            return None
        ns = graph_namespace(metadata)
        if ns == self.namespace:
            return None
        return ns if self.forwards else False

    def emit(self, message: BaseMessage, metadata: dict[str, Any], *, dedupe: bool,
             ns: tuple[str, ...] | None = None) -> None:
        if dedupe and message.id in self.seen:
            return
        if message.id is None:
            message.id = str(uuid4())
        self.seen.add(message.id)
        self._push(ns, (message, metadata))

    def _push(self, ns: tuple[str, ...] | None, item: tuple[BaseMessage, dict[str, Any]]) -> None:
        try:
            if ns is None:
                self.producer.push(MODE_MESSAGES, item)
            else:
                self.producer.push(MODE_FORWARD, (ns, "messages", item))
        except ChannelClosed:
            raise StreamClosed from None  # nobody reads this stream any more

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if metadata is None or (tags and TAG_NOSTREAM in tags):
            return
        if (ns := self._foreign(metadata)) is False:
            return
        if self.tags is not None and self.tags.isdisjoint(tags or ()):
            return
        if (kept := user_tags(tags)) is not None:
            metadata["tags"] = kept
        self._runs[run_id] = (ns, metadata)  # type: ignore[assignment]
        self._last = (None, None)

    def _token_item(self, chunk: Any, run_id: UUID
                    ) -> tuple[tuple[str, ...] | None, tuple[BaseMessage, dict[str, Any]]] | None:
        """The namespace (None: the task's graph's) and `messages` item of a streamed token,
        or None when its call does not stream."""
        last_run, entry = self._last
        if run_id is not last_run:
            entry = self._runs.get(run_id)
            self._last = (run_id, entry)
        if entry is None or not isinstance(chunk, ChatGenerationChunk):
            return None
        message = chunk.message
        if message.id is None:
            message.id = str(uuid4())
        self.seen.add(message.id)  # so the call's final message is not emitted again
        return entry[0], (message, entry[1])

    def on_llm_new_token(
        self,
        token: str,
        *,
        chunk: ChatGenerationChunk | None = None,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        if (token_item := self._token_item(chunk, run_id)) is not None:
            self._push(*token_item)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        self._last = (None, None)
        entry = self._runs.pop(run_id, None)
        if entry is not None and response.generations and response.generations[0]:
            generation = response.generations[0][0]
            if isinstance(generation, ChatGeneration):
                self.emit(generation.message, entry[1], dedupe=True, ns=entry[0])

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._last = (None, None)
        self._runs.pop(run_id, None)

    def on_chain_start(
        self,
        serialized: dict[str, Any],
        inputs: Any,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """A node run of a LangGraph graph the task runs: its output messages stream at its
        end (the task's own output is `emit_output`'s)."""
        if not metadata or kwargs.get("name") != metadata.get("langgraph_node") \
                or (tags and TAG_HIDDEN in tags) or self.tags is not None:
            return
        ns = self._foreign(metadata)
        if ns is None or ns is False:  # the task's own run, or one not streamed
            return
        self._nodes[run_id] = (ns, metadata)  # type: ignore[assignment]
        self.seen.update(m.id for m in iter_messages(inputs) if m.id is not None)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if self._nodes and (entry := self._nodes.pop(run_id, None)) is not None:
            ns, metadata = entry
            for update in _updates(outputs):
                for message in iter_messages(update):
                    self.emit(message, metadata, dedupe=True, ns=ns)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        if self._nodes:
            self._nodes.pop(run_id, None)

    def push(self, message: BaseMessage, metadata: dict[str, Any]) -> None:
        """A message the node pushed (`push_message`): streamed now, even if seen before,
        under the namespace of the task's graph (or, from a graph compiled by LangGraph that
        the task runs, under that graph's when its items stream, as LangGraph's does)."""
        ns = self._foreign(metadata)
        if ns is not False:
            self.emit(message, metadata, dedupe=False, ns=ns)  # type: ignore[arg-type]

    def emit_output(self, output: Any, metadata: dict[str, Any]) -> None:
        """Emits the messages a node returned that were neither its input nor streamed.

        With a `tags=` filter only tagged model calls stream, so node outputs are left out."""
        if self.tags is not None:
            return
        for update in _updates(output):
            for message in iter_messages(update):
                self.emit(message, metadata, dedupe=True)


def _updates(output: Any) -> list[Any]:
    """The updates a node's output stands for (a `Command`'s update, each of a list's)."""
    from ferrograph.types import Command

    updates = output if isinstance(output, (list, tuple)) else [output]
    return [u.update if isinstance(u, Command) else u for u in updates]


class AsyncTaskMessages(TaskMessages):
    """`TaskMessages` for a task on the consumer's event loop: an async model's token
    callback awaits room in the channel, so a slow consumer slows the model down instead
    of blocking the loop (or growing memory)."""

    producer: LoopProducer

    async def on_llm_new_token(  # type: ignore[override]
        self,
        token: str,
        *,
        chunk: ChatGenerationChunk | None = None,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        if (token_item := self._token_item(chunk, run_id)) is not None:
            self._push(*token_item)
            if self.producer.backlog:
                await self.producer.flush()
