"""What a graph says about itself, differentially: each graph is built with langgraph (the
oracle) and with the candidate through `lib.*` only, and what the two answer must be equal.

- reducer signatures checked at `StateGraph(...)`.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

import pytest
from typing_extensions import NotRequired

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
