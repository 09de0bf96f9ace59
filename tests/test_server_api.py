"""`ferrograph serve` on its own: the node filter (ferrograph's extension), cancelling runs
(the endpoint, a client that goes away, a new run on a busy thread), joins, the async client,
threads kept across restarts, and start-up errors; each on both databases (SQLite and
PostgreSQL). What LangGraph's server does the same way is compared with it in
test_server_parity.py."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client

from tests.server_support import (
    BACKENDS,
    GRAPHS,
    HeldModel,
    copy_graphs,
    ferrograph_serve,
    graph_env,
    server_database,
    stream_until_held,
    wait_for_status,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

WAIT = 60.0
"""Seconds a test waits for a run to reach a state (never a pause: a deadline)."""


@pytest.fixture(scope="module")
def model():
    with HeldModel() as held:
        yield held


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, model, tmp_path_factory):
    with server_database(request, request.param) as args, \
            ferrograph_serve(model, tmp_path_factory.mktemp("serve"), *args) as proc:
        yield proc.url


def client(url):
    return get_sync_client(url=url, api_key=None)


def tokens_by_node(parts):
    text = {}
    for p in parts:
        if p.event == "messages":
            chunk, meta = p.data
            text[meta["langgraph_node"]] = text.get(meta["langgraph_node"], "") + chunk["content"]
    return text


def test_node_filter_keeps_the_chosen_nodes_tokens_and_pushes_down(server, model):
    c = client(server)
    tid = c.threads.create()["thread_id"]
    before = len(model.server.requests)
    parts = list(c.runs.stream(tid, "seed", input={"topic": "owls"},
                               stream_mode=["messages-tuple", "updates"],
                               config={"configurable": {"ferrograph_nodes": ["write_poem"]}}))
    assert set(tokens_by_node(parts)) == {"write_poem"}
    assert "owls" in tokens_by_node(parts)["write_poem"]
    # updates also come only from the chosen node, as with stream(nodes=...)
    assert [list(p.data) for p in parts if p.event == "updates"] == [["write_poem"]]
    # pushed down: the joke's model was not asked to stream, the poem's was
    asked = {("joke" if "joke" in r.messages[-1]["content"] else "poem"): r.stream
             for r in model.server.requests[before:]}
    assert asked == {"joke": False, "poem": True}
    # the run's state is whole: the filter chooses items, not work
    assert set(c.threads.get_state(tid)["values"]) == {"topic", "joke", "poem"}


def test_node_filter_pushes_down_under_stream_mode_events(server, model):
    """`events` runs the graph through `astream_events`; the node filter still chooses the
    events (the chosen node's and the graph's) and keeps the other node's model from
    streaming at all."""
    c = client(server)
    before = len(model.server.requests)
    parts = list(c.runs.stream(None, "seed", input={"topic": "moles"},
                               stream_mode=["events", "messages-tuple"],
                               config={"configurable": {"ferrograph_nodes": ["write_poem"]}}))
    events = [p.data for p in parts if p.event == "events"]
    assert {e["metadata"].get("langgraph_node") for e in events} == {None, "write_poem"}
    assert "moles" in "".join(e["data"]["chunk"]["content"] for e in events
                              if e["event"] == "on_chat_model_stream")
    assert set(tokens_by_node(parts)) == {"write_poem"}
    asked = {("joke" if "joke" in r.messages[-1]["content"] else "poem"): r.stream
             for r in model.server.requests[before:]}
    assert asked == {"joke": False, "poem": True}


def test_unknown_node_in_the_filter_is_422(server):
    response = httpx.post(server + "/runs/stream", json={
        "assistant_id": "seed", "input": {"topic": "x"},
        "config": {"configurable": {"ferrograph_nodes": ["write_sonnet"]}}})
    assert response.status_code == 422
    assert "write_sonnet" in response.json()["detail"]


def test_tag_filter_keeps_only_tagged_model_calls_messages(server):
    parts = list(client(server).runs.stream(
        None, "seed", input={"topic": "bats"}, stream_mode=["messages-tuple", "updates"],
        config={"configurable": {"ferrograph_tags": ["no-such-tag"]}}))
    # tags choose model calls' messages only (as stream(tags=...)); updates still come
    assert [p.event for p in parts if p.event == "messages"] == []
    assert sorted(k for p in parts if p.event == "updates" for k in p.data) == [
        "write_joke", "write_poem"]


def test_factory_graph(server):
    assert client(server).runs.wait(None, "factory", input={"count": 2}) == {
        "count": 30, "log": ["first", "second"]}


def test_cancel_a_running_run(server, model):
    c = client(server)
    tid = c.threads.create()["thread_id"]
    model.hold()
    try:
        run = c.runs.create(tid, "slow", input={"count": 1})
        assert model.held.wait(WAIT)
        assert c.runs.get(tid, run["run_id"])["status"] == "running"
        with pytest.raises(httpx.HTTPStatusError) as busy:
            c.runs.create(tid, "counter", input={"count": 1}, multitask_strategy="reject")
        assert busy.value.response.status_code == 409
        c.runs.cancel(tid, run["run_id"], wait=True)
    finally:
        model.release()
    assert c.runs.get(tid, run["run_id"])["status"] == "interrupted"
    thread = c.threads.get(tid)
    assert thread["status"] == "interrupted"
    assert thread["error"]["error"] == "UserInterrupt"
    assert c.threads.get_state(tid)["next"] == ["wait_for_model"]
    with pytest.raises(httpx.HTTPStatusError) as again:
        c.runs.cancel(tid, run["run_id"])
    assert again.value.response.status_code == 404
    # the thread takes runs again
    assert c.runs.wait(tid, "counter", input={"count": 1})["count"] == 20


def test_client_that_disconnects_cancels_the_run_when_asked(server, model):
    c = client(server)
    tid = c.threads.create()["thread_id"]
    model.hold()
    try:
        body = {"assistant_id": "slow", "input": {"count": 1}, "stream_mode": "values",
                "on_disconnect": "cancel"}
        run_id = stream_until_held(server, model, tid, body)
        # the connection is closed: the run goes on no further
        wait_for_status(c, tid, run_id, "interrupted")
    finally:
        model.release()
    assert c.threads.get(tid)["status"] == "interrupted"


def test_client_that_disconnects_lets_the_run_finish_by_default(server, model):
    c = client(server)
    tid = c.threads.create()["thread_id"]
    model.hold()
    try:
        body = {"assistant_id": "slow", "input": {"count": 1}, "stream_mode": "values"}
        with httpx.stream("POST", f"{server}/threads/{tid}/runs/stream", json=body,
                          timeout=WAIT) as response:
            lines = response.iter_lines()
            next(lines)
            run_id = json.loads(next(lines)[len("data: "):])["run_id"]
            assert model.held.wait(WAIT)
    finally:
        model.release()
    assert wait_for_status(c, tid, run_id, "success", "error", "interrupted")["status"] == \
        "success"
    assert c.threads.get_state(tid)["values"]["log"] == ["first", "slow reply"]


def test_join_stream_follows_a_running_run(server, model):
    c = client(server)
    tid = c.threads.create()["thread_id"]
    model.hold()
    try:
        run = c.runs.create(tid, "slow", input={"count": 1}, stream_mode=["values", "updates"])
        assert model.held.wait(WAIT)
        # (raw HTTP: the SDK's generator sends its request only when first iterated, and
        # the response's headers mean the server has subscribed this client)
        with httpx.stream("GET", f"{server}/threads/{tid}/runs/{run['run_id']}/stream",
                          params={"stream_mode": "updates"}, timeout=WAIT) as response:
            model.release()
            lines = [line for line in response.iter_lines() if line]
    finally:
        model.release()
    assert lines == ["event: updates",
                     'data: {"wait_for_model":{"log":["slow reply"]}}']
    # a finished, non-resumable run has nothing left to stream
    assert [p.event for p in c.runs.join_stream(tid, run["run_id"])] == []


def test_enqueued_runs_run_in_order(server, model):
    c = client(server)
    tid = c.threads.create()["thread_id"]
    model.hold()
    try:
        first = c.runs.create(tid, "slow", input={"count": 1})
        assert model.held.wait(WAIT)
        second = c.runs.create(tid, "counter", input={"count": 5})
        assert c.runs.get(tid, second["run_id"])["status"] == "pending"
    finally:
        model.release()
    assert c.runs.join(tid, second["run_id"])["log"] == ["first", "slow reply", "first",
                                                         "second"]
    assert [r["status"] for r in c.runs.list(tid)] == ["success", "success"]
    assert [r["run_id"] for r in c.runs.list(tid)] == [second["run_id"], first["run_id"]]


def test_async_client_interrupt_and_resume(server):
    async def scenario():
        ac = get_client(url=server, api_key=None)
        thread = await ac.threads.create()
        tid = thread["thread_id"]
        first = [p async for p in ac.runs.stream(tid, "ask", input={"count": 1},
                                                 stream_mode="updates")]
        assert first[-1].event == "updates"
        (interrupt,) = first[-1].data["__interrupt__"]
        assert interrupt["value"] == {"question": "name?", "count": 2}
        assert (await ac.threads.get(tid))["status"] == "interrupted"
        result = await ac.runs.wait(tid, "ask", command={"resume": {interrupt["id"]: "eve"}})
        assert result["log"] == ["first", "hello eve", "second"]
        assert (await ac.threads.get(tid))["status"] == "idle"

    asyncio.run(scenario())


def test_interrupt_before_and_after(server):
    c = client(server)
    tid = c.threads.create()["thread_id"]
    c.runs.wait(tid, "counter", input={"count": 1}, interrupt_before=["second"])
    state = c.threads.get_state(tid)
    assert state["next"] == ["second"] and state["values"]["count"] == 2
    assert c.threads.get(tid)["status"] == "interrupted"
    assert c.runs.wait(tid, "counter", input=None)["count"] == 20
    tid = c.threads.create()["thread_id"]
    c.runs.wait(tid, "counter", input={"count": 1}, interrupt_after="*")
    assert c.threads.get_state(tid)["next"] == ["second"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_threads_runs_and_assistants_persist_across_restarts(request, backend, model, tmp_path):
    with server_database(request, backend, str(tmp_path / "threads.sqlite")) as db:
        with ferrograph_serve(model, tmp_path, *db) as proc:
            c = client(proc.url)
            tid = c.threads.create(metadata={"keep": True})["thread_id"]
            c.runs.wait(tid, "ask", input={"count": 1})
            [run] = c.runs.list(tid)
            made = c.assistants.create("counter", config={"recursion_limit": 9}, name="kept")
            c.assistants.update(made["assistant_id"], metadata={"v": 2})
        with ferrograph_serve(model, tmp_path, *db) as proc:
            c = client(proc.url)
            kept = c.assistants.get(made["assistant_id"])
            assert (kept["name"], kept["version"], kept["metadata"], kept["config"]) == (
                "kept", 2, {"v": 2}, {"recursion_limit": 9})
            assert [v["version"] for v in c.assistants.get_versions(
                made["assistant_id"])] == [2, 1]
            thread = c.threads.get(tid)
            assert thread["metadata"]["keep"] is True
            assert thread["status"] == "interrupted"
            assert c.runs.get(tid, run["run_id"]) == run
            assert c.runs.list(tid) == [run]
            assert c.runs.wait(tid, "ask", command={"resume": "zed"})["log"] == [
                "first", "hello zed", "second"]
            assert len(c.threads.get_history(tid, limit=100)) >= 5
            assert [r["status"] for r in c.runs.list(tid)] == ["success", "success"]


def serve_that_fails(model, graphs) -> subprocess.CompletedProcess:
    """`ferrograph serve` of `graphs`/langgraph.json, which must stop at start (status 1)."""
    done = subprocess.run(
        [sys.executable, "-m", "ferrograph", "serve", "--config", "langgraph.json",
         "--port", "0"], cwd=graphs, env=graph_env(model, "ferrograph"),
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    return done


def test_a_graph_that_fails_to_import_stops_the_server_with_its_name(model, tmp_path):
    graphs = copy_graphs(tmp_path)
    (graphs / "broken.py").write_text("import no_such_module_here\n")
    config = json.loads((GRAPHS / "langgraph.json").read_text())
    config["graphs"]["broken"] = "./broken.py:graph"
    (graphs / "langgraph.json").write_text(json.dumps(config))
    done = serve_that_fails(model, graphs)
    assert "graph 'broken'" in done.stderr and "no_such_module_here" in done.stderr


def test_wait_with_a_node_filter_returns_the_final_state(server):
    c = client(server)
    tid = c.threads.create()["thread_id"]
    result = c.runs.wait(tid, "counter", input={"count": 1},
                         config={"configurable": {"ferrograph_nodes": ["first"]}})
    assert result == {"count": 20, "log": ["first", "second"]}


def test_cancel_with_rollback_deletes_the_run_and_its_checkpoints(server, model):
    c = client(server)
    tid = c.threads.create()["thread_id"]
    c.runs.wait(tid, "counter", input={"count": 1})
    kept = c.threads.get_state(tid)
    model.hold()
    try:
        run = c.runs.create(tid, "slow", input={"count": 5})
        assert model.held.wait(WAIT)
        c.runs.cancel(tid, run["run_id"], wait=True, action="rollback")
    finally:
        model.release()
    with pytest.raises(httpx.HTTPStatusError) as gone:
        c.runs.get(tid, run["run_id"])
    assert gone.value.response.status_code == 404
    state = c.threads.get_state(tid)
    assert (state["checkpoint_id"], state["values"]) == (kept["checkpoint_id"], kept["values"])
    thread = c.threads.get(tid)
    assert (thread["status"], thread["values"], thread["error"]) == ("idle", kept["values"],
                                                                      None)


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
def test_a_new_run_interrupts_or_rolls_back_the_running_one(server, model, strategy):
    c = client(server)
    tid = c.threads.create()["thread_id"]
    model.hold()
    try:
        first = c.runs.create(tid, "slow", input={"count": 1})
        assert model.held.wait(WAIT)
        second = c.runs.create(tid, "counter", input={"count": 5}, multitask_strategy=strategy)
    finally:
        model.release()
    result = c.runs.join(tid, second["run_id"])
    if strategy == "interrupt":
        assert c.runs.get(tid, first["run_id"])["status"] == "interrupted"
        # the second run ran on top of what the first had done
        assert result == {"count": 60, "log": ["first", "first", "second"]}
    else:
        with pytest.raises(httpx.HTTPStatusError):
            c.runs.get(tid, first["run_id"])
        assert result == {"count": 60, "log": ["first", "second"]}
    assert c.runs.get(tid, second["run_id"])["status"] == "success"


def test_cancel_many(server, model):
    c = client(server)
    tid = c.threads.create()["thread_id"]
    model.hold()
    try:
        first = c.runs.create(tid, "slow", input={"count": 1})
        assert model.held.wait(WAIT)
        second = c.runs.create(tid, "counter", input={"count": 1})
        c.runs.cancel_many(thread_id=tid, run_ids=[first["run_id"], second["run_id"]])
    finally:
        model.release()
    assert [c.runs.get(tid, r["run_id"])["status"] for r in (first, second)] == [
        "interrupted", "interrupted"]


def test_after_seconds_keeps_the_run_pending_then_runs_it(server):
    c = client(server)
    tid = c.threads.create()["thread_id"]
    run = c.runs.create(tid, "counter", input={"count": 1}, after_seconds=5)
    assert c.runs.get(tid, run["run_id"])["status"] == "pending"
    assert c.runs.join(tid, run["run_id"])["count"] == 20
    assert c.runs.get(tid, run["run_id"])["status"] == "success"


def test_the_log_names_what_is_served_and_each_run(model, tmp_path):
    with ferrograph_serve(model, tmp_path) as proc:
        run = client(proc.url).runs.wait(None, "counter", input={"count": 1})
        assert run["count"] == 20
        deadline = time.monotonic() + WAIT  # the line is written as the run's record is
        while "of counter on thread (stateless): success" not in proc.output():
            assert time.monotonic() < deadline, proc.output()
            time.sleep(0.05)
        log = proc.output()
    graphs = json.loads((GRAPHS / "langgraph.json").read_text())["graphs"]
    assert f"ferrograph serve: {len(graphs)} graphs from langgraph.json: " \
           f"{', '.join(graphs)}\n" in log
    assert "kept in the SQLite database :memory:" in log
    assert f"API at {proc.url}, the web page at {proc.url}/" in log


@pytest.mark.parametrize("graph_id", ["seed", "seed_factory"])
def test_a_graph_built_with_langgraph_runs_on_ferrograph(model, tmp_path, graph_id):
    """A module written against `langgraph.graph` (a compiled graph, a factory of one, an
    uncompiled builder) is served on ferrograph's engine, rebuilt by `ferrograph.adapt`: the
    node filter, which only ferrograph's engine has, pushes down."""
    with ferrograph_serve(model, tmp_path, config="langgraph-built.json") as proc:
        c = client(proc.url)
        before = len(model.server.requests)
        parts = list(c.runs.stream(None, graph_id, input={"topic": "owls"},
                                   stream_mode="messages-tuple",
                                   config={"configurable": {"ferrograph_nodes": ["write_poem"]}}))
        assert [p.event for p in parts if p.event == "error"] == []
        assert set(tokens_by_node(parts)) == {"write_poem"}
        asked = {("joke" if "joke" in r.messages[-1]["content"] else "poem"): r.stream
                 for r in model.server.requests[before:]}
        assert asked == {"joke": False, "poem": True}
        assert c.runs.wait(None, "counter", input={"count": 1}) == {
            "count": 20, "log": ["first", "second"]}
        assert "not ferrograph's" not in proc.output()


def test_a_langgraph_graph_ferrograph_cannot_run_stops_the_server_naming_it(model, tmp_path):
    graphs = copy_graphs(tmp_path)
    (graphs / "handmade.py").write_text(
        "from langgraph.channels import LastValue\n"
        "from langgraph.pregel import NodeBuilder, Pregel\n"
        "node = NodeBuilder().subscribe_only('a').do(lambda x: x).write_to('b')\n"
        "graph = Pregel(nodes={'n': node}, channels={'a': LastValue(int), 'b': LastValue(int)},"
        " input_channels='a', output_channels='b')\n")
    (graphs / "langgraph.json").write_text(json.dumps(
        {"dependencies": ["."], "graphs": {"handmade": "./handmade.py:graph"}}))
    done = serve_that_fails(model, graphs)
    assert "graph 'handmade'" in done.stderr and "Pregel built by hand" in done.stderr
