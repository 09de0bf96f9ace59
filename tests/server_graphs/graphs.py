"""Graphs the server tests serve, on ferrograph or (SERVER_GRAPH_LIB=langgraph) on LangGraph,
so `ferrograph serve` and `langgraph dev` serve the same graphs from the same file.

The seed graph's model is the real `ChatOpenAI`, pointed at the embedded local OpenAI server
whose address the test passes in `LOCAL_OPENAI_URL`."""

from __future__ import annotations

import json
import operator
import os
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig

if os.environ.get("SERVER_GRAPH_LIB") == "langgraph":
    from langgraph.config import get_stream_writer
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt
else:
    from ferrograph.config import get_stream_writer
    from ferrograph.graph import END, START, StateGraph
    from ferrograph.types import interrupt


class SeedState(TypedDict):
    topic: str
    joke: str
    poem: str


def _model() -> Any:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model="ferrograph-local", api_key="local",
                      base_url=os.environ.get("LOCAL_OPENAI_URL", "http://127.0.0.1:9/v1"))


def write_joke(state: SeedState) -> dict[str, Any]:
    topic = state["topic"]
    joke = _model().invoke([{"role": "user", "content": f"Write a joke about {topic}"}])
    return {"joke": joke.content}


def write_poem(state: SeedState) -> dict[str, Any]:
    topic = state["topic"]
    poem = _model().invoke([{"role": "user", "content": f"Write a short poem about {topic}"}])
    return {"poem": poem.content}


seed = (
    StateGraph(SeedState)
    .add_node(write_joke)
    .add_node(write_poem)
    .add_edge(START, "write_joke")
    .add_edge(START, "write_poem")
    .compile()
)


class CountState(TypedDict):
    count: int
    log: Annotated[list[str], operator.add]


def first(state: CountState) -> dict[str, Any]:
    get_stream_writer()({"at": "first", "count": state["count"]})
    return {"count": state["count"] + 1, "log": ["first"]}


def second(state: CountState) -> dict[str, Any]:
    return {"count": state["count"] * 10, "log": ["second"]}


counter = (
    StateGraph(CountState)
    .add_node(first)
    .add_node(second)
    .add_edge(START, "first")
    .add_edge("first", "second")
    .add_edge("second", END)
    .compile()
)


def ask_name(state: CountState) -> dict[str, Any]:
    answer = interrupt({"question": "name?", "count": state["count"]})
    return {"log": [f"hello {answer}"]}


ask = (
    StateGraph(CountState)
    .add_node(first)
    .add_node(ask_name)
    .add_node(second)
    .add_edge(START, "first")
    .add_edge("first", "ask_name")
    .add_edge("ask_name", "second")
    .compile()
)


def ask_city(state: CountState) -> dict[str, Any]:
    answer = interrupt({"question": "city?"})
    return {"log": [f"from {answer}"]}


ask_both = (
    StateGraph(CountState)
    .add_node(ask_name)
    .add_node(ask_city)
    .add_node(second)
    .add_edge(START, "ask_name")
    .add_edge(START, "ask_city")
    .add_edge(["ask_name", "ask_city"], "second")
    .compile()
)
"""Two questions at once (parallel nodes): a resume answers each interrupt by its id."""


def explode(state: CountState) -> dict[str, Any]:
    raise ValueError(f"boom at {state['count']}")


boom = (
    StateGraph(CountState)
    .add_node(first)
    .add_node(explode)
    .add_edge(START, "first")
    .add_edge("first", "explode")
    .compile()
)


def child_step(state: CountState) -> dict[str, Any]:
    get_stream_writer()({"at": "child"})
    return {"count": state["count"] + 100, "log": ["child"]}


child = StateGraph(CountState).add_node(child_step).add_edge(START, "child_step").compile()

nested = (
    StateGraph(CountState)
    .add_node(first)
    .add_node("child", child)
    .add_edge(START, "first")
    .add_edge("first", "child")
    .compile()
)


failing_child = StateGraph(CountState).add_node(explode).add_edge(START, "explode").compile()

nested_boom = (
    StateGraph(CountState)
    .add_node(first)
    .add_node("child", failing_child)
    .add_edge(START, "first")
    .add_edge("first", "child")
    .compile()
)


def make_counter(config: dict[str, Any]) -> Any:
    """A factory taking the run's config, as `langgraph.json` allows."""
    return counter


async def wait_for_model(state: CountState) -> dict[str, Any]:
    """An async node whose model call lasts as long as the test holds the local server's
    reply to "Write a slow reply" (so a run can be cancelled while it is running)."""
    reply = await _model().ainvoke([{"role": "user", "content": "Write a slow reply"}])
    return {"log": [reply.content]}


slow = (
    StateGraph(CountState)
    .add_node(first)
    .add_node(wait_for_model)
    .add_edge(START, "first")
    .add_edge("first", "wait_for_model")
    .compile()
)


class Overheated(Exception):
    """An exception class of the user's own (LangGraph's server hides such messages)."""


def overheat(state: CountState) -> dict[str, Any]:
    raise Overheated(f"too hot at {state['count']}")


crash = StateGraph(CountState).add_node(overheat).add_edge(START, "overheat").compile()


def whoami_step(state: CountState, config: RunnableConfig) -> dict[str, Any]:
    """What the run's config says about the caller (LangGraph's server puts the
    authenticated user in `configurable`)."""
    c = config["configurable"]
    user = c.get("langgraph_auth_user")
    seen = {"user_id": c.get("langgraph_auth_user_id"),
            "permissions": list(c.get("langgraph_auth_permissions") or []),
            "configurable_user_id": c.get("user_id")}
    if "injected" in c:  # put there by an auth handler
        seen["injected"] = c["injected"]
    if user is not None:
        seen.update(identity=user.identity, item=user["identity"],
                    display_name=user.display_name, authenticated=user.is_authenticated,
                    as_dict=dict(user))
    return {"count": state["count"] + 1, "log": [json.dumps(seen, sort_keys=True, default=repr)]}


whoami = StateGraph(CountState).add_node(whoami_step).add_edge(START, "whoami_step").compile()

slow_whoami = (
    StateGraph(CountState)
    .add_node(first)
    .add_node(wait_for_model)
    .add_node(whoami_step)
    .add_edge(START, "first")
    .add_edge("first", "wait_for_model")
    .add_edge("wait_for_model", "whoami_step")
    .compile()
)
"""Who the caller is, asked after a model call a test can hold (across a server restart)."""
