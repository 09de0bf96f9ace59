"""LangGraph 1.2's node policies, differentially: node error handlers (`add_node(...,
error_handler=...)`), `StateGraph.set_node_defaults` and timeouts (`TimeoutPolicy`,
`add_node(timeout=...)`, `Send(..., timeout=...)`, `step_timeout`). Each test builds the same
graph with `langgraph.graph` (the oracle) and `ferrograph.graph` and runs it under `invoke`,
`stream`, `ainvoke` and `astream`; the expected value is LangGraph's, computed by running it.

No timing is asserted: a node that must time out blocks on an event far longer than its
timeout (the event is set when the test ends, so nothing is left waiting).
"""

import asyncio
import importlib
import operator
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

import pytest

from tests.parity import Lib, Raised, drain, normalise, outcome, sort_key

HOWS = ["invoke", "ainvoke", "stream", "astream"]
MODES = ["updates", "values"]
WAIT = 30.0  # seconds: a wait that only a regression (or a timeout that never fires) exhausts


class State(TypedDict):
    x: str
    log: Annotated[list, operator.add]


INPUT = {"x": "", "log": []}


def types_of(lib: Lib) -> Any:
    return importlib.import_module(f"{lib.name}.types")


def run(graph: Any, how: str, input: Any = INPUT, modes: Any = MODES, **kwargs: Any) -> Any:
    """The normalised outcome of running `graph` one way: the result (or what it raised),
    or every item streamed and what the stream raised. Items of one step are compared in
    order except that, for `updates` of tasks running concurrently, completion order is
    not LangGraph's to fix: those are sorted when `kwargs` asks (`sort=True`)."""
    sort = kwargs.pop("sort", False)
    if how == "invoke":
        return outcome(lambda: graph.invoke(input, **kwargs))
    if how == "ainvoke":
        return outcome(lambda: asyncio.run(graph.ainvoke(input, **kwargs)))
    if how == "stream":
        items, raised = drain(graph.stream(input, stream_mode=modes, **kwargs))
    else:
        async def collect() -> tuple[list[Any], Raised | None]:
            out: list[Any] = []
            try:
                async for item in graph.astream(input, stream_mode=modes, **kwargs):
                    out.append(item)
            except Exception as e:  # noqa: BLE001 - compared
                return out, Raised.of(e)
            return out, None

        items, raised = asyncio.run(collect())
    items = normalise(items)
    if sort:
        items = sorted(items, key=sort_key)
    return items, raised


def same(build: Callable[[Lib], Any], how: str, candidate: Lib, oracle: Lib,
         **kwargs: Any) -> Any:
    """Asserts that the graph `build(lib)` runs alike on both; returns LangGraph's outcome."""
    expected = run(build(oracle), how, **kwargs)
    got = run(build(candidate), how, **kwargs)
    assert got == expected
    return expected


# ------------------------------------------------------------------------ error handlers


@pytest.mark.parametrize(("is_async", "how"), [
    *((False, how) for how in HOWS),
    *((True, how) for how in ("ainvoke", "astream")),  # LangGraph: async nodes only there
])
def test_handler_recovers_and_the_nodes_edges_are_not_taken(
        how: str, is_async: bool, candidate: Lib, oracle: Lib) -> None:
    """test_retry.py::test_graph_error_handler_runs_after_retry_exhaustion (and the handler's
    update standing in for the node's, its `NodeError`, under both kinds of node)."""

    def build(lib: Lib) -> Any:
        def failing(state: State) -> dict[str, Any]:
            raise ValueError("boom")

        async def afailing(state: State) -> dict[str, Any]:
            raise ValueError("boom")

        def handler(state: State, error: lib.errors.NodeError) -> dict[str, Any]:
            return {"x": f"{error.node}:{error.error!r}", "log": ["handled"]}

        async def ahandler(state: State, error: lib.errors.NodeError) -> dict[str, Any]:
            return handler(state, error)

        return (lib.StateGraph(State)
                .add_node("failing", afailing if is_async else failing,
                          error_handler=ahandler if is_async else handler)
                .add_node("after", lambda s: {"log": ["after"]})
                .add_edge(lib.START, "failing")
                .add_edge("failing", "after")
                .compile())

    expected = same(build, how, candidate, oracle)
    assert "after" not in repr(expected)


@pytest.mark.parametrize("how", HOWS)
def test_handler_routes_with_a_command(how: str, candidate: Lib, oracle: Lib) -> None:
    """test_retry.py::test_graph_error_handler_can_route_with_command"""

    def build(lib: Lib) -> Any:
        attempts = []

        def failing(state: State) -> dict[str, Any]:
            attempts.append(1)
            raise ValueError("Always fails")

        def handler(state: State) -> Any:
            return lib.Command(update={"x": f"handled after {len(attempts)}"}, goto="next")

        policy = lib.RetryPolicy(max_attempts=3, initial_interval=0.0, jitter=False,
                                 retry_on=ValueError)
        return (lib.StateGraph(State)
                .add_node("failing", failing, retry_policy=policy, error_handler=handler)
                .add_node("next", lambda s: {"log": [s["x"]]})
                .add_edge(lib.START, "failing")
                .compile())

    expected = same(build, how, candidate, oracle)
    assert "handled after 3" in repr(expected)


@pytest.mark.parametrize("how", HOWS)
def test_handler_failure_fails_the_run(how: str, candidate: Lib, oracle: Lib) -> None:
    """test_retry.py::test_graph_error_handler_failure_fails_run"""

    def build(lib: Lib) -> Any:
        def failing(state: State) -> dict[str, Any]:
            raise ValueError("Always fails")

        def handler(state: State) -> dict[str, Any]:
            raise RuntimeError("handler failed")

        return (lib.StateGraph(State)
                .add_node("failing", failing, error_handler=handler)
                .add_edge(lib.START, "failing")
                .compile())

    expected = same(build, how, candidate, oracle)
    assert "handler failed" in repr(expected)


@pytest.mark.parametrize("how", HOWS)
def test_resume_after_a_handler_failure_runs_the_handler_not_the_node(
        how: str, candidate: Lib, oracle: Lib) -> None:
    """test_retry.py::test_error_handler_resumes_after_crash: with a checkpointer, a handler
    that fails keeps the node's failure in the thread; resuming runs the handler again (told
    the node's failure), never the node. The thread's pending tasks after the failure and
    the states after the resume are compared too. (A sibling task still running when the
    handler fails is cancelled by LangGraph where it can, and kept running by ferrograph's
    sync crew: not compared.)"""
    from langgraph.checkpoint.memory import InMemorySaver

    def outcome_of(lib: Lib) -> Any:
        calls: list[str] = []
        failing_handler = [True]

        def failing(state: State) -> dict[str, Any]:
            calls.append("failing")
            raise RuntimeError("boom")

        def handler(state: State, error: Any) -> dict[str, Any]:
            calls.append(f"handler:{error.node}:{error.error}")
            if failing_handler[0]:
                raise RuntimeError(f"handler of {error.node} crashed")
            return {"log": [f"recovered {error.node}"]}

        graph = (lib.StateGraph(State).add_node("failing", failing, error_handler=handler)
                 .add_edge(lib.START, "failing")
                 .compile(checkpointer=InMemorySaver()))
        config = {"configurable": {"thread_id": "t"}}
        first = run(graph, how, config=config, sort=True)
        state = graph.get_state(config)
        pending = sorted((t.name, repr(t.error), normalise(t.result)) for t in state.tasks)
        failing_handler[0] = False
        resumed = run(graph, how, input=None, config=config, sort=True)
        return {"first": first, "pending": pending, "resumed": resumed,
                "values": graph.get_state(config).values, "calls": calls}

    expected = outcome_of(oracle)
    assert outcome_of(candidate) == expected
    assert expected["calls"].count("failing") == 1


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("nested", [False, True])
def test_handler_failure_is_noted_in_the_handlers_task(
        how: str, nested: bool, candidate: Lib, oracle: Lib) -> None:
    """A failing handler's error carries LangGraph's notes: its own task's (not the failed
    node's), then the enclosing tasks'."""

    def build(lib: Lib) -> Any:
        def failing(state: State) -> dict[str, Any]:
            raise ValueError("boom")

        def handler(state: State) -> dict[str, Any]:
            raise RuntimeError("handler failed")

        graph = (lib.StateGraph(State)
                 .add_node("failing", failing, error_handler=handler)
                 .add_edge(lib.START, "failing")
                 .compile())
        if nested:
            graph = (lib.StateGraph(State).add_node("sub", graph)
                     .add_edge(lib.START, "sub").compile())
        return graph

    def notes(graph: Any) -> Any:
        try:
            run_raw(graph, how)
        except RuntimeError as e:
            return normalise(getattr(e, "__notes__", None))
        return None

    expected = notes(build(oracle))
    assert expected is not None
    assert notes(build(candidate)) == expected


def run_raw(graph: Any, how: str) -> None:
    """Runs `graph` one way, letting what it raises through."""
    if how == "invoke":
        graph.invoke(INPUT)
    elif how == "stream":
        list(graph.stream(INPUT))
    elif how == "ainvoke":
        asyncio.run(graph.ainvoke(INPUT))
    else:
        async def collect() -> None:
            async for _ in graph.astream(INPUT):
                pass

        asyncio.run(collect())


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("push", [False, True])
def test_handler_runs_as_a_task_of_its_own(
        how: str, push: bool, candidate: Lib, oracle: Lib) -> None:
    """What the handler sees of its task: LangGraph's `langgraph_*` metadata for it."""

    def build(lib: Lib) -> Any:
        def failing(state: State) -> dict[str, Any]:
            raise ValueError("boom")

        def handler(state: State) -> dict[str, Any]:
            metadata = lib.get_config()["metadata"]
            seen = {k: v for k, v in metadata.items() if k.startswith("langgraph_")}
            return {"log": [repr(sorted(seen.items()))]}

        builder = lib.StateGraph(State).add_node("failing", failing, error_handler=handler)
        if push:
            builder.add_conditional_edges(lib.START, lambda s: [lib.Send("failing", s)])
        else:
            builder.add_edge(lib.START, "failing")
        return builder.compile()

    same(build, how, candidate, oracle)


@pytest.mark.parametrize("how", HOWS)
def test_handlers_route_to_the_failed_nodes_own(how: str, candidate: Lib, oracle: Lib) -> None:
    """test_retry.py::test_node_error_handlers_route_to_matching_handler; the failed node's
    conditional edges are not taken either."""

    def build(lib: Lib) -> Any:
        def fail_a(state: State) -> dict[str, Any]:
            raise ValueError("a failed")

        def fail_b(state: State) -> dict[str, Any]:
            raise RuntimeError("b failed")

        def handler_a(state: State, error: lib.errors.NodeError) -> dict[str, Any]:
            return {"log": [f"a:{error.node}"]}

        def handler_b(state: State, error: lib.errors.NodeError) -> dict[str, Any]:
            return {"log": [f"b:{error.node}"]}

        return (lib.StateGraph(State)
                .add_node("route", lambda s: {"log": ["route"]})
                .add_node("fail_a", fail_a, error_handler=handler_a)
                .add_node("fail_b", fail_b, error_handler=handler_b)
                .add_node("never", lambda s: {"log": ["never"]})
                .add_edge(lib.START, "route")
                .add_conditional_edges("route", lambda s: ["fail_a", "fail_b"])
                .add_conditional_edges("fail_a", lambda s: "never")
                .compile())

    expected = same(build, how, candidate, oracle, sort=True)
    assert "never'" not in repr(expected)


@pytest.mark.parametrize("how", HOWS)
def test_handler_of_a_send_task_gets_its_arg(how: str, candidate: Lib, oracle: Lib) -> None:
    """A pushed task's handler is given the `Send` argument, as LangGraph gives it."""

    def build(lib: Lib) -> Any:
        def failing(state: State) -> dict[str, Any]:
            raise ValueError(state["x"])

        def handler(state: State, error: lib.errors.NodeError) -> dict[str, Any]:
            return {"log": [f"{state['x']}:{error.error}"]}

        def fan_out(state: State) -> list[Any]:
            return [lib.Send("failing", {"x": f"s{i}", "log": []}) for i in range(3)]

        return (lib.StateGraph(State)
                .add_node("failing", failing, error_handler=handler)
                .add_conditional_edges(lib.START, fan_out)
                .compile())

    same(build, how, candidate, oracle, sort=True)


@pytest.mark.parametrize("how", HOWS)
def test_node_without_a_handler_still_fails(how: str, candidate: Lib, oracle: Lib) -> None:
    """test_retry.py::test_node_without_error_handler_still_fails_run (beside a handled one)"""

    def build(lib: Lib) -> Any:
        def failing(state: State) -> dict[str, Any]:
            raise ValueError("unhandled")

        return (lib.StateGraph(State)
                .add_node("handled", failing, error_handler=lambda s: {"log": ["h"]})
                .add_node("unhandled", failing)
                .add_edge(lib.START, "handled")
                .add_edge("handled", "unhandled")
                .add_edge(lib.START, "unhandled")
                .compile())

    expected = same(build, how, candidate, oracle, modes=["values"])
    assert "unhandled" in repr(expected)


@pytest.mark.parametrize("how", HOWS)
def test_handler_catches_a_subgraphs_failure(how: str, candidate: Lib, oracle: Lib) -> None:
    """test_retry.py::test_graph_error_handler_handles_subgraph_internal_failure, and a
    handler inside the subgraph (streamed with subgraphs=True)."""

    def build(lib: Lib) -> Any:
        def boom(state: State) -> dict[str, Any]:
            raise ValueError("subgraph boom")

        inner = (lib.StateGraph(State)
                 .add_node("inner_ok", boom, error_handler=lambda s: {"log": ["inner"]})
                 .add_node("inner_fail", boom)
                 .add_edge(lib.START, "inner_ok")
                 .add_edge("inner_ok", "inner_fail")
                 .add_edge(lib.START, "inner_fail")
                 .compile())

        def parent_handler(state: State, error: lib.errors.NodeError) -> dict[str, Any]:
            return {"x": f"{error.node}:{error.error}", "log": ["parent"]}

        return (lib.StateGraph(State)
                .add_node("sub", inner, error_handler=parent_handler)
                .add_edge(lib.START, "sub")
                .compile())

    same(build, how, candidate, oracle)
    if how in ("stream", "astream"):
        same(build, how, candidate, oracle, modes=["values"], subgraphs=True)


@pytest.mark.parametrize("how", ["stream", "astream"])
@pytest.mark.parametrize("mode", ["tasks", "debug", "custom"])
def test_handled_failure_in_tasks_and_debug_items(
        how: str, mode: str, candidate: Lib, oracle: Lib) -> None:
    """test_retry.py::test_graph_error_handler_recovers_on_the_executor_path: the node's
    failure and the handler's result as LangGraph streams them."""

    def build(lib: Lib) -> Any:
        def failing(state: State) -> dict[str, Any]:
            lib.get_stream_writer()("before")
            raise ValueError("boom")

        def handler(state: State) -> Any:
            return lib.Command(update={"x": "handled"}, goto=lib.END)

        return (lib.StateGraph(State)
                .add_node("failing", failing, error_handler=handler)
                .add_edge(lib.START, "failing")
                .compile())

    same(build, how, candidate, oracle, modes=[mode, "values", "updates"])


@pytest.mark.parametrize("how", ["ainvoke", "astream"])
def test_handler_gets_a_nodes_own_cancellation(how: str, candidate: Lib, oracle: Lib) -> None:
    """A node raising asyncio.CancelledError itself fails with NodeCancelledError, which its
    error handler handles, as in LangGraph."""

    def build(lib: Lib) -> Any:
        async def cancels(state: State) -> dict[str, Any]:
            raise asyncio.CancelledError()

        def handler(state: State, error: lib.errors.NodeError) -> dict[str, Any]:
            return {"log": [type(error.error).__name__, str(error.error)]}

        return (lib.StateGraph(State)
                .add_node("cancels", cancels, error_handler=handler)
                .add_edge(lib.START, "cancels")
                .compile())

    expected = same(build, how, candidate, oracle)
    assert "NodeCancelledError" in repr(expected)


def test_handler_node_name_collision(candidate: Lib, oracle: Lib) -> None:
    """add_node refuses a handler whose generated node name is taken, as LangGraph does."""

    def build(lib: Lib) -> Any:
        return (lib.StateGraph(State)
                .add_node("__error_handler__a", lambda s: {})
                .add_node("a", lambda s: {}, error_handler=lambda s: {}))

    assert outcome(lambda: build(candidate)) == outcome(lambda: build(oracle))


# ------------------------------------------------------------------------ set_node_defaults


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("order", ["before", "after"])
def test_default_error_handler_catches_every_node(
        how: str, order: str, candidate: Lib, oracle: Lib) -> None:
    """test_retry.py::test_set_node_defaults_error_handler_catches_all_nodes and
    test_set_node_defaults_chaining: set before or after the nodes are added."""

    def build(lib: Lib) -> Any:
        def fail(state: State) -> dict[str, Any]:
            raise RuntimeError(f"boom {len(state['log'])}")

        def handler(state: State, error: lib.errors.NodeError) -> dict[str, Any]:
            return {"log": [f"{error.node}: {error.error}"]}

        builder = lib.StateGraph(State)
        if order == "before":
            builder = builder.set_node_defaults(error_handler=handler)
        builder = (builder
                   .add_node("a", fail)
                   .add_node("b", fail)
                   .add_node("c", lambda s: {"log": ["c"]})
                   .add_edge(lib.START, "a")
                   .add_edge(lib.START, "c")
                   .add_edge("c", "b"))
        if order == "after":
            builder = builder.set_node_defaults(error_handler=handler)
        return builder.compile()

    same(build, how, candidate, oracle, sort=True)


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("case", ["node_wins", "node_handler_fails", "default_fails"])
def test_default_error_handler_and_a_nodes_own(
        how: str, case: str, candidate: Lib, oracle: Lib) -> None:
    """test_retry.py::test_set_node_defaults_error_handler_overridden_by_node_handler,
    ..._skips_per_node_handler_nodes and ..._failure_fails_run"""

    def build(lib: Lib) -> Any:
        def fail(state: State) -> dict[str, Any]:
            raise RuntimeError("node boom")

        def own(state: State) -> dict[str, Any]:
            if case == "node_handler_fails":
                raise RuntimeError("handler boom")
            return {"log": ["own"]}

        def default(state: State) -> dict[str, Any]:
            if case == "default_fails":
                raise RuntimeError("default handler boom")
            return {"log": ["default"]}

        builder = lib.StateGraph(State).set_node_defaults(error_handler=default)
        if case == "default_fails":
            builder.add_node("a", fail)
        else:
            builder.add_node("a", fail, error_handler=own)
        return builder.add_edge(lib.START, "a").compile()

    same(build, how, candidate, oracle)


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("own_policy", [False, True])
def test_default_retry_policy(how: str, own_policy: bool, candidate: Lib, oracle: Lib) -> None:
    """test_retry.py::test_set_node_defaults_retry_policy, ..._per_node_wins and
    ..._combined_retry_and_error_handler: retries (a handler's too) are spent first."""

    def build(lib: Lib) -> Any:
        attempts: list[str] = []

        def flaky(state: State) -> dict[str, Any]:
            attempts.append("a")
            raise ValueError(f"attempt {len(attempts)}")

        def handler(state: State, error: lib.errors.NodeError) -> dict[str, Any]:
            attempts.append("h")
            if attempts.count("h") < 2:
                raise ValueError("handler flaky")
            return {"log": [f"{error.error} after {attempts}"]}

        def policy(n: int) -> Any:
            return lib.RetryPolicy(max_attempts=n, initial_interval=0.0, jitter=False,
                                   retry_on=ValueError)

        builder = (lib.StateGraph(State)
                   .set_node_defaults(retry_policy=policy(3), error_handler=handler))
        if own_policy:
            builder.add_node("a", flaky, retry_policy=policy(2))
        else:
            builder.add_node("a", flaky)
        return builder.add_edge(lib.START, "a").compile()

    same(build, how, candidate, oracle)


def test_default_error_handler_name_collision(candidate: Lib, oracle: Lib) -> None:
    """test_retry.py::test_set_node_defaults_error_handler_collides_with_user_node"""

    def build(lib: Lib) -> Any:
        return (lib.StateGraph(State)
                .set_node_defaults(error_handler=lambda s: {})
                .add_node("__default_error_handler__", lambda s: s)
                .add_edge(lib.START, "__default_error_handler__")
                .compile())

    assert outcome(lambda: build(candidate)) == outcome(lambda: build(oracle))


# ------------------------------------------------------------------------ timeouts

ASYNC_HOWS = ["ainvoke", "astream"]


def timeout_outcome(graph: Any, how: str, input: Any = INPUT) -> Any:
    """`run`'s outcome, with a `NodeTimeoutError` (whose message tells the elapsed time)
    reduced to what LangGraph fixes: its class, node, kind and timeouts."""
    if how == "ainvoke":
        call: Callable[[], Any] = lambda: asyncio.run(graph.ainvoke(input))  # noqa: E731
    elif how == "astream":
        async def collect() -> list[Any]:
            return [item async for item in graph.astream(input, stream_mode=MODES)]

        call = lambda: asyncio.run(collect())  # noqa: E731
    elif how == "invoke":
        call = lambda: graph.invoke(input)  # noqa: E731
    else:
        call = lambda: list(graph.stream(input, stream_mode=MODES))  # noqa: E731
    try:
        return normalise(call())
    except Exception as e:  # noqa: BLE001 - compared
        if type(e).__name__ == "NodeTimeoutError":
            return ("NodeTimeoutError", e.node, e.kind, e.timeout, e.run_timeout,
                    e.idle_timeout)
        return Raised.of(e)


def same_timeout(build: Callable[[Lib], Any], how: str, candidate: Lib, oracle: Lib) -> Any:
    expected = timeout_outcome(build(oracle), how)
    assert timeout_outcome(build(candidate), how) == expected
    return expected


async def hang(state: State) -> dict[str, Any]:
    await asyncio.sleep(WAIT)  # cancelled by the timeout long before
    return {"log": ["too late"]}


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("timeout", ["seconds", "timedelta", "run", "idle", "both"])
def test_node_timeout(how: str, timeout: str, candidate: Lib, oracle: Lib) -> None:
    """test_retry.py::test_state_graph_add_node_timeout_e2e; under invoke/stream LangGraph
    refuses a timed task (sync execution cannot be cancelled)."""
    import datetime

    def build(lib: Lib) -> Any:
        policy = {"seconds": 0.05, "timedelta": datetime.timedelta(milliseconds=50),
                  "run": types_of(lib).TimeoutPolicy(run_timeout=0.05),
                  "idle": types_of(lib).TimeoutPolicy(idle_timeout=0.05),
                  "both": types_of(lib).TimeoutPolicy(run_timeout=0.05, idle_timeout=WAIT),
                  }[timeout]
        return (lib.StateGraph(State)
                .add_node("slow", hang, timeout=policy)
                .add_edge(lib.START, "slow")
                .compile())

    expected = same_timeout(build, how, candidate, oracle)
    assert "NodeTimeoutError" in repr(expected) or "only supported for async" in repr(expected)


@pytest.mark.parametrize("how", ASYNC_HOWS)
def test_node_in_time_is_not_cut(how: str, candidate: Lib, oracle: Lib) -> None:
    """A timed node that ends in time (heartbeats and custom items on the way) is not cut."""

    def build(lib: Lib) -> Any:
        async def quick(state: State, runtime: lib.Runtime) -> dict[str, Any]:
            runtime.heartbeat()
            runtime.stream_writer("progress")
            return {"log": ["quick"]}

        return (lib.StateGraph(State)
                .add_node("quick", quick,
                          timeout=types_of(lib).TimeoutPolicy(run_timeout=WAIT,
                                                              idle_timeout=WAIT))
                .add_edge(lib.START, "quick")
                .compile())

    same_timeout(build, how, candidate, oracle)


@pytest.mark.parametrize("how", ASYNC_HOWS)
@pytest.mark.parametrize("refresh_on", ["auto", "heartbeat"])
def test_idle_timeout_and_a_models_tokens(refresh_on: str, how: str, candidate: Lib,
                                          oracle: Lib) -> None:
    """test_retry.py::test_idle_timeout_resets_on_message_stream_callbacks: under
    `refresh_on="auto"` a model's tokens are progress, so a node streaming for longer than
    its idle timeout (4 tokens 1 s apart, idle timeout 2 s: margins far past the machine's
    noise) is not cut; under `"heartbeat"` it is."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage, AIMessageChunk
    from langchain_core.outputs import ChatGenerationChunk

    class SlowTokens(GenericFakeChatModel):
        async def _astream(self, messages: Any, stop: Any = None, run_manager: Any = None,
                           **kwargs: Any) -> Any:
            for i in range(4):
                if i:
                    await asyncio.sleep(1.0)
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=str(i)))
                if run_manager is not None:
                    await run_manager.on_llm_new_token(str(i), chunk=chunk)
                yield chunk

    def build(lib: Lib) -> Any:
        model = SlowTokens(messages=iter([AIMessage(content="unused")]))

        async def call_model(state: State) -> dict[str, Any]:
            return {"log": [chunk.content async for chunk in model.astream("hi")]}

        return (lib.StateGraph(State)
                .add_node("call_model", call_model, timeout=types_of(lib).TimeoutPolicy(
                    idle_timeout=2.0, refresh_on=refresh_on))
                .add_edge(lib.START, "call_model")
                .compile())

    expected = same_timeout(build, how, candidate, oracle)
    assert ("NodeTimeoutError" in repr(expected)) == (refresh_on == "heartbeat")


@pytest.mark.parametrize("how", ASYNC_HOWS)
def test_send_timeout_replaces_the_nodes(how: str, candidate: Lib, oracle: Lib) -> None:
    """test_retry.py::test_send_timeout_overrides_target_node_timeout"""

    def build(lib: Lib) -> Any:
        types = types_of(lib)

        def route(state: State) -> list[Any]:
            return [lib.Send("slow", state, timeout=types.TimeoutPolicy(idle_timeout=0.05))]

        return (lib.StateGraph(State)
                .add_node("slow", hang, timeout=types.TimeoutPolicy(idle_timeout=WAIT))
                .add_conditional_edges(lib.START, route)
                .compile())

    expected = same_timeout(build, how, candidate, oracle)
    assert expected[:3] == ("NodeTimeoutError", "slow", "idle")


@pytest.mark.parametrize("how", HOWS)
def test_timeout_composes_with_retry_and_error_handler(
        how: str, candidate: Lib, oracle: Lib) -> None:
    """test_retry.py::test_state_graph_add_node_timeout_composes_with_retry; a timeout
    that outlasts the retries goes to the error handler."""

    def build(lib: Lib) -> Any:
        attempts: list[int] = []

        async def flaky(state: State) -> dict[str, Any]:
            attempts.append(1)
            if len(attempts) < 2:
                await asyncio.sleep(WAIT)
            return {"log": [f"attempt {len(attempts)}"]}

        def handler(state: State, error: lib.errors.NodeError) -> dict[str, Any]:
            return {"log": [f"{error.node}: {type(error.error).__name__}"]}

        policy = lib.RetryPolicy(max_attempts=3, initial_interval=0.0, jitter=False,
                                 retry_on=lib.errors.NodeTimeoutError)
        return (lib.StateGraph(State)
                .add_node("flaky", flaky, timeout=0.05, retry_policy=policy)
                .add_node("hang", hang, timeout=0.05, error_handler=handler)
                .add_edge(lib.START, "flaky")
                .add_edge("flaky", "hang")
                .compile())

    same_timeout(build, how, candidate, oracle)


def test_timeout_validation(candidate: Lib, oracle: Lib) -> None:
    """test_retry.py::test_timeout_validation_is_eager_across_apis,
    test_state_graph_compile_rejects_sync_node_timeout, test_send_timeout_round_trips...:
    what is refused, and when; `Send` and `TimeoutPolicy` as values."""
    import datetime

    def sync(state: State) -> dict[str, Any]:
        return {}

    def cases(lib: Lib) -> list[Any]:
        types = types_of(lib)
        return [
            outcome(lambda: lib.StateGraph(State).add_node("a", sync, timeout=0)),
            outcome(lambda: lib.Send("a", {}, timeout=-1)),
            outcome(lambda: types.TimeoutPolicy.coerce(types.TimeoutPolicy(idle_timeout=0))),
            outcome(lambda: types.TimeoutPolicy.coerce(types.TimeoutPolicy(refresh_on="x"))),
            outcome(lambda: (lib.StateGraph(State).add_node("a", sync, timeout=1)
                             .add_edge(lib.START, "a").compile())),
            outcome(lambda: (lib.StateGraph(State).set_node_defaults(timeout=1)
                             .add_node("a", sync).add_edge(lib.START, "a").compile())),
            repr(lib.Send("a", 1, timeout=datetime.timedelta(seconds=2))),
            repr(lib.Send("a", 1)),
            lib.Send("a", 1, timeout=2) == lib.Send("a", 1, timeout=2.0),
            lib.Send("a", 1, timeout=2) == lib.Send("a", 1),
            repr(types.TimeoutPolicy.coerce(3)),
            repr(types.TimeoutPolicy.coerce(types.TimeoutPolicy(idle_timeout=1))),
            types.TimeoutPolicy.coerce(None),
        ]

    assert cases(candidate) == cases(oracle)


@pytest.mark.parametrize("how", ASYNC_HOWS)
@pytest.mark.parametrize("own", [False, True])
def test_default_timeout(how: str, own: bool, candidate: Lib, oracle: Lib) -> None:
    """test_retry.py::test_set_node_defaults_timeout and ..._timeout_per_node_wins"""

    def build(lib: Lib) -> Any:
        async def quick(state: State) -> dict[str, Any]:
            await asyncio.sleep(0)
            return {"log": ["quick"]}

        builder = lib.StateGraph(State).set_node_defaults(timeout=0.05)
        if own:
            builder.add_node("node", quick, timeout=WAIT)
        else:
            builder.add_node("node", hang)
        return builder.add_edge(lib.START, "node").compile()

    same_timeout(build, how, candidate, oracle)


@pytest.fixture
def release() -> Any:
    """Makes threading.Events that blocked sync nodes wait on; all set when the test ends."""
    import threading

    events: list[threading.Event] = []

    def make() -> threading.Event:
        events.append(threading.Event())
        return events[-1]

    yield make
    for event in events:
        event.set()


@pytest.mark.parametrize("how", HOWS)
def test_step_timeout(how: str, release: Any, candidate: Lib, oracle: Lib) -> None:
    """test_pregel_async.py::test_step_timeout_on_stream_hang: a step that takes longer
    than the graph's `step_timeout` fails the run with TimeoutError (its async tasks
    cancelled). A sync node cannot be stopped: LangGraph waits for it before raising
    (ferrograph does not), so LangGraph's is released after a while, ferrograph's when
    the test ends."""
    import threading

    def build(lib: Lib) -> Any:
        event = release()
        if lib is oracle and how not in ASYNC_HOWS:
            threading.Timer(0.5, event.set).start()

        def blocked(state: State) -> dict[str, Any]:
            event.wait(WAIT)
            return {"log": ["released"]}

        async def quick(state: State) -> dict[str, Any]:
            return {"log": ["quick"]}

        slow = hang if how in ASYNC_HOWS else blocked
        graph = (lib.StateGraph(State)
                 .add_node("slow", slow)
                 .add_node("quick", quick if how in ASYNC_HOWS else (lambda s: {"log": ["q"]}))
                 .add_edge(lib.START, "slow")
                 .add_edge(lib.START, "quick")
                 .compile())
        graph.step_timeout = 0.05
        return graph

    expected = same_timeout(build, how, candidate, oracle)
    assert "TimeoutError" in repr(expected)
