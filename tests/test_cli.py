"""The `openvisit` command line, run in-process with the environment a shell would give it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from openvisit.cli import app
from openvisit.db.models import UserAccount, Visitor
from openvisit.services import audit, passwords
from openvisit.services.context import AppContext
from openvisit.services.demo import DEMO_LOGINS
from tests.conftest import TEST_SECRET
from tests.factories import make_facility

runner = CliRunner()

COMMANDS = [
    [],
    ["serve"],
    ["db"],
    ["db", "upgrade"],
    ["db", "downgrade"],
    ["db", "current"],
    ["demo"],
    ["user"],
    ["user", "create"],
    ["audit"],
    ["audit", "verify"],
    ["sweep"],
]


def _env(database_url: str, tmp_path: Path) -> dict[str, str | None]:
    return {
        "OPENVISIT_DATABASE_URL": database_url,
        "OPENVISIT_MODE": "test",
        "OPENVISIT_SECRET_KEY": TEST_SECRET,
        "OPENVISIT_VAR_DIR": str(tmp_path / "var"),
    }


def _run(env: dict[str, str | None], *args: str, input: str | None = None) -> Result:
    return runner.invoke(app, list(args), env=env, input=input)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "openvisit")
def test_help_on_every_command(command: list[str]) -> None:
    # Settings that would be refused prove that --help never reads them.
    env: dict[str, str | None] = {"OPENVISIT_MODE": "production", "OPENVISIT_SECRET_KEY": None}
    result = runner.invoke(app, [*command, "--help"], env=env)
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_refused_settings_are_one_line(tmp_path: Path) -> None:
    env = {**_env(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path), "OPENVISIT_MODE": "production"}
    env["OPENVISIT_SECRET_KEY"] = None
    result = _run(env, "db", "current")
    assert result.exit_code == 2
    assert "error: settings:" in result.output
    assert "OPENVISIT_SECRET_KEY" in result.output
    assert "Traceback" not in result.output


def test_db_upgrade_current_and_downgrade_on_an_empty_sqlite_file(tmp_path: Path) -> None:
    env = _env(f"sqlite:///{tmp_path / 'fresh.sqlite3'}", tmp_path)
    assert "current: none" in _run(env, "db", "current").output
    upgraded = _run(env, "db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    assert "(head)" in _run(env, "db", "current").output
    with sqlite3.connect(tmp_path / "fresh.sqlite3") as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"facility", "resident", "visit", "audit_entry"} <= tables

    downgraded = _run(env, "db", "downgrade", "base")
    assert downgraded.exit_code == 0, downgraded.output
    assert "current: none" in _run(env, "db", "current").output
    unknown = _run(env, "db", "upgrade", "--revision", "9999")
    assert unknown.exit_code == 2
    assert "error: db.migration:" in unknown.output


def test_demo_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    result = _run(_env(f"sqlite:///{tmp_path / 'empty.sqlite3'}", tmp_path), "demo")
    assert result.exit_code == 2
    assert "db.not_migrated" in result.output


def test_demo_logins_need_no_database(tmp_path: Path) -> None:
    # Nothing listens on port 1: the command must not even try to connect.
    result = _run(_env("postgresql://nobody@127.0.0.1:1/none", tmp_path), "demo", "--logins")
    assert result.exit_code == 0, result.output
    for row in DEMO_LOGINS:
        assert row.login in result.output
    assert "IK17-U1-K1" in result.output


def test_demo_twice_then_audit_verify(ctx: AppContext, db_url: str, tmp_path: Path) -> None:
    env = _env(db_url, tmp_path)
    first = _run(env, "demo")
    assert first.exit_code == 0, first.output
    assert "Demo data loaded" in first.output
    assert "admin@example.org" in first.output

    second = _run(env, "demo")
    assert second.exit_code == 0, second.output
    assert "already loaded; nothing changed" in second.output

    verified = _run(env, "audit", "verify")
    assert verified.exit_code == 0, verified.output
    chain = audit.verify(ctx.db)
    assert verified.output.strip() == f"audit chain OK: {chain.checked} entries, head {chain.head_hash}"


def test_audit_verify_names_the_tampered_entry(tmp_path: Path) -> None:
    path = tmp_path / "tampered.sqlite3"
    env = _env(f"sqlite:///{path}", tmp_path)
    assert _run(env, "db", "upgrade").exit_code == 0
    assert _run(env, "demo").exit_code == 0
    assert _run(env, "audit", "verify").exit_code == 0

    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE audit_entry SET action = 'x' WHERE seq = 3")
    conn.close()
    result = _run(env, "audit", "verify")
    assert result.exit_code == 1
    assert "BROKEN at seq 3 " in result.output
    assert "content does not match its hash" in result.output
    assert "2 entries hold before it" in result.output


def test_user_create_staff_and_visitor(ctx: AppContext, db_url: str, tmp_path: Path) -> None:
    env = _env(db_url, tmp_path)
    place = make_facility(ctx)
    with ctx.db.read() as session:
        code = session.execute(
            sa.text("SELECT code FROM facility WHERE id = :id"), {"id": place.facility_id}
        ).scalar_one()

    staff = _run(
        env,
        "user",
        "create",
        "--email",
        "New.Admin@Example.org",
        "--name",
        "New Admin",
        "--role",
        "system_admin",
        "--role",
        f"scheduler:{code}",
        input="a-long-enough-secret\na-long-enough-secret\n",
    )
    assert staff.exit_code == 0, staff.output
    assert "created staff account" in staff.output

    visitor = _run(
        env,
        "user",
        "create",
        "--kind",
        "visitor",
        "--email",
        "olga@example.org",
        "--name",
        "Ольга",
        "--last-name",
        "Кузнецова",
        "--first-name",
        "Ольга",
        "--birth-date",
        "1968-12-02",
        "--timezone",
        "Asia/Novosibirsk",
        "--language",
        "ru",
        "--password",
        "another-long-secret",
    )
    assert visitor.exit_code == 0, visitor.output

    with ctx.db.read() as session:
        admin = session.execute(
            sa.select(UserAccount).where(UserAccount.email == "new.admin@example.org")
        ).scalar_one()
        olga = session.execute(
            sa.select(UserAccount, Visitor)
            .join(Visitor, Visitor.user_id == UserAccount.id)
            .where(UserAccount.email == "olga@example.org")
        ).one()
    assert admin.kind.value == "staff"
    assert admin.email_verified_at is not None
    assert passwords.verify_secret(admin.password_hash, "a-long-enough-secret")
    assert (olga[0].timezone, olga[0].language, olga[1].last_name) == ("Asia/Novosibirsk", "ru", "Кузнецова")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--email", "taken@example.org", "--role", "system_admin"], "user.email_taken"),
        (
            ["--email", "x@example.org", "--role", "system_admin", "--password", "short"],
            "auth.password_too_short",
        ),
        (["--email", "nope", "--role", "system_admin"], "user.invalid_email"),
        (
            ["--email", "x@example.org", "--role", "system_admin", "--timezone", "Moon/Base"],
            "user.invalid_timezone",
        ),
        (["--email", "x@example.org", "--role", "warden"], "user.invalid_grant"),
        (["--email", "x@example.org", "--role", "scheduler:NOWHERE"], "user.invalid_grant"),
        (["--email", "x@example.org"], "user.grant_required"),
        (["--email", "x@example.org", "--kind", "visitor"], "user.visitor_profile_required"),
    ],
)
def test_user_create_errors_exit_2_with_the_code(
    ctx: AppContext, db_url: str, tmp_path: Path, args: list[str], code: str
) -> None:
    env = _env(db_url, tmp_path)
    base = ["user", "create", "--name", "Someone", "--password", "a-long-enough-secret"]
    if code == "user.email_taken":
        assert _run(env, *base, "--email", "taken@example.org", "--role", "system_admin").exit_code == 0
    # The last --password given wins, so a case may override the default one.
    result = _run(env, *base, *args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {code}: ")
    assert len(result.output.strip().splitlines()) == 1
    with ctx.db.read() as session:
        emails = set(session.execute(sa.select(UserAccount.email)).scalars())
    assert emails <= {"taken@example.org"}
