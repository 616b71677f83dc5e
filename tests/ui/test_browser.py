"""The ui in headless Chromium (Debian's ``chromium``, driven by Playwright): filters narrow
the table, paging moves, a run's detail shows its numbers, a live run's status changes on
screen without a reload, the cancel button is absent without ``--allow-cancel`` and works
with it, bad parameters give a 400 page, and each page fits a wide and a narrow window in
light and dark mode. The server is the real ``langgraph-runstore ui`` process.

Screenshots of each page go to the artifacts folder (see conftest.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.helpers import (
    LiveRuns,
    all_rows,
    copy_sqlite,
    get_row,
    in_thread,
    run_checkpoints,
    serve,
    store_url,
)

playwright_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (dev extra)")

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 20_000  # any wait for the page, at most


def find_chromium() -> str:
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


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium with a fresh profile for the module (Playwright's own browser
    download is never used: the executable is Debian's)."""
    executable = find_chromium()
    with playwright_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=executable,
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(WAIT_MS)
        context.set_default_navigation_timeout(WAIT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    tab = browser.new_page()
    try:
        yield tab
    finally:
        tab.close()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def database(
    request: pytest.FixtureRequest, template_db: Path, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """The module's filled database, as ``--db`` takes it."""
    if request.param == "sqlite":
        return str(copy_sqlite(template_db, tmp_path_factory.mktemp("ui-browser") / "runs.db"))
    return str(request.getfixturevalue("filled_pg_url"))


@pytest.fixture(scope="module")
def reader(database: str) -> Iterator[str]:
    """The ui without --allow-cancel: it only reads."""
    with serve(database) as base:
        yield base


@pytest.fixture(scope="module")
def canceller(database: str) -> Iterator[str]:
    """The ui with --allow-cancel."""
    with serve(database, "--allow-cancel") as base:
        yield base


def shot(page: Any, artifacts: Path, name: str) -> None:
    path = artifacts / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000


def shown(page: Any) -> list[tuple[str, str]]:
    """(run_id, status) of each line of the runs table on screen."""
    return [
        (row.get_attribute("data-run"), row.get_attribute("data-status"))
        for row in page.locator("table.runs tbody tr").all()
    ]


def expected(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [
        (r["run_id"], "paused" if r.get("stop_reason") == "interrupt" else r["status"])
        for r in rows
    ]


def test_filters_narrow_the_table(page: Any, reader: str, database: str, artifacts: Path) -> None:
    url = store_url(database)
    page.goto(f"{reader}/runs")
    assert shown(page) == expected(all_rows(url)[:50])
    page.locator("label.chip.st-error input").check()
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**/runs?status=error")  # the empty fields stay out of the URL
    errors = expected(all_rows(url, status="error"))
    assert len(errors) >= 3 and shown(page) == errors
    page.locator("label.chip.st-error input").uncheck()
    page.locator("input[name=user]").fill("alice")
    page.locator("select[name=since]").select_option("7d")
    page.locator("input[name=user]").press("Enter")
    page.wait_for_url("**/runs?user=alice&since=7d")
    assert shown(page) == expected(all_rows(url, user_id="alice", since="7d"))
    assert page.locator("input[name=user]").input_value() == "alice"  # the form keeps them
    shot(page, artifacts, f"runs-filtered-{database_kind(database)}")
    page.locator("input[name=thread]").fill("no-such-thread")
    page.locator("input[name=thread]").press("Enter")
    page.wait_for_selector("[data-empty=no-match]")


def test_paging_moves(page: Any, reader: str, database: str) -> None:
    everything = expected(all_rows(store_url(database)))
    page.goto(f"{reader}/runs?limit=10")
    seen = shown(page)
    assert seen == everything[:10]
    while page.locator("a[rel=next]").count():
        before = shown(page)
        page.locator("a[rel=next]").click()
        page.wait_for_url("**cursor=*")
        page.wait_for_function(
            "first => document.querySelector('table.runs tbody tr')?.dataset.run !== first",
            arg=before[0][0],
        )
        seen += shown(page)
        assert "limit=10" in page.url
    assert seen == everything
    page.locator("a[rel=first]").click()
    page.wait_for_url("**/runs?limit=10")
    assert shown(page) == everything[:10]


def test_a_runs_detail_shows_the_right_numbers(
    page: Any, reader: str, database: str, artifacts: Path
) -> None:
    url = store_url(database)
    paused = all_rows(url, thread_id="awaiting")[0]
    page.goto(f"{reader}/runs?thread=awaiting")
    page.locator(f"a.id[href='/runs/{paused['run_id']}']").click()
    page.wait_for_url(f"**/runs/{paused['run_id']}")
    assert page.locator("[data-field=total_tokens]").inner_text() == "42"
    assert page.locator("[data-field=llm_call_count]").inner_text() == "1"
    assert page.locator(".status-line .badge").inner_text() == "paused"
    models = page.locator("[data-table=by-model] tbody tr").all()
    assert [m.locator("td").all_inner_texts()[:4] for m in models] == [
        ["model-a", "30", "12", "42"]
    ]
    assert "approve the draft?" in page.locator("[data-table=interrupts]").inner_text()
    checkpoints = run_checkpoints(url, paused["run_id"])
    assert page.locator("[data-table=checkpoints] tbody tr").count() == len(checkpoints) > 0
    assert page.locator("[data-name=user_id]").inner_text() == "alice"
    assert page.locator("[data-cancel]").count() == 0  # finished: nothing to cancel
    kind = database_kind(database)
    shot(page, artifacts, f"run-detail-{kind}")
    page.locator(".crumbs a", has_text="thread awaiting").click()
    page.wait_for_selector("[data-thread-status=interrupted]")
    assert "approve the draft?" in page.locator("[data-table=interrupts]").inner_text()
    shot(page, artifacts, f"thread-{kind}")


def test_a_live_runs_status_changes_on_screen_without_a_reload(
    browser: Any, reader: str, database: str, artifacts: Path
) -> None:
    with LiveRuns(store_url(database)) as live:
        thread = f"live-{database_kind(database)}"
        run_id = live.start(thread)
        listing, detail = browser.new_page(), browser.new_page()
        try:
            listing.goto(f"{reader}/runs?thread={thread}")
            detail.goto(f"{reader}/runs/{run_id}")
            assert shown(listing) == [(run_id, "running")]
            assert detail.locator(".status-line .badge").inner_text() == "running"
            assert detail.locator(".pulse").count() == 1
            shot(detail, artifacts, f"run-live-{database_kind(database)}")
            for tab in (listing, detail):
                tab.evaluate("window.__notReloaded = true")
            live.release(run_id)
            listing.wait_for_selector(f"tr[data-run='{run_id}'][data-status=success]")
            detail.wait_for_selector(".status-line .badge.st-success")
            assert detail.locator("[data-field=total_tokens]").inner_text() == "15"
            assert detail.locator("[data-field=last_ai_message]").inner_text() == "thought"
            for tab in (listing, detail):
                assert tab.evaluate("window.__notReloaded") is True
            # finished: the page stops asking
            assert detail.locator("#live[data-live]").count() == 0
        finally:
            listing.close()
            detail.close()


def test_the_cancel_button_is_absent_without_allow_cancel_and_works_with_it(
    page: Any, reader: str, canceller: str, database: str, artifacts: Path
) -> None:
    url = store_url(database)
    with LiveRuns(url) as live:
        run_id = live.start(f"cancel-{database_kind(database)}")
        page.goto(f"{reader}/runs/{run_id}")
        assert page.locator(".status-line .badge").inner_text() == "running"
        assert page.locator("[data-cancel]").count() == 0
        assert page.locator("form.cancel").count() == 0

        page.goto(f"{canceller}/runs/{run_id}")
        button = page.locator("[data-cancel]")
        assert button.is_visible()
        shot(page, artifacts, f"run-cancel-button-{database_kind(database)}")
        page.once("dialog", lambda dialog: dialog.dismiss())  # "no": nothing happens
        button.click()
        assert page.locator(".status-line .badge").inner_text() == "running"
        page.once("dialog", lambda dialog: dialog.accept())
        button.click()
        page.wait_for_selector(".status-line .badge.st-interrupted")
        assert page.url == f"{canceller}/runs/{run_id}"
        assert page.locator("[data-field=stop_reason]").inner_text() == "cancelled"
        assert page.locator("[data-cancel]").count() == 0
        joined = live.join(run_id)
        assert (joined.status.value, joined.stop_reason) == ("interrupted", "cancelled")
        row = get_row(url, run_id)
        assert row is not None and row["status"] == "interrupted"
        assert row["total_tokens"] == 15  # what it spent before the cancel


def test_bad_query_parameters_give_a_400_page(page: Any, reader: str) -> None:
    for path, status, text in [
        ("/runs?cursor=garbage", 400, "malformed cursor 'garbage'"),
        ("/runs?status=finished", 400, "invalid status 'finished'"),
        ("/runs?since=last-week", 400, "invalid since 'last-week'"),
        ("/usage?by=hour", 400, "invalid by 'hour'"),
        ("/runs/no-such-run", 404, "no run with id 'no-such-run'"),
    ]:
        response = page.goto(f"{reader}{path}")
        assert response is not None and response.status == status, path
        assert page.locator("[data-error]").get_attribute("data-error") == str(status)
        assert text in page.locator(".message").inner_text()
        assert "Traceback" not in page.content()


def test_every_page_fits_wide_and_narrow_in_light_and_dark(
    page: Any, reader: str, database: str, artifacts: Path
) -> None:
    run_id = all_rows(store_url(database), thread_id="awaiting")[0]["run_id"]
    elsewhere: list[str] = []
    page.on(
        "request",
        lambda request: None if request.url.startswith(reader) else elsewhere.append(request.url),
    )
    kind = database_kind(database)
    pages = {
        "runs": "/runs",
        "run": f"/runs/{run_id}",
        "thread": "/threads/awaiting",
        "usage": "/usage",
    }
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for width in (1280, 390):
            page.set_viewport_size({"width": width, "height": 900})
            for name, path in pages.items():
                page.goto(f"{reader}{path}")
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                assert overflow <= 0, (name, width, overflow)
                background = page.evaluate("getComputedStyle(document.body).backgroundColor")
                dark = background in ("rgb(15, 17, 21)",)
                assert dark == (scheme == "dark"), (scheme, background)
                shot(page, artifacts, f"{name}-{width}-{scheme}-{kind}")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.emulate_media(color_scheme="light")
    page.goto(f"{reader}/usage")
    for chart in ("status", "tokens-by-model", "tokens-by-day"):
        drawn = page.evaluate(
            """name => [...document.querySelectorAll(`[data-chart="${name}"] rect`)]
                 .map(r => r.getBoundingClientRect()).filter(b => b.width > 0 && b.height > 0)
                 .length""",
            chart,
        )
        assert drawn > 0, chart
    assert elsewhere == []  # the page loads nothing from anywhere else


def test_a_missing_database_shows_what_to_do_then_the_empty_state(
    page: Any, tmp_path: Path, artifacts: Path
) -> None:
    from langgraph_runstore import SQLRunStore

    db = tmp_path / "fresh.db"
    with serve(str(db)) as base:
        response = page.goto(f"{base}/runs")
        assert response is not None and response.status == 503
        assert "no database at" in page.locator(".message").inner_text()
        shot(page, artifacts, "missing-database")

        async def create() -> None:
            async with SQLRunStore.from_url(store_url(str(db))):
                pass

        in_thread(create)
        page.reload()
        empty = page.locator("[data-empty=none-recorded]")
        assert "make quickstart" in empty.inner_text()
        shot(page, artifacts, "empty-state")


def database_kind(database: str) -> str:
    return "postgres" if "://" in database else "sqlite"
