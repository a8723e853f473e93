"""Email over SMTP (smtplib): one connection per batch, STARTTLS and login when configured, and messages
built as multipart/alternative (plain text and HTML) with the calendar invitation attached as
text/calendar.

The Message-ID is derived from the outbox row, not drawn at random: if a crash makes the worker send a
message twice, both copies carry one Message-ID, and mail systems that deduplicate on it show one."""

from __future__ import annotations

import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from types import TracebackType
from typing import Protocol

from openvisit.notify.errors import DeliveryError
from openvisit.notify.messages import Rendered
from openvisit.settings import Settings


def sender_address(mail_from: str) -> tuple[str, str]:
    """The display name and address of a From setting such as "OpenVisit <no-reply@example.org>"."""
    name, address = parseaddr(mail_from)
    return name, address


def mail_domain(mail_from: str, fallback: str = "openvisit.local") -> str:
    """The domain of the sender's address; it names Message-IDs and calendar UIDs."""
    _, address = parseaddr(mail_from)
    _user, at, domain = address.rpartition("@")
    return domain.strip().lower() if at and domain.strip() else fallback


def build_email(
    rendered: Rendered,
    *,
    to: str,
    mail_from: str,
    message_id: str,
    date: datetime,
) -> EmailMessage:
    """The email of a rendered message: text and HTML alternatives, and the invitation when there is
    one, byte for byte as written."""
    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = mail_from
    message["To"] = to
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    # RFC 3834: tells vacation responders and mailing lists not to answer an automatic message.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    if rendered.calendar is not None and rendered.calendar_method is not None:
        # As bytes: a str part would have its CRLF line ends normalised; bytes travel base64, untouched.
        message.add_attachment(
            rendered.calendar.encode("utf-8"),
            maintype="text",
            subtype="calendar",
            filename="visit.ics",
            params={"method": rendered.calendar_method, "charset": "utf-8"},
        )
    # Last: setting and restructuring the content drops or moves every Content-* header set before.
    message["Content-Language"] = rendered.language
    return message


def message_id_for(notification_id: int, created_at: datetime, domain: str) -> str:
    """A Message-ID that names one outbox row (its id and creation time, so that a rebuilt database
    never reuses one)."""
    return f"<notification.{notification_id}.{int(created_at.timestamp())}@{domain}>"


class EmailSender(Protocol):
    """Something that hands an email on for delivery, or raises DeliveryError."""

    def send(self, message: EmailMessage) -> None: ...


class SmtpMailer:
    """An SMTP client that connects on its first message and keeps the connection for the batch.
    Use it as a context manager, so the connection is closed (QUIT) at the end."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpMailer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        try:
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(
                f"cannot connect to {s.smtp_host}:{s.smtp_port}: {exc}", connection=True
            ) from exc
        try:
            smtp.ehlo()
            if s.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if s.smtp_user:
                password = s.smtp_password.get_secret_value() if s.smtp_password else ""
                smtp.login(s.smtp_user, password)
        except (OSError, smtplib.SMTPException) as exc:
            _quietly_close(smtp)
            raise DeliveryError(f"SMTP session refused: {exc}", connection=True) from exc
        return smtp

    def send(self, message: EmailMessage) -> None:
        """Hand `message` to the server; it counts as delivered once the server accepted it."""
        if self._smtp is None:
            self._smtp = self._connect()
        try:
            refused = self._smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryError(
                f"recipient refused: {_describe(exc.recipients)}", permanent=all(c >= 500 for c in codes)
            ) from exc
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            raise DeliveryError(
                f"message refused: {exc.smtp_code} {_text(exc.smtp_error)}", permanent=exc.smtp_code >= 500
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            # The connection broke mid-message: drop it, so the next message connects afresh.
            self.close()
            raise DeliveryError(f"SMTP error: {exc}") from exc
        if refused:
            # With a single recipient, a refusal raises above; this is a partial refusal of several.
            raise DeliveryError(f"recipient refused: {_describe(refused)}", permanent=True)

    def close(self) -> None:
        if self._smtp is not None:
            _quietly_close(self._smtp)
            self._smtp = None


def _quietly_close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _describe(recipients: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{address}: {code} {_text(reply)}" for address, (code, reply) in recipients.items())
