"""The histogram buckets the Lua scripts count in are the ones /metrics reports."""

import re
from importlib import resources

from celery_app.metrics import DURATION_BUCKETS


def test_lua_and_python_share_the_duration_buckets():
    lib = resources.files("celery_app").joinpath("lua/lib.lua").read_text()
    lua_list = re.search(r"local BUCKETS = \{([^}]*)\}", lib).group(1)
    assert tuple(float(b) for b in lua_list.split(",")) == tuple(map(float, DURATION_BUCKETS))
