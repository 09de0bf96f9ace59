"""Calling user code: nodes and routers, with the parameters they ask for.

`NodeRunner` calls one node (sync or async, a function or a runnable, with its retry
policy) inside the task's config; `BranchSpec` calls a conditional edge's routing function
and maps what it returns to destinations; `injected_params` decides, once per function,
which of `config`, `writer`, `runtime` and `store` it is given, under LangGraph's rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import time
import warnings
from collections.abc import Awaitable, Hashable, Iterator
from types import UnionType
from typing import Any, Optional, Union, get_args, get_origin

from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config

from ferrograph._core import new_task_id
from ferrograph._schema import (
    ROOT,
    make_coercer,
    managed_values,
    read_managed,
    read_schema,
    root_value,
)
from ferrograph.config import (
    CONFIG_KEY_NODE_ERROR,
    CONFIG_KEY_RUNTIME,
    CONFIG_KEY_TASK,
    CONFIG_KEY_TASK_ID,
    CONFIG_KEY_TIMEOUT,
)
from ferrograph.errors import (
    GraphBubbleUp,
    NodeCancelledError,
    NodeError,
    ParentCommand,
)
from ferrograph.pregel._errors import mark_handler_failure, note_task_error, skip_next_note
from ferrograph.pregel._foreign import (
    foreign_task_config,
    from_langgraph,
    is_langgraph_callable,
    own_signal,
    reads_state_on_send,
)
from ferrograph.pregel._interop import is_langgraph_graph, langgraph_task_config
from ferrograph.pregel._retry import retry_policy_for, timed
from ferrograph.pregel._trace import ainvoke_steps, invoke_steps, sequence_steps
from ferrograph.pregel._write import (
    PUSHED_WRITES,
    Handled,
    TimedArg,
    sync_timeout_unsupported,
    with_pushed,
)
from ferrograph.runtime import task_runtime
from ferrograph.types import Command, RetryPolicy, Send, StreamWriter, TimeoutPolicy


@contextlib.contextmanager
def _foreign_call(config: RunnableConfig) -> Iterator[None]:
    """Around a call of LangGraph's own node code: `config` is the current one, and a signal
    it raises (LangGraph's `GraphInterrupt`, `ParentCommand`, ...) becomes ferrograph's."""
    token = var_child_runnable_config.set(config)
    try:
        yield
    except GraphBubbleUp:
        raise
    except Exception as e:
        if (signal := own_signal(e)) is e:
            raise
        raise signal from None
    finally:
        var_child_runnable_config.reset(token)


def _failed_before(config: RunnableConfig) -> BaseException | None:
    """The node's failure saved in the thread, when its error handler failed too: a resume
    runs the handler again, not the node (see `Persistence.name_tasks`)."""
    task = config["configurable"].get(CONFIG_KEY_TASK)
    return None if task is None else task.failed_before


def raised_by_the_node() -> bool:
    """Whether the `CancelledError` being handled on the loop was raised by the node's own
    code rather than by a cancellation of its task (the caller's, or the run stopping its
    siblings), told apart as LangGraph does: cancelling a task counts in `cancelling()`.
    Before Python 3.11 there is no telling: it is a cancellation."""
    task = asyncio.current_task()
    return task is not None and getattr(task, "cancelling", None) is not None \
        and task.cancelling() == 0


_EMPTY = inspect.Parameter.empty
_INJECTABLE: dict[str, tuple[Any, ...] | None] = {
    "config": (RunnableConfig, "RunnableConfig", Optional[RunnableConfig],  # noqa: UP045
               "Optional[RunnableConfig]", _EMPTY),
    "writer": (StreamWriter, "StreamWriter", _EMPTY),
    "runtime": None,
    "store": ("BaseStore", "Optional[BaseStore]", _EMPTY),
    "error": (NodeError, "NodeError"),
}
"""The parameters a node (or router) is given by name, and the annotations under which it
is (None: any). As in LangGraph, a parameter annotated otherwise is left to its default."""
_INJECTABLE_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def injected_params(fn: Any) -> tuple[str, ...]:
    """The parameters of `_INJECTABLE` that `fn` is given: named so, passable by keyword
    and annotated as LangGraph expects. A `config` annotated with another type is not
    given, with LangGraph's warning."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return ()
    found = []
    for name, expected in _INJECTABLE.items():
        param = params.get(name)
        if param is None or param.kind not in _INJECTABLE_KINDS:
            continue
        annotation = param.annotation
        if expected is not None and annotation not in expected and not (
                name == "store" and _is_store_class(annotation)):
            if name == "config" and annotation is not _EMPTY:
                warnings.warn("The 'config' parameter should be typed as 'RunnableConfig' or "
                              f"'RunnableConfig | None', not '{annotation}'. ",
                              UserWarning, stacklevel=4)
            continue
        found.append(name)
    return tuple(found)


def injected_values(params: tuple[str, ...], config: RunnableConfig) -> dict[str, Any]:
    """The keyword arguments for `params` (from `injected_params`) in a task's `config`."""
    runtime = config["configurable"][CONFIG_KEY_RUNTIME]
    values = {"config": config, "writer": runtime.stream_writer, "store": runtime.store}
    if "runtime" in params:  # the run's, with the task's execution info
        values["runtime"] = task_runtime(config)
    if "error" in params:  # an error handler's failure (None for any other node, as LangGraph)
        values["error"] = config["configurable"].get(CONFIG_KEY_NODE_ERROR)
    return {param: values[param] for param in params}


def _node_task(config: RunnableConfig) -> Any:
    return config["configurable"].get(CONFIG_KEY_TASK)


def _traced_retry(config: RunnableConfig) -> Any:
    """With user callbacks: the task's hook that opens its next attempt's chain run."""
    return getattr(_node_task(config), "on_retry", None)


def _node_run(config: RunnableConfig) -> Any:
    """With user callbacks: the chain run of the node's task (None: not traced)."""
    return getattr(_node_task(config), "node_run", None)


def _forget_pushed(config: RunnableConfig) -> None:
    if PUSHED_WRITES:
        PUSHED_WRITES.pop(config["configurable"].get(CONFIG_KEY_TASK_ID), None)


def _with_own_pushed(config: RunnableConfig, output: Any) -> Any:
    """`output` with what was pushed (`push_message`) under the task's id first: an error
    handler's pushes, kept inside its `Handled` result."""
    return with_pushed(config["configurable"].get(CONFIG_KEY_TASK_ID), output)


def _attempt_config(config: RunnableConfig, attempt: int, first_time: float) -> RunnableConfig:
    """The task's config for one attempt under a retry policy: its runtime's execution info
    numbers the attempt, as LangGraph's does."""
    configurable = config["configurable"]
    runtime = task_runtime(config, attempt, first_time)
    return {**config, "configurable": {**configurable, CONFIG_KEY_RUNTIME: runtime}}


def _is_store_class(annotation: Any) -> bool:
    """`BaseStore` or `BaseStore | None`: langgraph's class (not a dependency), by name."""
    union = get_origin(annotation) in (Union, UnionType)
    named = [a for a in (get_args(annotation) if union else (annotation,))
             if a is not type(None)]
    return len(named) == 1 and getattr(named[0], "__name__", None) == "BaseStore"


async def _await(awaitable: Any) -> Any:
    return await awaitable


def run_blocking(awaitable: Any) -> Any:
    """Runs `awaitable` to completion from synchronous code: on a fresh event loop, or, when
    this thread already runs one (sync code called from async code), on a short-lived
    thread of its own so that loop is not re-entered."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_await(awaitable))
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append((True, asyncio.run(_await(awaitable))))
        except BaseException as e:  # noqa: BLE001 - re-raised on the calling thread
            outcome.append((False, e))

    thread = threading.Thread(target=target, name="ferrograph-coroutine")
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if ok:
        return value
    raise value


class BranchSpec:
    """A conditional edge: a routing function, optionally its declared targets, and the
    schema it reads the state through (its first parameter's annotation, if a schema)."""

    def __init__(self, path: Any, ends: dict[Hashable, str] | None,
                 input_schema: Any = None) -> None:
        self.path = path
        self.ends = ends
        self.input_schema = input_schema
        self.inject = () if isinstance(path, Runnable) else injected_params(path)

    def route(self, state: Any, config: RunnableConfig) -> list[Any]:
        return self.destinations(self.decide(state, config))

    async def aroute(self, state: Any, config: RunnableConfig) -> list[Any]:
        """`route` on an event loop: an async routing function is awaited there."""
        return self.destinations(await self.adecide(state, config))

    def decide(self, state: Any, config: RunnableConfig) -> Any:
        """What the routing function returns (before `destinations` maps it)."""
        result = self._call(state, config)
        if inspect.isawaitable(result):
            result = run_blocking(result)
        return result

    async def adecide(self, state: Any, config: RunnableConfig) -> Any:
        if isinstance(self.path, Runnable):
            return await self.path.ainvoke(state, config)
        result = self._call(state, config)
        if inspect.isawaitable(result):
            result = await result
        return result

    def _call(self, state: Any, config: RunnableConfig) -> Any:
        if isinstance(self.path, Runnable):
            return self.path.invoke(state, config)
        if self.inject:
            return self.path(state, **injected_values(self.inject, config))
        return self.path(state)

    def destinations(self, result: Any) -> list[Any]:
        if not isinstance(result, (list, tuple)):
            result = [result]
        if not all(isinstance(r, (str, Send)) for r in result):
            result = [from_langgraph(r) for r in result]  # LangGraph's `Send`s, as ours
        if self.ends:
            result = [r if isinstance(r, Send) else self.ends[r] for r in result]
        return list(result)


class NodeRunner:
    """How one node is called: its input keys, injected parameters and retry policy."""

    def __init__(self, spec: Any, key_ids: dict[str, int], is_subgraph: bool,
                 root: bool = False) -> None:
        """`spec` is the builder's declaration of the node (`NodeSpec`); `is_subgraph`, whether
        its action is a compiled graph (run as a nested run of the calling one); `root`,
        whether the graph's state is its root key (the node is given the bare value)."""
        self.name = spec.name
        self.action = spec.action
        self.metadata = spec.metadata
        policy = getattr(spec, "trace_policy", None)
        self.trace_policy = policy if policy is not None and (
            policy.process_inputs is not None or policy.process_outputs is not None) else None
        self.is_runnable = isinstance(spec.action, Runnable)
        self.is_subgraph = is_subgraph
        self.is_langgraph = self.is_runnable and is_langgraph_graph(spec.action)
        """Whether the action is a graph compiled by LangGraph (see `_interop`)."""
        self.is_foreign = self.is_runnable and not self.is_langgraph and \
            is_langgraph_callable(spec.action)
        """Whether the action is LangGraph's own `RunnableCallable` (see `_foreign`)."""
        self.reads_state = self.is_foreign and reads_state_on_send(spec.action)
        """Whether its pushed tasks are given a way to read the state (`_foreign`)."""
        self.steps: list[Runnable] = (
            [] if not self.is_runnable or is_subgraph or self.is_langgraph or self.is_foreign
            else sequence_steps(spec.action))
        """A runnable node's steps as LangGraph runs them under callbacks: a sequence's
        steps one by one, each a child run of the node's (`seq:step:<n>`)."""
        self.step_count = len(self.steps) or 1
        """How many `seq:step` children the node's body has (its routers come after those
        and the node's writes)."""
        fn = spec.action if not self.is_runnable else None
        self.is_async = fn is not None and (
            inspect.iscoroutinefunction(fn)
            or inspect.iscoroutinefunction(type(fn).__call__)
        )
        self.on_loop = self.is_async or self.is_runnable
        """Under `ainvoke`/`astream`, runs as a task of the event loop (else on a worker)."""
        self.inject = spec.inject
        input_keys = [k.name for k in read_schema(spec.input_schema)] or list(key_ids)
        self.input_ids = [key_ids[k] for k in input_keys if k in key_ids]
        self.coerce = make_coercer(spec.input_schema)
        if root:
            self.input_ids = [key_ids[ROOT]]
            self.coerce = root_value
        self.managed = read_managed(spec.input_schema)
        """Managed keys of its input (see `ferrograph.managed`), computed per task."""
        policy = spec.retry_policy
        self.retry: tuple[RetryPolicy, ...] = (
            () if policy is None else (policy,) if isinstance(policy, RetryPolicy)
            else tuple(policy)
        )
        self.timeout: TimeoutPolicy | None = getattr(spec, "timeout", None)
        """Its timeout policy (only async nodes and runnables can have one)."""
        if self.on_loop:  # may be timed (its own policy, or a `Send`'s): see `_retry.timed`
            self._acall_untimed = self._acall_once
            self._acall_once = self._acall_timed  # type: ignore[method-assign]
            self._call_unchecked = self.call
            self.call = self._call_checked  # type: ignore[method-assign]
        if not self.retry:  # one coroutine frame less per task on the event loop
            self.acall = self._acall_once  # type: ignore[method-assign]
        self.error_handler_node: str | None = getattr(spec, "error_handler_node", None)
        """The node (LangGraph's `__error_handler__<name>`) that handles its failures."""
        self.handler: NodeRunner | None = None

    def attach_handler(self, handler: NodeRunner) -> None:
        """Makes `handler` (the runner of `error_handler_node`) handle this node's failures:
        `call`/`acall` then return its result as a `Handled` when the node fails (after its
        retries) with anything but a signal (`GraphBubbleUp`). Only such nodes pay for it."""
        self.handler = handler
        self._call_unhandled, self._acall_unhandled = self.call, self.acall
        self.call = self._call_handled  # type: ignore[method-assign]
        self.acall = self._acall_handled  # type: ignore[method-assign]

    def _call_handled(self, input: Any, config: RunnableConfig) -> Any:
        error = _failed_before(config)
        if error is None:
            try:
                return self._call_unhandled(input, config)
            except GraphBubbleUp:
                raise
            except Exception as e:  # noqa: BLE001 - handed to the handler below
                error = e
        _forget_pushed(config)  # what the failed node pushed is not applied
        handler = self.handler
        assert handler is not None
        config = self._handler_config(config, error)
        try:
            output = handler.call(input, config)
        except Exception as e:
            self._handler_failed(e, config)
            raise
        return Handled(handler.name, _with_own_pushed(config, output), error)

    async def _acall_handled(self, input: Any, config: RunnableConfig) -> Any:
        error = _failed_before(config)
        if error is None:
            try:
                return await self._acall_unhandled(input, config)
            except GraphBubbleUp:
                raise
            except asyncio.CancelledError:
                if not raised_by_the_node():
                    raise
                error = NodeCancelledError(self.name)  # handled, as in LangGraph
            except Exception as e:  # noqa: BLE001 - handed to the handler below
                error = e
        _forget_pushed(config)  # what the failed node pushed is not applied
        handler = self.handler
        assert handler is not None
        config = self._handler_config(config, error)
        try:
            if handler.on_loop:
                output = await handler.acall(input, config)
            else:
                output = await asyncio.get_running_loop().run_in_executor(
                    None, handler.call, input, config)
        except Exception as e:
            self._handler_failed(e, config)
            raise
        return Handled(handler.name, _with_own_pushed(config, output), error)

    def _call_checked(self, input: Any, config: RunnableConfig) -> Any:
        """`call` of a node that can be timed: as in LangGraph, a timed task cannot run
        synchronously (`invoke`/`stream`)."""
        if self.timeout is not None or type(input) is TimedArg \
                or CONFIG_KEY_TIMEOUT in config["configurable"]:
            raise sync_timeout_unsupported(self.name)
        return self._call_unchecked(input, config)

    def _acall_timed(self, input: Any, config: RunnableConfig) -> Awaitable[Any]:
        """One attempt, under the task's timeout policy (a `Send`'s, else the node's). Not a
        coroutine itself: it hands back the attempt's, so an untimed task (most) costs no
        coroutine frame more than before timeouts existed."""
        policy = config["configurable"].get(CONFIG_KEY_TIMEOUT) or self.timeout
        if policy is None:
            return self._acall_untimed(input, config)
        return timed(self.name, lambda c: self._acall_untimed(input, c), config, policy)

    def _handler_config(self, config: RunnableConfig, error: BaseException) -> RunnableConfig:
        """The config of the failed task's error handler, a task of its own as in LangGraph
        (its id, namespace under the failed task's, `langgraph_*` metadata), told the
        failure (`NodeError`, injected as its `error` parameter)."""
        name = self.handler.name  # type: ignore[union-attr]
        configurable = config["configurable"]
        metadata = config.get("metadata", {})
        task_id = new_task_id()
        parent_ns = configurable.get("checkpoint_ns")
        ns = f"{parent_ns}|{name}:{task_id}" if parent_ns else f"{name}:{task_id}"
        return {**config,
                "metadata": {**metadata, "langgraph_node": name,
                             "langgraph_triggers": ("__pregel_push",),
                             "langgraph_path": (*metadata.get("langgraph_path", ())[:3],
                                                "node_error_handler", False),
                             "langgraph_checkpoint_ns": ns},
                "configurable": {**configurable, "checkpoint_ns": ns,
                                 CONFIG_KEY_TASK_ID: task_id,
                                 CONFIG_KEY_NODE_ERROR: NodeError(self.name, error)}}

    def _handler_failed(self, e: BaseException, config: RunnableConfig) -> None:
        """Notes a failure of the error handler as LangGraph does: in the handler's task
        (the failed node's task then adds no note of its own), marked with the node's
        failure it was handling (saved with it, for a resume to hand the handler again)."""
        configurable = config["configurable"]
        note_task_error(e, self.handler.name,  # type: ignore[union-attr]
                        configurable[CONFIG_KEY_TASK_ID])
        skip_next_note(e)
        mark_handler_failure(e, configurable[CONFIG_KEY_NODE_ERROR])

    def read_input(self, run: Any, step: int, stop: int) -> Any:
        """The node's input in `run` at `step` (of a run whose recursion limit is `stop`)."""
        values = run.read(self.input_ids)
        if self.managed:
            values.update(managed_values(self.managed, step, stop))
        return self.coerce(values) if self.coerce is not None else values

    def call(self, input: Any, config: RunnableConfig) -> Any:
        """Calls the node on `input` with the task's `config` (retrying as its policy says)
        and returns what it returned."""
        if not self.retry:
            return self._call_once(input, config)
        attempt, first_time = 0, time.time()
        while True:
            attempt += 1
            try:
                return self._call_once(input, _attempt_config(config, attempt, first_time))
            except GraphBubbleUp:
                raise  # an interrupt or a drain is not a failure: never retried
            except Exception as exc:
                if (policy := retry_policy_for(self.retry, exc, attempt)) is None:
                    raise
                _forget_pushed(config)  # a failed attempt's pushed writes are not applied
                if (on_retry := _traced_retry(config)) is not None:
                    config = on_retry(config, exc)  # the next attempt's chain run
                time.sleep(policy.delay(attempt))

    def _call_once(self, input: Any, config: RunnableConfig) -> Any:
        token = var_child_runnable_config.set(config)
        try:
            if self.is_runnable:
                if self.is_langgraph:
                    return self.action.invoke(input, langgraph_task_config(config))
                if self.is_foreign:
                    return self._call_foreign(input, config)
                if self.steps and (node_run := _node_run(config)) is not None:
                    return invoke_steps(self.steps, input, config, node_run)
                return self.action.invoke(input, config)
            result = self.action(input, **self._injected(config))
            if self.is_async:
                result = run_blocking(result)
            return result
        except ParentCommand as e:
            return own_command(e)
        finally:
            var_child_runnable_config.reset(token)

    async def acall(self, input: Any, config: RunnableConfig) -> Any:
        """`call` on the event loop: async nodes are awaited in place, sync ones run on a
        worker thread."""
        attempt, first_time = 0, time.time()
        while True:
            attempt += 1
            try:
                return await self._acall_once(input, _attempt_config(config, attempt, first_time))
            except GraphBubbleUp:
                raise  # an interrupt or a drain is not a failure: never retried
            except Exception as exc:
                if (policy := retry_policy_for(self.retry, exc, attempt)) is None:
                    raise
                _forget_pushed(config)  # a failed attempt's pushed writes are not applied
                if (on_retry := _traced_retry(config)) is not None:
                    config = await on_retry(config, exc)  # the next attempt's chain run
                await asyncio.sleep(policy.delay(attempt))

    async def _acall_once(self, input: Any, config: RunnableConfig) -> Any:
        token = var_child_runnable_config.set(config)
        try:
            if self.is_runnable:
                if self.is_langgraph:
                    return await self.action.ainvoke(input, langgraph_task_config(config))
                if self.is_foreign:
                    return await self._acall_foreign(input, config)
                if self.steps and (node_run := _node_run(config)) is not None:
                    return await ainvoke_steps(self.steps, input, config, node_run,
                                               _node_task(config).async_run)
                return await self.action.ainvoke(input, config)
            return await self.action(input, **self._injected(config))
        except ParentCommand as e:
            return own_command(e)
        finally:
            var_child_runnable_config.reset(token)

    def _call_foreign(self, input: Any, config: RunnableConfig) -> Any:
        """Calls LangGraph's own node code (see `_foreign`): in the config it reads, its
        results and signals made ferrograph's."""
        config = foreign_task_config(config)
        with _foreign_call(config):
            return from_langgraph(self.action.invoke(input, config))

    async def _acall_foreign(self, input: Any, config: RunnableConfig) -> Any:
        config = foreign_task_config(config)
        with _foreign_call(config):
            return from_langgraph(await self.action.ainvoke(input, config))

    def _injected(self, config: RunnableConfig) -> dict[str, Any]:
        return injected_values(self.inject, config) if self.inject else {}


def own_command(e: BaseException) -> Command:
    """A node's failure that is a `Command(graph=PARENT)` raised by a graph the node ran (as
    a subgraph node, or by calling it): the command is the node's own result, applied to
    this graph as LangGraph applies it. Any other error is raised again."""
    if not isinstance(e, ParentCommand):
        raise e
    command = e.args[0]
    return Command(update=command.update, goto=command.goto, resume=command.resume)
