"""Graphs of the several-instances tests (tests/test_server_scaleout.py): each node records
each call of itself, with its thread, as a line of the file `$SCALEOUT_CALLS`, so a test can
tell whether a node ran twice after its worker died."""

from __future__ import annotations

import operator
import os
from typing import Annotated, Any, TypedDict

from graphs import _model  # the directory is on sys.path (`dependencies`)
from langchain_core.runnables import RunnableConfig

from ferrograph.graph import START, StateGraph


class TallyState(TypedDict):
    count: int
    log: Annotated[list[str], operator.add]


def _record_call(node: str, config: RunnableConfig) -> None:
    with open(os.environ["SCALEOUT_CALLS"], "a") as calls:  # one short line: one write
        calls.write(f"{node} {config['configurable']['thread_id']}\n")


def first(state: TallyState, config: RunnableConfig) -> dict[str, Any]:
    _record_call("first", config)
    return {"count": state["count"] + 1, "log": ["first"]}


def side(state: TallyState, config: RunnableConfig) -> dict[str, Any]:
    _record_call("side", config)
    return {"log": ["side"]}


async def wait_for_model(state: TallyState, config: RunnableConfig) -> dict[str, Any]:
    """Its model call lasts as long as the test holds the local server's reply."""
    _record_call("wait_for_model", config)
    reply = await _model().ainvoke([{"role": "user", "content": "Write a slow reply"}])
    return {"log": [reply.content]}


tally = (
    StateGraph(TallyState)
    .add_node(first)
    .add_node(side)
    .add_node(wait_for_model)
    .add_edge(START, "first")
    .add_edge("first", "side")
    .add_edge("first", "wait_for_model")
    .compile()
)
"""`first`, then `side` and `wait_for_model` in one step: when the worker dies while the
model call waits, `side`'s writes are saved (pending writes) and it must not run again."""

counted = StateGraph(TallyState).add_node(first).add_edge(START, "first").compile()
