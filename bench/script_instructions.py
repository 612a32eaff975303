"""Instructions Redis executes for the worker's two per-task scripts: a machine-independent cost.

Method: a private ``redis-server`` runs under ``valgrind --tool=callgrind``, collecting only
inside ``fcallCommand`` (``--toggle-collect``), so the count is the claim and outcome functions
themselves — the call, ``begin()``, every ``redis.call`` and the Lua around them — and nothing of
the event loop, the network or the clients. ``--tasks`` ``echo`` envelopes are submitted through
the store (not counted), the library is loaded by a first call (not counted), then each task is
claimed and completed through :class:`celery_app.store.Store` exactly as the pool child does.
The figure is the instructions of the whole run divided by ``--tasks``: the same binary, code
and inputs give the same count to within a few hundred, whatever else the machine is doing
(callgrind counts instructions, not time).

Needs ``valgrind`` (Debian: ``apt-get install valgrind``) and a ``redis-server`` 7 on ``PATH``
(the library is a Redis function library). About 15 s::

    .venv/bin/python bench/script_instructions.py [--tasks 1000]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from celery_app import create_celery, keys  # noqa: E402
from celery_app.settings import Settings  # noqa: E402
from celery_app.store import NewTask  # noqa: E402
from tests.harness import free_port, pings, redis_server_binary, wait_for  # noqa: E402

TOTALS = re.compile(r"^([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", re.MULTILINE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    args = parser.parse_args()
    for tool in ("valgrind", "callgrind_control", "callgrind_annotate"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: install valgrind (Debian: apt-get install valgrind)")
            return 2
    work = Path(tempfile.mkdtemp(prefix="tq-callgrind-"))
    out = work / "callgrind.out"
    port = free_port()
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--collect-atstart=no",
         "--toggle-collect=fcallCommand", f"--callgrind-out-file={out}",
         redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(work)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, decode_responses=True)
    try:
        wait_for(lambda: pings(client), timeout=60, message="redis-server under valgrind")
        version = client.info("server")["redis_version"]
        if int(version.split(".")[0]) < 7:
            print(f"redis-server {version} has no functions (FCALL): this needs Redis 7 or later")
            return 2
        store = create_celery(Settings(redis_url=f"redis://127.0.0.1:{port}/0")).runtime.store
        for n in range(args.tasks):
            store.submit(NewTask(type="echo", payload={"n": n}, priority="normal"))
        tasks = [(task_id, client.hget(keys.task(task_id), "delivery"))
                 for task_id in client.zrange(keys.index("created"), 0, -1)]
        store.claim("no-such-task", "", "bench@host")  # loads the library: not counted
        subprocess.run(["callgrind_control", "--zero", str(server.pid)], check=True,
                       capture_output=True)
        for task_id, delivery in tasks:
            if not store.claim(task_id, delivery, "bench@host").ok:
                raise AssertionError(f"claim of {task_id} refused")
        for task_id, delivery in tasks:
            if not store.complete(task_id, delivery, {"n": 1}):
                raise AssertionError(f"completion of {task_id} refused")
        subprocess.run(["callgrind_control", "--dump", str(server.pid)], check=True,
                       capture_output=True)
    finally:
        client.close()
        server.terminate()
        server.wait(60)
    dumps = sorted(work.glob("callgrind.out.*"))
    if not dumps:
        raise AssertionError(f"callgrind wrote no dump in {work}")
    report = subprocess.run(["callgrind_annotate", str(dumps[0])], capture_output=True,
                            text=True, check=True).stdout
    found = TOTALS.search(report)
    if found is None:
        raise AssertionError("no PROGRAM TOTALS line in callgrind_annotate's report")
    instructions = int(found.group(1).replace(",", ""))
    print(f"{args.tasks} echo tasks claimed and completed through FCALL")
    print(f"instructions per claim + completion (inside FCALL): {instructions / args.tasks:,.0f}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
