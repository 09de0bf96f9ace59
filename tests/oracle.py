"""Helpers to build one graph with either implementation and compare what they do."""

from __future__ import annotations

import importlib
import re
from types import SimpleNamespace
from typing import Any

_TASK_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def load(name: str) -> SimpleNamespace:
    """The public names a graph is built from, taken from `langgraph` or `ferrograph`."""
    graph = importlib.import_module(f"{name}.graph")
    types = importlib.import_module(f"{name}.types")
    config = importlib.import_module(f"{name}.config")
    errors = importlib.import_module(f"{name}.errors")
    message = importlib.import_module(f"{name}.graph.message")
    return SimpleNamespace(
        name=name,
        StateGraph=graph.StateGraph,
        START=graph.START,
        END=graph.END,
        MessagesState=graph.MessagesState,
        add_messages=message.add_messages,
        Send=types.Send,
        Command=types.Command,
        RetryPolicy=types.RetryPolicy,
        get_stream_writer=config.get_stream_writer,
        get_config=config.get_config,
        errors=errors,
    )


LIBS = {name: load(name) for name in ("ferrograph", "langgraph")}


def normalise(value: Any) -> Any:
    """Replaces run-dependent values (task ids, timestamps) so two runs compare equal."""
    if isinstance(value, str):
        return _TASK_ID.sub("<id>", value)
    if isinstance(value, dict):
        return {k: ("<time>" if k == "timestamp" else normalise(v)) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(normalise(v) for v in value)
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def outcome(fn: Any) -> Any:
    """What calling `fn` gives: its normalised result, or the error's type name and text."""
    try:
        return ("ok", normalise(fn()))
    except Exception as e:  # noqa: BLE001 - the error is the outcome being compared
        return ("error", type(e).__name__, str(e))


def both(fn: Any) -> tuple[Any, Any]:
    """`outcome(fn(lib))` for ferrograph and for langgraph."""
    return (outcome(lambda: fn(LIBS["ferrograph"])), outcome(lambda: fn(LIBS["langgraph"])))
