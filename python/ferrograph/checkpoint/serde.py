"""Checkpoint serializers, LangGraph's own (`langgraph.checkpoint.serde`)."""

from __future__ import annotations

from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

__all__ = ["EncryptedSerializer", "JsonPlusSerializer", "SerializerProtocol"]
