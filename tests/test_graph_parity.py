"""The graph API, differentially: every scenario is built through `lib.*` only, run on
langgraph (the oracle) and on the candidate, and the results, stream items and errors must be
equal after normalising run-dependent values (see tests/parity.py)."""

import dataclasses
import operator
import random
import re
import time
import warnings
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypedDict

import pytest
from langchain_core.messages import AIMessage, HumanMessage, RemoveMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from pydantic import BaseModel

from tests.parity import (
    IMPL_ENV,
    Lib,
    Raised,
    Scenario,
    Shape,
    candidate_name,
    compared_stream,
    drain,
    normalise,
    outcome,
)

# ----------------------------------------------------------------------------- states


class State(TypedDict):
    x: int
    log: Annotated[list, operator.add]


class ModelState(BaseModel):
    x: int = 0
    log: Annotated[list, operator.add] = []
    label: str = "none"


@dataclasses.dataclass
class DataState:
    x: int = 0
    log: Annotated[list, operator.add] = dataclasses.field(default_factory=list)


class Question(TypedDict):
    question: str


class Answer(TypedDict):
    answer: str


class Whole(TypedDict):
    question: str
    answer: str
    scratch: str


@dataclasses.dataclass
class Ctx:
    user: str
    loud: bool = False


START_STATE = {"x": 0, "log": []}


def step(name: str, dx: int = 0, jitter: bool = False) -> Callable[[Any], dict[str, Any]]:
    """A node appending `name` to `log` and adding `dx` to `x`. `jitter` makes tasks of one
    superstep finish in random order, as real work does."""

    def node(state: Any) -> dict[str, Any]:
        if jitter:
            time.sleep(random.random() * 0.002)
        x = state["x"] if isinstance(state, dict) else state.x
        return {"x": x + dx, "log": [name]}

    node.__name__ = name
    return node


def parallel(name: str) -> Callable[[Any], dict[str, Any]]:
    """A node that runs beside others in its superstep: writes only the reducer key."""

    def node(state: Any) -> dict[str, Any]:
        time.sleep(random.random() * 0.002)
        return {"log": [name]}

    return node


# ----------------------------------------------------------------------------- scenarios
# Each builder takes a `Lib` and returns a compiled graph.


def chain(lib: Lib) -> Any:
    b = lib.StateGraph(State)
    b.add_node("a", step("a", 1))
    b.add_node("b", step("b", 10))
    b.add_node("c", step("c", 100))
    b.add_edge(lib.START, "a")
    b.add_edge("a", "b")
    b.add_edge("b", "c")
    b.add_edge("c", lib.END)
    return b.compile()


def fan_out_join(lib: Lib) -> Any:
    # added in reverse alphabetical order: the reducer order of one step is by task path
    b = lib.StateGraph(State)
    for name in ("zeta", "beta", "alpha"):
        b.add_node(name, parallel(name))
        b.add_edge(lib.START, name)
    b.add_node("slow", parallel("slow"))
    b.add_edge("zeta", "slow")
    b.add_node("join", step("join", 1))
    b.add_edge(["alpha", "beta", "slow"], "join")  # waits for all three, runs once
    b.add_edge("join", lib.END)
    return b.compile()


def pydantic_state(lib: Lib) -> Any:
    b = lib.StateGraph(ModelState)
    b.add_node("first", lambda s: {"x": s.x + 1, "log": [type(s).__name__]})
    b.add_node("second", lambda s: {"label": f"x={s.x} log={len(s.log)}"})
    b.add_edge(lib.START, "first")
    b.add_edge("first", "second")
    return b.compile()


def dataclass_state(lib: Lib) -> Any:
    b = lib.StateGraph(DataState)
    b.add_node("double", lambda s: {"x": s.x * 2, "log": [type(s).__name__]})
    b.add_node("again", step("again", 1))
    b.add_edge(lib.START, "double")
    b.add_edge("double", "again")
    return b.compile()


def messages_state(lib: Lib) -> Any:
    def reply(state: Any) -> dict[str, Any]:
        last = state["messages"][-1]
        return {"messages": [AIMessage(content=f"echo {last.content}")]}

    def edit(state: Any) -> dict[str, Any]:
        return {"messages": [HumanMessage(content="edited", id="h1"), ("ai", "tuple form")]}

    def prune(state: Any) -> dict[str, Any]:
        return {"messages": [RemoveMessage(id=state["messages"][1].id)]}

    b = lib.StateGraph(lib.MessagesState)
    b.add_sequence([reply, edit, prune])
    b.add_edge(lib.START, "reply")
    return b.compile()


def custom_messages_key(lib: Lib) -> Any:
    class Chat(TypedDict):
        messages: Annotated[list, lib.add_messages]
        turns: int

    b = lib.StateGraph(Chat)
    b.add_node("bot", lambda s: {"messages": [("ai", f"turn {s['turns']}")], "turns": 1})
    b.add_edge(lib.START, "bot")
    return b.compile()


def io_schemas(lib: Lib) -> Any:
    b = lib.StateGraph(Whole, input_schema=Question, output_schema=Answer)
    b.add_node("think", lambda s: {"scratch": s["question"].upper()})
    b.add_node("answer", lambda s: {"answer": s["scratch"] + "!"})
    b.add_edge(lib.START, "think")
    b.add_edge("think", "answer")
    return b.compile()


def node_forms(lib: Lib) -> Any:
    def inferred(state: State) -> dict[str, Any]:
        return {"log": ["inferred"]}

    def positional_config(state: State, config: RunnableConfig) -> dict[str, Any]:
        return {"log": [config["metadata"]["langgraph_node"], config["configurable"]["user"]]}

    def keyword_config(state: State, *, config: RunnableConfig) -> dict[str, Any]:
        return {"log": [config["metadata"]["langgraph_step"]]}

    def unannotated_config(state, config):  # noqa: ANN001 - injected by parameter name
        return {"log": [sorted(config["metadata"]["langgraph_triggers"])]}

    b = lib.StateGraph(State)
    b.add_node(inferred)
    b.add_node("named", lambda s: {"x": s["x"] + 1, "log": ["named"]})
    b.add_node("runnable", RunnableLambda(lambda s: {"log": ["runnable"]}))
    b.add_node(positional_config)
    b.add_node("keyword_config", keyword_config)
    b.add_node("unannotated_config", unannotated_config)
    # A dict is LangGraph's RunnableParallel: each value run on the state, the dict of
    # their results the node's update.
    b.add_node("parallel", {"x": lambda s: s["x"] * 10, "log": lambda s: ["parallel"]})
    b.add_edge(lib.START, "inferred")
    b.add_edge("inferred", "named")
    b.add_edge("named", "runnable")
    b.add_edge("runnable", "positional_config")
    b.add_edge("positional_config", "keyword_config")
    b.add_edge("keyword_config", "unannotated_config")
    b.add_edge("unannotated_config", "parallel")
    return b.compile()


def runtime_context(lib: Lib) -> Any:
    def annotated(state: State, runtime: lib.Runtime[Ctx]) -> dict[str, Any]:
        return {"log": [runtime.context.user, type(runtime).__name__]}

    def by_name(state, runtime):  # noqa: ANN001 - injected by parameter name
        return {"log": [runtime.context.loud, type(runtime.context).__name__]}

    def writes(state: State, runtime: lib.Runtime[Ctx]) -> dict[str, Any]:
        runtime.stream_writer({"from": "runtime"})
        return {"log": ["writes"]}

    b = lib.StateGraph(State, context_schema=Ctx)
    b.add_sequence([annotated, by_name, writes])
    b.add_edge(lib.START, "annotated")
    return b.compile()


def writers(lib: Lib) -> Any:
    def by_name(state, writer):  # noqa: ANN001 - injected by parameter name
        writer({"progress": state["x"]})
        writer("text item")
        return {"x": state["x"] + 1}

    def annotated(state: State, writer: lib.StreamWriter) -> dict[str, Any]:
        writer(("tuple", state["x"]))
        return {"log": ["annotated"]}

    def from_context(state: State) -> dict[str, Any]:
        lib.get_stream_writer()({"via": "get_stream_writer"})
        lib.get_stream_writer()(None)
        return {"log": ["from_context"]}

    def silent(state: State) -> dict[str, Any]:
        return {"log": ["silent"]}

    b = lib.StateGraph(State)
    b.add_sequence([by_name, annotated, silent, from_context])
    b.add_edge(lib.START, "by_name")
    return b.compile()


def parallel_writers(lib: Lib) -> Any:
    def make(name: str) -> Callable[[Any], dict[str, Any]]:
        def node(state: State) -> dict[str, Any]:
            writer = lib.get_stream_writer()
            writer(f"{name} started")
            time.sleep(random.random() * 0.002)
            writer(f"{name} done")
            return {"log": [name]}

        return node

    b = lib.StateGraph(State)
    for name in ("p", "q", "r"):
        b.add_node(name, make(name))
        b.add_edge(lib.START, name)
    b.add_node("after", make("after"))
    b.add_edge(["p", "q", "r"], "after")
    return b.compile()


def node_metadata(lib: Lib) -> Any:
    def node(state: State, config: RunnableConfig) -> dict[str, Any]:
        meta = config["metadata"]
        return {"log": [meta.get("owner"), meta.get("team"), sorted(config.get("tags", []))]}

    b = lib.StateGraph(State)
    b.add_node("tagged", node, metadata={"owner": "ops", "team": "node-level"})
    b.add_node("plain", node)
    b.add_edge(lib.START, "tagged")
    b.add_edge("tagged", "plain")
    return b.compile()


def retries(lib: Lib) -> Any:
    attempts = {"n": 0}

    def flaky(state: State) -> dict[str, Any]:
        attempts["n"] += 1
        lib.get_stream_writer()(f"attempt {attempts['n']}")
        if attempts["n"] < 3:
            raise ConnectionError(f"try again ({attempts['n']})")
        return {"log": [f"succeeded on attempt {attempts['n']}"]}

    b = lib.StateGraph(State)
    policy = lib.RetryPolicy(max_attempts=3, initial_interval=0.001, jitter=False)
    b.add_node("flaky", flaky, retry_policy=policy)
    b.add_node("after", step("after"))
    b.add_edge(lib.START, "flaky")
    b.add_edge("flaky", "after")
    return b.compile()


def deferred(lib: Lib) -> Any:
    b = lib.StateGraph(State)
    b.add_node("quick", parallel("quick"))
    b.add_node("long1", parallel("long1"))
    b.add_node("long2", parallel("long2"))
    b.add_node("final", step("final"), defer=True)
    b.add_edge(lib.START, "quick")
    b.add_edge(lib.START, "long1")
    b.add_edge("long1", "long2")
    b.add_edge("quick", "final")
    b.add_edge("long2", "final")
    return b.compile()


def conditional_name_or_end(lib: Lib) -> Any:
    def route(state: State) -> str:
        return lib.END if state["x"] >= 3 else "inc"

    b = lib.StateGraph(State)
    b.add_node("inc", step("inc", 1))
    b.add_edge(lib.START, "inc")
    b.add_conditional_edges("inc", route)
    return b.compile()


def conditional_list(lib: Lib) -> Any:
    b = lib.StateGraph(State)
    b.add_node("router", step("router", 1))
    for name in ("left", "right", "unused"):
        b.add_node(name, parallel(name))
    b.add_edge(lib.START, "router")
    b.add_conditional_edges("router", lambda s: ["right", "left"])
    b.add_edge("left", lib.END)
    return b.compile()


def conditional_sends(lib: Lib) -> Any:
    def fan(state: State) -> list[Any]:
        return [lib.Send("work", {"x": i, "log": [f"sent {i}"]}) for i in (3, 1, 2)]

    def work(state: State) -> dict[str, Any]:
        time.sleep(random.random() * 0.002)
        return {"log": [f"work {state['x']} saw {state['log']}"]}

    b = lib.StateGraph(State)
    b.add_node("plan", step("plan", 1))
    b.add_node("work", work)
    b.add_node("reduce", step("reduce"))
    b.add_edge(lib.START, "plan")
    b.add_conditional_edges("plan", fan, ["work"])
    b.add_edge("work", "reduce")
    return b.compile()


def single_send_and_name(lib: Lib) -> Any:
    b = lib.StateGraph(State)
    b.add_node("work", parallel("work"))
    b.add_node("side", parallel("side"))
    b.add_conditional_edges(lib.START, lambda s: [lib.Send("work", {"x": 7, "log": []}), "side"])
    return b.compile()


def path_map_dict_and_list(lib: Lib) -> Any:
    b = lib.StateGraph(State)
    for name in ("router", "yes", "no", "both1", "both2"):
        b.add_node(name, parallel(name) if name.startswith("both") else step(name))
    b.set_entry_point("router")
    b.add_conditional_edges("router", lambda s: s["x"] > 0, {True: "yes", False: "no"})
    b.add_conditional_edges("yes", lambda s: ["both2", "both1"], ["both1", "both2"])
    b.add_conditional_edges("no", lambda s: "done", {"done": lib.END})
    return b.compile()


def sequence_and_points(lib: Lib) -> Any:
    b = lib.StateGraph(State)
    b.add_sequence([("s1", step("s1", 1)), ("s2", step("s2", 1)), step("s3", 1)])
    b.add_node("other", step("other"))

    def pick(state: State) -> Literal["s1", "other"]:
        return "s1" if state["x"] == 0 else "other"

    b.set_conditional_entry_point(pick)
    b.set_finish_point("s3")
    return b.compile()


def conditional_entry_with_path_map(lib: Lib) -> Any:
    b = lib.StateGraph(State)
    b.add_node("small", step("small"))
    b.add_node("big", step("big"))
    b.set_conditional_entry_point(lambda s: s["x"] > 5, {True: "big", False: "small"})
    b.set_finish_point("small")
    b.set_finish_point("big")
    return b.compile()


def command_goto(lib: Lib) -> Any:
    def decide(state: State) -> Any:
        return lib.Command(update={"log": ["decide"], "x": 5}, goto="right")

    def fan(state: State) -> Any:
        return lib.Command(
            update={"log": ["fan"]}, goto=[lib.Send("leaf", {"x": 1, "log": []}), "last"]
        )

    b = lib.StateGraph(State)
    b.add_node("decide", decide, destinations=("left", "right"))
    b.add_node("left", step("left"))
    b.add_node("right", fan, destinations={"leaf": "to leaf", "last": "to last"})
    b.add_node("leaf", parallel("leaf"))
    b.add_node("last", parallel("last"))
    b.add_edge(lib.START, "decide")
    return b.compile()


def command_update_only(lib: Lib) -> Any:
    b = lib.StateGraph(State)
    b.add_node("cmd", lambda s: lib.Command(update={"x": 42}))
    b.add_node("next", step("next"))
    b.add_edge(lib.START, "cmd")
    b.add_edge("cmd", "next")
    return b.compile()


def _inner(lib: Lib, prefix: str) -> Any:
    inner = lib.StateGraph(State)
    inner.add_node(f"{prefix}1", step(f"{prefix}1", 1))
    inner.add_node(f"{prefix}2", step(f"{prefix}2", 1))
    inner.add_edge(lib.START, f"{prefix}1")
    inner.add_edge(f"{prefix}1", f"{prefix}2")
    return inner.compile()


def subgraph(lib: Lib) -> Any:
    b = lib.StateGraph(State)
    b.add_node("pre", step("pre"))
    b.add_node("sub", _inner(lib, "i"))
    b.add_node("post", step("post"))
    b.add_edge(lib.START, "pre")
    b.add_edge("pre", "sub")
    b.add_edge("sub", "post")
    return b.compile()


def nested_subgraphs(lib: Lib) -> Any:
    middle = lib.StateGraph(State)
    middle.add_node("m", step("m", 1))
    middle.add_node("deep", _inner(lib, "d"))
    middle.add_edge(lib.START, "m")
    middle.add_edge("m", "deep")
    b = lib.StateGraph(State)
    b.add_node("outer", middle.compile())
    b.add_edge(lib.START, "outer")
    return b.compile()


def subgraph_called_in_node(lib: Lib) -> Any:
    inner = _inner(lib, "c")

    def call(state: State, config: RunnableConfig) -> dict[str, Any]:
        out = inner.invoke({"x": state["x"], "log": []}, config)
        return {"log": ["called", out["log"]]}

    b = lib.StateGraph(State)
    b.add_node("call", call)
    b.add_edge(lib.START, "call")
    return b.compile()


def subgraph_beside_sibling(lib: Lib) -> Any:
    inner = lib.StateGraph(State)
    inner.add_node("s1", parallel("s1"))
    inner.add_node("s2", parallel("s2"))
    inner.add_edge(lib.START, "s1")
    inner.add_edge("s1", "s2")
    b = lib.StateGraph(State)
    b.add_node("sub", inner.compile())
    b.add_node("sibling", parallel("sibling"))
    b.add_edge(lib.START, "sub")
    b.add_edge(lib.START, "sibling")
    return b.compile()


def command_to_parent(lib: Lib) -> Any:
    def escape(state: State) -> Any:
        return lib.Command(graph=lib.Command.PARENT, goto="target", update={"log": ["escape"]})

    inner = lib.StateGraph(State)
    inner.add_node("before", step("before", 1))
    inner.add_node("escape", escape)
    inner.add_edge(lib.START, "before")
    inner.add_edge("before", "escape")
    b = lib.StateGraph(State)
    b.add_node("sub", inner.compile(), destinations=("target",))
    b.add_node("target", step("target"))
    b.add_edge(lib.START, "sub")
    return b.compile()


def loop_until(lib: Lib) -> Any:
    b = lib.StateGraph(State)
    b.add_node("think", step("think", 1))
    b.add_node("act", step("act"))
    b.add_edge(lib.START, "think")
    b.add_conditional_edges("think", lambda s: "act" if s["x"] < 4 else lib.END)
    b.add_edge("act", "think")
    return b.compile()


def lenient_returns(lib: Lib) -> Any:
    b = lib.StateGraph(State)
    b.add_sequence(
        [
            ("none", lambda s: None),
            ("empty", lambda s: {}),
            ("unknown_key", lambda s: {"not_a_channel": 1, "log": ["known"]}),
            ("typed_dict", lambda s: State(x=9, log=["typed dict"])),
        ]
    )
    b.add_edge(lib.START, "none")
    return b.compile()


def conditional_and_plain_edge(lib: Lib) -> Any:
    b = lib.StateGraph(State)
    b.add_node("a", step("a"))
    b.add_node("b", parallel("b"))
    b.add_node("c", parallel("c"))
    b.add_edge(lib.START, "a")
    b.add_edge("a", "b")
    b.add_conditional_edges("a", lambda s: "c")
    return b.compile()


SCENARIOS = [
    Scenario("chain", chain, START_STATE),
    Scenario("fan_out_join", fan_out_join, START_STATE, parallel=True),
    Scenario("pydantic_state", pydantic_state, {"x": 1}),
    Scenario("dataclass_state", dataclass_state, {"x": 3, "log": ["in"]}),
    Scenario("messages_state", messages_state, {"messages": [("user", "hi")]}),
    Scenario(
        "custom_messages_key",
        custom_messages_key,
        {"messages": [HumanMessage("hi", id="m1")], "turns": 0},
    ),
    Scenario("io_schemas", io_schemas, {"question": "why", "scratch": "ignored?"}),
    Scenario("node_forms", node_forms, START_STATE, {"configurable": {"user": "ada"}}),
    Scenario("runtime_context", runtime_context, START_STATE, context=Ctx("ada", True)),
    Scenario("runtime_context_from_dict", runtime_context, START_STATE, context={"user": "bob"}),
    Scenario("writers", writers, START_STATE),
    Scenario("parallel_writers", parallel_writers, START_STATE, parallel=True),
    Scenario(
        "node_metadata",
        node_metadata,
        START_STATE,
        {"tags": ["run-tag"], "metadata": {"team": "run-level"}},
    ),
    Scenario("retries", retries, START_STATE),
    Scenario("deferred", deferred, START_STATE, parallel=True),
    Scenario("conditional_name_or_end", conditional_name_or_end, START_STATE),
    Scenario("conditional_list", conditional_list, START_STATE, parallel=True),
    Scenario("conditional_sends", conditional_sends, START_STATE, parallel=True),
    Scenario("single_send_and_name", single_send_and_name, START_STATE, parallel=True),
    Scenario("path_map_true", path_map_dict_and_list, {"x": 1, "log": []}, parallel=True),
    Scenario("path_map_false", path_map_dict_and_list, START_STATE),
    Scenario("sequence_and_points", sequence_and_points, START_STATE),
    Scenario("sequence_other_entry", sequence_and_points, {"x": 1, "log": []}),
    Scenario("conditional_entry_path_map", conditional_entry_with_path_map, {"x": 9, "log": []}),
    Scenario("command_goto", command_goto, START_STATE, parallel=True),
    Scenario("command_update_only", command_update_only, START_STATE),
    Scenario("subgraph", subgraph, START_STATE),
    Scenario("nested_subgraphs", nested_subgraphs, START_STATE),
    Scenario("subgraph_called_in_node", subgraph_called_in_node, START_STATE),
    Scenario("subgraph_beside_sibling", subgraph_beside_sibling, START_STATE, parallel=True),
    Scenario("command_to_parent", command_to_parent, START_STATE),
    Scenario("loop_until", loop_until, START_STATE),
    Scenario("lenient_returns", lenient_returns, START_STATE),
    Scenario("conditional_and_plain_edge", conditional_and_plain_edge, START_STATE, parallel=True),
]


def _shape_id(shape: Shape) -> str:
    mode = shape.stream_mode or "default"
    mode = "+".join(mode) if isinstance(mode, list) else mode
    return mode + ("-subgraphs" if shape.subgraphs else "") + f"-{shape.version}"


ALL_MODES = ["values", "updates", "custom", "tasks", "debug"]
SHAPES = [
    Shape(mode, subgraphs, version)
    for version in ("v1", "v2")
    for subgraphs in (False, True)
    for mode in [
        None,
        "values",
        "updates",
        "custom",
        "tasks",
        "debug",
        ["updates", "values"],
        ["custom", "updates"],
        ALL_MODES,
    ]
]


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_invoke(scenario: Scenario, candidate: Lib, oracle: Lib) -> None:
    got, expected = (outcome(lambda lib=lib: scenario.invoke(lib)) for lib in (candidate, oracle))
    assert not isinstance(expected, Raised), "scenarios are meant to run to the end"
    assert got == expected
    if isinstance(expected, dict):  # the state's key order is visible when printed
        assert list(got) == list(expected)


@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_stream(scenario: Scenario, shape: Shape, candidate: Lib, oracle: Lib) -> None:
    got, expected = compared_stream(scenario, shape, candidate, oracle)
    assert expected[1] is None, "scenarios are meant to run to the end"
    assert got == expected


@pytest.mark.parametrize("subgraphs", [False, True])
@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if not s.parallel], ids=str)
def test_stream_mode_tuple(scenario: Scenario, subgraphs: bool, candidate: Lib,
                           oracle: Lib) -> None:
    """A tuple of modes streams each of them, as bare items (only a list pairs them with
    their mode): LangGraph's behaviour."""
    got, expected = (
        normalise(scenario.stream(lib, stream_mode=("updates", "values"), subgraphs=subgraphs))
        for lib in (candidate, oracle))
    assert got == expected


@pytest.mark.parametrize(
    "scenario", [s for s in SCENARIOS if s.name in ("chain", "fan_out_join", "subgraph")], ids=str
)
@pytest.mark.parametrize(
    "kwargs",
    [
        {"version": "v2"},
        {"stream_mode": "updates"},
        {"stream_mode": ["updates", "values"]},
        {"output_keys": "x"},
        {"output_keys": ["log"]},
        {"output_keys": ["log"], "stream_mode": "updates"},
        {"output_keys": "nope"},
    ],
    ids=repr,
)
def test_invoke_options(scenario: Scenario, kwargs: dict, candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        out = scenario.invoke(lib, **kwargs)
        if scenario.parallel and isinstance(out, list):  # updates arrive in completion order
            return sorted(map(repr, normalise(out)))
        return out

    assert outcome(lambda: run(candidate)) == outcome(lambda: run(oracle))


@pytest.mark.parametrize("output_keys", ["x", ["log"], ["x", "log"]], ids=repr)
@pytest.mark.parametrize("mode", ["values", "updates"])
def test_stream_output_keys(output_keys: Any, mode: str, candidate: Lib, oracle: Lib) -> None:
    runs = [
        drain(chain(lib).stream(START_STATE, stream_mode=mode, output_keys=output_keys))
        for lib in (candidate, oracle)
    ]
    assert normalise(runs[0]) == normalise(runs[1])


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s.parallel], ids=str)
def test_max_concurrency_one(scenario: Scenario, candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        graph = scenario.build(lib)
        config = {**(scenario.config or {}), "max_concurrency": 1}
        return graph.invoke(scenario.input, config), list(
            graph.stream(scenario.input, config, stream_mode="values")
        )

    assert outcome(lambda: run(candidate)) == outcome(lambda: run(oracle))


def test_config_reaches_nodes(candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        seen: dict[str, Any] = {}

        def node(state: State, config: RunnableConfig) -> dict[str, Any]:
            inner = lib.get_config()
            seen["metadata"] = {
                k: v
                for k, v in config["metadata"].items()
                if k
                in (
                    "langgraph_node",
                    "langgraph_step",
                    "langgraph_triggers",
                    "langgraph_path",
                    "langgraph_checkpoint_ns",
                    "team",
                )
            }
            seen["tags"] = config.get("tags")
            seen["user"] = config["configurable"].get("user")
            seen["recursion_limit"] = config.get("recursion_limit")
            seen["same_as_get_config"] = inner["metadata"] == config["metadata"] and inner[
                "configurable"
            ].get("user") == config["configurable"].get("user")
            return {}

        b = lib.StateGraph(State)
        b.add_node("first", step("first"))
        b.add_node("node", node)
        b.add_edge(lib.START, "first")
        b.add_edge("first", "node")
        config = {
            "tags": ["t1", "t2"],
            "metadata": {"team": "core"},
            "configurable": {"user": "ada"},
            "recursion_limit": 9,
        }
        b.compile().invoke(START_STATE, config)
        return seen

    got, expected = outcome(lambda: run(candidate)), outcome(lambda: run(oracle))
    assert got == expected
    assert expected["same_as_get_config"] is True


def _received(value: Any) -> str:
    """What an injectable parameter received, comparable across implementations."""
    if isinstance(value, dict):
        return "config"
    if callable(value):
        return "writer"
    return "Runtime" if type(value).__name__ == "Runtime" else repr(value)


def _signature_cases(lib: Lib, out: Callable[[str], Any]) -> dict[str, Callable[..., Any]]:
    """Functions whose parameters are named like the injected ones, annotated every way
    LangGraph tells apart: each returns `out` of what its parameter received."""

    def config_untyped(state, config=0): return out(_received(config))  # noqa: E704
    def config_typed(state, config: RunnableConfig): return out(_received(config))  # noqa: E704
    def config_optional(state, config: RunnableConfig | None = None):  # noqa: E704
        return out(_received(config))
    def config_as_text(state, config: "RunnableConfig"): return out(_received(config))  # noqa: E704
    def config_as_dict(state, config: dict = 0): return out(_received(config))  # noqa: E704
    def config_as_any(state, config: Any = 0): return out(_received(config))  # noqa: E704
    def config_keyword_only(state, *, config): return out(_received(config))  # noqa: E704
    def writer_typed(state, writer: lib.StreamWriter): return out(_received(writer))  # noqa: E704
    def writer_as_int(state, writer: int = 5): return out(_received(writer))  # noqa: E704
    def runtime_any_type(state, runtime: int = 3): return out(_received(runtime))  # noqa: E704

    return {f.__name__: f for f in (
        config_untyped, config_typed, config_optional, config_as_text, config_as_dict,
        config_as_any, config_keyword_only, writer_typed, writer_as_int, runtime_any_type)}


SIGNATURE_CASES = ["config_untyped", "config_typed", "config_optional", "config_as_text",
                   "config_as_dict", "config_as_any", "config_keyword_only", "writer_typed",
                   "writer_as_int", "runtime_any_type"]


@pytest.mark.parametrize("case", SIGNATURE_CASES)
@pytest.mark.parametrize("as_router", [False, True], ids=["node", "router"])
def test_injected_parameters_follow_their_annotations(
        case: str, as_router: bool, candidate: Lib, oracle: Lib) -> None:
    """A node (or router) gets `config`/`writer`/`runtime` only under the annotations
    LangGraph gives them under; otherwise its default stands, and a `config` annotated with
    another type gets LangGraph's warning when the node is added."""

    def run(lib: Lib) -> Any:
        routed: list[str] = []
        if as_router:
            fn = _signature_cases(lib, lambda got: (routed.append(got), lib.END)[1])[case]
        else:
            fn = _signature_cases(lib, lambda got: {"log": [got]})[case]
        b = lib.StateGraph(State)
        b.add_node("first", step("first"))
        b.add_edge(lib.START, "first")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if as_router:
                b.add_conditional_edges("first", fn)
            else:
                b.add_node("node", fn)
                b.add_edge("first", "node")
        return b.compile().invoke(START_STATE), routed, [str(w.message) for w in caught]

    got, expected = outcome(lambda: run(candidate)), outcome(lambda: run(oracle))
    assert got == expected


def test_get_config_outside_a_run(candidate: Lib, oracle: Lib) -> None:
    assert outcome(candidate.get_config) == outcome(oracle.get_config)


def test_retry_counts_attempts_and_gives_up(candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib, failures: int) -> Any:
        calls: list[int] = []

        def flaky(state: State) -> dict[str, Any]:
            calls.append(len(calls) + 1)
            if len(calls) <= failures:
                raise ConnectionError(f"down {len(calls)}")
            return {"log": [len(calls)]}

        b = lib.StateGraph(State)
        b.add_node(
            "flaky",
            flaky,
            retry_policy=lib.RetryPolicy(max_attempts=3, initial_interval=0.001, jitter=False),
        )
        b.add_edge(lib.START, "flaky")
        return outcome(lambda: b.compile().invoke(START_STATE)), calls

    for failures in (0, 2, 3, 5):
        assert run(candidate, failures) == run(oracle, failures), failures


def test_retry_on_filters_exceptions(candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib, error: Exception, retry_on: Any) -> Any:
        calls = []

        def node(state: State) -> dict[str, Any]:
            calls.append(1)
            raise error

        b = lib.StateGraph(State)
        b.add_node(
            "node",
            node,
            retry_policy=lib.RetryPolicy(
                max_attempts=2, initial_interval=0.001, jitter=False, retry_on=retry_on
            ),
        )
        b.add_edge(lib.START, "node")
        return outcome(lambda: b.compile().invoke(START_STATE)), len(calls)

    default = oracle.RetryPolicy().retry_on
    cases = [
        (ValueError("v"), default),
        (ConnectionError("c"), default),
        (KeyError("k"), KeyError),
        (KeyError("k"), (TypeError, KeyError)),
        (TypeError("t"), lambda e: isinstance(e, TypeError)),
        (TypeError("t"), KeyError),
    ]
    for error, retry_on in cases:
        retry_on_c = candidate.RetryPolicy().retry_on if retry_on is default else retry_on
        assert run(candidate, error, retry_on_c) == run(oracle, error, retry_on), error


# ----------------------------------------------------------------------------- recursion


def endless(lib: Lib) -> Any:
    b = lib.StateGraph(State)
    b.add_node("spin", step("spin", 1))
    b.add_edge(lib.START, "spin")
    b.add_edge("spin", "spin")
    return b.compile()


def chain_of(lib: Lib, n: int) -> Any:
    b = lib.StateGraph(State)
    b.add_sequence([(f"n{i}", step(f"n{i}", 1)) for i in range(n)])
    b.add_edge(lib.START, "n0")
    return b.compile()


@pytest.mark.parametrize("limit", [1, 5, 25])
def test_endless_loop_hits_the_limit(limit: int, candidate: Lib, oracle: Lib) -> None:
    runs = [
        drain(endless(lib).stream(START_STATE, {"recursion_limit": limit}, stream_mode="updates"))
        for lib in (candidate, oracle)
    ]
    assert normalise(runs[0]) == normalise(runs[1])
    assert runs[1][1] is not None and "GraphRecursionError" in runs[1][1].types[0]
    assert len(runs[1][0]) == limit  # LangGraph runs exactly `limit` steps first


def test_endless_loop_default_limit(candidate: Lib, oracle: Lib) -> None:
    got, expected = (
        outcome(lambda lib=lib: endless(lib).invoke(START_STATE)) for lib in (candidate, oracle)
    )
    assert got == expected


@pytest.mark.parametrize(
    ("n", "limit"), [(n, n + d) for n in (1, 2, 3, 6) for d in (-1, 0, 1, 2) if n + d >= 1]
)
def test_recursion_limit_boundary_on_a_chain(
    n: int, limit: int, candidate: Lib, oracle: Lib
) -> None:
    """A chain of n nodes needs recursion_limit >= n + 1 in LangGraph."""
    runs = [
        drain(
            chain_of(lib, n).stream(
                START_STATE, {"recursion_limit": limit}, stream_mode=["values", "updates"]
            )
        )
        for lib in (candidate, oracle)
    ]
    assert normalise(runs[0]) == normalise(runs[1])
    assert (runs[1][1] is None) == (limit > n)


def test_recursion_limit_zero(candidate: Lib, oracle: Lib) -> None:
    got, expected = (
        outcome(lambda lib=lib: chain_of(lib, 1).invoke(START_STATE, {"recursion_limit": 0}))
        for lib in (candidate, oracle)
    )
    assert got == expected


@pytest.mark.parametrize("limit", [2, 3, 4, 5])
def test_recursion_limit_in_subgraph(limit: int, candidate: Lib, oracle: Lib) -> None:
    """The parent's limit is passed down; the subgraph counts its own steps."""

    def build(lib: Lib) -> Any:
        b = lib.StateGraph(State)
        b.add_node("sub", chain_of(lib, 3))
        b.add_edge(lib.START, "sub")
        return b.compile()

    runs = [
        drain(
            build(lib).stream(
                START_STATE, {"recursion_limit": limit}, stream_mode="updates", subgraphs=True
            )
        )
        for lib in (candidate, oracle)
    ]
    assert normalise(runs[0]) == normalise(runs[1])


@pytest.mark.parametrize("limit", [4, 5, 8, 9])
def test_recursion_limit_on_a_conditional_loop(limit: int, candidate: Lib, oracle: Lib) -> None:
    # loop_until runs think,act,think,act,think,act,think,act,think: 9 steps
    scenario = next(s for s in SCENARIOS if s.name == "loop_until")
    runs = [
        drain(scenario.build(lib).stream(START_STATE, {"recursion_limit": limit}))
        for lib in (candidate, oracle)
    ]
    assert normalise(runs[0]) == normalise(runs[1])


# ----------------------------------------------------------------------------- drawing


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_draw_mermaid(scenario: Scenario, candidate: Lib, oracle: Lib) -> None:
    expected = scenario.build(oracle).get_graph().draw_mermaid()
    got = scenario.build(candidate).get_graph().draw_mermaid()
    assert isinstance(got, str) and got
    header = expected[: expected.index("graph TD;") + len("graph TD;")]
    assert got.startswith(header)
    nodes = set(re.findall(r"^\t(\w+)\(", expected, re.M)) | set(
        re.findall(r"^\t(\w+)\[", expected, re.M)
    )
    assert nodes, expected
    for node in nodes:
        assert re.search(rf"\b{re.escape(node)}\b", got), node


def test_the_candidate_is_really_ferrograph(candidate: Lib) -> None:
    if candidate_name() != "ferrograph":
        pytest.skip(f"{IMPL_ENV}={candidate_name()}: checking the oracle against itself")
    assert candidate.StateGraph.__module__.startswith("ferrograph")
