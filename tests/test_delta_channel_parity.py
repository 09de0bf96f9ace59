"""LangGraph's `DeltaChannel` (a reducer key whose checkpoints hold a `_DeltaSnapshot` only
now and then, its value rebuilt from the writes saved since), differentially: each test runs
the same calls on a graph built with `langgraph.graph` (the oracle) and with
`ferrograph.graph` and compares what the caller sees (outputs, streamed items, `get_state`,
`get_state_history`, errors) and what the saver stores (`stored`: each checkpoint's values,
with snapshots marked, its metadata with `counters_since_delta_snapshot`, its pending
writes), after `normalize()` (ids numbered, times blanked). The expected value is always
LangGraph's, computed by running it.

A thread is also moved between the engines (InMemorySaver, SQLite, async SQLite): written
by one, continued by the other, and compared with the same calls on LangGraph alone.
"""


import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.channels import DeltaChannel
from langgraph.pregel._messages import _messages_delta_reducer

from tests.parity import Lib
from tests.test_persistence_parity import (
    _diff,
    attempt,
    history,
    normalize,
    saver,
    stream_all,
    thread,
    types_of,
)

TASKS = "__pregel_tasks"


def extend(state: list, writes: Sequence[Any]) -> list:
    """A batching-invariant reducer: each write a list of items, appended."""
    out = list(state)
    for write in writes:
        out.extend(write)
    return out


def chat(lib: Lib, checkpointer: Any, frequency: int = 100, joined: bool = True) -> Any:
    """`respond` answers with a message counting the messages it sees; `note` (in parallel
    with it) logs the turn, and `tally` after both (`joined`; else after `respond`) logs
    the count: two delta keys, one written by two tasks of one step."""

    class State(TypedDict, total=False):
        messages: Annotated[list, DeltaChannel(_messages_delta_reducer,
                                               snapshot_frequency=frequency)]
        log: Annotated[list, DeltaChannel(extend, snapshot_frequency=frequency)]
        turn: str

    def respond(state: State) -> dict[str, Any]:
        n = len(state["messages"])
        return {"messages": [AIMessage(content=f"reply-{n}", id=f"ai-{n}")],
                "log": [f"respond:{n}"]}

    def note(state: State) -> dict[str, Any]:
        return {"log": [f"note:{state.get('turn')}"]}

    def tally(state: State) -> dict[str, Any]:
        return {"log": [f"tally:{len(state['log'])}"]}

    builder = lib.StateGraph(State)
    builder.add_node("respond", respond)
    builder.add_node("note", note)
    builder.add_node("tally", tally)
    builder.add_edge(lib.START, "respond")
    builder.add_edge(lib.START, "note")
    builder.add_edge(["respond", "note"] if joined else "respond", "tally")
    return builder.compile(checkpointer=checkpointer)


def turn(text: str) -> dict[str, Any]:
    return {"messages": [HumanMessage(content=text, id=f"h-{text}")], "turn": text}


def stored(checkpointer: Any, config: dict[str, Any]) -> Any:
    """What the saver holds for the thread, newest first: values (a snapshot as
    `("snapshot", value)`), the versioned channels, metadata, pending writes."""
    out = []
    # (`__pregel_tasks`, the sends, is left out: ferrograph saves a router's sends otherwise)
    for t in checkpointer.list(config):
        values = {k: ("snapshot", v.value) if type(v).__name__ == "_DeltaSnapshot" else v
                  for k, v in t.checkpoint["channel_values"].items() if k != TASKS}
        metadata = {k: v for k, v in t.metadata.items() if k != "run_id"}
        if "counters_since_delta_snapshot" in metadata:  # tuples or lists, by saver
            metadata["counters_since_delta_snapshot"] = {
                k: list(v) for k, v in metadata["counters_since_delta_snapshot"].items()}
        # (`__start__` is versioned by ferrograph alone after `update_state` on a new thread)
        versioned = sorted(c for c in t.checkpoint["channel_versions"]
                           if c not in ("__start__", TASKS))
        out.append({"values": values, "versioned": versioned,
                    # (a barrier a step consumed is listed by ferrograph alone: left out)
                    "updated": [c for c in t.checkpoint.get("updated_channels") or ()
                                if not c.startswith("join:")],
                    "metadata": metadata,
                    "writes": sorted((c, repr(_written(v))) for _, c, v in t.pending_writes or ()
                                     if c != TASKS)})
    return out


def in_order(items: list[Any]) -> list[Any]:
    """Streamed `(mode, payload)` items with each run of `updates` items sorted by node
    (the tasks of a step report as they end)."""
    out: list[Any] = []
    run: list[Any] = []
    for item in [*items, None]:
        if isinstance(item, tuple) and item[0] == "updates":
            run.append(item)
            continue
        out.extend(sorted(run, key=lambda i: sorted(i[1])))
        run = []
        if item is not None:
            out.append(item)
    return out


def _written(value: Any) -> Any:
    """A saved write, an `Overwrite` (either engine's class) as its value."""
    return ("Overwrite", value.value) if type(value).__name__ == "Overwrite" else value


def check(run: Callable[[Lib], Any], candidate: Lib, oracle: Lib) -> Any:
    got, expected = normalize(run(candidate)), normalize(run(oracle))
    assert got == expected, _diff(expected, got)
    return expected


# ------------------------------------------------------------------------- runs and reads


@pytest.mark.parametrize("frequency", [1, 2, 100])
def test_turns_stream_state_history_and_stored_checkpoints(frequency: int, candidate: Lib,
                                                           oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        shared = saver()
        graph = chat(lib, shared, frequency)
        seen: dict[str, Any] = {"one": attempt(lambda: graph.invoke(turn("one"), thread()))}
        seen["two"] = in_order(stream_all(graph.stream(turn("two"), thread(),
                                                       stream_mode=["updates", "values"])))
        seen["three"] = attempt(lambda: graph.invoke(turn("three"), thread()))
        seen["state"] = attempt(lambda: graph.get_state(thread()))
        seen["history"] = history(graph, thread())
        seen["stored"] = stored(shared, thread())
        return seen

    expected = check(run, candidate, oracle)
    assert len(expected["three"]["messages"]) == 6


def test_messages_without_ids_get_ids_that_removals_find(candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        RemoveMessage = __import__("langchain_core.messages", fromlist=["x"]).RemoveMessage

        class State(TypedDict):
            messages: Annotated[list, DeltaChannel(_messages_delta_reducer)]

        def answer(state: State) -> dict[str, Any]:
            return {"messages": [("ai", "hi"), {"role": "user", "content": "dict"}]}

        def drop_first(state: State) -> dict[str, Any]:
            return {"messages": [RemoveMessage(id=state["messages"][0].id)]}

        builder = lib.StateGraph(State)
        builder.add_node("answer", answer)
        builder.add_node("drop_first", drop_first)
        builder.add_edge(lib.START, "answer")
        builder.add_edge("answer", "drop_first")
        shared = saver()
        graph = builder.compile(checkpointer=shared)
        seen = {"run": stream_all(graph.stream({"messages": [("user", "hello")]}, thread(),
                                               stream_mode=["updates", "values"]))}
        seen["state"] = attempt(lambda: graph.get_state(thread()))
        seen["again"] = attempt(lambda: graph.invoke({"messages": "more"}, thread()))
        seen["stored"] = stored(shared, thread())
        return seen

    check(run, candidate, oracle)


def test_time_travel_and_replay_branch_off(candidate: Lib, oracle: Lib) -> None:
    """A new input from a past checkpoint, and a replay of one, start branches whose values
    hold nothing of the steps after it."""

    def run(lib: Lib) -> Any:
        shared = saver()
        graph = chat(lib, shared)
        graph.invoke(turn("one"), thread())
        graph.invoke(turn("two"), thread())
        past = [s for s in graph.get_state_history(thread())]
        after_one = next(s for s in past if len(s.values.get("messages", [])) == 2)
        seen: dict[str, Any] = {"at": after_one}
        seen["branch"] = attempt(lambda: graph.invoke(turn("three"), after_one.config))
        first_loop = next(s for s in past if s.metadata["source"] == "loop"
                          and s.metadata["step"] == 0)
        seen["replay"] = attempt(lambda: graph.invoke(None, first_loop.config))
        seen["state"] = attempt(lambda: graph.get_state(thread()))
        seen["history"] = history(graph, thread())
        seen["stored"] = stored(shared, thread())
        return seen

    expected = check(run, candidate, oracle)
    assert [m["content"] for m in expected["branch"]["messages"]] == [
        "one", "reply-1", "three", "reply-3"]


def test_update_state_on_a_new_and_an_old_thread(candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        shared = saver()
        graph = chat(lib, shared, 3)
        seen: dict[str, Any] = {}
        seen["fresh"] = attempt(lambda: graph.update_state(
            thread(), {"messages": [HumanMessage("seed", id="seed")], "log": ["seed"]},
            as_node="respond"))
        seen["run"] = attempt(lambda: graph.invoke(turn("one"), thread()))
        seen["update"] = attempt(lambda: graph.update_state(
            thread(), {"log": ["edited"]}, as_node="tally"))
        seen["overwrite"] = attempt(lambda: graph.update_state(
            thread(), {"log": types_of(lib).Overwrite(["reset"])}, as_node="tally"))
        seen["copy"] = attempt(lambda: graph.update_state(thread(), None, as_node="__copy__"))
        seen["run again"] = attempt(lambda: graph.invoke(turn("two"), thread()))
        seen["history"] = history(graph, thread())
        seen["stored"] = stored(shared, thread())
        return seen

    check(run, candidate, oracle)


def test_overwrite_snapshots_and_two_overwrites_fail(candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        Overwrite = types_of(lib).Overwrite

        class State(TypedDict, total=False):
            log: Annotated[list, DeltaChannel(extend)]
            twice: bool

        def first(state: State) -> dict[str, Any]:
            return {"log": ["a"]}

        def reset(state: State) -> dict[str, Any]:
            return {"log": Overwrite(["fresh"])}

        def other(state: State) -> dict[str, Any]:
            return {"log": Overwrite(["other"]) if state.get("twice") else ["b"]}

        builder = lib.StateGraph(State)
        for name, fn in (("first", first), ("reset", reset), ("other", other)):
            builder.add_node(name, fn)
        builder.add_edge(lib.START, "first")
        builder.add_edge("first", "reset")
        builder.add_edge("first", "other")
        shared = saver()
        graph = builder.compile(checkpointer=shared)
        seen = {"one": attempt(lambda: graph.invoke({"log": ["x"]}, thread()))}
        seen["twice"] = attempt(lambda: graph.invoke({"log": ["y"], "twice": True}, thread()))
        seen["state"] = attempt(lambda: graph.get_state(thread()))
        seen["stored"] = stored(shared, thread())
        return seen

    expected = check(run, candidate, oracle)
    assert expected["one"]["log"] == ["fresh"]
    assert "Overwrite" in expected["twice"]["message"]


def test_a_reducer_that_fails(candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        class State(TypedDict):
            total: Annotated[int, DeltaChannel(lambda state, writes: state + sum(writes))]

        def add(state: State) -> dict[str, Any]:
            return {"total": "not a number"}

        builder = lib.StateGraph(State)
        builder.add_node("add", add)
        builder.add_edge(lib.START, "add")
        graph = builder.compile(checkpointer=saver())
        return {"run": attempt(lambda: graph.invoke({"total": 2}, thread())),
                "state": attempt(lambda: graph.get_state(thread()))}

    check(run, candidate, oracle)


def test_bad_snapshot_frequency_is_refused_by_the_channel() -> None:
    with pytest.raises(ValueError, match="snapshot_frequency must be a positive int"):
        DeltaChannel(extend, snapshot_frequency=0)


@pytest.mark.parametrize("durability", ["sync", "exit"])
def test_durability_and_interrupts(durability: str, candidate: Lib, oracle: Lib) -> None:
    """A run that pauses at `interrupt()` after its delta key was written, resumed; and one
    whose open step is dropped by a new input (its saved writes are not replayed)."""

    def run(lib: Lib) -> Any:
        interrupt = types_of(lib).interrupt

        class State(TypedDict, total=False):
            log: Annotated[list, DeltaChannel(extend, snapshot_frequency=2)]

        def work(state: State) -> dict[str, Any]:
            return {"log": ["work"]}

        def side(state: State) -> dict[str, Any]:
            return {"log": ["side"]}

        def ask(state: State) -> dict[str, Any]:
            return {"log": [f"ask:{interrupt('ok?')}"]}

        builder = lib.StateGraph(State)
        for name, fn in (("work", work), ("side", side), ("ask", ask)):
            builder.add_node(name, fn)
        builder.add_edge(lib.START, "work")
        builder.add_edge("work", "side")
        builder.add_edge("work", "ask")
        shared = saver()
        graph = builder.compile(checkpointer=shared)
        opts = {"durability": durability}
        seen = {"paused": attempt(lambda: graph.invoke({"log": ["in"]}, thread(), **opts))}
        seen["resumed"] = attempt(lambda: graph.invoke(types_of(lib).Command(resume="yes"),
                                                       thread(), **opts))
        seen["paused 2"] = attempt(lambda: graph.invoke({"log": ["again"]}, thread(), **opts))
        seen["dropped"] = attempt(lambda: graph.invoke({"log": ["new"]}, thread(), **opts))
        seen["state"] = attempt(lambda: graph.get_state(thread()))
        seen["history"] = history(graph, thread())
        seen["stored"] = stored(shared, thread())
        return seen

    check(run, candidate, oracle)


@pytest.mark.parametrize("durability", ["async", "exit"])
def test_async_runs_and_reads(durability: str, candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        shared = saver()
        graph = chat(lib, shared, 2)

        async def main() -> Any:
            seen = {"one": await graph.ainvoke(turn("one"), thread(), durability=durability)}
            items = [c async for c in graph.astream(turn("two"), thread(),
                                                    stream_mode="updates",
                                                    durability=durability)]
            seen["two"] = sorted(items, key=lambda c: list(c))  # (parallel tasks: as they end)
            seen["state"] = await graph.aget_state(thread())
            seen["history"] = [s async for s in graph.aget_state_history(thread())]
            return seen

        seen = asyncio.run(main())
        seen["stored"] = stored(shared, thread())
        return seen

    check(run, candidate, oracle)


# ------------------------------------------------------------------------- between engines


def _sqlite(tmp_path: Path) -> Any:
    from langgraph.checkpoint.sqlite import SqliteSaver

    return SqliteSaver.from_conn_string(str(tmp_path / f"{uuid.uuid4().hex}.sqlite"))


def _postgres(url: str) -> Any:
    from langgraph.checkpoint.postgres import PostgresSaver

    @contextlib.contextmanager
    def opened() -> Iterator[Any]:
        with PostgresSaver.from_conn_string(url) as saver:
            saver.setup()
            yield saver

    return opened()


@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgres"])
@pytest.mark.parametrize("order", ["langgraph then ferrograph", "ferrograph then langgraph"])
def test_a_thread_moves_between_engines(order: str, backend: str, tmp_path: Path,
                                        request: pytest.FixtureRequest, candidate: Lib,
                                        oracle: Lib) -> None:
    def run(first: Lib, second: Lib) -> Any:
        if backend == "postgres":
            opened = _postgres(request.getfixturevalue("postgres_url"))
        else:
            opened = (_sqlite(tmp_path) if backend == "sqlite"
                      else contextlib.nullcontext(saver()))
        config = thread(uuid.uuid4().hex)  # (one database for the session: a new thread)
        with opened as shared:
            # (no waiting edge: on SQLite, the engines read its channel differently)
            g1, g2 = chat(first, shared, 2, False), chat(second, shared, 2, False)
            seen: dict[str, Any] = {"1": attempt(lambda: g1.invoke(turn("one"), config))}
            seen["2"] = attempt(lambda: g2.invoke(turn("two"), config))
            seen["3"] = attempt(lambda: g1.invoke(turn("three"), config))
            seen["update"] = attempt(lambda: g2.update_state(config, {"log": ["edit"]},
                                                             as_node="tally"))
            seen["4"] = attempt(lambda: g2.invoke(turn("four"), config))
            seen["state by first"] = attempt(lambda: g1.get_state(config))
            seen["history by first"] = history(g1, config)
            seen["history by second"] = history(g2, config)
            seen["stored"] = stored(shared, config)
            seen["thread"] = config["configurable"]["thread_id"]  # (numbered as the others)
            return normalize(seen)

    mixed = run(oracle, candidate) if order.startswith("langgraph") else run(candidate, oracle)
    expected = run(oracle, oracle)
    assert mixed == expected, _diff(expected, mixed)


def test_a_thread_moves_between_engines_on_async_sqlite(tmp_path: Path, candidate: Lib,
                                                        oracle: Lib) -> None:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    def run(first: Lib, second: Lib) -> Any:
        async def main() -> Any:
            path = str(tmp_path / f"{uuid.uuid4().hex}.sqlite")
            async with AsyncSqliteSaver.from_conn_string(path) as shared:
                g1, g2 = chat(first, shared, 2, False), chat(second, shared, 2, False)
                seen = {"1": await g1.ainvoke(turn("one"), thread())}
                seen["2"] = await g2.ainvoke(turn("two"), thread())
                seen["3"] = await g1.ainvoke(turn("three"), thread())
                seen["state by second"] = await g2.aget_state(thread())
                seen["history by second"] = [s async for s in g2.aget_state_history(thread())]
                return seen

        return normalize(asyncio.run(main()))

    expected = run(oracle, oracle)
    for mixed in (run(candidate, oracle), run(oracle, candidate)):
        assert mixed == expected, _diff(expected, mixed)


def test_adapt_runs_a_langgraph_graph_with_a_delta_key(oracle: Lib) -> None:
    import ferrograph

    def run(adapted: bool) -> Any:
        shared = saver()
        graph = chat(oracle, shared, 2)
        if adapted:
            graph = ferrograph.adapt(graph)
        seen = {"one": graph.invoke(turn("one"), thread()),
                "two": graph.invoke(turn("two"), thread()),
                "history": list(graph.get_state_history(thread())),
                "stored": stored(shared, thread())}
        return normalize(seen)

    expected = run(False)
    assert run(True) == expected, _diff(expected, run(True))


def test_the_sum_of_ints_reducer_works_as_in_langgraph(candidate: Lib, oracle: Lib) -> None:
    """A delta key of another type than list (its empty value the type's)."""

    def run(lib: Lib) -> Any:
        class State(TypedDict, total=False):
            total: Annotated[int, DeltaChannel(lambda s, ws: s + sum(ws),
                                               snapshot_frequency=2)]
            names: Annotated[dict, DeltaChannel(lambda s, ws: {**s, **{w: 1 for w in ws}})]

        def add(state: State) -> dict[str, Any]:
            return {"total": 5, "names": "add"}

        builder = lib.StateGraph(State)
        builder.add_node("add", add)
        builder.add_edge(lib.START, "add")
        shared = saver()
        graph = builder.compile(checkpointer=shared)
        return {"one": graph.invoke({"total": 1}, thread()),
                "two": graph.invoke({"total": 1}, thread()),
                "stored": stored(shared, thread())}

    check(run, candidate, oracle)




def test_sends_and_a_subgraph_write_delta_keys(candidate: Lib, oracle: Lib) -> None:
    """Writes of pushed tasks (`Send`) are replayed in LangGraph's order; a subgraph's own
    delta key is kept in its namespace of the thread."""

    def run(lib: Lib) -> Any:
        class Inner(TypedDict, total=False):
            log: Annotated[list, DeltaChannel(extend, snapshot_frequency=2)]

        inner = lib.StateGraph(Inner)
        inner.add_node("deep", lambda state: {"log": [f"deep:{len(state['log'])}"]})
        inner.add_edge(lib.START, "deep")

        class State(TypedDict, total=False):
            log: Annotated[list, DeltaChannel(extend, snapshot_frequency=3)]

        def fan_out(state: State) -> list[Any]:
            return [lib.Send("worker", {"log": [f"item{i}"]}) for i in range(3)]

        def worker(state: State) -> dict[str, Any]:
            return {"log": [f"worker:{state['log'][-1]}"]}

        builder = lib.StateGraph(State)
        builder.add_node("start", lambda state: {"log": ["start"]})
        builder.add_node("worker", worker)
        builder.add_node("sub", inner.compile())
        builder.add_edge(lib.START, "start")
        builder.add_conditional_edges("start", fan_out, ["worker"])
        builder.add_edge("worker", "sub")
        shared = saver()
        graph = builder.compile(checkpointer=shared)
        seen = {"one": attempt(lambda: graph.invoke({"log": ["in"]}, thread())),
                "two": attempt(lambda: graph.invoke({"log": ["again"]}, thread()))}
        seen["state"] = attempt(lambda: graph.get_state(thread(), subgraphs=True))
        seen["history"] = history(graph, thread())
        seen["stored"] = stored(shared, thread())
        return seen

    check(run, candidate, oracle)


@pytest.mark.parametrize("how", ["invoke", "stream"])
def test_without_a_checkpointer(how: str, candidate: Lib, oracle: Lib) -> None:
    """No thread: the key is a reducer key whose reducer takes each step's writes at once
    (`invoke` goes by ferrograph's Rust driver)."""

    def run(lib: Lib) -> Any:
        calls: list[Any] = []

        def batch(state: list, writes: Sequence[Any]) -> list:
            calls.append(list(writes))
            return extend(state, writes)

        class State(TypedDict, total=False):
            log: Annotated[list, DeltaChannel(batch)]

        builder = lib.StateGraph(State)
        for name in ("a", "b", "c"):
            builder.add_node(name, lambda state, name=name: {"log": [name]})
        builder.add_edge(lib.START, "a")
        builder.add_edge(lib.START, "b")
        builder.add_edge("a", "c")
        graph = builder.compile()
        if how == "invoke":
            out = attempt(lambda: graph.invoke({"log": ["in"]}))
        else:
            out = in_order(stream_all(graph.stream({"log": ["in"]},
                                                   stream_mode=["updates", "values"])))
        return {"out": out, "reducer calls": calls}

    check(run, candidate, oracle)


def test_ferrograph_channels_names_langgraphs_class() -> None:
    from ferrograph.channels import DeltaChannel as Ours

    assert Ours is DeltaChannel


def test_bulk_updates_in_one_superstep_replay_in_the_order_given(candidate: Lib,
                                                                oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        StateUpdate = types_of(lib).StateUpdate
        shared = saver()
        graph = chat(lib, shared, 100, False)
        graph.invoke(turn("one"), thread())
        seen = {"bulk": attempt(lambda: graph.bulk_update_state(thread(), [
            [StateUpdate({"log": ["z"]}, "tally"), StateUpdate({"log": ["a"]}, "note")],
            [StateUpdate({"log": ["m"]}, "respond")]]))}
        seen["run"] = attempt(lambda: graph.invoke(turn("two"), thread()))
        seen["history"] = history(graph, thread())
        seen["stored"] = stored(shared, thread())
        return seen

    check(run, candidate, oracle)
