"""langgraph-runstore: a durable record of every LangGraph run, beside its checkpoints."""

from langgraph_runstore.errors import (
    CheckpointError,
    ConflictError,
    DatabaseConfigError,
    InvalidInputError,
    InvalidTransitionError,
    RunAlreadyInvokedError,
    RunNotFoundError,
    RunStoreError,
    SchemaVersionError,
    UnsupportedStrategyError,
)
from langgraph_runstore.manager import PersistenceRetryPolicy, RunManager
from langgraph_runstore.schemas import (
    CancelAction,
    DisconnectMode,
    MultitaskStrategy,
    RunRecord,
    RunStatus,
    ThreadStatus,
    TokenUsage,
)
from langgraph_runstore.store import MemoryRunStore, RunStore, SQLRunStore

__version__ = "0.1.0"

__all__ = [
    "CancelAction",
    "CheckpointError",
    "ConflictError",
    "DatabaseConfigError",
    "DisconnectMode",
    "InvalidInputError",
    "InvalidTransitionError",
    "MemoryRunStore",
    "MultitaskStrategy",
    "PersistenceRetryPolicy",
    "RunAlreadyInvokedError",
    "RunManager",
    "RunNotFoundError",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "RunStoreError",
    "SQLRunStore",
    "SchemaVersionError",
    "ThreadStatus",
    "TokenUsage",
    "UnsupportedStrategyError",
]
