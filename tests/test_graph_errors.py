"""Errors of the graph API, differentially: the same misuse must fail at the same moment
(add_node / add_edge / compile / invoke), with the same exception class chain and message.

Each case is a generator taking a `Lib`: it yields a label before each operation, so the
last label reached says where it raised. `EXPECTED` records what LangGraph does; it is
checked against the oracle (so a case cannot pass by not failing) and the candidate is
compared with the oracle."""

import asyncio
import logging
import operator
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypedDict

import pytest
from pydantic import BaseModel, field_validator

from tests.parity import Lib, Raised, drain, normalise

# ----------------------------------------------------------------------------- helpers


class State(TypedDict):
    x: int
    log: Annotated[list, operator.add]


class Model(BaseModel):
    x: int = 0


START_STATE = {"x": 0, "log": []}


def ok(state: Any) -> dict[str, Any]:
    return {"log": ["ok"]}


def route(state: Any) -> str:
    return "nowhere"


def staged(case: Callable[[Lib], Iterator[str]], lib: Lib) -> tuple[list[str], Any]:
    """The labels `case` reached, and what it returned (normalised) or raised (`Raised`)."""
    gen = case(lib)
    reached: list[str] = []
    try:
        while True:
            reached.append(next(gen))
    except StopIteration as stop:
        return reached, normalise(stop.value)
    except Exception as e:  # noqa: BLE001 - the exception is the outcome being compared
        return reached, Raised.of(e)


def one_node(lib: Lib, node: Any = ok, state: Any = State) -> Any:
    b = lib.StateGraph(state)
    b.add_node("a", node)
    b.add_edge(lib.START, "a")
    return b


# ----------------------------------------------------------------------------- build time


def no_entry_point(lib: Lib) -> Iterator[str]:
    b = lib.StateGraph(State)
    yield "add_node"
    b.add_node("a", ok)
    yield "compile"
    b.compile()


def edge_to_unknown_node(lib: Lib) -> Iterator[str]:
    b = one_node(lib)
    yield "add_edge"
    b.add_edge("a", "zzz")
    yield "compile"
    b.compile()


def edge_from_unknown_node(lib: Lib) -> Iterator[str]:
    b = one_node(lib)
    yield "add_edge"
    b.add_edge("zzz", "a")
    yield "compile"
    b.compile()


def duplicate_node(lib: Lib) -> Iterator[str]:
    b = lib.StateGraph(State)
    yield "add_node"
    b.add_node("a", ok)
    yield "add_node again"
    b.add_node("a", ok)


def duplicate_inferred_name(lib: Lib) -> Iterator[str]:
    b = lib.StateGraph(State)
    yield "add_node"
    b.add_node(ok)
    yield "add_node again"
    b.add_node(ok)


def reserved_name(name: str) -> Callable[[Lib], Iterator[str]]:
    def case(lib: Lib) -> Iterator[str]:
        b = lib.StateGraph(State)
        yield "add_node"
        b.add_node(name, ok)

    return case


def end_as_source(lib: Lib) -> Iterator[str]:
    b = one_node(lib)
    yield "add_edge"
    b.add_edge(lib.END, "a")


def start_as_target(lib: Lib) -> Iterator[str]:
    b = one_node(lib)
    yield "add_edge"
    b.add_edge("a", lib.START)


def join_from_unknown_node(lib: Lib) -> Iterator[str]:
    b = one_node(lib)
    b.add_node("b", ok)
    yield "add_edge"
    b.add_edge(["a", "zzz"], "b")
    yield "compile"
    b.compile()


def join_from_start(lib: Lib) -> Iterator[str]:
    b = one_node(lib)
    yield "add_edge"
    b.add_edge([lib.START, "a"], "a")


def join_to_unknown_node(lib: Lib) -> Iterator[str]:
    b = one_node(lib)
    yield "add_edge"
    b.add_edge(["a"], "zzz")
    yield "compile"
    b.compile()


def conditional_from_unknown_node(lib: Lib) -> Iterator[str]:
    b = one_node(lib)
    yield "add_conditional_edges"
    b.add_conditional_edges("zzz", route)
    yield "compile"
    b.compile()


def path_map_unknown_target(path_map: Any, router: Any) -> Callable[[Lib], Iterator[str]]:
    def case(lib: Lib) -> Iterator[str]:
        b = one_node(lib)
        b.add_node("b", ok)
        yield "add_conditional_edges"
        b.add_conditional_edges("a", router, path_map)
        yield "compile"
        b.compile()

    return case


def duplicate_branch(lib: Lib) -> Iterator[str]:
    b = one_node(lib)
    b.add_node("nowhere", ok)
    yield "add_conditional_edges"
    b.add_conditional_edges("a", route)
    yield "add_conditional_edges again"
    b.add_conditional_edges("a", route)


def interrupt_unknown_node(which: str) -> Callable[[Lib], Iterator[str]]:
    def case(lib: Lib) -> Iterator[str]:
        b = one_node(lib)
        yield "compile"
        b.compile(**{which: ["zzz"]})

    return case


def empty_sequence(lib: Lib) -> Iterator[str]:
    b = lib.StateGraph(State)
    yield "add_sequence"
    b.add_sequence([])


def duplicate_in_sequence(lib: Lib) -> Iterator[str]:
    b = lib.StateGraph(State)
    yield "add_sequence"
    b.add_sequence([("a", ok), ("a", ok)])


def not_a_callable(lib: Lib) -> Iterator[str]:
    b = lib.StateGraph(State)
    yield "add_node"
    b.add_node("a", "not callable")


def finish_point_unknown(lib: Lib) -> Iterator[str]:
    b = one_node(lib)
    yield "set_finish_point"
    b.set_finish_point("zzz")
    yield "compile"
    b.compile()


def destinations_unknown(lib: Lib) -> Iterator[str]:
    b = lib.StateGraph(State)
    yield "add_node"
    b.add_node("a", ok, destinations=("zzz",))
    b.add_edge(lib.START, "a")
    yield "compile"
    b.compile()


# ----------------------------------------------------------------------------- run time


def run(lib: Lib, builder: Any, inputs: Any = START_STATE, **kwargs: Any) -> Iterator[str]:
    yield "compile"
    graph = builder.compile()
    yield "invoke"
    return graph.invoke(inputs, **kwargs)


def two_writers_one_step(lib: Lib) -> Iterator[str]:
    b = lib.StateGraph(State)
    b.add_node("a", lambda s: {"x": 1})
    b.add_node("b", lambda s: {"x": 1})  # even an equal value is refused
    b.add_edge(lib.START, "a")
    b.add_edge(lib.START, "b")
    return (yield from run(lib, b))


def two_sends_one_key(lib: Lib) -> Iterator[str]:
    b = lib.StateGraph(State)
    b.add_node("a", lambda s: {"x": s["x"]})
    b.add_conditional_edges(lib.START, lambda s: [lib.Send("a", s), lib.Send("a", s)])
    return (yield from run(lib, b))


def commands_one_key(lib: Lib) -> Iterator[str]:
    node = lambda s: [lib.Command(update={"x": 1}), lib.Command(update={"x": 2})]  # noqa: E731
    return (yield from run(lib, one_node(lib, node)))


def returns(value: Any) -> Callable[[Lib], Iterator[str]]:
    def case(lib: Lib) -> Iterator[str]:
        return (yield from run(lib, one_node(lib, lambda s: value)))

    return case


def bad_input(value: Any) -> Callable[[Lib], Iterator[str]]:
    def case(lib: Lib) -> Iterator[str]:
        return (yield from run(lib, one_node(lib), value))

    return case


def router_key_missing(path_map: Any) -> Callable[[Lib], Iterator[str]]:
    def case(lib: Lib) -> Iterator[str]:
        b = one_node(lib)
        b.add_node("b", ok)
        b.add_conditional_edges("a", route, path_map)
        return (yield from run(lib, b))

    return case


def router_raises(lib: Lib) -> Iterator[str]:
    def router(state: Any) -> str:
        raise KeyError("inside router")

    b = one_node(lib)
    b.add_conditional_edges("a", router)
    return (yield from run(lib, b))


def parent_command_at_root(lib: Lib) -> Iterator[str]:
    node = lambda s: lib.Command(graph=lib.Command.PARENT, goto="a")  # noqa: E731
    return (yield from run(lib, one_node(lib, node)))


def pydantic_invalid_input(lib: Lib) -> Iterator[str]:
    return (yield from run(lib, one_node(lib, lambda s: {"x": 1}, Model), {"x": "abc"}))


def recursion_limit_zero(lib: Lib) -> Iterator[str]:
    return (yield from run(lib, one_node(lib), config={"recursion_limit": 0}))


def unknown_output_key(lib: Lib) -> Iterator[str]:
    return (yield from run(lib, one_node(lib), output_keys=["zzz"]))


def error_in_subgraph(lib: Lib) -> Iterator[str]:
    def boom(state: Any) -> dict[str, Any]:
        raise ValueError("deep boom")

    inner = one_node(lib, boom).compile()
    b = lib.StateGraph(State)
    b.add_node("sub", inner)
    b.add_edge(lib.START, "sub")
    return (yield from run(lib, b))


def error_beside_a_sibling(lib: Lib) -> Iterator[str]:
    """The stream keeps what was emitted before the failing step ended."""

    def boom(state: Any) -> dict[str, Any]:
        raise ValueError("boom")

    b = lib.StateGraph(State)
    b.add_node("first", ok)
    b.add_node("good", ok)
    b.add_node("bad", boom)
    b.add_edge(lib.START, "first")
    b.add_edge("first", "good")
    b.add_edge("first", "bad")
    yield "compile"
    graph = b.compile()
    yield "stream"
    items, error = drain(graph.stream(START_STATE, stream_mode="values"))
    return items, error


# (case, stage LangGraph raises at, exception class LangGraph raises)
EXPECTED: dict[str, tuple[Callable[[Lib], Iterator[str]], str, str]] = {
    "no_entry_point": (no_entry_point, "compile", "ValueError"),
    "edge_to_unknown_node": (edge_to_unknown_node, "compile", "ValueError"),
    "edge_from_unknown_node": (edge_from_unknown_node, "compile", "ValueError"),
    "duplicate_node": (duplicate_node, "add_node again", "ValueError"),
    "duplicate_inferred_name": (duplicate_inferred_name, "add_node again", "ValueError"),
    "reserved_start": (reserved_name("__start__"), "add_node", "ValueError"),
    "reserved_end": (reserved_name("__end__"), "add_node", "ValueError"),
    "name_with_pipe": (reserved_name("a|b"), "add_node", "ValueError"),
    "name_with_colon": (reserved_name("a:b"), "add_node", "ValueError"),
    "end_as_source": (end_as_source, "add_edge", "ValueError"),
    "start_as_target": (start_as_target, "add_edge", "ValueError"),
    "join_from_unknown_node": (join_from_unknown_node, "add_edge", "ValueError"),
    "join_from_start": (join_from_start, "add_edge", "ValueError"),
    "join_to_unknown_node": (join_to_unknown_node, "add_edge", "ValueError"),
    "conditional_from_unknown_node": (conditional_from_unknown_node, "compile", "ValueError"),
    "path_map_dict_unknown_target": (
        path_map_unknown_target({"b": "b", "c": "zzz"}, route),
        "compile",
        "ValueError",
    ),
    "path_map_list_unknown_target": (
        path_map_unknown_target(["b", "zzz"], route),
        "compile",
        "ValueError",
    ),
    "path_map_lambda_unknown_target": (
        path_map_unknown_target({"c": "zzz"}, lambda s: "c"),
        "compile",
        "ValueError",
    ),
    "duplicate_branch": (duplicate_branch, "add_conditional_edges again", "ValueError"),
    "interrupt_before_unknown": (
        interrupt_unknown_node("interrupt_before"),
        "compile",
        "ValueError",
    ),
    "interrupt_after_unknown": (interrupt_unknown_node("interrupt_after"), "compile", "ValueError"),
    "empty_sequence": (empty_sequence, "add_sequence", "ValueError"),
    "duplicate_in_sequence": (duplicate_in_sequence, "add_sequence", "ValueError"),
    "not_a_callable": (not_a_callable, "add_node", "TypeError"),
    "finish_point_unknown": (finish_point_unknown, "compile", "ValueError"),
    "destinations_unknown": (destinations_unknown, "compile", "ValueError"),
    "two_writers_one_step": (two_writers_one_step, "invoke", "<lib>.errors.InvalidUpdateError"),
    "two_sends_one_key": (two_sends_one_key, "invoke", "<lib>.errors.InvalidUpdateError"),
    "commands_one_key": (commands_one_key, "invoke", "<lib>.errors.InvalidUpdateError"),
    "returns_str": (returns("text"), "invoke", "<lib>.errors.InvalidUpdateError"),
    "returns_int": (returns(5), "invoke", "<lib>.errors.InvalidUpdateError"),
    "returns_list": (returns(["x"]), "invoke", "<lib>.errors.InvalidUpdateError"),
    "returns_pairs": (returns([("x", 1)]), "invoke", "<lib>.errors.InvalidUpdateError"),
    "input_none": (bad_input(None), "invoke", "<lib>.errors.EmptyInputError"),
    "input_str": (bad_input("text"), "invoke", "<lib>.errors.InvalidUpdateError"),
    "router_key_missing_dict": (router_key_missing({"b": "b"}), "invoke", "KeyError"),
    "router_key_missing_list": (router_key_missing(["b"]), "invoke", "KeyError"),
    "router_raises": (router_raises, "invoke", "KeyError"),
    "parent_command_at_root": (parent_command_at_root, "invoke", "<lib>.errors.ParentCommand"),
    "pydantic_invalid_input": (pydantic_invalid_input, "invoke", "ValidationError"),
    "recursion_limit_zero": (recursion_limit_zero, "invoke", "ValueError"),
    "unknown_output_key": (unknown_output_key, "invoke", "ValueError"),
    "error_in_subgraph": (error_in_subgraph, "invoke", "ValueError"),
}

# Misuse LangGraph accepts: (case, what it returns). A warning may be logged (compared too).
ACCEPTED: dict[str, Callable[[Lib], Iterator[str]]] = {
    "returns_none": returns(None),
    "returns_unknown_key": returns({"zzz": 1, "log": ["kept"]}),
    "input_empty_dict": bad_input({}),
    # dropped as LangGraph drops it; ferrograph warns too (tests/test_error_catalogue.py)
    "input_unknown_key": bad_input({"zzz": 1}),
    "goto_end": lambda lib: run(
        lib, one_node(lib, lambda s: lib.Command(update={"x": 1}, goto=lib.END))
    ),
    "start_to_end": lambda lib: _start_to_end(lib),
    "interrupt_before_unknown_at_invoke": lambda lib: run(
        lib, one_node(lib), interrupt_before=["zzz"]
    ),
    "pydantic_invalid_update": lambda lib: run(
        lib, one_node(lib, lambda s: {"x": "abc"}, Model), {"x": 0}
    ),
    "join_to_end": lambda lib: _join_to_end(lib),
    "error_beside_a_sibling": error_beside_a_sibling,
}


# Misuse LangGraph accepts (at most with a logged warning) and ferrograph refuses on purpose:
# README, "Where ferrograph is stricter than LangGraph". The oracle must still accept each,
# so a change on either side shows up here.
STRICTER: dict[str, tuple[Callable[[Lib], Iterator[str]], str]] = {
    "router_unknown_target_without_path_map": (
        router_key_missing(None), "Branch at node 'a' routed to unknown node"),
    "goto_unknown_node": (
        lambda lib: run(lib, one_node(lib, lambda s: lib.Command(goto="zzz"))),
        "Command at node 'a' routed to unknown node 'zzz'"),
    "send_to_unknown_node": (
        lambda lib: run(lib, _send_to(lib, "zzz")),
        "Branch at node '__start__' sent a packet to unknown node 'zzz'"),
}


def _send_to(lib: Lib, target: str) -> Any:
    b = lib.StateGraph(State)
    b.add_node("a", ok)
    b.add_conditional_edges(lib.START, lambda s: [lib.Send(target, s)])
    return b


def _start_to_end(lib: Lib) -> Iterator[str]:
    b = lib.StateGraph(State)
    b.add_node("a", ok)
    b.add_edge(lib.START, lib.END)
    return (yield from run(lib, b))


def _join_to_end(lib: Lib) -> Iterator[str]:
    b = one_node(lib)
    b.add_edge(["a"], lib.END)
    return (yield from run(lib, b))


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("name", EXPECTED)
def test_error(name: str, candidate: Lib, oracle: Lib) -> None:
    case, stage, error = EXPECTED[name]
    expected = staged(case, oracle)
    assert isinstance(expected[1], Raised), f"LangGraph no longer raises: {expected}"
    assert (expected[0][-1], expected[1].types[0]) == (stage, error), expected
    assert staged(case, candidate) == expected


@pytest.mark.filterwarnings("ignore:Unknown key")  # ferrograph's own (test_error_catalogue.py)
@pytest.mark.parametrize("name", ACCEPTED)
def test_accepted(name: str, candidate: Lib, oracle: Lib, caplog: pytest.LogCaptureFixture) -> None:
    def observe(lib: Lib) -> Any:
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            result = staged(ACCEPTED[name], lib)
        return result, [normalise(r.getMessage()) for r in caplog.records]

    expected = observe(oracle)
    assert not isinstance(expected[0][1], Raised), expected
    assert observe(candidate) == expected


@pytest.mark.parametrize("name", STRICTER)
def test_stricter_than_langgraph(name: str, candidate: Lib, oracle: Lib) -> None:
    case, message = STRICTER[name]
    assert not isinstance(staged(case, oracle)[1], Raised), "LangGraph now refuses it too"
    if candidate is oracle or candidate.name == "langgraph":
        pytest.skip("self-check mode: the candidate is langgraph")
    outcome = staged(case, candidate)[1]
    assert isinstance(outcome, Raised), outcome
    assert outcome.types[0] == "<lib>.errors.InvalidUpdateError"
    assert outcome.message.startswith(message), outcome.message


@pytest.mark.parametrize("where", ["sequential", "parallel", "subgraph"])
@pytest.mark.parametrize("method", ["invoke", "stream"])
def test_node_exception_reaches_the_caller_unchanged(
    where: str, method: str, candidate: Lib, oracle: Lib
) -> None:
    """The very exception object raised in the node, with LangGraph's note naming the task."""

    class Boom(ValueError):
        pass

    def observe(lib: Lib) -> Any:
        raised = Boom("boom")

        def boom(state: Any) -> dict[str, Any]:
            raise raised

        b = lib.StateGraph(State)
        if where == "subgraph":
            b.add_node("sub", one_node(lib, boom).compile())
            b.add_edge(lib.START, "sub")
        else:
            b.add_node("a", boom)
            b.add_edge(lib.START, "a")
            if where == "parallel":
                b.add_node("b", ok)
                b.add_edge(lib.START, "b")
        graph = b.compile()
        try:
            if method == "invoke":
                graph.invoke(START_STATE)
            else:
                list(graph.stream(START_STATE, stream_mode="updates"))
        except Exception as e:  # noqa: BLE001 - the exception is what is compared
            return e is raised, Raised.of(e), normalise(getattr(e, "__notes__", None))
        return "did not raise"

    expected = observe(oracle)
    assert expected[0] is True
    assert observe(candidate) == expected


class PositiveX(BaseModel):
    """A node's input schema that refuses the state once `x` is negative."""

    x: int

    @field_validator("x")
    @classmethod
    def positive(cls, x: int) -> int:
        if x < 0:
            raise ValueError("x must not be negative")
        return x


@pytest.mark.parametrize("where", ["top", "subgraph"])
@pytest.mark.parametrize("method", ["invoke", "stream", "ainvoke", "astream"])
def test_input_schema_refusing_the_state_fails_before_the_task(
    where: str, method: str, candidate: Lib, oracle: Lib
) -> None:
    """Reading a task's input fails before the task runs: LangGraph's note says so, with the
    task's path (and the enclosing task's note, through a subgraph)."""

    def observe(lib: Lib) -> Any:
        def picky(state: Any) -> dict[str, Any]:
            return {"log": [state.x]}

        b = lib.StateGraph(State)
        b.add_node("negate", lambda state: {"x": -1})
        b.add_edge(lib.START, "negate")
        if where == "top":
            b.add_node("team", picky, input_schema=PositiveX)
        else:
            inner = lib.StateGraph(State)
            inner.add_node("picky", picky, input_schema=PositiveX)
            inner.add_edge(lib.START, "picky")
            b.add_node("team", inner.compile())
        b.add_node("sibling", ok)
        b.add_edge("negate", "team")
        b.add_edge("negate", "sibling")
        graph = b.compile()

        async def arun() -> None:
            if method == "ainvoke":
                await graph.ainvoke(START_STATE)
            else:
                async for _ in graph.astream(START_STATE, stream_mode="messages"):
                    pass

        try:
            if method == "invoke":
                graph.invoke(START_STATE)
            elif method == "stream":
                list(graph.stream(START_STATE, stream_mode="messages"))
            else:
                asyncio.run(arun())
        except Exception as e:  # noqa: BLE001 - the exception is what is compared
            return Raised.of(e), normalise(getattr(e, "__notes__", None))
        return "did not raise"

    expected = observe(oracle)
    picky = "team" if where == "top" else "picky"
    assert any(n.startswith(f"Before task with name '{picky}'") for n in expected[1]), expected
    assert observe(candidate) == expected


def test_retry_exhausted_raises_the_last_error(candidate: Lib, oracle: Lib) -> None:
    def observe(lib: Lib) -> Any:
        errors: list[Exception] = []

        def flaky(state: Any) -> dict[str, Any]:
            errors.append(ConnectionError(f"attempt {len(errors) + 1}"))
            raise errors[-1]

        b = lib.StateGraph(State)
        b.add_node(
            "a",
            flaky,
            retry_policy=lib.RetryPolicy(max_attempts=2, initial_interval=0.001, jitter=False),
        )
        b.add_edge(lib.START, "a")
        try:
            b.compile().invoke(START_STATE)
        except ConnectionError as e:
            return len(errors), e is errors[-1], str(e)
        return "did not raise"

    assert observe(candidate) == observe(oracle) == (2, True, "attempt 2")


@pytest.mark.parametrize("limit", [1, 5, 25])
def test_recursion_error_type_and_message(limit: int, candidate: Lib, oracle: Lib) -> None:
    def observe(lib: Lib) -> Any:
        b = lib.StateGraph(State)
        b.add_node("spin", ok)
        b.add_edge(lib.START, "spin")
        b.add_edge("spin", "spin")
        try:
            b.compile().invoke(START_STATE, {"recursion_limit": limit})
        except RecursionError as e:  # GraphRecursionError is a RecursionError
            return Raised.of(e), isinstance(e, lib.errors.GraphRecursionError)
        return "did not raise"

    expected = observe(oracle)
    assert expected[1] is True
    assert observe(candidate) == expected


@pytest.mark.parametrize(
    "kwargs",
    [{"interrupt_before": ["b"]}, {"interrupt_after": ["a"]}, {"interrupt_before": "*"},
     {"interrupt_before": ["zzz"]}],
)
def test_per_run_breakpoints(kwargs: dict[str, Any], candidate: Lib, oracle: Lib) -> None:
    def run_both(lib: Lib) -> Any:
        b = lib.StateGraph(State)
        b.add_node("a", lambda s: {"x": 1})
        b.add_node("b", lambda s: {"x": 2})
        b.add_edge(lib.START, "a")
        b.add_edge("a", "b")
        graph = b.compile()
        return (graph.invoke({"x": 0, "log": []}, **kwargs),
                list(graph.stream({"x": 0, "log": []}, stream_mode="updates", **kwargs)))

    assert run_both(candidate) == run_both(oracle)
