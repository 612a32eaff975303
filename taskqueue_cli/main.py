"""The ``taskqueue`` command: global options, the commands, and exit statuses (contract §12).

Exit statuses: 0 success (with ``--wait``/``watch ID``: the task completed), 1 a task ended
failed, dead-lettered or cancelled, 2 usage error, 3 the API answered with an error (its
``message`` on stderr), 4 the service could not be reached (the URL tried on stderr), 130
interrupted (Ctrl-C). No traceback reaches the terminal; ``TASKQUEUE_DEBUG=1`` shows one for
an unexpected failure.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn
from urllib.parse import urlsplit

import click

from . import admin, tasks
from .client import ApiError, Unreachable
from .session import EXIT_API_ERROR, EXIT_INTERRUPTED, EXIT_UNREACHABLE, Session

DEFAULT_URL = "http://localhost:8080"
#: 128 + SIGPIPE, what a shell reports for a process that wrote into a closed pipe.
EXIT_BROKEN_PIPE = 141


def check_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise click.BadParameter(f"{value!r} is not an http:// or https:// URL")
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--url",
    envvar="TASKQUEUE_URL",
    default=DEFAULT_URL,
    show_default=True,
    show_envvar=True,
    callback=check_url,
    help="The service's base URL.",
)
@click.option(
    "--api-key",
    envvar="TASKQUEUE_API_KEY",
    show_envvar=True,
    metavar="KEY",
    help="API key, sent as X-API-Key.",
)
@click.option(
    "--token",
    envvar="TASKQUEUE_TOKEN",
    show_envvar=True,
    metavar="JWT",
    help="JWT, sent as Authorization: Bearer.",
)
@click.version_option(package_name="taskqueue", prog_name="taskqueue")
@click.pass_context
def cli(ctx: click.Context, url: str, api_key: str | None, token: str | None) -> None:
    """Submit, follow and operate the tasks of a taskqueue service, through its HTTP and
    WebSocket API (never Redis), so it works against any deployment.

    Tables and live bars on a terminal, plain lines when piped, the API's JSON with --json.
    Exit status: 0 ok, 1 task failed/dead-lettered/cancelled, 2 usage, 3 API error,
    4 service unreachable, 130 interrupted.
    """
    session = Session(url, api_key or None, token or None)
    ctx.obj = session
    ctx.call_on_close(session.close)


for _command in (*tasks.COMMANDS, *admin.COMMANDS):
    cli.add_command(_command)


def run(argv: Sequence[str] | None = None) -> int:
    """Run one command line; return its exit status."""
    try:
        status = cli.main(args=argv, prog_name="taskqueue", standalone_mode=False)
        return status if isinstance(status, int) else 0
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:  # Click's form of KeyboardInterrupt; Rich's bars already stopped
        return EXIT_INTERRUPTED
    except ApiError as exc:
        click.echo(f"Error: {exc.message} (HTTP {exc.status})", err=True)
        return EXIT_API_ERROR
    except Unreachable as exc:
        click.echo(f"Error: {exc}", err=True)
        return EXIT_UNREACHABLE
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)  # nothing more can be written to stdout
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # a response of an unexpected shape, or a bug here
        if os.environ.get("TASKQUEUE_DEBUG"):
            traceback.print_exc()
        click.echo(f"Error: unexpected {type(exc).__name__}: {exc}", err=True)
        return EXIT_API_ERROR


def main() -> NoReturn:
    """The console script's entry point."""
    sys.exit(run())
