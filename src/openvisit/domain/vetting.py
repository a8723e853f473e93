"""Rules of vetting: preset reasons, the escalation of suspensions, what a link's kind is."""

from __future__ import annotations

from datetime import timedelta

from openvisit.domain.enums import ConnectionKind, Relationship, VerificationStatus
from openvisit.domain.errors import N_, InvalidInput

LINK_REJECTION_REASONS: dict[str, str] = {
    "unclear_id": N_("Identity document unclear"),
    "details_do_not_match": N_("The details do not match our records"),
    "not_a_relative": N_("The relationship could not be confirmed"),
    "resident_declined": N_("The resident did not agree"),
    "restriction": N_("A restriction applies"),
    "security": N_("Security"),
    "other": N_("Other reason"),
}
"""Reasons a clerk picks from when rejecting, suspending or revoking a link; the visitor is told."""

LINK_CANCELLATION_REASONS: dict[str, str] = {
    "link_suspended": N_("The link to this person was suspended"),
    "link_revoked": N_("The link to this person was revoked"),
    "visitor_banned": N_("The visitor may not visit for now"),
}
"""Why visits end when a link or a visitor is stopped."""

SUSPENSION_STEPS: tuple[timedelta, ...] = (timedelta(days=7), timedelta(days=30), timedelta(days=90))
"""A visitor's first, second and further suspensions after terminated visits."""


def check_reason(reason: str | None) -> str:
    """One of the preset reasons, or a clear error."""
    if reason not in LINK_REJECTION_REASONS:
        raise InvalidInput(
            "link.invalid_reason", N_("Please choose one of the listed reasons."), field="reason"
        )
    return reason


def next_suspension(previous_suspensions: int) -> timedelta:
    """7 days, then 30, then 90 for every one after."""
    return SUSPENSION_STEPS[min(previous_suspensions, len(SUSPENSION_STEPS) - 1)]


def link_kind(relationship: Relationship, attorney_status: VerificationStatus | None) -> ConnectionKind:
    """A verified attorney's link to a client is legal (privileged); every other link is social."""
    if relationship is Relationship.ATTORNEY and attorney_status is VerificationStatus.VERIFIED:
        return ConnectionKind.LEGAL
    return ConnectionKind.SOCIAL
