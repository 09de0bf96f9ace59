"""`ferrograph serve` against `langgraph dev` (LangGraph's own server, the reference): the
same graphs (tests/server_graphs, on each engine), the same calls through the official
`langgraph-sdk`, and the observable results compared: event names and order, payloads,
status codes and error bodies, thread and run states (ids and timestamps normalised). Ours
runs each comparison twice: on SQLite, then on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client

from tests.server_support import (
    BACKENDS,
    HeldModel,
    ferrograph_serve,
    langgraph_dev,
    normalise,
    server_database,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def model():
    with HeldModel() as held:
        yield held


@pytest.fixture(scope="module")
def langgraph_url(model, tmp_path_factory):
    with langgraph_dev(model, tmp_path_factory.mktemp("langgraph")) as lg:
        yield lg.url


@pytest.fixture(scope="module", params=BACKENDS)
def servers(request, model, langgraph_url, tmp_path_factory):
    """{"ferrograph": url, "langgraph": url}, both serving the same graphs; ours keeps its
    data in SQLite (`:memory:`), then in PostgreSQL."""
    with server_database(request, request.param) as db, \
            ferrograph_serve(model, tmp_path_factory.mktemp("ferrograph"), *db) as fg:
        yield {"ferrograph": fg.url, "langgraph": langgraph_url}


def both(servers: dict[str, str], scenario: Any) -> tuple[Any, Any]:
    """The scenario's normalised result on each server."""
    return (normalise(scenario(servers["ferrograph"])),
            normalise(scenario(servers["langgraph"])))


def sync_client(url: str) -> Any:
    return get_sync_client(url=url, api_key=None)


def events(url: str, graph: str, input: Any = None, **kwargs: Any) -> list[tuple[str, Any]]:
    client = sync_client(url)
    thread = client.threads.create()
    return [(p.event, p.data) for p in client.runs.stream(
        thread["thread_id"], graph, input=input, **kwargs)]


def test_counter_every_mode(servers):
    def scenario(url):
        out = []
        for event, data in events(url, "counter", {"count": 1},
                                  stream_mode=["values", "updates", "custom", "tasks",
                                               "checkpoints"]):
            if event == "tasks" and "metadata" in data:
                data = {k: v for k, v in data.items() if k != "metadata"}
            if event == "checkpoints":
                data = {"values": data["values"], "next": data["next"],
                        "source": data["metadata"]["source"],
                        "step": data["metadata"]["step"],
                        "tasks": [t["name"] for t in data["tasks"]],
                        "parent": data["parent_config"] is not None}
            out.append((event, data))
        return out

    ours, theirs = both(servers, scenario)
    assert ours == theirs


def test_debug_mode_event_kinds(servers):
    def scenario(url):
        return [(e, d["type"], d["step"]) for e, d in
                events(url, "counter", {"count": 1}, stream_mode="debug") if e == "debug"]

    ours, theirs = both(servers, scenario)
    assert ours == theirs


def test_subgraph_events_carry_namespaces(servers):
    def scenario(url):
        return events(url, "nested", {"count": 2}, stream_mode=["values", "updates", "custom"],
                      stream_subgraphs=True)

    ours, theirs = both(servers, scenario)
    assert ours == theirs
    assert any(e.startswith("updates|child:") for e, _ in ours)


def test_without_stream_subgraphs_custom_items_still_come(servers):
    def scenario(url):
        return events(url, "nested", {"count": 2}, stream_mode=["updates", "custom"])

    ours, theirs = both(servers, scenario)
    assert ours == theirs


def test_interrupt_then_resume(servers):
    def scenario(url):
        client = sync_client(url)
        tid = client.threads.create(metadata={"who": "test"})["thread_id"]
        first = [(p.event, p.data) for p in client.runs.stream(
            tid, "ask", input={"count": 2}, stream_mode=["values", "updates"])]
        thread = client.threads.get(tid)
        state = client.threads.get_state(tid)
        resumed = [(p.event, p.data) for p in client.runs.stream(
            tid, "ask", command={"resume": "bob"}, stream_mode="values")]
        after = client.threads.get(tid)
        history = client.threads.get_history(tid, limit=20)
        return {
            "first": first, "resumed": resumed,
            "interrupted": {k: thread[k] for k in ("status", "values", "interrupts", "error")},
            "metadata": thread["metadata"],
            "state": {k: state[k] for k in ("values", "next", "interrupts")},
            "state_tasks": [{k: t[k] for k in ("name", "path", "error", "interrupts")}
                            for t in state["tasks"]],
            "after": {k: after[k] for k in ("status", "values", "interrupts", "error")},
            "history": [(h["metadata"]["source"], h["metadata"]["step"], h["next"])
                        for h in history],
        }

    ours, theirs = both(servers, scenario)
    assert ours == theirs
    assert ours["interrupted"]["status"] == "interrupted"


def test_wait_returns_interrupt_then_final_values(servers):
    def scenario(url):
        client = sync_client(url)
        tid = client.threads.create()["thread_id"]
        first = client.runs.wait(tid, "ask", input={"count": 5})
        second = client.runs.wait(tid, "ask", command={"resume": "al"})
        runs = client.runs.list(tid)
        return {"first": first, "second": second,
                "runs": [(r["status"], r["multitask_strategy"], r["metadata"]) for r in runs]}

    ours, theirs = both(servers, scenario)
    assert ours == theirs


def test_node_error(servers):
    def scenario(url):
        client = sync_client(url)
        tid = client.threads.create()["thread_id"]
        streamed = [(p.event, p.data) for p in client.runs.stream(
            tid, "boom", input={"count": 1}, stream_mode="updates")]
        thread = client.threads.get(tid)
        runs = client.runs.list(tid)
        tid2 = client.threads.create()["thread_id"]
        waited = client.runs.wait(tid2, "boom", input={"count": 7}, raise_error=False)
        with pytest.raises(Exception) as raised:
            client.runs.wait(tid2, "boom", input={"count": 8})
        return {"streamed": streamed, "status": thread["status"], "error": thread["error"],
                "run": runs[0]["status"], "waited": waited, "raised": str(raised.value)}

    ours, theirs = both(servers, scenario)
    assert ours == theirs
    assert ours["streamed"][-1] == ["error", {"error": "ValueError", "message": "boom at 2"}]


def _tokens(parts: list[tuple[str, Any]]) -> dict[str, str]:
    text: dict[str, str] = {}
    for event, data in parts:
        if event == "messages":
            chunk, metadata = data
            text[metadata["langgraph_node"]] = text.get(metadata["langgraph_node"], "") + \
                chunk["content"]
    return text


_META_KEYS = ("langgraph_node", "langgraph_step", "langgraph_triggers", "langgraph_path",
              "langgraph_checkpoint_ns", "checkpoint_ns", "thread_id", "run_id", "graph_id",
              "assistant_id", "ls_provider", "ls_model_name", "ls_model_type")


def test_seed_messages_tuple(servers):
    def scenario(url):
        parts = events(url, "seed", {"topic": "cats"}, stream_mode="messages-tuple")
        firsts = {}
        for event, data in parts:
            if event == "messages" and data[1]["langgraph_node"] not in firsts:
                chunk, meta = data
                firsts[meta["langgraph_node"]] = (
                    {k: v for k, v in chunk.items() if k not in ("content", "id")},
                    {k: meta.get(k) for k in _META_KEYS})
        return {"events": sorted({e for e, _ in parts}), "tokens": _tokens(parts),
                "count": len(parts), "firsts": firsts}

    ours, theirs = both(servers, scenario)
    assert ours == theirs
    assert "cats" in ours["tokens"]["write_poem"]


def test_seed_messages_v1_events(servers):
    async def run(url):
        client = get_client(url=url, api_key=None)
        thread = await client.threads.create()
        parts = [(p.event, p.data) async for p in client.runs.stream(
            thread["thread_id"], "seed", input={"topic": "dogs"}, stream_mode="messages")]
        final: dict[str, Any] = {}
        kinds: dict[str, list[str]] = {}
        for event, data in parts:
            if event == "messages/metadata":
                (mid, meta), = data.items()
                kinds.setdefault(meta["metadata"]["langgraph_node"], []).append(mid)
            elif event in ("messages/partial", "messages/complete"):
                final[data[0]["id"]] = data[0]
        return {node: [{k: v for k, v in final[m].items() if k != "id"} for m in ids]
                for node, ids in kinds.items()}, sorted({e for e, _ in parts})

    def scenario(url):
        return asyncio.run(run(url))

    ours, theirs = both(servers, scenario)
    assert ours == theirs


def test_stateless_runs(servers):
    def scenario(url):
        client = sync_client(url)
        streamed = [(p.event, p.data) for p in client.runs.stream(
            None, "counter", input={"count": 3}, stream_mode="updates")]
        waited = client.runs.wait(None, "counter", input={"count": 4})
        return {"streamed": streamed, "waited": waited}

    ours, theirs = both(servers, scenario)
    assert ours == theirs


def test_threads_lifecycle(servers):
    def scenario(url):
        client = sync_client(url)
        created = client.threads.create(metadata={"user": "ann", "n": 1})
        tid = created["thread_id"]
        again = client.threads.create(thread_id=tid, if_exists="do_nothing")
        with pytest.raises(httpx.HTTPStatusError) as dup:
            client.threads.create(thread_id=tid)
        updated = client.threads.update(tid, metadata={"n": 2})
        found = client.threads.search(metadata={"user": "ann", "n": 2})
        client.threads.delete(tid)
        with pytest.raises(httpx.HTTPStatusError) as gone:
            client.threads.get(tid)
        return {"created": {k: created[k] for k in ("metadata", "status", "values")},
                "again": again["thread_id"] == tid,
                "dup": (dup.value.response.status_code, dup.value.response.json()),
                "updated": updated["metadata"],
                "found": [t["thread_id"] == tid for t in found],
                "gone": (gone.value.response.status_code, gone.value.response.json())}

    ours, theirs = both(servers, scenario)
    assert ours == theirs


def test_update_state_and_history(servers):
    def scenario(url):
        client = sync_client(url)
        tid = client.threads.create()["thread_id"]
        client.runs.wait(tid, "counter", input={"count": 1})
        updated = client.threads.update_state(tid, {"count": 99}, as_node="second")
        state = client.threads.get_state(tid)
        with pytest.raises(httpx.HTTPStatusError) as bad:
            client.threads.update_state(tid, {"count": 1}, as_node="zzz")
        history = client.threads.get_history(tid)
        return {"updated": sorted(updated), "values": state["values"], "next": state["next"],
                "source": state["metadata"]["source"],
                "bad": (bad.value.response.status_code, bad.value.response.json()),
                "history": [(h["metadata"]["source"], h["values"]) for h in history]}

    ours, theirs = both(servers, scenario)
    assert ours == theirs


def test_background_run_join(servers):
    def scenario(url):
        client = sync_client(url)
        tid = client.threads.create()["thread_id"]
        run = client.runs.create(tid, "counter", input={"count": 2}, metadata={"tag": "bg"})
        joined = client.runs.join(tid, run["run_id"])
        got = client.runs.get(tid, run["run_id"])
        return {"created": {k: run[k] for k in ("status", "metadata", "multitask_strategy")},
                "joined": joined, "status": got["status"], "thread": client.threads.get(tid)[
                    "values"]}

    ours, theirs = both(servers, scenario)
    assert ours == theirs


def test_assistants(servers):
    def scenario(url):
        client = sync_client(url)
        found = client.assistants.search(graph_id="counter")
        assistant = client.assistants.get(found[0]["assistant_id"])
        graph = client.assistants.get_graph("counter")
        return {"found": [{k: a[k] for k in ("assistant_id", "graph_id", "name", "metadata",
                                              "version", "config")} for a in found],
                "same": assistant["assistant_id"] == found[0]["assistant_id"],
                "nodes": sorted(n["id"] for n in graph["nodes"]),
                "edges": sorted((e["source"], e["target"]) for e in graph["edges"])}

    ours, theirs = both(servers, scenario)
    assert ours == theirs


BAD_REQUESTS = [
    ("GET", "/threads/not-a-uuid", None, True),
    ("GET", "/threads/01a24575-3799-77dc-9a73-b0ca0513a8ee", None, True),
    ("DELETE", "/threads/01a24575-3799-77dc-9a73-b0ca0513a8ee", None, True),
    ("GET", "/assistants/counter", None, True),
    ("GET", "/nowhere", None, True),
    ("POST", "/threads/{tid}/runs/stream", b"{nope", True),
    ("POST", "/threads/01a24575-3799-77dc-9a73-b0ca0513a8ee/runs/stream",
     {"assistant_id": "counter"}, True),
    ("POST", "/threads/not-a-uuid/runs/stream", {"assistant_id": "counter"}, True),
    ("POST", "/threads/{tid}/runs/stream", {"assistant_id": "nograph"}, True),
    ("POST", "/threads/{tid}/runs/stream",
     {"assistant_id": "01a24575-3799-77dc-9a73-b0ca0513a8ee"}, True),
    # jsonschema's messages are LangGraph's own: only the status is compared
    ("POST", "/threads/{tid}/runs/stream", {"input": {}}, False),
    ("POST", "/threads/{tid}/runs/stream", {"assistant_id": "counter", "stream_mode": "nope"},
     False),
    ("POST", "/threads/{tid}/runs/stream",
     {"assistant_id": "counter", "stream_mode": ["values", "nope"]}, False),
    ("POST", "/threads/{tid}/runs/stream",
     {"assistant_id": "counter", "multitask_strategy": "nope"}, False),
    ("GET", "/threads/{tid}/runs/01a24575-3799-77dc-9a73-b0ca0513a8ee", None, False),
    ("GET", "/threads/{tid}/runs/01a24575-3799-77dc-9a73-b0ca0513a8ee/join", None, True),
]


def test_root_and_ok_health_checks(servers, request):
    # `/` is LangGraph's root health check; ferrograph's web page there is only for clients
    # asking for HTML (tests/test_server_webpage.py)
    def scenario(url):
        return [(r.status_code, r.json()) for r in (httpx.get(url + "/"), httpx.get(url + "/ok"))]

    ours, theirs = both(servers, scenario)
    if request.node.callspec.params["servers"] == "postgres":
        # on PostgreSQL ours asks the database by default (`check_db=1`, LangGraph's
        # parameter), which `langgraph dev` has none of: the answer says so
        theirs = [[status, {**body, "services": {"database": "healthy"}}]
                  for status, body in theirs]
    assert ours == theirs


@pytest.mark.parametrize("method,path,body,compare_body", BAD_REQUESTS)
def test_bad_requests(servers, method, path, body, compare_body):
    def scenario(url):
        tid = httpx.post(url + "/threads", json={}).json()["thread_id"]
        kwargs = {"content": body, "headers": {"content-type": "application/json"}} if \
            isinstance(body, bytes) else {"json": body} if body is not None else {}
        response = httpx.request(method, url + path.format(tid=tid), timeout=30, **kwargs)
        if not compare_body:
            return response.status_code
        return response.status_code, response.json()

    ours, theirs = both(servers, scenario)
    assert ours == theirs


def test_error_of_a_users_exception_class(servers):
    def scenario(url):
        client = sync_client(url)
        tid = client.threads.create()["thread_id"]
        streamed = [(p.event, p.data) for p in client.runs.stream(
            tid, "crash", input={"count": 1}, stream_mode="updates")]
        return {"streamed": streamed, "thread": client.threads.get(tid)["error"],
                "waited": client.runs.wait(None, "crash", input={"count": 2},
                                           raise_error=False)}

    ours, theirs = both(servers, scenario)
    assert ours == theirs


def test_remote_graph(servers):
    """LangGraph's `RemoteGraph` (the SDK underneath) drives either server the same way."""
    from langgraph.pregel.remote import RemoteGraph
    from langgraph.types import Command

    def scenario(url):
        seed = RemoteGraph("seed", url=url, api_key=None)
        tokens: dict[str, str] = {}
        for chunk, meta in seed.stream({"topic": "cats"}, stream_mode="messages"):
            node = meta["langgraph_node"]
            tokens[node] = tokens.get(node, "") + chunk["content"]
        ask = RemoteGraph("ask", url=url, api_key=None)
        tid = sync_client(url).threads.create()["thread_id"]
        config = {"configurable": {"thread_id": tid}}
        paused = list(ask.stream({"count": 1}, config, stream_mode="updates"))
        state = ask.get_state(config)
        return {"invoke": seed.invoke({"topic": "dogs"}), "tokens": tokens, "paused": paused,
                "next": state.next, "values": state.values,
                "interrupts": [i.value for i in state.interrupts],
                "resumed": ask.invoke(Command(resume="x"), config),
                "nested": list(RemoteGraph("nested", url=url, api_key=None).stream(
                    {"count": 1}, stream_mode="updates", subgraphs=True))}

    ours, theirs = both(servers, scenario)
    assert ours == theirs


def test_schemas(servers):
    def scenario(url):
        client = sync_client(url)
        found = client.assistants.search(graph_id="counter")[0]
        return client.assistants.get_schemas(found["assistant_id"])

    ours, theirs = both(servers, scenario)
    assert ours == theirs


def test_state_with_subgraphs_history_before_and_time_travel(servers):
    def scenario(url):
        client = sync_client(url)
        tid = client.threads.create()["thread_id"]
        client.runs.wait(tid, "nested", input={"count": 1}, interrupt_before=["child"])
        state = client.threads.get_state(tid, subgraphs=True)
        history = client.threads.get_history(tid)
        before = client.threads.get_history(
            tid, before={"configurable": {"checkpoint_id": history[0]["checkpoint_id"]}})
        at = client.threads.get_state(tid, checkpoint_id=history[1]["checkpoint_id"])
        step0 = next(h for h in history if h["metadata"]["step"] == 0)
        travelled = client.runs.wait(tid, "nested", input=None,
                                     checkpoint_id=step0["checkpoint_id"])
        after = client.threads.get_history(tid, limit=20)
        return {"next": state["next"], "tasks": [{k: t[k] for k in ("name", "state",
                                                                      "checkpoint")}
                                                   for t in state["tasks"]],
                "history": [h["metadata"]["step"] for h in history],
                "before": [h["metadata"]["step"] for h in before],
                "at": (at["values"], at["next"], at["metadata"]["step"]),
                "travelled": travelled,
                "after": [(h["metadata"]["source"], h["metadata"]["step"], h["next"])
                          for h in after]}

    ours, theirs = both(servers, scenario)
    assert ours == theirs


def test_resumable_run_replays_its_events(servers):
    def scenario(url):
        client = sync_client(url)
        tid = client.threads.create()["thread_id"]
        run = client.runs.create(tid, "counter", input={"count": 1}, stream_resumable=True,
                                 stream_mode=["updates", "custom"])
        client.runs.join(tid, run["run_id"])
        replayed = list(client.runs.join_stream(tid, run["run_id"], last_event_id="-1"))
        with httpx.stream("GET", f"{url}/threads/{tid}/runs/{run['run_id']}/stream",
                          headers={"Last-Event-ID": "-1"}, timeout=30) as response:
            ids = [line[4:] for line in response.iter_lines() if line.startswith("id: ")]
        # the runs without stream_resumable keep nothing to replay
        plain = client.runs.create(tid, "counter", input={"count": 1})
        client.runs.join(tid, plain["run_id"])
        return {"replayed": [(p.event, p.data) for p in replayed],
                "ids": len(ids) == len(replayed),
                "plain": list(client.runs.join_stream(tid, plain["run_id"],
                                                      last_event_id="-1"))}

    ours, theirs = both(servers, scenario)
    assert ours == theirs
    assert [e for e, _ in ours["replayed"]] == ["metadata", "custom", "updates", "updates"]


def test_assistants_created_updated_versioned_deleted(servers):
    def scenario(url):
        client = sync_client(url)
        keys = ("graph_id", "config", "context", "metadata", "name", "version", "description")

        def shown(a):
            return {k: a[k] for k in keys}

        made = client.assistants.create("counter", config={"recursion_limit": 7},
                                        metadata={"m": 1}, name="mine")
        aid = made["assistant_id"]
        with pytest.raises(httpx.HTTPStatusError) as dup:
            client.assistants.create("counter", assistant_id=aid)
        same = client.assistants.create("counter", assistant_id=aid, if_exists="do_nothing")
        with pytest.raises(httpx.HTTPStatusError) as unknown:
            client.assistants.create("nograph")
        patched = [client.assistants.update(aid, metadata={"n": 2}),
                   client.assistants.update(aid, config={"tags": ["t"]}),
                   client.assistants.update(aid, context={"x": 1})]
        versions = client.assistants.get_versions(aid)
        latest = client.assistants.set_latest(aid, 2)
        tid = client.threads.create()["thread_id"]
        result = client.runs.wait(tid, aid, input={"count": 1})
        run = client.runs.list(tid)[0]
        found = client.assistants.search(metadata={"m": 1})
        client.assistants.delete(aid)
        with pytest.raises(httpx.HTTPStatusError) as gone:
            client.assistants.get(aid)
        return {"made": shown(made), "dup": dup.value.response.status_code,
                "same": same["assistant_id"] == aid,
                "unknown": unknown.value.response.status_code,
                "patched": [shown(p) for p in patched],
                "versions": [(v["version"], v["config"], v["metadata"]) for v in versions],
                "latest": (latest["version"], latest["config"], latest["metadata"]),
                "result": result, "run": (run["assistant_id"] == aid, run["metadata"]),
                "found": [a["assistant_id"] == aid for a in found],
                "gone": gone.value.response.status_code}

    ours, theirs = both(servers, scenario)
    assert ours == theirs


def test_thread_copy(servers):
    def scenario(url):
        client = sync_client(url)
        tid = client.threads.create(metadata={"k": "v"})["thread_id"]
        client.runs.wait(tid, "ask", input={"count": 1})
        copied = client.threads.copy(tid)
        cid = copied["thread_id"]
        original = client.threads.get_history(tid)
        history = client.threads.get_history(cid)
        resumed = client.runs.wait(cid, "ask", command={"resume": "copy"})
        return {"copied": {k: v for k, v in copied.items() if k not in ("thread_id",)},
                "new_id": cid != tid,
                "same_checkpoints": [h["checkpoint_id"] for h in history] ==
                [h["checkpoint_id"] for h in original],
                "state": client.threads.get_state(tid)["next"],
                "resumed": resumed, "original_after": client.threads.get(tid)["status"]}

    ours, theirs = both(servers, scenario)
    assert ours == theirs


def test_a_thread_never_run(servers):
    def scenario(url):
        tid = httpx.post(url + "/threads", json={}).json()["thread_id"]
        state = httpx.get(f"{url}/threads/{tid}/state")
        history = httpx.post(f"{url}/threads/{tid}/history", json={})
        update = httpx.post(f"{url}/threads/{tid}/state", json={"values": {"count": 1}})
        # a thread created for a graph takes a state update before any run
        tid2 = httpx.post(url + "/threads", json={"metadata": {"graph_id": "counter"}}).json()[
            "thread_id"]
        updated = httpx.post(f"{url}/threads/{tid2}/state", json={"values": {"count": 1}})
        thread = httpx.get(f"{url}/threads/{tid2}").json()
        return {"state": (state.status_code, state.json()),
                "history": (history.status_code, history.json()),
                "update": (update.status_code, update.json()),
                "updated": (updated.status_code, sorted(updated.json())),
                "thread": {k: thread[k] for k in ("status", "values", "interrupts", "error")}}

    ours, theirs = both(servers, scenario)
    assert ours == theirs


# Keys only LangGraph's server writes (its versions, plan, host, request and auth ids), and
# `thread_id`, which LangGraph's server also copies into checkpoint metadata
_SERVER_ONLY_KEYS = {"langgraph_version", "langgraph_api_version", "langgraph_plan",
                     "langgraph_host", "langgraph_api_url", "langgraph_request_id",
                     "langgraph_auth_user_id"}


def test_run_metadata_in_checkpoints_and_messages(servers):
    def scenario(url):
        client = sync_client(url)
        tid = client.threads.create(metadata={"owner": "me"})["thread_id"]
        client.runs.wait(tid, "counter", input={"count": 1}, metadata={"req": 1})
        checkpoint = client.threads.get_state(tid)["metadata"]
        parts = list(client.runs.stream(tid, "seed", input={"topic": "a"},
                                        stream_mode="messages-tuple"))
        message = next(p.data[1] for p in parts if p.event == "messages")
        return {"checkpoint": {k: v for k, v in checkpoint.items()
                               if k not in _SERVER_ONLY_KEYS | {"thread_id"}},
                "message": sorted(set(message) - _SERVER_ONLY_KEYS - {"ls_temperature"})}

    ours, theirs = both(servers, scenario)
    assert ours == theirs


def test_a_run_without_auth_sees_no_caller(servers):
    """Without custom auth LangGraph's server still names the caller in a run's config: no
    user, identity "", no permissions."""
    def scenario(url):
        return sync_client(url).runs.wait(None, "whoami", input={"count": 1})

    ours, theirs = both(servers, scenario)
    assert ours == theirs
    assert json.loads(theirs["log"][0]) == {"configurable_user_id": "", "permissions": [],
                                            "user_id": ""}
