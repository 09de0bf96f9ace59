"""Access to the running node's config and stream writer from anywhere inside the node."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config

if TYPE_CHECKING:
    from ferrograph.types import StreamWriter

CONFIG_KEY_RUNTIME = "__pregel_runtime"
"""Where a task's `Runtime` lives in `config["configurable"]` (LangGraph's key, with the same
meaning: a graph compiled by LangGraph that a task runs reads its context and store there)."""
CONFIG_KEY_TASK_ID = "__pregel_task_id"
"""The running task's id (LangGraph's key: a graph run with it present runs as a task's)."""
CONFIG_KEY_STREAM = "__pregel_stream"
"""LangGraph's key for the stream a nested LangGraph run also sends its items to: set for a
task whose graph's items stream to the caller (`stream(subgraphs=True)`), never otherwise."""
CONFIG_KEY_NODE_ERROR = "__pregel_node_error"
"""In an error handler's config: the `NodeError` it handles (LangGraph's key)."""
CONFIG_KEY_NODE_FINISHED = "__pregel_node_finished"
"""LangGraph's key for a callable told each node's name as the node finishes (the runs of
the graphs its nodes run included)."""
CONFIG_KEY_TIMEOUT = "__ferrograph_timeout"
"""In a pushed task's config: the `TimeoutPolicy` of its `Send` (replacing its node's)."""
CONFIG_KEY_RUN_ID = "__ferrograph_run_id"
"""The caller's `run_id` (its run's chain run takes it; a task's config does not, or the
first model the task calls would take it too), for the task's `execution_info`."""
CONFIG_KEY_RUN = "__ferrograph_run"
"""The ferrograph run (`GraphRun`) a task belongs to, when it streams (else None): a
ferrograph graph the task runs streams into it."""
CONFIG_KEY_TASK = "__ferrograph_task"
"""The ferrograph task itself (None for tasks of the Rust `invoke` driver)."""


def get_config() -> RunnableConfig:
    """The config of the node (or runnable inside it) that is running now."""
    if config := var_child_runnable_config.get():
        return config
    raise RuntimeError("Called get_config outside of a runnable context")


def get_stream_writer() -> StreamWriter:
    """The running node's writer for `custom` stream items."""
    return get_config()["configurable"][CONFIG_KEY_RUNTIME].stream_writer


def get_store() -> Any:
    """The store of the running graph (`compile(store=...)`; a subgraph's is its caller's),
    None without one, as LangGraph's `get_store`."""
    return get_config()["configurable"][CONFIG_KEY_RUNTIME].store


__all__ = ["get_config", "get_store", "get_stream_writer"]
