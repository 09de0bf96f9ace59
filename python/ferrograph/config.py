"""Access to the running node's config and stream writer from anywhere inside the node."""

from __future__ import annotations

from typing import TYPE_CHECKING

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config

if TYPE_CHECKING:
    from ferrograph.types import StreamWriter

CONFIG_KEY_RUNTIME = "__pregel_runtime"
"""Where a task's `Runtime` lives in `config["configurable"]` (LangGraph's key)."""


def get_config() -> RunnableConfig:
    """The config of the node (or runnable inside it) that is running now."""
    if config := var_child_runnable_config.get():
        return config
    raise RuntimeError("Called get_config outside of a runnable context")


def get_stream_writer() -> StreamWriter:
    """The running node's writer for `custom` stream items."""
    return get_config()["configurable"][CONFIG_KEY_RUNTIME].stream_writer


__all__ = ["get_config", "get_stream_writer"]
