"""Appending to and verifying the tamper-evident audit chain."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, Unpack

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openvisit.db import fast
from openvisit.db.database import Database, before_commit
from openvisit.db.models import AuditEntry, AuditHead
from openvisit.domain.audit import (
    GENESIS_HASH,
    ChainFault,
    ChainLink,
    encoding_before_link,
    entry_hash,
    verify_chain,
)
from openvisit.domain.enums import ActorKind
from openvisit.domain.principal import Principal

_VERIFY_BATCH = 2000


def _jsonable(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, datetime):
            out[key] = item.isoformat()
        elif isinstance(item, Mapping):
            out[key] = _jsonable(item)
        elif item is None or isinstance(item, str | int | float | bool | list):
            out[key] = item
        else:
            out[key] = str(item)
    return out


_PENDING = "openvisit.tx.audit_pending"

_LOCK_HEAD = sa.select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()


class Facts(TypedDict, total=False):
    """What an entry may say besides who did what to which object, and when."""

    facility_id: int | None
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    ip: str | None


def new_link(
    actor: Principal,
    action: str,
    object_type: str,
    object_id: int | str | None,
    *,
    at: datetime,
    **facts: Unpack[Facts],
) -> ChainLink:
    """What an entry says, before it is chained (seq 0, no previous hash yet)."""
    actor_id = actor.user_id if actor.user_id is not None else actor.resident_id
    return ChainLink(
        seq=0,
        at=at,
        actor_kind=actor.kind.value,
        actor_id=actor_id,
        actor_label=actor.label,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        facility_id=facts.get("facility_id"),
        before=_jsonable(facts.get("before")),
        after=_jsonable(facts.get("after")),
        ip=facts.get("ip"),
        prev_hash="",
    )


def record(
    session: Session,
    actor: Principal,
    action: str,
    object_type: str,
    object_id: int | str | None,
    *,
    at: datetime,
    **facts: Unpack[Facts],
) -> None:
    """Add one entry to the caller's transaction; it is chained (seq, prev_hash, hash) as the last step
    before that transaction commits, so that the chain's head stays locked only while it commits.

    What the entry says is fixed now; an entry of a transaction that rolls back is never written."""
    record_link(session, new_link(actor, action, object_type, object_id, at=at, **facts))


def record_link(session: Session, entry: ChainLink) -> None:
    """record(), for an entry made with new_link."""
    pending: list[ChainLink] = session.info.setdefault(_PENDING, [])
    pending.append(entry)
    before_commit(session, _append_pending)


def _append_pending(session: Session) -> None:
    """Chain the transaction's entries onto the head and move it, holding the head row's lock (on
    PostgreSQL; SQLite's write transaction already holds the database's lock) until COMMIT."""
    pending: list[ChainLink] = session.info.pop(_PENDING, [])
    if not pending:
        return
    connection = session.connection()
    head = connection.execute(_LOCK_HEAD).one_or_none()
    if head is None:
        # The migration creates the head; a database made from the models alone may lack it.
        connection.execute(sa.insert(AuditHead).values(id=1, seq=0, hash=GENESIS_HASH))
        seq, prev_hash = 0, GENESIS_HASH
    else:
        seq, prev_hash = head[0], head[1]
    params: dict[str, Any] = {"head_seq": seq + len(pending)}
    rows: list[dict[str, Any]] = []
    for entry in pending:
        seq += 1
        link = dataclasses.replace(entry, seq=seq, prev_hash=prev_hash)
        digest = entry_hash(link)
        row = {
            "seq": link.seq,
            "at": link.at,
            "actor_kind": ActorKind(link.actor_kind),
            "actor_id": link.actor_id,
            "actor_label": link.actor_label,
            "action": link.action,
            "object_type": link.object_type,
            "object_id": link.object_id,
            "facility_id": link.facility_id,
            "before": link.before,
            "after": link.after,
            "ip": link.ip,
            "prev_hash": link.prev_hash,
            "hash": digest,
        }
        rows.append(row)
        prev_hash = digest
    params["head_hash"] = prev_hash
    if len(rows) == 1 and connection.dialect.name == "postgresql":
        # One round trip while the lock is held: the entry is a CTE of the head's UPDATE.
        fast.rows(connection, _APPEND_ONE, {**rows[0], **params})
        return
    connection.execute(_INSERT_ENTRY, rows)
    connection.execute(_MOVE_HEAD, params)


_COLUMNS = (
    "seq",
    "at",
    "actor_kind",
    "actor_id",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "facility_id",
    "before",
    "after",
    "ip",
    "prev_hash",
    "hash",
)
_TABLE = AuditEntry.metadata.tables["audit_entry"]
_INSERT_ENTRY = _TABLE.insert()
_MOVE_HEAD = (
    sa.update(AuditHead)
    .where(AuditHead.id == 1)
    .values(
        seq=sa.bindparam("head_seq", type_=sa.BigInteger), hash=sa.bindparam("head_hash", type_=sa.String)
    )
)
_APPEND_ONE = _MOVE_HEAD.add_cte(
    _TABLE.insert().values({c: sa.bindparam(c, type_=_TABLE.c[c].type) for c in _COLUMNS}).cte("appended")
)
"""One entry and the head, in one statement (PostgreSQL). Statements are built once, at import: a
multi-row VALUES cannot be cached by SQLAlchemy and would be compiled again on every append."""


_SAID = tuple(c for c in _COLUMNS if c not in ("seq", "prev_hash", "hash"))
"""The columns of what an entry says, known before it is chained."""


def append_params(entry: ChainLink) -> dict[str, Any]:
    """The parameters of the entry that append_when's statements write (`a_*`)."""
    params = {f"a_{c}": getattr(entry, c) for c in _SAID}
    params["a_actor_kind"] = ActorKind(entry.actor_kind)
    params["a_encoding"] = encoding_before_link(entry)
    return params


def append_when(written: sa.CTE) -> tuple[sa.CTE, ...]:
    """PostgreSQL: one entry (append_params) chained in the very statement that writes what it records,
    if `written` has a row: to add to that statement with add_cte, as the use case's last statement
    before COMMIT. The head is locked, the entry inserted with its hash computed there (its encoding
    completed with the head's hash and next seq, as entry_hash completes it), and the head moved: the
    head stays locked from that statement to the COMMIT that follows it, with nothing sent in between."""
    head = (
        sa.select(AuditHead.seq, AuditHead.hash)
        .where(AuditHead.id == 1, sa.exists(written.select()))
        .with_for_update()
        .cte("audit_head_locked")
    )
    seq = head.c.seq + 1
    encoding = (
        sa.bindparam("a_encoding", type_=sa.Text)
        + sa.literal_column("'," + '"prev_hash":"' + "'", sa.Text)
        + head.c.hash
        + sa.literal_column("'" + '","seq":' + "'", sa.Text)
        + sa.cast(seq, sa.Text)
        + sa.literal_column("'}'", sa.Text)
    )
    digest = sa.func.encode(sa.func.sha256(sa.func.convert_to(encoding, sa.literal_column("'UTF8'"))), "hex")
    appended = (
        _TABLE.insert()
        .from_select(
            ["seq", *_SAID, "prev_hash", "hash"],
            sa.select(
                seq, *(sa.bindparam(f"a_{c}", type_=_TABLE.c[c].type) for c in _SAID), head.c.hash, digest
            ),
        )
        .returning(_TABLE.c.seq, _TABLE.c.hash)
        .cte("audit_appended")
    )
    moved = (
        sa.update(AuditHead)
        .where(AuditHead.id == 1)
        .values(seq=appended.c.seq, hash=appended.c.hash)
        .cte("audit_head_moved")
    )
    return head, appended, moved


def _as_link(e: AuditEntry) -> ChainLink:
    return ChainLink(
        seq=e.seq,
        at=e.at,
        actor_kind=str(e.actor_kind.value if hasattr(e.actor_kind, "value") else e.actor_kind),
        actor_id=e.actor_id,
        actor_label=e.actor_label,
        action=e.action,
        object_type=e.object_type,
        object_id=e.object_id,
        facility_id=e.facility_id,
        before=e.before,
        after=e.after,
        ip=e.ip,
        prev_hash=e.prev_hash,
    )


@dataclass(frozen=True)
class VerifyResult:
    """How much of the chain held, where it first broke, and the head hash to anchor elsewhere."""

    checked: int
    fault: ChainFault | None
    head_seq: int
    head_hash: str

    @property
    def ok(self) -> bool:
        return self.fault is None


def verify(db: Database) -> VerifyResult:
    """Walk the whole chain in seq order, in batches, and report the first entry that does not hold."""
    with db.read() as session:
        head = session.get(AuditHead, 1)
        head_seq = head.seq if head else 0
        head_hash = head.hash if head else GENESIS_HASH

        def entries() -> Iterator[tuple[int, ChainLink, str]]:
            last_seq: int | None = None
            while True:
                query = sa.select(AuditEntry).order_by(AuditEntry.seq).limit(_VERIFY_BATCH)
                if last_seq is not None:
                    query = query.where(AuditEntry.seq > last_seq)
                batch = session.execute(query).scalars().all()
                if not batch:
                    return
                for e in batch:
                    yield e.id, _as_link(e), e.hash
                last_seq = batch[-1].seq
                session.expunge_all()

        checked, fault = verify_chain(entries(), head_seq=head_seq, head_hash=head_hash)
    return VerifyResult(checked=checked, fault=fault, head_seq=head_seq, head_hash=head_hash)
