"""Managed values: state keys whose value the runtime gives each task rather than storing
it (LangGraph's `langgraph.managed`). A key annotated `RemainingSteps` reads as the number
of steps left before the recursion limit; one annotated `IsLastStep`, as whether this is the
last of them. Nodes and routers see them in their state; writes to them are ignored, and they
are neither input nor output. LangGraph's own `RemainingSteps` / `IsLastStep` work the same.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Annotated, Any, Generic, NamedTuple, TypeVar

V = TypeVar("V")


class Steps(NamedTuple):
    """What a managed value is computed from: the task's step and the run's last step
    (the recursion limit), read as LangGraph's scratchpad's `step` and `stop`."""

    step: int
    stop: int


class ManagedValue(ABC, Generic[V]):
    """A kind of managed value: `get` computes it for a task."""

    @staticmethod
    @abstractmethod
    def get(scratchpad: Any) -> V: ...


class IsLastStepManager(ManagedValue[bool]):
    @staticmethod
    def get(scratchpad: Any) -> bool:
        return scratchpad.step == scratchpad.stop - 1


class RemainingStepsManager(ManagedValue[int]):
    @staticmethod
    def get(scratchpad: Any) -> int:
        return scratchpad.stop - scratchpad.step


IsLastStep = Annotated[bool, IsLastStepManager]
RemainingSteps = Annotated[int, RemainingStepsManager]

__all__ = ["IsLastStep", "ManagedValue", "RemainingSteps", "Steps"]
