"""``langgraph-runstore ui``: a local web page over your own run store (the ``[ui]`` extra).

``create_app(db)`` is the Starlette application the command serves: the runs table with
filters and keyset pages, a run's detail, a thread, and the usage charts, all rendered on
the server from the package's read API, with the stylesheet and the one script bundled in
the package (nothing is fetched from elsewhere). Pages with active runs refresh them live.
"""

from __future__ import annotations

from langgraph_runstore.ui.app import create_app

__all__ = ["create_app"]
