"""The package's LangGraph checkpointer, on the same SQLAlchemy engine as the run store."""

from langgraph_runstore.checkpoint.saver import SQLAlchemySaver

__all__ = ["SQLAlchemySaver"]
