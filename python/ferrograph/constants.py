"""Names shared with LangGraph: the virtual start and end nodes and the special tags."""

import sys

START = sys.intern("__start__")
"""The virtual node the graph's input enters through."""
END = sys.intern("__end__")
"""The virtual node a route to means "stop here"."""
TAG_NOSTREAM = sys.intern("nostream")
"""A chat model tagged with this never streams its tokens into `messages` mode."""
TAG_HIDDEN = sys.intern("langsmith:hidden")
"""Runs tagged with this are left out of traces and node-output streaming."""

__all__ = ["START", "END", "TAG_NOSTREAM", "TAG_HIDDEN"]
