"""A checkpoint built from what changed since the last (`Run.checkpoint_changes`, the dicts
kept from step to step) equals one built from scratch (`Run.checkpoint`), through sends,
barriers, deferred nodes, interrupts and resumes, updates, forks and each durability; and
the saver gets dicts later checkpoints do not change."""

from __future__ import annotations

import operator
import uuid
from typing import Annotated, Any, TypedDict

import pytest

from ferrograph.checkpoint.memory import InMemorySaver
from ferrograph.graph import END, START, StateGraph
from ferrograph.pregel import _checkpoint
from ferrograph.types import Command, Send, interrupt


class State(TypedDict, total=False):
    log: Annotated[list, operator.add]
    n: int


@pytest.fixture(autouse=True)
def check_each_checkpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_checkpoint, "_CHECK_CHECKPOINTS", True)


def graph(saver: Any) -> Any:
    def split(state: State) -> list[Send]:
        return [Send("work", {"log": [f"w{i}"]}) for i in range(3)]

    def ask(state: State) -> dict[str, Any]:
        return {"log": [f"ask:{interrupt('ok?')}"]}

    g = StateGraph(State)
    g.add_node("a", lambda s: {"log": ["a"], "n": 1})
    g.add_node("b", lambda s: {"log": ["b"]})
    g.add_node("c", lambda s: {"log": ["c"]})
    g.add_node("work", lambda s: {"log": s["log"]})
    g.add_node("late", lambda s: {"log": ["late"]}, defer=True)
    g.add_node("ask", ask)
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    g.add_edge(["a", "b"], "c")
    g.add_conditional_edges("c", split, ["work"])
    g.add_edge("work", "late")
    g.add_edge("late", "ask")
    g.add_edge("ask", END)
    return g.compile(checkpointer=saver)


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_checkpoints_from_changes_equal_full_ones(durability: str) -> None:
    saver = InMemorySaver()
    app = graph(saver)
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    app.invoke({"log": []}, config, durability=durability)
    assert app.get_state(config).next == ("ask",)
    out = app.invoke(Command(resume="yes"), config, durability=durability)
    assert out["log"][-1] == "ask:yes" and "late" in out["log"]
    app.update_state(config, {"n": 5}, as_node="ask")
    history = list(app.get_state_history(config))
    # Replaying from an earlier checkpoint forks the thread.
    assert len(history) > 2
    app.invoke(None, history[-1].config, durability=durability)
    app.invoke({"log": ["again"]}, config, durability=durability)
    assert app.get_state(config).next == ("ask",)


def test_the_saver_gets_dicts_later_steps_do_not_change() -> None:
    kept: list[dict[str, Any]] = []

    class Keeping(InMemorySaver):
        def put(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
            kept.append((checkpoint, repr(checkpoint)))
            return super().put(config, checkpoint, metadata, new_versions)

    app = graph(Keeping())
    app.invoke({"log": []}, {"configurable": {"thread_id": "t"}}, durability="sync")
    assert len(kept) > 3
    for checkpoint, shown in kept:
        assert repr(checkpoint) == shown
