"""The console in a real browser: Debian's Chromium driven by Playwright, against the real stack.

One browser and one stack (a private redis-server, a Celery worker, gunicorn) per module, so the
whole directory adds seconds, not minutes. Without a Chromium these tests are skipped with the
reason, and the run ends with a warning saying how to get one; ``CHROMIUM`` points at another
binary. Playwright's own browser downloads are never used (``executable_path`` only).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from tests.harness import RedisServer, WebServer, Worker, wait_for

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
HOW_TO_GET_IT = (
    f"no Chromium at {CHROMIUM}: the console's browser tests were SKIPPED. "
    "Install it with `apt-get install -y chromium` (Debian/Ubuntu), or set "
    "CHROMIUM=/path/to/chromium"
)
#: Heartbeat period of the module's worker (the default): the age shown ticks 0 s, 1 s, 0 s…
HEARTBEAT_SECONDS = 2
#: Set to a directory (e.g. ``docs``) to save the README's screenshots there.
SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS")

_skipped: list[str] = []


def chromium_missing() -> bool:
    return not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not chromium_missing():
        return
    skip = pytest.mark.skip(reason=HOW_TO_GET_IT)
    for item in items:
        if "tests/browser/" in item.nodeid:
            item.add_marker(skip)
            _skipped.append(item.nodeid)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _skipped:
        terminalreporter.write_sep("!", "WARNING", red=True, bold=True)
        terminalreporter.write_line(
            f"{len(_skipped)} browser tests skipped — {HOW_TO_GET_IT}", red=True, bold=True
        )


@dataclass
class Stack:
    """A running service: its Redis, a worker and the web process the browser talks to."""

    redis_server: RedisServer
    worker: Worker
    web: WebServer
    redis: redis.Redis
    extra: list[Any] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.web.url

    def api(
        self, method: str, path: str, expect: int | tuple[int, ...] = (200, 201), **kwargs: Any
    ) -> Any:
        response = requests.request(method, self.url + path, timeout=10, **kwargs)
        expected = (expect,) if isinstance(expect, int) else expect
        assert response.status_code in expected, (response.status_code, response.text)
        return response.json()

    def submit(self, **body: Any) -> dict[str, Any]:
        return self.api("POST", "/api/v1/tasks", json=body, expect=201)

    def task(self, task_id: str) -> dict[str, Any]:
        return self.api("GET", f"/api/v1/tasks/{task_id}")

    def wait_state(self, task_id: str, *states: str, timeout: float = 20) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            envelope = self.task(task_id)
            return envelope if envelope["state"] in states else None

        return wait_for(reached, timeout=timeout, message=f"{task_id} in {states}")

    def set_worker_paused(self, paused: bool) -> None:
        """Pause or resume the worker and wait until it applied it (its own event says so)."""
        newest = self.redis.xrevrange("tq:events", count=1)
        start = f"({newest[0][0]}" if newest else "-"
        verb = "pause" if paused else "resume"
        self.api("POST", f"/admin/workers/{self.worker.hostname}/{verb}", expect=(200, 202))

        def applied() -> bool:
            return any(
                fields["type"] == f"worker.{verb}d"
                for _, fields in self.redis.xrange("tq:events", min=start)
            )

        wait_for(applied, message=f"worker.{verb}d")

    def events_of(self, task_id: str) -> list[str]:
        """Ids of every event of one task in the stream, oldest first."""
        return [
            entry_id
            for entry_id, fields in self.redis.xrange("tq:events")
            if f'"task_id":"{task_id}"' in fields["data"].replace(" ", "")
        ]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if chromium_missing():
        pytest.skip(HOW_TO_GET_IT)
    server = RedisServer().start()
    uploads = tmp_path_factory.mktemp("uploads")
    options = {"upload_dir": str(uploads), "worker_heartbeat_seconds": HEARTBEAT_SECONDS}
    worker = Worker(
        server.url(0), "console", concurrency=2, log_dir=tmp_path_factory.mktemp("logs"), **options
    )
    web = WebServer(server.url(0), workers=2, threads=32, **options)
    try:
        worker.start()
        web.start()
        yield Stack(server, worker, web, redis.Redis.from_url(server.url(0), decode_responses=True))
    finally:
        web.stop()
        worker.stop()
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if chromium_missing():
        pytest.skip(HOW_TO_GET_IT)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Page:
    """A browser tab on the console that remembers its console errors and HTTP requests."""

    def __init__(self, context: Any, base_url: str) -> None:
        self.context = context
        self.page = context.new_page()
        self.base_url = base_url
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.sockets: list[Any] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("request", lambda r: self.requests.append(f"{r.method} {r.url}"))
        self.page.on("websocket", lambda ws: self.sockets.append(ws))

    def open(self, path: str, live: bool = True) -> Any:
        """Load ``path`` and wait until its event stream is connected."""
        self.page.goto(self.base_url + path)
        if live:
            self.wait_live()
        return self.page

    def wait_live(self) -> None:
        self.page.locator(".live.live").wait_for(timeout=15000)


@pytest.fixture
def tab(browser: Any, stack: Stack) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield Page(context, stack.url)
    context.close()


def screenshot(page: Any, name: str) -> None:
    """Save a PNG for the README when ``CONSOLE_SCREENSHOTS`` names a directory."""
    if SCREENSHOTS:
        target = Path(SCREENSHOTS)
        target.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(target / name), full_page=False)
