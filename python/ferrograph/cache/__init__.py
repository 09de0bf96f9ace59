"""Node-result caches, LangGraph's own (`langgraph.cache`): `ferrograph.cache.base` and
`.memory`."""
