"""The HTML report's per-run drill-down: each run it lists links to a section with the
run's event timeline (an SVG of its nodes, LLM calls and tools, and its events)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from langgraph_runstore import RunManager, SQLRunStore
from langgraph_runstore.report import write_report
from tests.graphs import listed_model, reply, single_node_graph
from tests.journal_graphs import AGENT_EVENTS, agent_graph

pytestmark = pytest.mark.asyncio


async def test_the_report_links_each_listed_run_to_its_timeline(
    db_url: str, tmp_path: Path
) -> None:
    async with SQLRunStore.from_url(db_url) as store, RunManager(store) as manager:
        good = await manager.wait(
            agent_graph(store.checkpointer), {"messages": [("user", "1 + 2?")]}, thread_id="a"
        )
        model = listed_model(reply("partial", "m-fail"))

        async def fail(state: dict) -> dict:
            await model.ainvoke(state["messages"])
            raise RuntimeError("the <tool> broke")

        bad = await manager.wait(single_node_graph(fail).compile(), {"messages": []}, thread_id="b")
        page_path = tmp_path / "report.html"
        data = await write_report(store, page_path)
    page = page_path.read_text()
    assert set(data.timelines) == {good.run_id, bad.run_id}
    for run in (good, bad):
        assert f'href="#run-{run.run_id}"' in page
        assert page.count(f'<details class="run" id="run-{run.run_id}">') == 1
    section = page[page.index(f'id="run-{good.run_id}"') :].split("</details>", 1)[0]
    assert re.search(r'<svg class="timeline" data-spans="(\d+)"', section).group(1) == str(
        sum(1 for kind, _ in AGENT_EVENTS if kind in ("node_ended", "llm_ended", "tool_ended"))
    )
    assert section.count('<tr><td class="num">') == len(AGENT_EVENTS)
    assert "planner in node call: 16 tokens" in section
    failed = page[page.index(f'id="run-{bad.run_id}"') :].split("</details>", 1)[0]
    assert "RuntimeError: the &lt;tool&gt; broke" in failed and "<tool>" not in failed
