"""`ferrograph serve` stopped and started again on the same database, on SQLite and on
PostgreSQL: a run the server stops during (SIGTERM) is left `pending` and run again by the
next server as its next attempt, resuming the thread from its last checkpoint (the nodes whose
writes were saved do not run again); the schema's migrations are applied once; and the
database's failures at start (a bad or unreachable DATABASE_URI) and later (`/ok`)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_sync_client

from ferrograph.server.database import MIGRATIONS
from tests.server_support import (
    BACKENDS,
    GRAPHS,
    HeldModel,
    copy_graphs,
    ferrograph_serve,
    free_port,
    graph_env,
    server_database,
    wait_for_status,
)
from tests.services import PostgresServer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

WAIT = 60.0
"""Seconds a test waits for a run to reach a state (a deadline, never a pause)."""
SCHEMA_VERSIONS = [(version,) for version, _ in MIGRATIONS]
"""Every migration, each recorded once."""


@pytest.fixture
def model():
    with HeldModel() as held:
        yield held


def query(db_args: list[str], sql: str) -> list[tuple[Any, ...]]:
    """Rows of `sql` on the server's database, read directly (no server running)."""
    flag, target = db_args
    if flag == "--db":
        with sqlite3.connect(target) as conn:
            return conn.execute(sql).fetchall()
    import psycopg

    with psycopg.connect(target) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_run_stopped_by_shutdown_runs_again_from_its_last_checkpoint(
        request, backend, model, tmp_path):
    with server_database(request, backend, str(tmp_path / "serve.sqlite")) as db:
        model.hold()
        with ferrograph_serve(model, tmp_path, *db) as proc:
            c = get_sync_client(url=proc.url, api_key=None)
            tid = c.threads.create()["thread_id"]
            run = c.runs.create(tid, "slow", input={"count": 1})
            assert model.held.wait(WAIT)  # `first` ran and was saved; the model call waits
            assert c.runs.get(tid, run["run_id"])["status"] == "running"
            proc.stop()  # SIGTERM, mid-run
        # left for the next server, as LangGraph's worker returns a run it lost to the queue
        assert query(db, "SELECT status, attempt FROM ferrograph_runs") == [("pending", 1)]
        assert query(db, "SELECT version FROM ferrograph_schema ORDER BY version") == SCHEMA_VERSIONS

        with ferrograph_serve(model, tmp_path, *db) as proc:
            c = get_sync_client(url=proc.url, api_key=None)
            # the run started again; its model call waits behind the first server's, which
            # the local model server still holds
            assert wait_for_status(c, tid, run["run_id"], "running")["status"] == "running"
            assert c.threads.get(tid)["status"] == "busy"
            state = c.threads.get_state(tid)
            assert (state["values"], state["next"]) == (
                {"count": 2, "log": ["first"]}, ["wait_for_model"])
            model.release()
            finished = wait_for_status(c, tid, run["run_id"], "success", "error")
            assert finished["status"] == "success"
            # `first` did not run again: one entry, count incremented once
            assert c.threads.get_state(tid)["values"] == {
                "count": 2, "log": ["first", "slow reply"]}
            assert c.threads.get(tid)["status"] == "idle"
            newest = c.threads.get_history(tid, limit=1)[0]
            assert (newest["metadata"]["run_id"], newest["metadata"]["run_attempt"]) == (
                run["run_id"], 2)
            assert [r["run_id"] for r in c.runs.list(tid)] == [run["run_id"]]
        assert query(db, "SELECT version FROM ferrograph_schema ORDER BY version") == SCHEMA_VERSIONS


@pytest.mark.parametrize("backend", BACKENDS)
def test_runs_queued_behind_a_stopped_run_run_after_it(request, backend, model, tmp_path):
    """A run still waiting for its thread when the server stops keeps its place: the next
    server runs the stopped run, then it (its first attempt)."""
    with server_database(request, backend, str(tmp_path / "serve.sqlite")) as db:
        model.hold()
        with ferrograph_serve(model, tmp_path, *db) as proc:
            c = get_sync_client(url=proc.url, api_key=None)
            tid = c.threads.create()["thread_id"]
            slow = c.runs.create(tid, "slow", input={"count": 1})
            assert model.held.wait(WAIT)
            queued = c.runs.create(tid, "counter", input={"count": 5},
                                   multitask_strategy="enqueue")
            assert c.runs.get(tid, queued["run_id"])["status"] == "pending"
        assert sorted(query(db, "SELECT status, attempt FROM ferrograph_runs")) == [
            ("pending", 0), ("pending", 1)]
        model.release()
        with ferrograph_serve(model, tmp_path, *db) as proc:
            c = get_sync_client(url=proc.url, api_key=None)
            assert c.runs.join(tid, queued["run_id"]) == {
                "count": 60, "log": ["first", "slow reply", "first", "second"]}
            assert c.runs.get(tid, slow["run_id"])["status"] == "success"


def serve_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "ferrograph", "serve", "--config", "langgraph.json",
            "--port", str(free_port()), *args]


@pytest.mark.parametrize("how", ["option", "environment"])
def test_an_unreachable_database_uri_stops_the_start_naming_it(how, model, tmp_path):
    graphs = copy_graphs(tmp_path)
    uri = f"postgresql://someone:secret@127.0.0.1:{free_port()}/nothing"
    env = graph_env(model, "ferrograph")
    argv = serve_argv()
    if how == "option":
        argv += ["--database-uri", uri]
    else:
        env["DATABASE_URI"] = uri
    done = subprocess.run(argv, cwd=graphs, env=env, capture_output=True, text=True,
                          timeout=WAIT)
    assert done.returncode == 1
    assert "cannot connect to DATABASE_URI postgresql://someone:***@127.0.0.1" in done.stderr
    assert "secret" not in done.stderr
    assert "Traceback" not in done.stderr


def test_a_database_uri_that_is_not_postgres_is_refused(model, tmp_path):
    graphs = copy_graphs(tmp_path)
    done = subprocess.run(serve_argv("--database-uri", "mysql://x@localhost/db"), cwd=graphs,
                          env=graph_env(model, "ferrograph"), capture_output=True, text=True,
                          timeout=WAIT)
    assert done.returncode == 2
    assert "DATABASE_URI 'mysql://x@localhost/db' is not a postgres://" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_sqlite_file_that_cannot_be_opened_stops_the_start(model, tmp_path):
    graphs = copy_graphs(tmp_path)
    missing = tmp_path / "no" / "such" / "dir" / "db.sqlite"
    done = subprocess.run(serve_argv("--db", str(missing)), cwd=graphs,
                          env=graph_env(model, "ferrograph"), capture_output=True, text=True,
                          timeout=WAIT)
    assert done.returncode == 1
    assert f"cannot open the SQLite database {missing}" in done.stderr
    assert "Traceback" not in done.stderr


def test_ok_answers_500_while_postgres_does_not_answer(model, tmp_path: Path):
    with PostgresServer() as postgres:
        with ferrograph_serve(model, tmp_path, "--database-uri", postgres.url) as proc:
            healthy = httpx.get(proc.url + "/ok", timeout=WAIT)
            assert (healthy.status_code, healthy.json()) == (
                200, {"ok": True, "services": {"database": "healthy"}})
            postgres.stop()
            gone = httpx.get(proc.url + "/ok", timeout=WAIT)
            assert (gone.status_code, gone.json()) == (
                500, {"ok": False, "services": {"database": "unhealthy"}})
            # as LangGraph's, `check_db=0` skips the database
            assert httpx.get(proc.url + "/ok?check_db=0", timeout=WAIT).status_code == 200


def test_a_run_started_three_times_fails_instead_of_a_fourth(model, tmp_path):
    db = ["--db", str(tmp_path / "serve.sqlite")]
    model.hold()
    with ferrograph_serve(model, tmp_path, *db) as proc:
        c = get_sync_client(url=proc.url, api_key=None)
        tid = c.threads.create()["thread_id"]
        run = c.runs.create(tid, "slow", input={"count": 1})
        assert model.held.wait(WAIT)
    model.release()
    with sqlite3.connect(db[1]) as conn:  # as if two restarts had each stopped it again
        conn.execute("UPDATE ferrograph_runs SET attempt = 3")
    with ferrograph_serve(model, tmp_path, *db) as proc:
        c = get_sync_client(url=proc.url, api_key=None)
        assert c.runs.get(tid, run["run_id"])["status"] == "error"
        thread = c.threads.get(tid)
        assert thread["status"] == "error"
        assert thread["error"] == {
            "error": "RuntimeError",
            "message": f"Run {run['run_id']} exceeded max attempts (3)."}
        assert c.runs.join(tid, run["run_id"]) == {"__error__": thread["error"]}


def test_a_sqlite_file_from_before_the_migrations_is_kept(tmp_path):
    """A file written before the schema had versions (threads and assistants tables, no
    `ferrograph_schema`) is brought up to date, its rows kept; a second start changes
    nothing."""
    from starlette.testclient import TestClient

    from ferrograph.server import create_app

    path = str(tmp_path / "old.sqlite")
    tid, at = "1ef4a9f2-0000-4000-8000-000000000001", "2026-01-02T03:04:05+00:00"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE ferrograph_threads (thread_id TEXT PRIMARY KEY, "
                     "created_at TEXT, updated_at TEXT, state_updated_at TEXT, metadata TEXT, "
                     "status TEXT, state_values TEXT, interrupts TEXT, error TEXT)")
        conn.execute("INSERT INTO ferrograph_threads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (tid, at, at, at, '{"kept": 1}', "idle", "null", "{}", "null"))
    for _ in range(2):
        with TestClient(create_app(GRAPHS / "langgraph.json", path)) as c:
            assert c.get(f"/threads/{tid}").json()["metadata"] == {"kept": 1}
            assert c.get("/ok?check_db=1").json() == {
                "ok": True, "services": {"database": "healthy"}}
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT version FROM ferrograph_schema ORDER BY "
                                "version").fetchall() == SCHEMA_VERSIONS
