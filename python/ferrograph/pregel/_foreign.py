"""Nodes and routers made by LangGraph's own code, run as ferrograph tasks: LangGraph's
`RunnableCallable` (the prebuilt `ToolNode`, the nodes and edges of `create_react_agent` and
`langchain.agents.create_agent`, their middleware) in a ferrograph graph.

Such code reads the task config as LangGraph's engine fills it, and speaks LangGraph's types.
What it reads, and finds in a foreign task's config (`foreign_task_config`):
- `__pregel_runtime`: the task's `Runtime`, its `execution_info` filled in (the run's is
  shared by the tasks that do not ask for theirs);
- `__pregel_scratchpad` and `__pregel_send`: LangGraph's `interrupt()` counts its calls and
  finds its answers in the first (`ForeignScratchpad`, over the task's own `Scratchpad`), and
  records the answers it used with the second, which also takes LangGraph's `push_message`
  state writes;
- `__pregel_read_state` (a pushed task of a node that asks for it: `reads_state_on_send`):
  the state the node would get from an edge, which a `ToolNode` given tool calls by a `Send`
  reads.
What it returns or raises in LangGraph's types (`Command`, `Send`, `GraphInterrupt` and its
`Interrupt`s, `ParentCommand`) is made ferrograph's (`from_langgraph`, `own_signal`).

No LangGraph import: LangGraph's classes are recognised by module and name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ferrograph.config import CONFIG_KEY_RUNTIME, CONFIG_KEY_TASK, CONFIG_KEY_TASK_ID
from ferrograph.errors import GraphInterrupt, ParentCommand
from ferrograph.runtime import task_runtime
from ferrograph.types import Command, Interrupt, Send

CONFIG_KEY_SCRATCHPAD = "__pregel_scratchpad"
CONFIG_KEY_SEND = "__pregel_send"
CONFIG_KEY_READ_STATE = "__pregel_read_state"
RESUME = "__resume__"


def _made_by_langgraph(action: Any, module: str, name: str) -> bool:
    return any(c.__name__ == name and c.__module__.startswith(module)
               for c in type(action).__mro__)


def is_langgraph_callable(action: Any) -> bool:
    """Whether a node's action (or a router) is LangGraph's `RunnableCallable`."""
    return _made_by_langgraph(action, "langgraph.", "RunnableCallable")


def reads_state_on_send(action: Any) -> bool:
    """Whether the node reads the graph's state when a `Send` gives it other input
    (LangGraph's `ToolNode`, given a list of tool calls)."""
    return _made_by_langgraph(action, "langgraph.prebuilt", "ToolNode")


class ForeignScratchpad:
    """What LangGraph's `interrupt()` finds under `__pregel_scratchpad` (LangGraph's
    `PregelScratchpad`), kept in the task's own `Scratchpad` (with a checkpointer), else
    in itself: one count of interrupts per task, whichever `interrupt()` is called."""

    __slots__ = ("step", "stop", "_pad", "_counter", "_calls", "_subgraphs")

    def __init__(self, pad: Any, step: int, stop: int) -> None:
        self.step = step
        self.stop = stop
        self._pad = pad
        self._counter = self._calls = self._subgraphs = 0

    @property
    def resume(self) -> list[Any]:
        return self._pad.resume if self._pad is not None else []

    def interrupt_counter(self) -> int:
        if self._pad is not None:
            return self._pad.next_index()
        self._counter += 1
        return self._counter - 1

    def get_null_resume(self, consume: bool = False) -> Any:
        if self._pad is None or not consume:
            return None
        return self._pad.take_null_resume()

    def call_counter(self) -> int:
        self._calls += 1
        return self._calls - 1

    def subgraph_counter(self) -> int:
        self._subgraphs += 1
        return self._subgraphs - 1


def _sender(task_id: str | None, pad: Any) -> Callable[[list[tuple[str, Any]]], None]:
    """The task's `__pregel_send`: the answers an interrupt used are saved with the task's
    writes; a state write (`push_message`) is applied with the node's update."""

    def send(writes: list[tuple[str, Any]]) -> None:
        from ferrograph.pregel._write import PUSHED_WRITES  # (it imports this module)

        for channel, value in writes:
            if channel == RESUME:
                if pad is not None:
                    pad.resume_written = list(value)
            elif channel.startswith("__"):
                raise NotImplementedError(
                    f"ferrograph does not take LangGraph's writes to the channel {channel!r} "
                    "from a node")
            elif task_id is not None:
                PUSHED_WRITES.setdefault(task_id, Command(update=[])).update.append(
                    (channel, value))

    return send


def foreign_task_config(config: dict[str, Any], read_state: Any = None) -> dict[str, Any]:
    """The task's config as LangGraph's code reads it (see the module doc)."""
    configurable = config["configurable"]
    task = configurable.get(CONFIG_KEY_TASK)
    pad = getattr(task, "scratchpad", None)
    step = getattr(task, "step", 0)
    foreign = {
        **configurable,
        CONFIG_KEY_RUNTIME: task_runtime(config),
        CONFIG_KEY_SCRATCHPAD: ForeignScratchpad(
            pad, step, step + config.get("recursion_limit", 25)),
        CONFIG_KEY_SEND: _sender(configurable.get(CONFIG_KEY_TASK_ID), pad),
    }
    if read_state is not None:
        foreign[CONFIG_KEY_READ_STATE] = read_state
    return {**config, "configurable": foreign}


def _is_langgraph_type(value: Any, name: str) -> bool:
    cls = type(value)
    return cls.__name__ == name and cls.__module__ == "langgraph.types"


def _send(value: Any) -> Any:
    if _is_langgraph_type(value, "Send"):
        return Send(value.node, value.arg, timeout=getattr(value, "timeout", None))
    return value


def from_langgraph(value: Any) -> Any:
    """A foreign node's (or router's) result with LangGraph's `Command` and `Send` made
    ferrograph's (also inside a list, and a command's `goto`)."""
    if isinstance(value, list):
        if any(type(v).__module__ == "langgraph.types" for v in value):
            return [from_langgraph(v) for v in value]
        return value
    if type(value).__module__ != "langgraph.types":
        return value
    if _is_langgraph_type(value, "Command"):
        goto = value.goto
        if isinstance(goto, (list, tuple)):
            goto = [_send(g) for g in goto]
        else:
            goto = _send(goto)
        return Command(graph=value.graph, update=value.update, resume=value.resume,
                       goto=goto)
    return _send(value)


def own_signal(error: BaseException) -> BaseException:
    """LangGraph's `GraphInterrupt` or `ParentCommand` raised by a foreign node, as
    ferrograph's (any other error as it is)."""
    name = type(error).__name__
    if not type(error).__module__.startswith("langgraph."):
        return error
    if name == "GraphInterrupt" or any(c.__name__ == "GraphInterrupt"
                                       for c in type(error).__mro__):
        questions = error.args[0] if error.args else ()
        return GraphInterrupt(tuple(
            Interrupt(q.value, q.id, response_schema=getattr(q, "response_schema", None))
            if type(q).__name__ == "Interrupt" else q for q in questions))
    if name == "ParentCommand":
        return ParentCommand(from_langgraph(error.args[0]))
    return error
