"""Every route of the ui over HTTP (Starlette's TestClient), on a SQLite file and on
PostgreSQL filled by the examples and real graph runs: what each page shows against what
the read API returns, and every kind of bad input or broken database as its own page."""

from __future__ import annotations

import html
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from langgraph_runstore import SQLRunStore
from langgraph_runstore.db.migrations import latest_version
from langgraph_runstore.errors import InvalidInputError
from langgraph_runstore.schemas import ROW_FIELDS
from langgraph_runstore.ui import create_app
from langgraph_runstore.ui.app import CSP, LOOPBACK_HOSTS
from langgraph_runstore.ui.views import OWN_SECTIONS
from tests.ui.helpers import (
    BATCH_THREADS,
    LiveRuns,
    all_rows,
    get_row,
    in_thread,
    run_checkpoints,
    store_url,
)


@pytest.fixture
def client(filled: str) -> Iterator[TestClient]:
    with TestClient(create_app(filled)) as test_client:
        yield test_client


def listed(page: str) -> list[tuple[str, str]]:
    """(run_id, status as shown) of each line of the page's runs table."""
    return [
        (html.unescape(run_id), status)
        for run_id, status in re.findall(r'data-run="([^"]*)" data-status="([^"]*)"', page)
    ]


def next_link(page: str) -> str | None:
    found = re.search(r'<a href="([^"]+)" rel="next"', page)
    return html.unescape(found.group(1)) if found else None


def message(page: str) -> str:
    found = re.search(r'<p class="message">(.*?)</p>', page, re.S)
    assert found, page[-2000:]
    return html.unescape(found.group(1))


def shown_status(row: dict[str, Any]) -> str:
    paused = row["status"] == "success" and row.get("stop_reason") == "interrupt"
    return "paused" if paused else str(row["status"])


def test_every_page_answers(client: TestClient, filled: str) -> None:
    rows = all_rows(store_url(filled))
    assert len(rows) >= 37  # the examples' runs and the graph runs
    root = client.get("/?status=error", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/runs?status=error"
    runs = client.get("/runs")
    assert runs.status_code == 200 and runs.headers["content-type"].startswith("text/html")
    assert runs.headers["content-security-policy"] == CSP
    assert listed(runs.text) == [(r["run_id"], shown_status(r)) for r in rows[:50]]
    for path in (
        f"/runs/{rows[0]['run_id']}",
        "/threads/batch-1",
        "/usage",
        *(f"/usage?by={by}" for by in ("model", "thread", "user", "day")),
    ):
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.text[-1500:])
        assert "Traceback" not in answer.text
    css = client.get("/static/app.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert client.get("/static/favicon.svg").status_code == 200


@pytest.mark.parametrize(
    ("query", "filters"),
    [
        ("status=error", {"status": "error"}),
        ("status=success&status=error", {"status": ["success", "error"]}),
        ("status=interrupted", {"status": "interrupted"}),
        ("thread=batch-1", {"thread_id": "batch-1"}),
        ("user=alice", {"user_id": "alice"}),
        ("user=bob&status=error", {"user_id": "bob", "status": "error"}),
        ("since=1h", {"since": "1h"}),
        ("until=2000-01-01", {"until": "2000-01-01"}),
        ("thread=&user=&since=", {}),  # the filter form sends empty fields
    ],
)
def test_filters_show_what_list_runs_returns(
    client: TestClient, filled: str, query: str, filters: dict[str, Any]
) -> None:
    expected = all_rows(store_url(filled), **filters)
    page = client.get(f"/runs?{query}")
    assert page.status_code == 200, page.text[-1500:]
    assert listed(page.text) == [(r["run_id"], shown_status(r)) for r in expected[:50]]
    if not expected:
        assert 'data-empty="no-match"' in page.text


def test_pages_follow_the_keyset_cursor(client: TestClient, filled: str) -> None:
    expected = [r["run_id"] for r in all_rows(store_url(filled), user_id="alice")]
    seen: list[str] = []
    link: str | None = "/runs?user=alice&limit=4"
    pages = 0
    while link is not None:
        page = client.get(link)
        assert page.status_code == 200
        found = [run_id for run_id, _ in listed(page.text)]
        assert 0 < len(found) <= 4
        seen += found
        pages += 1
        link = next_link(page.text)
        if link is not None:
            assert "user=alice" in link and "limit=4" in link and "cursor=" in link
    assert seen == expected and pages == -(-len(expected) // 4)
    first = client.get("/runs?user=alice&limit=4").text
    assert 'rel="first"' not in first  # the newest page links only onwards


def test_run_detail_shows_the_runs_numbers(client: TestClient, filled: str) -> None:
    url = store_url(filled)
    paused = next(r for r in all_rows(url, thread_id="awaiting"))
    page = client.get(f"/runs/{paused['run_id']}").text
    assert f'data-field="total_tokens">{paused["total_tokens"]:,}<' in page
    assert paused["total_tokens"] == 42 and paused["llm_call_count"] == 1
    assert f'data-field="llm_call_count">{paused["llm_call_count"]}<' in page
    assert "badge st-paused" in page
    assert re.search(
        r"<td class=\"clip\" title=\"model-a\">model-a</td>(<td class=\"num\">[^<]*</td>)+", page
    )
    cells = re.findall(r'<td class="num">([^<]*)</td>', page.split('data-table="by-model"')[1])
    assert cells[:3] == ["30", "12", "42"]  # input, output, total of model-a
    assert "approve the draft?" in page  # what the run waits for
    for interrupt in paused["interrupts"]:
        assert interrupt["id"] in page
    checkpoints = run_checkpoints(url, paused["run_id"])
    assert checkpoints and f"Checkpoints ({len(checkpoints)})" in page
    for checkpoint in checkpoints:
        assert checkpoint["checkpoint_id"] in page
    names = re.findall(r'<dd data-name="([^"]+)"', page)
    assert set(ROW_FIELDS) - OWN_SECTIONS <= set(names)  # call-time samples: not for reading


def test_thread_page_shows_status_interrupts_and_runs(client: TestClient, filled: str) -> None:
    url = store_url(filled)
    waiting = client.get("/threads/awaiting").text
    assert 'data-thread-status="interrupted"' in waiting
    assert "Waiting on 1 interrupt" in waiting and "approve the draft?" in waiting
    idle = client.get("/threads/batch-1").text
    assert 'data-thread-status="idle"' in idle
    assert listed(idle) == [(r["run_id"], "success") for r in all_rows(url, thread_id="batch-1")]
    assert 'data-thread-status="error"' in client.get("/threads/broken").text
    paged = client.get("/threads/batch-1?limit=2").text
    assert len(listed(paged)) == 2 and next_link(paged) is not None


def test_usage_page_adds_up_the_runs(client: TestClient, filled: str) -> None:
    rows = all_rows(store_url(filled))
    page = client.get("/usage").text
    assert f'data-field="runs">{len(rows):,}<' in page
    assert f'data-field="tokens">{sum(r["total_tokens"] for r in rows):,}<' in page
    assert f'data-field="llm_calls">{sum(r["llm_call_count"] for r in rows):,}<' in page
    assert 'data-chart="status" data-bars="7"' in page
    assert re.search(r'data-chart="tokens-by-day" data-bars="[1-9]', page)
    narrowed = client.get("/usage?thread=batch-2").text
    batch = all_rows(store_url(filled), thread_id="batch-2")
    assert f'data-field="runs">{len(batch)}<' in narrowed
    by_thread = client.get("/usage?by=thread").text
    for thread in BATCH_THREADS:
        assert f'href="/threads/{thread}"' in by_thread


BAD = [
    ("/runs?cursor=not-a-cursor", "malformed cursor 'not-a-cursor'"),
    ("/runs?cursor=WyJ4Il0", "malformed cursor"),
    ("/runs?status=done", "invalid status 'done'"),
    ("/runs?since=yesterday", "invalid since 'yesterday'"),
    ("/runs?until=31/01/2026", "invalid until '31/01/2026'"),
    ("/runs?limit=0", "invalid limit '0'"),
    ("/runs?limit=ten", "invalid limit 'ten'"),
    ("/runs?limit=100000", "invalid limit '100000'"),
    ("/runs?thread=a&thread=b", "'thread' given 2 times"),
    ("/runs?stauts=error", "unknown query parameter 'stauts'"),
    ("/runs?thread=a%00b", "thread 'a\\x00b' contains a NUL character"),
    ("/usage?by=week", "invalid by 'week'"),
    ("/usage?cursor=x", "unknown query parameter 'cursor'"),
    ("/threads/batch-1?status=error", "unknown query parameter 'status'"),
    ("/threads/batch-1?user=alice", "unknown query parameter 'user'"),
    ("/runs/some-run?x=1", "unknown query parameter 'x'"),
    ("/runs/a%00b", "run_id 'a\\x00b' contains a NUL character"),
]


@pytest.mark.parametrize(("path", "expected"), BAD)
def test_bad_input_gives_a_400_page(client: TestClient, path: str, expected: str) -> None:
    page = client.get(path)
    assert page.status_code == 400, page.text[-1500:]
    assert expected in message(page.text)
    assert "Traceback" not in page.text


def test_unknown_run_thread_or_page_gives_a_404_page(client: TestClient) -> None:
    for path, expected in [
        ("/runs/no-such-run", "no run with id 'no-such-run'"),
        ("/threads/no-such-thread", "no runs on thread 'no-such-thread'"),
        ("/nowhere", "no page at /nowhere"),
        ("/static/missing.css", "no page at /static/missing.css"),
    ]:
        page = client.get(path)
        assert page.status_code == 404, path
        assert expected in message(page.text)
    wrong = client.post("/usage")
    assert wrong.status_code == 405 and "POST is not served at /usage" in message(wrong.text)


def test_ids_with_slashes_and_spaces_have_their_pages(tmp_path: Path) -> None:
    db = tmp_path / "ids.db"

    async def put() -> None:
        async with SQLRunStore.from_url(store_url(str(db))) as store:
            await store.put("run/1 ?#", thread_id="team/a b", status="success")

    in_thread(put)
    with TestClient(create_app(str(db))) as client:
        page = client.get("/runs").text
        assert 'href="/runs/run%2F1%20%3F%23"' in page and 'href="/threads/team%2Fa%20b"' in page
        assert client.get("/runs/run%2F1%20%3F%23").status_code == 200
        assert client.get("/threads/team%2Fa%20b").status_code == 200


def test_a_missing_database_gives_a_clear_page_until_it_exists(tmp_path: Path) -> None:
    db = tmp_path / "later.db"
    with TestClient(create_app(str(db))) as client:
        page = client.get("/runs")
        assert page.status_code == 503
        assert message(page.text) == (
            f"no database at {db}: run your graph with a SQLRunStore there, "
            "or create an empty one with `langgraph-runstore migrate`"
        )
        assert not db.exists()  # the page created nothing

        async def create() -> None:
            async with SQLRunStore.from_url(store_url(str(db))):
                pass

        in_thread(create)
        empty = client.get("/runs")
        assert empty.status_code == 200  # no restart needed
        assert 'data-empty="none-recorded"' in empty.text and "make quickstart" in empty.text
        assert 'data-empty="none-recorded"' in client.get("/usage").text

        async def record() -> None:
            async with SQLRunStore.from_url(store_url(str(db))) as store:
                await store.put("first-run", thread_id="t", status="success")

        in_thread(record)
        assert listed(client.get("/runs").text) == [("first-run", "success")]
        assert 'data-empty="no-match"' in client.get("/runs?status=error").text


def _set_version(db: Path, version: int) -> None:
    """The file as a package of another schema version would have left it."""
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM runstore_schema_version WHERE version > ?", (version,))
        conn.execute(
            "INSERT OR IGNORE INTO runstore_schema_version VALUES (?, 'from a newer release', ?)",
            (version, "2030-01-01T00:00:00+00:00"),
        )


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (latest_version() + 1, "newer than this package's {latest}: upgrade langgraph-runstore"),
        (
            latest_version() - 1,
            "older than this package's {latest}: run `langgraph-runstore migrate`",
        ),
    ],
)
def test_a_database_of_another_version_gives_a_clear_page(
    sqlite_db: Path, version: int, expected: str
) -> None:
    _set_version(sqlite_db, version)
    with TestClient(create_app(str(sqlite_db))) as client:
        for path in ("/runs", "/usage", "/runs/x", "/threads/x"):
            page = client.get(path)
            assert page.status_code == 503
            assert expected.format(latest=latest_version()) in message(page.text)
            assert f"schema version {version}" in message(page.text)


def test_a_file_that_is_not_a_database_gives_a_clear_page(tmp_path: Path) -> None:
    notes = tmp_path / "notes.db"
    notes.write_text("not a database at all, just some notes\n")
    with TestClient(create_app(str(notes))) as client:
        page = client.get("/runs")
        assert page.status_code == 503 and message(page.text) == f"{notes} is not a SQLite database"
    assert notes.read_text() == "not a database at all, just some notes\n"


def test_an_unreachable_server_gives_a_clear_page() -> None:
    # nothing listens on port 1: the connection is refused at once
    with TestClient(create_app("postgresql+asyncpg://postgres@127.0.0.1:1/runs")) as client:
        page = client.get("/runs")
        assert page.status_code == 503
        assert message(page.text).startswith("cannot open database postgresql+asyncpg://")


def test_a_query_that_fails_gives_a_one_line_500_page(sqlite_db: Path) -> None:
    with TestClient(create_app(str(sqlite_db))) as client:
        assert client.get("/runs").status_code == 200
        with sqlite3.connect(sqlite_db) as conn:  # another process breaks the database
            conn.execute("DROP TABLE runs")
        page = client.get("/runs")
        assert page.status_code == 500
        assert message(page.text) == "OperationalError: no such table: runs"
        assert "Traceback" not in page.text


def test_cancel_is_absent_and_refused_without_allow_cancel(sqlite_db: Path) -> None:
    url = store_url(str(sqlite_db))
    with LiveRuns(url) as live, TestClient(create_app(str(sqlite_db))) as client:
        run_id = live.start("live-off")
        page = client.get(f"/runs/{run_id}").text
        assert "badge st-running" in page and "data-live" in page
        assert "/cancel" not in page and "data-cancel" not in page
        refused = client.post(f"/runs/{run_id}/cancel", data={"action": "interrupt"})
        assert refused.status_code == 403 and "--allow-cancel" in refused.text
        row = get_row(url, run_id)
        assert row is not None and row["status"] == "running" and row["cancel_requested_at"] is None
        live.release(run_id)
        assert live.join(run_id).status.value == "success"


def test_cancel_with_allow_cancel_stops_the_run(filled: str) -> None:
    url = store_url(filled)
    with LiveRuns(url) as live, TestClient(create_app(filled, allow_cancel=True)) as client:
        run_id = live.start("live-cancel")
        page = client.get(f"/runs/{run_id}").text
        assert f'action="/runs/{run_id}/cancel"' in page and "data-cancel" in page
        # a form on another site's page is refused, whatever it asks
        for headers in (
            {"origin": "http://evil.example"},
            {"origin": "null"},  # a sandboxed frame or a privacy-stripped origin
            {"sec-fetch-site": "cross-site"},
            {"sec-fetch-site": "same-site", "origin": "http://testserver"},
        ):
            refused = client.post(f"/runs/{run_id}/cancel", headers=headers)
            assert refused.status_code == 403 and "own page" in message(refused.text)
        huge = client.post(f"/runs/{run_id}/cancel", content=b"action=" + b"x" * 10_000)
        assert huge.status_code == 400
        bad = client.post(f"/runs/{run_id}/cancel", data={"action": "explode"})
        assert bad.status_code == 400 and "invalid action 'explode'" in message(bad.text)
        row = get_row(url, run_id)
        assert row is not None and row["status"] == "running"
        done = client.post(
            f"/runs/{run_id}/cancel",
            data={"action": "interrupt"},
            headers={"origin": "http://testserver", "sec-fetch-site": "same-origin"},
            follow_redirects=False,
        )
        assert done.status_code == 303 and done.headers["location"] == f"/runs/{run_id}"
        joined = live.join(run_id)
        assert (joined.status.value, joined.stop_reason) == ("interrupted", "cancelled")
        row = get_row(url, run_id)
        assert row is not None and (row["status"], row["stop_reason"]) == (
            "interrupted",
            "cancelled",
        )
        after = client.get(f"/runs/{run_id}").text
        assert "badge st-interrupted" in after and "data-cancel" not in after
        # a finished run is left as it is
        again = client.post(f"/runs/{run_id}/cancel", data={"action": "rollback"})
        assert again.status_code == 200 and "badge st-interrupted" in again.text
        assert get_row(url, run_id) == row
        missing = client.post("/runs/no-such-run/cancel")
        assert missing.status_code == 404


def test_a_loopback_server_refuses_other_host_names(sqlite_db: Path) -> None:
    app = create_app(str(sqlite_db), allowed_hosts=LOOPBACK_HOSTS)
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        assert client.get("/runs").status_code == 200
        assert client.get("/runs", headers={"host": "localhost:8765"}).status_code == 200
        assert client.get("/runs", headers={"host": "[::1]:8765"}).status_code == 200
        rebound = client.get("/runs", headers={"host": "evil.example:8765"})
        assert rebound.status_code == 421


def test_pages_load_nothing_from_elsewhere(client: TestClient, filled: str) -> None:
    run_id = all_rows(store_url(filled), thread_id="awaiting")[0]["run_id"]
    texts = [
        client.get(path).text
        for path in ("/runs", f"/runs/{run_id}", "/threads/awaiting", "/usage", "/runs?x=1")
    ]
    texts += [client.get(f"/static/{name}").text for name in ("app.css", "app.js")]
    for text in texts:
        assert not re.search(r"""(src|href|action)=["']?(https?:)?//""", text)
        assert "@import" not in text and "url(" not in text and "@font-face" not in text
        assert "fetch(window.location.href" in text or "fetch(" not in text
    assert "default-src 'none'" in CSP and "script-src 'self'" in CSP


def test_create_app_refuses_a_bad_poll_interval() -> None:
    with pytest.raises(InvalidInputError, match="poll_ms must be an int of at least 100, got 5"):
        create_app("x.db", poll_ms=5)
