"""Strict JSON, both ways: the only JSON codec the service uses for what it reads and writes.

RFC 8259 allows text that is not Unicode (``"\\ud83d"``, a lone UTF-16 surrogate) and numbers
that no IEEE double holds (``1e999``); Python's ``json`` turns the first into a ``str`` that
cannot be encoded as UTF-8 and the second into ``inf``, which it writes back as ``Infinity`` —
not JSON at all, refused by browsers' ``JSON.parse``. Here:

- :func:`loads` refuses duplicate keys, ``NaN``/``Infinity`` literals, numbers that overflow a
  double, lone surrogates in any string or key, and nesting deeper than :data:`MAX_DEPTH`;
  the error (:class:`InvalidJSON`, a ``ValueError``) names the path (``payload.note``).
- :func:`dumps` writes with ``allow_nan=False`` and refuses lone surrogates, so nothing the
  service stores, publishes or answers is ever invalid JSON or invalid UTF-8.
- :func:`text_problem` says what is wrong with one client string (query values, headers,
  form fields, file names): used wherever text arrives outside a JSON body.
"""

from __future__ import annotations

import json
import math
from typing import Any

#: Deepest nesting of objects/arrays accepted in a document (scalars add no level).
MAX_DEPTH = 64


class InvalidJSON(ValueError):
    """A document the strict rules refuse; ``str()`` says why. ``located`` is true when the
    message starts with the path of the offending value (``payload.note: …``)."""

    def __init__(self, message: str, located: bool = False) -> None:
        super().__init__(message)
        self.located = located


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidJSON(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> None:
    raise InvalidJSON(f"{name} is not valid JSON")


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored as Unicode (``None`` when it can)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"contains a lone UTF-16 surrogate ({text[exc.start]!r}), which is not Unicode"
    return None


def _join(path: str, part: str | int) -> str:
    return f"{path}.{part}" if path else str(part)


def find_problem(
    value: Any, path: str = "", max_depth: int | None = MAX_DEPTH
) -> tuple[str, str] | None:
    """The first non-Unicode string or key, non-finite number or too-deep nesting in
    ``value`` as ``(path, reason)`` (path ``""`` for the document itself); ``None`` when
    ``value`` is strict JSON."""
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
        elif isinstance(item, float) and not math.isfinite(item):
            problem = "number out of range (not a finite double)"
        elif isinstance(item, dict | list) and max_depth is not None and depth >= max_depth:
            problem = f"nested deeper than {max_depth} levels"
        else:
            problem = None
        if problem:
            return where, problem
        if isinstance(item, dict):
            for key in item:
                key_problem = text_problem(key) if isinstance(key, str) else None
                if key_problem:
                    return _join(where, "<key>"), key_problem
            children = [(child, _join(where, key), depth + 1) for key, child in item.items()]
        elif isinstance(item, list):
            children = [(child, _join(where, i), depth + 1) for i, child in enumerate(item)]
        else:
            continue
        stack.extend(reversed(children))  # the first problem in document order is reported
    return None


def describe(problem: tuple[str, str]) -> str:
    """``(path, reason)`` as one message: ``payload.note: <reason>``."""
    path, reason = problem
    return f"{path}: {reason}" if path else reason


def loads(raw: str | bytes) -> Any:
    """Parse one strict JSON document; :class:`InvalidJSON` says where and why it is not."""
    try:
        value = json.loads(
            raw, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except InvalidJSON:
        raise
    except RecursionError:
        raise InvalidJSON(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int digits limit
        raise InvalidJSON(str(exc)) from None
    problem = find_problem(value)
    if problem:
        raise InvalidJSON(describe(problem), located=bool(problem[0]))
    return value


def dumps(value: Any, **options: Any) -> str:
    """Serialise strictly: ``ValueError`` for NaN/±Infinity or a lone surrogate anywhere.

    ``options`` go to :func:`json.dumps` (``separators``, ``default``, ``sort_keys``, …);
    ``allow_nan`` is always false and ``ensure_ascii`` defaults to false (UTF-8 text).
    """
    options["allow_nan"] = False
    options.setdefault("ensure_ascii", False)
    text = json.dumps(value, **options)
    if options["ensure_ascii"]:
        # Every code point beyond ASCII is escaped, a surrogate (lone or half of a pair) as a
        # lowercase "\udXXX": without that sequence there is none to look for.
        if "\\ud" not in text:
            return text
        utf8 = json.dumps(value, allow_nan=False, ensure_ascii=False,
                          default=options.get("default"))
    else:
        utf8 = text
    if text_problem(utf8):
        problem = find_problem(value, max_depth=None) or ("", "contains a lone surrogate")
        raise ValueError(f"not serialisable as strict JSON: {describe(problem)}")
    return text
