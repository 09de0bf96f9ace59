"""Several `ferrograph serve` instances on one PostgreSQL and one Redis (`REDIS_URI`), all
real servers started here (tests/services.py): a run created on one instance streamed from
another, token for token as on a single instance; 100 runs spread over three instances, each
run exactly once; a worker killed (-9) mid-run, its run finished by another instance from its
last checkpoint without running again a node whose writes were saved; a worker stopped
(SIGSTOP) past its lease while another took its run over, writing and relaying nothing once
it goes on, and the fences themselves; threads read alike from every instance; a cancel
reaching the instance running the run; Redis restarted and PostgreSQL restarted mid-run;
`/ok` and the start's failures. Every wait is on a status or an event, against a deadline."""

from __future__ import annotations

import collections
import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from langgraph_sdk import get_sync_client

from ferrograph.server.cluster import stream_key
from tests.server_support import (
    RUN_WAIT,
    HeldModel,
    ServerProcess,
    copy_graphs,
    free_port,
    graph_env,
    normalise,
    wait_for_status,
)
from tests.services import PostgresServer, RedisServer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CONFIG = "langgraph-scaleout.json"
LEASE_SECONDS = "4"
"""Short, so a dead worker's run is taken over soon; tests wait on statuses, never on it."""
INSTANCES = 3


def until(check: Any, what: str, timeout: float = RUN_WAIT) -> Any:
    """`check()`'s first truthy value, polled against a deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


class Cluster:
    """PostgreSQL, Redis and `INSTANCES` `ferrograph serve` instances sharing them."""

    def __init__(self, where: Path, model: HeldModel) -> None:
        self.where, self.model = where, model
        self.postgres, self.redis = PostgresServer(), RedisServer()
        self.postgres.start()
        self.redis.start()
        self.graphs = copy_graphs(where)
        self.calls = where / "calls.txt"
        self.calls.touch()
        self.instances: list[ServerProcess | None] = [None] * INSTANCES
        self.ensure_running()

    def env(self) -> dict[str, str]:
        return {**graph_env(self.model, "ferrograph"), "SCALEOUT_CALLS": str(self.calls),
                "FERROGRAPH_LEASE_SECONDS": LEASE_SECONDS}

    def _start(self, index: int) -> ServerProcess:
        port = free_port()
        return ServerProcess(
            [sys.executable, "-m", "ferrograph", "serve", "--config", CONFIG, "--port",
             str(port), "--database-uri", self.postgres.url, "--redis-uri", self.redis.url],
            self.graphs, self.env(), port, self.where / f"instance-{index}-{port}.log")

    def ensure_running(self) -> None:
        """Starts (again) every instance that is not running, at once."""
        dead = [i for i, p in enumerate(self.instances) if p is None or p.proc.poll() is not None]
        with concurrent.futures.ThreadPoolExecutor(len(dead) or 1) as pool:
            for i, started in zip(dead, pool.map(self._start, dead), strict=True):
                self.instances[i] = started

    def client(self, index: int) -> Any:
        return get_sync_client(url=self.instances[index].url, api_key=None)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.postgres.url) as conn:
            return conn.execute(sql, params).fetchall()

    def owner_index(self, run_id: str) -> int:
        """The instance whose worker holds the run (its pid is in the owner's id)."""
        def owner() -> str | None:
            rows = self.query("SELECT owner FROM ferrograph_runs WHERE run_id = %s", run_id)
            return rows[0][0] if rows and rows[0][0] else None

        pid = int(until(owner, f"run {run_id} claimed").split(":")[1])
        return next(i for i, p in enumerate(self.instances) if p.proc.pid == pid)

    def calls_of(self, thread_id: str) -> collections.Counter[str]:
        return collections.Counter(line.split()[0] for line in self.calls.read_text().splitlines()
                                   if line.endswith(thread_id))

    def stop(self) -> None:
        for p in self.instances:
            if p is not None:
                p.stop()
        self.redis.stop()
        self.postgres.stop()


@pytest.fixture(scope="module")
def held_model() -> Iterator[HeldModel]:
    with HeldModel() as held:
        yield held


@pytest.fixture(scope="module")
def cluster_once(tmp_path_factory, held_model) -> Iterator[Cluster]:
    started = Cluster(tmp_path_factory.mktemp("scaleout"), held_model)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def cluster(cluster_once: Cluster, held_model: HeldModel) -> Iterator[Cluster]:
    """The module's cluster with every instance running; the model released afterwards."""
    cluster_once.ensure_running()
    held_model.release()
    try:
        yield cluster_once
    finally:
        held_model.release()


def stream_of(url: str, path: str, last_event_id: str | None = None,
              into: list | None = None) -> list[tuple[str, Any, str | None]]:
    """The run's events streamed (`join_stream`) from `url`, to the run's end (appended to
    `into` as they come)."""
    into = [] if into is None else into
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    with httpx.stream("GET", url + path, headers=headers, timeout=RUN_WAIT * 2) as response:
        assert response.status_code == 200
        for event in _iter_events(response):
            into.append(event)
    return into


def stream_from_another(cluster, owner: int, path: str,
                        seen: list[tuple[str, Any, str | None]]) -> threading.Thread:
    """A client streaming `path` (a run's `join_stream`, from its first event) from the
    instance after `owner`, on a thread, its events appended to `seen`; returns once the
    first has come."""
    streaming = threading.Thread(target=stream_of, daemon=True, args=(
        cluster.instances[(owner + 1) % INSTANCES].url, path),
        kwargs={"last_event_id": "-1", "into": seen})
    streaming.start()
    until(lambda: seen, "the stream started")
    return streaming


def _iter_events(response: httpx.Response) -> Iterator[tuple[str, Any, str | None]]:
    """`(event, data, id)` of a server-sent event stream, as they come."""
    import json

    event, data, event_id = None, None, None
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = json.loads(line[6:])
        elif line.startswith("id: "):
            event_id = line[4:]
        elif line == "" and event is not None:
            yield event, data, event_id
            event, data, event_id = None, None, None


def comparable(events: list[tuple[str, Any, str | None]]) -> list[Any]:
    """The events without their ids, with run-specific values as placeholders."""
    return normalise([[event, data] for event, data, _ in events])


def test_ok_needs_postgres_and_redis_and_the_start_names_what_does_not_answer(
        cluster, tmp_path):
    for proc in cluster.instances:
        ok = httpx.get(proc.url + "/ok", timeout=RUN_WAIT)
        assert (ok.status_code, ok.json()) == (
            200, {"ok": True, "services": {"database": "healthy", "redis": "healthy"}})
    argv = [sys.executable, "-m", "ferrograph", "serve", "--config", CONFIG, "--port",
            str(free_port())]
    nowhere = f"redis://:secret@127.0.0.1:{free_port()}/0"
    env = {**cluster.env(), "DATABASE_URI": cluster.postgres.url, "REDIS_URI": nowhere}
    done = subprocess.run(argv, cwd=cluster.graphs, env=env, capture_output=True, text=True,
                          timeout=RUN_WAIT)
    assert done.returncode == 1
    assert "cannot connect to REDIS_URI redis://:***@127.0.0.1" in done.stderr
    assert "secret" not in done.stderr and "Traceback" not in done.stderr
    env.pop("DATABASE_URI")
    env["REDIS_URI"] = cluster.redis.url
    done = subprocess.run(argv, cwd=cluster.graphs, env=env, capture_output=True, text=True,
                          timeout=RUN_WAIT)
    assert done.returncode == 2
    assert "REDIS_URI needs DATABASE_URI" in done.stderr


def single_instance_events(cluster: Cluster, body: dict[str, Any]) -> list[Any]:
    """The events of the run `body` on one instance without Redis (in process, SQLite)."""
    from starlette.testclient import TestClient

    from ferrograph.server import create_app

    saved = dict(os.environ)
    os.environ.update(cluster.env())
    try:
        with TestClient(create_app(cluster.graphs / CONFIG)) as c:
            tid = c.post("/threads", json={}).json()["thread_id"]
            with c.stream("POST", f"/threads/{tid}/runs/stream", json=body) as response:
                return list(_iter_events(response))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_a_run_created_on_one_instance_streams_from_another_token_for_token(cluster):
    # one writer's tokens (the other runs beside it, its tokens interleave at random): the
    # server-side node filter, applied by the worker, so the others never cross Redis
    body = {"assistant_id": "seed", "input": {"topic": "cats"},
            "stream_mode": ["messages-tuple", "updates"],
            "config": {"configurable": {"ferrograph_nodes": ["write_poem"]}}}
    single = comparable(single_instance_events(cluster, body))
    assert sum(1 for event, _ in single if event == "messages") > 20  # tokens, one by one
    assert {d[1]["langgraph_node"] for e, d in single if e == "messages"} == {"write_poem"}

    a, b, c = (p.url for p in cluster.instances)
    # streamed by the instance that creates it, whichever instance's worker runs it
    tid = httpx.post(a + "/threads", json={}).json()["thread_id"]
    with httpx.stream("POST", f"{a}/threads/{tid}/runs/stream", json=body,
                      timeout=RUN_WAIT * 2) as response:
        assert comparable(list(_iter_events(response))) == single

    # created on A, streamed from B from its first event, resumed on C after its tenth
    tid = httpx.post(a + "/threads", json={}).json()["thread_id"]
    run = httpx.post(f"{a}/threads/{tid}/runs", json={**body, "stream_resumable": True}).json()
    path = f"/threads/{tid}/runs/{run['run_id']}/stream"
    from_b = stream_of(b, path, last_event_id="-1")
    assert comparable(from_b) == single
    assert all(event_id for _, _, event_id in from_b)
    resumed = stream_of(c, path, last_event_id=from_b[9][2])
    assert resumed == from_b[10:]
    # the filter ran in the worker: the other writer's tokens never reached Redis
    relayed = redis.Redis.from_url(cluster.redis.url).xrange(stream_key(run["run_id"]))
    assert len(relayed) == len(from_b) + 1  # and the end mark
    assert not [entry for _, entry in relayed if b"write_joke" in entry.get(b"f", b"")]


def test_a_hundred_runs_over_three_instances_each_run_exactly_once(cluster):
    clients = [cluster.client(i) for i in range(INSTANCES)]

    def create(n: int) -> tuple[str, str]:
        c = clients[n % INSTANCES]
        tid = c.threads.create()["thread_id"]
        return tid, c.runs.create(tid, "counted", input={"count": n})["run_id"]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        runs = list(pool.map(create, range(100)))
        # each joined through another instance than the one it was created on
        results = list(pool.map(lambda n: clients[(n + 1) % INSTANCES].runs.join(*runs[n]),
                                range(100)))
    assert results == [{"count": n + 1, "log": ["first"]} for n in range(100)]
    rows = cluster.query("SELECT run_id, status, attempt, owner FROM ferrograph_runs "
                         "WHERE run_id = ANY(%s)", [rid for _, rid in runs])
    assert sorted((status, attempt) for _, status, attempt, _ in rows) == [("success", 1)] * 100
    for tid, _ in runs:
        assert cluster.calls_of(tid) == {"first": 1}
    owners = collections.Counter(owner.split(":")[1] for *_, owner in rows)
    print(f"runs per instance (pid: runs): {dict(owners)}")


def test_a_worker_killed_mid_run_its_run_finishes_on_another_from_its_checkpoint(
        cluster, held_model):
    c = cluster.client(0)
    undisturbed = c.threads.create()["thread_id"]
    expected = c.runs.wait(undisturbed, "tally", input={"count": 1})
    assert cluster.calls_of(undisturbed) == {"first": 1, "side": 1, "wait_for_model": 1}

    held_model.hold()
    tid = c.threads.create()["thread_id"]
    run = c.runs.create(tid, "tally", input={"count": 1}, stream_resumable=True,
                        stream_mode=["values", "updates"])
    owner = cluster.owner_index(run["run_id"])
    assert held_model.held.wait(RUN_WAIT)
    watcher = cluster.client((owner + 1) % INSTANCES)
    # `side` finished beside the waiting model call: its writes are saved (pending writes)
    until(lambda: any(t["name"] == "side" and t["result"] is not None
                      for t in watcher.threads.get_state(tid)["tasks"]), "side's writes saved")

    # a client streams the run from another instance than the worker's
    seen: list[tuple[str, Any, str | None]] = []
    streaming = stream_from_another(cluster, owner, f"/threads/{tid}/runs/{run['run_id']}/stream",
                                    seen)

    os.kill(cluster.instances[owner].proc.pid, signal.SIGKILL)
    cluster.instances[owner].proc.wait(RUN_WAIT)
    held_model.release()

    finished = wait_for_status(watcher, tid, run["run_id"], "success", "error")
    assert finished["status"] == "success"
    streaming.join(RUN_WAIT)
    assert not streaming.is_alive(), "the streaming client did not see the run's end"
    assert seen[-1][:2] == ("values", expected)
    assert watcher.threads.get_state(tid)["values"] == expected
    assert watcher.threads.get(tid)["status"] == "idle"
    # `first` and `side` had saved their writes: they did not run again
    assert cluster.calls_of(tid) == {"first": 1, "side": 1, "wait_for_model": 2}
    newest = watcher.threads.get_history(tid, limit=1)[0]["metadata"]
    assert (newest["run_id"], newest["run_attempt"]) == (run["run_id"], 2)
    takeover = cluster.owner_index(run["run_id"])
    assert takeover != owner


def test_a_cancel_sent_to_one_instance_stops_the_run_on_another(cluster, held_model):
    held_model.hold()
    c = cluster.client(0)
    tid = c.threads.create()["thread_id"]
    run = c.runs.create(tid, "slow", input={"count": 1})
    assert held_model.held.wait(RUN_WAIT)
    owner = cluster.owner_index(run["run_id"])
    other = cluster.client((owner + 1) % INSTANCES)
    other.runs.cancel(tid, run["run_id"])
    cancelled = wait_for_status(other, tid, run["run_id"], "interrupted", "success", "error")
    assert cancelled["status"] == "interrupted"
    assert cluster.client((owner + 2) % INSTANCES).runs.join(tid, run["run_id"]) == {
        "count": 2, "log": ["first"]}
    held_model.release()


def test_every_instance_shows_a_thread_as_one_instance_would_while_and_after_its_run(
        cluster, held_model):
    held_model.hold()
    c = cluster.client(0)
    tid = c.threads.create()["thread_id"]
    rid = c.runs.create(tid, "slow", input={"count": 1}, stream_resumable=True,
                        config={"tags": ["mine"], "configurable": {"x": 1}})["run_id"]
    owner = cluster.owner_index(rid)
    seen: list[tuple[str, Any, str | None]] = []
    streaming = stream_from_another(cluster, owner, f"/threads/{tid}/runs/{rid}/stream", seen)
    # a client that saw the run's first event finds it running, its thread busy, anywhere
    for i in range(INSTANCES):
        assert cluster.client(i).threads.get(tid)["status"] == "busy"
        assert cluster.client(i).runs.get(tid, rid)["status"] == "running"
    held_model.release()
    streaming.join(RUN_WAIT)
    assert not streaming.is_alive(), "the streaming client did not see the run's end"
    # once its stream ended, the thread is the run's outcome everywhere
    for i in range(INSTANCES):
        thread = cluster.client(i).threads.get(tid)
        assert thread["status"] == "idle"
        assert thread["values"] == {"count": 2, "log": ["first", "slow reply"]}
        assert thread["config"] == {"tags": ["mine"], "configurable": {}}


def test_redis_restarted_mid_run_the_run_finishes_and_its_stream_ends(cluster, held_model):
    held_model.hold()
    c = cluster.client(0)
    tid = c.threads.create()["thread_id"]
    run = c.runs.create(tid, "slow", input={"count": 1}, stream_resumable=True)
    owner = cluster.owner_index(run["run_id"])
    assert held_model.held.wait(RUN_WAIT)
    seen: list[tuple[str, Any, str | None]] = []
    streaming = stream_from_another(cluster, owner, f"/threads/{tid}/runs/{run['run_id']}/stream",
                                    seen)

    cluster.redis.restart()  # empty: the stream's entries so far are gone
    held_model.release()
    finished = wait_for_status(c, tid, run["run_id"], "success", "error")
    assert finished["status"] == "success"
    assert c.threads.get_state(tid)["values"] == {"count": 2, "log": ["first", "slow reply"]}
    streaming.join(RUN_WAIT)
    assert not streaming.is_alive(), "the streaming client did not see the run's end"
    # what the worker relayed after the restart reached the client
    assert seen[-1][:2] == ("values", {"count": 2, "log": ["first", "slow reply"]})
    for proc in cluster.instances:
        until(lambda url=proc.url: httpx.get(url + "/ok", timeout=RUN_WAIT).status_code == 200,
              "/ok healthy again")
    # and the cluster works as before
    tid = c.threads.create()["thread_id"]
    assert cluster.client(1).runs.wait(tid, "counted", input={"count": 1}) == {
        "count": 2, "log": ["first"]}


def test_postgres_restarted_mid_run_the_run_finishes_intact(cluster, held_model):
    c = cluster.client(0)
    expected = c.runs.wait(c.threads.create()["thread_id"], "tally", input={"count": 1})
    held_model.hold()
    tid = c.threads.create()["thread_id"]
    run = c.runs.create(tid, "tally", input={"count": 1})
    assert held_model.held.wait(RUN_WAIT)
    until(lambda: any(t["name"] == "side" and t["result"] is not None
                      for t in c.threads.get_state(tid)["tasks"]), "side's writes saved")
    # every connection dropped: a worker whose writes fail leaves the run to its lease,
    # then any instance resumes it (documented in README)
    cluster.postgres.restart()
    held_model.release()
    finished = wait_for_status(c, tid, run["run_id"], "success", "error")
    assert finished["status"] == "success"
    assert c.threads.get_state(tid)["values"] == expected
    assert c.threads.get(tid)["status"] == "idle"
    calls = cluster.calls_of(tid)
    assert (calls["first"], calls["side"]) == (1, 1)  # their writes were saved
    for proc in cluster.instances:  # ready again once their pools have reconnected
        until(lambda url=proc.url: httpx.get(url + "/ok", timeout=RUN_WAIT).status_code == 200,
              "/ok healthy again")


def test_a_worker_paused_past_its_lease_writes_nothing_once_another_took_its_run_over(
        cluster, held_model):
    c = cluster.client(0)
    expected = c.runs.wait(c.threads.create()["thread_id"], "tally", input={"count": 1})
    held_model.hold()
    tid = c.threads.create()["thread_id"]
    rid = c.runs.create(tid, "tally", input={"count": 1}, stream_resumable=True,
                        stream_mode=["values", "updates"])["run_id"]
    paused = cluster.owner_index(rid)
    assert held_model.held.wait(RUN_WAIT)
    watcher = cluster.client((paused + 1) % INSTANCES)
    until(lambda: any(t["name"] == "side" and t["result"] is not None
                      for t in watcher.threads.get_state(tid)["tasks"]), "side's writes saved")
    seen: list[tuple[str, Any, str | None]] = []
    streaming = stream_from_another(cluster, paused, f"/threads/{tid}/runs/{rid}/stream", seen)

    def checkpoints_of_attempt(attempt: int) -> list[str]:
        return [s["checkpoint_id"] for s in watcher.threads.get_history(tid, limit=100)
                if s["metadata"].get("run_attempt") == attempt]

    process = cluster.instances[paused].proc
    os.kill(process.pid, signal.SIGSTOP)  # as a long GC pause would: its lease runs out
    try:
        taker, = until(lambda: (i := cluster.owner_index(rid)) != paused and (i,),
                       "the run taken over")
        # the taker resumed the run to its model call, which waits too
        until(lambda: cluster.calls_of(tid)["wait_for_model"] == 2, "the takeover at the model")
        first_attempt = checkpoints_of_attempt(1)
        # its model call answered while it is stopped: when it goes on, the reply is there
        # at once, the graph's next writes and events race with its own lease renewal
        held_model.release()
    finally:
        os.kill(process.pid, signal.SIGCONT)
    finished = wait_for_status(watcher, tid, rid, "success", "error")
    assert finished["status"] == "success"
    log = cluster.instances[paused].log
    until(lambda: f"run {rid}: left to the instance that took it over" in log.read_text(),
          "the paused worker stopped the run")

    # the run, its thread and its checkpoints are the taker's
    (status, attempt, owner, fence, result), = cluster.query(
        "SELECT status, attempt, owner, fence, result FROM ferrograph_runs WHERE run_id = %s",
        rid)
    assert (status, attempt, fence) == ("success", 2, 2)
    assert int(owner.split(":")[1]) == cluster.instances[taker].proc.pid
    assert json.loads(result) == expected
    assert watcher.threads.get_state(tid)["values"] == expected
    assert watcher.threads.get(tid)["status"] == "idle"
    assert checkpoints_of_attempt(1) == first_attempt  # none after it was paused
    assert watcher.threads.get_history(tid, limit=1)[0]["metadata"]["run_attempt"] == 2
    assert cluster.calls_of(tid) == {"first": 1, "side": 1, "wait_for_model": 2}
    # the client saw the run end once, each event once: nothing from the paused worker
    streaming.join(RUN_WAIT)
    assert not streaming.is_alive(), "the streaming client did not see the run's end"
    assert [data for event, data, _ in seen if event == "metadata"] == [
        {"run_id": rid, "attempt": 1}, {"run_id": rid, "attempt": 2}]
    assert seen[-1][:2] == ("values", expected)
    assert [e for e, data, _ in seen if e == "values" and data == expected] == ["values"]
    assert [e for e, data, _ in seen if e == "updates" and "wait_for_model" in data] == [
        "updates"]
    relayed = redis.Redis.from_url(cluster.redis.url).xrange(stream_key(rid))
    assert [fields for _, fields in relayed if b"end" in fields] == [{b"end": b"1"}]
    assert b"end" in relayed[-1][1]
    assert httpx.get(cluster.instances[paused].url + "/ok", timeout=RUN_WAIT).status_code == 200


def test_fenced_writes_of_an_older_claim_are_refused(cluster):
    """The fences themselves: a run's row, thread and checkpoint writes, and its relay,
    with the token of an older claim than the run's."""
    import asyncio

    from langgraph.checkpoint.base import empty_checkpoint

    from ferrograph.server.cluster import Cluster as RedisCluster
    from ferrograph.server.cluster import RelayWriter
    from ferrograph.server.database import LeaseLost, PostgresDatabase
    from ferrograph.server.fencing import FENCE, fenced_saver

    rid, tid = str(uuid.uuid4()), str(uuid.uuid4())
    thread_sql = "INSERT INTO ferrograph_threads (thread_id, status) VALUES (?, 'idle')"

    async def check() -> None:
        db, relay = PostgresDatabase(cluster.postgres.url), RedisCluster(cluster.redis.url)
        await db.open()
        await relay.open()
        try:
            await db.run([("INSERT INTO ferrograph_runs (run_id, thread_id, status, owner, "
                           "fence) VALUES (?, ?, 'running', 'b', 2)", (rid, tid))])
            with pytest.raises(LeaseLost):
                await db.run_fenced((FENCE, (rid, "a", 1)), [(thread_sql, (tid,))])
            assert await db.fetchall("SELECT 1 FROM ferrograph_threads WHERE thread_id = ?",
                                     (tid,)) == []

            lost: list[str] = []
            config = {"configurable": {"thread_id": tid, "checkpoint_ns": ""}}
            stale = fenced_saver(db.pool, (rid, "a", 1), lambda: lost.append("saver"))
            with pytest.raises(LeaseLost):
                await stale.aput(config, empty_checkpoint(), {}, {})
            assert await stale.aget_tuple(config) is None
            await fenced_saver(db.pool, (rid, "b", 2), lambda: lost.append("b")).aput(
                config, empty_checkpoint(), {}, {})
            assert await stale.aget_tuple(config) is not None

            current = RelayWriter(relay, rid, 2)
            current.put("values", b"from b", "")
            await current.end(mark_end=False)
            older = RelayWriter(relay, rid, 1, on_refused=lambda: lost.append("relay"))
            older.put("values", b"from a", "")
            await older.end()
            assert lost == ["saver", "relay"]
            entries = await relay.redis.xrange(stream_key(rid))
            assert [fields[b"f"] for _, fields in entries] == [b"from b"]
        finally:
            await relay.close()
            await db.close()

    asyncio.run(check())
