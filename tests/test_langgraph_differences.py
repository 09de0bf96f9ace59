"""The behaviour differences of issue 17, differentially: each was found by running LangGraph's
own test suite against ferrograph (the LangGraph test is named in each test's docstring). Every
test builds the same graph with `langgraph.graph` (the oracle) and `ferrograph.graph` and
asserts that ferrograph does what LangGraph does; the expected value is computed by running
LangGraph, never written down.

Ordering and cancellation tests synchronise on threading.Event, never on sleeps; every wait
has a generous timeout so that a regression fails instead of hanging.
"""

import asyncio
import dataclasses
import operator
import sys
import threading
import warnings
from typing import Annotated, Any, TypedDict

import pytest
from pydantic import BaseModel, Field

from tests.parity import Lib, Raised, drain, normalise, outcome

WAIT = 30.0  # seconds: a wait that only a regression can exhaust


def both(run: Any, candidate: Lib, oracle: Lib) -> tuple[Any, Any]:
    """(candidate's, oracle's) normalised result of `run(lib)`."""
    return normalise(run(candidate)), normalise(run(oracle))


class Log(TypedDict):
    log: Annotated[list, operator.add]


# ----------------------------------------------------------------------------- 1


@pytest.mark.parametrize(
    "how",
    ["invoke", "ainvoke", "stream", "astream"],
)
def test_context_reaches_the_nodes_of_a_subgraph(how: str, candidate: Lib, oracle: Lib) -> None:
    """test_runtime.py::test_runtime_propogated_to_subgraph"""

    @dataclasses.dataclass
    class Context:
        username: str

    class State(TypedDict, total=False):
        subgraph: str
        main: str

    def run(lib: Lib) -> Any:
        def subgraph_node(state: State, runtime: lib.Runtime[Context]) -> dict[str, Any]:
            return {"subgraph": f"{runtime.context.username}!"}

        def main_node(state: State, runtime: lib.Runtime[Context]) -> dict[str, Any]:
            return {"main": f"{runtime.context.username}!"}

        inner = lib.StateGraph(State, context_schema=Context)
        inner.add_node("subgraph_node", subgraph_node)
        inner.add_edge(lib.START, "subgraph_node")
        b = lib.StateGraph(State, context_schema=Context)
        b.add_node("main_node", main_node)
        b.add_node("node_1", inner.compile())
        b.add_edge(lib.START, "main_node")
        b.add_edge("main_node", "node_1")
        graph = b.compile()
        context = Context(username="Alice")

        async def astream() -> list[Any]:
            return [c async for c in graph.astream({}, context=context, stream_mode="values")]

        return outcome(
            {
                "invoke": lambda: graph.invoke({}, context=context),
                "ainvoke": lambda: asyncio.run(graph.ainvoke({}, context=context)),
                "stream": lambda: list(graph.stream({}, context=context, stream_mode="values")),
                "astream": lambda: asyncio.run(astream()),
            }[how]
        )

    got, expected = both(run, candidate, oracle)
    assert got == expected


# ----------------------------------------------------------------------------- 2


def test_cancelled_ainvoke_runs_no_further_step_after_a_sync_node(
    candidate: Lib, oracle: Lib
) -> None:
    """test_runtime.py::test_cancel_ainvoke_with_sync_node (without RunControl, which
    ferrograph lacks): the caller cancels ainvoke while a sync node runs on a worker thread;
    the node finishes on its own, and the step after it must never start."""

    # The bounded wait for something that must not happen: a correct engine never sets
    # `second_ran`, a faulty one sets it as soon as `first` returns.
    no_second_step_within = 3.0

    class State(TypedDict, total=False):
        first: str
        second: str

    def run(lib: Lib) -> Any:
        started, release, finished, second_ran = (threading.Event() for _ in range(4))

        def first(state: State) -> dict[str, Any]:
            started.set()
            released = release.wait(WAIT)
            finished.set()
            return {"first": "done" if released else "never released"}

        def second(state: State) -> dict[str, Any]:
            second_ran.set()
            return {"second": "should not run"}

        b = lib.StateGraph(State)
        b.add_node("first", first)
        b.add_node("second", second)
        b.add_edge(lib.START, "first")
        b.add_edge("first", "second")
        graph = b.compile()

        async def main() -> dict[str, Any]:
            loop = asyncio.get_running_loop()
            task = asyncio.create_task(graph.ainvoke({}))
            seen: dict[str, Any] = {}
            seen["node started"] = await loop.run_in_executor(None, started.wait, WAIT)
            task.cancel()
            try:
                seen["ainvoke"] = await task
            except asyncio.CancelledError:
                seen["ainvoke"] = "cancelled"
            seen["node still running when ainvoke ended"] = not finished.is_set()
            release.set()
            seen["node finished"] = await loop.run_in_executor(None, finished.wait, WAIT)
            seen["second step ran"] = await loop.run_in_executor(
                None, second_ran.wait, no_second_step_within
            )
            return seen

        return asyncio.run(main())

    got, expected = both(run, candidate, oracle)
    assert got == expected


# ----------------------------------------------------------------------------- 3


@pytest.mark.parametrize(
    "sync", [pytest.param(True, id="invoke"), pytest.param(False, id="ainvoke")]
)
def test_parent_command_from_a_subgraph_called_inside_a_node(
    sync: bool, candidate: Lib, oracle: Lib
) -> None:
    """test_parent_command.py::test_parent_command_from_nested_subgraph (and _async):
    Command(graph=Command.PARENT) from a subgraph that a node *calls* routes the calling
    graph."""

    class ParentState(TypedDict):
        jump_from_idx: int

    class ChildState(TypedDict):
        jump: bool

    def run(lib: Lib) -> Any:
        visited: list[str] = []

        def child_node(state: ChildState) -> Any:
            if state["jump"]:
                return lib.Command(graph=lib.Command.PARENT, goto="parent_second")
            return state

        child = lib.StateGraph(ChildState)
        child.add_node("node", child_node)
        child.add_edge(lib.START, "node")
        child_0, child_1 = child.compile(), child.compile()

        def parent_first(state: ParentState) -> ParentState:
            visited.append("parent_first")
            child_0.invoke({"jump": state["jump_from_idx"] == 1})
            visited.append("after child_0")
            child_1.invoke({"jump": state["jump_from_idx"] == 2})
            visited.append("after child_1")
            return state

        async def aparent_first(state: ParentState) -> ParentState:
            visited.append("parent_first")
            await child_0.ainvoke({"jump": state["jump_from_idx"] == 1})
            visited.append("after child_0")
            await child_1.ainvoke({"jump": state["jump_from_idx"] == 2})
            visited.append("after child_1")
            return state

        def parent_second(state: ParentState) -> ParentState:
            visited.append("parent_second")
            return state

        parent = lib.StateGraph(ParentState)
        parent.add_node("parent_first", parent_first if sync else aparent_first)
        parent.add_node("parent_second", parent_second)
        parent.add_edge(lib.START, "parent_first")
        parent.add_edge("parent_second", lib.END)
        graph = parent.compile()
        runs = []
        for idx in (0, 1, 2):
            visited.clear()
            if sync:
                result = outcome(lambda idx=idx: graph.invoke({"jump_from_idx": idx}))
            else:
                result = outcome(
                    lambda idx=idx: asyncio.run(graph.ainvoke({"jump_from_idx": idx}))
                )
            runs.append((result, list(visited)))
        return runs

    got, expected = both(run, candidate, oracle)
    assert got == expected


# ----------------------------------------------------------------------------- 4


def _completion_order_run(lib: Lib, mode: str, asynchronous: bool) -> Any:
    """Two branches in one step: `a` (first in node order) blocks until the consumer of the
    stream has received `b`'s finished update, so only a stream in completion order lets it
    go on. If `a` runs on the consumer's own thread, no item can reach the consumer before
    `a` returns: `a` says so at once instead of waiting out the timeout."""
    release = threading.Event()
    slow_saw: list[str] = []
    consumer: list[threading.Thread] = []

    def slow(state: Log) -> dict[str, Any]:
        if threading.current_thread() is consumer[0]:
            slow_saw.append("ran on the stream consumer's thread")
        else:
            slow_saw.append("released" if release.wait(WAIT) else "timed out")
        return {"log": ["slow"]}

    def fast(state: Log) -> dict[str, Any]:
        return {"log": ["fast"]}

    b = lib.StateGraph(Log)
    b.add_node("a", slow)
    b.add_node("b", fast)
    b.add_edge(lib.START, "a")
    b.add_edge(lib.START, "b")
    graph = b.compile()

    def fast_finished(item: Any) -> bool:
        if mode == "updates":
            return "b" in item
        return item["name"] == "b" and "result" in item

    items: list[Any] = []

    def take(item: Any) -> None:
        items.append(item)
        if fast_finished(item):
            release.set()

    if asynchronous:

        async def main() -> None:
            consumer.append(threading.current_thread())
            async for item in graph.astream({"log": []}, stream_mode=mode):
                take(item)

        asyncio.run(main())
    else:
        consumer.append(threading.current_thread())
        for item in graph.stream({"log": []}, stream_mode=mode):
            take(item)
    return items, slow_saw


@pytest.mark.parametrize("mode", ["updates", "tasks"])
@pytest.mark.parametrize(
    "asynchronous",
    [
        pytest.param(False, id="stream"),
        pytest.param(True, id="astream"),
    ],
)
def test_parallel_step_streams_updates_in_completion_order(
    mode: str, asynchronous: bool, candidate: Lib, oracle: Lib
) -> None:
    """test_large_cases.py::test_in_one_fan_out_out_one_graph_state: a fast branch's update
    is streamed when it finishes, not when its slower sibling does."""
    got, expected = both(
        lambda lib: _completion_order_run(lib, mode, asynchronous), candidate, oracle
    )
    assert got == expected


# ----------------------------------------------------------------------------- 5


@pytest.mark.parametrize("mode", ["tasks", "debug"])
@pytest.mark.parametrize("asynchronous", [False, True], ids=["stream", "astream"])
def test_failing_task_result_is_streamed_before_the_error(
    mode: str, asynchronous: bool, candidate: Lib, oracle: Lib
) -> None:
    """test_pregel.py::test_failing_task_result_is_streamed_before_the_error (+ async)"""

    class State(TypedDict):
        x: str

    def run(lib: Lib) -> Any:
        def failing(state: State) -> State:
            raise ValueError("boom")

        async def afailing(state: State) -> State:
            raise ValueError("boom")

        b = lib.StateGraph(State)
        b.add_node("failing", afailing if asynchronous else failing)
        b.add_edge(lib.START, "failing")
        graph = b.compile()
        if not asynchronous:
            return drain(graph.stream({"x": ""}, stream_mode=mode))

        async def main() -> Any:
            items: list[Any] = []
            try:
                async for item in graph.astream({"x": ""}, stream_mode=mode):
                    items.append(item)
            except Exception as e:  # noqa: BLE001 - compared
                return items, Raised.of(e)
            return items, None

        return asyncio.run(main())

    got, expected = both(run, candidate, oracle)
    assert got == expected


# ----------------------------------------------------------------------------- 6


def test_router_reads_the_state_through_its_annotated_input_schema(
    candidate: Lib, oracle: Lib
) -> None:
    """test_state.py::test_input_schema_conditional_edge,
    ::test_private_input_schema_conditional_edge"""

    class OverallState(TypedDict):
        foo: Annotated[int, operator.add]
        bar: str

    class PrivateState(TypedDict):
        baz: str

    class Node2State(TypedDict):
        foo: Annotated[int, operator.add]
        baz: str

    def overall_router(lib: Lib) -> Any:
        seen: list[Any] = []

        def node_1(state: OverallState) -> Any:
            return {"foo": 1, "baz": "bar"}

        def node_2(state: PrivateState) -> Any:
            return {"foo": 1, "bar": state["baz"], "something_else": "meow"}

        def node_3(state: OverallState) -> Any:
            return {"foo": 1}

        def router(state: OverallState) -> str:
            seen.append(dict(state))
            return "node_3" if state["foo"] == 2 else "__end__"

        b = lib.StateGraph(OverallState)
        b.add_node(node_1)
        b.add_node(node_2)
        b.add_node(node_3)
        b.add_conditional_edges("node_2", router)
        b.add_edge(lib.START, "node_1")
        b.add_edge("node_1", "node_2")
        return outcome(lambda: b.compile().invoke({"foo": 0})), seen

    def private_router(lib: Lib) -> Any:
        seen: list[Any] = []

        def node_1(state: OverallState) -> Any:
            return {"foo": 1, "baz": "meow"}

        def node_2(state: Node2State) -> Any:
            return {"foo": 1, "bar": state["baz"]}

        def router(state: PrivateState) -> str:
            seen.append(dict(state))
            return "node_2" if state.get("baz") == "meow" else "__end__"

        b = lib.StateGraph(OverallState)
        b.add_node(node_1)
        b.add_node(node_2)
        b.add_conditional_edges("node_1", router)
        b.add_edge(lib.START, "node_1")
        return outcome(lambda: b.compile().invoke({"foo": 0})), seen

    for case in (overall_router, private_router):
        got, expected = both(case, candidate, oracle)
        assert got == expected, case.__name__


# ----------------------------------------------------------------------------- 7


async def _run_to_the_end(graph: Any, how: str, input: Any) -> Any:
    """ainvoke's result or astream's items, within WAIT seconds (a hang fails)."""

    async def astream() -> list[Any]:
        return [item async for item in graph.astream(input)]

    return await asyncio.wait_for(graph.ainvoke(input) if how == "ainvoke" else astream(), WAIT)


@pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="LangGraph converts a node's own CancelledError only on 3.11+ (Task.cancelling)",
)
@pytest.mark.parametrize(
    ("how", "boom", "beside"),
    [
        ("ainvoke", "async", "async"),
        ("ainvoke", "sync", "async"),
        ("ainvoke", "sync", None),
        ("astream", "async", "async"),
        ("astream", "sync", "async"),
        ("invoke", "sync", None),
        ("stream", "sync", "sync"),
    ],
    ids=lambda v: f"{v}" if v else "alone",
)
def test_node_raising_cancelled_error_fails_the_run(
    how: str, boom: str, beside: str | None, candidate: Lib, oracle: Lib
) -> None:
    """test_retry.py::test_pregel_user_raised_cancellederror_fails_run: a node's own
    `raise asyncio.CancelledError` fails the run with NodeCancelledError(node=...), caused by
    it, instead of escaping as (or passing for) a cancellation."""

    class State(TypedDict, total=False):
        vals: Annotated[list[str], operator.add]

    def run(lib: Lib) -> Any:
        async def aok(state: State) -> State:
            return {"vals": ["ok"]}

        def ok(state: State) -> State:
            return {"vals": ["ok"]}

        async def aboom(state: State) -> State:
            raise asyncio.CancelledError("user-raised in node body")

        def sboom(state: State) -> State:
            raise asyncio.CancelledError("user-raised in node body")

        b = lib.StateGraph(State)
        b.add_node("boom", aboom if boom == "async" else sboom)
        b.add_edge(lib.START, "boom")
        if beside is not None:
            b.add_node("ok", aok if beside == "async" else ok)
            b.add_edge(lib.START, "ok")
        graph = b.compile()
        input = {"vals": []}

        def go() -> Any:
            if how == "invoke":
                return graph.invoke(input)
            if how == "stream":
                return list(graph.stream(input))
            return asyncio.run(_run_to_the_end(graph, how, input))

        try:
            return go()
        except asyncio.CancelledError as e:
            return "escaped", repr(e)
        except Exception as e:  # noqa: BLE001 - compared
            cause = e.__cause__
            return (
                Raised.of(e),
                getattr(e, "node", None),
                type(cause).__name__ if cause else None,
                getattr(e, "__notes__", None),
            )

    got, expected = both(run, candidate, oracle)
    assert got == expected


@pytest.mark.parametrize("how", ["ainvoke", "astream"])
@pytest.mark.parametrize("parallel", [False, True], ids=["one_node", "two_nodes"])
def test_cancelling_the_caller_still_cancels_the_run(
    how: str, parallel: bool, candidate: Lib, oracle: Lib
) -> None:
    """The counterpart of #7: a cancellation of the task awaiting ainvoke/astream (not one a
    node raises) is still a cancellation, and it reaches the running async nodes."""

    def run(lib: Lib) -> Any:
        async def main() -> Any:
            started: list[asyncio.Event] = []
            node_saw: list[str] = []

            def slow(name: str) -> Any:
                event = asyncio.Event()
                started.append(event)

                async def node(state: Log) -> dict[str, Any]:
                    event.set()
                    try:
                        await asyncio.sleep(WAIT)
                    except asyncio.CancelledError:
                        node_saw.append(f"{name} cancelled")
                        raise
                    return {"log": [name]}

                return node

            b = lib.StateGraph(Log)
            for name in ("a", "b") if parallel else ("a",):
                b.add_node(name, slow(name))
                b.add_edge(lib.START, name)
            task = asyncio.create_task(_run_to_the_end(b.compile(), how, {"log": []}))
            for event in started:
                await asyncio.wait_for(event.wait(), WAIT)
            task.cancel()
            try:
                result = await task
            except asyncio.CancelledError:
                result = "cancelled"
            except Exception as e:  # noqa: BLE001 - compared
                result = Raised.of(e)
            return result, sorted(node_saw)

        return asyncio.run(main())

    got, expected = both(run, candidate, oracle)
    assert got == expected


# ----------------------------------------------------------------------------- 8


@pytest.mark.parametrize("command", [False, True], ids=["state", "command"])
@pytest.mark.parametrize("factory", [False, True], ids=["default", "default_factory"])
def test_pydantic_state_mutated_in_place(
    command: bool, factory: bool, candidate: Lib, oracle: Lib
) -> None:
    """test_pregel.py::test_pydantic_state_mutation (and _command)"""

    def run(lib: Lib) -> Any:
        class Inner(BaseModel):
            a: int = 0

        if factory:

            class State(BaseModel):
                inner: Inner = Field(default_factory=Inner)
                outer: int = 0

        else:

            class State(BaseModel):
                inner: Inner = Inner()
                outer: int = 0

        def my_node(state: State) -> Any:
            state.inner.a = 5
            state.outer = 10
            return lib.Command(update=state) if command else state

        b = lib.StateGraph(State)
        b.add_node(my_node)
        b.add_edge(lib.START, "my_node")
        return outcome(lambda: b.compile().invoke({"outer": 1}))

    got, expected = both(run, candidate, oracle)
    assert got == expected


# ----------------------------------------------------------------------------- 9


def test_callable_object_node_reads_its_call_annotation(candidate: Lib, oracle: Lib) -> None:
    """test_state.py::test_state_schema_with_type_hint"""

    class InputState(TypedDict):
        question: str

    class OutputState(TypedDict):
        input_state: InputState

    class FooState(InputState):
        foo: str

    def run(lib: Lib) -> Any:
        seen: list[Any] = []

        def pre_foo(_: Any) -> FooState:
            return {"foo": "bar"}

        class Foo:
            def __call__(self, state: FooState) -> OutputState:
                seen.append(dict(state))
                return {"input_state": {"question": state["question"]}}

        b = lib.StateGraph(InputState, output_schema=OutputState)
        b.add_node("pre_foo", pre_foo)
        b.add_node("foo", Foo())
        b.add_edge(lib.START, "pre_foo")
        b.add_edge("pre_foo", "foo")
        return outcome(lambda: b.compile().invoke({"question": "why"})), seen

    got, expected = both(run, candidate, oracle)
    assert got == expected


# ----------------------------------------------------------------------------- 10


@pytest.mark.parametrize("kind", ["typeddict", "dataclass", "pydantic"])
def test_unknown_input_keys_are_dropped(kind: str, candidate: Lib, oracle: Lib) -> None:
    """test_type_checking.py::test_typed_dict_state, ::test_dataclass_state,
    ::test_base_model_state (ferrograph adds a warning naming the dropped keys: see
    tests/test_error_catalogue.py)"""

    def run(lib: Lib) -> Any:
        if kind == "typeddict":

            class State(TypedDict):
                info: Annotated[list[str], operator.add]

        elif kind == "dataclass":

            @dataclasses.dataclass
            class State:
                info: Annotated[list[str], operator.add] = dataclasses.field(
                    default_factory=list
                )

        else:

            class State(BaseModel):
                info: Annotated[list[str], operator.add] = []

        def valid(state: State) -> Any:
            return {"info": ["seen"]}

        b = lib.StateGraph(State)
        b.add_node("valid", valid)
        b.set_entry_point("valid")
        graph = b.compile()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return [
                outcome(lambda v=v: graph.invoke(v))
                for v in ({"invalid": "lalala"}, {"info": ["hello"], "typo": 1})
            ]

    got, expected = both(run, candidate, oracle)
    assert got == expected


# ----------------------------------------------------------------------------- 11


def test_command_as_graph_input(candidate: Lib, oracle: Lib) -> None:
    """A Command given as the input of a run without a checkpointer: its update is written
    at the start (twice, as LangGraph does: reducer keys show it) and its goto routes beside
    START's edges; resume= and graph=PARENT are refused with LangGraph's errors."""

    class State(TypedDict, total=False):
        foo: str
        log: Annotated[list, operator.add]

    def run(lib: Lib) -> Any:
        def a(state: State) -> Any:
            return {"log": ["a:" + state.get("foo", "-")]}

        def b_(state: State) -> Any:
            return {"log": ["b:" + state.get("foo", "-")]}

        b = lib.StateGraph(State)
        b.add_node("a", a)
        b.add_node("b", b_)
        b.add_edge(lib.START, "a")
        graph = b.compile()
        commands = [
            lib.Command(update={"foo": "x"}),
            lib.Command(goto="b"),
            lib.Command(update={"foo": "y", "log": ["in"]}, goto="b"),
            lib.Command(goto=lib.Send("b", {"foo": "sent"})),
            lib.Command(update=[("foo", "pairs")], goto=["a", "b"]),
            lib.Command(resume="yes"),
            lib.Command(graph=lib.Command.PARENT, goto="b"),
        ]
        return [
            (
                outcome(lambda c=c: graph.invoke(c)),
                _step_order_free(drain(graph.stream(c, stream_mode=["updates", "values"]))),
            )
            for c in commands
        ]

    got, expected = both(run, candidate, oracle)
    assert got == expected


def _step_order_free(drained: tuple[list[Any], Any]) -> tuple[list[Any], Any]:
    """`drain`'s items with the `updates` of one step (between two `values` items) sorted:
    parallel nodes report in the order they finish, in either engine."""
    items, raised = drained
    out: list[Any] = []
    run: list[Any] = []
    for item in items:
        if isinstance(item, tuple) and item and item[0] == "updates":
            run.append(item)
            continue
        out.extend(sorted(run, key=repr))
        run = []
        out.append(item)
    out.extend(sorted(run, key=repr))
    return out, raised


# ----------------------------------------------------------------------------- 12


def test_extra_keys_a_node_returns_reach_its_router(candidate: Lib, oracle: Lib) -> None:
    """test_large_cases.py::test_state_graph_packets: a router annotated `dict` sees the
    keys its node returned that are not state keys."""

    class State(TypedDict):
        x: int

    def run(lib: Lib) -> Any:
        seen: list[Any] = []

        def agent(state: State) -> Any:
            return {"x": state["x"] + 1, "something_extra": "hi there"}

        def should_continue(data: dict) -> str:
            seen.append(dict(data))
            return lib.END

        b = lib.StateGraph(State)
        b.add_node("agent", agent)
        b.add_edge(lib.START, "agent")
        b.add_conditional_edges("agent", should_continue)
        return outcome(lambda: b.compile().invoke({"x": 0})), seen

    got, expected = both(run, candidate, oracle)
    assert got == expected


# ----------------------------------------------------------------------------- 13


def test_pydantic_update_object_keeps_its_defaulted_fields(candidate: Lib, oracle: Lib) -> None:
    """test_pregel.py::test_in_one_fan_out_state_graph_waiting_edge_custom_state_class_pydantic2:
    a node returning a pydantic model whose fields keep their defaults (plain and
    default_factory) writes them."""

    def run(lib: Lib) -> Any:
        class State(BaseModel):
            query: str = ""
            answer: str | None = None
            docs: list[str] = []
            n: int = 0

        class UpdateDocs(BaseModel):
            docs: list[str] = Field(default_factory=lambda: ["doc3", "doc4"])

        class UpdateN(BaseModel):
            n: int = 7
            answer: str | None = "default answer"

        b = lib.StateGraph(State)
        b.add_node("write_docs", lambda s: UpdateDocs())
        b.add_node("write_n", lambda s: UpdateN())
        b.add_edge(lib.START, "write_docs")
        b.add_edge("write_docs", "write_n")
        return outcome(lambda: b.compile().invoke({"query": "q"}))

    got, expected = both(run, candidate, oracle)
    assert got == expected


# ----------------------------------------------------------------------------- 14


@pytest.mark.parametrize("how", ["invoke", "stream"])
@pytest.mark.parametrize("where", ["called_in_a_node", "added_as_a_node"])
def test_langgraph_subgraph_inside_the_graph(
    where: str, how: str, candidate: Lib, oracle: Lib
) -> None:
    """Interop for a step-by-step migration: a graph compiled by LangGraph (always LangGraph:
    `oracle`) runs inside the graph under test, called from a node or added as a node, and
    its items stream through it."""

    def langgraph_subgraph() -> Any:
        b = oracle.StateGraph(Log)
        b.add_node("inner", lambda s: {"log": ["inner"]})
        b.add_edge(oracle.START, "inner")
        return b.compile()

    def run(lib: Lib) -> Any:
        sub = langgraph_subgraph()
        b = lib.StateGraph(Log)
        if where == "called_in_a_node":
            b.add_node("outer", lambda s: {"log": sub.invoke({"log": []})["log"]})
        else:
            b.add_node("outer", sub)
        b.add_edge(lib.START, "outer")
        graph = b.compile()
        if how == "invoke":
            return outcome(lambda: graph.invoke({"log": []}))
        return drain(graph.stream({"log": []}, stream_mode="updates", subgraphs=True))

    got, expected = both(run, candidate, oracle)
    assert got == expected


# ----------------------------------------------------------------------------- API


def test_state_graph_subscripted_with_one_or_two_type_arguments(
    candidate: Lib, oracle: Lib
) -> None:
    """test_runtime.py cannot even be collected without it: the type parameters of
    StateGraph after the first have defaults."""

    @dataclasses.dataclass
    class Context:
        user: str

    def run(lib: Lib) -> Any:
        def node(state: Log) -> Any:
            return {"log": ["node"]}

        results = []
        for alias in (
            lambda: lib.StateGraph[Log],
            lambda: lib.StateGraph[Log, Context],
            lambda: lib.StateGraph[Log, None, Log, Log],
        ):
            try:
                builder = alias()(Log)
            except TypeError as e:
                results.append(Raised.of(e))
                continue
            builder.add_node("node", node)
            builder.add_edge(lib.START, "node")
            results.append(outcome(lambda b=builder: b.compile().invoke({"log": []})))
        return results

    got, expected = both(run, candidate, oracle)
    assert got == expected
