"""The message-list reducer and the ready-made chat state."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any, Literal, TypedDict, Union

from langchain_core.messages import (
    AnyMessage,
    BaseMessage,
    BaseMessageChunk,
    MessageLikeRepresentation,
    RemoveMessage,
    convert_to_messages,
    convert_to_openai_messages,
    message_chunk_to_message,
)

from ferrograph.graph.state import StateGraph

Messages = Union[list[MessageLikeRepresentation], MessageLikeRepresentation]  # noqa: UP007

REMOVE_ALL_MESSAGES = "__remove_all__"
"""`RemoveMessage(id=REMOVE_ALL_MESSAGES)` clears the list; messages after it are kept."""


def _as_messages(items: list[Any]) -> list[BaseMessage]:
    # A long history is all plain messages: skip the conversions when the types say so.
    if all(issubclass(t, BaseMessage) and not issubclass(t, BaseMessageChunk)
           for t in set(map(type, items))):
        return items
    return [message_chunk_to_message(m) for m in convert_to_messages(items)]


def _merge(left: Messages, right: Messages,
           format: Literal["langchain-openai"] | None = None) -> list[BaseMessage]:
    left_list = _as_messages(left if isinstance(left, list) else [left])
    right_list = _as_messages(right if isinstance(right, list) else [right])
    for message in left_list:
        if message.id is None:
            message.id = str(uuid.uuid4())
    clear_through = None
    for index, message in enumerate(right_list):
        if message.id is None:
            message.id = str(uuid.uuid4())
        if isinstance(message, RemoveMessage) and message.id == REMOVE_ALL_MESSAGES:
            clear_through = index
    if clear_through is not None:
        return right_list[clear_through + 1:]

    merged = list(left_list)
    position = {m.id: i for i, m in enumerate(merged)}
    removed: set[str] = set()
    for message in right_list:
        index = position.get(message.id)
        if index is None:
            if isinstance(message, RemoveMessage):
                raise ValueError(
                    "Attempting to delete a message with an ID that doesn't exist "
                    f"('{message.id}')"
                )
            position[message.id] = len(merged)
            merged.append(message)
        elif isinstance(message, RemoveMessage):
            removed.add(message.id)
        else:  # same id: the new message replaces the old one in place
            removed.discard(message.id)
            merged[index] = message
    if removed:
        merged = [m for m in merged if m.id not in removed]

    if format == "langchain-openai":
        merged = convert_to_messages(convert_to_openai_messages(merged))
    elif format:
        raise ValueError(f"Unrecognized {format=}. Expected one of 'langchain-openai', None.")
    return merged


def add_messages(
    left: Messages | None = None,
    right: Messages | None = None,
    **kwargs: Any,
) -> Messages | Callable[[Messages, Messages], Messages]:
    """Appends `right` to `left`, replacing messages with the same id and applying
    `RemoveMessage`s. Called with neither list (e.g. `add_messages(format=...)`), returns
    the reducer configured with those options."""
    if left is not None and right is not None:
        return _merge(left, right, **kwargs)
    if left is not None or right is not None:
        raise ValueError(
            "Must specify non-null arguments for both 'left' and 'right'. Only "
            f"received: '{'left' if left else 'right'}'."
        )
    return partial(_merge, **kwargs)


class MessagesState(TypedDict):
    """A state holding one `messages` list merged with `add_messages`."""

    messages: Annotated[list[AnyMessage], add_messages]


def push_message(message: MessageLikeRepresentation | BaseMessageChunk, *,
                 state_key: str | None = "messages") -> AnyMessage:
    """Streams `message` in `messages` mode from the running node (as LangGraph's
    `push_message`: under the namespace of the node's graph, to every stream subscribed to
    the node) and, unless `state_key` is None, writes it to that state key as part of the
    node's update (before what the node returns). The message needs an id."""
    from langchain_core.callbacks import BaseCallbackManager

    from ferrograph.config import get_config
    from ferrograph.pregel._messages import TaskMessages
    from ferrograph.pregel._write import push_write

    config = get_config()
    message = next(iter(convert_to_messages([message])))
    if message.id is None:
        raise ValueError("Message ID is required")
    callbacks = config.get("callbacks")
    if isinstance(callbacks, BaseCallbackManager):
        handlers = callbacks.handlers
    else:
        handlers = callbacks if isinstance(callbacks, list) else ()
    metadata = config.get("metadata") or {}
    for handler in handlers:
        if isinstance(handler, TaskMessages):
            handler.push(message, metadata)
    if state_key:
        push_write(config, state_key, message)
    return message


__all__ = ["REMOVE_ALL_MESSAGES", "Messages", "MessagesState", "add_messages", "push_message"]



def _deprecation_category() -> type[Warning]:
    """LangGraph's own warning class when it is installed (so filters on it apply), else a
    plain `DeprecationWarning`."""
    try:
        from langgraph.warnings import LangGraphDeprecatedSinceV10
    except ImportError:
        return DeprecationWarning
    return LangGraphDeprecatedSinceV10



class MessageGraph(StateGraph):  # type: ignore[type-arg]
    """LangGraph's deprecated `MessageGraph`: a `StateGraph` whose whole state is one list
    of messages, merged with `add_messages` (its root key)."""

    def __init__(self) -> None:
        warnings.warn(
            "MessageGraph is deprecated in LangGraph v1.0.0, to be removed in v2.0.0. "
            "Please use StateGraph with a `messages` key instead.",
            category=_deprecation_category(),
            stacklevel=2,
        )
        super().__init__(Annotated[list[AnyMessage], add_messages])
