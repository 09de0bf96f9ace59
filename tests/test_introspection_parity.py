"""What a graph says about itself, differentially: each graph is built with langgraph (the
oracle) and with the candidate through `lib.*` only, and what the two answer must be equal.

- reducer signatures checked at `StateGraph(...)`;
- the input, output and context JSON schemas (`get_input_jsonschema`, ...).
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Annotated, Any

import pytest
from pydantic import BaseModel
from typing_extensions import NotRequired, Required, TypedDict  # Pydantic's, on 3.10/3.11

from tests.parity import Lib

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
