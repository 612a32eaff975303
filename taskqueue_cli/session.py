"""What every command shares: the service it talks to and the ``--json`` option."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from .client import Client

F = TypeVar("F", bound=Callable[..., Any])

#: Exit statuses (contract §12). 2 is Click's own for usage errors.
EXIT_TASK_FAILED = 1
EXIT_USAGE = 2
EXIT_API_ERROR = 3
EXIT_UNREACHABLE = 4
EXIT_INTERRUPTED = 130


@dataclass
class Session:
    """The global options (``--url``, ``--api-key``, ``--token``) and the client they make."""

    url: str
    api_key: str | None = None
    token: str | None = None
    _client: Client | None = field(default=None, repr=False)

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.url, self.api_key, self.token)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


pass_session = click.make_pass_decorator(Session)


def json_option(command: F) -> F:
    """``--json``: print the API's JSON instead of tables and bars (every command has it)."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print the API's JSON response instead of tables and bars.",
    )(command)


def load_json(value: str | None, what: str) -> Any:
    """``JSON`` text or ``@file`` (``@-`` for stdin), parsed; a usage error when it is not."""
    if value is None:
        return None
    text = value
    if value.startswith("@"):
        try:
            text = click.open_file(value[1:] or "-", "r", encoding="utf-8").read()
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {value[1:]}: {exc.strerror}", param_hint=what
            ) from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON ({exc})", param_hint=what) from None
