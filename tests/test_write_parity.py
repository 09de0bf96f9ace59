"""What routers see and what node results write, differentially against LangGraph.

Issue 17, items 6, 8, 12 and 13: a router is given the state read through its own input
schema (its first parameter's annotation; else its node's input schema; else the state
schema), a dict state router also sees the extra keys its node returned, and a Pydantic
object returned as an update (as the result or as a `Command`'s update) writes every field
LangGraph writes: the ones set, the mutated defaults, the defaults that are not None.

Every graph is built through `lib.*` only; its routers record what they were given. Each is
run with `invoke`, `stream` (updates and values), `ainvoke` and `astream` on LangGraph (the
expected value) and on ferrograph, and the results, items and router inputs must be equal.
"""

from __future__ import annotations

import asyncio
import dataclasses
import operator
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.runnables import RunnableConfig, RunnableLambda
from pydantic import BaseModel, Field

from tests.parity import Lib, Raised, drain, normalise, outcome, sort_key

# ----------------------------------------------------------------------------- schemas


class Overall(TypedDict):
    foo: Annotated[int, operator.add]
    bar: str


class Private(TypedDict):
    baz: str


class Node2State(TypedDict):
    foo: Annotated[int, operator.add]
    baz: str


class FooOnly(TypedDict):
    foo: Annotated[int, operator.add]


class FooModel(BaseModel):
    foo: int = 0


class Counted(BaseModel):
    foo: int = 0
    bar: str = "none"


class PrivateModel(BaseModel):
    baz: str = "unset"


class Inner(BaseModel):
    a: int = 0


class MutableState(BaseModel):
    inner: Inner = Inner()
    outer: int = 0


class FactoryState(BaseModel):
    inner: Inner = Field(default_factory=Inner)
    outer: int = 0


def sorted_add(x: list[str], y: list[str]) -> list[str]:
    return sorted(x + y)


class Docs(BaseModel):
    query: str
    answer: str | None = None
    docs: Annotated[list[str], sorted_add] = []
    note: str | None = "none yet"
    count: int = 0


class QueryUpdate(BaseModel):
    query: str | None = None
    answer: str | None = None
    docs: list[str] | None = None


class DocsUpdate(BaseModel):
    docs: list[str] = Field(default_factory=lambda: ["doc3", "doc4"])


class NoteUpdate(BaseModel):
    note: str | None = "from update"
    answer: str | None = None
    count: int = 7


@dataclasses.dataclass
class DataUpdate:
    answer: str | None = None
    count: int = 3


class Packets(TypedDict):
    log: Annotated[list, operator.add]
    turns: int


# ----------------------------------------------------------------------------- harness

Build = Callable[[Lib, list[Any]], Any]
"""Builds the graph with `lib`; its routers append what they are given to the list."""


def seen(value: Any) -> Any:
    """What a router was given, with a dict's key order kept (LangGraph's order shows)."""
    if isinstance(value, dict):
        return ("dict", list(value.items()))
    return value


def runs(build: Build, input: Any, lib: Lib, parallel: bool) -> dict[str, Any]:
    """Everything one implementation does with the graph: results, stream items, errors,
    and what its routers were given, per way of running it."""
    log: list[Any] = []
    graph = build(lib, log)
    out: dict[str, Any] = {}

    def record(name: str, fn: Callable[[], Any]) -> None:
        log.clear()
        out[name] = outcome(fn)
        out[f"{name} routers"] = normalise(log)

    def stream(mode: str) -> Any:
        items, error = drain(graph.stream(input, stream_mode=mode))
        if error is not None:
            raise RuntimeError(error)
        return items if not parallel or mode == "values" else sorted(
            normalise(items), key=sort_key)

    async def astream(mode: str) -> Any:
        items = [item async for item in graph.astream(input, stream_mode=mode)]
        return items if not parallel else sorted(normalise(items), key=sort_key)

    if not getattr(build, "async_only", False):  # LangGraph runs async nodes only so
        record("invoke", lambda: graph.invoke(input))
        record("stream updates", lambda: stream("updates"))
        record("stream values", lambda: stream("values"))
    record("ainvoke", lambda: asyncio.run(graph.ainvoke(input)))
    record("astream updates", lambda: asyncio.run(astream("updates")))
    record("astream values", lambda: asyncio.run(astream("values")))
    if parallel:  # routers of one step run in completion order
        for name in [k for k in out if k.endswith(" routers")]:
            out[name] = sorted(out[name], key=sort_key)
    return out


def check(build: Build, input: Any, candidate: Lib, oracle: Lib,
          parallel: bool = False) -> None:
    expected = runs(build, input, oracle, parallel)
    assert not any(isinstance(v, Raised) for v in expected.values()), expected
    got = runs(build, input, candidate, parallel)
    for name in expected:
        assert got[name] == expected[name], name


# ----------------------------------------------------------------------------- 6: router input


def router_with_state_schema(lib: Lib, log: list[Any]) -> Any:
    """LangGraph's test_input_schema_conditional_edge: the node reads a private schema and
    returns an extra key; the router, annotated with the state schema, sees neither."""

    def node_1(state: Overall) -> dict[str, Any]:
        return {"foo": 1, "baz": "bar"}

    def node_2(state: Private) -> dict[str, Any]:
        return {"foo": 1, "bar": state["baz"], "something_else": "meow"}

    def node_3(state: Overall) -> dict[str, Any]:
        return {"foo": 1}

    def router(state: Overall) -> str:
        log.append(seen(state))
        return "node_3" if state["foo"] == 2 else lib.END

    b = lib.StateGraph(Overall)
    b.add_node(node_1)
    b.add_node(node_2)
    b.add_node(node_3)
    b.add_conditional_edges("node_2", router)
    b.add_edge(lib.START, "node_1")
    b.add_edge("node_1", "node_2")
    return b.compile()


def router_with_private_schema(lib: Lib, log: list[Any]) -> Any:
    """LangGraph's test_private_input_schema_conditional_edge: the router's schema is a key
    only nodes' private schemas have."""

    def node_1(state: Overall) -> dict[str, Any]:
        return {"foo": 1, "baz": "meow"}

    def node_2(state: Node2State) -> dict[str, Any]:
        return {"foo": 1, "bar": state["baz"]}

    def router(state: Private) -> str:
        log.append(seen(state))
        return "node_2" if state["baz"] == "meow" else lib.END

    b = lib.StateGraph(Overall)
    b.add_node(node_1)
    b.add_node(node_2)
    b.add_conditional_edges("node_1", router)
    b.add_edge(lib.START, "node_1")
    return b.compile()


def router_only_private_key(lib: Lib, log: list[Any]) -> Any:
    """A key that only the router's schema declares: the node writes it, the router reads
    it, the graph's output leaves it out."""

    def node_1(state: Overall) -> dict[str, Any]:
        return {"foo": 1, "baz": "meow", "bar": "b"}

    def router(state: Private) -> str:
        log.append(seen(state))
        return "node_2" if state.get("baz") == "meow" else lib.END

    def node_2(state: Overall) -> dict[str, Any]:
        return {"foo": 10}

    b = lib.StateGraph(Overall)
    b.add_node(node_1)
    b.add_node(node_2)
    b.add_conditional_edges("node_1", router)
    b.add_edge(lib.START, "node_1")
    return b.compile()


def router_of_node_schema(lib: Lib, log: list[Any]) -> Any:
    """An unannotated router reads its node's input schema (here a private one), with the
    node's other returned keys passed through."""

    def node_1(state: Overall) -> dict[str, Any]:
        return {"foo": 1, "baz": "x"}

    def node_2(state: Private) -> dict[str, Any]:
        return {"foo": 5, "bar": state["baz"], "extra": [1]}

    def router(state):  # noqa: ANN001, ANN202 - unannotated on purpose
        log.append(seen(state))
        return lib.END

    b = lib.StateGraph(Overall)
    b.add_node(node_1)
    b.add_node(node_2)
    b.add_edge(lib.START, "node_1")
    b.add_edge("node_1", "node_2")
    b.add_conditional_edges("node_2", router)
    return b.compile()


def router_without_private_keys(lib: Lib, log: list[Any]) -> Any:
    """Private keys (from a node's input schema) are not part of what a router of a state
    schema node reads, except as the node's own returned keys."""

    def node_1(state: Overall) -> dict[str, Any]:
        return {"foo": 1, "baz": "secret"}

    def node_2(state: Node2State) -> dict[str, Any]:
        return {"foo": 1, "bar": state["baz"]}

    def router(state: dict) -> str:
        log.append(seen(state))
        return lib.END

    b = lib.StateGraph(Overall)
    b.add_node(node_1)
    b.add_node(node_2)
    b.add_edge(lib.START, "node_1")
    b.add_edge("node_1", "node_2")
    b.add_conditional_edges("node_1", lambda s: log.append(seen(s)) or "node_2")
    b.add_conditional_edges("node_2", router)
    return b.compile()


def router_model_schema(lib: Lib, log: list[Any]) -> Any:
    """A router annotated with a Pydantic model over a dict state gets that model."""

    def node_1(state: Overall) -> dict[str, Any]:
        return {"foo": 2, "bar": "b", "stray": 1}

    def router(state: FooModel) -> str:
        log.append(seen(state))
        return "node_2" if state.foo < 5 else lib.END

    def node_2(state: Overall) -> dict[str, Any]:
        return {"foo": 3}

    b = lib.StateGraph(Overall)
    b.add_node(node_1)
    b.add_node(node_2)
    b.add_edge(lib.START, "node_1")
    b.add_conditional_edges("node_1", router)
    b.add_conditional_edges("node_2", router)
    return b.compile()


def router_model_over_model_state(lib: Lib, log: list[Any]) -> Any:
    """A Pydantic state, a router annotated with a smaller model, one unannotated, and one
    annotated with a private model."""

    def node_1(state: Counted) -> dict[str, Any]:
        return {"foo": state.foo + 1, "baz": "hidden"}

    def small(state: FooModel) -> str:
        log.append(seen(state))
        return "node_2" if state.foo < 3 else lib.END

    def private(state: PrivateModel) -> list[str]:
        log.append(seen(state))
        return []

    def node_2(state: Counted) -> dict[str, Any]:
        return {"bar": f"foo={state.foo}"}

    b = lib.StateGraph(Counted)
    b.add_node(node_1)
    b.add_node(node_2)
    b.add_edge(lib.START, "node_1")
    b.add_conditional_edges("node_1", small)
    b.add_conditional_edges("node_1", private)
    b.add_conditional_edges("node_2", lambda s: log.append(seen(s)) or lib.END)
    return b.compile()


def entry_router_schema(lib: Lib, log: list[Any]) -> Any:
    """A conditional entry point annotated with a subset of the state."""

    def router(state: FooOnly) -> str:
        log.append(seen(state))
        return "node_1"

    def node_1(state: Overall) -> dict[str, Any]:
        return {"foo": 1, "bar": "x"}

    b = lib.StateGraph(Overall)
    b.add_node(node_1)
    b.set_conditional_entry_point(router)
    return b.compile()


class CallableRouter:
    def __init__(self, log: list[Any], end: str) -> None:
        self.log = log
        self.end = end

    def __call__(self, state: FooOnly) -> str:
        self.log.append(seen(state))
        return self.end


def router_forms(lib: Lib, log: list[Any]) -> Any:
    """Annotated routers of every form: async (on the event loop under ainvoke / astream),
    with an injected config, a callable object, a RunnableLambda."""

    async def anode(state: Overall) -> dict[str, Any]:
        return {"foo": 1, "bar": "a", "extra": "e"}

    async def arouter(state: FooOnly) -> str:
        log.append(seen(state))
        return "node_2"

    def with_config(state: FooOnly, config: RunnableConfig) -> list[str]:
        log.append(seen(state))
        return []

    def lambda_router(state: Private) -> list[str]:
        log.append(seen(state))
        return []

    def node_2(state: Overall) -> dict[str, Any]:
        return {"foo": 1, "baz": "z"}

    b = lib.StateGraph(Overall)
    b.add_node("node_1", anode)
    b.add_node(node_2)
    b.add_edge(lib.START, "node_1")
    b.add_conditional_edges("node_1", arouter)
    b.add_conditional_edges("node_1", with_config)
    b.add_conditional_edges("node_2", CallableRouter(log, lib.END))
    b.add_conditional_edges("node_2", RunnableLambda(lambda_router))
    return b.compile()


router_forms.async_only = True  # type: ignore[attr-defined]


@pytest.mark.parametrize("build", [
    router_with_state_schema, router_with_private_schema, router_only_private_key,
    router_of_node_schema, router_without_private_keys, router_model_schema,
    router_model_over_model_state, entry_router_schema, router_forms,
], ids=lambda f: f.__name__)
def test_router_input_schema(build: Build, candidate: Lib, oracle: Lib) -> None:
    check(build, {"foo": 0}, candidate, oracle)


# ----------------------------------------------------------------------------- 12: extra keys


def packets(lib: Lib, log: list[Any]) -> Any:
    """LangGraph's test_state_graph_packets, without a model: the agent's extra key reaches
    its router (not the state), which fans out with Send until the third turn."""

    def agent(data: Packets) -> dict[str, Any]:
        turn = data.get("turns", 0) + 1
        return {"log": [f"agent {turn}"], "turns": turn, "something_extra": "hi there"}

    def should_continue(data: dict) -> Any:
        log.append(seen(data))
        assert data["something_extra"] == "hi there"
        if data["turns"] < 3:
            return [lib.Send("tools", {"call": i}) for i in range(data["turns"])]
        return lib.END

    def tools(call: dict) -> dict[str, Any]:
        return {"log": [f"tool {call['call']}"]}

    b = lib.StateGraph(Packets)
    b.add_node("agent", agent)
    b.add_node("tools", tools)
    b.set_entry_point("agent")
    b.add_conditional_edges("agent", should_continue)
    b.add_edge("tools", "agent")
    return b.compile()


def extra_keys_forms(lib: Lib, log: list[Any]) -> Any:
    """Extra keys reach unannotated routers of dict results only: not through a `Command`,
    not to an annotated router, and the state values win over the returned ones."""

    def node_1(state: Overall) -> dict[str, Any]:
        return {"foo": 5, "bar": "b", "extra": {"k": 1}}

    def node_2(state: Overall) -> Any:
        return lib.Command(update={"foo": 1, "extra": "lost"})

    async def node_3(state: Overall) -> dict[str, Any]:
        return {"extra": 3}

    def annotated(state: Overall) -> list[str]:
        log.append(seen(state))
        return []

    b = lib.StateGraph(Overall)
    b.add_node(node_1)
    b.add_node(node_2)
    b.add_node(node_3)
    b.add_edge(lib.START, "node_1")
    b.add_conditional_edges("node_1", lambda s: log.append(seen(s)) or "node_2")
    b.add_conditional_edges("node_1", annotated)
    b.add_conditional_edges("node_2", lambda s: log.append(seen(s)) or "node_3")
    b.add_conditional_edges("node_3", lambda s: log.append(seen(s)) or lib.END)
    return b.compile()


extra_keys_forms.async_only = True  # type: ignore[attr-defined]


def extra_keys_model_state(lib: Lib, log: list[Any]) -> Any:
    """A Pydantic state's routers get the model: a node's extra keys are not in it."""

    def node_1(state: Counted) -> dict[str, Any]:
        return {"foo": 1, "extra": True}

    b = lib.StateGraph(Counted)
    b.add_node(node_1)
    b.add_edge(lib.START, "node_1")
    b.add_conditional_edges("node_1", lambda s: log.append(seen(s)) or lib.END)
    return b.compile()


def extra_input_keys_in_subgraph(lib: Lib, log: list[Any]) -> Any:
    """A subgraph's entry router sees the keys of the parent's state it was given."""

    def entry(state):  # noqa: ANN001, ANN202 - unannotated on purpose
        log.append(seen(state))
        return "inner"

    sub = lib.StateGraph(FooOnly)
    sub.add_node("inner", lambda s: {"foo": 100})
    sub.set_conditional_entry_point(entry)
    b = lib.StateGraph(Overall)
    b.add_node("prep", lambda s: {"bar": "from parent"})
    b.add_node("sub", sub.compile())
    b.add_edge(lib.START, "prep")
    b.add_edge("prep", "sub")
    return b.compile()


def test_extra_keys_reach_the_router(candidate: Lib, oracle: Lib) -> None:
    check(packets, {"log": [], "turns": 0}, candidate, oracle, parallel=True)


@pytest.mark.parametrize("build", [
    extra_keys_forms, extra_keys_model_state, extra_input_keys_in_subgraph,
], ids=lambda f: f.__name__)
def test_extra_keys_forms(build: Build, candidate: Lib, oracle: Lib) -> None:
    check(build, {"foo": 0}, candidate, oracle)


# ----------------------------------------------------------------------------- 8, 13: updates


def mutation(state_class: type[BaseModel], command: bool) -> Build:
    """LangGraph's test_pydantic_state_mutation (and _command): a defaulted nested field
    mutated in place and returned with the state (or as a `Command`'s update)."""

    def build(lib: Lib, log: list[Any]) -> Any:
        def my_node(state: Any) -> Any:
            state.inner.a = 5
            state.outer = 10
            return lib.Command(update=state) if command else state

        b = lib.StateGraph(state_class)
        b.add_node("my_node", my_node)
        b.add_edge(lib.START, "my_node")
        b.add_conditional_edges("my_node", lambda s: log.append(seen(s)) or lib.END)
        return b.compile()

    build.__name__ = f"{state_class.__name__}{'_command' if command else ''}"
    return build


@pytest.mark.parametrize("build", [
    mutation(MutableState, False), mutation(MutableState, True),
    mutation(FactoryState, False), mutation(FactoryState, True),
], ids=lambda f: f.__name__)
def test_pydantic_state_mutation(build: Build, candidate: Lib, oracle: Lib) -> None:
    # A fresh default each run: LangGraph's node mutates the class default in place.
    MutableState.model_fields["inner"].default.a = 0
    check(build, {"outer": 1}, candidate, oracle)


def update_objects(lib: Lib, log: list[Any]) -> Any:
    """From ...waiting_edge_custom_state_class_pydantic2: update objects whose None
    defaults are left out, whose default_factory and non-None defaults are written, and
    whose fields set to None are written; a dataclass update writes every field."""

    def rewrite(state: Docs) -> Any:
        return QueryUpdate(query=f"analyzed: {state.query}")

    def retrieve_1(state: Docs) -> Any:
        return {"docs": ["doc1", "doc2"]}

    def retrieve_2(state: Docs) -> Any:
        return DocsUpdate()

    def note(state: Docs) -> Any:
        return lib.Command(update=NoteUpdate(answer=None))

    def clear(state: Docs) -> Any:
        return NoteUpdate(note=None, count=0)

    def data(state: Docs) -> Any:
        return DataUpdate(answer=",".join(state.docs))

    b = lib.StateGraph(Docs)
    b.add_node("rewrite", rewrite)
    b.add_node("retrieve_1", retrieve_1)
    b.add_node("retrieve_2", retrieve_2)
    b.add_node("note", note)
    b.add_node("clear", clear)
    b.add_node("data", data)
    b.add_edge(lib.START, "rewrite")
    b.add_edge("rewrite", "retrieve_1")
    b.add_edge("retrieve_1", "retrieve_2")
    b.add_edge("retrieve_2", "note")
    b.add_edge("note", "clear")
    b.add_conditional_edges("clear", lambda s: log.append(seen(s)) or "data")
    return b.compile()


def test_pydantic_update_objects(candidate: Lib, oracle: Lib) -> None:
    check(update_objects, {"query": "weather"}, candidate, oracle)
