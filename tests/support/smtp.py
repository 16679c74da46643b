"""A real SMTP server on a spare loopback port (aiosmtpd), collecting what it accepts, for the outbound-mail tests.

Not a mock of smtplib: mail goes through a real SMTP dialogue over TCP. The server can be stopped (connection
refused: a mail server that is down), told to answer every transaction with a given code (451: try again later;
550: refused for good), and started again on the same port.

A server can also act on what it accepts (`on_mail`, run in a thread of its own once the mail is accepted): the
mail-loop tests make it an auto-responder, or another installation's inbox, that posts back into a webhook.

Use it in a test module with `from tests.support.smtp import smtp_server  # noqa: F401` (a fixture import).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


def spare_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Received:
    envelope_from: str
    recipients: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class _Handler:
    received: list[Received] = field(default_factory=list)
    answer: str | None = None  # e.g. "451 4.3.0 try again later": refuse every transaction at DATA
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Called with each accepted mail, in a thread of its own: the 250 is not held up by what it does (as a real
    # mail server answers first and delivers, or auto-replies, afterwards).
    on_mail: Callable[[Received], None] | None = None

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        if self.answer is not None:
            return self.answer
        content = envelope.original_content or b""
        received = Received(str(envelope.mail_from), list(envelope.rcpt_tos), bytes(content))
        with self.lock:
            self.received.append(received)
        if self.on_mail is not None:
            threading.Thread(target=self.on_mail, args=(received,), daemon=True).start()
        return "250 2.0.0 OK queued"


class SmtpServer:
    """One aiosmtpd server on 127.0.0.1:<port>; `url` is what SMTP_URL would say."""

    def __init__(self, on_mail: Callable[[Received], None] | None = None) -> None:
        self.port = spare_port()
        self.handler = _Handler(on_mail=on_mail)
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def start(self) -> None:
        if self._controller is None:
            # 8BITMIME is advertised but our mail never needs it (core.mailer sends base64): decode_data=False keeps
            # the bytes exactly as they came.
            self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, ready_timeout=10)
            self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def refuse(self, answer: str | None) -> None:
        """Answer every DATA with `answer` (None: accept again)."""
        self.handler.answer = answer


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()
