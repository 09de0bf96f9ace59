"""Long-term memory stores, LangGraph's own (`langgraph.store`): `ferrograph.store.base`,
`.memory` and, from the `ferrograph[postgres]` extra, `.postgres`."""
