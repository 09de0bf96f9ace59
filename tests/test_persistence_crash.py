"""A process killed with SIGKILL in the middle of a step: a new process resumes the thread
from its last checkpoint, and the writes of the tasks that had finished are neither lost
nor applied twice (they are not run again).

The child runs a step of two parallel nodes on a real database (a SQLite file, a PostgreSQL
server): `fast` ends (its writes are saved as it ends) while `slow` waits forever; the test
waits until `fast`'s writes are in the database, kills the child, and resumes the thread
here."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

WAIT_SECONDS = 120.0
"""Longest wait for the child to reach the point it is killed at (only a regression or a
badly stalled machine gets near it)."""

GRAPH = '''
import operator, os, sys, threading
from typing import Annotated, TypedDict
from ferrograph.graph import StateGraph, START, END

class State(TypedDict, total=False):
    log: Annotated[list, operator.add]
    fast_done: bool

def build(marks: str, slow_blocks: bool):
    def fast(state):
        with open(marks, "a") as f:
            f.write("fast\\n")
        return {"log": ["fast"], "fast_done": True}

    def slow(state):
        if slow_blocks:
            threading.Event().wait()  # until the process is killed
        with open(marks, "a") as f:
            f.write("slow\\n")
        return {"log": ["slow"]}

    def after(state):
        return {"log": ["after"]}

    builder = StateGraph(State)
    builder.add_node("fast", fast)
    builder.add_node("slow", slow)
    builder.add_node("after", after)
    builder.add_edge(START, "fast")
    builder.add_edge(START, "slow")
    builder.add_edge(["fast", "slow"], "after")
    builder.add_edge("after", END)
    return builder
'''

CHILD = '''
import sys
sys.path.insert(0, {here!r})
from crash_graph import build
from crash_saver import open_saver

with open_saver() as saver:
    graph = build({marks!r}, slow_blocks=True).compile(checkpointer=saver)
    graph.invoke({{"log": []}}, {{"configurable": {{"thread_id": {thread!r}}}}})
'''

SAVERS = {
    "sqlite": '''
from langgraph.checkpoint.sqlite import SqliteSaver
def open_saver():
    return SqliteSaver.from_conn_string({target!r})
''',
    "postgres": '''
import contextlib
from langgraph.checkpoint.postgres import PostgresSaver
@contextlib.contextmanager
def open_saver():
    with PostgresSaver.from_conn_string({target!r}) as saver:
        saver.setup()
        yield saver
''',
}


def _fast_writes_saved(backend: str, target: str, thread: str) -> bool:
    """Whether `fast`'s writes are in the database (polled: no timing is assumed)."""
    if backend == "sqlite":
        if not Path(target).exists():
            return False
        try:
            with sqlite3.connect(target) as conn:
                rows = conn.execute(
                    "SELECT count(*) FROM writes WHERE thread_id = ? AND channel = 'fast_done'",
                    (thread,)).fetchone()
        except sqlite3.OperationalError:  # the saver has not made its tables yet
            return False
        return bool(rows and rows[0])
    import psycopg

    with psycopg.connect(target, autocommit=True) as conn:
        try:
            rows = conn.execute(
                "SELECT count(*) FROM checkpoint_writes WHERE thread_id = %s "
                "AND channel = 'fast_done'", (thread,)).fetchone()
        except psycopg.errors.UndefinedTable:
            return False
    return bool(rows and rows[0])


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "thread.sqlite")
    return "postgres", request.getfixturevalue("postgres_url")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_process_killed_mid_step_resumes_without_losing_or_repeating_writes(
        tmp_path: Path, database: tuple[str, str]):
    backend, target = database
    thread = f"crash-{uuid.uuid4().hex}"
    (tmp_path / "crash_graph.py").write_text(textwrap.dedent(GRAPH))
    (tmp_path / "crash_saver.py").write_text(SAVERS[backend].format(target=target))
    marks = tmp_path / "marks.txt"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(here=str(tmp_path), marks=str(marks), thread=thread))
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while not _fast_writes_saved(backend, target, thread):
            if child.poll() is not None:
                _, err = child.communicate()
                pytest.fail(f"the child ended before it was killed:\n{err.decode()}")
            if time.monotonic() > deadline:
                pytest.fail("the child never saved the finished task's writes")
            time.sleep(0.05)  # polling the database file, not timing the run
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=WAIT_SECONDS)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert marks.read_text() == "fast\n"

    sys.path.insert(0, str(tmp_path))
    try:
        for name in ("crash_graph", "crash_saver"):  # this test's copies, not a previous one's
            sys.modules.pop(name, None)
        from crash_graph import build  # type: ignore[import-not-found]
        from crash_saver import open_saver  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))

    config = {"configurable": {"thread_id": thread}}
    with open_saver() as saver:
        graph = build(str(marks), slow_blocks=False).compile(checkpointer=saver)
        assert graph.get_state(config).next == ("slow",)  # `fast` finished: not pending
        result = graph.invoke(None, config)
    assert sorted(result["log"]) == ["after", "fast", "slow"]
    assert result["log"].count("fast") == 1
    assert marks.read_text() == "fast\nslow\n"  # `fast` did not run again
