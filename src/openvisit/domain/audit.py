"""The audit chain: each entry's hash covers its content and the previous entry's hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64
"""The `prev_hash` of the first entry."""


@dataclass(frozen=True)
class ChainLink:
    """The fields of one audit entry that the hash covers."""

    seq: int
    at: datetime
    actor_kind: str
    actor_id: int | None
    actor_label: str
    action: str
    object_type: str
    object_id: str | None
    facility_id: int | None
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    ip: str | None
    prev_hash: str


def _utc_iso(at: datetime) -> str:
    # SQLite hands datetimes back naive; they are stored in UTC, so both forms hash alike.
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(link: ChainLink) -> str:
    """SHA-256 of a canonical JSON encoding of the entry (keys sorted, no spaces, UTF-8), previous hash
    included."""
    return hashlib.sha256(
        completed_encoding(encoding_before_link(link), link.prev_hash, link.seq).encode("utf-8")
    ).hexdigest()


def encoding_before_link(link: ChainLink) -> str:
    """The entry's canonical encoding up to the two keys that link it into the chain, which sort last:
    `prev_hash` and `seq`. What the entry says is fixed before the chain's head is known; a database can
    complete the encoding and hash it while it holds the head (see completed_encoding)."""
    body = {
        "at": _utc_iso(link.at),
        "actor_kind": link.actor_kind,
        "actor_id": link.actor_id,
        "actor_label": link.actor_label,
        "action": link.action,
        "object_type": link.object_type,
        "object_id": link.object_id,
        "facility_id": link.facility_id,
        "before": link.before,
        "after": link.after,
        "ip": link.ip,
    }
    encoded = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return encoded[:-1]


def completed_encoding(before_link: str, prev_hash: str, seq: int) -> str:
    """The whole canonical encoding: `before_link` (from encoding_before_link), then `prev_hash` (hex
    digits, nothing to escape) and `seq`, the keys that sort after every other."""
    return f'{before_link},"prev_hash":"{prev_hash}","seq":{seq}}}'


@dataclass(frozen=True)
class ChainFault:
    """The first place where the chain does not hold, and why."""

    seq: int
    entry_id: int | None
    reason: str


def verify_chain(
    entries: Iterable[tuple[int, ChainLink, str]], *, head_seq: int | None, head_hash: str | None
) -> tuple[int, ChainFault | None]:
    """Walk (entry_id, link, stored_hash) in seq order; return how many held and the first fault.

    A gap in seq means an entry was deleted; a wrong prev_hash means one was removed or reordered;
    a wrong hash means its content was altered. The head (last seq and hash, kept apart) catches a
    deleted tail.
    """
    expected_seq = 1
    prev = GENESIS_HASH
    checked = 0
    for entry_id, link, stored in entries:
        if link.seq != expected_seq:
            return checked, ChainFault(
                expected_seq, entry_id, f"expected entry #{expected_seq}, found #{link.seq}"
            )
        if link.prev_hash != prev:
            return checked, ChainFault(link.seq, entry_id, "previous-hash link is broken")
        if entry_hash(link) != stored:
            return checked, ChainFault(link.seq, entry_id, "content does not match its hash")
        prev = stored
        expected_seq += 1
        checked += 1
    last_seq = expected_seq - 1
    if head_seq is not None and head_seq != last_seq:
        return checked, ChainFault(
            last_seq + 1, None, f"the head records {head_seq} entries, the log holds {last_seq}"
        )
    if head_hash is not None and last_seq > 0 and head_hash != prev:
        return checked, ChainFault(last_seq, None, "the head hash does not match the last entry")
    return checked, None
