"""langgraph-runstore: a durable record of every LangGraph run, beside its checkpoints.

Public names load on first use (PEP 562), so ``import langgraph_runstore`` and the
``langgraph-runstore`` command stay quick: LangGraph and langchain-core load only when a
name that needs them (RunManager, RunTracker, SQLAlchemySaver ...) is first touched.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "ActiveRunError": "errors",
    "BackgroundRetryPolicy": "durability",
    "Budget": "budget",
    "CancelAction": "schemas",
    "CheckpointError": "errors",
    "ConflictError": "errors",
    "DatabaseConfigError": "errors",
    "DatabaseConnectionError": "errors",
    "DisconnectMode": "schemas",
    "ForeignDatabaseError": "errors",
    "IdempotencyKeyError": "errors",
    "InvalidInputError": "errors",
    "InvalidTransitionError": "errors",
    "JournalConfig": "journal",
    "MemoryRunStore": "store.memory",
    "MultitaskStrategy": "schemas",
    "NoWorkerError": "errors",
    "PersistenceRetryPolicy": "retry",
    "PruneRefusedError": "errors",
    "PruneResult": "query",
    "RecoveryPolicy": "workers",
    "RunAlreadyInvokedError": "errors",
    "RunEvent": "journal",
    "RunManager": "manager",
    "RunNotFoundError": "errors",
    "RunPage": "query",
    "RunRecorder": "recorder",
    "RunRecord": "schemas",
    "RunStatus": "schemas",
    "RunStore": "store.base",
    "RunStoreError": "errors",
    "RunTracker": "tracking",
    "SQLAlchemySaver": "checkpoint",
    "SQLRunStore": "store.sql",
    "SchemaVersionError": "errors",
    "SyncRunManager": "sync",
    "SyncRunTracker": "sync_tracking",
    "ThreadStatus": "schemas",
    "TokenPrice": "pricing",
    "TokenUsage": "schemas",
    "UnsupportedStrategyError": "errors",
    "UsageRow": "query",
}

__all__ = [
    "ActiveRunError",
    "BackgroundRetryPolicy",
    "Budget",
    "CancelAction",
    "CheckpointError",
    "ConflictError",
    "DatabaseConfigError",
    "DatabaseConnectionError",
    "DisconnectMode",
    "ForeignDatabaseError",
    "IdempotencyKeyError",
    "InvalidInputError",
    "InvalidTransitionError",
    "JournalConfig",
    "MemoryRunStore",
    "MultitaskStrategy",
    "NoWorkerError",
    "PersistenceRetryPolicy",
    "PruneRefusedError",
    "PruneResult",
    "RecoveryPolicy",
    "RunAlreadyInvokedError",
    "RunEvent",
    "RunManager",
    "RunNotFoundError",
    "RunPage",
    "RunRecord",
    "RunRecorder",
    "RunStatus",
    "RunStore",
    "RunStoreError",
    "RunTracker",
    "SQLAlchemySaver",
    "SQLRunStore",
    "SchemaVersionError",
    "SyncRunManager",
    "SyncRunTracker",
    "ThreadStatus",
    "TokenPrice",
    "TokenUsage",
    "UnsupportedStrategyError",
    "UsageRow",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'langgraph_runstore' has no attribute {name!r}")
    value = getattr(import_module(f"langgraph_runstore.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:
    from langgraph_runstore.budget import Budget
    from langgraph_runstore.checkpoint import SQLAlchemySaver
    from langgraph_runstore.durability import BackgroundRetryPolicy
    from langgraph_runstore.errors import (
        ActiveRunError,
        CheckpointError,
        ConflictError,
        DatabaseConfigError,
        DatabaseConnectionError,
        ForeignDatabaseError,
        IdempotencyKeyError,
        InvalidInputError,
        InvalidTransitionError,
        NoWorkerError,
        PruneRefusedError,
        RunAlreadyInvokedError,
        RunNotFoundError,
        RunStoreError,
        SchemaVersionError,
        UnsupportedStrategyError,
    )
    from langgraph_runstore.journal import JournalConfig, RunEvent
    from langgraph_runstore.manager import RunManager
    from langgraph_runstore.pricing import TokenPrice
    from langgraph_runstore.query import PruneResult, RunPage, UsageRow
    from langgraph_runstore.recorder import RunRecorder
    from langgraph_runstore.retry import PersistenceRetryPolicy
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
    from langgraph_runstore.sync import SyncRunManager
    from langgraph_runstore.sync_tracking import SyncRunTracker
    from langgraph_runstore.tracking import RunTracker
    from langgraph_runstore.workers import RecoveryPolicy
