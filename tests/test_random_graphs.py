"""Property test: random layered graphs (fan-out, joins, reducers, streaming models) give the
same final state as LangGraph, and every token a subscribed node's model produced arrives
exactly once, in order, tagged with its node and step."""

from __future__ import annotations

import itertools
import operator
from typing import Annotated, Any, TypedDict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from tests.parity import load


class State(TypedDict):
    log: Annotated[list, operator.add]
    texts: Annotated[list, operator.add]


@st.composite
def layered_graphs(draw: Any) -> list[list[tuple[str, list[str], bool]]]:
    """Layers of nodes; each node lists its parents in the layer above and whether it
    waits for all of them (a join) or runs when any of them finishes."""
    layers: list[list[tuple[str, list[str], bool]]] = []
    for depth in range(draw(st.integers(1, 4))):
        width = draw(st.integers(1, 4))
        layer = []
        for i in range(width):
            name = f"n{depth}_{i}"
            if depth == 0:
                layer.append((name, [], False))
                continue
            above = [n for n, _, _ in layers[-1]]
            parents = draw(st.lists(st.sampled_from(above), min_size=1, max_size=len(above),
                                    unique=True))
            layer.append((name, sorted(parents), draw(st.booleans())))
        layers.append(layer)
    return layers


def reply_of(name: str) -> str:
    return " ".join(f"{name}-t{k}" for k in range(len(name) + 3))


def build(lib: Any, layers: list[list[tuple[str, list[str], bool]]]) -> Any:
    b = lib.StateGraph(State)
    for layer in layers:
        for name, parents, join in layer:
            model = GenericFakeChatModel(messages=itertools.cycle([AIMessage(content=reply_of(name))]))

            def node(state: State, name: str = name, model: Any = model) -> dict[str, Any]:
                text = model.invoke("go").content
                return {"log": [name], "texts": [text]}

            b.add_node(name, node)
            if not parents:
                b.add_edge(lib.START, name)
            elif join:
                b.add_edge(parents, name)
            else:
                for parent in parents:
                    b.add_edge(parent, name)
    return b.compile()


def tokens_by_call(graph: Any) -> dict[tuple[str, int], list[str]]:
    out: dict[tuple[str, int], list[str]] = {}
    for chunk, md in graph.stream({"log": [], "texts": []}, stream_mode="messages"):
        out.setdefault((md["langgraph_node"], md["langgraph_step"]), []).append(chunk.content)
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layered_graphs())
def test_random_graphs_match_langgraph_and_lose_no_token(layers):
    results = {}
    tokens = {}
    for name in ("ferrograph", "langgraph"):
        lib = load(name)
        try:
            results[name] = ("ok", build(lib, layers).invoke({"log": [], "texts": []}))
        except Exception as e:  # noqa: BLE001 - an error must match too
            results[name] = ("error", type(e).__name__, str(e))
        tokens[name] = tokens_by_call(build(lib, layers)) if results[name][0] == "ok" else None
    assert results["ferrograph"] == results["langgraph"]
    assert results["ferrograph"][0] == "ok"
    assert tokens["ferrograph"] == tokens["langgraph"]
    for (node, _step), pieces in tokens["ferrograph"].items():
        assert "".join(pieces) == reply_of(node)  # exactly once and in order
