"""`ainvoke` of async nodes on the Rust driver (`DirectAsyncRun`, rust/src/python/direct_async.rs).

A run `invoke` would make on the Rust driver (see `_direct`), of a graph whose nodes all run
on the event loop and whose routers are plain functions, needs no `GraphRun` either: Rust
plans each step, prepares its tasks and applies their writes; this module only awaits the
nodes, each in a copy of the caller's context as LangGraph runs them. A step of one task is
awaited in place (a node that never suspends costs no more than its call), a step of several
as tasks of the loop, the first failure cancelling the others, as `AsyncDriver` does.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Generator, Sequence
from contextvars import Context, copy_context
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import Runnable
from langchain_core.runnables.config import var_child_runnable_config

from ferrograph._core import ConcurrentUpdate, DirectAsyncGraph, DirectAsyncRun, OutOfSteps
from ferrograph.config import CONFIG_KEY_TIMEOUT
from ferrograph.pregel._call import raised_by_the_node
from ferrograph.pregel._direct import _run_args, _task_config_base, result_key_ids, with_pause
from ferrograph.pregel._errors import concurrent_update_error, recursion_error
from ferrograph.pregel._task import recursion_limit
from ferrograph.pregel._write import TimedArg
from ferrograph.runtime import RunControl

if TYPE_CHECKING:
    from ferrograph.pregel.main import CompiledStateGraph


def build_direct_async(graph: CompiledStateGraph) -> DirectAsyncGraph | None:
    """The async driver's description of `graph` (built once per graph); None when some node
    runs off the loop (a sync one) or some router is not a plain function (an async router
    is awaited by `GraphRun`'s driver)."""
    if not all(runner.on_loop for runner in graph.runners.values()):
        return None
    for branches in graph.branches.values():
        for branch, *_ in branches:
            path = branch.path
            if isinstance(path, Runnable) or inspect.iscoroutinefunction(path) \
                    or inspect.iscoroutinefunction(type(path).__call__):
                return None
    calls: list[tuple[Any, Any] | None] = []
    for name in graph.node_names:
        runner = graph.runners.get(name)
        if runner is None:  # the start node: the driver maps the input itself
            calls.append(None)
            continue
        plain = runner.is_async and not (runner.inject or runner.retry or runner.timeout
                                         or runner.handler is not None)
        calls.append((runner.action if plain else None, runner.acall))
    return DirectAsyncGraph(graph.direct, calls, TimedArg, CONFIG_KEY_TIMEOUT)


async def ainvoke_direct(graph: CompiledStateGraph, input: Any, config: dict[str, Any],
                         context: Any, result_keys: Sequence[str] | None,
                         control: RunControl | None) -> dict[str, Any]:
    """`invoke_direct` for `ainvoke` of a graph `build_direct_async` describes: what tasks
    see (config, metadata, errors) is as under `GraphRun`. Cancelling the caller cancels the
    nodes running."""
    limit = recursion_limit(config)
    result_ids = result_key_ids(graph, result_keys)
    strict, configurable, metadata, run_control = _run_args(graph, config, context, control)
    questions: list[Any] = []
    run = DirectAsyncRun(
        graph.direct_async, graph, input, strict, graph.start_values(), limit,
        _task_config_base(config), configurable, metadata, result_ids,
        run_control, questions)
    try:
        while (tasks := run.next_step()) is not None:
            if len(tasks) == 1:  # most steps: awaited in place
                if (error := await _run_task(run, 0, tasks[0])) is not None:
                    raise error
            else:
                await _run_tasks(run, tasks, config.get("max_concurrency") or None)
    except OutOfSteps:
        raise recursion_error(limit) from None
    except ConcurrentUpdate as e:
        raise concurrent_update_error(e.args[0]) from None
    return with_pause(run.result(), questions, strict)


async def _run_task(run: DirectAsyncRun, index: int,
                    task: tuple[Any, Any, dict[str, Any], bool]) -> BaseException | None:
    """Awaits task `index` of the step, in a copy of the caller's context (as LangGraph runs
    each node: what the node sets there is its own), and hands its outcome to `run`; returns
    the error the run fails with, if any (raises only a cancellation of the task awaiting
    it)."""
    fn, input, config, plain = task
    context = copy_context()
    try:
        if plain:
            context.run(var_child_runnable_config.set, config)
            output = await InContext(context, context.run(fn, input))
        else:
            output = await InContext(context, context.run(fn, input, config))
    except asyncio.CancelledError as e:
        if not raised_by_the_node():
            raise
        return run.failed(index, e)  # LangGraph's NodeCancelledError
    except BaseException as e:  # noqa: BLE001 - the run decides (a pause is no failure)
        return run.failed(index, e)
    return run.finish(index, output)


class InContext:
    """Awaits `coro` with each of its steps run in `context` (what `yield from` does, plus
    the context): no task of the loop, so a coroutine that never suspends costs no more
    than its call."""

    __slots__ = ("context", "coro")

    def __init__(self, context: Context, coro: Any) -> None:
        self.context = context
        self.coro = coro

    def __await__(self) -> Generator[Any, Any, Any]:
        run, coro = self.context.run, self.coro
        try:
            step = run(coro.send, None)
        except StopIteration as e:
            return e.value
        while True:
            try:
                sent = yield step
            except GeneratorExit:
                run(coro.close)
                raise
            except BaseException as e:  # noqa: BLE001 - thrown in (a cancellation): the node's
                try:
                    step = run(coro.throw, e)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    step = run(coro.send, sent)
                except StopIteration as stop:
                    return stop.value


async def _run_tasks(run: DirectAsyncRun, tasks: list[Any], limit_to: int | None) -> None:
    """Runs a step's tasks at once as tasks of the loop (at most `limit_to`); the first
    failure cancels the others, as does the caller's cancellation."""
    if limit_to:
        limit = asyncio.Semaphore(limit_to)

        async def bounded(index: int, task: Any) -> BaseException | None:
            async with limit:
                return await _run_task(run, index, task)

        running = [asyncio.ensure_future(bounded(i, t)) for i, t in enumerate(tasks)]
    else:
        running = [asyncio.ensure_future(_run_task(run, i, t)) for i, t in enumerate(tasks)]
    try:
        for future in asyncio.as_completed(running):
            if (error := await future) is not None:
                raise error
    finally:
        for future in running:
            future.cancel()
