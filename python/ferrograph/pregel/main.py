"""`CompiledStateGraph`: a compiled graph, the runtime's front (LangGraph's `Pregel`).

It holds what a run needs from the builder's output (the Rust plan, key and node tables,
node runners, routers, per-node task metadata) and gives LangGraph's run API: `invoke`,
`stream`, `ainvoke`, `astream`, `get_graph` (drawn by `_draw`), the JSON schemas. Each call
picks a driver: `invoke` the Rust one (`_direct`) when it can, else a `GraphRun` (`_loop`)
driven by `_sync` or `_async`, its items shaped for the caller by `_stream`. A graph run as
a node of another (a subgraph) runs nested in its parent's run (`_nested`), streaming into
the parent's channel when asked to.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import aclosing
from typing import Annotated, Any, Literal, get_args, get_origin

from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import (
    merge_configs,
)
from langchain_core.runnables.graph import Graph as DrawableGraph
from langchain_core.utils.pydantic import create_model_v2
from pydantic import BaseModel

from ferrograph._core import GraphPlan
from ferrograph._schema import (
    ROOT,
    context_json_schema,
    json_schema,
    make_coercer,
    read_managed,
    read_schema,
    root_value,
    schema_defaults,
)
from ferrograph.config import (
    CONFIG_KEY_RUNTIME,
)
from ferrograph.pregel import _state, _sync
from ferrograph.pregel._async import AsyncDriver
from ferrograph.pregel._cache import cache_namespaces, node_policies
from ferrograph.pregel._call import NodeRunner
from ferrograph.pregel._direct import (
    build_direct_graph,
    goes_direct,
    invoke_direct,
    stream_direct,
    streams_directly,
)
from ferrograph.pregel._direct_async import ainvoke_direct, build_direct_async
from ferrograph.pregel._draw import draw
from ferrograph.pregel._loop import GraphRun
from ferrograph.pregel._nested import (
    ainvoke_nested,
    calling_task,
    invoke_nested,
    on_its_loop,
    subgraph_of,
)
from ferrograph.pregel._offload import offload
from ferrograph.pregel._stream import (
    CHANNEL_CAPACITY,
    MODE_IDS,
    ItemShape,
    RunStream,
    StreamSpec,
    resolve_stream_spec,
)
from ferrograph.pregel._task import run_config
from ferrograph.runtime import RunControl
from ferrograph.types import GraphOutput, StateSnapshot, StateUpdate


class CompiledStateGraph(Runnable[Any, Any]):
    """A compiled `StateGraph`: run it with `invoke` or `stream`. `builder` is the
    `StateGraph` it was compiled from, `plan` the Rust plan of its channels and triggers."""

    stream_mode = "updates"
    config: RunnableConfig | None = None
    """The config every run starts from (`with_config`), under the caller's."""
    step_timeout: float | None = None
    """Seconds a superstep may take (LangGraph's attribute): past it the run fails with
    `TimeoutError` ("Timed out"), the step's async tasks cancelled (sync ones cannot be)."""

    def __init__(self, builder: Any, plan: GraphPlan, *, name: str, store: Any,
                 checkpointer: Any, debug: bool, interrupt_before_nodes: Sequence[str] = (),
                 interrupt_after_nodes: Sequence[str] = (), cache: Any = None) -> None:
        self.builder = builder
        self.interrupt_before_nodes = interrupt_before_nodes
        self.interrupt_after_nodes = interrupt_after_nodes
        """The breakpoints as given to `compile` (`["*"]` for all nodes)."""
        self.plan = plan
        self.name = name
        self.store = store
        self.cache = cache
        """The `BaseCache` of node results (`compile(cache=...)`; see `_cache`)."""
        self.cache_policies = node_policies(builder) if cache is not None else {}
        """Per node with a cache policy: the policy and its cache namespace."""
        self.checkpointer = checkpointer
        self.debug = debug
        keys = list(builder.keys.values())
        self.key_ids = {k.name: i for i, k in enumerate(keys)}
        self.key_names = [k.name for k in keys]
        self.reducers = [k.reducer for k in keys]
        self.untracked_keys = frozenset(k.name for k in keys if k.untracked)
        """Keys never saved in checkpoints (`UntrackedValue`)."""
        self.delta_keys = {k.name: k.delta for k in keys if k.delta is not None}
        """Keys annotated with LangGraph's `DeltaChannel`, by name (see `_delta`)."""
        self.delta_reducers = {k.name: k.reducer for k in keys if k.delta is not None}
        self._start = [k.start for k in keys]
        self._no_starts = all(start is None for start in self._start)
        self._none_starts = (None,) * len(keys)
        self.output_keys = [k.name for k in read_schema(builder.output_schema)]
        ids = [self.key_ids[k] for k in self.key_names]
        self.default_output = (list(self.key_names), ids, frozenset(ids),
                               frozenset(self.key_names),
                               [self.key_ids[k] for k in self.output_keys])
        """A run's output names and ids when no `output_keys` are given (see GraphRun)."""
        self.output_key_set = frozenset(self.key_ids)
        self.input_key_set = frozenset(k.name for k in read_schema(builder.input_schema))
        self.node_names = plan.node_names
        self.triggers = [plan.trigger_names(i) for i in range(len(self.node_names))]
        self.root = self.key_names == [ROOT]
        """Whether the state is the root key alone (a state schema such as `list` or
        `Annotated[list, add]`): nodes and routers are given its bare value and return
        its update, runs take it and give it back bare (as `output_keys=ROOT` does)."""
        self.runners = {
            name: NodeRunner(spec, self.key_ids, isinstance(spec.action, CompiledStateGraph),
                             self.root)
            for name, spec in builder.nodes.items()}
        for runner in self.runners.values():
            if runner.error_handler_node is not None:
                runner.attach_handler(self.runners[runner.error_handler_node])
        self.has_async_nodes = any(r.on_loop for r in self.runners.values())
        self.node_order = {name: i for i, name in enumerate(self.runners)}
        """Each node's place in the order it was added (a snapshot lists tasks so)."""
        self.reads_state = any(r.reads_state for r in self.runners.values())
        """Whether a node's pushed tasks read the state (LangGraph's `ToolNode`): such
        runs go by `GraphRun`, whose tasks can."""
        self.node_ids = {name: plan.node_id(name) for name in self.node_names}
        self._subgraphs: dict[str, Any] = {}
        self.channel_names = plan.channel_names
        self.static_writes = [
            [(channel, value) for channel, value in plan.static_writes(i)]
            for i in range(len(self.node_names))]
        """Per node id: what it writes each time it completes (its static edges), as
        LangGraph saves it among a task's writes."""
        self.interrupt_before = frozenset(
            i for i in range(len(self.node_names)) if plan.interrupts_before(i))
        self.interrupt_after = frozenset(
            i for i in range(len(self.node_names)) if plan.interrupts_after(i))
        self.branches = {
            source: [self._router(source, branch) for branch in by_name.values()]
            for source, by_name in builder.branches.items()
        }
        """Per source node, its conditional edges as `(branch, keys, coerce, extra,
        managed)`: the state keys its router reads (None: all of them, in state order), how
        that dict becomes what the router is given (None: as is), whether the router also
        sees the extra keys of the node's dict result, and the managed keys it reads."""
        self.managed = builder.managed
        """Managed keys (computed per task, not stored): runs go by the Python driver."""
        self.state_coerce = make_coercer(builder.state_schema)
        self.defaults = schema_defaults(builder.state_schema)
        self.task_metadata = [self._task_metadata(i) for i in range(len(self.node_names))]
        """Per node id: the metadata its pull and push tasks start from (the node's own and
        the `langgraph_*` keys that are the same for all its tasks; a push task's
        `langgraph_path` is its own)."""
        self.direct = build_direct_graph(self)
        self.direct_async = build_direct_async(self)
        """What `ainvoke` runs when it can go without a `GraphRun` (None: some node runs off
        the loop, or some router is awaited; see `ainvoke_direct`)."""
        self.direct_by_build = not (self.interrupt_before or self.interrupt_after or self.managed
                                    or self.root or self.cache_policies or self.reads_state)
        """Whether what the graph was built with lets `invoke` go by the Rust driver (the
        run's own arguments and the graph's settable attributes are asked per call)."""
        """What `invoke` runs when it can go without a `GraphRun` (see `invoke_direct`)."""

    def _router(self, source: str,
                branch: Any) -> tuple[Any, list[str] | None, Any, bool, tuple[str, ...]]:
        """How `branch`, leaving `source`, reads the state, as LangGraph reads it: through
        the router's own input schema, else its node's, else the state schema; an
        unannotated router reading a dict also gets the keys the node returned."""
        if self.root:
            return (branch, None, root_value, False, ())
        builder = self.builder
        schema = branch.input_schema
        if schema is None:
            node = builder.nodes.get(source)
            schema = node.input_schema if node is not None else builder.state_schema
        keys = [k.name for k in read_schema(schema) if k.name in self.key_ids]
        coerce = make_coercer(schema)
        return (branch, None if not keys or keys == self.key_names else keys, coerce,
                branch.input_schema is None and coerce is None, tuple(read_managed(schema)))

    def _task_metadata(self, node_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
        name = self.node_names[node_id]
        runner = self.runners.get(name)
        node_metadata = {**(runner.metadata if runner is not None else {}),
                         "langgraph_node": name}
        return ({**node_metadata, "langgraph_triggers": self.triggers[node_id],
                 "langgraph_path": ("__pregel_pull", name)},
                {**node_metadata, "langgraph_triggers": ("__pregel_push",)})

    # -- what the run loop asks of the graph -------------------------------------------------

    def start_values(self) -> Sequence[Any]:
        """Each key's value before the run writes it (fresh per run: a reducer's start), for
        the Rust side to read (it copies them)."""
        if self._no_starts:  # no reducer with a start value: every run reads the same Nones
            return self._none_starts
        return [start() if start is not None else None for start in self._start]

    def _context(self, context: Any, config: RunnableConfig) -> Any:
        """The run context, built from a dict when the graph declares a context class. A
        graph called by a node without a context of its own gets its caller's, as in
        LangGraph (the caller's runtime rides in the config)."""
        if context is None:
            runtime = config.get("configurable", {}).get(CONFIG_KEY_RUNTIME)
            return None if runtime is None else runtime.context
        schema = self.builder.context_schema
        if isinstance(context, dict) and schema is not None and make_coercer(schema):
            return schema(**context)
        return context

    def _check_nodes(self, nodes: Sequence[str]) -> None:
        resolve_stream_spec(self, frozenset(), False, nodes)

    # -- the public API ---------------------------------------------------------------------

    @property
    def InputType(self) -> Any:  # noqa: N802 - Runnable's name
        return self.builder.input_schema

    @property
    def OutputType(self) -> Any:  # noqa: N802 - Runnable's name
        return self.builder.output_schema

    def get_input_jsonschema(self, config: RunnableConfig | None = None) -> dict[str, Any]:
        return json_schema(self.builder.input_schema, self.builder.key_types,
                           self.get_name("Input"))

    def get_output_jsonschema(self, config: RunnableConfig | None = None) -> dict[str, Any]:
        return json_schema(self.builder.output_schema, self.builder.key_types,
                           self.get_name("Output"))

    def get_output_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        """A model of the output keys, each optional (LangGraph's, for a graph with keys)."""
        if self.root:  # a model of the root value (its channel's type), as LangGraph's
            typ = self.builder.key_types.get(ROOT, Any)
            if get_origin(typ) is Annotated:
                typ = get_args(typ)[0]
            return create_model_v2(self.get_name("Output"), root=typ)
        types = self.builder.key_types
        return create_model_v2(self.get_name("Output"), field_definitions={
            k: (types.get(k, Any), None) for k in self.output_keys})

    def get_context_jsonschema(self) -> dict[str, Any] | None:
        return context_json_schema(self.builder.context_schema)

    def stream(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        context: Any = None,
        stream_mode: str | Sequence[str] | None = None,
        print_mode: str | Sequence[str] = (),
        output_keys: str | Sequence[str] | None = None,
        interrupt_before: Any = None,
        interrupt_after: Any = None,
        durability: Any = None,
        control: RunControl | None = None,
        subgraphs: bool = False,
        debug: bool | None = None,
        version: Literal["v1", "v2"] = "v1",
        nodes: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        buffer_size: int = CHANNEL_CAPACITY,
        **kwargs: Any,
    ) -> Iterator[Any]:
        """Runs the graph, yielding what `stream_mode` asks for as it happens.

        `nodes=` (ferrograph) keeps only items from those nodes, and is applied where items
        are produced: a model in a node nobody listens to is not asked to stream at all.
        `buffer_size` (ferrograph) bounds the items waiting for the consumer; producers wait
        when it is full. `control` (a `RunControl`) stops the run before its next step, with
        `GraphDrained`, once a drain is requested.
        """
        if stream_mode is None:
            stream_mode = self.stream_mode
        if output_keys is None and self.root:
            output_keys = ROOT
        modes = [stream_mode] if isinstance(stream_mode, str) else list(stream_mode)
        # As in LangGraph, only a list of modes makes `(mode, item)` pairs: a single mode or
        # a tuple of them yields bare items.
        single = not isinstance(stream_mode, list)
        for mode in modes:
            if mode not in MODE_IDS:
                raise ValueError(
                    f"Invalid stream_mode {mode!r}: expected one of "
                    f"{', '.join(repr(m) for m in MODE_IDS)}"
                )
        if version not in ("v1", "v2"):
            raise ValueError(f"Invalid version {version!r}: expected 'v1' or 'v2'")
        config = run_config(config, self.config)
        spec = resolve_stream_spec(self, frozenset(modes), subgraphs, nodes)
        if tags is not None:
            tags = [tags] if isinstance(tags, str) else list(tags)
            if not all(isinstance(t, str) for t in tags):
                raise TypeError(f"tags= takes tag names (str), got {tags!r}")
            spec.tags = frozenset(tags)
        spec.state_objects = version == "v2"
        shape = ItemShape(modes, single, subgraphs, version)
        # (`astream` drives a `GraphRun` itself: it asks for one.)
        if not kwargs.get("_graph_run") and streams_directly(
                self, spec, config, output_keys, interrupt_before, interrupt_after, version):
            if not isinstance(buffer_size, int) or buffer_size < 1:  # as `GraphRun` checks
                raise ValueError(f"buffer_size must be a positive int, got {buffer_size!r}")
            return RunStream.over(None, stream_direct(
                self, input, config, self._context(context, config), spec.modes, control), shape)
        run = GraphRun(self, input, config, spec, context=self._context(context, config),
                       output_keys=output_keys, buffer_size=buffer_size,
                       interrupt_before=self._breakpoints(interrupt_before),
                       interrupt_after=self._breakpoints(interrupt_after), control=control,
                       durability=durability)
        return RunStream.over(run, _sync.batches(run), shape)


    async def astream(self, input: Any, config: RunnableConfig | None = None,
                      **kwargs: Any) -> AsyncIterator[Any]:
        """`stream` for asyncio callers, run on this event loop: async nodes are tasks of the
        loop, sync nodes run on worker threads, items are handed over a batch at a time
        with at most `buffer_size` waiting. Leaving the loop, `aclose()` or cancelling stops
        the run and cancels the nodes still running."""
        stream = self.stream(input, config, _graph_run=True, **kwargs)
        shape = stream.shape
        stream.close()  # nothing of it ran: the run is driven by `abatches` below
        async with aclosing(AsyncDriver(stream.run).batches()) as batches:
            async for batch in batches:
                for item in shape.format(batch):
                    yield item

    async def ainvoke(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        context: Any = None,
        stream_mode: str = "values",
        output_keys: str | Sequence[str] | None = None,
        interrupt_before: Any = None,
        interrupt_after: Any = None,
        control: RunControl | None = None,
        version: Literal["v1", "v2"] = "v1",
        durability: Any = None,
        **kwargs: Any,
    ) -> Any:
        """`invoke` for asyncio callers, run on this event loop: async nodes are awaited as
        tasks of the loop (a failing one cancels its siblings; cancelling the caller cancels
        them all), sync nodes run on worker threads."""
        config = run_config(config, self.config)
        if output_keys is None and self.root:
            output_keys = ROOT
        if stream_mode != "values":  # as `invoke` does: the streamed items, as a list
            return [item async for item in self.astream(
                input, config, context=context, stream_mode=stream_mode,
                output_keys=output_keys, interrupt_before=interrupt_before,
                interrupt_after=interrupt_after, control=control, durability=durability,
                **kwargs)]
        parent, parent_task = calling_task(config)
        single_key = isinstance(output_keys, str)
        keys = [output_keys] if single_key else output_keys
        if parent is not None and parent_task is not None and on_its_loop(parent):
            # A subgraph node of an `astream` run: it runs on the same loop, so cancelling
            # or failing the enclosing run reaches its nodes too.
            result = await ainvoke_nested(self, input, config, parent, parent_task, keys,
                                                control)
            return self._result(result, output_keys if single_key else None, version)
        if (not self.has_async_nodes or parent is not None) and (
                self.checkpointer in (None, True, False) or parent_task is not None):
            # A graph of sync nodes only goes off the loop in one hop rather than one per
            # node (runs are batched onto worker threads: see `_offload`); so does a
            # subgraph feeding a sync run's stream (it pushes there from a worker thread,
            # where waiting for room blocks nobody).
            # Cancelling the caller cannot stop the node running on that thread, but the
            # run stops there: no further step starts, as in LangGraph.
            cancelled = False

            def stop_check() -> None:
                if cancelled:
                    raise asyncio.CancelledError

            try:
                return await offload(
                    self._invoke, input, config, context, output_keys, interrupt_before,
                    interrupt_after, version, stop_check, control, durability, True)
            except asyncio.CancelledError:
                cancelled = True
                raise
        if self.direct_async is not None and goes_direct(
                self, config, parent, parent_task, interrupt_before, interrupt_after):
            # Async nodes awaited on this loop, the steps planned and applied in Rust.
            result = await ainvoke_direct(self, input, config, self._context(context, config),
                                          keys, control)
            return self._result(result, output_keys if single_key else None, version)
        run = GraphRun(self, input, config, StreamSpec(frozenset()),
                       context=self._context(context, config), output_keys=keys,
                       interrupt_before=self._breakpoints(interrupt_before),
                       interrupt_after=self._breakpoints(interrupt_after), control=control,
                       durability=durability)
        await AsyncDriver(run).run_to_end()
        return self._result(run.output(), output_keys if single_key else None, version)

    # -- the thread's state (with a checkpointer; see `_state`) ------------------------------

    def _thread_config(self, config: RunnableConfig) -> RunnableConfig:
        """`config` over the graph's own (`with_config`), as LangGraph reads a thread."""
        return merge_configs(self.config, config) if self.config else config

    def get_state(self, config: RunnableConfig, *, subgraphs: bool = False) -> StateSnapshot:
        """The thread's newest state (or the checkpoint `config` names)."""
        return _state.get_state(self, self._thread_config(config), subgraphs=subgraphs)

    async def aget_state(self, config: RunnableConfig, *,
                         subgraphs: bool = False) -> StateSnapshot:
        return await asyncio.to_thread(self.get_state, config, subgraphs=subgraphs)

    def get_state_history(self, config: RunnableConfig, *, filter: dict[str, Any] | None = None,
                          before: RunnableConfig | None = None,
                          limit: int | None = None) -> Iterator[StateSnapshot]:
        """The thread's checkpoints, newest first."""
        return _state.get_state_history(self, self._thread_config(config), filter=filter, before=before,
                                        limit=limit)

    async def aget_state_history(self, config: RunnableConfig, *,
                                 filter: dict[str, Any] | None = None,
                                 before: RunnableConfig | None = None,
                                 limit: int | None = None) -> AsyncIterator[StateSnapshot]:
        history = await asyncio.to_thread(lambda: list(_state.get_state_history(
            self, self._thread_config(config), filter=filter, before=before, limit=limit)))
        for snapshot in history:
            yield snapshot

    def update_state(self, config: RunnableConfig, values: Any, as_node: str | None = None,
                     task_id: str | None = None) -> RunnableConfig:
        """Writes `values` into the thread as if node `as_node` had returned them (its edges
        fire); returns the config of the new checkpoint."""
        return _state.bulk_update_state(self, self._thread_config(config),
                                        [[StateUpdate(values, as_node, task_id)]])

    async def aupdate_state(self, config: RunnableConfig, values: Any,
                            as_node: str | None = None,
                            task_id: str | None = None) -> RunnableConfig:
        return await asyncio.to_thread(self.update_state, config, values, as_node, task_id)

    def bulk_update_state(self, config: RunnableConfig,
                          supersteps: Sequence[Sequence[StateUpdate]]) -> RunnableConfig:
        return _state.bulk_update_state(self, self._thread_config(config), supersteps)

    async def abulk_update_state(self, config: RunnableConfig,
                                 supersteps: Sequence[Sequence[StateUpdate]]) -> RunnableConfig:
        return await asyncio.to_thread(_state.bulk_update_state, self,
                                       self._thread_config(config), supersteps)

    def _breakpoints(self, names: Any) -> frozenset[int] | None:
        """Node ids of per-run breakpoints (None: the compiled ones). As in LangGraph, names
        that are not nodes are ignored here."""
        if names is None:
            return None
        if names == "*":
            return frozenset(range(1, len(self.node_names)))
        return frozenset(i for n in names if (i := self.node_ids.get(n)) not in (None, 0))

    def _result(self, values: dict[str, Any], single_key: str | None, version: str) -> Any:
        if version == "v2" and "__interrupt__" in values:
            values = dict(values)
            interrupts = tuple(values.pop("__interrupt__"))
            result = values.get(single_key) if single_key is not None else values
            return GraphOutput(result, interrupts)
        result = values.get(single_key) if single_key is not None else values
        return GraphOutput(result) if version == "v2" else result

    def invoke(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        context: Any = None,
        stream_mode: str = "values",
        output_keys: str | Sequence[str] | None = None,
        interrupt_before: Any = None,
        interrupt_after: Any = None,
        control: RunControl | None = None,
        version: Literal["v1", "v2"] = "v1",
        durability: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Runs the graph to the end and returns its final state (output keys only)."""
        config = run_config(config, self.config)
        if stream_mode != "values":
            return list(self.stream(input, config, context=context, stream_mode=stream_mode,
                                    output_keys=output_keys, interrupt_before=interrupt_before,
                                    interrupt_after=interrupt_after, control=control,
                                    durability=durability, **kwargs))
        return self._invoke(input, config, context, output_keys, interrupt_before,
                            interrupt_after, version, control=control, durability=durability)

    def _invoke(self, input: Any, config: dict[str, Any], context: Any,
                output_keys: str | Sequence[str] | None, interrupt_before: Any,
                interrupt_after: Any, version: str,
                stop_check: Callable[[], None] | None = None,
                control: RunControl | None = None, durability: Any = None,
                for_ainvoke: bool = False) -> Any:
        """`invoke` of the final values, on whichever driver the run allows; `stop_check`
        is called before each step and what it raises stops the run there."""
        if output_keys is None and self.root:
            output_keys = ROOT
        parent, parent_task = calling_task(config)
        single_key = isinstance(output_keys, str)
        keys = [output_keys] if single_key else output_keys
        if parent is not None and parent_task is not None:
            result = invoke_nested(self, input, config, parent, parent_task, keys, control)
        elif goes_direct(self, config, parent, parent_task, interrupt_before,
                         interrupt_after):
            result = invoke_direct(self, input, config, self._context(context, config), keys,
                                   stop_check, control)
        else:
            run = GraphRun(self, input, config, StreamSpec(frozenset()),
                           context=self._context(context, config), output_keys=keys,
                           interrupt_before=self._breakpoints(interrupt_before),
                           interrupt_after=self._breakpoints(interrupt_after),
                           stop_check=stop_check, control=control, durability=durability)
            run.streams_outputs = for_ainvoke  # LangGraph's `ainvoke` is its `astream`
            _sync.run_to_end(run)
            result = run.output()
        return self._result(result, output_keys if single_key else None, version)

    def clear_cache(self, nodes: Sequence[str] | None = None) -> None:
        """Clears the cached results of `nodes` (all nodes when None), as LangGraph does."""
        namespaces = cache_namespaces(self, nodes)  # raises without a cache, as LangGraph
        self.cache.clear(namespaces)

    async def aclear_cache(self, nodes: Sequence[str] | None = None) -> None:
        """`clear_cache` with the cache's async method."""
        namespaces = cache_namespaces(self, nodes)
        await self.cache.aclear(namespaces)

    def subgraph_of(self, name: str) -> CompiledStateGraph | None:
        """The graph node `name` runs, as LangGraph finds it (the node itself, or a graph its
        function refers to), for the snapshots of the thread: None when it runs none, or
        one compiled with `checkpointer=False`."""
        found = self._subgraphs.get(name, ...)
        if found is ...:
            runner = self.runners.get(name)
            found = None if runner is None else subgraph_of(runner.action)
            if not isinstance(found, CompiledStateGraph):  # a graph built by LangGraph
                found = None
            self._subgraphs[name] = found
        return found

    def with_config(self, config: RunnableConfig | None = None,
                    **kwargs: Any) -> CompiledStateGraph:
        """This graph with `config` (and `kwargs`, e.g. `recursion_limit=`) under every
        run's own config: a copy, as LangGraph's `with_config` returns (not a binding, so
        `stream(..., nodes=)`, `get_state` and the rest stay available)."""
        graph = copy.copy(self)
        graph.config = merge_configs(self.config, config, kwargs)
        return graph

    def get_graph(self, config: RunnableConfig | None = None, *, xray: int | bool = False
                  ) -> DrawableGraph:
        """The graph's topology, for drawing (e.g. `get_graph().draw_mermaid()`), as
        LangGraph draws it; `xray` expands subgraph nodes that many levels (True: all)."""
        return draw(self, config, xray)

    async def aget_graph(self, config: RunnableConfig | None = None, *,
                         xray: int | bool = False) -> DrawableGraph:
        return draw(self, config, xray)

