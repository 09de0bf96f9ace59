"""LangGraph's graph-building API: change `langgraph.graph` to `ferrograph.graph`."""

from ferrograph.constants import END, START
from ferrograph.graph.message import MessageGraph, MessagesState, add_messages
from ferrograph.graph.state import CompiledStateGraph, StateGraph

__all__ = ["END", "START", "CompiledStateGraph", "MessageGraph", "MessagesState", "StateGraph", "add_messages"]
