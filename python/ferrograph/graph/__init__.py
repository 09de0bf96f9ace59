"""LangGraph's graph-building API: change `langgraph.graph` to `ferrograph.graph`."""

from ferrograph.constants import END, START
from ferrograph.graph.message import MessagesState, add_messages
from ferrograph.graph.state import CompiledStateGraph, StateGraph

__all__ = ["END", "START", "CompiledStateGraph", "MessagesState", "StateGraph", "add_messages"]
