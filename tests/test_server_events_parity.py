"""`stream_mode="events"` on `ferrograph serve` against `langgraph dev`: alone and beside other
modes, with subgraphs, model tokens (`messages-tuple`, `messages`), an interrupt, a failing
node and the `wait` result; the `events` event's payload is LangChain's `astream_events` v2
dict, compared whole (ids, timestamps and LangGraph's server-only metadata normalised).

Where LangGraph itself gives no fixed order the comparison does not ask for one: its server
hands the graph's own stream items and the other events to the client through two queues,
so how `events` interleave with the other modes' events varies from run to run; each of the
two sequences is compared in order. Parallel nodes' events are compared node by node."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client

from tests.server_support import SERVER_ONLY_METADATA, normalise

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def parts(url: str, graph: str, input: Any = None, **kwargs: Any) -> list[tuple[str, Any]]:
    """The run's events as (name, data), normalised."""
    client = get_sync_client(url=url, api_key=None)
    thread = client.threads.create()
    return [_normalised(p.event, p.data) for p in client.runs.stream(
        thread["thread_id"], graph, input=input, **kwargs)]


def _without_server_metadata(data: Any) -> Any:
    if isinstance(data, dict) and isinstance(data.get("metadata"), dict):
        return {**data, "metadata": {k: v for k, v in data["metadata"].items()
                                     if k not in SERVER_ONLY_METADATA}}
    return data


def _normalised(event: str, data: Any) -> tuple[str, Any]:
    if event == "events":
        data = _without_server_metadata(data)
    elif event.startswith("messages") and isinstance(data, list) and len(data) == 2:
        data = [data[0], _without_server_metadata({"metadata": data[1]})["metadata"]]
    return normalise(event), normalise(data)


def split(events: list[tuple[str, Any]]) -> dict[str, list[Any]]:
    """The `events` payloads and the other events, each in its own order."""
    return {"events": [d for e, d in events if e == "events"],
            "others": [(e, d) for e, d in events if e != "events"]}


def _node(event: str, data: Any) -> Any:
    if event == "events":
        return data["metadata"].get("langgraph_node")
    if event == "messages":
        return data[1].get("langgraph_node")
    return None


def by_node(events: list[tuple[str, Any]]) -> dict[str, dict[str, list[Any]]]:
    """`split`, node by node (parallel nodes interleave as they are scheduled)."""
    nodes: dict[Any, list[tuple[str, Any]]] = {}
    for event, data in events:
        nodes.setdefault(str(_node(event, data)), []).append((event, data))
    return {node: split(items) for node, items in nodes.items()}


def both(servers: dict[str, str], scenario: Any) -> tuple[Any, Any]:
    return scenario(servers["ferrograph"]), scenario(servers["langgraph"])


def test_events_alone(server_pair):
    ours, theirs = both(server_pair, lambda url: parts(url, "counter", {"count": 1},
                                                       stream_mode="events"))
    assert ours == theirs
    names = [(d["event"], d["name"]) for e, d in ours if e == "events"]
    assert names[0] == ("on_chain_start", "counter")
    assert names[-1] == ("on_chain_end", "counter")
    # the graph's own stream items are not `events` (they make the other modes)
    assert ("on_chain_stream", "counter") not in names


def test_events_with_other_modes_and_subgraphs(server_pair):
    ours, theirs = both(server_pair, lambda url: split(parts(
        url, "nested", {"count": 2}, stream_mode=["events", "values", "updates", "custom"],
        stream_subgraphs=True)))
    assert ours == theirs
    assert any(e.startswith("updates|child:") for e, _ in ours["others"])
    # events from inside the subgraph are never namespaced
    assert any(d["metadata"].get("langgraph_node") == "child_step" for d in ours["events"])


def test_events_without_subgraphs_beside_updates(server_pair):
    ours, theirs = both(server_pair, lambda url: split(parts(
        url, "nested", {"count": 2}, stream_mode=["updates", "events"])))
    assert ours == theirs


def test_events_with_messages_tuple(server_pair):
    ours, theirs = both(server_pair, lambda url: by_node(parts(
        url, "seed", {"topic": "cats"}, stream_mode=["events", "messages-tuple"])))
    assert ours == theirs
    poem = ours["write_poem"]
    assert any(d["event"] == "on_chat_model_stream" for d in poem["events"])
    assert any(e == "messages" for e, _ in poem["others"])


def test_events_with_messages_v1(server_pair):
    def scenario(url):
        async def run():
            client = get_client(url=url, api_key=None)
            thread = await client.threads.create()
            got = [_normalised(p.event, p.data) async for p in client.runs.stream(
                thread["thread_id"], "seed", input={"topic": "owls"},
                stream_mode=["messages", "events"])]
            kinds = sorted({e for e, _ in got})
            tokens = {}
            for event, data in got:
                if event == "events" and data["event"] == "on_chat_model_stream":
                    node = data["metadata"]["langgraph_node"]
                    tokens[node] = tokens.get(node, "") + data["data"]["chunk"]["content"]
            # each partial message is the text so far: a node's whole text is one of them
            partials = {d[0]["content"] for e, d in got if e == "messages/partial"}
            return kinds, tokens, all(text in partials for text in tokens.values())
        return asyncio.run(run())

    ours, theirs = both(server_pair, scenario)
    assert ours == theirs
    assert set(ours[1]) == {"write_joke", "write_poem"} and ours[2]


def test_events_through_an_interrupt_and_its_resume(server_pair):
    def scenario(url):
        client = get_sync_client(url=url, api_key=None)
        tid = client.threads.create()["thread_id"]
        first = [_normalised(p.event, p.data) for p in client.runs.stream(
            tid, "ask", input={"count": 1}, stream_mode=["events", "updates"])]
        resumed = [_normalised(p.event, p.data) for p in client.runs.stream(
            tid, "ask", command={"resume": "ann"}, stream_mode="events")]
        return split(first), resumed, client.threads.get(tid)["status"]

    ours, theirs = both(server_pair, scenario)
    assert ours == theirs
    assert ours[2] == "idle"


def test_events_of_a_failing_node_and_wait(server_pair):
    def scenario(url):
        client = get_sync_client(url=url, api_key=None)
        tid = client.threads.create()["thread_id"]
        streamed = [_normalised(p.event, p.data) for p in client.runs.stream(
            tid, "boom", input={"count": 1}, stream_mode=["events", "values"])]
        # the SDK's `wait` takes no stream_mode; a raw request can give one. (A stateless
        # one LangGraph's server answers `{}`: no `values` event, no thread to read)
        tid2 = client.threads.create()["thread_id"]
        waited = httpx.post(f"{url}/threads/{tid2}/runs/wait", json={
            "assistant_id": "counter", "input": {"count": 3}, "stream_mode": "events"},
            timeout=60).json()
        runs = client.runs.list(tid)
        return {"streamed": split(streamed), "last": streamed[-1], "waited": waited,
                "status": runs[0]["status"], "thread": client.threads.get(tid)["status"]}

    ours, theirs = both(server_pair, scenario)
    assert ours == theirs
    assert ours["last"] == ("error", {"error": "ValueError", "message": "boom at 2"})
    assert ours["status"] == "error"
