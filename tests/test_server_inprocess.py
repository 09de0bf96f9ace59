"""The server app in this process (uvicorn on a thread), to see what a subprocess hides: a
run cancelled by a client that went away leaves no task behind, and shutting the server down
ends its runs and its thread."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
import uvicorn

from ferrograph.server import create_app
from tests.server_support import GRAPHS, HeldModel, free_port, stream_until_held

WAIT = 60.0


class InProcessServer:
    """uvicorn serving `create_app(...)` on its own thread and event loop."""

    def __init__(self, app) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="on"))
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, name="test-uvicorn", daemon=True)

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.server.serve())
        self.loop.close()

    def __enter__(self) -> InProcessServer:
        self.thread.start()
        deadline = time.monotonic() + WAIT
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server not up"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(WAIT)
        assert not self.thread.is_alive()

    def call(self, fn):
        """`fn()` run on the server's loop (to look at its state safely)."""
        async def run():
            return fn()
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(WAIT)


@pytest.fixture
def model(monkeypatch):
    with HeldModel() as held:
        monkeypatch.setenv("LOCAL_OPENAI_URL", held.server.base_url)
        yield held


def _until(check, what):
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_a_client_gone_leaves_no_task_and_shutdown_ends_runs(model):
    app = create_app(GRAPHS / "langgraph.json")
    with InProcessServer(app) as server:
        state = app.state.server
        baseline = server.call(lambda: len(asyncio.all_tasks()))
        tid = httpx.post(server.url + "/threads", json={}).json()["thread_id"]
        model.hold()
        body = {"assistant_id": "slow", "input": {"count": 1}, "on_disconnect": "cancel"}
        run_id = stream_until_held(server.url, model, tid, body)
        run = state.runner.runs[run_id]
        _until(lambda: server.call(lambda: run.task.done()), "the run's task still going")
        assert run.record.status == "interrupted"
        _until(lambda: server.call(lambda: len(asyncio.all_tasks())) <= baseline,
               "tasks left behind")
        # a run still going when the server stops is cancelled, and the loop ends
        model.release()
        model.hold()
        run2 = httpx.post(f"{server.url}/threads/{tid}/runs",
                          json={"assistant_id": "slow", "input": {"count": 1}}).json()
        assert model.held.wait(WAIT)
        assert state.runner.runs[run2["run_id"]].record.status == "running"
    # the server stopped while the model still held the reply: the run was cancelled, and
    # left pending for the next server on the database (as LangGraph's worker re-queues it)
    model.release()
    run2_task = state.runner.runs[run2["run_id"]]
    assert run2_task.task.done() and run2_task.record.status == "pending"


def _open_streams(state) -> int:
    """Listeners still subscribed to any run (each open SSE response holds one)."""
    return sum(len(run.listeners) for run in state.runner.runs.values())


@pytest.mark.parametrize("on_disconnect", ["cancel", "continue"])
@pytest.mark.parametrize("stream_mode", [["values"], ["events", "updates"]])
def test_a_client_gone_mid_stream_leaves_no_task_thread_or_listener(model, on_disconnect,
                                                                     stream_mode):
    app = create_app(GRAPHS / "langgraph.json")
    with InProcessServer(app) as server:
        state = app.state.server
        tid = httpx.post(server.url + "/threads", json={}).json()["thread_id"]
        # a first run starts what stays for the server's life (worker threads, clients)
        assert httpx.post(f"{server.url}/threads/{tid}/runs/wait", timeout=WAIT, json={
            "assistant_id": "slow", "input": {"count": 0}}).status_code == 200
        tasks = server.call(lambda: len(asyncio.all_tasks()))
        threads = threading.active_count()
        model.hold()
        body = {"assistant_id": "slow", "input": {"count": 1}, "stream_mode": stream_mode,
                "on_disconnect": on_disconnect}
        run_id = stream_until_held(server.url, model, tid, body)
        run = state.runner.runs[run_id]
        # the response's generator ended with the connection: it let go of the run
        _until(lambda: server.call(lambda: _open_streams(state)) == 0, "a listener left")
        if on_disconnect == "continue":
            assert server.call(lambda: run.record.status) == "running"
        model.release()
        _until(lambda: server.call(lambda: run.task.done()), "the run's task still going")
        assert run.record.status == ("interrupted" if on_disconnect == "cancel" else "success")
        _until(lambda: server.call(lambda: len(asyncio.all_tasks())) <= tasks,
               "tasks left behind")
        _until(lambda: threading.active_count() <= threads, "threads left behind")
        # and the server still serves runs
        assert httpx.post(f"{server.url}/threads/{tid}/runs/wait", timeout=WAIT, json={
            "assistant_id": "counter", "input": {"count": 1}}).json()["count"] == 20


def test_an_idle_stream_gets_heartbeats_and_then_its_events(model, monkeypatch):
    """A stream with nothing to send writes a heartbeat comment every HEARTBEAT_SECONDS, and
    the run's events still follow once it goes on."""
    from ferrograph.server import api_runs

    monkeypatch.setattr(api_runs, "HEARTBEAT_SECONDS", 0.05)
    app = create_app(GRAPHS / "langgraph.json")
    with InProcessServer(app) as server:
        tid = httpx.post(server.url + "/threads", json={}).json()["thread_id"]
        model.hold()
        body = {"assistant_id": "slow", "input": {"count": 1}, "stream_mode": ["values"]}
        with httpx.stream("POST", f"{server.url}/threads/{tid}/runs/stream", json=body,
                          timeout=WAIT) as response:
            lines = response.iter_lines()
            assert next(lines) == "event: metadata"
            assert model.held.wait(WAIT)
            # the model holds the run: heartbeats come, one after another
            before: list[str] = []
            for line in lines:
                if line:
                    before.append(line)
                if before.count(": heartbeat") == 2:
                    break
            assert before[-1] == ": heartbeat"
            model.release()
            after = [line for line in lines if line and line != ": heartbeat"]
        events = [line for line in before + after if line.startswith("event: ")]
        assert set(events) == {"event: values"} and len(events) >= 2, events
