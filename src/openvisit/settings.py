"""One typed settings object, read from the environment (prefix OPENVISIT_) and passed in."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET = "development-secret-change-me"  # noqa: S105 - the sentinel refused outside development


class Settings(BaseSettings):
    """Everything the service needs to know about its surroundings."""

    model_config = SettingsConfigDict(env_prefix="OPENVISIT_", env_file=None, extra="ignore")

    mode: Literal["development", "test", "production"] = "development"
    """development relaxes TOTP enrolment and cookie security; production refuses default secrets."""

    database_url: str = "sqlite:///var/openvisit.sqlite3"
    """Any SQLAlchemy URL; SQLite files and PostgreSQL (postgresql+psycopg://) are supported."""

    secret_key: SecretStr = SecretStr(DEFAULT_SECRET)
    """Key for signed links and token hashing; must be changed outside development."""

    var_dir: Path = Path("var")
    """Where runtime state lives (SQLite file, uploads, recordings) unless set one by one."""

    uploads_dir: Path | None = None
    """Identity documents, outside the web root. Default: var/uploads."""

    recordings_dir: Path | None = None
    """Recorded visits. Default: var/recordings."""

    base_url: str = "http://127.0.0.1:8000"
    """The address people use to reach the site; used in emails and links."""

    smtp_host: str = "127.0.0.1"
    """Mail server the delivery worker hands emails to."""

    smtp_port: int = Field(default=1025, ge=1, le=65535)

    smtp_user: str | None = None
    """Login at the mail server (none: send without logging in)."""

    smtp_password: SecretStr | None = None

    smtp_starttls: bool = False
    """Upgrade the connection with STARTTLS (certificate checked) before logging in and sending."""

    smtp_timeout_seconds: int = Field(default=30, ge=1, le=600)
    """How long one SMTP command may take before the attempt counts as failed."""

    mail_from: str = "OpenVisit <no-reply@openvisit.local>"
    """Sender of emails; its domain also names the Message-IDs and calendar UIDs."""

    sms_gateway: Literal["file", "none"] = "none"
    """Where text messages go: `file` appends them as JSON lines to sms_file (development), `none`
    sends none (no SMS rows are written)."""

    sms_file: Path | None = None
    """The file of the `file` SMS gateway. Default: var/sms.jsonl."""

    delivery_seconds: int = Field(default=15, ge=0)
    """How often the server enqueues due reminders and delivers due notifications (0: never; then run
    `openvisit worker` as its own process)."""

    delivery_batch_size: int = Field(default=50, ge=1, le=1000)
    """Notifications one worker claims at a time."""

    delivery_max_attempts: int = Field(default=10, ge=1, le=100)
    """Attempts at one notification before it is marked failed."""

    delivery_backoff_seconds: int = Field(default=60, ge=1)
    """Wait after the first failed attempt; it doubles with each further failure."""

    delivery_backoff_max_seconds: int = Field(default=3600, ge=1)
    """The longest wait between two attempts."""

    delivery_lease_seconds: int = Field(default=300, ge=10)
    """How long a claimed notification belongs to the worker that claimed it; if that worker dies, another
    one takes it over after this. At least twice smtp_timeout_seconds."""

    default_timezone: str = "Europe/Moscow"
    """Zone for people who have not chosen one."""

    default_language: Literal["en", "ru"] = "en"

    require_staff_totp: bool | None = None
    """Staff must enrol TOTP. Default: on, except in development."""

    session_hours: int = Field(default=12, ge=1, le=24 * 30)
    """How long a login lasts without activity."""

    login_max_failures: int = Field(default=5, ge=1)
    """Failures within login_window_minutes before an account and an address are slowed down."""

    login_window_minutes: int = Field(default=15, ge=1)

    sweep_seconds: int = Field(default=60, ge=0)
    """How often the server expires held times and rejects requests nobody decided in time (0: never;
    then run `openvisit sweep` from cron)."""

    max_body_bytes: int = Field(default=12 * 1024 * 1024, ge=1024)
    """Largest request body accepted (uploads of ID documents are at most 10 MB)."""

    media_engine: Literal["aiortc", "none"] = "aiortc"
    """What carries live visits: the embedded aiortc engine, or none (the site runs without video)."""

    media_workers: int = Field(default=2, ge=0, le=64)
    """Processes the aiortc engine runs visits in (0: one thread of the server process instead)."""

    ice_servers: list[str] = Field(default_factory=list)
    """STUN/TURN addresses handed to browsers and used by the engine (none: host candidates only)."""

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        if self.mode != "development" and self.secret_key.get_secret_value() == DEFAULT_SECRET:
            raise ValueError(
                "OPENVISIT_SECRET_KEY is the development default; set a secret outside development"
            )
        if self.mode == "production" and len(self.secret_key.get_secret_value()) < 32:
            raise ValueError("OPENVISIT_SECRET_KEY must be at least 32 characters in production")
        if self.delivery_lease_seconds < 2 * self.smtp_timeout_seconds:
            # A claim that can run out while one SMTP exchange is still waiting would let a second
            # worker send the same message again.
            raise ValueError("OPENVISIT_DELIVERY_LEASE_SECONDS must be at least twice the SMTP timeout")
        return self

    @property
    def staff_totp_required(self) -> bool:
        """Staff must use TOTP unless explicitly switched off; off by default in development."""
        if self.require_staff_totp is not None:
            return self.require_staff_totp
        return self.mode != "development"

    @property
    def secure_cookies(self) -> bool:
        """Cookies carry the Secure flag whenever the site is served over HTTPS."""
        return self.base_url.startswith("https://") or self.mode == "production"

    @property
    def uploads_path(self) -> Path:
        return self.uploads_dir or self.var_dir / "uploads"

    @property
    def recordings_path(self) -> Path:
        return self.recordings_dir or self.var_dir / "recordings"

    @property
    def sms_path(self) -> Path:
        return self.sms_file or self.var_dir / "sms.jsonl"
