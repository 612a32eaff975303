"""The console (``/ui``) in Chromium against the real stack: views, live updates, actions."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS, Page, Stack, screenshot

VIEWS = ["/ui", "/ui/tasks", "/ui/workers", "/ui/dlq", "/ui/submit", "/ui/audit"]
#: Views that follow the event stream (the submit form has nothing to follow).
LIVE = set(VIEWS) - {"/ui/submit"}


def test_every_view_loads_live_without_console_errors_on_a_fresh_deep_link(tab: Page, stack: Stack):
    task = stack.submit(type="echo", payload={"hello": "console"})
    stack.wait_state(task["id"], "completed")
    for path in [*VIEWS, f"/ui/tasks/{task['id']}", "/ui/tasks?state=completed&order=asc"]:
        page = tab.open(path, live=path.split("?")[0] in LIVE or "/ui/tasks/" in path)
        expect(page.locator("h1")).to_be_visible()
        if path == "/ui/submit":  # loaded once its types came from /openapi.json
            expect(page.locator("#f-type option")).not_to_have_count(0)
        assert tab.errors == [], (path, tab.errors)
    page = tab.open(f"/ui/tasks/{task['id']}")
    expect(page.get_by_test_id("task-id")).to_have_text(task["id"])
    expect(page.get_by_test_id("state")).to_have_text("completed")
    expect(page.get_by_test_id("result")).to_contain_text('"hello": "console"')
    page = tab.open("/ui/tasks?state=completed&order=asc")
    expect(page.locator(f'tr[data-task-id="{task["id"]}"]')).to_be_visible()
    expect(page.locator("select[name=state]")).to_have_value("completed")
    assert tab.errors == []


def test_a_submitted_task_goes_pending_running_completed_on_its_page(tab: Page, stack: Stack):
    stack.set_worker_paused(True)
    try:
        task = stack.submit(type="sleep", payload={"seconds": 1.5, "steps": 6})
        page = tab.open(f"/ui/tasks/{task['id']}")
        page.evaluate("window.loadedOnce = true")
        state = page.get_by_test_id("state")
        expect(state).to_have_text("pending")
        # determinate at 0 % (a <progress> without a value attribute would be "indeterminate")
        expect(page.locator("progress#progress")).to_have_attribute("value", "0")
        expect(page.get_by_role("button", name="Cancel")).to_be_visible()
        expect(page.get_by_role("button", name="Retry")).to_be_hidden()
    finally:
        stack.set_worker_paused(False)
    expect(state).to_have_text("running", timeout=15000)
    expect(page.get_by_role("button", name="Cancel")).to_be_hidden()
    expect(state).to_have_text("completed", timeout=15000)
    expect(page.locator("progress#progress")).to_have_attribute("value", "100")
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    expect(page.get_by_role("button", name="Purge")).to_be_visible()
    assert page.evaluate("window.loadedOnce") is True  # the same document all along: no reload
    timeline = page.locator("[data-testid=timeline] li strong").all_inner_texts()
    assert timeline[0] == "task.submitted" and timeline[-1] == "task.completed"
    assert "task.started" in timeline and "task.progress" in timeline
    screenshot(page, "console-task.png")
    assert tab.errors == []


def test_rows_change_state_in_place_as_events_arrive(tab: Page, stack: Stack):
    task = stack.submit(type="sleep", payload={"seconds": 0.5}, priority="high")
    page = tab.open("/ui/tasks?page_size=100")
    row = page.locator(f'tr[data-task-id="{task["id"]}"]')
    expect(row.get_by_test_id("state")).to_have_text("completed", timeout=15000)
    fresh = stack.submit(type="echo")
    expect(page.get_by_role("status").filter(has_text="new task")).to_be_visible()
    page.get_by_role("button", name="Show").click()
    expect(page.locator(f'tr[data-task-id="{fresh["id"]}"]')).to_be_visible()
    assert tab.errors == []


def test_idle_pages_make_no_requests_after_their_first_load(tab: Page, stack: Stack):
    pages = []
    for path in VIEWS:
        other = Page(tab.context, stack.url)
        other.open(path, live=path in LIVE)
        if path == "/ui/submit":
            expect(other.page.locator("#f-type option")).not_to_have_count(0)
        pages.append(other)
    for other in pages:
        other.requests.clear()
    overview, workers = pages[0].page, pages[2].page
    # Two heartbeats reach the pages that follow workers: time passed, events arrived.
    count = (
        "window.heartbeats = 0; document.addEventListener('tq:rendered', e => "
        "window.heartbeats += e.detail.filter(x => x.type === 'worker.heartbeat').length)"
    )
    for page in (overview, workers):
        page.evaluate(count)
    # Between two beats the age shown ticks up on its own (a timer, not a request).
    workers.wait_for_function(
        "[...document.querySelectorAll('[data-testid=age]')]"
        ".some(cell => cell.textContent.startsWith('1 s'))"
    )
    for page in (overview, workers):
        page.wait_for_function("window.heartbeats >= 2", timeout=10000)
    assert {p.page.url: p.requests for p in pages if p.requests} == {}
    assert all(not p.errors for p in pages)


def test_a_socket_killed_mid_stream_resumes_without_missing_an_event(tab: Page, stack: Stack):
    task = stack.submit(type="sleep", payload={"seconds": 3, "steps": 30})
    page = tab.open(f"/ui/tasks/{task['id']}")
    expect(page.get_by_test_id("state")).to_have_text("running", timeout=15000)
    with page.expect_websocket(timeout=15000) as reconnected:
        for pid in _gunicorn_workers(stack):  # every web worker: the page's socket dies too
            os.kill(pid, signal.SIGKILL)
    # A second socket, resuming after the last event the page holds (the same id as the first
    # socket's when no event arrived between the page's connect and the kill).
    assert len(tab.sockets) >= 2
    assert "last_event_id=" in reconnected.value.url
    expect(page.get_by_test_id("state")).to_have_text("completed", timeout=20000)
    stack.wait_state(task["id"], "completed")
    expected = stack.events_of(task["id"])
    shown = page.locator("[data-testid=timeline] li")
    expect(shown).to_have_count(len(expected))
    assert shown.evaluate_all("items => items.map(i => i.dataset.eventId)") == expected
    assert tab.errors == []


def _gunicorn_workers(stack: Stack) -> list[int]:
    master = stack.web.process.pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    assert children, "gunicorn has no worker processes"
    return [int(pid) for pid in children]


def test_overview_numbers_move_as_events_arrive(tab: Page, stack: Stack):
    page = tab.open("/ui")
    dlq_size = page.get_by_test_id("dlq-size")
    expect(page.get_by_test_id("workers")).to_have_text("1")
    before = int(dlq_size.inner_text())
    stack.set_worker_paused(True)
    try:
        held = [stack.submit(type="echo", priority="normal") for _ in range(3)]
        normal = page.locator('tr[data-queue="normal"]').get_by_test_id("depth")
        expect(normal).to_have_text("3", timeout=10000)  # queue.depth, pushed
    finally:
        stack.set_worker_paused(False)
    expect(normal).to_have_text("0", timeout=10000)
    failing = stack.submit(type="fail", max_retries=0)
    expect(dlq_size).to_have_text(str(before + 1), timeout=15000)
    rate = page.get_by_test_id("success-rate")
    expect(rate).not_to_have_text("—")
    for task in held:
        stack.wait_state(task["id"], "completed")
    stack.wait_state(failing["id"], "dead_letter")
    expect(page.locator(".chart canvas")).to_be_visible()
    page.wait_for_function(
        "document.querySelector('.chart').dataset.completed >= 3 && "
        "document.querySelector('.chart').dataset.failed >= 1"
    )
    if SCREENSHOTS:  # some throughput for the picture
        burst = [
            stack.submit(type="fail" if i % 7 == 0 else "echo", max_retries=0) for i in range(120)
        ]
        for task in burst:
            stack.wait_state(task["id"], "completed", "dead_letter")
        page.wait_for_function("document.querySelector('.chart').dataset.completed >= 100")
    screenshot(page, "console-overview.png")
    assert tab.errors == []


def test_a_burst_of_thousands_of_events_is_rendered_in_a_few_batches(tab: Page, stack: Stack):
    page = tab.open("/ui")
    page.evaluate("""() => {
        window.burst = {events: 0, renders: 0, frames: 0};
        document.addEventListener('tq:rendered', e => {
            const mine = e.detail.filter(x => String(x.data.task_id).startsWith('burst-'));
            if (mine.length) { window.burst.events += mine.length; window.burst.renders += 1; }
        });
        requestAnimationFrame(function tick() {  // frames while the burst is arriving
            if (window.burst.events >= 5000) return;
            window.burst.frames += 1;
            requestAnimationFrame(tick);
        });
    }""")
    pipe = stack.redis.pipeline(transaction=False)
    for n in range(5000):  # what a cluster finishing 5,000 tasks at once would emit
        data = {
            "task_id": f"burst-{n}",
            "type": "echo",
            "priority": "low",
            "state": "completed",
            "status": "completed",
            "progress": 100,
            "attempts": 1,
        }
        pipe.xadd("tq:events", {"type": "task.completed", "data": json.dumps(data)})
    pipe.execute()
    page.wait_for_function("window.burst.events === 5000", timeout=30000)
    burst = page.evaluate("window.burst")
    # Coalesced: at most one render per animation frame (plus the hidden-tab timer's), however
    # slowly the machine delivers the frames, so thousands of events never mean thousands of
    # renders.
    assert burst["renders"] <= burst["frames"] + 2, burst
    assert burst["renders"] < 5000 / 2, burst
    page.wait_for_function("document.querySelector('.chart').dataset.completed >= 5000")
    assert tab.errors == []
