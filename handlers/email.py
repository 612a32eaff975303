"""``email``: send a message through SMTP when ``SMTP_URL`` is set, else record it.

``SMTP_URL`` is ``smtp://[user:password@]host[:port]`` (``?starttls=true`` to upgrade) or
``smtps://…`` for implicit TLS; ``SMTP_FROM`` sets the sender. Both are read when a task runs.
"""

from __future__ import annotations

import os
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from . import handler
from .errors import PermanentError

SMTP_TIMEOUT_SECONDS = 30


@handler("email")
def send_email(to: str, subject: str = "", body: str = "") -> dict[str, Any]:
    """Deliver (or record) one plain-text message; a refused recipient is not retried."""
    if not isinstance(to, str) or "@" not in to or any(c in to for c in "\r\n"):
        raise PermanentError(f"invalid recipient {to!r}")
    if any(c in str(subject) for c in "\r\n"):
        raise PermanentError("subject must be one line")
    message = EmailMessage()
    message["From"] = os.environ.get("SMTP_FROM", "taskqueue@localhost")
    message["To"] = to
    message["Subject"] = str(subject)
    message["Message-ID"] = make_msgid(domain="taskqueue")
    message.set_content(str(body))
    url = os.environ.get("SMTP_URL")
    if not url:
        return {"sent": False, "recorded": True, "message_id": message["Message-ID"], "to": to,
                "subject": str(subject), "body": str(body)}
    try:
        _deliver(url, message)
    except smtplib.SMTPRecipientsRefused as exc:
        raise PermanentError(f"recipient refused: {to}") from exc
    return {"sent": True, "message_id": message["Message-ID"], "to": to}


def _deliver(url: str, message: EmailMessage) -> None:
    parsed = urlparse(url)
    secure = parsed.scheme == "smtps"
    port = parsed.port or (465 if secure else 25)
    client_class = smtplib.SMTP_SSL if secure else smtplib.SMTP
    with client_class(parsed.hostname or "localhost", port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
        if parse_qs(parsed.query).get("starttls", ["false"])[0].lower() == "true":
            smtp.starttls()
        if parsed.username:
            smtp.login(unquote(parsed.username), unquote(parsed.password or ""))
        smtp.send_message(message)
