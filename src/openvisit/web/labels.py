"""Human names for the domain's stored values, as English msgids the catalogs translate."""

from __future__ import annotations

from openvisit.domain.errors import N_

LABELS: dict[str, str] = {
    # roles
    "link_operator": N_("Link-center operator"),
    "vetting_clerk": N_("Vetting clerk"),
    "scheduler": N_("Scheduler"),
    "monitoring_officer": N_("Monitoring officer"),
    "investigator": N_("Investigator"),
    "facility_admin": N_("Facility admin"),
    "system_admin": N_("System admin"),
    # visit kinds and modes
    "social": N_("Social visit"),
    "legal": N_("Legal visit (privileged)"),
    "home": N_("From home"),
    "link_center": N_("At a link center"),
    # visit statuses
    "held": N_("Held"),
    "requested": N_("Awaiting approval"),
    "approved": N_("Approved"),
    "in_progress": N_("In progress"),
    "completed": N_("Completed"),
    "cancelled": N_("Cancelled"),
    "rejected": N_("Rejected"),
    "terminated": N_("Terminated"),
    "failed": N_("Failed"),
    # connection statuses
    "suspended": N_("Suspended"),
    "revoked": N_("Revoked"),
    # resident statuses
    "active": N_("Active"),
    "transferred": N_("Transferred"),
    "released": N_("Released"),
}


def label_of(value: object) -> str:
    """The English label of an enum or stored value (itself when none is defined)."""
    key = str(getattr(value, "value", value))
    return LABELS.get(key, key)
