"""The same graphs, built through the same code, run on ferrograph and on langgraph."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypedDict

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableLambda
from pydantic import BaseModel

from tests.oracle import LIBS, both, normalise


class Plain(TypedDict):
    x: int
    log: Annotated[list, operator.add]


class Model(BaseModel):
    x: int = 0
    log: Annotated[list, operator.add] = []
    label: str = "none"


@dataclasses.dataclass
class Data:
    x: int = 0
    log: Annotated[list, operator.add] = dataclasses.field(default_factory=list)


def appender(name: str, dx: int = 0) -> Callable[[Any], dict[str, Any]]:
    def node(state: Any) -> dict[str, Any]:
        x = state["x"] if isinstance(state, dict) else state.x
        return {"x": x + dx, "log": [name]}

    return node


def chain(lib: Any) -> Any:
    b = lib.StateGraph(Plain)
    b.add_node("a", appender("a", 1))
    b.add_node("b", appender("b", 10))
    b.add_edge(lib.START, "a")
    b.add_edge("a", "b")
    b.add_edge("b", lib.END)
    return b.compile()


def fan_out_join(lib: Any) -> Any:
    b = lib.StateGraph(Plain)
    for n in ("a", "b", "c"):
        b.add_node(n, appender(n))
        b.add_edge(lib.START, n)
    b.add_node("slow", appender("slow"))
    b.add_edge("c", "slow")
    b.add_node("join", appender("join", 1))
    b.add_edge(["a", "b", "slow"], "join")
    return b.compile()


def loop_with_sends(lib: Any) -> Any:
    b = lib.StateGraph(Plain)
    b.add_node("plan", appender("plan", 1))
    b.add_node("work", lambda s: {"log": [f"work{s['x']}"]})
    b.add_node("reduce", appender("reduce"))
    b.add_edge(lib.START, "plan")

    def route(state: Plain):
        if state["x"] < 3:
            return "plan"
        return [lib.Send("work", {"x": i, "log": []}) for i in range(3)]

    b.add_conditional_edges("plan", route)
    b.add_edge("work", "reduce")
    return b.compile()


def pydantic_state(lib: Any) -> Any:
    b = lib.StateGraph(Model)
    b.add_node("first", lambda s: {"x": s.x + 1, "log": [type(s).__name__]})
    b.add_node("second", lambda s: {"label": f"x={s.x}"})
    b.add_edge(lib.START, "first")
    b.add_edge("first", "second")
    return b.compile()


def dataclass_state(lib: Any) -> Any:
    b = lib.StateGraph(Data)
    b.add_node("only", lambda s: {"x": s.x * 2, "log": [type(s).__name__]})
    b.add_edge(lib.START, "only")
    return b.compile()


def messages_state(lib: Any) -> Any:
    def reply(state: Any) -> dict[str, Any]:
        last = state["messages"][-1]
        return {"messages": [AIMessage(content=f"echo {last.content}", id=f"r{len(state['messages'])}")]}

    def edit(state: Any) -> dict[str, Any]:
        first = state["messages"][0]
        return {"messages": [HumanMessage(content="edited", id=first.id)]}

    b = lib.StateGraph(lib.MessagesState)
    b.add_node("reply", reply)
    b.add_node("edit", edit)
    b.add_edge(lib.START, "reply")
    b.add_edge("reply", "edit")
    return b.compile()


class In(TypedDict):
    question: str


class Out(TypedDict):
    answer: str


class Whole(TypedDict):
    question: str
    answer: str
    scratch: str


def io_schemas(lib: Any) -> Any:
    b = lib.StateGraph(Whole, input_schema=In, output_schema=Out)
    b.add_node("think", lambda s: {"scratch": s["question"].upper()})
    b.add_node("answer", lambda s: {"answer": s["scratch"] + "!"})
    b.add_edge(lib.START, "think")
    b.add_edge("think", "answer")
    return b.compile()


def command_goto(lib: Any) -> Any:
    def decide(state: Plain):
        return lib.Command(update={"log": ["decide"]}, goto="right" if state["x"] else "left")

    b = lib.StateGraph(Plain)
    b.add_node("decide", decide, destinations=("left", "right"))
    b.add_node("left", appender("left"))
    b.add_node("right", appender("right"))
    b.add_edge(lib.START, "decide")
    return b.compile()


def subgraph(lib: Any) -> Any:
    inner = lib.StateGraph(Plain)
    inner.add_node("i1", appender("i1", 1))
    inner.add_node("i2", appender("i2", 1))
    inner.add_edge(lib.START, "i1")
    inner.add_edge("i1", "i2")
    b = lib.StateGraph(Plain)
    b.add_node("pre", appender("pre"))
    b.add_node("sub", inner.compile())
    b.add_node("post", appender("post"))
    b.add_edge(lib.START, "pre")
    b.add_edge("pre", "sub")
    b.add_edge("sub", "post")
    return b.compile()


def parent_command(lib: Any) -> Any:
    def escape(state: Plain):
        return lib.Command(graph=lib.Command.PARENT, goto="target", update={"log": ["escape"]})

    inner = lib.StateGraph(Plain)
    inner.add_node("escape", escape)
    inner.add_edge(lib.START, "escape")
    b = lib.StateGraph(Plain)
    b.add_node("sub", inner.compile(), destinations=("target",))
    b.add_node("target", appender("target"))
    b.add_edge(lib.START, "sub")
    return b.compile()


def entry_and_finish_points(lib: Any) -> Any:
    b = lib.StateGraph(Plain)
    b.add_sequence([("s1", appender("s1", 1)), ("s2", appender("s2", 1))])
    b.add_node("other", appender("other"))

    def pick(state: Plain) -> Literal["s1", "other"]:
        return "s1" if state["x"] == 0 else "other"

    b.set_conditional_entry_point(pick)
    b.set_finish_point("s2")
    return b.compile()


def path_maps(lib: Any) -> Any:
    b = lib.StateGraph(Plain)
    b.add_node("router", appender("router"))
    b.add_node("yes", appender("yes"))
    b.add_node("no", appender("no"))
    b.add_node("both1", appender("both1"))
    b.add_node("both2", appender("both2"))
    b.set_entry_point("router")
    b.add_conditional_edges("router", lambda s: s["x"] > 0, {True: "yes", False: "no"})
    b.add_conditional_edges("yes", lambda s: ["both1", "both2"], ["both1", "both2"])
    return b.compile()


def node_signatures(lib: Any) -> Any:
    def with_config(state: Plain, config):
        return {"log": [config["configurable"].get("user", "?"), config["metadata"]["langgraph_node"]]}

    def with_writer(state: Plain, writer):
        writer({"progress": state["x"]})
        return {"log": ["writer"]}

    def with_stream_writer(state: Plain):
        lib.get_stream_writer()("custom item")
        return {"log": ["stream_writer"]}

    b = lib.StateGraph(Plain)
    b.add_node("with_config", with_config)
    b.add_node("runnable", RunnableLambda(lambda s: {"log": ["runnable"]}))
    b.add_node("with_writer", with_writer)
    b.add_node("with_stream_writer", with_stream_writer)
    b.add_edge(lib.START, "with_config")
    b.add_edge("with_config", "runnable")
    b.add_edge("runnable", "with_writer")
    b.add_edge("with_writer", "with_stream_writer")
    return b.compile()


def retries(lib: Any) -> Any:
    attempts = {"n": 0}

    def flaky(state: Plain):
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise ConnectionError("try again")
        return {"log": [f"after {attempts['n']}"]}

    b = lib.StateGraph(Plain)
    policy = lib.RetryPolicy(max_attempts=3, initial_interval=0.001, jitter=False)
    b.add_node("flaky", flaky, retry_policy=policy)
    b.add_edge(lib.START, "flaky")
    return b.compile()


def deferred(lib: Any) -> Any:
    b = lib.StateGraph(Plain)
    b.add_node("quick", appender("quick"))
    b.add_node("long1", appender("long1"))
    b.add_node("long2", appender("long2"))
    b.add_node("final", appender("final"), defer=True)
    b.add_edge(lib.START, "quick")
    b.add_edge(lib.START, "long1")
    b.add_edge("long1", "long2")
    b.add_edge("quick", "final")
    b.add_edge("long2", "final")
    return b.compile()


SCENARIOS: dict[str, tuple[Callable[[Any], Any], Any, dict[str, Any]]] = {
    "chain": (chain, {"x": 0, "log": []}, {}),
    "fan_out_join": (fan_out_join, {"x": 0, "log": []}, {}),
    "loop_with_sends": (loop_with_sends, {"x": 0, "log": []}, {}),
    "pydantic_state": (pydantic_state, {"x": 1}, {}),
    "dataclass_state": (dataclass_state, {"x": 3, "log": []}, {}),
    "messages_state": (messages_state, {"messages": [("user", "hi")]}, {}),
    "io_schemas": (io_schemas, {"question": "why"}, {}),
    "command_goto": (command_goto, {"x": 1, "log": []}, {}),
    "subgraph": (subgraph, {"x": 0, "log": []}, {}),
    "parent_command": (parent_command, {"x": 0, "log": []}, {}),
    "entry_and_finish_points": (entry_and_finish_points, {"x": 0, "log": []}, {}),
    "path_maps": (path_maps, {"x": 1, "log": []}, {}),
    "node_signatures": (node_signatures, {"x": 2, "log": []},
                        {"configurable": {"user": "ada"}}),
    "retries": (retries, {"x": 0, "log": []}, {}),
    "deferred": (deferred, {"x": 0, "log": []}, {}),
}


def strip_message_ids(value: Any) -> Any:
    """Messages get random ids when none is given; compare everything else."""
    if isinstance(value, list):
        return [strip_message_ids(v) for v in value]
    if isinstance(value, tuple):
        return tuple(strip_message_ids(v) for v in value)
    if isinstance(value, dict):
        return {k: strip_message_ids(v) for k, v in value.items()}
    if hasattr(value, "model_copy") and hasattr(value, "id") and hasattr(value, "content"):
        return (type(value).__name__, value.content)
    return value


def canonical(items: list[Any]) -> list[Any]:
    """Stream items with ids normalised; items of one superstep may finish in any order
    (they run in parallel in both), so the list is compared as a sorted multiset."""
    return sorted(repr(strip_message_ids(normalise(i))) for i in items)


@pytest.mark.parametrize("name", SCENARIOS)
def test_invoke(name: str):
    build, inputs, config = SCENARIOS[name]
    fg, lg = both(lambda lib: strip_message_ids(build(lib).invoke(inputs, config)))
    assert fg == lg


@pytest.mark.parametrize("name", SCENARIOS)
@pytest.mark.parametrize("mode", ["values", "updates", ["updates", "values", "custom"],
                                  "tasks", "debug"])
def test_stream_modes(name: str, mode: Any):
    build, inputs, config = SCENARIOS[name]
    fg, lg = both(lambda lib: canonical(list(build(lib).stream(inputs, config,
                                                                stream_mode=mode))))
    assert fg == lg


@pytest.mark.parametrize("name", ["chain", "subgraph", "parent_command", "loop_with_sends"])
def test_values_order_is_deterministic_and_equal(name: str):
    build, inputs, config = SCENARIOS[name]
    fg, lg = both(lambda lib: strip_message_ids(
        list(build(lib).stream(inputs, config, stream_mode="values"))))
    assert fg == lg


@pytest.mark.parametrize("name", ["subgraph", "parent_command", "chain"])
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_subgraphs_and_versions(name: str, version: str):
    build, inputs, config = SCENARIOS[name]
    fg, lg = both(lambda lib: canonical(list(build(lib).stream(
        inputs, config, stream_mode=["updates", "values"], subgraphs=True, version=version))))
    assert fg == lg


def test_invoke_version_v2_and_output_keys():
    def run(lib: Any) -> Any:
        graph = chain(lib)
        out = graph.invoke({"x": 0, "log": []}, version="v2")
        return (type(out).__name__, out.value, graph.invoke({"x": 0, "log": []}, output_keys="x"),
                graph.invoke({"x": 0, "log": []}, stream_mode="updates"))

    fg, lg = both(run)
    assert fg == lg


def test_max_concurrency_one_gives_the_same_result():
    fg, lg = both(lambda lib: fan_out_join(lib).invoke({"x": 0, "log": []},
                                                       {"max_concurrency": 1}))
    assert fg == lg


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 5, 25])
def test_recursion_limit_boundaries(limit: int):
    def run(lib: Any) -> Any:
        b = lib.StateGraph(Plain)
        b.add_sequence([(f"n{i}", appender(f"n{i}")) for i in range(3)])
        b.add_edge(lib.START, "n0")
        return b.compile().invoke({"x": 0, "log": []}, {"recursion_limit": limit})

    fg, lg = both(run)
    assert fg == lg


def test_endless_loop_hits_the_default_limit():
    def run(lib: Any) -> Any:
        b = lib.StateGraph(Plain)
        b.add_node("spin", appender("spin"))
        b.add_edge(lib.START, "spin")
        b.add_edge("spin", "spin")
        return b.compile().invoke({"x": 0, "log": []})

    fg, lg = both(run)
    assert fg == lg and fg[1] == "GraphRecursionError"


def test_mermaid_drawing_matches():
    for build in (chain, fan_out_join, path_maps, deferred, command_goto):
        fg, lg = both(lambda lib, build=build: build(lib).get_graph().draw_mermaid())
        assert fg == lg, build.__name__


def test_config_reaches_nodes():
    def run(lib: Any) -> Any:
        seen = {}

        def node(state: Plain, config):
            seen.update(tags=config.get("tags"), user=config["configurable"].get("user"),
                        meta=config["metadata"].get("team"),
                        step=config["metadata"]["langgraph_step"],
                        nested=lib.get_config()["configurable"].get("user"))
            return {}

        b = lib.StateGraph(Plain)
        b.add_node("node", node)
        b.add_edge(lib.START, "node")
        b.compile().invoke({"x": 0, "log": []}, {"tags": ["t"], "metadata": {"team": "core"},
                                                 "configurable": {"user": "ada"}})
        return seen

    fg, lg = both(run)
    assert fg == lg


def test_context_schema_and_runtime():
    @dataclasses.dataclass
    class Ctx:
        user: str

    def run(lib: Any) -> Any:
        def node(state: Plain, runtime):
            return {"log": [runtime.context.user]}

        b = lib.StateGraph(Plain, context_schema=Ctx)
        b.add_node("node", node)
        b.add_edge(lib.START, "node")
        return b.compile().invoke({"x": 0, "log": []}, context=Ctx(user="ada"))

    fg, lg = both(run)
    assert fg == lg == ("ok", {"x": 0, "log": ["ada"]})


def test_both_libraries_are_really_compared():
    assert LIBS["ferrograph"].StateGraph is not LIBS["langgraph"].StateGraph
    assert LIBS["ferrograph"].StateGraph.__module__.startswith("ferrograph")


def test_subgraph_with_its_own_schema_ignores_parent_keys():
    class Inner(TypedDict):
        x: int

    def run(lib: Any) -> Any:
        inner = lib.StateGraph(Inner)
        inner.add_node("double", lambda s: {"x": s["x"] * 2})
        inner.add_edge(lib.START, "double")
        outer = lib.StateGraph(Plain)
        outer.add_node("sub", inner.compile())
        outer.add_edge(lib.START, "sub")
        graph = outer.compile()
        return (graph.invoke({"x": 3, "log": ["keep"]}),
                list(graph.stream({"x": 3, "log": []}, subgraphs=True, stream_mode="updates")))

    fg, lg = both(run)
    assert fg == lg and fg[0] == "ok"
