"""The ``kwargsrepr`` header of a built message is what Celery's ``saferepr`` writes, whether
:func:`celery_app.messages.plain_kwargsrepr` computes it or leaves it to Celery."""

from __future__ import annotations

import random
from typing import Any

import pytest
from celery.utils.saferepr import saferepr

from celery_app.messages import plain_kwargsrepr

MAXSIZE = 1024
TEXTS = ["", "a", "user@example.com", "Hello, world!", "it's", 'say "hi"', "back\\slash",
         "tab\there", "new\nline", "ü", "日本", "\u2028", "\x7f", "emoji \U0001f600", " ",
         "x" * 300]
SCALARS: list[Any] = [None, True, False, 0, -1, 2**60, 2**200, 0.1, -0.0, 1e16, 1e-7, 2.5]


def check(kwargs: Any) -> None:
    fast = plain_kwargsrepr(kwargs, MAXSIZE)
    if fast is not None:
        assert fast == saferepr(kwargs, MAXSIZE, maxlevels=3), kwargs


@pytest.mark.parametrize("value", [*TEXTS, *SCALARS, [], {}, [1], {"a": 1}, (1,)])
def test_one_value(value):
    check({"v": value})
    check({value if isinstance(value, str) else "k": value})


def test_plain_payloads_take_the_fast_path():
    kwargs = {"to": "user@example.com", "subject": "Welcome", "body": "Hello!", "n": 2, "ok": True,
              "none": None, "ratio": 0.5}
    assert plain_kwargsrepr(kwargs, MAXSIZE) == saferepr(kwargs, MAXSIZE, maxlevels=3)
    assert plain_kwargsrepr({}, MAXSIZE) == "{}"


def test_what_saferepr_would_cut_or_quote_differently_is_left_to_it():
    assert plain_kwargsrepr({"x": "y" * MAXSIZE}, MAXSIZE) is None
    assert plain_kwargsrepr({"x": "it's"}, MAXSIZE) is None
    assert plain_kwargsrepr({"x": [1]}, MAXSIZE) is None


def test_random_flat_payloads_around_the_size_limit():
    rng = random.Random(7)
    for _ in range(3000):
        kwargs = {}
        for _ in range(rng.randint(0, 12)):
            key = rng.choice(TEXTS[:12]) + str(rng.randint(0, 9))
            kwargs[key] = rng.choice([*TEXTS, *SCALARS, "z" * rng.randint(0, 1100)])
        check(kwargs)
