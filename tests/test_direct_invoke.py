"""`invoke` on the direct driver (the whole run in Rust, `DirectGraph`): which runs take it,
that nodes see what they see under `GraphRun`, and its failure, Ctrl-C, concurrency and task-id
behaviour."""

from __future__ import annotations

import _thread
import operator
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import RunnableConfig, RunnableLambda

from ferrograph._core import new_task_id
from ferrograph.config import CONFIG_KEY_RUN, CONFIG_KEY_RUNTIME, CONFIG_KEY_TASK, get_config
from ferrograph.graph import START, StateGraph
from ferrograph.runtime import Runtime
from ferrograph.types import RetryPolicy, Send
from tests.support import settle_threads


class Log(TypedDict):
    log: Annotated[list, operator.add]


class Seen(TypedDict):
    log: Annotated[list, operator.add]
    item: int


@dataclass
class Context:
    user: str


def chain(n: int = 3) -> Any:
    b = StateGraph(Log)
    for i in range(n):
        b.add_node(f"n{i}", lambda s, i=i: {"log": [i]})
        b.add_edge(START if i == 0 else f"n{i - 1}", f"n{i}")
    return b.compile()


class Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.chains: list[str] = []

    def on_chain_start(self, serialized: Any, inputs: Any, *, name: str | None = None,
                       **kwargs: Any) -> None:
        self.chains.append(name or "")


def test_plain_invoke_takes_the_direct_driver(graph_runs: list[str]) -> None:
    assert chain().invoke({"log": []}) == {"log": [0, 1, 2]}
    assert graph_runs == []


@pytest.mark.parametrize("how", ["callbacks", "interrupt_before", "interrupt_after",
                                 "stream_mode"])
def test_runs_the_direct_driver_cannot_serve_go_through_a_graph_run(
        graph_runs: list[str], how: str) -> None:
    graph = chain()
    recorder = Recorder()
    kwargs: dict[str, Any] = {
        "callbacks": {},
        "interrupt_before": {"interrupt_before": ["n1"]},
        "interrupt_after": {"interrupt_after": ["n1"]},
        # (`updates` / `values` alone stream on the direct driver: see test_direct_stream)
        "stream_mode": {"stream_mode": ["updates", "custom"]},
    }[how]
    config = {"callbacks": [recorder]} if how == "callbacks" else None
    result = graph.invoke({"log": []}, config, **kwargs)
    assert graph_runs == ["GraphRun"]
    if how == "callbacks":
        assert recorder.chains == ["LangGraph", "n0", "n1", "n2"]  # the trace needs GraphRun
    elif how == "stream_mode":
        assert result == [("updates", {f"n{i}": {"log": [i]}}) for i in range(3)]
    else:
        assert result == {"log": [0, 1]} if how == "interrupt_after" else {"log": [0]}


def _normalised(config: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """The config a node saw, with its task id (unique per run) replaced by a stand-in and
    the engine's internal handles by their presence."""
    task_id = config["configurable"]["__pregel_task_id"]
    stand_in = ids.setdefault(task_id, f"<task {len(ids)}>")

    def fix(value: Any) -> Any:
        return value.replace(task_id, stand_in) if isinstance(value, str) else value

    configurable = {k: fix(v) for k, v in config["configurable"].items()
                    if k not in (CONFIG_KEY_TASK, CONFIG_KEY_RUN)}
    # Each run has a drain control of its own: the same in both, but not the same object.
    configurable[CONFIG_KEY_RUNTIME] = configurable[CONFIG_KEY_RUNTIME].override(control=None)
    return {
        **{k: v for k, v in config.items() if k not in ("metadata", "configurable")},
        "callbacks": type(config.get("callbacks")).__name__,
        "metadata": {k: fix(v) for k, v in config["metadata"].items()},
        "configurable": configurable,
        "has_task_entries": (CONFIG_KEY_TASK in config["configurable"],
                             CONFIG_KEY_RUN in config["configurable"]),
    }


def seen_configs(**invoke_kwargs: Any) -> list[tuple[str, Any]]:
    """What each node of a graph with pull, push, plain and config-taking nodes, node
    metadata, a router and a runnable node saw, in one `invoke` with a full config."""
    seen: list[tuple[str, Any]] = []
    ids: dict[str, str] = {}

    def plain(state: Seen) -> dict[str, Any]:
        seen.append(("plain", _normalised(get_config(), ids)))
        return {"log": ["plain"]}

    def takes_config(state: Seen, config: RunnableConfig, runtime: Runtime) -> dict[str, Any]:
        assert get_config() is config
        seen.append(("takes_config", _normalised(config, ids)))
        seen.append(("runtime", (runtime.context, runtime.store)))
        return {"log": ["takes_config"]}

    def worker(item: int) -> dict[str, Any]:
        seen.append((f"worker {item}", _normalised(get_config(), ids)))
        return {"log": [item]}

    def fan(state: Seen) -> list[Send]:
        seen.append(("router", _normalised(get_config(), ids)))
        return [Send("worker", 1), Send("worker", 2)]

    def runnable(state: Seen) -> dict[str, Any]:
        seen.append(("runnable", _normalised(get_config(), ids)))
        return {"log": ["runnable"]}

    b = StateGraph(Seen, context_schema=Context)
    b.add_node("plain", plain, metadata={"owner": "team-a"})
    b.add_node("takes_config", takes_config)
    b.add_node("worker", worker)
    b.add_node("runnable", RunnableLambda(runnable))
    b.add_edge(START, "plain")
    b.add_edge(START, "takes_config")
    b.add_conditional_edges("plain", fan)
    b.add_edge("worker", "runnable")
    config = {"tags": ["t"], "metadata": {"team": "core"}, "recursion_limit": 30,
              "configurable": {"thread_id": "thread-1", "user_key": "ada"}}
    result = b.compile().invoke({"log": [], "item": 0}, config, context={"user": "ada"},
                                **invoke_kwargs)
    assert result["log"][-1] == "runnable"
    return sorted(seen, key=lambda pair: (pair[0], str(pair[1])))


def test_nodes_see_the_same_config_as_under_a_graph_run(graph_runs: list[str]) -> None:
    direct = seen_configs()
    assert graph_runs == []
    through_graph_run = seen_configs(interrupt_before=[])  # a breakpoint list: GraphRun
    assert graph_runs == ["GraphRun"]
    assert direct == through_graph_run
    by_node = dict(direct)
    plain = by_node["plain"]["metadata"]
    assert plain["owner"] == "team-a" and plain["team"] == "core"
    assert plain["thread_id"] == "thread-1"  # run identifiers in configurable, as LangGraph
    assert plain["langgraph_path"] == ("__pregel_pull", "plain")
    assert plain["langgraph_triggers"] == ("branch:to:plain",)
    worker = by_node["worker 2"]["metadata"]
    assert worker["langgraph_path"][:1] == ("__pregel_push",)
    assert worker["langgraph_triggers"] == ("__pregel_push",)
    assert by_node["runtime"] == (Context(user="ada"), None)


@pytest.mark.parametrize("where", ["calling thread", "worker"])
def test_a_failing_branch_raises_its_own_error_with_its_task_note(where: str) -> None:
    baseline = threading.active_count()
    error = KeyError("the original")
    started = threading.Event()
    ran: list[str] = []

    def bad(state: Log) -> dict[str, Any]:
        if where == "worker":  # the caller is busy in `first` until a worker took this one
            started.set()
        raise error

    def first(state: Log) -> dict[str, Any]:
        if where == "worker":
            assert started.wait(5)
            time.sleep(0.05)
        ran.append("first")
        return {"log": ["first"]}

    def later(state: Log) -> dict[str, Any]:
        ran.append("later")
        return {"log": ["later"]}

    b = StateGraph(Log)
    for name, node in (("a_first", first), ("b_bad", bad), ("c_later", later)):
        b.add_node(name, node)
        b.add_edge(START, name)
    graph = b.compile()
    with pytest.raises(KeyError) as caught:
        graph.invoke({"log": []})
    assert caught.value is error
    assert re.fullmatch(r"During task with name 'b_bad' and id '[0-9a-f-]{36}'",
                        caught.value.__notes__[-1])
    if where == "calling thread":
        assert ran == ["first"]  # nothing starts after the failure
    assert settle_threads(baseline) <= baseline


def test_ctrl_c_reaches_a_caller_waiting_for_workers() -> None:
    baseline = threading.active_count()
    handed_over = threading.Event()
    release = threading.Event()

    def quick(state: Log) -> dict[str, Any]:
        assert handed_over.wait(5)  # the caller holds this one until a worker has the other
        return {"log": ["quick"]}

    def interrupts(state: Log) -> dict[str, Any]:
        handed_over.set()
        time.sleep(0.1)  # the caller is waiting for this task by now
        _thread.interrupt_main()
        release.wait(30)
        return {"log": ["late"]}

    b = StateGraph(Log)
    b.add_node("a_quick", quick)
    b.add_node("b_interrupts", interrupts)
    b.add_edge(START, "a_quick")
    b.add_edge(START, "b_interrupts")
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        b.compile().invoke({"log": []})
    assert time.monotonic() - start < 20  # not held until the worker's 30 s wait ends
    release.set()
    assert settle_threads(baseline) <= baseline


def test_one_graph_invoked_from_many_threads_at_once() -> None:
    b = StateGraph(Log)
    for i in range(5):
        b.add_node(f"f{i}", lambda s, i=i: {"log": [i]})
        b.add_edge(START, f"f{i}")
    b.add_node("join", lambda s: {"log": ["join"]})
    b.add_edge([f"f{i}" for i in range(5)], "join")
    graph = b.compile()
    bad: list[Any] = []

    def client() -> None:
        for _ in range(200):
            result = graph.invoke({"log": []})["log"]
            if sorted(result[:5]) != list(range(5)) or result[5:] != ["join"]:
                bad.append(result)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert bad == []


def test_retry_policy_and_async_nodes_run_under_invoke() -> None:
    attempts: list[int] = []

    def flaky(state: Log) -> dict[str, Any]:
        attempts.append(1)
        if len(attempts) < 3:
            raise ValueError("not yet")
        return {"log": ["flaky"]}

    async def coroutine(state: Log) -> dict[str, Any]:
        return {"log": ["async"]}

    b = StateGraph(Log)
    b.add_node("flaky", flaky, retry_policy=RetryPolicy(initial_interval=0.001, jitter=False,
                                                retry_on=ValueError))
    b.add_node("coroutine", coroutine)
    b.add_edge(START, "flaky")
    b.add_edge("flaky", "coroutine")
    assert b.compile().invoke({"log": []}) == {"log": ["flaky", "async"]}
    assert len(attempts) == 3


def test_task_ids_are_unique_uuid_text_and_a_forked_child_draws_its_own() -> None:
    ids = {new_task_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", i)
               for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, then leave at once
        os.write(write, new_task_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    parent = new_task_id()
    assert child not in ids and child != parent
    assert child[:18] != parent[:18]  # a prefix of its own, not the parent's next counter


def test_drain_of_a_run_control_subclass_is_asked_through_its_property(
        graph_runs: list[str]) -> None:
    """The direct driver reads a `RunControl`'s drain state from its slot; a subclass that
    answers `drain_requested` its own way is asked through that property, before each step."""
    from ferrograph.errors import GraphDrained
    from ferrograph.runtime import RunControl

    class AfterTwoChecks(RunControl):
        __slots__ = ("checks",)

        def __init__(self) -> None:
            super().__init__()
            self.checks = 0

        @property
        def drain_requested(self) -> bool:
            self.checks += 1
            return self.checks > 2

    control = AfterTwoChecks()
    with pytest.raises(GraphDrained):
        chain().invoke({"log": []}, control=control)
    assert control.checks == 3  # the start step, n0, then drained before n1
    assert graph_runs == []
    plain = RunControl()
    assert chain().invoke({"log": []}, control=plain) == {"log": [0, 1, 2]}
    plain.request_drain("done")
    with pytest.raises(GraphDrained, match="done"):
        chain().invoke({"log": []}, control=plain)


def test_a_run_runtime_is_a_frozen_runtime() -> None:
    """`run_runtime` builds its `Runtime` unfrozen, then makes it one: what nodes get is
    a `Runtime` as any other (frozen, equal to one built by its constructor)."""
    from dataclasses import FrozenInstanceError

    from ferrograph.runtime import RunControl, run_runtime

    control = RunControl()
    made = run_runtime("ctx", "store", None, control)
    assert type(made) is Runtime
    assert made == Runtime(context="ctx", store="store", control=control)
    with pytest.raises(FrozenInstanceError):
        made.context = "other"  # type: ignore[misc]


def _task_config_orders(graph: Any, seen: list[tuple[str, dict[str, Any]]], config: Any,
                        how: str) -> list[tuple[str, list[str], list[str], list[str]]]:
    """Per task of one run of `graph` (`invoke` or `stream` of `updates`), whose nodes append
    `(name, get_config())` to `seen`: the node and the key order of the config it saw, its
    `metadata` and its `configurable`."""
    seen.clear()
    if how == "invoke":
        graph.invoke({"log": [], "item": 0}, config)
    else:
        list(graph.stream({"log": [], "item": 0}, config, stream_mode="updates"))
    configs = [c for _, c in seen]
    assert all(type(c) is dict for c in configs)
    assert len({id(c) for c in configs}) == len({id(c["metadata"]) for c in configs}) \
        == len({id(c["configurable"]) for c in configs}) == len(configs)  # new dicts each
    return [(name, list(c), list(c["metadata"]), list(c["configurable"])) for name, c in seen]


@pytest.mark.parametrize("how", ["invoke", "stream"])
def test_task_configs_keep_their_key_order(graph_runs: list[str], how: str) -> None:
    """What a node's `get_config()` returns is a new dict per task whose keys come in the
    order they always have on the direct driver (what printing a config shows), for pull and
    push tasks, with and without the run's own metadata and `checkpoint_ns`."""
    seen: list[tuple[str, dict[str, Any]]] = []

    def plain(state: Seen) -> dict[str, Any]:
        seen.append(("plain", get_config()))
        return {"log": ["plain"]}

    def worker(item: int) -> dict[str, Any]:
        seen.append(("worker", get_config()))
        return {"log": [item]}

    b = StateGraph(Seen)
    b.add_node("plain", plain)
    b.add_node("worker", worker)
    b.add_edge(START, "plain")
    b.add_conditional_edges("plain", lambda s: [Send("worker", 1), Send("worker", 2)])
    graph = b.compile()
    run_keys = ["tags", "metadata", "callbacks", "recursion_limit", "configurable"]
    task_keys = ["__pregel_runtime", "__ferrograph_run", "__ferrograph_task", "checkpoint_ns",
                 "__pregel_task_id"]
    pull = ["langgraph_node", "langgraph_triggers", "langgraph_path", "langgraph_step",
            "langgraph_checkpoint_ns"]
    push = ["langgraph_node", "langgraph_triggers", "langgraph_step", "langgraph_path",
            "langgraph_checkpoint_ns"]
    assert _task_config_orders(graph, seen, None, how) == [
        ("plain", run_keys, pull, task_keys),
        ("worker", run_keys, push, task_keys), ("worker", run_keys, push, task_keys)]
    config = {"metadata": {"team": "core"},
              "configurable": {"thread_id": "t", "checkpoint_ns": "", "user": "ada"}}
    # The caller's `checkpoint_ns` keeps its place (and goes into the metadata, as LangGraph).
    caller_keys = ["thread_id", "checkpoint_ns", "user",
                   *(k for k in task_keys if k != "checkpoint_ns")]
    run_metadata = ["team", "checkpoint_ns", "thread_id"]
    assert _task_config_orders(graph, seen, config, how) == [
        ("plain", run_keys, [*run_metadata, *pull], caller_keys),
        ("worker", run_keys, [*run_metadata, *push], caller_keys),
        ("worker", run_keys, [*run_metadata, *push], caller_keys)]
    assert graph_runs == []
