"""A real SMTP server for the notification tests (aiosmtpd on 127.0.0.1), and readers for what it got."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from icalendar import Calendar


def free_port() -> int:
    """A port nothing listens on right now (and, once closed, a port where SMTP is "down")."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps every message it accepts. With `stall_next`, it takes the next
    message's DATA and then neither accepts nor refuses it until `release` is set: a delivery caught
    in the middle."""

    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)
    stall_next: bool = False
    refuse: set[str] = field(default_factory=set)
    """Addresses answered with 550 (no such user) at RCPT."""
    data_started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        if self.stall_next:
            self.stall_next = False
            self.data_started.set()
            while not self.release.is_set():
                await asyncio.sleep(0.02)
            return "451 4.3.0 Stalled message not accepted"
        content = envelope.content
        assert isinstance(content, bytes)
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.messages.append(message)
            self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"

    def received(self) -> list[EmailMessage]:
        with self._lock:
            return list(self.messages)

    def to(self, address: str) -> list[EmailMessage]:
        """Messages addressed to `address`, in the order they arrived."""
        with self._lock:
            return [m for m, rcpt in zip(self.messages, self.recipients, strict=True) if address in rcpt]


@dataclass
class SmtpServer:
    port: int
    mailbox: Mailbox


@contextmanager
def smtp_server(port: int | None = None, **smtp: Any) -> Iterator[SmtpServer]:
    """A running SMTP server on 127.0.0.1 (a free port unless one is given), stopped at the end;
    `smtp` goes to aiosmtpd's SMTP class (an authenticator, say)."""
    mailbox = Mailbox()
    chosen = port or free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=chosen, **smtp)
    controller.start()
    try:
        yield SmtpServer(chosen, mailbox)
    finally:
        mailbox.release.set()
        controller.stop()


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


def calendar_part(message: EmailMessage) -> EmailMessage | None:
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            assert isinstance(part, EmailMessage)
            return part
    return None


def ics_bytes(message: EmailMessage) -> bytes:
    """The attached invitation exactly as sent (it travels base64-encoded, so its CRLFs survive)."""
    part = calendar_part(message)
    assert part is not None, "the message has no text/calendar part"
    raw = part.get_payload(decode=True)
    assert isinstance(raw, bytes)
    return raw


def parse_ics(raw: bytes) -> tuple[Calendar, Any]:
    """The calendar and its one VEVENT, parsed by the icalendar package (not by our own code)."""
    calendar = Calendar.from_ical(raw)
    events = [c for c in calendar.walk() if c.name == "VEVENT"]
    assert len(events) == 1
    return calendar, events[0]
