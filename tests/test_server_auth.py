"""Custom auth (`langgraph.json`'s `"auth"`, a `langgraph_sdk.Auth`: tests/server_graphs/
auth.py) on `ferrograph serve` against `langgraph dev` serving the same config: bearer tokens
name alice, bob and carol; one user never reaches another's threads, runs or assistants
through any route (the official SDK, sync and async, sending the token as a header); refused
requests get LangGraph's status and body; created resources are stamped with their owner; a
run's graph sees the caller in its config. Each scenario's normalised result must be the same
on both servers, and the expectations are also asserted on `langgraph dev`'s, so the
comparison cannot pass by both servers letting everything through. Then what only ferrograph
shows: start-up errors of a bad `auth`, the filter operators, handler resolution."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import httpx
import pytest
from langgraph_sdk import Auth, get_client, get_sync_client

from ferrograph.server.auth import ServerAuth, matches
from ferrograph.server.http import ApiError
from tests.server_support import (
    GRAPHS,
    HeldModel,
    copy_graphs,
    ferrograph_serve,
    graph_env,
    langgraph_dev,
    normalise,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CONFIG = "langgraph-auth.json"
WAIT = 60.0
TOKENS = {"alice": "token-alice", "bob": "token-bob", "carol": "token-carol"}


@pytest.fixture(scope="module")
def model():
    with HeldModel() as held:
        yield held


@pytest.fixture(scope="module")
def servers(model, tmp_path_factory):
    """{"ferrograph": url, "langgraph": url}, both serving the auth config."""
    with ferrograph_serve(model, tmp_path_factory.mktemp("ferrograph"), config=CONFIG) as fg, \
            langgraph_dev(model, tmp_path_factory.mktemp("langgraph"), config=CONFIG) as lg:
        yield {"ferrograph": fg.url, "langgraph": lg.url}


def both(servers: dict[str, str], scenario: Any) -> tuple[Any, Any]:
    """The scenario's normalised result on each server (tuples become lists)."""
    return (normalise(scenario(servers["ferrograph"])),
            normalise(scenario(servers["langgraph"])))


def user(url: str, name: str) -> Any:
    return get_sync_client(url=url, api_key=None,
                           headers={"Authorization": f"Bearer {TOKENS[name]}"})


def outcome(call: Any, *args: Any, **kwargs: Any) -> tuple[int, Any]:
    """(200, result) or the refusal's (status, body)."""
    try:
        result = call(*args, **kwargs)
        if hasattr(result, "__next__"):  # a stream: its parts
            result = [(p.event, p.data) for p in result]
        return 200, result
    except httpx.HTTPStatusError as e:
        return e.response.status_code, e.response.json()


def _without_config(thread: dict[str, Any]) -> dict[str, Any]:
    """A thread without `config`, which ferrograph does not fill after a run (LangGraph keeps
    the runs' config there): not a matter of auth."""
    return {k: v for k, v in thread.items() if k != "config"}


def test_missing_or_bad_token_is_refused_and_health_stays_open(servers):
    def scenario(url):
        out = {}
        for label, headers in (("none", {}), ("bad", {"Authorization": "Bearer nope"}),
                               ("scheme", {"Authorization": "Basic token-alice"})):
            for method, path in (("POST", "/threads/search"), ("POST", "/threads"),
                                 ("POST", "/runs/wait"), ("POST", "/assistants/search"),
                                 ("GET", "/threads/01a24575-3799-77dc-9a73-b0ca0513a8ee"),
                                 ("GET", "/nowhere")):
                r = httpx.request(method, url + path, json={}, headers=headers, timeout=30)
                out[f"{label} {method} {path}"] = (r.status_code, r.json())
        out["ok"] = httpx.get(url + "/ok", timeout=30).json()
        out["root"] = httpx.get(url + "/", timeout=30).status_code
        out["info"] = httpx.get(url + "/info", timeout=30).status_code
        out["known user, unknown route"] = httpx.get(
            url + "/nowhere", headers={"Authorization": "Bearer token-bob"}, timeout=30
        ).status_code
        return out

    ours, theirs = both(servers, scenario)
    assert ours == theirs
    assert theirs["none POST /threads/search"] == [401, {"detail": "Missing bearer token"}]
    assert theirs["bad POST /runs/wait"] == [401, {"detail": "Invalid bearer token"}]
    assert (theirs["info"], theirs["known user, unknown route"]) == (200, 404)


def test_another_users_thread_and_runs_are_out_of_reach(servers):
    def scenario(url):
        alice, bob = user(url, "alice"), user(url, "bob")
        thread = alice.threads.create(metadata={"case": "reach", "owner": "bob"})
        tid = thread["thread_id"]
        first = alice.runs.wait(tid, "ask", input={"count": 1})
        run_id = alice.runs.list(tid)[0]["run_id"]
        checkpoint = alice.threads.get_state(tid)["checkpoint"]
        bob_sees = {
            "get": outcome(bob.threads.get, tid),
            "update": outcome(bob.threads.update, tid, metadata={"owner": "bob"}),
            "delete": outcome(bob.threads.delete, tid),
            "copy": outcome(bob.threads.copy, tid),
            "state": outcome(bob.threads.get_state, tid),
            "state at": outcome(bob.threads.get_state, tid, checkpoint=checkpoint),
            "history": outcome(bob.threads.get_history, tid),
            "update_state": outcome(bob.threads.update_state, tid, {"count": 99}),
            "search": outcome(bob.threads.search, metadata={"case": "reach"}),
            "count": outcome(bob.threads.count, metadata={"case": "reach"}),
            "runs": outcome(bob.runs.list, tid),
            "run": outcome(bob.runs.get, tid, run_id),
            "join": outcome(bob.runs.join, tid, run_id),
            "join_stream": outcome(bob.runs.join_stream, tid, run_id),
            "cancel": outcome(bob.runs.cancel, tid, run_id),
            "cancel_many": outcome(bob.runs.cancel_many, thread_id=tid, run_ids=[run_id]),
            "delete run": outcome(bob.runs.delete, tid, run_id),
            "resume": outcome(bob.runs.wait, tid, "ask", command={"resume": "bob"}),
            "stream": outcome(bob.runs.stream, tid, "counter", input={"count": 1}),
            "create": outcome(bob.runs.create, tid, "counter", input={"count": 1}),
        }
        resumed = alice.runs.wait(tid, "ask", command={"resume": "alice"})
        alice_sees = {"thread": _without_config(alice.threads.get(tid)),
                      "runs": [(r["status"], r["metadata"]) for r in alice.runs.list(tid)],
                      "search": [_without_config(t) for t in alice.threads.search(
                          metadata={"case": "reach"})],
                      "copy": alice.threads.copy(tid)["metadata"]}
        alice.threads.delete(tid)
        return {"first": first, "resumed": resumed, "bob": bob_sees, "alice": alice_sees}

    ours, theirs = both(servers, scenario)
    assert ours == theirs
    bob = theirs["bob"]
    assert all(status in (403, 404, 409) or (key in ("search", "count", "join_stream"))
               for key, (status, _) in bob.items()), bob
    assert bob["get"][0] == bob["state"][0] == bob["run"][0] == bob["resume"][0] == 404
    assert bob["search"] == [200, []] and bob["count"] == [200, 0]
    assert bob["join_stream"][1] == [
        ["error", {"error": "HTTPException", "message": "404: Thread not found"}]]
    # stamped by the handler (the caller's own `owner` overwritten), and kept
    assert theirs["alice"]["thread"]["metadata"]["owner"] == "alice"
    assert theirs["alice"]["thread"]["values"]["log"] == ["first", "hello alice", "second"]


def test_a_run_sees_its_caller_in_its_config(servers):
    def scenario(url):
        alice, bob = user(url, "alice"), user(url, "bob")
        tid = alice.threads.create()["thread_id"]
        on_thread = alice.runs.wait(tid, "whoami", input={"count": 1}, metadata={"m": 1})
        checkpoint = alice.threads.get_state(tid)["metadata"]
        stateless = bob.runs.wait(None, "whoami", input={"count": 1})
        created = bob.runs.wait("01a24575-3799-77dc-9a73-b0ca0513a8ef", "whoami",
                                input={"count": 1}, if_not_exists="create")
        new_thread = bob.threads.get("01a24575-3799-77dc-9a73-b0ca0513a8ef")
        return {"alice": json.loads(on_thread["log"][0]),
                "checkpoint": {k: checkpoint.get(k) for k in (
                    "user_id", "langgraph_auth_user_id", "owner", "m")},
                "bob stateless": json.loads(stateless["log"][0]),
                "bob created": json.loads(created["log"][0]),
                "new thread": new_thread["metadata"]}

    ours, theirs = both(servers, scenario)
    assert ours == theirs
    assert theirs["alice"] == {
        "as_dict": {"display_name": "Alice", "identity": "alice", "is_authenticated": True,
                    "permissions": ["runs:create", "threads:delete"]},
        "authenticated": True, "configurable_user_id": "alice", "display_name": "Alice",
        "identity": "alice", "item": "alice", "permissions": ["runs:create", "threads:delete"],
        "user_id": "alice"}
    assert theirs["new thread"]["owner"] == "bob"


def test_a_handler_changes_what_the_run_gets(servers):
    """A `create_run` handler that edits the value's `kwargs` (the config in place, the input
    replaced) changes the run, on a thread and stateless."""
    def scenario(url):
        alice = user(url, "alice")
        tid = alice.threads.create()["thread_id"]
        on_thread = alice.runs.wait(tid, "whoami", input={"count": 1},
                                    metadata={"rewrite": True})
        stateless = alice.runs.wait(None, "whoami", input={"count": 1},
                                    metadata={"rewrite": True}, config={"tags": ["t"]})
        return {"thread": {"count": on_thread["count"],
                           "injected": json.loads(on_thread["log"][0]).get("injected")},
                "stateless": {"count": stateless["count"],
                              "injected": json.loads(stateless["log"][0]).get("injected")}}

    ours, theirs = both(servers, scenario)
    assert ours == theirs
    assert theirs["thread"] == {"count": 41, "injected": "alice"}


def test_handlers_by_resource_and_action(servers):
    def scenario(url):
        alice, bob, carol = user(url, "alice"), user(url, "bob"), user(url, "carol")
        shared = alice.threads.create(metadata={"readers": ["bob"]})["thread_id"]
        mine = carol.threads.create()["thread_id"]
        assistant = alice.assistants.create("counter", metadata={"k": 1}, name="alices")
        aid = assistant["assistant_id"]
        return {
            "carol runs": outcome(carol.runs.wait, mine, "counter", input={"count": 1}),
            "carol stateless": outcome(carol.runs.wait, None, "counter", input={"count": 1}),
            "carol deletes": outcome(carol.threads.delete, mine),
            "carol reads": outcome(lambda: carol.threads.get(mine)["metadata"]),
            "bob reads shared": outcome(lambda: bob.threads.get(shared)["metadata"]),
            "bob state of shared": outcome(bob.threads.get_state, shared),
            "bob runs of shared": outcome(bob.runs.list, shared),
            "bob updates shared": outcome(bob.threads.update, shared, metadata={"z": 1}),
            "bob writes state of shared": outcome(bob.threads.update_state, shared,
                                                  {"count": 1}),
            "bob searches": [t["metadata"] for t in bob.threads.search(
                metadata={"readers": ["bob"]})],
            "assistant": assistant,
            "bob gets assistant": outcome(bob.assistants.get, aid),
            "bob updates assistant": outcome(bob.assistants.update, aid, name="x"),
            "bob versions": outcome(bob.assistants.get_versions, aid),
            "bob graph": outcome(bob.assistants.get_graph, aid),
            "bob schemas": outcome(bob.assistants.get_schemas, aid),
            "bob runs it": outcome(bob.runs.wait, None, aid, input={"count": 1}),
            "bob same id": outcome(bob.assistants.create, "counter", assistant_id=aid),
            "bob counts": bob.assistants.count(),
            "alice counts": alice.assistants.count(),
            "alice runs it": alice.runs.wait(None, aid, input={"count": 1}),
            "alice deletes it": outcome(alice.assistants.delete, aid),
            "alice updates it": outcome(alice.assistants.update, aid, metadata={"v": 2}),
        }

    ours, theirs = both(servers, scenario)
    assert ours == theirs
    assert theirs["carol runs"] == [403, {"detail": "carol may not start runs"}]
    assert theirs["carol deletes"] == [403, {"detail": "carol may not delete"}]
    assert theirs["alice deletes it"] == [403, {"detail": "Forbidden"}]
    assert theirs["bob reads shared"][0] == 200 and theirs["bob runs of shared"] == [200, []]
    assert theirs["bob updates shared"][0] == 404
    assert theirs["bob writes state of shared"] == [403, {"detail": "Forbidden"}]
    assert theirs["bob gets assistant"] == [404, {"detail": "Not Found"}]
    assert theirs["assistant"]["metadata"] == {"k": 1, "owner": "alice"}


def test_a_running_run_of_another_user(servers, model):
    def scenario(url):
        alice, bob = user(url, "alice"), user(url, "bob")
        tid = alice.threads.create()["thread_id"]
        model.hold()
        try:
            run = alice.runs.create(tid, "slow", input={"count": 1})
            assert model.held.wait(WAIT)
            rid = run["run_id"]
            bob_sees = {"cancel": outcome(bob.runs.cancel, tid, rid),
                        "cancel many": outcome(bob.runs.cancel_many, status="running"),
                        "join": outcome(bob.runs.join, tid, rid),
                        "join_stream": outcome(bob.runs.join_stream, tid, rid),
                        "enqueue": outcome(bob.runs.create, tid, "counter",
                                           input={"count": 1})}
            still = alice.runs.get(tid, rid)["status"]
        finally:
            model.release()
        return {"bob": bob_sees, "still": still, "joined": alice.runs.join(tid, rid)}

    ours, theirs = both(servers, scenario)
    assert ours == theirs
    assert theirs["still"] == "running"
    assert theirs["bob"]["cancel"] == [404, {"detail": "No runs found to cancel."}]


def test_async_client(servers):
    async def run(url):
        alice, bob = (get_client(url=url, api_key=None,
                                 headers={"Authorization": f"Bearer {TOKENS[n]}"})
                      for n in ("alice", "bob"))
        tid = (await alice.threads.create())["thread_id"]
        parts = [(p.event, p.data) async for p in alice.runs.stream(
            tid, "counter", input={"count": 3}, stream_mode="values")]
        try:
            await bob.threads.get(tid)
            refused = None
        except httpx.HTTPStatusError as e:
            refused = (e.response.status_code, e.response.json())
        # bob's handler makes it a search for his own threads
        found = await bob.threads.search(metadata={"owner": "alice", "case": "async"})
        return {"parts": parts, "refused": refused, "found": found}

    ours, theirs = both(servers, lambda url: asyncio.run(run(url)))
    assert ours == theirs
    assert theirs["refused"][0] == 404 and theirs["found"] == []


def _answer(response: httpx.Response) -> tuple[int, Any]:
    json_body = response.headers.get("content-type", "").startswith("application/json")
    return response.status_code, response.json() if json_body else response.text


def test_users_in_every_form_and_failing_handlers(servers):
    def scenario(url):
        out = {}
        for token in ("token-dave", "token-erin", "token-nobody", "token-teapot",
                      "token-broken"):
            headers = {"Authorization": f"Bearer {token}"}
            created = httpx.post(url + "/threads", json={"metadata": {"m": 1}},
                                 headers=headers, timeout=30)
            status, body = _answer(created)
            out[token] = {"create": (status, body["metadata"] if status == 200 else body)}
            if status != 200:
                continue
            run = httpx.post(url + f"/threads/{body['thread_id']}/runs/wait", headers=headers,
                             json={"assistant_id": "whoami", "input": {"count": 1}},
                             timeout=WAIT)
            status, result = _answer(run)
            out[token]["run"] = (status, json.loads(result["log"][0]) if status == 200
                                 else result, run.headers.get("retry-after"))
        return out

    ours, theirs = both(servers, scenario)
    assert ours == theirs
    assert theirs["token-dave"]["run"] == [429, {"detail": "no runs left"}, "60"]
    assert theirs["token-erin"]["create"] == [200, {"m": 1, "owner": "erin"}]
    assert theirs["token-nobody"]["create"][0] == theirs["token-broken"]["create"][0] == 400
    assert theirs["token-teapot"]["create"] == [500, "Internal Server Error"]


# -- ferrograph on its own ------------------------------------------------------------------

def test_a_run_restarted_by_the_next_server_keeps_its_caller(model, tmp_path):
    """A run the server stopped (SIGTERM) runs again on the next one with the same caller in
    its config (stored as JSON, a user again, as LangGraph's worker restores it)."""
    db = ["--db", str(tmp_path / "serve.sqlite")]
    model.hold()
    try:
        with ferrograph_serve(model, tmp_path, *db, config=CONFIG) as proc:
            alice = user(proc.url, "alice")
            tid = alice.threads.create()["thread_id"]
            run = alice.runs.create(tid, "slow_whoami", input={"count": 1})
            assert model.held.wait(WAIT)
            proc.stop()
        with ferrograph_serve(model, tmp_path, *db, config=CONFIG) as proc:
            alice, bob = user(proc.url, "alice"), user(proc.url, "bob")
            model.release()
            assert alice.runs.join(tid, run["run_id"])["count"] == 3  # first, whoami_step
            seen = json.loads(alice.threads.get_state(tid)["values"]["log"][-1])
            assert outcome(bob.runs.get, tid, run["run_id"])[0] == 404
    finally:
        model.release()
    assert (seen["identity"], seen["item"], seen["display_name"], seen["user_id"]) == (
        "alice", "alice", "Alice", "alice")
    assert seen["permissions"] == ["runs:create", "threads:delete"]


@pytest.mark.parametrize("auth_file,spec,expected", [
    ("import no_such_auth_module\n", "./bad_auth.py:auth", "no_such_auth_module"),
    ("auth = {}\n", "./bad_auth.py:auth", "not a langgraph_sdk Auth"),
    ("from langgraph_sdk import Auth\nauth = Auth()\n", "./bad_auth.py:auth",
     "no @auth.authenticate handler"),
    ("from langgraph_sdk import Auth\nauth = Auth()\n@auth.authenticate\n"
     "async def who(token):\n    return 'x'\n", "./bad_auth.py:auth", "asks for token"),
    ("", "./missing_auth.py:auth", "file not found"),
])
def test_a_bad_auth_stops_the_server_naming_it(model, tmp_path, auth_file, spec, expected):
    graphs = copy_graphs(tmp_path)
    (graphs / "bad_auth.py").write_text(auth_file)
    config = json.loads((GRAPHS / CONFIG).read_text())
    config["auth"] = {"path": spec}
    (graphs / "bad.json").write_text(json.dumps(config))
    done = subprocess.run(
        [sys.executable, "-m", "ferrograph", "serve", "--config", "bad.json", "--port", "0"],
        cwd=graphs, env=graph_env(model, "ferrograph"), capture_output=True, text=True,
        timeout=120)
    assert done.returncode == 1
    assert "auth" in done.stderr and expected in done.stderr
    assert spec.split(":")[0].lstrip("./").removesuffix(".py") in done.stderr


def test_filter_operators():
    meta = {"owner": "al", "team": ["x", "y"], "n": 1}
    assert matches(meta, None) and matches(meta, {})
    assert matches(meta, {"owner": "al"}) and not matches(meta, {"owner": "bo"})
    assert matches(meta, {"owner": {"$eq": "al"}, "n": 1})
    assert not matches(meta, {"missing": {"$eq": None}})
    assert matches(meta, {"team": {"$contains": "x"}})
    assert matches(meta, {"team": {"$contains": ["y", "x"]}})
    assert not matches(meta, {"team": {"$contains": ["x", "z"]}})
    assert not matches(meta, {"owner": {"$contains": "a"}})  # not a list
    assert matches(meta, {"$or": [{"owner": "bo"}, {"team": {"$contains": "y"}}]})
    assert not matches(meta, {"$or": [{"owner": "bo"}, {"n": 2}], "owner": "al"})
    assert matches(meta, {"$and": [{"owner": "al"}, {"n": 1}]})
    with pytest.raises(ApiError) as bad:
        matches(meta, {"$or": [{"owner": "al"}]})
    assert bad.value.status == 500 and "$or" in bad.value.detail
    deep = {"$or": [{"$or": [{"$or": [{"n": 1}, {"n": 2}]}, {"n": 3}]}, {"n": 4}]}
    with pytest.raises(ApiError) as nested:
        matches(meta, deep)
    assert "too many nested operators" in nested.value.detail


def test_the_most_specific_handler_answers():
    auth = Auth()

    @auth.authenticate
    async def who(authorization: str | None) -> str:
        return "x"

    async def everything(ctx, value): ...

    async def threads(ctx, value): ...

    async def reads(ctx, value): ...

    async def thread_reads(ctx, value): ...

    auth.on(everything)
    auth.on.threads(threads)
    auth.on(actions="read")(reads)
    auth.on.threads.read(thread_reads)
    chosen = ServerAuth(auth, "x", {"authorization"}).handler
    assert chosen("threads", "read") is thread_reads
    assert chosen("threads", "delete") is threads
    assert chosen("assistants", "read") is reads
    assert chosen("assistants", "delete") is everything


def test_paths_no_handler_covers_are_named():
    auth = Auth()

    @auth.authenticate
    async def who(authorization: str | None) -> str:
        return "x"

    assert ServerAuth(auth, "x", set()).uncovered() == []  # authentication only

    @auth.on.threads
    async def threads(ctx, value): ...

    assert ServerAuth(auth, "x", set()).uncovered() == [
        f"assistants.{a}" for a in ("create", "read", "update", "delete", "search")]
