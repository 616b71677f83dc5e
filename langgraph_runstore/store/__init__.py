"""Run stores: the RunStore interface and its memory and SQL backends."""

from langgraph_runstore.store.base import RunStore, StatusGuard, StatusWrite
from langgraph_runstore.store.memory import MemoryRunStore
from langgraph_runstore.store.sql import SQLRunStore

__all__ = ["MemoryRunStore", "RunStore", "SQLRunStore", "StatusGuard", "StatusWrite"]
