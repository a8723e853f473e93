"""Identity documents: decoded for real, re-encoded without metadata, stored outside the web root
under a random name with their SHA-256, and shown only to the visitor and to vetting clerks of the
facilities the visitor asks to visit."""

from __future__ import annotations

import hashlib
import io
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from PIL import Image, ImageOps, UnidentifiedImageError

from openvisit.db.models import Connection, IdentityDocument, Resident, Visitor
from openvisit.domain.enums import DocumentKind, Role, VerificationStatus
from openvisit.domain.errors import N_, Forbidden, InvalidInput, NotFound
from openvisit.domain.principal import Principal
from openvisit.services import audit
from openvisit.services.access import require_active
from openvisit.services.context import AppContext, RequestMeta

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000
"""Larger images are refused before they are decoded in full (decompression bombs)."""
MAX_SIDE = 3000
"""Images are scaled down to this on their longer side: enough to read a document, small to keep."""
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "HEIF", "MPO"})


@dataclass(frozen=True)
class CleanImage:
    """A re-encoded image: JPEG bytes without EXIF, GPS or any other metadata."""

    data: bytes
    width: int
    height: int
    sha256: str


def clean_image(raw: bytes) -> CleanImage:
    """Decode `raw` as an image for real and re-encode it; anything that is not a photo is refused."""
    if not raw:
        raise InvalidInput("document.empty", N_("The file is empty."), field="file")
    if len(raw) > MAX_UPLOAD_BYTES:
        raise InvalidInput("document.too_large", N_("The file is larger than 10 MB."), field="file")
    try:
        with Image.open(io.BytesIO(raw)) as probe:
            if probe.format not in ACCEPTED_FORMATS:
                raise InvalidInput(
                    "document.not_an_image", N_("Please upload a photo (JPEG, PNG or WebP)."), field="file"
                )
            if probe.width * probe.height > MAX_PIXELS:
                raise InvalidInput("document.too_large", N_("The image is too large."), field="file")
            probe.load()
            # Apply the camera's rotation, then drop every piece of metadata by drawing the pixels anew.
            upright = ImageOps.exif_transpose(probe) or probe
            pixels = upright.convert("RGB")
    except InvalidInput:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
        raise InvalidInput(
            "document.not_an_image", N_("Please upload a photo (JPEG, PNG or WebP)."), field="file"
        ) from exc
    pixels.thumbnail((MAX_SIDE, MAX_SIDE))
    clean = Image.new("RGB", pixels.size)
    clean.paste(pixels)
    out = io.BytesIO()
    clean.save(out, format="JPEG", quality=88, optimize=True)
    data = out.getvalue()
    return CleanImage(data, clean.width, clean.height, hashlib.sha256(data).hexdigest())


def _store(directory: Path, data: bytes) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{secrets.token_hex(16)}.jpg"
    temporary = directory / f".{name}.part"
    with temporary.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temporary, directory / name)
    return name


def upload(
    ctx: AppContext, p: Principal, kind: DocumentKind, raw: bytes, meta: RequestMeta
) -> IdentityDocument:
    """A visitor adds an ID front, ID back, selfie or bar card; their identity goes (back) to review."""
    require_active(p)
    if p.visitor_id is None:
        raise Forbidden("visitor.only", N_("This is for visitors."))
    image = clean_image(raw)
    name = _store(ctx.settings.uploads_path, image.data)
    now = ctx.clock()
    try:
        with ctx.db.write() as session:
            doc = IdentityDocument(
                visitor_id=p.visitor_id,
                kind=kind,
                storage_name=name,
                sha256=image.sha256,
                bytes=len(image.data),
                content_type="image/jpeg",
                width=image.width,
                height=image.height,
            )
            session.add(doc)
            visitor = session.get(Visitor, p.visitor_id)
            assert visitor is not None
            if visitor.verification in (VerificationStatus.UNVERIFIED, VerificationStatus.REJECTED):
                visitor.verification = VerificationStatus.PENDING
            session.flush()
            audit.record(
                session,
                p,
                "document.uploaded",
                "identity_document",
                doc.id,
                at=now,
                after={
                    "visitor_id": p.visitor_id,
                    "kind": kind.value,
                    "sha256": image.sha256,
                    "bytes": len(image.data),
                },
                ip=meta.ip,
            )
            return doc
    except BaseException:
        # The row never committed: the file must not outlive it.
        (ctx.settings.uploads_path / name).unlink(missing_ok=True)
        raise


def _vetting_facilities(p: Principal) -> set[int]:
    # Only vetting clerks: monitoring, scheduling or investigating a facility is no reason to see an ID.
    return {g.facility_id for g in p.grants if g.role is Role.VETTING_CLERK and g.facility_id is not None}


def access_document_by_id(
    ctx: AppContext, p: Principal, document_id: int, meta: RequestMeta
) -> tuple[IdentityDocument, Path]:
    """A document and its file, for its owner or a vetting clerk of a facility the owner asks to visit
    (each staff view audited); NotFound for anyone else."""
    require_active(p)
    now = ctx.clock()
    with ctx.db.write() as session:
        doc = session.get(IdentityDocument, document_id)
        if doc is None:
            raise NotFound("document.not_found", N_("No such document."))
        if p.visitor_id is not None and doc.visitor_id == p.visitor_id:
            return doc, ctx.settings.uploads_path / doc.storage_name
        facilities = _vetting_facilities(p)
        asked = session.execute(
            sa.select(Resident.facility_id)
            .join(Connection, Connection.resident_id == Resident.id)
            .where(Connection.visitor_id == doc.visitor_id, Resident.facility_id.in_(facilities))
            .limit(1)
        ).scalar_one_or_none()
        if asked is None:
            raise NotFound("document.not_found", N_("No such document."))
        audit.record(
            session,
            p,
            "document.viewed",
            "identity_document",
            doc.id,
            at=now,
            facility_id=asked,
            after={"visitor_id": doc.visitor_id, "kind": doc.kind.value},
            ip=meta.ip,
        )
        return doc, ctx.settings.uploads_path / doc.storage_name


def documents_of(ctx: AppContext, visitor_id: int) -> list[IdentityDocument]:
    """The documents of a visitor, newest first (callers have already checked access)."""
    with ctx.db.read() as session:
        return list(
            session.execute(
                sa.select(IdentityDocument)
                .where(IdentityDocument.visitor_id == visitor_id)
                .order_by(IdentityDocument.uploaded_at.desc(), IdentityDocument.id.desc())
            ).scalars()
        )
