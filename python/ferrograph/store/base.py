"""The store interface and its item and operation types, LangGraph's own
(`langgraph.store.base`)."""

from __future__ import annotations

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    NamespacePath,
    Op,
    PutOp,
    SearchItem,
    SearchOp,
)

__all__ = [
    "BaseStore",
    "GetOp",
    "Item",
    "ListNamespacesOp",
    "MatchCondition",
    "NamespacePath",
    "Op",
    "PutOp",
    "SearchItem",
    "SearchOp",
]
