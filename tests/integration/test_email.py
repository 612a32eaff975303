"""The email handler delivers through a real SMTP server when SMTP_URL is set."""

from __future__ import annotations

import pytest
from aiosmtpd.controller import Controller

from tests.harness import free_port, wait_for


class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


def test_email_is_delivered_through_smtp_when_configured(env, smtp_server):
    controller, inbox = smtp_server
    env.worker(smtp_url=f"smtp://127.0.0.1:{controller.port}")
    task = env.submit(type="email", payload={"to": "user@example.com", "subject": "Welcome",
                                             "body": "Hello!"})
    done = env.wait_state(task["id"], "completed")
    assert done["result"]["sent"] is True and done["result"]["to"] == "user@example.com"
    wait_for(lambda: inbox.messages, message="the message at the SMTP server")
    received = inbox.messages[0]
    assert received.rcpt_tos == ["user@example.com"]
    text = received.content.decode()
    assert "Subject: Welcome" in text and "Hello!" in text
    assert done["result"]["message_id"] in text


def test_email_is_recorded_when_no_smtp_server_is_configured(env):
    env.worker(smtp_url="")
    task = env.submit(type="email", payload={"to": "user@example.com", "subject": "Hi",
                                             "body": "Body"})
    result = env.wait_state(task["id"], "completed")["result"]
    assert result["sent"] is False and result["recorded"] is True
    assert (result["to"], result["subject"], result["body"]) == ("user@example.com", "Hi", "Body")


def test_an_invalid_recipient_is_dead_lettered_without_retries(env):
    env.worker(smtp_url="")
    task = env.submit(type="email", payload={"to": "not-an-address"}, max_retries=3)
    done = env.wait_state(task["id"], "dead_letter")
    assert done["attempts"] == 1 and "invalid recipient" in done["error"]
