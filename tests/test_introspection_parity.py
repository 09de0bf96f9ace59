"""What a graph says about itself, differentially: each graph is built with langgraph (the
oracle) and with the candidate through `lib.*` only, and what the two answer must be equal.

- reducer signatures checked at `StateGraph(...)`;
- the input, output and context JSON schemas (`get_input_jsonschema`, ...);
- drawings (`get_graph(xray=...)`): JSON, Mermaid and ASCII output;
- managed values (`RemainingSteps`, `IsLastStep`): recognised, and what nodes see of them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import operator
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

import pytest
from langchain_core.runnables import RunnableLambda
from langgraph.managed import IsLastStep, RemainingSteps
from pydantic import BaseModel
from typing_extensions import NotRequired, Required, TypedDict  # Pydantic's, on 3.10/3.11

from tests.parity import Lib
from tests.test_graph_parity import SCENARIOS

# ------------------------------------------------------------------ reducer signatures


def _one(a: Any) -> Any:
    return a


def _three(a: Any, b: Any, c: Any) -> Any:
    return a + b


def _three_defaulted(a: Any, b: Any, c: Any = None) -> Any:
    return a + b


def _star(*args: Any) -> Any:
    return args[0] + args[1]


def _two_and_keyword(a: Any, b: Any, *, how: str = "add") -> Any:
    return a + b


class _Adder:
    def __call__(self, a: Any, b: Any) -> Any:
        return a + b


class _BadAdder:
    def __call__(self, a: Any) -> Any:
        return a


REDUCERS = {
    "one_param": _one,
    "three_params": _three,
    "three_params_one_defaulted": _three_defaulted,
    "var_positional": _star,
    "two_and_keyword_only": _two_and_keyword,
    "lambda_two": lambda a, b: a + b,
    "lambda_one": lambda a: a,
    "operator_add": operator.add,
    "callable_object": _Adder(),
    "callable_object_bad": _BadAdder(),
}


def _outcome(fn: Any) -> Any:
    try:
        return ("ok", fn())
    except Exception as e:  # noqa: BLE001 - the outcome is what is compared
        return (type(e).__name__, str(e))


@pytest.mark.parametrize("reducer", list(REDUCERS), ids=str)
def test_reducer_signature_is_checked_at_state_graph(
    reducer: str, candidate: Lib, oracle: Lib
) -> None:
    fn = REDUCERS[reducer]

    State = TypedDict("State", {"items": Annotated[list, fn]})  # noqa: UP013 - fn is local

    def run(lib: Lib) -> Any:
        builder = lib.StateGraph(State)
        builder.add_node("a", lambda s: {"items": [1]})
        builder.add_edge(lib.START, "a")
        return builder.compile().invoke({"items": [0]})

    expected = _outcome(lambda: run(oracle))
    assert _outcome(lambda: run(candidate)) == expected
    if reducer in ("one_param", "three_params", "var_positional"):
        assert expected[0] == "ValueError" and "Invalid reducer signature" in expected[1]


class _NotLastExtra(TypedDict):
    items: Annotated[list, operator.add, "documentation, not a reducer"]


class _NotRequiredReducer(TypedDict):
    items: NotRequired[Annotated[list, operator.add]]


class _ReducerOnNotRequired(TypedDict):
    items: Annotated[NotRequired[list], operator.add]


@pytest.mark.parametrize(
    "schema", [_NotLastExtra, _NotRequiredReducer, _ReducerOnNotRequired],
    ids=lambda s: s.__name__)
def test_which_annotation_is_the_reducer(schema: Any, candidate: Lib, oracle: Lib) -> None:
    """Only the last `Annotated` extra is a reducer; `NotRequired` around or inside it does
    not hide it."""

    def run(lib: Lib) -> Any:
        builder = lib.StateGraph(schema)
        builder.add_node("a", lambda s: {"items": [1]})
        builder.add_edge(lib.START, "a")
        return builder.compile().invoke({"items": [0]})

    assert _outcome(lambda: run(candidate)) == _outcome(lambda: run(oracle))


# ------------------------------------------------------------------------ JSON schemas


class _Parent(TypedDict):
    inherited: str
    inherited_optional: str | None


class _Total(_Parent):
    plain: int
    optional: str | None
    required: Required[str]
    not_required: NotRequired[dict]
    annotated_required: Annotated[Required[str], "doc"]
    annotated_not_required: Annotated[NotRequired[str], "doc"]
    summed: Annotated[list[int], operator.add]


class _Partial(_Parent, total=False):
    plain: int
    required: Required[str]
    summed: Annotated[list[int], operator.add]


class _Out(TypedDict):
    plain: int
    extra: str


@dataclasses.dataclass
class _DataDefaults:
    val1: str
    val2: int | None
    val3: Annotated[float | None, "optional annotated"]
    val4: str | None = None
    val5: list[int] = dataclasses.field(default_factory=lambda: [1, 2, 3])
    val7: str = dataclasses.field(default=...)
    val8: Annotated[int, "some metadata"] = 42
    val9: Annotated[str, "more metadata"] = dataclasses.field(default="some foo")
    val10: Annotated[list[str], operator.add] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(kw_only=True)
class _DataKwOnly:
    first: str
    second: int = 2
    _private: str = "p"
    schema: str = "a reserved pydantic name"


class _Model(BaseModel):
    plain: int
    defaulted: str = "d"
    summed: Annotated[list[int], operator.add] = []


class _PlainClass:
    plain: int
    optional: str | None


class _ContextTD(TypedDict):
    model: str
    temperature: NotRequired[float]


@dataclasses.dataclass
class _ContextDC:
    model: str
    temperature: float = 0.5


class _ContextModel(BaseModel):
    model: str = "m"


SCHEMA_CASES: dict[str, dict[str, Any]] = {
    "typeddict_total": {"state": _Total},
    "typeddict_partial": {"state": _Partial},
    "typeddict_in_out": {"state": _Total, "input_schema": _Partial, "output_schema": _Out},
    "dataclass_defaults": {"state": _DataDefaults},
    "dataclass_kw_only": {"state": _DataKwOnly},
    "dataclass_output_of_typeddict_state": {"state": _Total, "output_schema": _DataDefaults},
    "pydantic": {"state": _Model},
    "pydantic_in_typeddict_out": {"state": _Model, "output_schema": _Out},
    "plain_class": {"state": _PlainClass},
    "context_typeddict": {"state": _Total, "context_schema": _ContextTD},
    "context_dataclass": {"state": _Total, "context_schema": _ContextDC},
    "context_pydantic": {"state": _Total, "context_schema": _ContextModel},
    "named_lower": {"state": _DataDefaults, "name": "my_graph"},
    "named_upper": {"state": _DataDefaults, "name": "MyGraph"},
}


def _schemas(lib: Lib, case: dict[str, Any]) -> dict[str, Any]:
    kwargs = {k: v for k, v in case.items() if k not in ("state", "name")}
    builder = lib.StateGraph(case["state"], **kwargs)
    builder.add_node("n", lambda s: {})
    builder.add_edge(lib.START, "n")
    graph = builder.compile(name=case.get("name"))
    return {
        "input": _outcome(graph.get_input_jsonschema),
        "output": _outcome(graph.get_output_jsonschema),
        "context": _outcome(graph.get_context_jsonschema),
        "input_model": _outcome(lambda: graph.get_input_schema().model_json_schema()),
        "output_model": _outcome(lambda: graph.get_output_schema().model_json_schema()),
    }


@pytest.mark.parametrize("case", list(SCHEMA_CASES), ids=str)
def test_json_schemas(case: str, candidate: Lib, oracle: Lib) -> None:
    expected = _schemas(oracle, SCHEMA_CASES[case])
    assert _schemas(candidate, SCHEMA_CASES[case]) == expected


def test_dataclass_defaults_make_keys_optional(candidate: Lib) -> None:
    """LangGraph's own check (test_state_schema_default_values): only keys without a
    default that do not admit None are required."""
    graph = _schemas(candidate, {"state": _DataDefaults})
    for which in ("input", "output"):
        outcome, schema = graph[which]
        assert outcome == "ok"
        assert set(schema["required"]) == {"val1", "val7"}


# --------------------------------------------------------------------------- drawings


def drawings(graph: Any, xray: int | bool = False) -> dict[str, Any]:
    """Everything a drawing prints: JSON, Mermaid (styled and plain) and ASCII (an error
    outcome when grandalf is missing: the same on both sides)."""
    drawn = graph.get_graph(xray=xray)
    return {
        "json": json.dumps(drawn.to_json(), indent=2, default=str),
        "mermaid": drawn.draw_mermaid(),
        "mermaid_plain": drawn.draw_mermaid(with_styles=False),
        "ascii": _ascii(drawn),
    }


def _ascii(drawn: Any) -> Any:
    """What `draw_ascii()` shows that does not vary from call to call on LangGraph alone:
    its layout does (grandalf places siblings, and draws one of two overlapping edges over
    the other, in an order that changes between calls), so the boxes drawn, and whether it
    fails. The picture is drawn from the nodes and edges the JSON comparison covers."""
    outcome, text = _outcome(drawn.draw_ascii)
    return outcome, sorted(re.findall(r"\| (\S+) \|", text)) if outcome == "ok" else None


def _noop(state: Any) -> dict[str, Any]:
    return {}


def _nodes(builder: Any, *names: str) -> Any:
    for name in names:
        builder.add_node(name, _noop)
    return builder


def _router(*targets: Any) -> Callable[[Any], Any]:
    def route(state: Any) -> Any:
        return list(targets)

    return route


def draw_conditional_no_path_map(lib: Lib) -> Any:
    b = _nodes(lib.StateGraph(_Total), "a", "b", "c")
    b.add_edge(lib.START, "a")
    b.add_conditional_edges("a", _router("b", "c"))
    b.add_edge("b", lib.END)
    return b.compile()


def draw_conditional_path_map_dict(lib: Lib) -> Any:
    b = _nodes(lib.StateGraph(_Total), "agent", "tools")
    b.add_edge(lib.START, "agent")
    b.add_conditional_edges("agent", _router("continue"),
                            {"continue": "tools", "exit": lib.END})
    b.add_edge("tools", "agent")
    return b.compile()


def draw_conditional_path_map_list(lib: Lib) -> Any:
    b = _nodes(lib.StateGraph(_Total), "a", "b", "c")
    b.add_edge(lib.START, "a")
    b.add_conditional_edges("a", _router("b"), ["b", "c", lib.END])
    return b.compile()


def draw_conditional_literal_hint(lib: Lib) -> Any:
    def route(state: Any) -> Literal["b", "c"]:
        return "b"

    b = _nodes(lib.StateGraph(_Total), "a", "b", "c")
    b.add_edge(lib.START, "a")
    b.add_conditional_edges("a", route)
    b.add_edge("c", "b")
    return b.compile()


def draw_conditional_bool_labels(lib: Lib) -> Any:
    b = _nodes(lib.StateGraph(_Total), "a", "b")
    b.add_edge(lib.START, "a")
    b.add_conditional_edges("a", lambda s: True, {True: "b", False: lib.END})
    b.add_edge("b", "a")
    return b.compile()


def draw_conditional_entry_point(lib: Lib) -> Any:
    b = _nodes(lib.StateGraph(_Total), "a", "b")
    b.set_conditional_entry_point(_router("a"), {"go a": "a", "go b": "b"})
    b.add_edge("a", lib.END)
    b.set_finish_point("b")
    return b.compile()


def draw_conditional_entry_no_map(lib: Lib) -> Any:
    b = _nodes(lib.StateGraph(_Total), "a", "b")
    b.set_conditional_entry_point(_router("a", "b"))
    b.add_edge("a", "b")
    return b.compile()


def draw_two_branches_one_source(lib: Lib) -> Any:
    b = _nodes(lib.StateGraph(_Total), "a", "b", "c", "d")
    b.add_edge(lib.START, "a")
    b.add_conditional_edges("a", _router("b"), {"x": "b", "y": "c"})

    def second(state: Any) -> Any:
        return "d"

    b.add_conditional_edges("a", second, ["c", "d"])
    return b.compile()


def draw_send_no_path_map(lib: Lib) -> Any:
    def fan(state: Any) -> Any:
        return [lib.Send("worker", {"plain": i}) for i in range(2)]

    b = _nodes(lib.StateGraph(_Total), "a", "worker", "after")
    b.add_edge(lib.START, "a")
    b.add_conditional_edges("a", fan)
    b.add_edge("worker", "after")
    return b.compile()


def draw_send_with_path_map(lib: Lib) -> Any:
    def fan(state: Any) -> Any:
        return [lib.Send("worker", {"plain": 1})]

    b = _nodes(lib.StateGraph(_Total), "a", "worker")
    b.add_edge(lib.START, "a")
    b.add_conditional_edges("a", fan, ["worker"])
    return b.compile()


def draw_command_destinations_tuple(lib: Lib) -> Any:
    b = lib.StateGraph(_Total)
    b.add_node("a", _noop, destinations=("b", lib.END))
    _nodes(b, "b")
    b.add_edge(lib.START, "a")
    return b.compile()


def draw_command_destinations_dict(lib: Lib) -> Any:
    b = lib.StateGraph(_Total)
    b.add_node("a", _noop, destinations={"b": "to b", "c": "to c"})
    _nodes(b, "b", "c")
    b.add_edge(lib.START, "a")
    b.add_edge("b", "c")
    return b.compile()


def draw_command_annotation(lib: Lib) -> Any:
    def decide(state: Any) -> Any:
        return lib.Command(goto="b")

    decide.__annotations__["return"] = lib.Command[Literal["b", "__end__"]]

    def loop(state: Any) -> Any:
        return lib.Command(goto="decide")

    loop.__annotations__["return"] = lib.Command[Literal["decide"]] | None

    b = lib.StateGraph(_Total)
    b.add_node("decide", decide)
    b.add_node("b", loop)
    b.add_edge(lib.START, "decide")
    return b.compile()


def draw_waiting_edge(lib: Lib) -> Any:
    b = _nodes(lib.StateGraph(_Total), "a", "b", "c", "d")
    b.add_edge(lib.START, "a")
    b.add_edge("a", "b")
    b.add_edge("a", "c")
    b.add_edge(["b", "c"], "d")
    b.add_edge("d", lib.END)
    return b.compile()


def draw_waiting_edge_via_branch(lib: Lib) -> Any:
    b = _nodes(lib.StateGraph(_Total), "rewrite", "analyze", "r1", "r2", "qa")
    b.add_edge(lib.START, "rewrite")
    b.add_edge("rewrite", "analyze")
    b.add_edge("analyze", "r1")
    b.add_conditional_edges("rewrite", _router("r2"))
    b.add_edge(["r1", "r2"], "qa")
    b.set_finish_point("qa")
    return b.compile()


def draw_deferred(lib: Lib) -> Any:
    b = _nodes(lib.StateGraph(_Total), "a", "b", "c", "d")
    b.add_node("last", _noop, defer=True)
    b.add_edge(lib.START, "a")
    b.add_edge("a", "b")
    b.add_edge("a", "c")
    b.add_edge("c", "d")
    b.add_edge("b", "last")
    b.add_edge("d", "last")
    b.add_edge("last", lib.END)
    return b.compile()


def draw_deferred_waiting(lib: Lib) -> Any:
    b = _nodes(lib.StateGraph(_Total), "a", "b", "c")
    b.add_node("join", _noop, defer=True)
    b.add_edge(lib.START, "a")
    b.add_edge("a", "b")
    b.add_edge("a", "c")
    b.add_edge(["b", "c"], "join")
    return b.compile()


def draw_loop(lib: Lib) -> Any:
    b = _nodes(lib.StateGraph(_Total), "human", "agent")
    b.add_edge(lib.START, "human")
    b.add_edge("human", "agent")
    b.add_edge("agent", "human")
    return b.compile()


def draw_self_loop(lib: Lib) -> Any:
    b = _nodes(lib.StateGraph(_Total), "a")
    b.add_edge(lib.START, "a")
    b.add_conditional_edges("a", _router("a"), ["a", lib.END])
    return b.compile()


def draw_nonterminal_last_step_source(lib: Lib) -> Any:
    b = _nodes(lib.StateGraph(_Total), "human", "chatbot", "tools")
    b.add_edge(lib.START, "human")
    b.add_conditional_edges("human", _router("chatbot"), ["chatbot", lib.END])
    b.add_conditional_edges("chatbot", _router("tools"), ["tools", "human"])
    b.add_edge("tools", "chatbot")
    return b.compile()


def draw_multiple_sinks(lib: Lib) -> Any:
    b = _nodes(lib.StateGraph(_Total), "up", "down", "other")
    b.add_edge(lib.START, "up")
    b.add_conditional_edges("up", _router("down"))
    b.add_edge("up", "other")
    return b.compile()


def draw_start_to_end(lib: Lib) -> Any:
    b = _nodes(lib.StateGraph(_Total), "a")
    b.add_edge(lib.START, "a")
    b.add_edge(lib.START, lib.END)
    return b.compile()


def draw_node_kinds(lib: Lib) -> Any:
    async def async_node(state: Any) -> dict[str, Any]:
        return {}

    class Callable_:
        def __call__(self, state: Any) -> dict[str, Any]:
            return {}

    b = lib.StateGraph(_Total)
    b.add_node("function", _noop, metadata={"team": "x", "n": 1})
    b.add_node("lambda", lambda s: {})
    b.add_node("async_node", async_node)
    b.add_node("callable_object", Callable_())
    b.add_node("runnable", RunnableLambda(_noop))
    b.add_node("sequence", RunnableLambda(_noop) | RunnableLambda(_noop))
    b.add_edge(lib.START, "function")
    for s, t in [("function", "lambda"), ("lambda", "async_node"),
                 ("async_node", "callable_object"), ("callable_object", "runnable"),
                 ("runnable", "sequence")]:
        b.add_edge(s, t)
    return b.compile()


def draw_tool_node(lib: Lib) -> Any:
    from langchain_core.tools import tool
    from langgraph.prebuilt import ToolNode

    @tool
    def search(query: str) -> str:
        """Looks it up."""
        return query

    b = _nodes(lib.StateGraph(lib.MessagesState), "agent")
    b.add_node("tools", ToolNode([search]))
    b.add_edge(lib.START, "agent")
    b.add_conditional_edges("agent", _router("tools"), ["tools", lib.END])
    b.add_edge("tools", "agent")
    return b.compile()


def _interrupts(before: Any, after: Any) -> Callable[[Lib], Any]:
    def build(lib: Lib) -> Any:
        b = _nodes(lib.StateGraph(_Total), "a", "b", "c")
        b.add_edge(lib.START, "a")
        b.add_edge("a", "b")
        b.add_edge("b", "c")
        return b.compile(interrupt_before=before, interrupt_after=after)

    return build


def _child(lib: Lib, inner: Any = None) -> Any:
    b = _nodes(lib.StateGraph(_Total), "one", "two")
    if inner is not None:
        b.add_node("inner", inner)
        b.add_edge("two", "inner")
    b.add_edge(lib.START, "one")
    b.add_conditional_edges("one", _router("two"), {"more": "two", "done": lib.END})
    return b.compile()


def draw_subgraph(lib: Lib) -> Any:
    b = _nodes(lib.StateGraph(_Total), "a", "z")
    b.add_node("child", _child(lib))
    b.add_edge(lib.START, "a")
    b.add_edge("a", "child")
    b.add_edge("child", "z")
    return b.compile()


def draw_subgraph_first_and_last(lib: Lib) -> Any:
    b = lib.StateGraph(_Total)
    b.add_node("child", _child(lib))
    b.add_edge(lib.START, "child")
    return b.compile()


def draw_nested_subgraphs(lib: Lib) -> Any:
    grandchild = _child(lib)
    b = _nodes(lib.StateGraph(_Total), "a")
    b.add_node("child", _child(lib, inner=grandchild))
    b.add_edge(lib.START, "a")
    b.add_conditional_edges("a", _router("child"), ["child", lib.END])
    return b.compile()


def draw_subgraph_called_in_node(lib: Lib) -> Any:
    sub = _child(lib)

    def call(state: Any) -> Any:
        return sub.invoke(state)

    b = lib.StateGraph(_Total)
    b.add_node("call", call)
    b.add_edge(lib.START, "call")
    return b.compile()


def draw_subgraph_without_checkpointing(lib: Lib) -> Any:
    b = _nodes(lib.StateGraph(_Total), "child")
    b.add_edge(lib.START, "child")
    inner = _nodes(lib.StateGraph(_Total), "x")
    inner.add_edge(lib.START, "x")
    b.add_node("opaque", inner.compile(checkpointer=False))
    b.add_edge("child", "opaque")
    return b.compile()


DRAWINGS: dict[str, Callable[[Lib], Any]] = {
    name.removeprefix("draw_"): fn for name, fn in list(globals().items())
    if name.startswith("draw_") and callable(fn)
}
DRAWINGS.update({
    "interrupt_lists": _interrupts(["a"], ["a", "c"]),
    "interrupt_all": _interrupts("*", "*"),
})
XRAY = [False, True, 1, 2]


@pytest.mark.parametrize("xray", XRAY, ids=lambda x: f"xray={x}")
@pytest.mark.parametrize("graph", list(DRAWINGS), ids=str)
def test_drawing(graph: str, xray: Any, candidate: Lib, oracle: Lib) -> None:
    expected = _outcome(lambda: drawings(DRAWINGS[graph](oracle), xray))
    assert expected[0] == "ok", expected
    got = _outcome(lambda: drawings(DRAWINGS[graph](candidate), xray))
    assert got == expected


@pytest.mark.parametrize("xray", [False, True], ids=lambda x: f"xray={x}")
@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_drawing_of_parity_scenarios(scenario: Any, xray: bool, candidate: Lib,
                                     oracle: Lib) -> None:
    """Every graph of the run parity suite draws the same."""
    expected = _outcome(lambda: drawings(scenario.build(oracle), xray))
    assert _outcome(lambda: drawings(scenario.build(candidate), xray)) == expected


def test_aget_graph(candidate: Lib, oracle: Lib) -> None:
    async def drawn(lib: Lib) -> str:
        graph = await draw_nested_subgraphs(lib).aget_graph(xray=True)
        return json.dumps(graph.to_json(), default=str)

    assert asyncio.run(drawn(candidate)) == asyncio.run(drawn(oracle))


def test_command_annotation_targets_are_checked_at_compile(candidate: Lib,
                                                           oracle: Lib) -> None:
    """The destinations inferred from `Command[Literal[...]]` are edges, so compile checks
    them as LangGraph does."""

    def build(lib: Lib) -> Any:
        def decide(state: Any) -> Any:
            return lib.Command(goto="ghost")

        decide.__annotations__["return"] = lib.Command[Literal["ghost"]]
        b = lib.StateGraph(_Total)
        b.add_node("decide", decide)
        b.add_edge(lib.START, "decide")
        return b.compile()

    expected = _outcome(lambda: build(oracle))
    assert expected[0] == "ValueError"
    assert _outcome(lambda: build(candidate)) == expected


# ---------------------------------------------------------------------- managed values


class _Managed(TypedDict):
    x: int
    remaining: RemainingSteps
    last: IsLastStep


class _ManagedNotRequired(TypedDict):
    x: int
    remaining: NotRequired[RemainingSteps]


class _ManagedRequired(TypedDict):
    x: int
    remaining: Required[RemainingSteps]


class _ManagedModel(BaseModel):
    x: int = 0
    remaining: RemainingSteps = 0
    last: IsLastStep = False


@dataclasses.dataclass
class _ManagedData:
    x: int = 0
    remaining: RemainingSteps = 0
    last: IsLastStep = False


@pytest.mark.parametrize("schema", [_Managed, _ManagedNotRequired, _ManagedRequired],
                         ids=lambda s: s.__name__)
def test_managed_values_recognized(schema: Any, candidate: Lib, oracle: Lib) -> None:
    """LangGraph's own test (test_managed_values_recognized), and what it implies: the
    managed keys are no state keys, so not in the JSON schemas' models either."""

    def seen(lib: Lib) -> Any:
        builder = lib.StateGraph(schema)
        builder.add_node("n", _noop)
        builder.add_edge(lib.START, "n")
        graph = builder.compile()
        return (sorted(builder.managed), _outcome(graph.get_input_jsonschema),
                _outcome(lambda: graph.get_output_schema().model_json_schema()))

    expected = seen(oracle)
    assert "remaining" in expected[0]
    assert seen(candidate) == expected


def _looping(lib: Lib, schema: Any, seen: list[Any]) -> Any:
    """A node that loops until its router sees the last step; both record what they see."""

    def node(state: Any) -> Any:
        seen.append(("node", _plain(state)))
        return {"x": _get(state, "x") + 1, "remaining": 1000}  # a write that is ignored

    def route(state: Any) -> str:
        seen.append(("router", _plain(state)))
        done = _get(state, "x") >= 4 or _get(state, "last") or _get(state, "remaining") <= 2
        return lib.END if done else "node"

    builder = lib.StateGraph(schema)
    builder.add_node("node", node)
    builder.add_edge(lib.START, "node")
    builder.add_conditional_edges("node", route)
    return builder.compile()


def _get(state: Any, key: str) -> Any:
    return state[key] if isinstance(state, dict) else getattr(state, key)


def _plain(state: Any) -> Any:
    if isinstance(state, BaseModel):
        return ("model", state.model_dump())
    if dataclasses.is_dataclass(state):
        return ("dataclass", dataclasses.asdict(state))
    return state


@pytest.mark.parametrize("limit", [3, 5, None], ids=lambda n: f"limit={n}")
@pytest.mark.parametrize("schema", [_Managed, _ManagedModel, _ManagedData],
                         ids=lambda s: s.__name__)
def test_managed_values_in_a_run(schema: Any, limit: Any, candidate: Lib,
                                 oracle: Lib) -> None:
    """Nodes and routers see the steps left and whether this is the last; the input's and
    the nodes' writes to those keys are ignored; the output does not show them."""
    config = None if limit is None else {"recursion_limit": limit}

    def run(lib: Lib) -> Any:
        seen: list[Any] = []
        graph = _looping(lib, schema, seen)
        result = _outcome(lambda: graph.invoke({"x": 0, "remaining": 99}, config))
        streamed = _outcome(lambda: list(graph.stream(
            {"x": 0}, config, stream_mode=["values", "updates"])))
        return _plain(result[1]) if result[0] == "ok" else result, streamed, seen

    assert run(candidate) == run(oracle)


def test_managed_values_in_an_async_run(candidate: Lib, oracle: Lib) -> None:
    def run(lib: Lib) -> Any:
        seen: list[Any] = []

        async def node(state: Any) -> Any:
            seen.append(dict(state))
            return {"x": state["x"] + 1}

        builder = lib.StateGraph(_Managed)
        builder.add_node("node", node)
        builder.add_edge(lib.START, "node")
        builder.add_conditional_edges(
            "node", lambda s: lib.END if s["last"] else "node")
        result = asyncio.run(builder.compile().ainvoke({"x": 0}, {"recursion_limit": 4}))
        return result, seen

    assert run(candidate) == run(oracle)


def test_managed_values_in_a_subgraph(candidate: Lib, oracle: Lib) -> None:
    """A subgraph counts its own steps against the limit it is given."""

    def run(lib: Lib) -> Any:
        seen: list[Any] = []
        parent = lib.StateGraph(_Managed)
        parent.add_node("first", lambda s: seen.append(("first", dict(s))) or {"x": 1})
        parent.add_node("child", _looping(lib, _Managed, seen))
        parent.add_edge(lib.START, "first")
        parent.add_edge("first", "child")
        return parent.compile().invoke({"x": 0}, {"recursion_limit": 6}), seen

    assert run(candidate) == run(oracle)


def test_ferrograph_managed_values_are_langgraphs(candidate: Lib, oracle: Lib) -> None:
    """`ferrograph.managed.RemainingSteps` / `IsLastStep` behave as LangGraph's own."""
    from ferrograph import managed

    mine = TypedDict("mine", {  # noqa: UP013 - annotations evaluated here, not as text
        "x": int, "remaining": managed.RemainingSteps, "last": managed.IsLastStep})

    def run(lib: Lib, schema: Any) -> Any:
        seen: list[Any] = []
        result = _looping(lib, schema, seen).invoke({"x": 0}, {"recursion_limit": 5})
        return result, seen

    assert run(candidate, mine) == run(oracle, _Managed)


class _ManagedInput(TypedDict):
    x: int
    remaining: RemainingSteps


def test_managed_values_refused_in_input_and_output_schemas(candidate: Lib,
                                                           oracle: Lib) -> None:
    for key in ("input_schema", "output_schema"):
        expected = _outcome(lambda k=key: oracle.StateGraph(_Total, **{k: _ManagedInput}))
        assert expected[0] == "ValueError"
        got = _outcome(lambda k=key: candidate.StateGraph(_Total, **{k: _ManagedInput}))
        assert got == expected


def test_unsupported_managed_value_is_refused(candidate: Lib) -> None:
    """A managed value other than RemainingSteps / IsLastStep needs LangGraph's scratchpad:
    ferrograph refuses it rather than running without it."""
    if candidate.name != "ferrograph":
        pytest.skip("ferrograph's own limit")
    from langgraph.managed.base import ManagedValue

    class Custom(ManagedValue[int]):
        @staticmethod
        def get(scratchpad: Any) -> int:
            return 0

    state = TypedDict("state", {"x": int, "custom": Annotated[int, Custom]})  # noqa: UP013
    with pytest.raises(NotImplementedError, match="managed value Custom"):
        candidate.StateGraph(state)
