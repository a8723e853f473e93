"""The audit log, for system admins (all) and facility admins (their facility)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from openvisit.services import queries
from openvisit.web.deps import CtxDep, CurrentPrincipal, IdQuery
from openvisit.web.schemas import AuditEntryRead

router = APIRouter(tags=["audit"])


@router.get("/audit", response_model=list[AuditEntryRead])
def list_audit(
    ctx: CtxDep,
    principal: CurrentPrincipal,
    facility_id: IdQuery = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
    before_seq: IdQuery = None,
) -> list[AuditEntryRead]:
    """Newest entries first; page back with before_seq."""
    rows = queries.audit_entries(
        ctx, principal, facility_id=facility_id, action=action, limit=limit, before_seq=before_seq
    )
    return [AuditEntryRead.model_validate(e) for e in rows]
