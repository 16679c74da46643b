"""What every provider's payload is turned into, so one intake path serves SendGrid, Mailgun, Postmark and raw MIME."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MailFile:
    """One attachment as the provider handed it over: the name and type as declared (decoded, not yet sanitised:
    core.attachments does that when storing), and the bytes."""

    filename: str
    content_type: str
    data: bytes


@dataclass
class InboundMail:
    """One received e-mail, decoded to text, with its attachments (stored beside the ticket by core.attachments)."""

    provider: str
    sender_email: str | None = None
    sender_name: str | None = None
    recipient: str | None = None
    subject: str | None = None
    text: str | None = None  # the text/plain body, decoded
    html: str | None = None  # the text/html body, decoded; used when there is no plain text
    message_id: str | None = None
    date: str | None = None
    attachments: int = 0  # how many the mail had (the inbound log's count), stored or not
    files: list[MailFile] = field(default_factory=list)  # the attachments' contents, where the provider sent them
    # Threading and automatic-mail detection (core.conversations, core.automail):
    in_reply_to: str | None = None  # the In-Reply-To header, unfolded
    references: str | None = None  # the References header, unfolded
    content_type: str | None = None  # the top-level Content-Type (multipart/report marks a delivery report)
    headers: list[tuple[str, str]] = field(default_factory=list)  # every header (name, value) the provider passed
    report_ids: list[str] = field(default_factory=list)  # Message-IDs of the original mail a delivery report returns
    report_actions: list[str] = field(default_factory=list)  # a delivery report's Action fields: failed, delayed ...
    notes: list[str] = field(default_factory=list)  # how the mail was read: charset fallbacks, MIME defects


class MailRejected(Exception):
    """The mail cannot become a ticket; `reason` is recorded and answered, and the provider must not retry."""

    def __init__(self, reason: str, mail: InboundMail | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.mail = mail
