"""What every use case receives: settings, the database and a clock (injected, so tests control time)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from openvisit.db.database import Database
from openvisit.domain.principal import Principal
from openvisit.settings import Settings

Clock = Callable[[], datetime]

Caller = Principal | Callable[[sa.Connection], Principal]
"""Who runs a use case: the Principal, or how to find them on the use case's own connection, as the
first statement of its transaction (the web layer's `active_caller`)."""


def utc_now() -> datetime:
    """The real clock, aware and in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class AppContext:
    """Shared, long-lived parts of the running service."""

    settings: Settings
    db: Database
    clock: Clock = field(default=utc_now)

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock = utc_now) -> AppContext:
        return cls(settings=settings, db=Database.from_url(settings.database_url), clock=clock)


@dataclass(frozen=True)
class RequestMeta:
    """Where a request came from, for throttling and the audit log."""

    ip: str = "local"
    user_agent: str = ""
