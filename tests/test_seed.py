"""The page our users start from (shared/seed/streaming-specific-nodes.md), run as written
with only the import changed, against the real ChatOpenAI client and the embedded server."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from ferrograph.local_openai import LocalOpenAIServer, poem_about, tokenize

SEED = Path(__file__).resolve().parents[2] / "shared" / "seed" / "streaming-specific-nodes.md"

# The example as the page gives it (used when the seed page is not beside the checkout).
EXAMPLE = '''
from typing import TypedDict
from langgraph.graph import START, StateGraph, MessagesState
from langchain_openai import ChatOpenAI

model = ChatOpenAI(model="gpt-4o-mini")

class State(TypedDict):
    topic: str
    joke: str
    poem: str

def write_joke(state: State):
    topic = state["topic"]
    joke_response = model.invoke(
        [{"role": "user", "content": f"Write a joke about {topic}"}]
    )
    return {"joke": joke_response.content}

def write_poem(state: State):
    topic = state["topic"]
    poem_response = model.invoke(
        [{"role": "user", "content": f"Write a short poem about {topic}"}]
    )
    return {"poem": poem_response.content}

graph = (
    StateGraph(State)
    .add_node(write_joke)
    .add_node(write_poem)
    # write both the joke and the poem concurrently
    .add_edge(START, "write_joke")
    .add_edge(START, "write_poem")
    .compile()
)

for msg, metadata in graph.stream(
    {"topic": "cats"},
    stream_mode="messages",
):
    if msg.content and metadata["langgraph_node"] == "write_poem":
        print(msg.content, end="|", flush=True)
'''


def seed_example() -> str:
    if not SEED.exists():
        return EXAMPLE
    page = SEED.read_text()
    blocks = re.findall(r"```md-code__content\n(.*?)```", page[page.index("## Example"):], re.S)
    return "\n".join(blocks[:2])


@pytest.fixture
def openai_env(monkeypatch):
    with LocalOpenAIServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "local")
        yield server


def test_seed_example_runs_with_only_the_import_changed(openai_env):
    source = seed_example()
    assert "from langgraph.graph import START, StateGraph, MessagesState" in source
    changed = source.replace("from langgraph.graph import", "from ferrograph.graph import")
    assert changed.count("ferrograph") == 1  # nothing else was touched
    out = io.StringIO()
    namespace: dict = {}
    with contextlib.redirect_stdout(out):
        exec(compile(changed, "seed-example", "exec"), namespace)
    printed = out.getvalue()
    # Token by token, only from write_poem, and it adds up to the poem the server sent.
    assert printed.split("|")[:-1] == tokenize(poem_about("cats"))
    assert printed.replace("|", "") == poem_about("cats")
    assert len(openai_env.requests) == 2 and all(r.stream for r in openai_env.requests)
    assert "langgraph" not in repr(type(namespace["graph"]))
