"""Registration, email confirmation, password reset, profile, children, identity documents, links to
residents and the clerk's decisions, restrictions, attorneys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from openvisit.db.models import Resident, Visitor
from openvisit.domain.enums import ConnectionStatus, DocumentKind, Relationship, RestrictionKind
from openvisit.services import documents, registry, vetting
from openvisit.services.registry import AttorneyClaim, Registration
from openvisit.services.users import VisitorProfile
from openvisit.services.vetting import LinkRequest
from openvisit.web.deps import CtxDep, CurrentPrincipal, IdPath, MetaDep
from openvisit.web.schemas import (
    Accepted,
    AlertWrite,
    AttorneyRead,
    AttorneyVerification,
    DependentCreate,
    DependentRead,
    DocumentRead,
    KeepApartCreate,
    LinkCreate,
    LinkDecision,
    LinkRead,
    LinkStatusChange,
    MyLinkRead,
    PasswordForgot,
    PasswordReset,
    ProfileRead,
    ProfileWrite,
    QueueItemRead,
    RegistrationCreate,
    RegistryRowRead,
    ResidentRead,
    RestrictionCreate,
    RestrictionRead,
    TokenUse,
)

router = APIRouter(tags=["registry"])


def _full_name(person: Visitor | Resident) -> str:
    return f"{person.last_name} {person.first_name} {person.middle_name}".strip()


@router.post("/register", response_model=Accepted, status_code=202)
def register(body: RegistrationCreate, ctx: CtxDep, meta: MetaDep) -> Accepted:
    """Create a visitor (or, with `attorney`, an attorney) account; a confirmation link is emailed.
    The answer is the same whether or not the address already has an account."""
    registry.register(
        ctx,
        Registration(
            email=body.email,
            password=body.password,
            profile=VisitorProfile(
                body.last_name, body.first_name, body.birth_date, body.middle_name, body.phone, body.home_city
            ),
            language=body.language,
            timezone=body.timezone,
            attorney=AttorneyClaim(body.attorney.licence_number, body.attorney.organisation)
            if body.attorney
            else None,
        ),
        meta,
    )
    return Accepted(status="check_email")


@router.post("/register/confirm", response_model=Accepted)
def confirm(body: TokenUse, ctx: CtxDep, meta: MetaDep) -> Accepted:
    """Confirm an email address with the emailed link's token."""
    registry.confirm_email(ctx, body.token, meta)
    return Accepted(status="confirmed")


@router.post("/password/forgot", response_model=Accepted, status_code=202)
def forgot(body: PasswordForgot, ctx: CtxDep, meta: MetaDep) -> Accepted:
    """Email a reset link if the address has an account (the answer does not say)."""
    registry.request_password_reset(ctx, body.email, meta)
    return Accepted(status="check_email")


@router.post("/password/reset", status_code=204)
def reset(body: PasswordReset, ctx: CtxDep, meta: MetaDep) -> Response:
    """Set a new password with the emailed link's token."""
    registry.reset_password(ctx, body.token, body.password, meta)
    return Response(status_code=204)


@router.get("/me/profile", response_model=ProfileRead)
def get_profile(ctx: CtxDep, principal: CurrentPrincipal) -> ProfileRead:
    """The visitor's own account and profile."""
    p = registry.profile(ctx, principal)
    return ProfileRead(
        email=p.user.email,
        email_confirmed=p.user.email_verified_at is not None,
        language=p.user.language,
        timezone=p.user.timezone,
        last_name=p.visitor.last_name,
        first_name=p.visitor.first_name,
        middle_name=p.visitor.middle_name,
        birth_date=p.visitor.birth_date,
        phone=p.visitor.phone,
        home_city=p.visitor.home_city,
        verification=p.visitor.verification.value,
        attorney=AttorneyRead.model_validate(p.attorney) if p.attorney else None,
        dependents=[DependentRead.model_validate(d) for d in p.dependents],
    )


@router.put("/me/profile", status_code=204)
def put_profile(body: ProfileWrite, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep) -> Response:
    """Change one's own profile."""
    registry.update_profile(
        ctx,
        principal,
        VisitorProfile(
            body.last_name, body.first_name, body.birth_date, body.middle_name, body.phone, body.home_city
        ),
        language=body.language,
        timezone=body.timezone,
        meta=meta,
    )
    return Response(status_code=204)


@router.post("/me/dependents", response_model=dict[str, int], status_code=201)
def add_dependent(
    body: DependentCreate, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep
) -> dict[str, int]:
    """Add a child to one's account."""
    return {
        "id": registry.add_dependent(ctx, principal, body.last_name, body.first_name, body.birth_date, meta)
    }


@router.delete("/me/dependents/{dependent_id}", status_code=204)
def remove_dependent(
    dependent_id: IdPath, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep
) -> Response:
    """Remove a child from one's account."""
    registry.remove_dependent(ctx, principal, dependent_id, meta)
    return Response(status_code=204)


@router.post("/me/documents", response_model=DocumentRead, status_code=201)
async def upload_document(
    request: Request, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep, kind: DocumentKind
) -> DocumentRead:
    """Upload an ID front, ID back, selfie or bar card as the raw request body (an image, at most 10 MB)."""
    raw = await request.body()
    doc = await run_in_threadpool(documents.upload, ctx, principal, kind, raw, meta)
    return DocumentRead.model_validate(doc)


@router.get("/documents/{document_id}", response_class=FileResponse)
def get_document(
    document_id: IdPath, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep
) -> FileResponse:
    """The image of a document, for its owner and the vetting clerks who must see it (each view audited)."""
    doc, path = documents.access_document_by_id(ctx, principal, document_id, meta)
    return FileResponse(path, media_type=doc.content_type, headers={"Cache-Control": "no-store"})


@router.post("/links", response_model=LinkRead, status_code=201)
def request_link(body: LinkCreate, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep) -> LinkRead:
    """Ask to be linked to a resident; a clerk decides."""
    link = vetting.request_link(
        ctx,
        principal,
        LinkRequest(
            body.facility_id,
            body.number,
            body.last_name,
            body.birth_date,
            Relationship(body.relationship),
            body.dependent_id,
        ),
        meta,
    )
    return LinkRead.model_validate(link)


@router.get("/me/links", response_model=list[MyLinkRead])
def my_links(ctx: CtxDep, principal: CurrentPrincipal) -> list[MyLinkRead]:
    """One's own links and their status (with the reason when refused)."""
    return [
        MyLinkRead(
            **LinkRead.model_validate(link).model_dump(),
            resident_name=_full_name(r),
            facility_name=f.name,
        )
        for link, r, f, _child in vetting.my_links(ctx, principal)
    ]


@router.get("/me/restrictions", response_model=list[RestrictionRead])
def my_restrictions(ctx: CtxDep, principal: CurrentPrincipal) -> list[RestrictionRead]:
    """One's own bans and suspensions, with their end."""
    return [RestrictionRead.model_validate(r) for r, _name in vetting.my_restrictions(ctx, principal)]


@router.get("/facilities/{facility_id}/link-requests", response_model=list[QueueItemRead])
def link_queue(
    facility_id: IdPath,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    status: Annotated[ConnectionStatus, Query()] = ConnectionStatus.REQUESTED,
) -> list[QueueItemRead]:
    """The clerk's queue: requests with the visitor's documents and restrictions."""
    return [
        QueueItemRead(
            link=LinkRead.model_validate(item.connection),
            resident=ResidentRead.model_validate(item.resident),
            visitor_name=_full_name(item.visitor),
            visitor_birth_date=item.visitor.birth_date,
            visitor_verification=item.visitor.verification.value,
            email=item.email,
            documents=[DocumentRead.model_validate(d) for d in item.documents],
            restrictions=[RestrictionRead.model_validate(r) for r in item.restrictions],
            attorney=AttorneyRead.model_validate(item.attorney) if item.attorney else None,
            other_links=item.other_links,
        )
        for item in vetting.link_queue(ctx, principal, facility_id, status=status)
    ]


@router.post("/links/{link_id}/decision", response_model=LinkRead)
def decide_link(
    link_id: IdPath, body: LinkDecision, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep
) -> LinkRead:
    """Approve a link request, or reject it with a preset reason."""
    link = vetting.decide_link(
        ctx, principal, link_id, meta, approve=body.approve, reason=body.reason, note=body.note
    )
    return LinkRead.model_validate(link)


@router.post("/links/{link_id}/status", response_model=LinkRead)
def change_link(
    link_id: IdPath, body: LinkStatusChange, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep
) -> LinkRead:
    """Suspend, revoke or reinstate a link; suspending or revoking cancels its future visits."""
    link, _ = vetting.change_link(
        ctx, principal, link_id, ConnectionStatus(body.status), meta, reason=body.reason, note=body.note
    )
    return LinkRead.model_validate(link)


@router.get("/facilities/{facility_id}/restrictions", response_model=list[RestrictionRead])
def list_restrictions(facility_id: IdPath, ctx: CtxDep, principal: CurrentPrincipal) -> list[RestrictionRead]:
    """Active bans and suspensions at a facility."""
    return [
        RestrictionRead.model_validate(r)
        for r, _v in vetting.facility_restrictions(ctx, principal, facility_id)
    ]


@router.post("/facilities/{facility_id}/restrictions", response_model=RestrictionRead, status_code=201)
def add_restriction(
    facility_id: IdPath, body: RestrictionCreate, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep
) -> RestrictionRead:
    """Ban or suspend a visitor at the facility; their visits there in that time are cancelled."""
    row, _ = vetting.add_restriction(
        ctx,
        principal,
        body.visitor_id,
        facility_id,
        RestrictionKind(body.kind),
        meta,
        reason=body.reason,
        ends_at=body.ends_at,
    )
    return RestrictionRead.model_validate(row)


@router.delete("/restrictions/{restriction_id}", status_code=204)
def lift_restriction(
    restriction_id: IdPath, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep
) -> Response:
    """End a ban or suspension early."""
    vetting.lift_restriction(ctx, principal, restriction_id, meta)
    return Response(status_code=204)


@router.post("/keep-apart", status_code=201, response_model=dict[str, int])
def keep_apart(
    body: KeepApartCreate, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep
) -> dict[str, int]:
    """Order that two residents never share a visiting room at the same time."""
    row = vetting.set_keep_apart(
        ctx, principal, body.resident_a_id, body.resident_b_id, meta, reason=body.reason
    )
    return {"id": row.id}


@router.put("/residents/{resident_id}/alert", status_code=204)
def set_alert(
    resident_id: IdPath, body: AlertWrite, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep
) -> Response:
    """Put an alert on a resident (bookings go to review), or clear it with `note: null`."""
    vetting.set_alert(ctx, principal, resident_id, meta, note=body.note)
    return Response(status_code=204)


@router.get("/attorneys/pending", response_model=list[RegistryRowRead])
def pending_attorneys(ctx: CtxDep, principal: CurrentPrincipal) -> list[RegistryRowRead]:
    """Attorney claims awaiting verification."""
    return [
        RegistryRowRead(
            visitor_id=v.id,
            name=f"{v.last_name} {v.first_name} {v.middle_name}".strip(),
            licence_number=a.licence_number,
            organisation=a.organisation,
            verified_at=None,
            clients=[email],
        )
        for a, v, email in vetting.attorney_queue(ctx, principal)
    ]


@router.post("/attorneys/{visitor_id}/verification", response_model=AttorneyRead)
def verify_attorney(
    visitor_id: IdPath, body: AttorneyVerification, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep
) -> AttorneyRead:
    """Verify an attorney (their links to clients become legal) or reject the claim."""
    return AttorneyRead.model_validate(
        vetting.verify_attorney(ctx, principal, visitor_id, meta, approve=body.approve, note=body.note)
    )


@router.get("/attorneys/registry", response_model=list[RegistryRowRead])
def do_not_record_registry(ctx: CtxDep, principal: CurrentPrincipal) -> list[RegistryRowRead]:
    """The do-not-record registry: verified attorneys and their clients."""
    return [RegistryRowRead.model_validate(row) for row in vetting.do_not_record_registry(ctx, principal)]
