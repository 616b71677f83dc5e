"""Testing your own agents: ``assert_run`` and ``async_fixture``; the pytest plugin
(``langgraph_runstore.testing.plugin``, loaded through its ``pytest11`` entry point) adds the
``run_store``, ``run_manager`` and ``sync_run_manager`` fixtures and ``--runstore-url``.

Importing this package loads pytest but nothing of LangGraph or SQLAlchemy, so the plugin
costs nothing in a test run that does not use its fixtures.
"""

from __future__ import annotations

from langgraph_runstore.testing.assertions import assert_run
from langgraph_runstore.testing.loops import async_fixture

__all__ = ["assert_run", "async_fixture"]
