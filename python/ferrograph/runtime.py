"""The run-scoped values a node can ask for with a `runtime` parameter."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from ferrograph.config import CONFIG_KEY_RUNTIME, get_config
from ferrograph.types import StreamWriter

ContextT = TypeVar("ContextT")


def _discard(_: Any) -> None:
    """The stream writer outside a streamed run: items go nowhere."""


@dataclass(kw_only=True, slots=True, frozen=True)
class Runtime(Generic[ContextT]):
    """What a node's `runtime: Runtime[Context]` parameter receives."""

    context: ContextT = None  # type: ignore[assignment]
    store: Any = None
    stream_writer: StreamWriter = field(default=_discard)
    previous: Any = None

    def override(self, **changes: Any) -> Runtime[ContextT]:
        return replace(self, **changes)


DEFAULT_RUNTIME: Runtime[Any] = Runtime()


def get_runtime(context_schema: type[ContextT] | None = None) -> Runtime[ContextT]:
    """The runtime of the node that is running now."""
    return get_config()["configurable"].get(CONFIG_KEY_RUNTIME, DEFAULT_RUNTIME)


__all__ = ["Runtime", "get_runtime"]
