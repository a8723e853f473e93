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
    smtp_port: int = 1025
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    mail_from: str = "OpenVisit <no-reply@openvisit.local>"

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

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        if self.mode != "development" and self.secret_key.get_secret_value() == DEFAULT_SECRET:
            raise ValueError(
                "OPENVISIT_SECRET_KEY is the development default; set a secret outside development"
            )
        if self.mode == "production" and len(self.secret_key.get_secret_value()) < 32:
            raise ValueError("OPENVISIT_SECRET_KEY must be at least 32 characters in production")
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
