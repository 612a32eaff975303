"""The service's one JSON codec: what it refuses to read and to write."""

from __future__ import annotations

import pytest

from celery_app import model, strictjson


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"a":"\\ud83d"}', "a: contains a lone UTF-16 surrogate"),
        (b'{"a":{"\\udfff":1}}', "a.<key>: contains a lone UTF-16 surrogate"),
        (b'[1,["ok","\\udc00\\udc00"]]', "1.1: contains a lone UTF-16 surrogate"),
        (b'{"n":1e999}', "n: number out of range"),
        (b'{"n":[-1e400]}', "n.0: number out of range"),
        (b'{"a":1,"b":1.5e308,"c":1e309}', "c: number out of range"),
    ],
)
def test_values_that_are_not_strict_json_are_refused_with_their_path(raw, message):
    with pytest.raises(strictjson.InvalidJSON, match="^" + message.replace(".", r"\.")) as caught:
        strictjson.loads(raw)
    assert caught.value.located


@pytest.mark.parametrize("raw", [b"NaN", b'{"x":-Infinity}', b'{"a":1,"a":1}', b"\xff", b"{"])
def test_syntax_errors_are_refused_without_a_path(raw):
    with pytest.raises(strictjson.InvalidJSON) as caught:
        strictjson.loads(raw)
    assert not caught.value.located


def test_a_surrogate_pair_is_one_character_and_fine():
    assert strictjson.loads(b'{"e":"\\ud83d\\ude00"}') == {"e": "😀"}


@pytest.mark.parametrize(
    "value",
    [
        {"x": float("inf")},
        [float("-inf")],
        {"n": float("nan")},
        {"s": "\ud83d"},
        {"\udc00": 1},
        {"deep": [[{"t": "a\ud800"}]]},
    ],
)
def test_nothing_invalid_is_ever_written(value):
    for dump in (strictjson.dumps, model.dumps, lambda v: strictjson.dumps(v, ensure_ascii=True)):
        with pytest.raises(ValueError):
            dump(value)


def test_writing_keeps_unicode_as_utf8_text():
    assert (
        model.dumps({"t": "☃ 😀", "n": 10**30})
        == '{"t":"☃ 😀","n":1000000000000000000000000000000}'
    )
