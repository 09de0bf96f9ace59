"""Root (non-dict) state schemas, differentially: `StateGraph(list)`,
`StateGraph(Annotated[list, operator.add])`, `StateGraph(int)`, a TypedDict of `__root__`
alone, `MessageGraph`. The whole state is LangGraph's root channel `__root__`: nodes and
routers are given the bare value and return its update, runs take and give it back bare.
Every scenario runs on langgraph (the oracle) and on the candidate (see tests/parity.py)."""

import asyncio
import itertools
import operator
import warnings
from typing import Annotated, Any, Literal, TypedDict

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage

from tests.parity import (
    Lib,
    Raised,
    Scenario,
    Shape,
    compared_stream,
    drain,
    normalise,
    outcome,
)
from tests.test_introspection_parity import drawings

# ----------------------------------------------------------------------------- graphs


class _Named:
    """A node named `name` that appends it (or `name|arg` for a `Send` arg) to the list."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.__name__ = name

    def __call__(self, state: Any) -> list[str]:
        if isinstance(state, list):
            return [self.name]
        return ["|".join((self.name, str(state)))]


def added_list(lib: Lib) -> Any:
    """A reducer root: a chain whose router reads the bare list."""
    b = lib.StateGraph(Annotated[list, operator.add])
    b.add_node("a", lambda s: [f"a{len(s)}"])
    b.add_node("b", lambda s: [f"b{len(s)}"])
    b.add_node("c", lambda s: [f"c{len(s)}"])
    b.add_edge(lib.START, "a")
    b.add_edge("a", "b")

    def again(state: list) -> str:
        return "a" if len(state) < 6 else "c"

    b.add_conditional_edges("b", again, ["a", "c"])
    b.add_edge("c", lib.END)
    return b.compile()


def last_value_int(lib: Lib) -> Any:
    """A plain root (last value wins): a loop on an int."""
    b = lib.StateGraph(int)
    b.add_node("inc", lambda x: x + 1)
    b.add_node("double", lambda x: x * 2)
    b.add_edge(lib.START, "inc")
    b.add_edge("inc", "double")
    b.add_conditional_edges("double", lambda x: "inc" if x < 50 else lib.END)
    return b.compile()


def plain_list(lib: Lib) -> Any:
    """`StateGraph(list)`: a node returning None leaves the value as it was."""
    b = lib.StateGraph(list)
    b.add_node("keep", lambda s: None)
    b.add_node("grow", lambda s: [*s, len(s)])
    b.add_edge(lib.START, "keep")
    b.add_edge("keep", "grow")
    return b.compile()


def typed_dict_root(lib: Lib) -> Any:
    """A TypedDict whose one key is `__root__` is a root schema too."""

    class State(TypedDict):
        __root__: Annotated[list, operator.add]

    b = lib.StateGraph(State)
    b.add_node("one", lambda s: [1])
    b.add_node("two", lambda s: [sum(s)])
    b.add_edge(lib.START, "one")
    b.add_edge("one", "two")
    return b.compile()


def send_after_send(lib: Lib) -> Any:
    """LangGraph's test_cond_edge_after_send."""

    def send_for_fun(state: Any) -> list[Any]:
        return [lib.Send("2", state), lib.Send("2", state)]

    def route_to_three(state: Any) -> Literal["3"]:
        return "3"

    b = lib.StateGraph(Annotated[list, operator.add])
    for name in ("1", "2", "3"):
        b.add_node(_Named(name))
    b.add_edge(lib.START, "1")
    b.add_conditional_edges("1", send_for_fun)
    b.add_conditional_edges("2", route_to_three)
    return b.compile()


def concurrent_sends(lib: Lib) -> Any:
    """LangGraph's test_concurrent_emit_sends: two sources' Sends and a plain route."""

    def send_for_fun(state: Any) -> list[Any]:
        return [lib.Send("2", 1), lib.Send("2", 2), "3.1"]

    def send_for_profit(state: Any) -> list[Any]:
        return [lib.Send("2", 3), lib.Send("2", 4)]

    def route_to_three(state: Any) -> Literal["3"]:
        return "3"

    b = lib.StateGraph(Annotated[list, operator.add])
    for name in ("1", "1.1", "2", "3", "3.1"):
        b.add_node(_Named(name))
    b.add_edge(lib.START, "1")
    b.add_edge(lib.START, "1.1")
    b.add_conditional_edges("1", send_for_fun)
    b.add_conditional_edges("1.1", send_for_profit)
    b.add_conditional_edges("2", route_to_three)
    return b.compile()


def commands(lib: Lib) -> Any:
    """`Command`s on a root graph: a bare update with a goto, a list of commands mixed with
    bare updates, a `Send` in a goto."""

    def first(state: list) -> Any:
        return lib.Command(update=["first"], goto="second")

    def second(state: list) -> Any:
        return [lib.Command(update=["second"]), ["bare"],
                lib.Command(goto=lib.Send("third", len(state)))]

    def third(state: Any) -> Any:
        return [f"third:{state}"]

    b = lib.StateGraph(Annotated[list, operator.add])
    b.add_node("first", first, destinations=("second",))
    b.add_node("second", second)
    b.add_node("third", third)
    b.add_edge(lib.START, "first")
    return b.compile()


def root_subgraph(lib: Lib) -> Any:
    """A root graph with a root subgraph node (LangGraph's test_get_graph_root_channel,
    made to do something)."""
    child = lib.StateGraph(Annotated[list, operator.add])
    child.add_node("child_node", lambda s: [f"child saw {len(s)}"])
    child.add_edge(lib.START, "child_node")
    parent = lib.StateGraph(Annotated[list, operator.add])
    parent.add_node("before", lambda s: ["before"])
    parent.add_node("child", child.compile())
    parent.add_edge(lib.START, "before")
    parent.add_edge("before", "child")
    return parent.compile()


def custom_writer(lib: Lib) -> Any:
    """A root node writing custom items."""

    def node(state: int) -> int:
        lib.get_stream_writer()({"saw": state})
        return state + 1

    b = lib.StateGraph(int)
    b.add_node("node", node)
    b.add_edge(lib.START, "node")
    return b.compile()


def bare_send(lib: Lib) -> Any:
    """A node of a plain root returning a bare `Send`: LangGraph writes it as the value and
    sends it as well."""
    b = lib.StateGraph(object)
    b.add_node("a", lambda s: lib.Send("b", f"from a ({s})"))
    b.add_node("b", lambda s: f"b got {s}")
    b.add_edge(lib.START, "a")
    return b.compile()


def messages_root(lib: Lib) -> Any:
    """`StateGraph(Annotated[list, add_messages])` (MessageGraph's state) with a model."""
    model = GenericFakeChatModel(messages=itertools.cycle(
        [AIMessage(content="hello there friend", id="ai-1")]))

    def chat(messages: list) -> Any:
        return model.invoke(messages)

    b = lib.StateGraph(Annotated[list[AnyMessage], lib.add_messages])
    b.add_node("chat", chat)
    b.add_node("tail", lambda messages: [("user", f"{len(messages)} messages")])
    b.add_edge(lib.START, "chat")
    b.add_edge("chat", "tail")
    return b.compile()


def async_nodes(lib: Lib) -> Any:
    """Async nodes and an async router on a root list."""

    async def first(state: list) -> list:
        await asyncio.sleep(0)
        return [f"first:{len(state)}"]

    async def route(state: list) -> str:
        return "second" if len(state) < 4 else lib.END

    b = lib.StateGraph(Annotated[list, operator.add])
    b.add_node("first", first)
    b.add_node("second", lambda s: ["second"])
    b.add_edge(lib.START, "first")
    b.add_conditional_edges("first", route, ["second", lib.END])
    b.add_edge("second", "first")
    return b.compile()


def dict_parent_root_child(lib: Lib) -> Any:
    """A root graph as a node of a dict graph: it is given the parent's state dict as its
    root value and its result is the parent node's update."""

    class Parent(TypedDict):
        x: int
        log: Annotated[list, operator.add]

    child = lib.StateGraph(dict)
    child.add_node("inner", lambda d: {"x": d["x"] + 1, "log": [f"inner saw {d['x']}"]})
    child.add_edge(lib.START, "inner")
    parent = lib.StateGraph(Parent)
    parent.add_node("child", child.compile())
    parent.add_edge(lib.START, "child")
    return parent.compile()


SCENARIOS = [
    Scenario("added_list", added_list, ["start"]),
    Scenario("last_value_int", last_value_int, 1),
    Scenario("plain_list", plain_list, [7]),
    Scenario("typed_dict_root", typed_dict_root, [10]),
    Scenario("send_after_send", send_after_send, ["0"], parallel=True),
    Scenario("concurrent_sends", concurrent_sends, ["0"], parallel=True),
    Scenario("commands", commands, ["in"]),
    Scenario("root_subgraph", root_subgraph, ["in"]),
    Scenario("custom_writer", custom_writer, 41),
    Scenario("messages_root", messages_root, [HumanMessage(content="hi", id="h-1")]),
    Scenario("dict_parent_root_child", dict_parent_root_child, {"x": 1, "log": []}),
]

ASYNC_ONLY = [Scenario("async_nodes", async_nodes, ["in"])]
"""Run by `ainvoke`/`astream` only (LangGraph's `invoke` refuses async nodes)."""

SHAPES = [
    Shape(mode, subgraphs, version)
    for version in ("v1", "v2")
    for subgraphs in (False, True)
    for mode in [None, "values", "updates", "custom", "tasks", "debug",
                 ["updates", "values"], ["values", "updates", "custom", "tasks", "debug"]]
]


def _shape_id(shape: Shape) -> str:
    mode = shape.stream_mode
    mode = "+".join(mode) if isinstance(mode, list) else str(mode)
    return mode + ("-subgraphs" if shape.subgraphs else "") + f"-{shape.version}"


# ----------------------------------------------------------------------------- runs


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_invoke(scenario: Scenario, candidate: Lib, oracle: Lib) -> None:
    got, expected = (outcome(lambda lib=lib: scenario.invoke(lib)) for lib in (candidate, oracle))
    assert not isinstance(expected, Raised), "scenarios are meant to run to the end"
    assert got == expected


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_invoke_v2(scenario: Scenario, candidate: Lib, oracle: Lib) -> None:
    got, expected = (outcome(lambda lib=lib: scenario.invoke(lib, version="v2"))
                     for lib in (candidate, oracle))
    assert got == expected


@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_stream(scenario: Scenario, shape: Shape, candidate: Lib, oracle: Lib) -> None:
    got, expected = compared_stream(scenario, shape, candidate, oracle)
    assert expected[1] is None, "scenarios are meant to run to the end"
    assert got == expected


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if not s.parallel] + ASYNC_ONLY,
                         ids=str)
def test_ainvoke_and_astream(scenario: Scenario, candidate: Lib, oracle: Lib) -> None:
    async def run(lib: Lib) -> Any:
        graph = scenario.build(lib)
        result = await graph.ainvoke(scenario.input)
        items = [item async for item in graph.astream(
            scenario.input, stream_mode=["values", "updates", "custom"])]
        return normalise((result, items))

    assert asyncio.run(run(candidate)) == asyncio.run(run(oracle))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_output_keys_root(scenario: Scenario, candidate: Lib, oracle: Lib) -> None:
    """`output_keys="__root__"` names the root channel: the same bare values."""
    got, expected = (outcome(lambda lib=lib: scenario.invoke(lib, output_keys="__root__"))
                     for lib in (candidate, oracle))
    assert got == expected


def test_bare_send(candidate: Lib, oracle: Lib) -> None:
    """`bare_send`: the run and its values (a `Send` shown as its node and arg: LangGraph's
    has a `timeout` field more)."""

    def shown(value: Any) -> Any:
        return ("Send", value.node, value.arg) if type(value).__name__ == "Send" else value

    def run(lib: Lib) -> Any:
        graph = bare_send(lib)
        return (outcome(lambda: graph.invoke("input")),
                [shown(v) for v in graph.stream("input", stream_mode="values")])

    assert run(candidate) == run(oracle)


def test_command_input(candidate: Lib, oracle: Lib) -> None:
    """A `Command` as a root graph's input: its bare update (written twice to a reducer
    root, as LangGraph does without a checkpointer) and its goto."""

    def run(lib: Lib) -> Any:
        graph = added_list(lib)
        return (outcome(lambda: graph.invoke(lib.Command(update=["cmd"]))),
                outcome(lambda: graph.invoke(lib.Command(update=["cmd"], goto="c"))),
                outcome(lambda: list(graph.stream(lib.Command(update=["cmd"]),
                                                  stream_mode=["values", "updates"]))))

    assert run(candidate) == run(oracle)


def test_messages_mode(candidate: Lib, oracle: Lib) -> None:
    """Tokens of a model in a node of a messages root graph, with their metadata."""

    def run(lib: Lib) -> Any:
        graph = messages_root(lib)
        items, err = drain(graph.stream([HumanMessage(content="hi", id="h-1")],
                                        stream_mode="messages"))
        return normalise([(chunk, {k: v for k, v in meta.items()
                                   if k.startswith("langgraph_")})
                          for chunk, meta in items]), err

    got, expected = run(candidate), run(oracle)
    assert expected[0], "the model streamed nothing"
    assert got == expected


def test_message_graph(candidate: Lib, oracle: Lib) -> None:
    """The deprecated `MessageGraph`: its warning and its root list of messages."""
    import importlib

    def run(lib: Lib) -> Any:
        message_graph = importlib.import_module(f"{lib.name}.graph").MessageGraph
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            b = message_graph()
        b.add_node("chatbot", lambda state: [("assistant", "Hello!")])
        b.set_entry_point("chatbot")
        b.set_finish_point("chatbot")
        result = b.compile().invoke([("user", "Hi there.")])
        return ([(w.category.__name__, str(w.message)) for w in caught],
                [(type(m).__name__, m.content) for m in result])

    assert run(candidate) == run(oracle)


# ----------------------------------------------------------------------------- errors


def two_writes_to_a_plain_root(lib: Lib) -> Any:
    b = lib.StateGraph(int)
    b.add_node("a", lambda x: x + 1)
    b.add_node("b", lambda x: x + 2)
    b.add_edge(lib.START, "a")
    b.add_edge(lib.START, "b")
    return b.compile()


def two_commands_to_a_plain_root(lib: Lib) -> Any:
    b = lib.StateGraph(int)
    b.add_node("a", lambda x: [lib.Command(update=1), lib.Command(update=2)])
    b.add_edge(lib.START, "a")
    return b.compile()


def node_raises(lib: Lib) -> Any:
    def boom(x: int) -> int:
        raise ValueError(f"boom at {x}")

    b = lib.StateGraph(Annotated[list, operator.add])
    b.add_node("boom", boom)
    b.add_edge(lib.START, "boom")
    return b.compile()


def endless_root_loop(lib: Lib) -> Any:
    b = lib.StateGraph(Annotated[list, operator.add])
    b.add_node("a", lambda s: [len(s)])
    b.add_edge(lib.START, "a")
    b.add_edge("a", "a")
    return b.compile()


ERRORS = [
    Scenario("two_writes_to_a_plain_root", two_writes_to_a_plain_root, 1),
    Scenario("two_commands_to_a_plain_root", two_commands_to_a_plain_root, 1),
    Scenario("node_raises", node_raises, ["x"]),
    Scenario("endless_root_loop", endless_root_loop, []),
    Scenario("none_input", added_list, None),
]


@pytest.mark.parametrize("scenario", ERRORS, ids=str)
def test_errors(scenario: Scenario, candidate: Lib, oracle: Lib) -> None:
    got, expected = (outcome(lambda lib=lib: scenario.invoke(lib)) for lib in (candidate, oracle))
    assert isinstance(expected, Raised)
    assert got == expected


@pytest.mark.parametrize("scenario", ERRORS, ids=str)
def test_errors_streamed(scenario: Scenario, candidate: Lib, oracle: Lib) -> None:
    got, expected = (scenario.stream(lib, stream_mode="updates") for lib in (candidate, oracle))
    if scenario.name != "two_commands_to_a_plain_root":
        # ferrograph shows the task's update before the step fails applying it, LangGraph
        # not (dict states alike: no difference of root states)
        assert normalise(got[0]) == normalise(expected[0])
    assert expected[1] is not None and got[1] is not None
    assert got[1].types[0] == expected[1].types[0]


# ----------------------------------------------------------------------------- drawings


@pytest.mark.parametrize("xray", [False, True])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_drawings(scenario: Scenario, xray: bool, candidate: Lib, oracle: Lib) -> None:
    assert drawings(scenario.build(candidate), xray) == drawings(scenario.build(oracle), xray)


def test_get_graph_root_channel(candidate: Lib, oracle: Lib) -> None:
    """LangGraph's test_get_graph_root_channel."""

    def build(lib: Lib) -> Any:
        child = lib.StateGraph(list)
        child.add_node("child_node", lambda x: x)
        child.add_edge(lib.START, "child_node")
        parent = lib.StateGraph(list)
        parent.add_node("child", child.compile())
        parent.add_edge(lib.START, "child")
        return parent.compile()

    assert drawings(build(candidate)) == drawings(build(oracle))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_json_schemas(scenario: Scenario, candidate: Lib, oracle: Lib) -> None:
    def schemas(lib: Lib) -> Any:
        graph = scenario.build(lib)
        return (outcome(graph.get_input_jsonschema), outcome(graph.get_output_jsonschema),
                outcome(lambda: graph.get_input_schema().model_json_schema()),
                outcome(lambda: graph.get_output_schema().model_json_schema()))

    assert schemas(candidate) == schemas(oracle)
