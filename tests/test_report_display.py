"""Notebook display, DataFrames, and the HTML report rendered by headless Chromium."""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from langgraph_runstore import RunRecord, RunStatus, SQLRunStore
from langgraph_runstore.display import STATUS_COLORS, format_duration, run_html, runs_html
from langgraph_runstore.query import RunPage
from langgraph_runstore.report import COST_COLOR, INPUT_COLOR, MODEL_COLOR, OUTPUT_COLOR
from tests.cli.helpers import ago, run_cli


def record(**fields: object) -> RunRecord:
    base: dict[str, object] = {
        "run_id": "3f2a9c1e-0000-4000-8000-000000000001",
        "thread_id": "t1",
        "status": "success",
        "created_at": "2026-01-02T03:04:05.000000+00:00",
        "started_at": "2026-01-02T03:04:05.000000+00:00",
        "ended_at": "2026-01-02T03:04:07.500000+00:00",
        "input_tokens": 1200,
        "output_tokens": 34,
        "total_tokens": 1234,
        "llm_call_count": 3,
        "token_usage_by_model": {"gpt-x": {"total_tokens": 1234}},
        "last_ai_message": "Here is <b>the</b> answer. " + "More words. " * 30,
    }
    base.update(fields)
    return RunRecord.from_row(base)


def test_run_record_html_shows_status_tokens_duration_and_a_short_message() -> None:
    page = record()._repr_html_()
    assert STATUS_COLORS["success"] in page and ">success<" in page
    assert "1,234 total (1,200 in, 34 out)" in page
    assert "2.50 s" in page and ">3<" in page and "gpt-x" in page
    assert "&lt;b&gt;the&lt;/b&gt;" in page and "<b>the</b>" not in page  # escaped
    message = re.search(r"last AI message</th><td[^>]*>([^<]*)<", page)
    shown = html.unescape(message.group(1)) if message else ""
    assert 150 < len(shown) <= 160 and shown.endswith("…")
    failed = run_html(record(status="error", error="ValueError: <nope>", last_ai_message=None))
    assert STATUS_COLORS["error"] in failed and "ValueError: &lt;nope&gt;" in failed


def test_a_page_of_runs_shows_as_one_table() -> None:
    runs = (record(), record(run_id="r2", status="running", ended_at=None), record(run_id="r3"))
    page = RunPage(runs, next_cursor="abc")
    table = page._repr_html_()
    assert table.count("<tr>") == 4  # header and three runs
    assert STATUS_COLORS["running"] in table and "3 runs; more with cursor=abc" in table
    # a page of store rows (what a RunStore's list_runs returns) shows the same way
    assert RunPage(tuple(r.to_row() for r in runs))._repr_html_().count("<tr>") == 4
    assert format_duration(0.5) == "0.50 s" and format_duration(75) == "1 min 15 s"
    assert format_duration(7300) == "2 h 01 min"


def test_to_dataframe_has_a_row_per_run_and_typed_columns() -> None:
    pd = pytest.importorskip("pandas")
    page = RunPage((record(), record(run_id="r2", status="error", ended_at=None)))
    frame = page.to_dataframe()
    assert list(frame["run_id"]) == [page[0].run_id, "r2"]
    assert list(frame["status"]) == ["success", "error"]
    assert (
        str(frame["created_at"].dtype).startswith("datetime64")
        and str(frame["created_at"].dt.tz) == "UTC"
    )
    assert frame["duration_seconds"].iloc[0] == 2.5 and pd.isna(frame["duration_seconds"].iloc[1])
    assert frame["total_tokens"].sum() == 2468
    assert len(record().to_dataframe()) == 1


def test_paused_runs_are_marked_apart_from_plain_success() -> None:
    waiting = [{"id": "i1", "value": {"question": "Send <it>?"}, "ns": ["approve:1"]}]
    paused = record(run_id="p1", stop_reason="interrupt", interrupts=waiting)
    page = paused._repr_html_()
    assert ">paused<" in page and STATUS_COLORS["paused"] in page and ">success<" not in page
    assert "waiting on" in page and "Send &lt;it&gt;?" in page
    table = runs_html([paused, record()])
    assert table.count(">paused<") == 1 and table.count(">success<") == 1
    pytest.importorskip("pandas")
    frame = RunPage((paused, record())).to_dataframe()
    assert list(frame["paused"]) == [True, False] and list(frame["status"]) == ["success"] * 2
    assert frame["interrupts"].iloc[0] == waiting


def test_to_dataframe_without_pandas_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"pip install 'langgraph-runstore\[pandas\]'"):
        record().to_dataframe()


# -- the report in a real browser -------------------------------------------------------------

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; installed here when missing (as root, as in CI)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() != 0:
        pytest.skip("chromium is not installed and this is not root: apt-get install chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env, capture_output=True
    )
    found = shutil.which("chromium")
    assert found, "apt-get install chromium did not provide a chromium binary"
    return found


def browse(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _fill(url: str) -> None:
    models = ["gpt-4o", "gpt-4o-mini", "claude-sonnet"]
    statuses = ["success"] * 6 + ["error", "timeout", "interrupted"]
    async with SQLRunStore.from_url(url) as store:
        for i in range(90):
            status = statuses[i % len(statuses)]
            model = models[i % 3]
            inp, out = 100 + 37 * i, 20 + 11 * i
            created = ago(i % 14 + 0.1)
            await store.put(
                f"run-{i:03d}",
                thread_id=f"thread-{i % 9}",
                status=status,
                created_at=created,
                started_at=created,
                ended_at=ago(i % 14 + 0.1 - (i % 7 + 1) / 86400),
                input_tokens=inp,
                output_tokens=out,
                total_tokens=inp + out,
                llm_call_count=1 + i % 3,
                token_usage_by_model={
                    model: {
                        "input_tokens": inp,
                        "output_tokens": out,
                        "total_tokens": inp + out,
                        "llm_call_count": 1 + i % 3,
                        "cost_usd": (inp + out) / 1e5,
                    }
                },
                cost_usd=(inp + out) / 1e5,
                llm_call_ms={model: [float(10 + i % 5)] * (1 + i % 3)},
                error=f"RuntimeError: failure {i}" if status in ("error", "timeout") else None,
                # every ninth success paused on an interrupt: its own bar and badge
                stop_reason="interrupt" if status == "success" and i % 9 == 0 else None,
            )
        await store.put("run-live", thread_id="live", status="running", created_at=ago(0.01))


@pytest.fixture
def report_file(tmp_path: Path) -> Iterator[Path]:
    db = tmp_path / "runs.db"
    asyncio.run(_fill(f"sqlite+aiosqlite:///{db}"))
    out = tmp_path / "report.html"
    result = run_cli("report", "--html", str(out), "--since", "30d", "--db", str(db))
    assert result.code == 0, result
    assert result.out.strip() == f"wrote {out} (91 runs)"
    yield out


# Measures what the browser laid out: each chart's box and its bars with a real size.
_PROBE = """<script>
const charts = [...document.querySelectorAll('svg.chart')].map(svg => {
  const box = svg.getBoundingClientRect();
  const bars = [...svg.querySelectorAll('rect.bar')].map(r => r.getBBox());
  return {name: svg.dataset.chart, width: box.width, height: box.height,
          bars: bars.length, drawn: bars.filter(b => b.width > 0 && b.height > 0).length,
          fills: [...new Set([...svg.querySelectorAll('rect.bar')]
                             .map(r => r.getAttribute('fill')))]};
});
const pre = document.createElement('pre'); pre.id = 'probe';
pre.textContent = JSON.stringify(charts); document.body.appendChild(pre);
</script>"""


def test_report_renders_its_charts_in_headless_chromium(
    chromium: str, report_file: Path, tmp_path: Path
) -> None:
    page = report_file.read_text()
    assert "<script" not in page and "https://" not in page and "<link" not in page
    # a copy with a probe script: the shipped page itself runs no script
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", _PROBE + "</body>"))
    dom = browse(chromium, tmp_path / "profile-dom", "--dump-dom", probe.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert found, dom.stdout[-2000:]
    charts = {c["name"]: c for c in json.loads(found.group(1).replace("&quot;", '"'))}
    assert set(charts) == {"status", "tokens-by-day", "tokens-by-model", "cost-by-model"}
    for chart in charts.values():
        assert chart["width"] > 300 and chart["height"] > 60, chart
    # one bar per status and one for paused; all but pending (none in the data) drawn
    assert charts["status"]["bars"] == len(RunStatus) + 1 and charts["status"]["drawn"] == 6
    assert charts["tokens-by-day"]["drawn"] == charts["tokens-by-day"]["bars"]
    assert charts["tokens-by-model"]["drawn"] == charts["tokens-by-model"]["bars"]
    assert set(charts["status"]["fills"]) == set(STATUS_COLORS.values())
    assert charts["tokens-by-day"]["bars"] == 2 * 14  # input and output, 14 days
    assert set(charts["tokens-by-day"]["fills"]) == {INPUT_COLOR, OUTPUT_COLOR}
    assert charts["tokens-by-model"]["bars"] == 3 and charts["tokens-by-model"]["fills"] == [
        MODEL_COLOR
    ]
    assert charts["cost-by-model"]["drawn"] == 3 and charts["cost-by-model"]["fills"] == [
        COST_COLOR
    ]

    # the page as a person sees it, kept next to the test's other files
    shot = tmp_path / "report.png"
    taken = browse(
        chromium,
        tmp_path / "profile-shot",
        "--window-size=1200,2400",
        "--hide-scrollbars",
        f"--screenshot={shot}",
        report_file.as_uri(),
    )
    assert taken.returncode == 0, taken.stderr[-2000:]
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        int.from_bytes(header[16:20], "big") == 1200
        and int.from_bytes(header[20:24], "big") == 2400
    )
    assert shot.stat().st_size > 50_000  # charts and tables, not a blank page
