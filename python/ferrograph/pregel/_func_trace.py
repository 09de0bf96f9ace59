"""Tracing of the function and its tasks for the caller's callbacks: each attempt is a
chain run named after it (a task's with `seq:step:1`, and its arguments by name as inputs),
and `astream_events`' handler is handed its output as a one-chunk stream.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ferrograph.pregel._trace import one_chunk

TASK_TAGS = ["seq:step:1"]


def trace_inputs(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A task's inputs as LangGraph traces them: its arguments by name."""
    try:
        sig = inspect.signature(func)
        bound = sig.bind_partial(*args, **kwargs)
    except (TypeError, ValueError):
        return {"args": args, "kwargs": kwargs}
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    arguments.pop("self", None)
    arguments.pop("cls", None)
    for name, param in sig.parameters.items():
        if param.kind == inspect.Parameter.VAR_KEYWORD and name in arguments:
            arguments.update(arguments.pop(name))
    return arguments


def stream_handler(run: Any) -> Any:
    """The `astream_events` / `astream_log` handler among a run's handlers (None: none)."""
    from langchain_core.tracers._streaming import _StreamingCallbackHandler
    return next((h for h in run.handlers if isinstance(h, _StreamingCallbackHandler)
                 and type(h).__module__.startswith("langchain_core")), None)


def traced(config: dict[str, Any], name: str, inputs: Any,
           fn: Callable[[dict[str, Any]], Any], tags: list[str] | None = None) -> Any:
    """`fn(config)` as a chain run named `name` of the config's callbacks (if any)."""
    if not config.get("callbacks"):
        return fn(config)
    from langchain_core.runnables.config import get_callback_manager_for_config
    manager = get_callback_manager_for_config(config)
    if tags:
        manager.add_tags(tags, inherit=False)
    run = manager.on_chain_start(None, inputs, name=name)
    try:
        output = fn({**config, "callbacks": run.get_child()})
    except BaseException as e:
        run.on_chain_error(e)
        raise
    if (handler := stream_handler(run)) is not None:
        for _ in handler.tap_output_iter(run.run_id, iter([output])):
            pass
    run.on_chain_end(output)
    return output


async def atraced(config: dict[str, Any], name: str, inputs: Any,
                  fn: Callable[[dict[str, Any]], Any], tags: list[str] | None = None) -> Any:
    """`traced` on the event loop."""
    if not config.get("callbacks"):
        return await fn(config)
    from langchain_core.runnables.config import get_async_callback_manager_for_config
    manager = get_async_callback_manager_for_config(config)
    if tags:
        manager.add_tags(tags, inherit=False)
    run = await manager.on_chain_start(None, inputs, name=name)
    try:
        output = await fn({**config, "callbacks": run.get_child()})
    except BaseException as e:
        await run.on_chain_error(e)
        raise
    if (handler := stream_handler(run)) is not None:
        async for _ in handler.tap_output_aiter(run.run_id, one_chunk(output)):
            pass
    await run.on_chain_end(output)
    return output
