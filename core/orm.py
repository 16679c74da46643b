"""The stored domain: tickets, agents and their corrections, model versions."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    Uuid,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

CHANNELS = ("web", "email", "api")
# admin: also retrains, changes the champion, edits rules, manages agents and webhooks. Checked in code (core.agents):
# a CHECK on a column added later would need a table rebuild on SQLite (see migrations 0013, 0014).
ROLES = ("admin", "agent")
STATUSES = ("received", "queued", "routed", "needs_review", "failed", "resolved")
# Why the model held a ticket in Needs review (worker.routing.review_reason): nothing left to classify after the
# clean-up, text unlike the rows the model was trained on (serving.predictor.Prediction.familiar), or a confidence
# below its route's review threshold. Checked in code, like ROLES.
REVIEW_REASONS = ("no_text", "unfamiliar_text", "low_confidence")
# Tickets the worker still owes a route: the sweep re-enqueues these when they wait too long.
PENDING_STATUSES = ("received", "queued")
# Crockford-style alphabet without look-alikes (0/O, 1/I/L) so a customer can read a reference over the phone.
_REF_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_reference() -> str:
    return "T-" + "".join(secrets.choice(_REF_ALPHABET) for _ in range(8))


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite hands back naive datetimes otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):  # type: ignore[no-untyped-def]
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime; use core.orm.utcnow()")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value, dialect):  # type: ignore[no-untyped-def]
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    # The names the migrations give indexes (SQLAlchemy's default, ix_<table>_<column>) and unique constraints
    # (uq_<table>_<column>), so the models carry the same names and tests/core/test_migrations.py compares them.
    metadata = MetaData(naming_convention={"ix": "ix_%(column_0_label)s", "uq": "uq_%(table_name)s_%(column_0_name)s"})


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(_in("channel", CHANNELS), name="ck_tickets_channel"),
        CheckConstraint(_in("status", STATUSES), name="ck_tickets_status"),
        CheckConstraint("route IS NULL OR " + _in("route", ("Account", "Payment", "Other")), name="ck_tickets_route"),
        # The agents' queue: one route, one status, oldest first.
        Index("ix_tickets_route_status_created", "route", "status", "created_at", "id"),
        # The sweep and the "all" queue: status, oldest first.
        Index("ix_tickets_status_created", "status", "created_at", "id"),
        Index("ix_tickets_created", "created_at", "id"),
        # Per model version: the override rate (grouped) and the retrain's replay of its newest routed tickets.
        Index("ix_tickets_model_version_routed", "model_version", "routed_at"),
        # Automatic assignment (core/assignment.py): each agent's open tickets, counted on every assignment.
        Index("ix_tickets_assigned_status", "assigned_agent_id", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    reference: Mapped[str] = mapped_column(String(16), unique=True, default=new_reference)
    channel: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str | None] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    customer_name: Mapped[str | None] = mapped_column(String(200))
    customer_email: Mapped[str | None] = mapped_column(String(320))
    # E-mail: the support address the customer's first mail was sent to (rules may match on it; core/rules.py).
    recipient: Mapped[str | None] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16), default="received")
    route: Mapped[str | None] = mapped_column(String(16))
    confidence: Mapped[float | None] = mapped_column(Float)
    score_account: Mapped[float | None] = mapped_column(Float)
    score_payment: Mapped[float | None] = mapped_column(Float)
    score_other: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[str | None] = mapped_column(String(64))
    # The model's second output: the corpus' fine category (e.g. "Payment - Refund"); the route stays the contract.
    fine_category: Mapped[str | None] = mapped_column(String(64))
    fine_confidence: Mapped[float | None] = mapped_column(Float)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(998), unique=True)  # e-mail: a dedupe key, not the id
    # The customer's first mail's own Message-ID (e-mail tickets): what our first reply names in In-Reply-To.
    mail_message_id: Mapped[str | None] = mapped_column(String(998))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    routed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    assigned_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    # When the current assignee got the ticket automatically (core/assignment.py times "untouched" from it); None
    # for a ticket nobody has, or one an agent took by hand.
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Rules before the model (core/rules.py): the rule and its version that routed or assigned the ticket, and the
    # model's own route beside it (route may be the rule's); None when no rule matched.
    rule_id: Mapped[int | None] = mapped_column(Integer)  # no FK in the database: see migration 0015
    rule_version: Mapped[int | None] = mapped_column(Integer)
    model_route: Mapped[str | None] = mapped_column(String(16))
    # The model's reason for holding the ticket in review (REVIEW_REASONS), set with its route and kept after an
    # agent decides; None when it routed the ticket (or a rule did), and for tickets routed before migration 0017.
    review_reason: Mapped[str | None] = mapped_column(String(16))
    # SLA (core/sla.py): when an agent first answered the customer (the first agent reply queued to them).
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def scores(self) -> dict[str, float] | None:
        if self.score_account is None:
            return None
        return {"Account": self.score_account, "Payment": self.score_payment or 0.0, "Other": self.score_other or 0.0}


class Agent(Base):
    """A support agent: logs in to the web UI (hashed password) and uses API tokens for the JSON endpoints."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Part of every session cookie's id; signing out or deactivating bumps it, so every cookie issued before (a
    # copied one included) is refused at its next request.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Automatic assignment (core/assignment.py): whether new tickets may go to the agent now (available / away),
    # their own cap of open tickets (None: ASSIGNMENT_MAX_OPEN), and when they last got one (round-robin order).
    available: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    max_open: Mapped[int | None] = mapped_column(Integer)
    last_assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    role: Mapped[str] = mapped_column(String(8), default="agent", server_default="agent")
    # The agent's own language for the agents' pages ("ja" / "en"); None: the browser's Accept-Language decides.
    language: Mapped[str | None] = mapped_column(String(8))

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class Rule(Base):
    """An admin's rule, applied before the model (core/rules.py): every condition set must hold; it sets the route
    and/or the assignee. Lower position first; the first matching active rule wins. Each save bumps version and
    keeps a snapshot in rule_versions, so a ticket's rule_version says exactly what routed it."""

    __tablename__ = "rules"
    __table_args__ = (
        CheckConstraint("route IS NULL OR " + _in("route", ("Account", "Payment", "Other")), name="ck_rules_route"),
        CheckConstraint("channel IS NULL OR " + _in("channel", CHANNELS), name="ck_rules_channel"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Conditions (None: not checked). sender: an address or "@domain"; recipient: an address; subject / body:
    # contains, case-insensitive (NFKC-folded); channel: web, email or api.
    sender: Mapped[str | None] = mapped_column(String(320))
    recipient: Mapped[str | None] = mapped_column(String(320))
    subject_contains: Mapped[str | None] = mapped_column(String(500))
    body_contains: Mapped[str | None] = mapped_column(String(500))
    channel: Mapped[str | None] = mapped_column(String(16))
    # Actions: at least one.
    route: Mapped[str | None] = mapped_column(String(16))
    assignee_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))


class RuleVersion(Base):
    """One saved version of a rule, as it was (a JSON snapshot of its conditions and actions) and who saved it."""

    __tablename__ = "rule_versions"

    rule_id: Mapped[int] = mapped_column(ForeignKey("rules.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    saved_by: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    """A bearer token for an agent; only its SHA-256 is stored, the token itself is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Correction(Base):
    """An agent re-routed a ticket: the training signal for retraining (the corrected route wins)."""

    __tablename__ = "corrections"
    __table_args__ = (
        CheckConstraint(_in("predicted_route", ("Account", "Payment", "Other")) + " OR predicted_route IS NULL",
                        name="ck_corrections_predicted"),
        CheckConstraint(_in("corrected_route", ("Account", "Payment", "Other")), name="ck_corrections_corrected"),
        Index("ix_corrections_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    predicted_route: Mapped[str | None] = mapped_column(String(16))
    corrected_route: Mapped[str] = mapped_column(String(16))
    predicted_category: Mapped[str | None] = mapped_column(String(64))
    corrected_category: Mapped[str | None] = mapped_column(String(64))  # None: the agent corrected the route only
    model_version: Mapped[str | None] = mapped_column(String(64))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TicketEvent(Base):
    """The ticket's history shown to agents: routed, re-routed, assigned, resolved, ..."""

    __tablename__ = "ticket_events"
    __table_args__ = (Index("ix_ticket_events_ticket_created", "ticket_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# A conversation entry: what it is. The customer's first message is the ticket itself (tickets.body, what the model
# routes); every later entry is a Message.
MESSAGE_KINDS = (
    "customer",  # a customer's reply (e-mail threaded onto the ticket, or the web/API)
    "agent_reply",  # an agent's answer, e-mailed to the customer through the outbox
    "note",  # an internal note: agents only, never sent
    "acknowledgement",  # our automatic "we have your ticket" mail
    "automatic",  # an auto-reply, out-of-office or bounce the ticket received: shown, never routed or answered
)
# Outbound mail only (agent_reply, acknowledgement): the outbox's state. `pending` is sent by a task with retries;
# `bounced` is a delivery-status report that came back for it.
DELIVERY_STATES = ("pending", "sent", "failed", "bounced")


class Message(Base):
    """One entry of a ticket's conversation after its first message, in order of created_at."""

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(_in("kind", MESSAGE_KINDS), name="ck_messages_kind"),
        CheckConstraint("delivery IS NULL OR " + _in("delivery", DELIVERY_STATES), name="ck_messages_delivery"),
        Index("ix_messages_ticket_created", "ticket_id", "created_at", "id"),
        # The outbox sweep: outbound mail still pending, oldest first.
        Index("ix_messages_delivery_created", "delivery", "created_at"),
        # The acknowledgement limit: what we sent one address lately.
        Index("ix_messages_recipient_created", "recipient", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))  # email, web, api, agent
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    sender: Mapped[str | None] = mapped_column(String(320))
    recipient: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(998))
    body: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(8))  # of an outbound mail: ja or en
    # RFC 5322 ids: ours for outbound mail (fixed before the first attempt, so a retry sends the same id), the
    # sender's for inbound; threading looks replies up by them.
    message_id: Mapped[str | None] = mapped_column(String(998), unique=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[str | None] = mapped_column(Text)
    automatic: Mapped[str | None] = mapped_column(String(200))  # why inbound mail was judged automatic
    delivery: Mapped[str | None] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Attachment(Base):
    """A file a customer's mail carried: the first mail's belong to the ticket (message_id NULL), a reply's to its
    message. The bytes are in the database, so every API process on every machine can serve them."""

    __tablename__ = "attachments"
    __table_args__ = (Index("ix_attachments_ticket_created", "ticket_id", "created_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))  # sanitised (core.attachments.safe_filename)
    content_type: Mapped[str] = mapped_column(String(255))  # as declared, normalised; never trusted when served
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InboundEmail(Base):
    """Every mail a webhook received: accepted (with its ticket), duplicate, or rejected with the reason."""

    __tablename__ = "inbound_emails"
    __table_args__ = (
        CheckConstraint(_in("outcome", ("accepted", "duplicate", "rejected")), name="ck_inbound_emails_outcome"),
        Index("ix_inbound_emails_received", "received_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    dedupe_key: Mapped[str | None] = mapped_column(String(128), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    sender: Mapped[str | None] = mapped_column(String(998))
    subject: Mapped[str | None] = mapped_column(String(998))
    attachments: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookNonce(Base):
    """Mailgun tokens already seen: a replayed signed request is refused."""

    __tablename__ = "webhook_nonces"

    token: Mapped[str] = mapped_column(String(200), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


MODEL_STATUSES = ("candidate", "champion", "retired", "rejected")
MODEL_TRIGGERS = ("cli", "schedule", "button", "initial")


class ModelVersion(Base):
    """A trained model version (its files: MODEL_DIR/<version>/) and what the registry decided about it.

    Exactly one row is the champion, the model workers serve: a partial unique index enforces it on PostgreSQL and
    SQLite alike, so two racing promotions cannot both win. See core/registry.py and docs/retraining.md.
    """

    __tablename__ = "model_versions"
    __table_args__ = (
        CheckConstraint(_in("status", MODEL_STATUSES), name="ck_model_versions_status"),
        CheckConstraint(_in("trigger", MODEL_TRIGGERS), name="ck_model_versions_trigger"),
        Index("uq_model_versions_one_champion", "status", unique=True,
              postgresql_where=text("status = 'champion'"), sqlite_where=text("status = 'champion'")),
        Index("ix_model_versions_created", "created_at"),
    )

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16))
    trigger: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    data_hash: Mapped[str | None] = mapped_column(String(64))
    # {"by_route": {...}, "by_source": {"corpus": n, "corrections": n, "resolved": n}, "input_hash": ...}
    train_counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # {"validation": <train()'s own split>, "evaluation": {"candidate": ..., "champion": ..., "eval_set": ...}}
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # On the fixed evaluation set at decision time, this version and the champion it was compared with.
    macro_f1: Mapped[float | None] = mapped_column(Float)
    champion_macro_f1: Mapped[float | None] = mapped_column(Float)
    compared_with: Mapped[str | None] = mapped_column(String(64))
    # The champion this version replaced when it first became champion: where a rollback goes back to.
    previous_champion: Mapped[str | None] = mapped_column(String(64))
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class JobLease(Base):
    """A lease on a job that must run alone (retraining), or a row to lock (the registry's mutex).

    The holder renews `expires_at` while it works; a crashed holder stops renewing, so the next run waits at most
    one lease period. A conditional UPDATE takes it, which behaves the same on PostgreSQL and SQLite.
    """

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200))
    acquired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WorkerHeartbeat(Base):
    """One classify worker process (host + pid) and the model it serves, refreshed every few seconds.

    A table, not Redis: the embedded deployment has no Redis, and every API process on every machine already reads
    this database. A row not refreshed for core.heartbeats.STALE_AFTER_S belongs to a process that is gone.
    """

    __tablename__ = "worker_heartbeats"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    pid: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    model_version: Mapped[str | None] = mapped_column(String(64))  # None: up, but no model loaded yet
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ModelArtifact(Base):
    """One file of a trained model version (model.keras, meta.json, the plots), kept in the database so that every
    machine can fetch the version it serves: MODEL_DIR is only a cache of these rows (core/model_store.py).

    Deleting the rows of a version (the registry's prune) is what removes it from every machine's cache; the
    version's own row stays in model_versions for its history.
    """

    __tablename__ = "model_artifacts"

    version: Mapped[str] = mapped_column(
        String(64), ForeignKey("model_versions.version", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)  # a path relative to the version directory
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)  # listing a manifest never loads the bytes
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


WEBHOOK_DELIVERY_STATES = ("pending", "delivered", "failed")


class WebhookSubscription(Base):
    """An outbound webhook: the events (core.webhooks.EVENTS) POSTed to a URL, each signed with the secret.

    The secret is kept as given, not hashed: every delivery is signed with it (HMAC), so it must be readable.
    `events` is a comma-separated list, matched in SQL (core.webhooks.subscriber_ids).
    """

    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(200))
    events: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event for one subscription: the outbox row a task POSTs (worker.webhook_tasks), retried until delivered
    or given up. The payload is the exact body sent on every attempt, so the event id in it never changes; one
    event goes once to each subscription (the unique index)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(_in("status", WEBHOOK_DELIVERY_STATES), name="ck_webhook_deliveries_status"),
        Index("uq_webhook_deliveries_subscription_event", "subscription_id", "event_id", unique=True),
        # The sweep: deliveries still pending, oldest first.
        Index("ix_webhook_deliveries_status_created", "status", "created_at"),
        # The admin page: the newest deliveries.
        Index("ix_webhook_deliveries_created", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"))
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    event: Mapped[str] = mapped_column(String(32))
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AgentRoute(Base):
    """A route an agent works in (their skill): automatic assignment gives an agent tickets of their routes only."""

    __tablename__ = "agent_routes"
    __table_args__ = (
        CheckConstraint(_in("route", ("Account", "Payment", "Other")), name="ck_agent_routes_route"),
    )

    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    route: Mapped[str] = mapped_column(String(16), primary_key=True)
