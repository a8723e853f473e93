"""The audit chain's pure rules: a stable hash over every field, and a walk that finds any tampering."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openvisit.domain.audit import (
    GENESIS_HASH,
    ChainLink,
    completed_encoding,
    encoding_before_link,
    entry_hash,
    verify_chain,
)

T0 = datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=UTC)

BASE = ChainLink(
    seq=1,
    at=T0,
    actor_kind="user",
    actor_id=7,
    actor_label="clerk@example.org",
    action="connection.approve",
    object_type="connection",
    object_id="42",
    facility_id=3,
    before={"status": "requested"},
    after={"status": "approved", "note": "Иван — брат"},
    ip="203.0.113.9",
    prev_hash=GENESIS_HASH,
)

Entry = tuple[int, ChainLink, str]


def chain(n: int) -> list[Entry]:
    """n well-formed entries as the database would hold them: (id, link, stored hash)."""
    out: list[Entry] = []
    prev = GENESIS_HASH
    for i in range(1, n + 1):
        link = dataclasses.replace(
            BASE,
            seq=i,
            at=T0 + timedelta(seconds=i),
            object_id=str(i),
            after={"i": i},
            prev_hash=prev,
        )
        digest = entry_hash(link)
        out.append((100 + i, link, digest))
        prev = digest
    return out


def head(entries: list[Entry]) -> tuple[int, str]:
    return (entries[-1][1].seq, entries[-1][2]) if entries else (0, GENESIS_HASH)


def verify(entries: list[Entry], head_seq: int | None = None, head_hash: str | None = None) -> Any:
    return verify_chain(iter(entries), head_seq=head_seq, head_hash=head_hash)


# --- entry_hash -----------------------------------------------------------------------------------


CANONICAL_BASE = (
    '{"action":"connection.approve","actor_id":7,"actor_kind":"user","actor_label":"clerk@example.org",'
    '"after":{"note":"Иван — брат","status":"approved"},"at":"2026-03-02T09:00:00.123456+00:00",'
    '"before":{"status":"requested"},"facility_id":3,"ip":"203.0.113.9","object_id":"42",'
    '"object_type":"connection","prev_hash":"' + "0" * 64 + '","seq":1}'
)
"""BASE as the hash sees it: sorted keys, no spaces, UTF-8 as is, the instant in UTC to the microsecond."""


def test_hash_is_sha256_of_the_frozen_canonical_encoding() -> None:
    # Every stored chain depends on this encoding: changing it silently would make every log look forged.
    assert entry_hash(BASE) == hashlib.sha256(CANONICAL_BASE.encode("utf-8")).hexdigest()
    assert entry_hash(BASE) == "c4d85344f93274b94e6650342d507bbeb49acd151cbeee36d0257a9ad2d67b04"


def test_hash_is_hex_sha256_and_repeatable() -> None:
    digest = entry_hash(BASE)
    assert len(digest) == 64
    assert set(digest) <= set("0123456789abcdef")
    assert entry_hash(dataclasses.replace(BASE)) == digest


def test_hash_ignores_key_order_of_payloads() -> None:
    reordered = dataclasses.replace(BASE, after={"note": "Иван — брат", "status": "approved"})
    assert entry_hash(reordered) == entry_hash(BASE)


def test_hash_reads_the_instant_not_its_zone() -> None:
    # SQLite hands back naive UTC; PostgreSQL hands back aware values, possibly in another zone.
    naive = dataclasses.replace(BASE, at=T0.replace(tzinfo=None))
    moscow = dataclasses.replace(BASE, at=T0.astimezone(timezone(timedelta(hours=3))))
    assert entry_hash(naive) == entry_hash(BASE)
    assert entry_hash(moscow) == entry_hash(BASE)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
payloads = st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=4)
short_text = st.text(max_size=30)
hexes = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)

FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "seq": st.integers(min_value=1, max_value=2**62),
    # Hypothesis takes naive bounds and attaches the zone itself.
    "at": st.datetimes(
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001
        max_value=datetime(2100, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    "actor_kind": short_text,
    "actor_id": st.none() | st.integers(min_value=1, max_value=2**31),
    "actor_label": short_text,
    "action": short_text,
    "object_type": short_text,
    "object_id": st.none() | short_text,
    "facility_id": st.none() | st.integers(min_value=1, max_value=2**31),
    "before": payloads,
    "after": payloads,
    "ip": st.none() | short_text,
    "prev_hash": hexes,
}


def test_every_field_is_covered() -> None:
    assert set(FIELD_VALUES) == {f.name for f in dataclasses.fields(ChainLink)}


@given(data=st.data())
def test_any_change_to_any_one_field_changes_the_hash(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(FIELD_VALUES)), label="field")
    old = getattr(BASE, name)
    new = data.draw(FIELD_VALUES[name].filter(lambda v: v != old), label="value")
    assert entry_hash(dataclasses.replace(BASE, **{name: new})) != entry_hash(BASE)


@given(data=st.data())
def test_the_encoding_completed_after_the_head_is_the_whole_canonical_one(data: st.DataObject) -> None:
    # A database completes encoding_before_link with the head's hash and seq (audit.append_when): the
    # result must be the encoding of every field, keys sorted, whatever the entry says.
    changes = {
        name: data.draw(FIELD_VALUES[name], label=name)
        for name in sorted(FIELD_VALUES)
        if data.draw(st.booleans(), label=f"change {name}")
    }
    link = dataclasses.replace(BASE, **changes)
    whole = json.dumps(
        {
            "seq": link.seq,
            "at": link.at.astimezone(UTC).isoformat(timespec="microseconds"),
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
            "prev_hash": link.prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert completed_encoding(encoding_before_link(link), link.prev_hash, link.seq) == whole
    assert entry_hash(link) == hashlib.sha256(whole.encode("utf-8")).hexdigest()


@given(before=payloads, after=payloads)
def test_before_and_after_are_not_interchangeable(before: Any, after: Any) -> None:
    if before == after:
        return
    link = dataclasses.replace(BASE, before=before, after=after)
    swapped = dataclasses.replace(BASE, before=after, after=before)
    assert entry_hash(link) != entry_hash(swapped)


def test_none_and_empty_are_told_apart() -> None:
    assert entry_hash(dataclasses.replace(BASE, before=None)) != entry_hash(
        dataclasses.replace(BASE, before={})
    )
    assert entry_hash(dataclasses.replace(BASE, object_id=None)) != entry_hash(
        dataclasses.replace(BASE, object_id="")
    )
    assert entry_hash(dataclasses.replace(BASE, object_id="7")) != entry_hash(
        dataclasses.replace(BASE, actor_id=None, object_id="7")
    )


# --- verify_chain: what holds -------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2, 50])
def test_a_whole_chain_holds(n: int) -> None:
    entries = chain(n)
    head_seq, head_hash = head(entries)
    assert verify(entries, head_seq, head_hash) == (n, None)


def test_without_a_head_only_the_links_are_checked() -> None:
    entries = chain(3)
    assert verify(entries) == (3, None)
    assert verify(entries, head_seq=3) == (3, None)


def test_an_empty_log_with_an_empty_head_holds() -> None:
    assert verify([], 0, GENESIS_HASH) == (0, None)


# --- verify_chain: what it finds ------------------------------------------------------------------


def _edit(entries: list[Entry], index: int, *, rehash: bool = False, **changes: Any) -> list[Entry]:
    entry_id, link, stored = entries[index]
    link = dataclasses.replace(link, **changes)
    out = list(entries)
    out[index] = (entry_id, link, entry_hash(link) if rehash else stored)
    return out


def test_an_edited_entry_is_named() -> None:
    entries = chain(5)
    checked, fault = verify(_edit(entries, 2, action="forged"), *head(entries))
    assert checked == 2
    assert fault is not None
    assert (fault.seq, fault.entry_id) == (3, 103)
    assert "content" in fault.reason


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link() -> None:
    entries = chain(5)
    checked, fault = verify(_edit(entries, 2, rehash=True, action="forged"), *head(entries))
    assert checked == 3
    assert fault is not None
    assert (fault.seq, fault.entry_id) == (4, 104)
    assert "previous-hash" in fault.reason


def test_a_rehashed_edit_of_the_last_entry_is_caught_by_the_head() -> None:
    entries = chain(5)
    checked, fault = verify(_edit(entries, 4, rehash=True, after={"i": 0}), *head(entries))
    assert checked == 5
    assert fault is not None
    assert fault.seq == 5
    assert "head hash" in fault.reason


def test_a_deleted_entry_is_found() -> None:
    entries = chain(5)
    checked, fault = verify(entries[:1] + entries[2:], *head(entries))
    assert checked == 1
    assert fault is not None
    assert (fault.seq, fault.entry_id) == (2, 103)
    assert "expected entry #2, found #3" in fault.reason


def test_a_deleted_first_entry_is_found() -> None:
    entries = chain(3)
    checked, fault = verify(entries[1:], *head(entries))
    assert checked == 0
    assert fault is not None
    assert fault.seq == 1


def test_a_deleted_tail_is_caught_by_the_head() -> None:
    entries = chain(5)
    checked, fault = verify(entries[:3], *head(entries))
    assert checked == 3
    assert fault is not None
    assert fault.seq == 4
    assert fault.entry_id is None
    assert "the head records 5 entries, the log holds 3" in fault.reason


def test_a_wiped_log_is_caught_by_the_head() -> None:
    checked, fault = verify([], 5, "f" * 64)
    assert checked == 0
    assert fault is not None
    assert fault.seq == 1


def test_reordered_entries_are_found() -> None:
    entries = chain(4)
    swapped = [entries[0], entries[2], entries[1], entries[3]]
    checked, fault = verify(swapped, *head(entries))
    assert checked == 1
    assert fault is not None
    assert fault.seq == 2
    assert "found #3" in fault.reason


def test_renumbered_entries_are_found() -> None:
    # Swap the seq numbers of entries 2 and 3 so they come back in the new order.
    entries = chain(4)
    second = _edit(entries, 2, seq=2)[2]
    third = _edit(entries, 1, seq=3)[1]
    checked, fault = verify([entries[0], second, third, entries[3]], *head(entries))
    assert checked == 1
    assert fault is not None
    assert fault.seq == 2


def test_a_first_entry_not_linked_to_genesis_is_found() -> None:
    entries = chain(2)
    checked, fault = verify(_edit(entries, 0, rehash=True, prev_hash="1" * 64), *head(entries))
    assert checked == 0
    assert fault is not None
    assert fault.seq == 1
    assert "previous-hash" in fault.reason


def test_an_appended_forgery_is_caught_by_the_head() -> None:
    entries = chain(3)
    head_seq, head_hash = head(entries)
    forged = dataclasses.replace(entries[-1][1], seq=4, prev_hash=entries[-1][2], action="forged")
    checked, fault = verify([*entries, (999, forged, entry_hash(forged))], head_seq, head_hash)
    assert checked == 4
    assert fault is not None
    assert "the head records 3 entries, the log holds 4" in fault.reason


@pytest.mark.parametrize(
    ("head_seq", "head_hash", "reason"),
    [
        (4, None, "the head records 4 entries"),
        (2, None, "the head records 2 entries"),
        (3, "e" * 64, "the head hash does not match"),
    ],
)
def test_a_bad_head_is_found(head_seq: int, head_hash: str | None, reason: str) -> None:
    checked, fault = verify(chain(3), head_seq, head_hash)
    assert checked == 3
    assert fault is not None
    assert reason in fault.reason


@given(n=st.integers(min_value=1, max_value=12), data=st.data())
def test_any_single_deletion_is_found(n: int, data: st.DataObject) -> None:
    entries = chain(n)
    index = data.draw(st.integers(min_value=0, max_value=n - 1), label="deleted")
    checked, fault = verify(entries[:index] + entries[index + 1 :], *head(entries))
    assert fault is not None
    assert fault.seq == index + 1
    assert checked == index


@given(n=st.integers(min_value=1, max_value=12), data=st.data())
def test_any_single_edit_is_found_where_it_was_made(n: int, data: st.DataObject) -> None:
    entries = chain(n)
    index = data.draw(st.integers(min_value=0, max_value=n - 1), label="edited")
    name = data.draw(st.sampled_from(sorted(set(FIELD_VALUES) - {"seq", "prev_hash"})), label="field")
    old = getattr(entries[index][1], name)
    new = data.draw(FIELD_VALUES[name].filter(lambda v: v != old), label="value")
    checked, fault = verify(_edit(entries, index, **{name: new}), *head(entries))
    assert fault is not None
    assert fault.seq == index + 1
    assert checked == index
