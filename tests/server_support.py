"""Servers for the server tests: `ferrograph serve` and `langgraph dev` (the oracle), each a
subprocess on a free 127.0.0.1 port serving `tests/server_graphs` copied into a temporary
directory (so `langgraph dev`'s state files land there), stopped with its whole process group.
The graphs' model is the embedded local OpenAI server, whose address goes in the environment.
`server_database` gives a server its database on either backend (a SQLite file or `:memory:`,
or a PostgreSQL database of its own on the session's server, tests/services.py).

`normalise` makes two servers' answers comparable: ids, timestamps and run-specific values
replaced by placeholders."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
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

from ferrograph.local_openai import LocalOpenAIServer, reply_for

GRAPHS = Path(__file__).resolve().parent / "server_graphs"
READY_TIMEOUT = 120.0
"""Seconds to wait for a server's `/ok` (`langgraph dev` is slow to start on a busy machine)."""
SLOW_PROMPT = "Write a slow reply"


BACKENDS = ("sqlite", "postgres")
"""The databases `ferrograph serve` keeps its data in."""


RUN_WAIT = 60.0
"""Seconds a test waits for a run to reach a state (a deadline, never a pause)."""


def wait_for_status(c: Any, thread_id: str, run_id: str, *statuses: str) -> dict[str, Any]:
    """The run (through the SDK client `c`) once its status is one of `statuses`, polled
    against `RUN_WAIT`."""
    deadline = time.monotonic() + RUN_WAIT
    while time.monotonic() < deadline:
        run = c.runs.get(thread_id, run_id)
        if run["status"] in statuses:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} still {run['status']}, not {statuses}")


def stream_until_held(url: str, model: HeldModel, thread_id: str, body: dict[str, Any]) -> str:
    """Streams a run of `body` on `thread_id` until its model call is held, then hangs up
    (the client gone mid-stream); the run's id."""
    with httpx.stream("POST", f"{url}/threads/{thread_id}/runs/stream", json=body,
                      timeout=RUN_WAIT) as response:
        lines = response.iter_lines()
        assert next(lines) == "event: metadata"
        run_id = json.loads(next(lines)[len("data: "):])["run_id"]
        assert model.held.wait(RUN_WAIT)
    return run_id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HeldModel:
    """The local OpenAI server for the graphs, whose reply to `SLOW_PROMPT` waits until the
    test `release()`s it (so a run stays running as long as a test needs)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.held = threading.Event()
        self.server = LocalOpenAIServer(reply=self._reply)

    def _reply(self, messages: list[dict[str, Any]]) -> str:
        if any(SLOW_PROMPT in str(m.get("content")) for m in messages):
            self.held.set()
            self.gate.wait(60)  # the loop of the local server waits: only this test uses it
            return "slow reply"
        return reply_for(messages)

    def hold(self) -> None:
        self.gate.clear()
        self.held.clear()

    def release(self) -> None:
        self.gate.set()

    def __enter__(self) -> HeldModel:
        self.gate.set()
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.set()
        self.server.close()


class ServerProcess:
    """A server subprocess; `url` once it answers `/ok`."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], port: int,
                 log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._log_file = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self._log_file,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}):\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/ok", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)  # polling a port that is not open yet: nothing to wait on
        raise RuntimeError(f"server not ready after {READY_TIMEOUT} s:\n{self.output()}")

    def output(self) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        with contextlib.suppress(ProcessLookupError):  # anything the server left behind
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log_file.close()


def copy_graphs(where: Path) -> Path:
    target = where / "graphs"
    shutil.copytree(GRAPHS, target, ignore=shutil.ignore_patterns(".langgraph_api",
                                                                    "__pycache__"))
    return target


def graph_env(model: HeldModel, lib: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(LOCAL_OPENAI_URL=model.server.base_url, SERVER_GRAPH_LIB=lib,
               LANGGRAPH_CLI_NO_ANALYTICS="1", LANGGRAPH_NO_VERSION_CHECK="true",
               LANGSMITH_TRACING="false", PYTHONUNBUFFERED="1")
    return env


@contextlib.contextmanager
def ferrograph_serve(model: HeldModel, where: Path, *extra: str,
                     env: dict[str, str] | None = None,
                     config: str = "langgraph.json") -> Iterator[ServerProcess]:
    """`ferrograph serve` of `config` (a file of tests/server_graphs)."""
    graphs = copy_graphs(where) if not (where / "graphs").exists() else where / "graphs"
    port = free_port()
    server = ServerProcess(
        [sys.executable, "-m", "ferrograph", "serve", "--config", config,
         "--port", str(port), *extra],
        graphs, {**graph_env(model, "ferrograph"), **(env or {})}, port,
        where / f"ferrograph-{port}.log")
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """The URL of a new, empty database on the PostgreSQL server at `server_url`, dropped
    afterwards (so each test's server starts from nothing)."""
    import psycopg

    name = f"serve_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    head, _, query = server_url.partition("?")
    url = head.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")
    try:
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def server_database(request: pytest.FixtureRequest, backend: str,
                    sqlite: str = ":memory:") -> Iterator[list[str]]:
    """`ferrograph serve`'s arguments for an empty database of `backend`: the SQLite path
    `sqlite`, or a database of its own on the session's PostgreSQL (`postgres_url`)."""
    if backend == "sqlite":
        yield ["--db", sqlite]
        return
    with postgres_database(request.getfixturevalue("postgres_url")) as url:
        yield ["--database-uri", url]


@contextlib.contextmanager
def langgraph_dev(model: HeldModel, where: Path, env: dict[str, str] | None = None,
                  config: str = "langgraph.json") -> Iterator[ServerProcess]:
    """`langgraph dev` of `config` (a file of tests/server_graphs)."""
    graphs = copy_graphs(where) if not (where / "graphs").exists() else where / "graphs"
    port = free_port()
    cli = Path(sys.executable).with_name("langgraph")
    server = ServerProcess(
        [str(cli), "dev", "--no-browser", "--no-reload", "--port", str(port),
         "--config", config],
        graphs, {**graph_env(model, "langgraph"), **(env or {})}, port,
        where / f"langgraph-{port}.log")
    try:
        yield server
    finally:
        server.stop()


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX_ID = re.compile(r"^[0-9a-f]{32}$")
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")


SERVER_ONLY_METADATA = frozenset({
    "langgraph_version", "langgraph_api_version", "langgraph_plan", "langgraph_host",
    "langgraph_api_url", "langgraph_request_id", "langgraph_auth_user_id"})
"""Run metadata only LangGraph's server writes (its versions, plan, host, request and auth
ids)."""


def normalise(value: Any) -> Any:
    """`value` with UUIDs as `<uuid>`, interrupt ids as `<id>`, timestamps as `<time>`."""
    if isinstance(value, dict):
        return {normalise(k): normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    if isinstance(value, str):
        if _TIME.match(value):
            return "<time>"
        if _HEX_ID.match(value):
            return "<id>"
        return _UUID.sub("<uuid>", value)
    return value
