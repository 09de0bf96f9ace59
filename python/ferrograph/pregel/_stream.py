"""What the caller asked to see, and the shape it is handed in.

`StreamSpec` is a run's subscription, resolved against its graph from `stream_mode`,
`subgraphs` and the `nodes=` filter; `open_channel` compiles it into the run's chunk channel,
so that what nobody subscribed to is dropped where it is produced. On the way out,
`ItemShape` turns the run's `(namespace, mode, item)` triples into what LangGraph's
`stream()` yields for those arguments, and `RunStream` hands them to the caller's `for` loop
a batch at a time.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ferrograph._core import ChunkChannel
from ferrograph.pregel._messages import MODE_FORWARD, MODE_MESSAGES
from ferrograph.pregel._tools import MODE_TOOLS

if TYPE_CHECKING:
    from ferrograph.pregel._loop import GraphRun
    from ferrograph.pregel.main import CompiledStateGraph

Item = tuple[tuple[str, ...], str, Any]
"""A run's stream item: `(namespace, mode, payload)`."""

# Stream modes as the chunk channel numbers them.
MODE_VALUES = 0
MODE_UPDATES = 1
MODE_CUSTOM = 3
MODE_TASKS = 4
MODE_DEBUG = 5
MODE_DONE = 7
"""Internal: a task finished (payload: its outcome)."""

MODE_IDS = {
    "values": MODE_VALUES,
    "updates": MODE_UPDATES,
    "messages": MODE_MESSAGES,
    "custom": MODE_CUSTOM,
    "tasks": MODE_TASKS,
    "debug": MODE_DEBUG,
    "checkpoints": 6,
    "tools": MODE_TOOLS,
}
MODE_NAMES = {v: k for k, v in MODE_IDS.items()}
CONTROL_NODE = 0xFFFF_FFFF
"""Node id of the run's own producer (task completions), always subscribed."""

CHANNEL_CAPACITY = 4096
"""How many items may wait for the consumer by default (`stream(buffer_size=...)`)."""


@dataclass(slots=True)
class StreamSpec:
    """What the consumer asked for, resolved against one graph."""

    modes: frozenset[str]
    subgraphs: bool = False
    nodes: frozenset[str] | None = None
    """Subscribed node names of this graph (None: all)."""
    inner: dict[str, frozenset[str] | None] = field(default_factory=dict)
    """For subgraph nodes: the filter their own run applies (None: all of its nodes)."""
    tags: frozenset[str] | None = None
    state_objects: bool = False
    """`values` items as state-schema objects (Pydantic, dataclass), as `version="v2"` has."""

    def wants(self, mode: str, node: str) -> bool:
        return mode in self.modes and (self.nodes is None or node in self.nodes)

    def forwards(self, node: str) -> bool:
        """Whether the run of subgraph node `node` streams its own items to this run."""
        return self.subgraphs and bool(self.modes) and (
            self.nodes is None or node in self.nodes or node in self.inner
        )


def resolve_stream_spec(graph: CompiledStateGraph, modes: frozenset[str], subgraphs: bool,
                        nodes: Sequence[str] | None) -> StreamSpec:
    """The subscription of a run of `graph`; `nodes` names its nodes, and nodes of its
    subgraphs as `parent/child` (an unknown name raises `ValueError` listing the nodes)."""
    if nodes is None:
        return StreamSpec(modes, subgraphs)
    if isinstance(nodes, str):
        nodes = [nodes]
    if not all(isinstance(n, str) for n in nodes):
        raise TypeError(f"nodes= takes node names (str), got {list(nodes)!r}")
    own: set[str] = set()
    inner: dict[str, set[str] | None] = {}
    for path in nodes:
        head, _, rest = path.partition("/")
        runner = graph.runners.get(head)
        if runner is None:
            raise ValueError(
                f"Unknown node {path!r} in nodes=: this graph's nodes are "
                f"{', '.join(repr(n) for n in graph.runners)}"
            )
        if not rest:
            own.add(head)
            continue
        if runner.is_langgraph:
            raise ValueError(
                f"Unsupported node {path!r} in nodes=: {head!r} is a graph compiled by "
                f"LangGraph, whose own nodes cannot be picked; name {head!r} to stream all "
                "of it")
        if not runner.is_subgraph:
            raise ValueError(f"Unknown node {path!r} in nodes=: {head!r} is not a subgraph")
        runner.action._check_nodes([rest])
        inner.setdefault(head, set()).add(rest)
    resolved = {name: (None if name in own else frozenset(v)) for name, v in inner.items()}
    for name in own:
        if graph.runners[name].is_subgraph:
            resolved[name] = None
    return StreamSpec(modes, subgraphs or bool(inner), frozenset(own), resolved)


def open_channel(graph: CompiledStateGraph, spec: StreamSpec,
                 buffer_size: int) -> ChunkChannel:
    """The run's chunk channel, subscribed to what `spec` asks for: producers of other nodes
    and modes find their pushes dropped at once (and their models not streaming at all)."""
    if spec.nodes is None:
        node_ids = None
    else:
        node_ids = [graph.plan.node_id(n) for n in {*spec.nodes, *spec.inner}]
        node_ids.append(CONTROL_NODE)
    modes = (1 << MODE_DONE) | (1 << MODE_FORWARD)
    for mode in spec.modes:
        modes |= 1 << MODE_IDS[mode]
    # With nothing streamed, only task completions cross: a small buffer is plenty.
    capacity = buffer_size if spec.modes else min(buffer_size, 64)
    return ChunkChannel(capacity, node_ids, modes)


class ItemShape:
    """How the run's `(namespace, mode, item)` triples are handed to the caller: the shape
    `stream_mode`, `subgraphs` and `version` ask for, as in LangGraph."""

    __slots__ = ("modes", "single", "subgraphs", "v2")

    def __init__(self, modes: list[str], single: bool, subgraphs: bool, version: str) -> None:
        self.modes = frozenset(modes)
        self.single = single
        self.subgraphs = subgraphs
        self.v2 = version == "v2"

    def __call__(self, ns: tuple[str, ...], mode: str, item: Any) -> Any:
        if self.v2:
            if mode == "values":
                return {"type": mode, "ns": ns, "data": item, "interrupts": ()}
            return {"type": mode, "ns": ns, "data": item}
        if self.subgraphs:
            return (ns, item) if self.single else (ns, mode, item)
        return item if self.single else (mode, item)

    def format(self, batch: list[tuple[tuple[str, ...], str, Any]]) -> list[Any]:
        """A batch of the run's items in this shape (items of modes not asked for left out)."""
        modes = self.modes
        if self.v2 or self.subgraphs:
            return [self(ns, mode, item) for ns, mode, item in batch if mode in modes]
        if self.single:
            return [item for _ns, mode, item in batch if mode in modes]
        return [(mode, item) for _ns, mode, item in batch if mode in modes]


class RunStream(itertools.chain):
    """What `stream()` returns: an iterator over the run's items (close it to stop early).

    A chain over the run's batches, so each item is handed over by C code: the Python work
    is done once per batch."""

    __slots__ = ("run", "shape", "_batches", "_current")

    run: GraphRun
    shape: ItemShape
    _batches: Generator[list[Any], None, None]
    _current: list[list[Any]]
    """The batch being handed over (in a list of its own: the stream and the generator
    share it without referring to each other, so a dropped stream is freed, and its run
    stopped, at once)."""

    @classmethod
    def over(cls, run: GraphRun, batches: Generator[list[Any], None, None],
             shape: ItemShape) -> RunStream:
        """The stream of `run`, whose items `batches` (its driver) produces."""
        current: list[list[Any]] = [[]]
        stream = cls.from_iterable(_formatted(batches, shape, current))
        stream.run, stream.shape, stream._batches, stream._current = (run, shape, batches,
                                                                       current)
        return stream

    def close(self) -> None:
        """Stops the run: producers still streaming are released, nothing more is yielded."""
        self._current[0].clear()  # the rest of the batch being handed over
        self._batches.close()


def _formatted(batches: Iterator[list[Any]], shape: ItemShape,
               current: list[list[Any]]) -> Iterator[list[Any]]:
    for batch in batches:
        current[0] = shape.format(batch)
        del batch
        yield current[0]
        # Handed over: let go of the items before waiting for the next batch, so they are
        # freed now rather than outlive young collections (and get the full ones to run).
        current[0].clear()


