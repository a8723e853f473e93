"""Text messages through a pluggable gateway. A real operator's API (an SMS aggregator's HTTP endpoint)
implements `SmsGateway`; for development, `FileSmsGateway` appends each message to a file of JSON lines
that a person (or a test) can read."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Protocol

from openvisit.notify.errors import DeliveryError
from openvisit.settings import Settings

MAX_SMS_CHARS = 480
"""The longest text sent. A message's short line is far below it; this bound only keeps a damaged
payload from costing many segments."""


class SmsGateway(Protocol):
    """Something that sends one text message, or raises DeliveryError."""

    def send(self, to: str, text: str, *, message_id: str, at: datetime) -> None: ...


class FileSmsGateway:
    """Appends `{"at", "id", "to", "text"}` as one JSON line per message (development and tests)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def send(self, to: str, text: str, *, message_id: str, at: datetime) -> None:
        line = json.dumps(
            {"at": at.isoformat(), "id": message_id, "to": to, "text": text[:MAX_SMS_CHARS]},
            ensure_ascii=False,
        )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One write of one whole line with O_APPEND: two workers never interleave their lines.
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, (line + "\n").encode("utf-8"))
            finally:
                os.close(fd)
        except OSError as exc:
            raise DeliveryError(f"cannot write {self.path}: {exc}", connection=True) from exc


def gateway_from_settings(settings: Settings) -> SmsGateway | None:
    """The gateway chosen by OPENVISIT_SMS_GATEWAY; None when text messages are off."""
    if settings.sms_gateway == "file":
        return FileSmsGateway(settings.sms_path)
    return None
