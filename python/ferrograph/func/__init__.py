"""LangGraph's functional API on ferrograph's engine: `@entrypoint` and `@task`.

An `@entrypoint` function compiles to LangGraph's one-node graph (`__start__` -> the function
-> `__end__`, with `__previous__` saved for the thread's next run); each `@task` call made
while it runs is a PUSH task of that step, with LangGraph's task id, so a thread is
portable between the two engines (see `ferrograph.pregel._func` and its `_func_*` modules).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar, get_args, get_origin

from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import ensure_config
from pydantic import BaseModel, TypeAdapter

from ferrograph.config import get_config
from ferrograph.pregel._func import MISSING, FuncRun
from ferrograph.pregel._func_calls import (
    CACHE_NS_WRITES,
    CONFIG_KEY_CALL,
    is_async,
    task_identifier,
)
from ferrograph.pregel._func_drive import run_async, run_sync
from ferrograph.pregel._func_node import graph_node_call
from ferrograph.pregel._func_thread import snapshot, update_state
from ferrograph.pregel._func_trace import stream_handler
from ferrograph.pregel._stream import ItemShape
from ferrograph.types import CachePolicy, RetryPolicy, TimeoutPolicy

P = TypeVar("P")
T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S")

_SYNC_TIMEOUT = ("Node timeouts are only supported for async nodes because sync Python "
                 "execution cannot be safely cancelled in-process.")


def _sync_timeout_unsupported(name: str, kind: str) -> ValueError:
    return ValueError(f"{_SYNC_TIMEOUT} {kind} {name!r} is sync.")


def _deprecated(since: str) -> type[Warning]:
    """LangGraph's own warning class when it is installed (so filters on it apply), else a
    plain `DeprecationWarning`."""
    try:
        import langgraph.warnings as lg_warnings
    except ImportError:
        return DeprecationWarning
    return getattr(lg_warnings, f"LangGraphDeprecatedSince{since}", DeprecationWarning)


class SyncAsyncFuture(Generic[T]):
    """What a task call returns: a `concurrent.futures.Future` (`.result()`), or, called on
    the event loop of an async run, an `asyncio.Future` (awaited)."""


def _call_with_options(func: Callable[..., Any], args: tuple[Any, ...],
                       kwargs: dict[str, Any], *, retry_policy: Any = None,
                       cache_policy: Any = None, timeout: Any = None) -> Any:
    if timeout is not None and not is_async(func):
        raise _sync_timeout_unsupported(getattr(func, "__name__", func.__class__.__name__),
                                        "Task")
    config = get_config()
    impl = config["configurable"].get(CONFIG_KEY_CALL)
    if impl is None:  # called from a node of a ferrograph graph
        impl = graph_node_call(config)
    return impl(func, (args, kwargs), retry_policy=retry_policy, cache_policy=cache_policy,
                callbacks=config.get("callbacks"), timeout=timeout)


class _TaskFunction(Generic[T]):
    def __init__(self, func: Callable[..., Any], *, retry_policy: Sequence[RetryPolicy],
                 cache_policy: CachePolicy | None = None,
                 timeout: TimeoutPolicy | None = None, name: str | None = None) -> None:
        if name is not None:
            if hasattr(func, "__func__"):
                method = functools.partial(func.__func__, func.__self__)  # type: ignore[attr-defined]
                method.__name__ = name  # type: ignore[attr-defined]
                func = method
            else:
                func.__name__ = name
        self.func = func
        self.retry_policy = retry_policy
        self.cache_policy = cache_policy
        self.timeout = timeout
        functools.update_wrapper(self, func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _call_with_options(self.func, args, kwargs, retry_policy=self.retry_policy,
                                  cache_policy=self.cache_policy, timeout=self.timeout)

    def clear_cache(self, cache: Any) -> None:
        """Clears this task's cached results from `cache`."""
        if self.cache_policy is not None:
            cache.clear(((CACHE_NS_WRITES, task_identifier(self.func) or "__dynamic__"),))

    async def aclear_cache(self, cache: Any) -> None:
        if self.cache_policy is not None:
            await cache.aclear(
                ((CACHE_NS_WRITES, task_identifier(self.func) or "__dynamic__"),))


def task(__func_or_none__: Callable[..., Any] | None = None, *, name: str | None = None,
         retry_policy: RetryPolicy | Sequence[RetryPolicy] | None = None,
         cache_policy: CachePolicy | None = None,
         timeout: float | timedelta | TimeoutPolicy | None = None, **kwargs: Any) -> Any:
    """Makes a function a task: called inside an entrypoint (or a graph's node), it runs as
    a task of the step and returns a future of its result."""
    if (retry := kwargs.get("retry")) is not None:
        warnings.warn("`retry` is deprecated and will be removed. Please use `retry_policy` "
                      "instead.", _deprecated("V05"), stacklevel=2)
        if retry_policy is None:
            retry_policy = retry
    timeout_policy = TimeoutPolicy.coerce(timeout)
    policies: Sequence[RetryPolicy] = (
        () if retry_policy is None
        else (retry_policy,) if isinstance(retry_policy, RetryPolicy) else retry_policy)

    def decorator(func: Callable[..., Any]) -> _TaskFunction[Any]:
        if timeout_policy is not None and not is_async(func):
            raise _sync_timeout_unsupported(
                str(name or getattr(func, "__name__", func.__class__.__name__)), "Task")
        return _TaskFunction(func, retry_policy=policies, cache_policy=cache_policy,
                             timeout=timeout_policy, name=name)

    if __func_or_none__ is not None:
        return decorator(__func_or_none__)
    return decorator


class entrypoint(Generic[T]):  # noqa: N801 - LangGraph's name
    """Makes a function the entrypoint of a workflow: `@entrypoint(checkpointer=...)`."""

    def __init__(self, checkpointer: Any = None, store: Any = None, cache: Any = None,
                 context_schema: Any = None, cache_policy: CachePolicy | None = None,
                 retry_policy: RetryPolicy | Sequence[RetryPolicy] | None = None,
                 timeout: float | timedelta | TimeoutPolicy | None = None,
                 **kwargs: Any) -> None:
        if (config_schema := kwargs.get("config_schema")) is not None:
            warnings.warn("`config_schema` is deprecated and will be removed. Please use "
                          "`context_schema` instead.", _deprecated("V10"), stacklevel=2)
            if context_schema is None:
                context_schema = config_schema
        if (retry := kwargs.get("retry")) is not None:
            warnings.warn("`retry` is deprecated and will be removed. Please use "
                          "`retry_policy` instead.", _deprecated("V05"), stacklevel=2)
            if retry_policy is None:
                retry_policy = retry
        self.checkpointer = checkpointer
        self.store = store
        self.cache = cache
        self.cache_policy = cache_policy
        self.retry_policy = retry_policy
        self.timeout = TimeoutPolicy.coerce(timeout)
        self.context_schema = context_schema

    @dataclass
    class final(Generic[R, S]):  # noqa: N801 - LangGraph's name
        """An entrypoint's result that returns `value` and saves `save` (the next run's
        `previous`)."""

        value: R
        save: S

    def __call__(self, func: Callable[..., Any]) -> EntrypointGraph:
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise NotImplementedError("Generators are not supported in the Functional API.")
        sig = inspect.signature(func)
        first = next(iter(sig.parameters.keys()), None)
        if not first:
            raise ValueError("Entrypoint function must have at least one parameter")
        if self.timeout is not None and not is_async(func):
            raise _sync_timeout_unsupported(func.__name__, "Node")
        input_type = (sig.parameters[first].annotation
                      if sig.parameters[first].annotation is not inspect.Signature.empty
                      else Any)
        output_type: Any = Any
        save_type: Any = Any
        if sig.return_annotation is not inspect.Signature.empty:
            if sig.return_annotation is entrypoint.final:
                pass
            elif get_origin(sig.return_annotation) is entrypoint.final:
                args = get_args(sig.return_annotation)
                if len(args) != 2:
                    raise TypeError(
                        "Please an annotation for both the return_ and the save values."
                        "For example, `-> entrypoint.final[int, str]` would assign a "
                        "return_ a type of `int` and save the type `str`.")
                output_type, save_type = args
            else:
                output_type = save_type = sig.return_annotation
        retry = self.retry_policy
        retry = () if retry is None else (retry,) if isinstance(retry, RetryPolicy) else retry
        return EntrypointGraph(func, checkpointer=self.checkpointer, store=self.store,
                               cache=self.cache, cache_policy=self.cache_policy,
                               retry_policy=tuple(retry), timeout=self.timeout,
                               context_schema=self.context_schema, input_type=input_type,
                               output_type=output_type, save_type=save_type)


_INJECTABLE = ("config", "writer", "store", "previous", "runtime")


class EntrypointGraph(Runnable[Any, Any]):
    """A compiled entrypoint: LangGraph's `Pregel` of one node, run by ferrograph."""

    def __init__(self, func: Callable[..., Any], *, checkpointer: Any, store: Any, cache: Any,
                 cache_policy: Any, retry_policy: Sequence[RetryPolicy], timeout: Any,
                 context_schema: Any, input_type: Any, output_type: Any,
                 save_type: Any) -> None:
        self.func = func
        self.name = "LangGraph"
        self.name_of_node = func.__name__
        self.checkpointer = checkpointer
        self.store = store
        self.cache = cache
        self.cache_policy = cache_policy
        self.retry_policy = retry_policy
        self.timeout = timeout
        self.context_schema = context_schema
        self.input_type = input_type
        self.output_type = output_type
        self.save_type = save_type
        self.is_async = is_async(func)
        params = inspect.signature(func).parameters
        self._inject = tuple(p for p in _INJECTABLE if p in params
                             and params[p].kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                    inspect.Parameter.KEYWORD_ONLY))
        self.stream_mode = "updates"
        functools.update_wrapper(self, func, updated=())  # type: ignore[arg-type]
        self.name = "LangGraph"

    # -- schemas --------------------------------------------------------------------------

    @property
    def InputType(self) -> Any:  # noqa: N802
        return self.input_type

    @property
    def OutputType(self) -> Any:  # noqa: N802
        return self.output_type

    def get_input_jsonschema(self, config: RunnableConfig | None = None) -> dict[str, Any]:
        return {**TypeAdapter(self.input_type).json_schema(), "title": "LangGraphInput"}

    def get_output_jsonschema(self, config: RunnableConfig | None = None) -> dict[str, Any]:
        return {**TypeAdapter(self.output_type).json_schema(), "title": "LangGraphOutput"}

    def get_input_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        from pydantic import create_model
        return create_model("LangGraphInput", root=(self.input_type, None))

    def get_output_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        from pydantic import create_model
        return create_model("LangGraphOutput", root=(self.output_type, None))

    def config_schema(self, *, include: Sequence[str] | None = None) -> type[BaseModel]:
        warnings.warn("`config_schema` is deprecated. Use `get_context_jsonschema` for the "
                      "relevant schema instead.", _deprecated("V10"), stacklevel=2)
        return super().config_schema(include=include)

    def get_context_jsonschema(self) -> dict[str, Any] | None:
        from ferrograph._schema import context_json_schema
        return context_json_schema(self.context_schema)

    def get_graph(self, config: RunnableConfig | None = None, *,
                  xray: int | bool = False) -> Any:
        """LangGraph's drawing of an entrypoint: `__start__` → the function ⇢ `__end__`."""
        from langchain_core.runnables.graph import Graph

        from ferrograph.pregel._draw import _RUNNABLE_CALLABLE, DrawnNode
        drawing = Graph()
        node = drawing.add_node(DrawnNode(action=self.func, lc_path=_RUNNABLE_CALLABLE),
                                self.name_of_node)
        start = drawing.add_node(None, "__start__")
        end = drawing.add_node(None, "__end__")
        drawing.add_edge(start, node)
        drawing.add_edge(node, end, conditional=True)
        return drawing

    async def aget_graph(self, config: RunnableConfig | None = None, *,
                         xray: int | bool = False) -> Any:
        return self.get_graph(config, xray=xray)

    # -- running --------------------------------------------------------------------------

    def _node_call(self, value: Any, config: dict[str, Any]) -> Any:
        kwargs: dict[str, Any] = {}
        if self._inject:
            runtime = config["configurable"]["__pregel_runtime"]
            for p in self._inject:
                if p == "config":
                    kwargs[p] = config
                elif p == "writer":
                    kwargs[p] = runtime.stream_writer
                elif p == "store":
                    kwargs[p] = runtime.store
                elif p == "previous":
                    kwargs[p] = runtime.previous
                elif p == "runtime":
                    kwargs[p] = runtime
        if self.is_async:
            return self.func(value, **kwargs)
        from langchain_core.runnables.config import var_child_runnable_config
        token = var_child_runnable_config.set(config)
        try:
            return self.func(value, **kwargs)
        finally:
            var_child_runnable_config.reset(token)

    def _context(self, context: Any, config: dict[str, Any]) -> Any:
        if context is None:
            runtime = (config.get("configurable") or {}).get("__pregel_runtime")
            if runtime is not None:
                return runtime.context
        if context is not None and self.context_schema is not None and isinstance(context, dict):
            try:
                if isinstance(self.context_schema, type) and issubclass(self.context_schema,
                                                                        BaseModel):
                    return self.context_schema(**context)
            except TypeError:
                pass
        return context

    def _prepare(self, input: Any, config: RunnableConfig | None, context: Any,
                 stream_mode: Any, durability: Any, subgraphs: bool, debug: Any,
                 loop: Any = None) -> tuple[FuncRun, list[str], bool]:
        config = ensure_config(config)
        metadata = dict(config.get("metadata") or {})
        for key, value in (config.get("configurable") or {}).items():
            # LangGraph's: the run's plain configurable values in its metadata
            if not key.startswith("__") and isinstance(value, (str, int, float, bool)) \
                    and key not in metadata and key != "api_key":
                metadata[key] = value
        config = {**config, "metadata": metadata}
        if stream_mode is None:
            stream_mode = "debug" if debug else self.stream_mode
        single = isinstance(stream_mode, str)
        modes = [stream_mode] if single else list(dict.fromkeys(stream_mode))
        run = FuncRun(self, input, dict(config), context=self._context(context, config),
                      modes=modes, durability=durability, subgraphs=subgraphs, loop=loop)
        parent = (config.get("configurable") or {}).get("__ferrograph_func_stream")
        if parent is not None and run.parent_ns:
            run.forward = parent
        return run, modes, single


    def stream(self, input: Any, config: RunnableConfig | None = None, *, context: Any = None,
               stream_mode: Any = None, print_mode: Any = (), output_keys: Any = None,
               interrupt_before: Any = None, interrupt_after: Any = None,
               durability: Any = None, subgraphs: bool = False, debug: Any = None,
               version: str = "v1", **kwargs: Any) -> Iterator[Any]:
        run, modes, single = self._prepare(input, config, context, stream_mode, durability,
                                           subgraphs, debug)
        shape = ItemShape(modes, single, subgraphs, version)
        if self.is_async:
            raise TypeError(
                f'No synchronous function provided to "{self.name_of_node}".\nEither '
                "initialize with a synchronous function or invoke via the async API "
                "(ainvoke, astream, etc.)")
        root = None
        if run.config.get("callbacks"):
            from langchain_core.runnables.config import get_callback_manager_for_config
            manager = get_callback_manager_for_config(run.config)
            if "ls_integration" not in manager.metadata:
                manager.add_metadata({"ls_integration": "langgraph"})
            root = manager.on_chain_start(
                None, input, name=run.config.get("run_name") or self.name,
                run_id=run.config.get("run_id"))
            run.root_run = root
        items = (shape(*item) for item in run_sync(run, self._node_call))
        if root is not None and (handler := stream_handler(root)) is not None:
            items = handler.tap_output_iter(root.run_id, items)
        try:
            yield from items
        except BaseException as e:
            if root is not None:
                root.on_chain_error(e)
            raise
        if root is not None:
            root.on_chain_end(run.output if run.output is not MISSING else None)

    async def astream(self, input: Any, config: RunnableConfig | None = None, *,
                      context: Any = None, stream_mode: Any = None, print_mode: Any = (),
                      output_keys: Any = None, interrupt_before: Any = None,
                      interrupt_after: Any = None, durability: Any = None,
                      subgraphs: bool = False, debug: Any = None, version: str = "v1",
                      **kwargs: Any) -> AsyncIterator[Any]:
        run, modes, single = self._prepare(input, config, context, stream_mode, durability,
                                           subgraphs, debug, loop=asyncio.get_running_loop())
        shape = ItemShape(modes, single, subgraphs, version)
        root = None
        if run.config.get("callbacks"):
            from langchain_core.runnables.config import get_async_callback_manager_for_config
            manager = get_async_callback_manager_for_config(run.config)
            if "ls_integration" not in manager.metadata:
                manager.add_metadata({"ls_integration": "langgraph"})
            root = await manager.on_chain_start(
                None, input, name=run.config.get("run_name") or self.name,
                run_id=run.config.get("run_id"))
            run.root_run = root

        async def shaped() -> AsyncIterator[Any]:
            async for item in run_async(run, self._node_call, self.is_async):
                yield shape(*item)
        items = shaped()
        if root is not None and (handler := stream_handler(root)) is not None:
            items = handler.tap_output_aiter(root.run_id, items)
        try:
            async for item in items:
                yield item
        except BaseException as e:
            if root is not None:
                await root.on_chain_error(e)
            raise
        if root is not None:
            await root.on_chain_end(run.output if run.output is not MISSING else None)

    def invoke(self, input: Any, config: RunnableConfig | None = None, *, context: Any = None,
               stream_mode: Any = "values", print_mode: Any = (), output_keys: Any = None,
               interrupt_before: Any = None, interrupt_after: Any = None,
               durability: Any = None, version: str = "v1", **kwargs: Any) -> Any:
        if stream_mode != "values":
            return list(self.stream(input, config, context=context, stream_mode=stream_mode,
                                    durability=durability, version=version, **kwargs))
        output = _InvokeOutput()
        for mode, payload in self.stream(input, config, context=context,
                                         stream_mode=["updates", "values"],
                                         durability=durability, **kwargs):
            output.take(mode, payload)
        return output.result(version)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, *,
                      context: Any = None, stream_mode: Any = "values", print_mode: Any = (),
                      output_keys: Any = None, interrupt_before: Any = None,
                      interrupt_after: Any = None, durability: Any = None,
                      version: str = "v1", **kwargs: Any) -> Any:
        if stream_mode != "values":
            return [c async for c in self.astream(input, config, context=context,
                                                  stream_mode=stream_mode,
                                                  durability=durability, version=version,
                                                  **kwargs)]
        output = _InvokeOutput()
        async for mode, payload in self.astream(input, config, context=context,
                                                stream_mode=["updates", "values"],
                                                durability=durability, **kwargs):
            output.take(mode, payload)
        return output.result(version)

    # -- state ----------------------------------------------------------------------------

    def _saver(self, config: RunnableConfig) -> Any:
        saver = self.checkpointer
        if saver in (None, True, False):
            saver = (config.get("configurable") or {}).get("__pregel_checkpointer")
        if saver is None:
            raise ValueError("No checkpointer set")
        return saver

    def get_state(self, config: RunnableConfig, *, subgraphs: bool = False) -> Any:
        saver = self._saver(config)
        saved = saver.get_tuple(_thread(config))
        if saved is None:
            from ferrograph.types import StateSnapshot
            return StateSnapshot({}, (), config, None, None, None, (), ())
        return snapshot(self, saved, saver)

    async def aget_state(self, config: RunnableConfig, *, subgraphs: bool = False) -> Any:
        saver = self._saver(config)
        saved = await saver.aget_tuple(_thread(config))
        if saved is None:
            from ferrograph.types import StateSnapshot
            return StateSnapshot({}, (), config, None, None, None, (), ())
        return snapshot(self, saved, saver)

    def get_state_history(self, config: RunnableConfig, *, filter: Any = None,
                          before: Any = None, limit: int | None = None) -> Iterator[Any]:
        saver = self._saver(config)
        for saved in saver.list(_thread(config), filter=filter, before=before, limit=limit):
            yield snapshot(self, saved, saver)

    async def aget_state_history(self, config: RunnableConfig, *, filter: Any = None,
                                 before: Any = None,
                                 limit: int | None = None) -> AsyncIterator[Any]:
        saver = self._saver(config)
        async for saved in saver.alist(_thread(config), filter=filter, before=before,
                                       limit=limit):
            yield snapshot(self, saved, saver)

    def update_state(self, config: RunnableConfig, values: Any, as_node: str | None = None,
                     task_id: str | None = None) -> RunnableConfig:
        saver = self._saver(config)
        return update_state(self, saver, config, values, as_node)

    async def aupdate_state(self, config: RunnableConfig, values: Any,
                            as_node: str | None = None,
                            task_id: str | None = None) -> RunnableConfig:
        saver = self._saver(config)
        return await asyncio.get_running_loop().run_in_executor(
            None, update_state, self, saver, config, values, as_node)

    def clear_cache(self, nodes: Sequence[str] | None = None) -> None:
        if self.cache is not None:
            self.cache.clear()

    async def aclear_cache(self, nodes: Sequence[str] | None = None) -> None:
        if self.cache is not None:
            await self.cache.aclear()


def _thread(config: RunnableConfig) -> dict[str, Any]:
    configurable = dict(config.get("configurable") or {})
    configurable.setdefault("checkpoint_ns", "")
    return {"configurable": {k: v for k, v in configurable.items()
                             if not k.startswith("__")}}


class _InvokeOutput:
    """What `invoke`/`ainvoke` return, gathered from the run's `updates` and `values` items:
    the last value, and the interrupts the run paused at."""

    __slots__ = ("latest", "interrupts")

    def __init__(self) -> None:
        self.latest: Any = None
        self.interrupts: list[Any] = []

    def take(self, mode: str, payload: Any) -> None:
        if mode == "updates" and isinstance(payload, dict) and (
                ints := payload.get("__interrupt__")) is not None:
            self.interrupts.extend(ints)
        elif mode == "values":
            self.latest = payload

    def result(self, version: str) -> Any:
        if version == "v2":
            from ferrograph.types import GraphOutput
            return GraphOutput(value=self.latest, interrupts=tuple(self.interrupts))
        return _result(self.latest, self.interrupts)


def _result(latest: Any, interrupts: list[Any]) -> Any:
    if interrupts:
        return ({**latest, "__interrupt__": interrupts} if isinstance(latest, dict)
                else {"__interrupt__": interrupts})
    return latest


__all__ = ["entrypoint", "task"]
