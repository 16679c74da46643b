"""The files customers' mail carries, kept beside the ticket: names made safe, types normalised, sizes limited, and
what an agent's browser may be handed.

Service functions take a Session and never commit (the entry point's unit of work does): a mail's attachments are
stored in the same transaction as its ticket or reply, so a failed mail leaves neither.

Limits (Settings.attachment_max_bytes per file, attachments_max_bytes_per_mail per mail) drop the files over them
and say so on the ticket (a `attachment_dropped` event): the mail is real, its words still reach an agent, so the
mail is never refused for its files. Files are kept in the order the mail lists them, until the mail's budget is
spent.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.orm import Attachment, TicketEvent, utcnow

FILENAME_MAX = 255
CONTENT_TYPE_MAX = 255
DEFAULT_TYPE = "application/octet-stream"
# Types a browser would render (and run scripts in) under our origin: always served as a download of this type.
ACTIVE_TYPES = frozenset({
    "text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml", "text/javascript",
    "application/javascript", "application/x-javascript", "text/xsl", "multipart/x-mixed-replace",
})  # fmt: skip
_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
# Path separators, controls and the characters Windows refuses in a name: a name is shown and saved, never a path.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')


@dataclass(frozen=True)
class IncomingFile:
    filename: str
    content_type: str
    data: bytes


def safe_filename(name: str | None, content_type: str = DEFAULT_TYPE) -> str:
    """A name to show and to offer for saving: NFC, no path, no control or reserved characters, no leading dots,
    at most FILENAME_MAX characters with the extension kept; `attachment` (plus an extension for well-known types)
    when nothing is left."""
    text = unicodedata.normalize("NFC", name or "")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]  # "C:\\Users\\x\\見積書.pdf" → "見積書.pdf"
    text = _UNSAFE.sub("_", text).strip().lstrip(".").strip()
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co"))  # RTL overrides
    if not text:
        return "attachment" + _EXTENSIONS.get(content_type, "")
    if len(text) > FILENAME_MAX:
        stem, dot, ext = text.rpartition(".")
        ext = f".{ext}" if dot and stem and len(ext) <= 16 else ""
        text = text[: FILENAME_MAX - len(ext)] + ext
    return text


_EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "application/pdf": ".pdf",
               "message/rfc822": ".eml", "text/plain": ".txt"}  # fmt: skip


def normalise_type(declared: str | None) -> str:
    """`Image/JPEG; name="x.jpg"` → `image/jpeg`; anything that is not a type/subtype → application/octet-stream."""
    value = (declared or "").split(";", 1)[0].strip().lower()
    return value if _TYPE.match(value) and len(value) <= CONTENT_TYPE_MAX else DEFAULT_TYPE


def served_type(stored: str) -> str:
    """What the download answers with: the stored type, unless a browser would render it as a page (HTML, SVG,
    XML, scripts): then application/octet-stream, so it is saved, never opened under our origin."""
    return DEFAULT_TYPE if stored in ACTIVE_TYPES or stored.startswith("text/html") else stored


def store_attachments(
    session: Session, ticket_id: uuid.UUID, files: Iterable[IncomingFile], *, message_id: int | None,
    max_bytes: int, max_bytes_per_mail: int,
) -> list[str]:
    """Add the mail's files to the session (the ticket's when message_id is None, else that message's); return a
    note per file dropped for its size, which is also recorded on the ticket as an `attachment_dropped` event."""
    budget = max_bytes_per_mail
    dropped: list[str] = []
    now = utcnow()
    for incoming in files:
        content_type = normalise_type(incoming.content_type)
        filename = safe_filename(incoming.filename, content_type)
        size = len(incoming.data)
        if size > max_bytes:
            dropped.append(f"attachment {filename!r} dropped: {size} bytes, over the {max_bytes}-byte limit per file")
            continue
        if size > budget:
            dropped.append(f"attachment {filename!r} dropped: {size} bytes, over what is left of the "
                           f"{max_bytes_per_mail}-byte limit per mail")  # fmt: skip
            continue
        budget -= size
        session.add(Attachment(
            ticket_id=ticket_id, message_id=message_id, filename=filename, content_type=content_type, size=size,
            sha256=hashlib.sha256(incoming.data).hexdigest(), data=incoming.data, created_at=now,
        ))  # fmt: skip
    for note in dropped:
        session.add(TicketEvent(ticket_id=ticket_id, kind="attachment_dropped", detail=note, created_at=now))
    return dropped


@dataclass(frozen=True)
class AttachmentInfo:
    """What a page lists: no bytes."""

    id: int
    message_id: int | None
    filename: str
    content_type: str
    size: int


def ticket_attachments(session: Session, ticket_id: uuid.UUID) -> list[AttachmentInfo]:
    """The ticket's attachments (its first mail's and its replies'), oldest first, without loading their bytes."""
    rows = session.execute(
        select(Attachment.id, Attachment.message_id, Attachment.filename, Attachment.content_type, Attachment.size)
        .where(Attachment.ticket_id == ticket_id)
        .order_by(Attachment.created_at, Attachment.id)
    )  # fmt: skip
    return [AttachmentInfo(*row) for row in rows]


def ticket_attachment(session: Session, ticket_id: uuid.UUID, attachment_id: int) -> Attachment | None:
    """One attachment, only if it belongs to that ticket (an id from another ticket's page is not found)."""
    return session.scalar(select(Attachment).where(Attachment.id == attachment_id, Attachment.ticket_id == ticket_id))
