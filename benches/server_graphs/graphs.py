"""Graphs of the server benchmark (`benches/server.py`), served by `ferrograph serve` or, with
SERVER_GRAPH_LIB=langgraph, by `langgraph dev`, from this one file.

The models are LangChain's `GenericFakeChatModel` (no network: a reply of `words` words streams
as the words and the spaces between them), so what is measured is the server and the engine,
not a model server. `speak` is one node; `seed` is the seed page's joke/poem graph."""

from __future__ import annotations

import os
from typing import Any, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

if os.environ.get("SERVER_GRAPH_LIB") == "langgraph":
    from langgraph.graph import START, StateGraph
else:
    from ferrograph.graph import START, StateGraph


def _reply(words: int, word: str) -> str:
    return " ".join(f"{word}{i}" for i in range(words))


def _say(words: int, word: str) -> str:
    model = GenericFakeChatModel(messages=iter([AIMessage(_reply(words, word))]))
    return model.invoke([{"role": "user", "content": word}]).content


class SpeakState(TypedDict, total=False):
    words: int
    text: str


def say(state: SpeakState) -> dict[str, Any]:
    return {"text": _say(state.get("words", 100), "w")}


speak = StateGraph(SpeakState).add_node(say).add_edge(START, "say").compile()


class SeedState(TypedDict, total=False):
    words: int
    joke: str
    poem: str


def write_joke(state: SeedState) -> dict[str, Any]:
    return {"joke": _say(state.get("words", 100), "j")}


def write_poem(state: SeedState) -> dict[str, Any]:
    return {"poem": _say(state.get("words", 100), "p")}


seed = (StateGraph(SeedState).add_node(write_joke).add_node(write_poem)
        .add_edge(START, "write_joke").add_edge(START, "write_poem").compile())
