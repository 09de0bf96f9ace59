"""Typed stubs for the native module (Rust, built by maturin)."""

from collections.abc import Callable
from typing import Any, final

__version__: str

# -- graph compilation and scheduling (rust/src/python/engine.rs) ---------------------------

class ConcurrentUpdate(Exception):
    """Several values for a last-value key in one step; `args[0]` is the key name."""

class OutOfSteps(Exception):
    """The recursion limit was reached before the graph stopped."""

def validate_node_name(name: str, existing: list[str]) -> None:
    """Raises `ValueError` (LangGraph's message) if `add_node` must refuse `name`."""

@final
class GraphPlan:
    """A validated, compiled graph: channels, triggers and static edges."""

    def __init__(
        self,
        keys: list[tuple[str, bool]],
        nodes: list[tuple[str, bool, list[str]]],
        edges: list[tuple[str, str]],
        waiting_edges: list[tuple[list[str], str]],
        branches: list[tuple[str, str, list[str] | None]],
        interrupt_before: list[str],
        interrupt_after: list[str],
    ) -> None: ...
    @property
    def node_names(self) -> list[str]: ...
    @property
    def channel_names(self) -> list[str]: ...
    def trigger_names(self, node: int) -> tuple[str, ...]: ...
    def node_id(self, name: str) -> int | None: ...
    def interrupts_before(self, node: int) -> bool: ...
    def interrupts_after(self, node: int) -> bool: ...
    def static_writes(self, node: int) -> list[tuple[str, str | None]]:
        """The node's static edges as LangGraph saves them among a task's writes."""

class Run:
    """One run's channel values, versions and pending sends."""

    def __init__(
        self,
        plan: GraphPlan,
        reducers: list[Any | None],
        initial: list[Any | None],
        recursion_limit: int,
    ) -> None: ...
    @property
    def step(self) -> int: ...
    def next_tasks(self) -> list[tuple[int, int | None, Any]]:
        """`(node_id, push_index, send_arg)` per task of the current step."""
    def apply(self, results: list[tuple[int, list[tuple[int, int, Any]]]]) -> list[int]:
        """Applies `(task_index, [(kind, target, value)])`; returns the written key ids."""
    def read(self, keys: list[int] | None = None) -> dict[str, Any]: ...
    @property
    def latest_version(self) -> int:
        """The newest version given to a channel (1, 2, ... in apply order)."""
    @property
    def consumed_channels(self) -> list[str]:
        """Channels whose version the last step moved only by consuming them (not updated,
        in LangGraph's `updated_channels` sense)."""
    @property
    def channel_versions(self) -> list[int]:
        """Each channel's version (0: never written), by channel id."""
    def checkpoint_changes(
        self, version_names: list[Any], start_value: Any, reset: bool
    ) -> tuple[dict[str, Any], list[str], dict[str, Any], dict[str, dict[str, Any]],
               list[tuple[str, Any]]]:
        """`(values, removed, versions, seen, sends)` changed since the last call (all of it
        with `reset`), in a checkpoint's terms; versions named by `version_names[v]`."""
    def checkpoint_into(
        self, version_names: list[Any], start_value: Any, values: dict[str, Any],
        versions: dict[str, Any], seen: dict[str, dict[str, Any]],
        untracked: frozenset[str] | None = None,
    ) -> tuple[dict[str, Any], list[str], list[tuple[str, Any]]]:
        """`checkpoint_changes` since the last call merged into a checkpoint's kept dicts
        (updated in place); returns `(changed versions, sorted updated channels, sends)`."""
    @staticmethod
    def restore(
        plan: GraphPlan,
        reducers: list[Any | None],
        channel_values: dict[str, Any],
        channel_versions: dict[str, Any],
        versions_seen: dict[str, dict[str, Any]],
        sends: list[tuple[int, Any]],
        step: int,
        recursion_limit: int,
        rank: dict[Any, int] | None = None,
    ) -> Run:
        """A run continuing from a checkpoint saved at `step` (versions as engine integers,
        or as the saver's names ranked by `rank`)."""
    def write_input(self) -> None:
        """Writes a new input into a restored run (the pending tasks are dropped)."""
    def advance_step(self) -> None:
        """Moves to the next step number without running one (a fork checkpoint's)."""
    def apply_external(self, writes: list[tuple[int, int, Any]],
                       as_node: int | None = None) -> list[int]:
        """Applies writes made outside a step (an update, a resume's `Command`), with
        `as_node`'s static edges; returns the written key ids."""

# -- the direct invoke driver (rust/src/python/direct.rs) ----------------------------------

def new_task_id() -> str:
    """A task id in UUID text form: unique in this process, unlike other processes' ids."""

def reseed_task_ids() -> None:
    """Draws a new per-process prefix for task ids (a forked child calls it)."""

@final
class DirectGraph:
    """A compiled graph as `invoke` runs it without a `GraphRun`: the whole run in Rust."""

    def __init__(
        self,
        plan: GraphPlan,
        nodes: list[
            tuple[
                Callable[..., Any] | None,  # the function (plain) or `NodeRunner.call`
                bool,  # plain: called as f(input) inside the task's config
                list[int],  # input key ids
                Callable[[dict[str, Any]], Any] | None,  # input coercion
                dict[str, Any],  # pull task metadata
                dict[str, Any],  # push task metadata
                bool,  # has conditional edges
            ]
        ],
        key_ids: dict[str, int],
        input_keys: list[bool],
        reducers: list[Any | None],
        hooks: dict[str, Any],
    ) -> None:
        """`hooks`: `context_var`, `map_input`, `output_writes`, `branch_writes`,
        `note_error`, `own_command`, `note_preparing_error`, `submit`, `watch` (see
        `pregel/_direct.py`)."""
    def invoke(
        self,
        graph: Any,
        input: Any,
        strict: bool,
        initial: list[Any | None],
        recursion_limit: int,
        config: dict[str, Any],
        configurable: dict[str, Any],
        metadata: dict[str, Any] | None,
        result_keys: list[int],
        max_concurrency: int | None,
        stop_check: Callable[[], None] | None,
        control: Any,
        paused: list[Any],
    ) -> dict[str, Any]:
        """Runs the graph to the end; raises `OutOfSteps`, `ConcurrentUpdate` or a task's
        own exception. Before each step that has tasks, a drain requested of `control` (a
        `RunControl`) stops the run with `GraphDrained`, and `stop_check` is called: what it
        raises stops the run. A node pausing at `interrupt()` adds its questions to
        `paused`, and the run stops once that step is applied."""

# -- checkpointed invoke's plain steps (rust/src/python/direct_thread.rs) ---------------------

def run_thread_steps(
    direct: DirectGraph,
    run: Run,
    graph: Any,
    strict: bool,
    config: dict[str, Any],
    configurable: dict[str, Any],
    metadata: dict[str, Any] | None,
    max_concurrency: int | None,
    stop_check: Callable[[], None] | None,
    control: Any,
    calls: dict[str, Callable[..., Any]],
) -> int:
    """Runs the steps of `run` (a checkpointed `GraphRun`'s) whose tasks `name_step` hands
    over: 0 when the run is over, 1 when the step planned last is the Python loop's to run, 2
    when a task of its paused (recorded on it). `calls`: `name_step(planned, step)` -> the
    tasks or None, `task_finished(task)` (its `writes` set), `task_failed(task, error)` -> the
    error that fails the step or None, `step_applied(tasks)` (see
    `pregel/_direct_thread.py`). Raises a failed task's error, `OutOfSteps` and
    `ConcurrentUpdate` as `invoke` does."""

# -- stream on the direct driver (rust/src/python/direct_stream.rs) ---------------------------

@final
class DirectStream:
    """One `stream` of `updates` / `values` on the direct driver, a step at a time."""

    def __init__(
        self,
        direct: DirectGraph,
        graph: Any,
        input: Any,
        strict: bool,
        initial: list[Any | None],
        recursion_limit: int,
        config: dict[str, Any],
        configurable: dict[str, Any],
        metadata: dict[str, Any] | None,
        output_ids: list[int],
        updates: bool,
        values: bool,
        max_concurrency: int | None,
        control: Any,
        paused: list[Any],
    ) -> None: ...
    def next_items(self) -> list[tuple[tuple[str, ...], str, Any]] | None:
        """The `(namespace, mode, item)` items of the next steps (never an empty list); None
        once the run is over. Raises as `DirectGraph.invoke` does, after the items before."""
    def close(self) -> None:
        """Stops the run: no task starts any more."""

# -- a step's crew (rust/src/python/crew.rs) ----------------------------------------------

@final
class StepCrew:
    """A worker's (or the scout's) weak handle on a step shared out by its crew: it does
    not keep the step alive, and does nothing once the step has ended."""

    def work(self) -> None:
        """On a worker: runs unclaimed tasks until none is left, recruiting two more workers
        before each."""
    def __call__(self) -> None:
        """For the scout: recruits two workers if tasks are still waiting."""

@final
class Crew:
    """The runners of one step: the calling thread, which takes tasks with `claim()`, and
    the workers recruited once the step proves slow. The scout, given `scout_handle()`,
    recruits two workers if tasks are still unclaimed when it looks; each worker recruits
    two more before each task it claims. At most `limit` runners (the caller included;
    None: no cap) run the `count` tasks, each exactly once.

    Workers call `run(index)`, which must report its own outcome and not raise (an error
    escaping it is printed as unraisable and the worker goes on). `submit(fn)` starts `fn`
    on a worker thread (`WorkerPool.submit`). Dropping the `Crew` ends the step for the
    scout's handle and for workers not started yet."""

    def __init__(
        self,
        count: int,
        limit: int | None,
        run: Callable[[int], None],
        submit: Callable[[Callable[[], None]], None],
    ) -> None:
        """`count` tasks, indexes `0..count`; a `limit` below 1 counts as 1."""
    @property
    def helpers(self) -> int:
        """How many workers the crew may recruit: `min(limit, count) - 1`, at least 0."""
    def claim(self) -> int | None:
        """The next unclaimed task index, now claimed by the calling thread; None once
        every task is claimed (or after `close()`)."""
    def scout_handle(self) -> StepCrew:
        """The weak handle to pass to the scout's `watch`; calling it recruits two workers
        while tasks are waiting."""
    def close(self) -> int:
        """Clears the unclaimed tasks: nothing more starts (after a failure or an early
        exit). Returns how many never will (the others were claimed and run to their end)."""

# -- the chunk channel (rust/src/python/chunks.rs) -----------------------------------------

class ChannelClosed(RuntimeError):
    """Raised by a push once the stream is closed."""

@final
class ChunkChannel:
    """Bounded many-producer, one-consumer channel of `(task, mode, payload)` chunks."""

    def __init__(
        self, capacity: int = 4096, nodes: list[int] | None = None, modes: int = ...
    ) -> None: ...
    def is_subscribed(self, node: int, mode: int) -> bool: ...
    def producer(
        self, node: int, task: int, step: int = 0, namespace: int = 0
    ) -> ChunkProducer: ...
    def drain(
        self, max_items: int = 1024, timeout: float | None = None
    ) -> list[tuple[int, int, Any]] | None: ...
    def set_waker(self, waker: Callable[[], object] | None) -> None:
        """For an event-loop consumer: called (from the pushing thread) once chunks arrive
        after `arm()` returned True, or on close. It must only schedule work."""
    def arm(self) -> bool:
        """True: nothing to drain yet, the waker will run. False: drain now."""
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def capacity(self) -> int: ...
    def __len__(self) -> int: ...

@final
class ChunkProducer:
    """Pushes one task's chunks; blocks (GIL released) while the channel is full."""

    def push(self, mode: int, payload: Any) -> bool: ...
    def try_push(self, mode: int, payload: Any) -> bool | None:
        """`push` that never waits: None when the channel is full."""
    def subscribed(self, mode: int) -> bool: ...

# -- the OpenAI-compatible streaming client (rust/src/python/models.rs) --------------------

ChatStreamItem = str | tuple[str, bool, list[tuple[int, str | None, str | None, str | None]]] | dict[str, Any] | bytes
"""A bare text delta; a bare delta `(content, role was "assistant", tool call fragments
(index, id, name, arguments))`; any other event, decoded; data for the caller to decode."""

ChatStreamEnd = tuple[str, str, bool, int, list[tuple[str, str]], bytes]
"""`(kind, message, before_body, status, headers, body)`; kind "done", "status", "timeout" or
"connection"."""

@final
class HttpClient:
    """A pool of HTTP connections (reqwest, rustls) with its connect timeout and proxy."""

    def __init__(self, connect_timeout: float | None = None, proxy: str | None = None) -> None: ...
    def stream(
        self, url: str, headers: list[tuple[str, str]], body: bytes,
        read_timeout: float | None = None,
    ) -> ChatStream:
        """Starts POSTing `body` and reading the answer's server-sent events."""

@final
class ChatStream:
    """One request's events, a batch at a time; dropping or closing it stops the request."""

    def next_batch(self) -> tuple[list[ChatStreamItem], ChatStreamEnd | None]:
        """Waits (GIL released) for items or the end."""
    def try_batch(
        self, waker: Callable[[], object]
    ) -> tuple[list[ChatStreamItem], ChatStreamEnd | None] | None:
        """The batch there is, or None: then `waker()` runs once (from the network thread)
        when there is one. It must only schedule work."""
    def close(self) -> None: ...

# -- checkpoint ids (rust/src/python/checkpoint_ids.rs) ------------------------------------

def new_checkpoint_id(step: int, last: int | None) -> tuple[str, int]:
    """LangGraph's `str(uuid6(clock_seq=step))`, later than timestamp `last`: `(id, its
    timestamp)`."""

def new_checkpoint_stamp(step: int, last: int | None) -> tuple[str, str, int]:
    """`new_checkpoint_id` and LangGraph's `ts` (`datetime.now(timezone.utc).isoformat()`)
    from one clock reading: `(id, ts, id timestamp)`."""

def next_version_name(current: str | int | None) -> str:
    """The channel version name after `current`, as the `get_next_version` of LangGraph's
    `InMemorySaver`, `SqliteSaver` and `PostgresSaver` makes it (`{n + 1:032}.{random:016}`)."""
