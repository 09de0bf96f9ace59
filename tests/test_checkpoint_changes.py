"""A checkpoint built from what changed since the last (`Run.checkpoint_into`, the dicts
kept from step to step) equals one built from scratch (`Run.checkpoint`), through sends,
barriers, deferred nodes, untracked keys, interrupts and resumes, updates, forks and each
durability; the saver gets dicts later checkpoints do not change; checkpoint ids and times
are made as LangGraph makes them."""

from __future__ import annotations

import operator
import uuid
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.channels import UntrackedValue

from ferrograph.checkpoint.memory import InMemorySaver
from ferrograph.graph import END, START, StateGraph
from ferrograph.pregel import _checkpoint
from ferrograph.types import Command, Send, interrupt
from tests.parity import stored_thread


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
    # The same with `put` replaced on the saver itself rather than on its class.
    kept.clear()
    saver = InMemorySaver()
    stock_put = saver.put

    def keeping_put(config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        kept.append((checkpoint, repr(checkpoint)))
        return stock_put(config, checkpoint, metadata, new_versions)

    saver.put = keeping_put  # type: ignore[method-assign]
    graph(saver).invoke({"log": []}, {"configurable": {"thread_id": "t"}}, durability="sync")
    assert len(kept) > 3
    for checkpoint, shown in kept:
        assert repr(checkpoint) == shown


# `durability="exit"` saves one checkpoint, at the run's end: that of the last step applied,
# whether the run finishes, pauses, fails or stops at a breakpoint.

class Flow(TypedDict, total=False):
    log: Annotated[list, operator.add]
    last: str


def exit_graph(lib: str, saver: Any, end: str) -> Any:
    """s0 -> s1 -> s2 -> s3, where s3 ends the run as `end` says."""
    mod = __import__(f"{lib}.graph", fromlist=["StateGraph"])
    types = __import__(f"{lib}.types", fromlist=["interrupt"])

    def step(i: int) -> Any:
        def node(state: Flow) -> Any:
            if i == 3 and end == "pause":
                return {"log": [f"s3:{types.interrupt('ok?')}"]}
            if i == 3 and end == "fail":
                raise ValueError("s3 failed")
            return {"log": [f"s{i}"], "last": f"s{i}"}
        return node

    g = mod.StateGraph(Flow)
    for i in range(4):
        g.add_node(f"s{i}", step(i))
        g.add_edge(mod.START if i == 0 else f"s{i - 1}", f"s{i}")
    if end == "clash":  # two writers of a plain key: the step's writes fail to apply
        g.add_node("twin", lambda s: {"last": "twin"})
        g.add_edge("s2", "twin")
    compiled = g.compile(checkpointer=saver,
                         interrupt_after=["s2"] if end == "breakpoint" else None)
    return compiled


def run_to_end(lib: str, end: str, durability: str) -> list[Any]:
    saver = InMemorySaver()
    app = exit_graph(lib, saver, end)
    config = {"configurable": {"thread_id": "t"}}
    try:
        app.invoke({"log": []}, config, durability=durability)
    except Exception as e:  # noqa: BLE001 - compared
        return [type(e).__name__, stored_thread(saver, config)]
    return [stored_thread(saver, config)]


@pytest.mark.parametrize("end", ["finish", "pause", "fail", "breakpoint"])
def test_exit_durability_saves_what_langgraph_saves(end: str) -> None:
    ours = run_to_end("ferrograph", end, "exit")
    assert ours == run_to_end("langgraph", end, "exit")
    assert ours[-1], "a checkpoint was saved"


def test_exit_durability_after_writes_that_fail_to_apply() -> None:
    # The checkpoint saved is that of the last step applied, as `sync` saved it (LangGraph
    # saves its channels as the failed step left them half-applied instead).
    exit_run = run_to_end("ferrograph", "clash", "exit")
    sync_run = run_to_end("ferrograph", "clash", "sync")
    assert exit_run[0] == sync_run[0] == "InvalidUpdateError"
    assert exit_run[1] == sync_run[1][:1]


class Fan(TypedDict, total=False):
    log: Annotated[list, operator.add]
    scratch: Annotated[str, UntrackedValue]


def fanout_graph(lib: str, saver: Any) -> Any:
    """Sends, a join of two branches and a key LangGraph never saves (`UntrackedValue`)."""
    mod = __import__(f"{lib}.graph", fromlist=["StateGraph"])
    types = __import__(f"{lib}.types", fromlist=["Send"])
    g = mod.StateGraph(Fan)
    g.add_node("a", lambda s: {"log": ["a"], "scratch": "a"})
    g.add_node("b", lambda s: {"log": ["b"]})
    g.add_node("work", lambda s: {"log": s["log"]})
    g.add_node("join", lambda s: {"log": ["join"], "scratch": "join"})
    g.add_edge(mod.START, "a")
    g.add_edge(mod.START, "b")
    g.add_conditional_edges(
        "a", lambda s: [types.Send("work", {"log": [f"w{i}"]}) for i in range(2)], ["work"])
    g.add_edge(["work", "b"], "join")
    return g.compile(checkpointer=saver)


def test_checkpoints_with_sends_joins_and_untracked_keys() -> None:
    # Each step's checkpoint merged from changes equals one built from scratch (the autouse
    # fixture checks it); an untracked key has versions but never a saved value.
    saver = InMemorySaver()
    config = {"configurable": {"thread_id": "t"}}
    out = fanout_graph("ferrograph", saver).invoke({"log": []}, config, durability="sync")
    assert out["log"] == ["a", "b", "w0", "w1", "join"]
    thread = stored_thread(saver, config)
    assert len(thread) == 5
    assert all("scratch" not in ck["values"] for ck in thread)
    assert thread[0]["versions"]["scratch"] == 5
    assert all(ck["updated"] == sorted(ck["updated"]) for ck in thread if ck["updated"])
    assert ["__pregel_tasks" in ck["updated"] for ck in thread[::-1]] == [
        False, False, True, False, False]


def test_checkpoint_ids_and_times_are_langgraphs() -> None:
    from datetime import datetime, timezone

    from langgraph.checkpoint.base.id import uuid6

    from ferrograph.pregel._thread_format import checkpoint_id, checkpoint_id_and_time

    theirs = str(uuid6(clock_seq=7))
    ours, ts = checkpoint_id_and_time(7)
    after = checkpoint_id(-1)
    for text, step in ((ours, 7), (after, -1)):
        parsed = uuid.UUID(text)
        assert parsed.version == 6 and str(parsed) == text
        assert parsed.clock_seq == step & 0x3FFF
    # Later than the last id either engine made in this process (LangGraph's rule).
    assert theirs < ours < after < str(uuid6(clock_seq=1))
    when = datetime.fromisoformat(ts)
    assert when.tzinfo == timezone.utc
    assert abs((datetime.now(timezone.utc) - when).total_seconds()) < 60
    assert ts == when.isoformat()


def fanout_thread(lib: str) -> list[Any]:
    """Two runs on one thread of a node that sends two tasks to `work`, then `join`: the
    thread as stored (the second run starts from the first one's checkpoint)."""
    mod = __import__(f"{lib}.graph", fromlist=["StateGraph"])
    types = __import__(f"{lib}.types", fromlist=["Send"])
    g = mod.StateGraph(State)
    g.add_node("split", lambda s: {"log": ["split"]})
    g.add_node("work", lambda item: {"log": [f"work {item}"]})
    g.add_node("join", lambda s: {"log": ["join"]})
    g.add_edge(mod.START, "split")
    g.add_conditional_edges("split", lambda s: [types.Send("work", 1), types.Send("work", 2)])
    g.add_edge("work", "join")
    saver = InMemorySaver()
    app = g.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "t"}}
    app.invoke({"log": []}, config)
    app.invoke({"log": ["again"]}, config)
    return [{**ck, "values": {c: repr(v) for c, v in ck["values"].items()}}
            for ck in stored_thread(saver, config)]


def test_sends_leave_the_thread_as_langgraph_stores_it() -> None:
    # After its Sends ran, `__pregel_tasks` stays as `[]` under the version of the step
    # that ran them, and a node that ran only from a Send has an empty `versions_seen` row.
    ours = fanout_thread("ferrograph")
    assert ours == fanout_thread("langgraph")
    assert any(ck["values"].get("__pregel_tasks") == "[]" for ck in ours)
    assert any(ck["seen"].get("work") == {} for ck in ours)


def test_version_names_are_langgraphs_savers() -> None:
    # LangGraph's own savers' `get_next_version` (`{n + 1:032}.{random():016}`), made in
    # Rust for those savers: the number after the previous name's, a random fraction in
    # [0, 1) written as Python writes it.
    from ferrograph._core import next_version_name
    from ferrograph.pregel._thread_format import VERSIONING_SAVERS, Versions, is_stock_method

    theirs = InMemorySaver().get_next_version("00000000000000000000000000000041.5", None)
    assert theirs.startswith("00000000000000000000000000000042.")
    for previous in (None, 7, "00000000000000000000000000000041.5"):
        for _ in range(2000):
            name = next_version_name(previous)
            number, fraction = name.split(".", 1)
            assert len(number) == 32 and len(fraction) >= 16  # (`:016`: padded to 16)
            assert int(number) == {None: 1, 7: 8}.get(previous, 42)
            assert f"{float(fraction):016}" == fraction and 0 <= float(fraction) < 1
    with pytest.raises(ValueError, match="invalid literal"):
        next_version_name("x.1")

    class Own(InMemorySaver):
        def get_next_version(self, current: Any, channel: Any) -> Any:
            return (current or 0) + 1

    assert is_stock_method(InMemorySaver, "get_next_version", VERSIONING_SAVERS)
    assert not is_stock_method(Own, "get_next_version", VERSIONING_SAVERS)
    assert Versions(Own()).cover(3) == [None, 1, 2, 3]
    patched = InMemorySaver()
    patched.get_next_version = lambda current, channel: (current or 0) + 10  # type: ignore[method-assign]
    assert Versions(patched).cover(2) == [None, 10, 20]
    names = Versions(InMemorySaver()).cover(3)[1:]
    assert [int(n.split(".")[0]) for n in names] == [1, 2, 3] and names == sorted(names)
