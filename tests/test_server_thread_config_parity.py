"""A thread's `config` on `ferrograph serve` against `langgraph dev`: `{}` until a run is
created on it, then LangGraph's merge of the assistant's, the thread's and the run
request's config (`configurable` the assistant's and the thread's only), kept by later
runs unless they change it, not copied with the thread."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from langgraph_sdk import get_sync_client

from tests.server_support import normalise

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def thread_configs(url: str) -> dict[str, Any]:
    c = get_sync_client(url=url, api_key=None)
    seen: dict[str, Any] = {}
    tid = c.threads.create()["thread_id"]
    seen["created"] = c.threads.get(tid)["config"]
    c.runs.wait(tid, "counter", input={"count": 1}, config={
        "configurable": {"x": 1}, "tags": ["a"], "recursion_limit": 10, "metadata": {"m": 1}})
    seen["after a run"] = c.threads.get(tid)["config"]
    c.runs.wait(tid, "counter", input={"count": 1},
                config={"configurable": {"y": 2}, "tags": ["b"]})
    seen["after another"] = c.threads.get(tid)["config"]
    seen["searched"] = [t["config"] for t in c.threads.search(ids=[tid])]
    seen["copied"] = c.threads.copy(tid)["config"]
    assistant = c.assistants.create("counter", config={"configurable": {"z": 3},
                                                       "tags": ["mine"]})
    tid = c.threads.create()["thread_id"]
    c.runs.wait(tid, assistant["assistant_id"], input={"count": 1},
                config={"configurable": {"w": 4}})
    seen["an assistant's run"] = c.threads.get(tid)["config"]
    tid = str(uuid.uuid4())
    c.runs.wait(tid, "counter", input={"count": 1}, if_not_exists="create",
                config={"configurable": {"v": 5}, "tags": ["c"]})
    seen["created by its run"] = c.threads.get(tid)["config"]
    tid = c.threads.create()["thread_id"]
    run = c.runs.create(tid, "counter", input={"count": 1})
    c.runs.join(tid, run["run_id"])
    c.threads.update(tid, metadata={"k": 1})
    seen["a run without config, then a patch"] = c.threads.get(tid)["config"]
    return normalise(seen)


def test_thread_config_as_langgraph_keeps_it(server_pair):
    ours, theirs = (thread_configs(server_pair[name]) for name in ("ferrograph", "langgraph"))
    assert ours == theirs
    assert theirs["after another"] == {"configurable": {}, "tags": ["b"],
                                       "recursion_limit": 10, "metadata": {"m": 1}}
