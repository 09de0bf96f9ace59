"""Node-result caching: LangGraph's `CachePolicy` on a node, `compile(cache=...)`.

A task of a node with a cache policy (its own, or `set_node_defaults`') is looked up in the
graph's cache before its step runs, keyed as LangGraph keys it: the namespace
`(CACHE_NS_WRITES, <the node's module.qualname, or "__dynamic__">, <node name>)` and the
xxh3-128 hex digest of `policy.key_func(<the task's input>)`. A hit skips the node: the
cached writes (LangGraph's form: state keys, `branch:to:<node>` routes, sends) stand in for
its result, routers are not run again, and its `updates` item carries LangGraph's marker
`"__metadata__": {"cached": True}` (emitted before the step's other tasks run; no `tasks`
result item, as in LangGraph). A miss runs the node; once its step has run, what it wrote
is stored with the policy's `ttl`. Failed, paused or error-handled tasks are not stored.

Every driver of the step loop calls in here: `run_step` (`stream`, `invoke` off the Rust
driver), `arun_step` (`astream`) and `alookup`/`astore` (`ainvoke`); the async ones use the
cache's async methods. Graphs with a cache never go by the Rust `invoke` driver.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from xxhash import xxh3_128_hexdigest

from ferrograph.pregel._thread_format import engine_writes, saved_form
from ferrograph.pregel._write import update_payload

if TYPE_CHECKING:
    from ferrograph.pregel._loop import GraphRun
    from ferrograph.pregel._stream import Item
    from ferrograph.pregel._task import Step, Task
    from ferrograph.pregel.main import CompiledStateGraph

CACHE_NS_WRITES = "__pregel_ns_writes"
"""LangGraph's first part of the namespace of a node's cached writes."""

Miss = tuple["Task", tuple[tuple[str, ...], str], "int | None"]
"""A task looked up and not found: it runs, then its writes are stored under the key."""


def identifier(action: Any) -> str | None:
    """LangGraph's `identifier` of a node's action: `module.qualname` of a sync function or
    method; None (LangGraph's `__dynamic__`) for async functions (LangGraph keeps them as
    the `afunc` of a runnable whose `func` is None), callable objects and runnables."""
    if _is_async_callable(action):
        return None
    name = getattr(action, "__qualname__", None) or getattr(action, "__name__", None)
    if name is None:
        return None
    module = getattr(action, "__module__", None)
    return None if module is None else f"{module}.{name}"


def _is_async_callable(action: Any) -> bool:
    return inspect.iscoroutinefunction(action) or (
        callable(action) and inspect.iscoroutinefunction(getattr(action, "__call__", None)))  # noqa: B004


def namespace(name: str, action: Any) -> tuple[str, str, str]:
    """The cache namespace of node `name` (what `clear_cache` clears)."""
    return (CACHE_NS_WRITES, identifier(action) or "__dynamic__", name)


def node_policies(builder: Any) -> dict[str, tuple[Any, tuple[str, str, str]]]:
    """Per node with a cache policy: the policy and the node's namespace."""
    return {name: (spec.cache_policy, namespace(name, spec.action))
            for name, spec in builder.nodes.items()
            if getattr(spec, "cache_policy", None) is not None}


def cache_namespaces(graph: CompiledStateGraph,
                     nodes: Iterable[str] | None) -> list[tuple[str, str, str]]:
    """The namespaces `clear_cache(nodes)` clears (every node's when `nodes` is empty)."""
    if graph.cache is None:
        raise ValueError("No cache is set for this graph. Cannot clear cache.")
    specs = graph.builder.nodes
    return [namespace(n, specs[n].action) for n in (nodes or specs) if n in specs]


# -- lookups ----------------------------------------------------------------------------------


def _keys(run: GraphRun, tasks: list[Task]) -> dict[tuple[tuple[str, ...], str], list[Any]]:
    """The cache keys of the step's tasks whose node has a policy: `[(task, ttl), ...]` by
    key (tasks with writes saved in the thread are not looked up, as in LangGraph)."""
    policies = run.graph.cache_policies
    keyed: dict[tuple[tuple[str, ...], str], list[Any]] = {}
    for t in tasks:
        entry = policies.get(t.name)
        if entry is None or t.saved_writes is not None or t.node_id == 0:
            continue
        if not run.prepared(t):  # its input is needed now, for the key
            raise t.error  # type: ignore[misc]
        policy, ns = entry
        args_key = policy.key_func(t.input)
        key = xxh3_128_hexdigest(args_key.encode() if isinstance(args_key, str) else args_key)
        keyed.setdefault((ns, key), []).append((t, policy.ttl))
    return keyed


def _matched(run: GraphRun, tasks: list[Task],
             keyed: dict[tuple[tuple[str, ...], str], list[Any]],
             found: dict[Any, Any]) -> tuple[list[Task], list[Item], list[Miss]]:
    """The tasks left to run, the items of the cached ones and the misses to store."""
    hits: set[int] = set()
    items: list[Item] = []
    misses: list[Miss] = []
    for full_key, entries in keyed.items():
        cached = found.get(full_key)
        if cached is None:
            ns, key = full_key
            misses.extend((t, (tuple(ns), key), ttl) for t, ttl in entries)
            continue
        # As in LangGraph, of the step's tasks with one key only the last is looked up:
        # the others run (and store their writes) as on a miss.
        *others, (t, _ttl) = entries
        ns, key = full_key
        misses.extend((other, (tuple(ns), key), ttl) for other, ttl in others)
        hits.add(id(t))
        _reuse(run, t, cached)
        if run.spec.wants("updates", t.name):
            items.append(run.emit("updates", {t.name: t.update,
                                              "__metadata__": {"cached": True}}))
    return [t for t in tasks if id(t) not in hits], items, misses


def _found(found: dict[Any, Any]) -> dict[Any, Any]:
    """A cache's answer keyed by `(tuple namespace, key)` (a `Namespace` is a tuple)."""
    return {(tuple(ns), key): value for (ns, key), value in found.items()}


def lookup(run: GraphRun, tasks: list[Task]) -> tuple[list[Task], list[Item], list[Miss]]:
    """Looks the step's cacheable tasks up (`cache.get`): the tasks to run, the items of
    those found and the misses (see `_matched`)."""
    keyed = _keys(run, tasks)
    if not keyed:
        return tasks, [], []
    return _matched(run, tasks, keyed, _found(run.graph.cache.get(tuple(keyed))))


async def alookup(run: GraphRun,
                  tasks: list[Task]) -> tuple[list[Task], list[Item], list[Miss]]:
    """`lookup` with `cache.aget`."""
    keyed = _keys(run, tasks)
    if not keyed:
        return tasks, [], []
    return _matched(run, tasks, keyed, _found(await run.graph.cache.aget(tuple(keyed))))


def _reuse(run: GraphRun, t: Task, cached: Any) -> None:
    """Cached writes stand in for running task `t`."""
    graph = run.graph
    cached = [(c, v) for c, v in cached]  # the serializer may give lists for tuples
    t.writes = engine_writes(graph, cached, skip={c for c, _ in graph.static_writes[t.node_id]})
    t.result_writes = [(c, v) for c, v in cached if c in graph.key_ids]
    if "updates" in run.spec.modes:
        t.update = update_payload(t.result_writes, run.output_name_set, run.single_key)
    if run.saving is not None:
        run.saving.task_ended(t)


# -- storing ----------------------------------------------------------------------------------


def _entries(run: GraphRun, misses: list[Miss]) -> dict[Any, Any]:
    entries: dict[Any, Any] = {}
    for t, full_key, ttl in misses:
        if t.error is not None or t.interrupts or t.handled is not None:
            continue  # only a node that finished goes to the cache, as in LangGraph
        writes = saved_form(run.graph, t.writes, t.node_id, tracked_only=False)
        if writes:
            entries[full_key] = (writes, ttl)
    return entries


def store(run: GraphRun, misses: list[Miss]) -> None:
    """Stores what the step's missed tasks wrote (`cache.set`)."""
    if misses and (entries := _entries(run, misses)):
        run.graph.cache.set(entries)


async def astore(run: GraphRun, misses: list[Miss]) -> None:
    """`store` with `cache.aset`."""
    if misses and (entries := _entries(run, misses)):
        await run.graph.cache.aset(entries)


# -- a step, for the drivers ------------------------------------------------------------------


def run_step(run: GraphRun, step: Step,
             execute: Callable[[list[Task]], Iterator[list[Item]]]) -> Iterator[list[Item]]:
    """A step of a graph with a cache: the cached tasks' items, then `execute` of the
    others, whose writes are stored once they have all ended."""
    tasks, items, misses = lookup(run, step.tasks)
    if items:
        yield items
    if tasks:
        yield from execute(tasks)
    store(run, misses)


async def arun_step(run: GraphRun, step: Step,
                    execute: Callable[[list[Task]], AsyncIterator[list[Item]]]
                    ) -> AsyncIterator[list[Item]]:
    """`run_step` on the event loop, with the cache's async methods."""
    tasks, items, misses = await alookup(run, step.tasks)
    if items:
        yield items
    if tasks:
        async for batch in execute(tasks):
            yield batch
    await astore(run, misses)


# -- writes in LangGraph's form ---------------------------------------------------------------


