"""The console's actions by clicking and typing: workers, DLQ, submit and upload, sign-in."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask_jwt_extended import create_access_token
from playwright.sync_api import expect

from app import create_app
from celery_app.settings import Settings
from tests.browser.conftest import Page, Stack
from tests.harness import WebServer, wait_for

VIEWS = ["/ui", "/ui/tasks", "/ui/workers", "/ui/dlq", "/ui/submit", "/ui/audit"]
KEYS = "admin-key-0123:admin,user-key-4567:user"
SECRET = "console-test-secret-" + "s" * 32


def _requeued(stack: Stack, task_id: str) -> bool:
    """Whether the stream shows ``task_id`` taken out of the DLQ and queued again."""
    return any(
        fields["type"] == "task.submitted"
        and '"requeued_from":"dead_letter"' in fields["data"]
        and task_id in fields["data"]
        for _, fields in stack.redis.xrange("tq:events")
    )


def test_pause_and_resume_a_worker_by_clicking(tab: Page, stack: Stack):
    page = tab.open("/ui/workers")
    row = page.locator(f'tr[data-worker-id="{stack.worker.hostname}"]')
    expect(row.get_by_test_id("state")).to_have_text(re.compile("idle|busy"))
    expect(row.locator("td").nth(3)).to_have_text("critical, high, normal, low")
    row.get_by_role("button", name="Pause", exact=True).click()
    expect(row.get_by_test_id("state")).to_have_text(re.compile("paused|pausing"))
    wait_for(lambda: stack.api("GET", "/admin/workers")["workers"][0]["state"] == "paused")
    expect(row.get_by_test_id("state")).to_have_text("paused")
    # Reachable and usable from the keyboard: focused, then Enter (once the pause request has
    # answered: a pause waits for the worker to confirm, and the button is disabled meanwhile).
    resume = row.get_by_role("button", name="Resume", exact=True)
    expect(resume).to_be_enabled(timeout=15000)
    resume.press("Enter")
    expect(row.get_by_test_id("state")).to_have_text(re.compile("idle|busy"), timeout=10000)
    wait_for(lambda: stack.api("GET", "/admin/workers")["workers"][0]["state"] != "paused")
    assert tab.errors == []


def test_pause_and_resume_a_queue_by_clicking(tab: Page, stack: Stack):
    page = tab.open("/ui")
    watcher = Page(tab.context, stack.url)  # another operator's overview, left alone
    watcher.open("/ui")
    rows = [p.locator('tr[data-queue="low"]') for p in (page, watcher.page)]
    for row in rows:
        expect(row.get_by_test_id("queue-state")).to_have_text("consuming")
    rows[0].get_by_role("button", name="Pause", exact=True).click()
    for row in rows:  # the other page learns it from queue.paused, without a request
        expect(row.get_by_test_id("queue-state")).to_have_text("paused")
    assert stack.api("GET", "/admin/queues")["queues"]["low"]["paused"] is True
    held = stack.submit(type="echo")  # priority low: waits in its paused queue
    for row in rows:
        expect(row.get_by_test_id("depth")).to_have_text("1", timeout=10000)
    assert stack.task(held["id"])["state"] == "pending"
    rows[0].get_by_role("button", name="Resume", exact=True).click()
    for row in rows:
        expect(row.get_by_test_id("queue-state")).to_have_text("consuming")
    stack.wait_state(held["id"], "completed")
    for row in rows:
        expect(row.get_by_test_id("depth")).to_have_text("0", timeout=10000)
    assert tab.errors == [] and watcher.errors == []


def test_dead_letters_arrive_live_and_retry_and_clear_by_clicking(tab: Page, stack: Stack):
    page = tab.open("/ui/dlq")
    tasks = [
        stack.submit(type="fail", max_retries=0, payload={"message": f"boom {n}"}) for n in range(3)
    ]
    rows = [page.locator(f'tr[data-task-id="{task["id"]}"]') for task in tasks]
    for number, row in enumerate(rows):  # pushed: the page was open before they failed
        expect(row).to_contain_text(f"boom {number}", timeout=15000)
        expect(row).to_contain_text("max retries exceeded")
    retry = rows[0].get_by_role("button", name="Retry", exact=True)
    expect(retry).to_be_enabled()
    retry.press("Enter")
    wait_for(lambda: _requeued(stack, tasks[0]["id"]), message="the retried task re-queued")
    assert not any(_requeued(stack, task["id"]) for task in tasks[1:])
    stack.wait_state(tasks[0]["id"], "dead_letter")  # fails again, and comes back live
    expect(rows[0]).to_have_count(1, timeout=15000)

    page.get_by_role("button", name="Retry all").click()
    wait_for(lambda: all(_requeued(stack, task["id"]) for task in tasks[1:]), timeout=15)
    for task in tasks:
        stack.wait_state(task["id"], "dead_letter")
    for row in rows:
        expect(row).to_have_count(1, timeout=15000)

    size = page.get_by_test_id("dlq-size")
    in_dlq = stack.api("GET", "/admin/dlq")["size"]
    assert in_dlq >= len(tasks)
    expect(size).to_have_text(str(in_dlq))  # the count follows the entries back live
    page.get_by_role("button", name="Clear", exact=True).click()
    confirm = page.get_by_role("dialog", name="Clear the dead-letter queue?")
    expect(confirm).to_be_visible()
    confirm.get_by_role("button", name="Keep them").click()
    expect(confirm).to_be_hidden()
    assert stack.api("GET", "/admin/dlq")["size"] == in_dlq
    expect(size).to_have_text(str(in_dlq))
    page.get_by_role("button", name="Clear", exact=True).click()
    confirm.get_by_role("button", name="Clear", exact=True).click()
    expect(size).to_have_text("0")
    assert stack.api("GET", "/admin/dlq")["size"] == 0
    assert tab.errors == []


def test_submit_form_and_upload_land_on_the_new_tasks_page(tab: Page, stack: Stack):
    page = tab.open("/ui/submit", live=False)
    form = page.get_by_role("region", name="Submit a task")
    kind = form.get_by_label("Type", exact=True)
    expect(kind.locator("option")).to_contain_text(["echo", "fail", "sleep"])
    kind.select_option("sleep")  # its fields come from /openapi.json
    page.locator("input[name='payload.seconds']").fill("0.3")
    expect(page.locator("input[name='payload.steps']")).to_be_visible()
    form.get_by_label("Priority").select_option("high")
    form.get_by_role("button", name="Submit").click()
    page.wait_for_url(re.compile(r"/ui/tasks/[0-9a-f-]{36}$"))
    expect(page.get_by_test_id("state")).to_have_text("completed", timeout=15000)
    envelope = stack.task(page.url.rsplit("/", 1)[1])
    assert envelope["type"] == "sleep" and envelope["priority"] == "high"
    assert envelope["payload"] == {"seconds": 0.3}

    page = tab.open("/ui/submit", live=False)
    content = b"line\n" * 400_000  # 2 MB: the upload reports progress along the way
    page.evaluate("""() => {
        const bar = document.querySelector('[data-testid=upload-progress]');
        new MutationObserver(() => sessionStorage.setItem('seen',
            (sessionStorage.getItem('seen') || '') + ' ' + bar.value + '/' + bar.max))
          .observe(bar, {attributes: true});
    }""")
    upload = page.get_by_role("region", name="Upload a file")
    upload.get_by_label("File").set_input_files(
        files=[{"name": "lines.txt", "mimeType": "text/plain", "buffer": content}]
    )
    upload.get_by_role("button", name="Upload").click()
    page.wait_for_url(re.compile(r"/ui/tasks/task-\d+-[0-9a-f]{9}$"))
    expect(page.get_by_test_id("state")).to_have_text("completed", timeout=20000)
    expect(page.get_by_test_id("result")).to_contain_text(hashlib.sha256(content).hexdigest())
    seen = page.evaluate("sessionStorage.getItem('seen')") or ""
    reported = [tuple(map(float, pair.split("/"))) for pair in seen.split()]
    assert any(sent == total >= len(content) for sent, total in reported), seen  # all sent
    assert tab.errors == []


def test_every_view_fits_a_phone_screen(browser, stack: Stack):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        tab = Page(context, stack.url)
        task = stack.submit(type="echo", payload={"k": "v" * 200})
        for path in [*VIEWS, f"/ui/tasks/{task['id']}"]:
            page = tab.open(path, live=path != "/ui/submit")
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, (path, overflow)
        assert tab.errors == []
    finally:
        context.close()


@pytest.fixture(scope="module")
def secured(stack: Stack) -> Iterator[WebServer]:
    web = WebServer(
        stack.redis_server.url(0),
        workers=1,
        threads=32,
        auth_enabled="true",
        api_keys=KEYS,
        jwt_secret_key=SECRET,
    )
    web.start()
    yield web
    web.stop()


def _admin_token(stack: Stack) -> str:
    settings = Settings(
        redis_url=stack.redis_server.url(0), auth_enabled=True, api_keys=KEYS, jwt_secret_key=SECRET
    )
    with create_app(settings).app_context():
        return create_access_token(
            identity="ops", additional_claims={"role": "admin"}, expires_delta=timedelta(minutes=5)
        )


def _sign_in(page, kind: str, secret: str) -> None:
    dialog = page.get_by_role("dialog", name="Sign in")
    expect(dialog).to_be_visible()
    dialog.get_by_role("radio", name=kind).check()
    dialog.locator("#login-secret").fill(secret)
    dialog.get_by_role("button", name="Sign in").click()


def test_sign_in_keeps_the_credential_for_the_tab_and_hides_admin_actions_from_users(
    browser, stack: Stack, secured: WebServer
):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        tab = Page(context, secured.url)
        page = tab.open("/ui", live=False)
        _sign_in(page, "API key", "not-a-key")
        dialog = page.get_by_role("dialog", name="Sign in")
        expect(dialog).to_contain_text("refused (401 Unauthorized)")
        _sign_in(page, "API key", "user-key-4567")
        expect(dialog).to_be_hidden()
        tab.wait_live()  # the WebSocket took ?api_key=
        expect(page.get_by_text("role: user")).to_be_visible()
        expect(page.get_by_test_id("workers")).to_have_text("—")
        expect(page.locator('tr[data-queue="low"]').get_by_test_id("depth")).to_have_text("0")
        expect(page.get_by_role("button", name="Pause")).to_have_count(0)
        page = tab.open("/ui/workers")  # the same tab: no second prompt
        expect(page.get_by_text("The worker list needs the admin role.")).to_be_visible()
        expect(page.get_by_role("button", name="Pause")).to_have_count(0)

        page.get_by_role("button", name="Sign out").click()
        _sign_in(page, "JWT (bearer token)", _admin_token(stack))
        expect(page.get_by_text("role: admin")).to_be_visible()
        page = tab.open("/ui/workers")
        row = page.locator(f'tr[data-worker-id="{stack.worker.hostname}"]')
        expect(row.get_by_role("button", name="Pause", exact=True)).to_be_visible()

        # A credential that stops working (revoked key): a clear message and a new prompt.
        page.evaluate(
            "sessionStorage.setItem('taskqueue.auth', JSON.stringify("
            "{kind: 'key', secret: 'revoked-key', role: 'admin'}))"
        )
        page.reload()
        dialog = page.get_by_role("dialog", name="Sign in")
        expect(dialog).to_contain_text("refused (401 Unauthorized)")
        assert [e for e in tab.errors if "401" not in e] == []
    finally:
        context.close()


def test_the_audit_log_shows_mutations_as_they_happen(tab: Page, stack: Stack):
    page = tab.open("/ui/audit")
    actions = page.get_by_test_id("action")
    before = actions.count()
    stack.api("POST", "/admin/queues/high/pause", expect=(200, 202))
    stack.api("POST", "/admin/queues/high/resume", expect=(200, 202))
    # queue.paused / queue.resumed events tell the page to read the entries after its newest
    expect(actions).to_have_count(before + 2, timeout=10000)
    assert actions.all_inner_texts()[-2:] == ["queue.pause", "queue.resume"]
    row = page.locator("tbody tr[data-entry-id]").nth(before)
    expect(row).to_contain_text("anonymous")
    expect(row).to_contain_text("high")
    task = stack.submit(type="echo")
    stack.wait_state(task["id"], "completed")
    stack.api("DELETE", f"/api/v1/tasks/{task['id']}?purge=true")  # no event announces a purge
    page.get_by_role("button", name="Check for newer").click()
    expect(actions.last).to_have_text("task.purge")
    expect(page.locator("tbody tr[data-entry-id]").last).to_contain_text(task["id"])
    assert tab.errors == []
