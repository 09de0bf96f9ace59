"""Drawing a compiled graph: what `get_graph()` / `get_graph(xray=...)` return.

This module owns the drawable topology of a graph: its nodes (with the data and metadata
LangGraph gives them), its edges (which ones, their order, conditional flags and labels) and
the expansion of subgraph nodes, so that `draw_mermaid()`, `draw_ascii()` and `to_json()` of
a ferrograph graph print what they print for the same graph built with LangGraph.

LangGraph finds the edges with a dry run of the graph's channels: every node that runs writes
the edges it always takes and, the first time it runs, the destinations its conditional
edges and `Command`s declare; a node's triggers, once written, become its incoming edges.
`_DryRun` makes the same dry run over the builder's declarations, with the same channel
semantics (`_Ephemeral`, `_AfterFinish`, `_Barrier`), and `draw` lays the result out as
LangGraph does. No user code runs.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from langchain_core.runnables import Runnable, RunnableLambda, RunnableSerializable
from langchain_core.runnables.graph import Graph

from ferrograph.constants import END, START
from ferrograph.pregel._nested import subgraph_of

DRY_RUN_STEPS = 250
"""How many steps the dry run goes on for (a graph with a cycle never runs out of tasks)."""

_RUNNABLE_CALLABLE = ("langgraph", "_internal", "_runnable", "RunnableCallable")
_COMPILED_STATE_GRAPH = ("langgraph", "graph", "state", "CompiledStateGraph")
_MISSING = object()


def branch_channel(node: str) -> str:
    """The channel whose write makes `node` run (LangGraph's name for it)."""
    return f"branch:to:{node}"


def join_channel(starts: Iterable[str], end: str) -> str:
    """The channel `end` waits on until every one of `starts` has run."""
    return f"join:{'+'.join(starts)}:{end}"


class DrawnNode(RunnableSerializable[Any, Any]):
    """A drawn node's data where LangGraph would hold a runnable of its own making (a
    function node, START, a ferrograph subgraph): the node's `action`, described in
    `to_json()` under the id of the class LangGraph holds there, so drawings compare equal.
    It is not run: the graph runs the action itself."""

    action: Any = None
    lc_path: tuple[str, ...]

    def lc_id(self) -> list[str]:  # type: ignore[override]  # per instance, not per class
        return list(self.lc_path)

    def invoke(self, input: Any, config: Any = None, **kwargs: Any) -> Any:
        raise NotImplementedError("a drawing's node data is not run; run the graph")


def node_data(name: str, action: Any) -> Any:
    """The data LangGraph's drawing holds for a node that runs `action`."""
    from ferrograph.pregel.main import CompiledStateGraph

    if isinstance(action, CompiledStateGraph):
        return DrawnNode(action=action, lc_path=_COMPILED_STATE_GRAPH)
    if isinstance(action, Runnable):
        return action
    if inspect.isgeneratorfunction(action) or inspect.isasyncgenfunction(action):
        return RunnableLambda(action, name=name)
    return DrawnNode(action=action, lc_path=_RUNNABLE_CALLABLE)


# ----------------------------------------------------------------------- the dry run


class Edge(NamedTuple):
    source: str
    target: str
    conditional: bool
    label: str | None


class _Written(NamedTuple):
    """A channel a node writes (or, inverted, a source that wrote a channel)."""

    name: str
    conditional: bool
    label: str | None


class _Ephemeral:
    """A node's trigger (LangGraph's EphemeralValue): set by a step, cleared by the next."""

    def __init__(self) -> None:
        self.value: Any = _MISSING

    def update(self, values: list[Any]) -> bool:
        if values:
            self.value = values[-1]
            return True
        if self.value is _MISSING:
            return False
        self.value = _MISSING
        return True

    def available(self) -> bool:
        return self.value is not _MISSING

    def consume(self) -> bool:
        return False

    def finish(self) -> bool:
        return False


class _AfterFinish:
    """A deferred node's trigger (LastValueAfterFinish): available once nothing else runs."""

    def __init__(self) -> None:
        self.value: Any = _MISSING
        self.finished = False

    def update(self, values: list[Any]) -> bool:
        if not values:
            return False
        self.value, self.finished = values[-1], False
        return True

    def available(self) -> bool:
        return self.value is not _MISSING and self.finished

    def consume(self) -> bool:
        if not self.finished:
            return False
        self.value, self.finished = _MISSING, False
        return True

    def finish(self) -> bool:
        if self.finished or self.value is _MISSING:
            return False
        self.finished = True
        return True


class _Barrier:
    """A waiting edge's channel (NamedBarrierValue[AfterFinish]): available once every
    source has written it (and, for a deferred node, once nothing else runs)."""

    def __init__(self, names: Iterable[str], deferred: bool) -> None:
        self.names = set(names)
        self.seen: set[str] = set()
        self.deferred = deferred
        self.finished = False

    def update(self, values: list[Any]) -> bool:
        updated = False
        for value in values:
            if value not in self.seen:
                self.seen.add(value)
                updated = True
        return updated

    def available(self) -> bool:
        return self.seen == self.names and (self.finished or not self.deferred)

    def consume(self) -> bool:
        if not self.available():
            return False
        self.seen, self.finished = set(), False
        return True

    def finish(self) -> bool:
        if not self.deferred or self.finished or self.seen != self.names:
            return False
        self.finished = True
        return True


class _Node(NamedTuple):
    name: str
    triggers: list[str]
    writes: list[tuple[str, Any]]
    """What it writes each time it runs: the channels of its edges."""
    declared: list[tuple[str, str | None]]
    """(channel or END, label) its `Command`s and conditional edges may write: written the
    first time it runs, in the order LangGraph's writers declare them."""


class _DryRun:
    """The dry run of one graph's channels, step by step, as LangGraph's drawing makes it."""

    def __init__(self, builder: Any) -> None:
        self.channels: dict[str, Any] = {START: _Ephemeral()}
        self.nodes: dict[str, _Node] = {START: _Node(START, [START], [], [])}
        for name, spec in builder.nodes.items():
            channel = branch_channel(name)
            self.channels[channel] = _AfterFinish() if spec.defer else _Ephemeral()
            ends = spec.ends or ()
            labels = ends.items() if isinstance(ends, dict) else ((e, None) for e in ends)
            self.nodes[name] = _Node(name, [channel], [], [
                (end if end == END else branch_channel(end), label) for end, label in labels])
        for source, target in builder.edges:
            if target != END:
                self.nodes[source].writes.append((branch_channel(target), None))
        for sources, target in builder.waiting_edges:
            if target != END:
                channel = join_channel(sources, target)
                self.channels[channel] = _Barrier(sources, builder.nodes[target].defer)
                self.nodes[target].triggers.append(channel)
                for source in sources:
                    self.nodes[source].writes.append((channel, source))
        for source, branches in builder.branches.items():
            for branch in branches.values():
                for label, end in (branch.ends or {}).items():
                    self.nodes[source].declared.append(
                        (end if end == END else branch_channel(end), str(label)))
        self.trigger_to_nodes: dict[str, list[str]] = defaultdict(list)
        for node in self.nodes.values():
            node.triggers.sort()
            for trigger in node.triggers:
                self.trigger_to_nodes[trigger].append(node.name)
        self.versions: dict[str, int] = {}
        self.seen: dict[str, dict[str, int]] = {}

    def apply(self, tasks: list[tuple[_Node | None, list[tuple[str, Any]]]]) -> set[str]:
        """Applies one step's writes (`None` for the input's); the channels now available
        that were updated."""
        channels, versions = self.channels, self.versions
        bump_step = any(node is not None for node, _ in tasks)
        for node, _ in tasks:
            if node is not None:
                self.seen.setdefault(node.name, {}).update(
                    {c: versions[c] for c in node.triggers if c in versions})
        version = max(versions.values(), default=0) + 1
        for channel in {c for node, _ in tasks if node is not None for c in node.triggers}:
            if channels[channel].consume():
                versions[channel] = version
        pending: dict[str, list[Any]] = defaultdict(list)
        for _, writes in tasks:
            for channel, value in writes:
                pending[channel].append(value)
        updated: set[str] = set()
        for channel, values in pending.items():
            if channels[channel].update(values):
                versions[channel] = version
                if channels[channel].available():
                    updated.add(channel)
        if bump_step:
            for name, channel in channels.items():
                if channel.available() and name not in updated and channel.update([]):
                    versions[name] = version
                    if channel.available():
                        updated.add(name)
            if updated.isdisjoint(self.trigger_to_nodes):  # the last step, unless finishing
                for name, channel in channels.items():  # makes a deferred node run
                    if channel.finish():
                        versions[name] = version
                        if channel.available():
                            updated.add(name)
        return updated

    def next_tasks(self, updated: set[str]) -> list[_Node]:
        if updated:
            candidates: Iterable[str] = sorted(
                {n for c in updated for n in self.trigger_to_nodes.get(c, ())})
        elif not self.versions:
            candidates = ()
        else:
            candidates = self.nodes
        tasks = []
        for name in candidates:
            node, seen = self.nodes[name], self.seen.get(name)
            if any(self.channels[c].available()
                   and (seen is None or self.versions.get(c, 0) > seen.get(c, 0))
                   for c in node.triggers):
                tasks.append(node)
        return tasks

    def edges(self) -> tuple[set[Edge], dict[str, set[_Written]]]:
        """Runs the graph dry: the edges found, and what the tasks of the last step wrote."""
        edges: set[Edge] = set()
        tasks = self.next_tasks(self.apply([(None, [(START, {})])]))
        declared_seen: set[str] = set()
        declared: dict[str, set[_Written]] = defaultdict(set)
        sources: dict[str, set[_Written]] = {}
        step_sources: dict[str, set[_Written]] = {}
        for _ in range(-1, DRY_RUN_STEPS):
            if not tasks:
                break
            conditionals: dict[tuple[str, str, Any], str | None] = {}
            writes: dict[str, list[tuple[str, Any]]] = {}
            for node in tasks:
                writes[node.name] = list(node.writes)
                if node.name in declared_seen:
                    continue
                declared_seen.add(node.name)
                for channel, label in node.declared:
                    if channel == END:
                        edges.add(Edge(node.name, END, True, label))
                        continue
                    conditionals[(node.name, channel, None)] = label
                    declared[node.name].add(_Written(channel, True, label))
                    writes[node.name].append((channel, None))
            step_sources = {}
            for node in tasks:
                written = set()
                for channel, value in writes[node.name]:
                    key = (node.name, channel, value or None)
                    written.add(_Written(channel, key in conditionals, conditionals.get(key)))
                step_sources[node.name] = written | declared.get(node.name, set())
            sources.update(step_sources)
            trigger_to_sources: dict[str, set[_Written]] = defaultdict(set)
            for source, triggers in sources.items():
                for channel, conditional, label in triggers:
                    trigger_to_sources[channel].add(_Written(source, conditional, label))
            tasks = self.next_tasks(self.apply([(n, writes[n.name]) for n in tasks]))
            for node in tasks:
                from_this_step = False
                for trigger in node.triggers:
                    for source, conditional, label in sorted(trigger_to_sources[trigger]):
                        edges.add(Edge(source, node.name, conditional, label))
                        written = _Written(trigger, conditional, label)
                        if written in step_sources.get(source, ()):
                            from_this_step = True
                        else:  # an older write: it leads here, and no further
                            sources[source].discard(written)
                if not from_this_step:  # led here by something undeclared: any of them
                    for source in step_sources:
                        edges.add(Edge(source, node.name, True, None))
        return edges, step_sources


# --------------------------------------------------------------------------- drawing


def draw(graph: Any, config: Any, xray: int | bool) -> Graph:
    """The drawable graph of `graph` (a `CompiledStateGraph`), subgraph nodes expanded
    `xray` levels deep (all of them for True)."""
    builder = graph.builder
    subgraphs = {}
    if xray:
        depth = xray if isinstance(xray, bool) or xray <= 0 else xray - 1
        for name, spec in builder.nodes.items():
            if (sub := subgraph_of(spec.action)) is not None:
                subgraphs[name] = sub.get_graph(config, xray=depth)

    edges, last_sources = _DryRun(builder).edges()
    drawing = Graph()
    drawing.add_node(DrawnNode(lc_path=_RUNNABLE_CALLABLE), START)
    for name, spec in builder.nodes.items():
        drawing.add_node(node_data(name, spec.action), name,
                         metadata=_metadata(graph, name, spec) or None)
    for source, target, conditional, label in sorted(edges):
        _add_edge(drawing, source, target, label if label != target else None, conditional)
    # Nodes that lead nowhere end the run; failing those, the one node of the last step.
    termini = {t for _, t, _, _ in edges if t != END} - {s for s, _, _, _ in edges}
    if termini:
        for source in sorted(termini):
            _add_edge(drawing, source, END)
    elif len(last_sources) == 1 and not any(t == END for _, t, _, _ in edges):
        for source in last_sources:
            _add_edge(drawing, source, END, conditional=True)
    for name, sub in subgraphs.items():
        _expand(drawing, name, sub)
    return drawing


def _metadata(graph: Any, name: str, spec: Any) -> dict[str, Any]:
    metadata = dict(spec.metadata or {})
    if spec.defer:
        metadata["defer"] = True
    before = name in graph.interrupt_before_nodes
    after = name in graph.interrupt_after_nodes
    if before or after:
        metadata["__interrupt"] = ",".join(
            when for when, on in (("before", before), ("after", after)) if on)
    tools = getattr(spec.action, "tools_by_name", None) if isinstance(
        spec.action, Runnable) else None
    if isinstance(tools, Mapping) and tools:  # a ToolNode (duck-typed, as LangGraph does)
        metadata["__tools"] = list(tools)
    return metadata


def _add_edge(drawing: Graph, source: str, target: str, label: str | None = None,
              conditional: bool = False) -> None:
    """Adds an edge unless one joins the same nodes already (the first one found wins)."""
    if any(e.source == source and e.target == target for e in drawing.edges):
        return
    if target == END and END not in drawing.nodes:
        drawing.add_node(None, END)
    drawing.add_edge(drawing.nodes[source], drawing.nodes[target], label, conditional)


def _expand(drawing: Graph, name: str, sub: Graph) -> None:
    """Puts the drawing of a subgraph in place of its node, its node ids prefixed with the
    node's name, edges into the node going to its first node and out of its last."""
    if not (len(sub.nodes) > 1 and name in drawing.nodes and sub.first_node()
            and sub.last_node()):
        return
    sub.trim_first_node()
    sub.trim_last_node()
    drawing.nodes.pop(name)
    first, last = drawing.extend(sub, prefix=name)
    for i, edge in enumerate(drawing.edges):
        if edge.source == name:
            edge = edge.copy(source=last.id)  # type: ignore[union-attr]
        if edge.target == name:
            edge = edge.copy(target=first.id)  # type: ignore[union-attr]
        drawing.edges[i] = edge
