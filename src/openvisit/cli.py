"""The `openvisit` command: serve the site, migrate the database, load the demo, manage users, audit."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import sqlalchemy as sa
import typer
from alembic.util.exc import CommandError
from pydantic import ValidationError
from typer.core import TyperGroup

from openvisit.db import migrate
from openvisit.db.database import create_db_engine
from openvisit.domain.enums import AccountKind, ActorKind
from openvisit.domain.errors import DomainError
from openvisit.domain.principal import Principal
from openvisit.services import audit, residents_import, scheduling
from openvisit.services.context import AppContext, RequestMeta
from openvisit.services.demo import DEMO_LOGINS, DEMO_STATIONS, load_demo
from openvisit.services.demo_visits import DemoVisit, live_demo_visits, load_live_visits
from openvisit.services.users import VisitorProfile, create_user, grant_from_spec
from openvisit.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

CLI_ACTOR = Principal(kind=ActorKind.SYSTEM, label="cli")
"""Who the audit log names for changes made from the command line."""

EXIT_BROKEN = 1
"""`audit verify` found a broken chain."""
EXIT_ERROR = 2
"""The command could not do its work (bad input, a refused change, an unreachable database)."""


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_ERROR)


def _domain_message(exc: DomainError) -> str:
    details = ", ".join(f"{key}={value}" for key, value in exc.params.items())
    return f"{exc.code}: {exc.message}" + (f" ({details})" if details else "")


class _ReportingGroup(TyperGroup):
    """Turns the errors people can act on into one line and exit status 2, instead of a traceback."""

    # `ctx` is typer's vendored click Context, a type typer does not export.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except DomainError as exc:
            _fail(_domain_message(exc))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}".lstrip(": ")
                for error in exc.errors()
            )
            _fail(f"settings: {problems}")
        except CommandError as exc:
            _fail(f"db.migration: {exc}")
        except sa.exc.SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            _fail(f"db.error: {reason}")


app = typer.Typer(
    cls=_ReportingGroup,
    name="openvisit",
    help="OpenVisit: virtual prison visits.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="Migrate the database.", no_args_is_help=True)
user_app = typer.Typer(help="Manage accounts.", no_args_is_help=True)
audit_app = typer.Typer(help="Check the audit log.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(audit_app, name="audit")


@dataclass
class _State:
    """Per invocation: the settings, read from the environment the first time a command needs them."""

    _settings: Settings | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        # Read lazily so that `--help` works even where the environment's settings would be refused.
        if self._settings is None:
            self._settings = Settings()
        return self._settings


@app.callback()
def _root(ctx: typer.Context) -> None:
    """OpenVisit: virtual prison visits. Settings come from OPENVISIT_* environment variables."""
    ctx.obj = _State()


def _state(ctx: typer.Context) -> _State:
    state = ctx.find_object(_State)
    assert state is not None, "the root callback sets the state"
    return state


@contextmanager
def _context(ctx: typer.Context) -> Iterator[AppContext]:
    context = AppContext.from_settings(_state(ctx).settings())
    try:
        yield context
    finally:
        context.db.dispose()


def _require_migrated(context: AppContext) -> None:
    current, head = migrate.current_revision(context.db.engine), migrate.head_revision()
    if current != head:
        found = current or "no revision"
        _fail(f"db.not_migrated: the database is at {found}, not {head}; run `openvisit db upgrade`")


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    for line in (headers, [("-" * w) for w in widths], *rows):
        typer.echo("  ".join(str(cell).ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


# --- serve ----------------------------------------------------------------------------------------


def app_from_environment() -> FastAPI:
    """The web application with settings from the environment: the factory `serve --reload` hands uvicorn."""
    from openvisit.web.app import create_app

    application: FastAPI = create_app(Settings())
    return application


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    reload: Annotated[bool, typer.Option(help="Restart when the code changes (development).")] = False,
) -> None:
    """Run the web application with uvicorn."""
    import uvicorn

    # Read now, so that refused settings fail here rather than in the reloader's child process.
    settings = _state(ctx).settings()
    if reload:
        # The reloader starts a fresh process, which can only rebuild the app from an import string.
        uvicorn.run("openvisit.cli:app_from_environment", factory=True, host=host, port=port, reload=True)
        return
    # Imported here: the other commands neither need the web stack nor pay for loading it.
    from openvisit.web.app import create_app

    uvicorn.run(create_app(settings), host=host, port=port)


# --- db -------------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Option(help="Revision to upgrade to.")] = "head",
) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    settings = _state(ctx).settings()
    migrate.upgrade(settings.database_url, revision)
    typer.echo(f"database upgraded to {revision}")


@db_app.command("downgrade")
def db_downgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help='Revision to go back to ("base" removes every table).')],
) -> None:
    """Revert migrations down to REVISION."""
    settings = _state(ctx).settings()
    migrate.downgrade(settings.database_url, revision)
    typer.echo(f"database downgraded to {revision}")


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Show the database's revision and the newest one."""
    engine = create_db_engine(_state(ctx).settings().database_url)
    try:
        current = migrate.current_revision(engine)
    finally:
        engine.dispose()
    head = migrate.head_revision()
    if current is None:
        typer.echo(f"current: none (never migrated); head: {head}")
    elif current == head:
        typer.echo(f"current: {current} (head)")
    else:
        typer.echo(f"current: {current}; head: {head} (run `openvisit db upgrade`)")


# --- demo -----------------------------------------------------------------------------------------


def _print_logins() -> None:
    _print_table(["role", "login", "password / PIN", "note"], DEMO_LOGINS)
    typer.echo("")
    _print_table(["station", "device key"], DEMO_STATIONS)


@app.command()
def demo(
    ctx: typer.Context,
    logins: Annotated[bool, typer.Option("--logins", help="Only print the demo logins.")] = False,
    live: Annotated[
        bool,
        typer.Option("--live", help="Add the three demo visits one can join now (home, legal, link center)."),
    ] = False,
) -> None:
    """Load the demo data (a colony in Krasnoyarsk, link centers, families, staff) and print the logins."""
    if not logins:
        with _context(ctx) as context:
            _require_migrated(context)
            summary = load_demo(context)
            typer.echo(summary.describe())
            if live and summary.already_loaded:
                made = load_live_visits(context)
                typer.echo(
                    f"Live demo visits added: {len(made)} (a resident or station already busy is skipped)."
                )
            with context.db.read() as session:
                _print_live_visits(live_demo_visits(session, context.clock()))
        typer.echo("")
    _print_logins()


def _print_live_visits(visits: list[DemoVisit]) -> None:
    if not visits:
        typer.echo("No demo visit can be joined now; `openvisit demo --live` adds three that start now.")
        return
    typer.echo("Demo visits one can join now (the visitor at /visits, the resident at /station):")
    _print_table(
        ["visit", "kind", "visitor", "resident", "until (UTC)"],
        [
            (
                str(v.id),
                f"{v.kind.value}, {v.mode.value.replace('_', ' ')}",
                v.who,
                v.resident,
                v.ends_at.strftime("%Y-%m-%d %H:%M"),
            )
            for v in visits
        ],
    )


# --- user -----------------------------------------------------------------------------------------


@user_app.command("create")
def user_create(
    ctx: typer.Context,
    email: Annotated[str, typer.Option(help="Login email.")],
    name: Annotated[str, typer.Option(help="Name shown to others.")],
    kind: Annotated[AccountKind, typer.Option(help="visitor or staff.")] = AccountKind.STAFF,
    role: Annotated[
        list[str] | None,
        typer.Option(
            help="Staff role as ROLE, or ROLE:CODE with the facility's (or, for link_operator, the link "
            "center's) code; repeatable."
        ),
    ] = None,
    language: Annotated[str | None, typer.Option(help="en or ru (default: the settings' language).")] = None,
    timezone: Annotated[
        str | None, typer.Option(help="IANA time zone (default: the settings' zone).")
    ] = None,
    last_name: Annotated[str | None, typer.Option(help="Visitor's last name.")] = None,
    first_name: Annotated[str | None, typer.Option(help="Visitor's first name.")] = None,
    middle_name: Annotated[str, typer.Option(help="Visitor's middle name or patronymic.")] = "",
    birth_date: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Visitor's date of birth, YYYY-MM-DD.")
    ] = None,
    phone: Annotated[str | None, typer.Option(help="Visitor's phone number.")] = None,
    city: Annotated[str, typer.Option(help="Visitor's home city.")] = "",
    password: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, confirmation_prompt=True, help="Asked for when not given."
        ),
    ] = "",
) -> None:
    """Create a visitor or staff account; its email counts as verified."""
    with _context(ctx) as context:
        _require_migrated(context)
        grants = [grant_from_spec(context, spec) for spec in role or ()]
        profile = None
        if kind is AccountKind.VISITOR and last_name and first_name and birth_date:
            profile = VisitorProfile(
                last_name=last_name,
                first_name=first_name,
                middle_name=middle_name,
                birth_date=birth_date.date(),
                phone=phone,
                home_city=city,
            )
        user_id = create_user(
            context,
            CLI_ACTOR,
            email=email,
            password=password,
            kind=kind,
            display_name=name,
            language=language or context.settings.default_language,
            timezone=timezone,
            grants=grants,
            visitor=profile,
            email_verified=True,
        )
    roles = ", ".join(role or ()) or "no staff roles"
    typer.echo(f"created {kind.value} account #{user_id} {email.strip().lower()} ({roles})")


# --- audit ----------------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify(ctx: typer.Context) -> None:
    """Walk the audit chain; exit 0 when it holds, 1 naming the first entry that does not."""
    with _context(ctx) as context:
        result = audit.verify(context.db)
    if result.fault is None:
        typer.echo(f"audit chain OK: {result.checked} entries, head {result.head_hash}")
        return
    fault = result.fault
    entry = f"entry id {fault.entry_id}" if fault.entry_id is not None else "no entry"
    typer.echo(
        f"audit chain BROKEN at seq {fault.seq} ({entry}): {fault.reason}; "
        f"{result.checked} entries hold before it",
        err=True,
    )
    raise typer.Exit(EXIT_BROKEN)


# --- import ---------------------------------------------------------------------------------------

import_app = typer.Typer(help="Import records from the prison's own systems.", no_args_is_help=True)
app.add_typer(import_app, name="import")

EXIT_REJECTED = 1
"""`import residents` rejected some rows and imported the others."""


@import_app.command("residents")
def import_residents(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A CSV or JSON file in UTF-8 (README: Importing residents).")],
    file_format: Annotated[
        residents_import.FileFormat | None,
        typer.Option("--format", help="csv or json (default: from the name's ending, else the content)."),
    ] = None,
) -> None:
    """Create or update residents from FILE by resident number; transfers and releases cancel future
    visits. Prints each rejected row as `row N: reason`, then `imported N, updated M, unchanged U,
    rejected K`. Exit status 0 when every row was imported, 1 when some were rejected (the others are
    imported), 2 when the file cannot be read."""
    try:
        stream = file.open("rb")
    except OSError as exc:
        _fail(f"import.unreadable: {file}: {exc.strerror or exc}")
    with stream, _context(ctx) as context:
        _require_migrated(context)
        fmt = file_format or residents_import.guess_format(file.name, stream.peek(64)[:64])
        try:
            source = residents_import.open_import(stream, fmt)
        except residents_import.UnreadableFile as exc:
            _fail(f"{exc.code}: {exc.message % exc.params if exc.params else exc.message}")
        # Only a person at a terminal wants the bar; a log or a pipe gets the report alone.
        hidden = not sys.stderr.isatty() or source.total is None
        with typer.progressbar(
            length=source.total or 0, label=f"importing {file.name}", file=sys.stderr, hidden=hidden
        ) as bar:
            result = residents_import.import_file(
                context,
                CLI_ACTOR,
                source,
                RequestMeta(),
                on_progress=lambda done, _: bar.update(done - bar.pos),
            )
    for error in result.errors:
        typer.echo(f"row {error.row}: {error.reason}")
    if result.visits_cancelled:
        typer.echo(f"{result.visits_cancelled} future visits cancelled by transfers and releases")
    typer.echo(result.summary())
    if result.rejected:
        raise typer.Exit(EXIT_REJECTED)


# --- scheduling -----------------------------------------------------------------------------------


@app.command()
def sweep(ctx: typer.Context) -> None:
    """Expire held times and reject requests nobody decided before the minimum notice (the server
    also does this every OPENVISIT_SWEEP_SECONDS; run this from cron when that is 0)."""
    with _context(ctx) as context:
        _require_migrated(context)
        result = scheduling.sweep(context)
    typer.echo(f"{result.holds_expired} held times expired, {result.requests_rejected} requests rejected")


# --- recordings -----------------------------------------------------------------------------------


@app.command("purge-recordings")
def purge_recordings(ctx: typer.Context) -> None:
    """Delete the files of recordings whose retention (OPENVISIT_RECORDING_RETENTION_DAYS) has run out and
    that no investigator flagged; their rows stay, marked purged, with their hash. Run it daily from cron."""
    from openvisit.services import recordings  # only this command needs it

    with _context(ctx) as context:
        _require_migrated(context)
        purged = recordings.purge_expired(context)
    typer.echo(f"{purged} recordings purged")


# --- notifications --------------------------------------------------------------------------------


@app.command()
def worker(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="One round, then exit (for cron).")] = False,
    every: Annotated[
        float | None,
        typer.Option(min=0.1, help="Seconds between rounds (default: OPENVISIT_DELIVERY_SECONDS, or 15)."),
    ] = None,
) -> None:
    """Deliver notifications: write the reminders now due, then send every email, text message and
    station message that is due, with retries. Killing it at any moment loses nothing (a message caught
    between sending and recording may go out twice); several workers may run at once."""
    # Imported here: no other command needs them.
    import time

    from openvisit.services import delivery

    with _context(ctx) as context:
        _require_migrated(context)
        pause = every or context.settings.delivery_seconds or 15
        try:
            while True:
                try:
                    result = delivery.deliver_tick(context)
                except sa.exc.SQLAlchemyError as exc:
                    if once:
                        raise
                    # A long-running worker outlives a database restart: say so and try next round.
                    reason = (str(getattr(exc, "orig", None) or exc).strip() or "unknown").splitlines()[0]
                    typer.echo(f"error: db.error: {reason}", err=True)
                else:
                    typer.echo(result.describe())
                if once:
                    return
                time.sleep(pause)
        except KeyboardInterrupt:
            typer.echo("worker stopped")


def main() -> None:
    """The console-script entry point."""
    app(prog_name="openvisit")
