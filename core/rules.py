"""Rules before the model: an admin's ordered conditions → a route and/or an assignee (docs/agents.md, "Rules").

- A rule's conditions are all optional, but at least one is set, and every one set must hold (AND):
  sender — an exact address ("billing@example.com"), or a domain ("@example.com" or "example.com"), which also
  matches its subdomains ("mail.example.com", not "badexample.com"): a customer's company writes from several;
  recipient — the exact support address the mail was sent to (web and API tickets have none, so never match);
  subject / body contains — case-insensitive after NFKC folding, so full-width "ＶＩＳＡ" matches "visa" and
  half-width "ｶｰﾄﾞ" matches "カード"; channel — web, email or api.
- Its action: a route, an assignee, or both. The first active rule that matches, lowest position first (ties: the
  older rule), decides; the model still runs, and its own prediction is kept beside the rule's (worker.routing).
- Rules are never deleted, only deactivated (migration 0015: a ticket's rule_id must keep its meaning). Each save
  that changes a rule bumps its version and stores a snapshot (RuleVersion) with who saved it, so a ticket's
  (rule_id, rule_version) says exactly what routed it. Activating and deactivating are saves too (who turned it
  off is worth keeping); moving a rule up or down is not: it changes the order, not the rule.

Services on a Session; they never commit. The worker reads the active rules once per batch (active_rules): they are
few, and a rule saved now applies from the next batch on.
"""

from __future__ import annotations

import logging
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import webhooks
from core.orm import CHANNELS, Agent, Rule, RuleVersion, Ticket, TicketEvent, utcnow
from core.routes import ROUTES

log = logging.getLogger(__name__)

EVENT_KIND = "rule"
NAME_MAX, ADDRESS_MAX, CONTAINS_MAX = 200, 320, 500


class RuleError(ValueError):
    """A rule that cannot be saved, or one that does not exist; the message says why (shown to the admin)."""


class RuleNotFound(RuleError):
    pass


# --- what a rule is made of -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RuleSpec:
    """What an admin edits: the name, the conditions (None: not checked) and the actions (at least one)."""

    name: str
    sender: str | None = None
    recipient: str | None = None
    subject_contains: str | None = None
    body_contains: str | None = None
    channel: str | None = None
    route: str | None = None
    assignee_agent_id: int | None = None

    def snapshot(self, active: bool) -> dict[str, Any]:
        return {**asdict(self), "active": active}

    @property
    def active(self) -> bool:
        """A draft being tested before it is saved is tried as an active rule."""
        return True


CONDITIONS = ("sender", "recipient", "subject_contains", "body_contains", "channel")


@dataclass(frozen=True)
class Facts:
    """What rules look at on one ticket. sender: the customer's address (the From of a mail; the address a web or
    API customer gave); recipient: the support address the first mail was sent to (None: not a mail, or unknown)."""

    channel: str
    sender: str | None = None
    recipient: str | None = None
    subject: str | None = None
    body: str = ""


@dataclass(frozen=True)
class LoadedRule:
    """A rule as the worker holds it between reading and writing a batch: a plain value, no ORM object."""

    id: int
    version: int
    position: int
    name: str
    active: bool
    sender: str | None
    recipient: str | None
    subject_contains: str | None
    body_contains: str | None
    channel: str | None
    route: str | None
    assignee_agent_id: int | None

    @classmethod
    def of(cls, rule: Rule) -> LoadedRule:
        return cls(**{f.name: getattr(rule, f.name) for f in fields(cls)})


class RuleLike(Protocol):
    """Anything match() can judge: a stored Rule, a LoadedRule, or a draft being tested before it is saved."""

    @property
    def active(self) -> bool: ...
    @property
    def sender(self) -> str | None: ...
    @property
    def recipient(self) -> str | None: ...
    @property
    def subject_contains(self) -> str | None: ...
    @property
    def body_contains(self) -> str | None: ...
    @property
    def channel(self) -> str | None: ...


R = TypeVar("R", bound=RuleLike)


# --- validation -------------------------------------------------------------------------------------------------

def fold(text: str) -> str:
    """The form "contains" compares: NFKC (full-width letters and half-width kana to their usual form), then
    casefold. NFKC again after casefold, as Unicode advises for caseless matching of compatibility forms."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def _text(value: str | None, label: str, limit: int) -> str | None:
    value = (value or "").strip()
    if len(value) > limit:
        raise RuleError(f"{label} is too long (at most {limit} characters)")
    return value or None


def _address(value: str) -> bool:
    local, at, domain = value.partition("@")
    return bool(at and local) and not any(c.isspace() for c in local) and _domain(domain)


def _domain(value: str) -> bool:
    labels = value.split(".")
    return "@" not in value and all(labels) and not any(c.isspace() for c in value)


def normalise_sender(value: str | None) -> str | None:
    """An address, or a domain kept as "@domain"; lower-cased (addresses are compared without case)."""
    value = _text(value, "Sender", ADDRESS_MAX)
    if value is None:
        return None
    value = value.lower()
    if value.startswith("@"):
        value = value[1:]
    elif "@" in value:
        if not _address(value):
            raise RuleError(f"Sender {value!r} is neither an address nor a domain")
        return value
    if not _domain(value):
        raise RuleError(f"Sender {value!r} is neither an address nor a domain")
    return "@" + value


def validate(session: Session, spec: RuleSpec) -> RuleSpec:
    """The spec as it will be stored (trimmed, addresses lower-cased, route and channel spelt canonically), or a
    RuleError saying what is wrong."""
    name = _text(spec.name, "Name", NAME_MAX)
    if name is None:
        raise RuleError("A rule needs a name")
    recipient = _text(spec.recipient, "Recipient", ADDRESS_MAX)
    if recipient is not None:
        recipient = recipient.lower()
        if not _address(recipient):
            raise RuleError(f"Recipient {recipient!r} is not an address")
    channel = _text(spec.channel, "Channel", 16)
    if channel is not None:
        channel = channel.lower()
        if channel not in CHANNELS:
            raise RuleError(f"Unknown channel {channel!r}; one of {', '.join(CHANNELS)}")
    route = _text(spec.route, "Route", 16)
    if route is not None:
        by_lower = {known.lower(): known for known in ROUTES}
        if route.lower() not in by_lower:
            raise RuleError(f"Unknown route {route!r}; one of {', '.join(ROUTES)}")
        route = by_lower[route.lower()]
    clean = RuleSpec(
        name=name, sender=normalise_sender(spec.sender), recipient=recipient,
        subject_contains=_text(spec.subject_contains, "Subject contains", CONTAINS_MAX),
        body_contains=_text(spec.body_contains, "Body contains", CONTAINS_MAX), channel=channel, route=route,
        assignee_agent_id=spec.assignee_agent_id,
    )  # fmt: skip
    if all(getattr(clean, condition) is None for condition in CONDITIONS):
        raise RuleError("A rule needs at least one condition (a rule without one would take every ticket)")
    if clean.route is None and clean.assignee_agent_id is None:
        raise RuleError("A rule needs an action: a route, an assignee, or both")
    if clean.assignee_agent_id is not None:
        agent = session.get(Agent, clean.assignee_agent_id)
        if agent is None or not agent.active:
            raise RuleError("The assignee must be an active agent")
    return clean


# --- saving -----------------------------------------------------------------------------------------------------

def spec_of(rule: Rule) -> RuleSpec:
    return RuleSpec(**{f.name: getattr(rule, f.name) for f in fields(RuleSpec)})


def _snapshot(session: Session, rule: Rule, saved_by: int | None) -> None:
    session.add(RuleVersion(rule_id=rule.id, version=rule.version, snapshot=spec_of(rule).snapshot(rule.active),
                            saved_by=saved_by, saved_at=rule.updated_at))  # fmt: skip


def create_rule(session: Session, spec: RuleSpec, saved_by: int | None) -> Rule:
    """A new active rule at the end of the list, version 1."""
    clean = validate(session, spec)
    last = session.scalar(select(func.max(Rule.position)))
    now = utcnow()
    rule = Rule(**asdict(clean), position=(last or 0) + 1, active=True, version=1, created_at=now, updated_at=now,
                updated_by=saved_by)  # fmt: skip
    session.add(rule)
    session.flush()
    _snapshot(session, rule, saved_by)
    log.info("rule %s (%s) created by agent %s", rule.id, rule.name, saved_by)
    return rule


def get_rule(session: Session, rule_id: int) -> Rule:
    rule = session.get(Rule, rule_id)
    if rule is None:
        raise RuleNotFound(f"No rule {rule_id}")
    return rule


def _locked(session: Session, rule_id: int) -> Rule:
    """The rule, locked until commit on PostgreSQL: two admins saving at once get consecutive versions."""
    rule = session.scalars(
        select(Rule).where(Rule.id == rule_id).with_for_update().execution_options(populate_existing=True)
    ).first()
    if rule is None:
        raise RuleNotFound(f"No rule {rule_id}")
    return rule


def _bump(session: Session, rule: Rule, saved_by: int | None) -> None:
    rule.version += 1
    rule.updated_at, rule.updated_by = utcnow(), saved_by
    session.flush()
    _snapshot(session, rule, saved_by)


def update_rule(session: Session, rule_id: int, spec: RuleSpec, saved_by: int | None) -> tuple[Rule, bool]:
    """Save the rule's new conditions and actions as its next version; (rule, False) when nothing changed."""
    rule = _locked(session, rule_id)
    clean = validate(session, spec)
    if clean == spec_of(rule):
        return rule, False
    for name, value in asdict(clean).items():
        setattr(rule, name, value)
    _bump(session, rule, saved_by)
    log.info("rule %s saved as v%s by agent %s", rule.id, rule.version, saved_by)
    return rule, True


def set_active(session: Session, rule_id: int, active: bool, saved_by: int | None) -> tuple[Rule, bool]:
    """Activate or deactivate (never delete); a change is a new version. (rule, False) when it already was."""
    rule = _locked(session, rule_id)
    if rule.active == active:
        return rule, False
    if active:
        validate(session, spec_of(rule))  # e.g. its assignee was deactivated meanwhile: edit the rule first
    rule.active = active
    _bump(session, rule, saved_by)
    log.info("rule %s %s by agent %s", rule.id, "activated" if active else "deactivated", saved_by)
    return rule, True


def list_rules(session: Session) -> list[Rule]:
    """Every rule, in the order they are tried (inactive ones keep their place)."""
    return list(session.scalars(select(Rule).order_by(Rule.position, Rule.id)))


def move(session: Session, rule_id: int, offset: int) -> bool:
    """Move the rule `offset` places (-1: up, tried earlier; +1: down); False at either end. Positions are
    renumbered 1..n, which also settles two rules created at once with the same position."""
    ordered = list(session.scalars(
        select(Rule).order_by(Rule.position, Rule.id).with_for_update().execution_options(populate_existing=True)
    ))  # fmt: skip
    index = next((i for i, rule in enumerate(ordered) if rule.id == rule_id), None)
    if index is None:
        raise RuleNotFound(f"No rule {rule_id}")
    target = index + offset
    if not 0 <= target < len(ordered):
        return False
    ordered.insert(target, ordered.pop(index))
    for position, rule in enumerate(ordered, start=1):
        rule.position = position
    session.flush()
    return True


def versions(session: Session, rule_id: int) -> list[RuleVersion]:
    """The rule's saved versions, newest first."""
    return list(session.scalars(
        select(RuleVersion).where(RuleVersion.rule_id == rule_id).order_by(RuleVersion.version.desc())
    ))  # fmt: skip


def name_at(session: Session, rule_id: int, version: int | None) -> str | None:
    """The rule's name as it was at `version` (what routed a ticket), else its name now; None: no such rule."""
    if version is not None:
        saved = session.get(RuleVersion, (rule_id, version))
        if saved is not None and saved.snapshot.get("name"):
            return str(saved.snapshot["name"])
    rule = session.get(Rule, rule_id)
    return rule.name if rule is not None else None


def assignable_agents(session: Session) -> list[Agent]:
    """The agents a rule may name as its assignee: the active ones."""
    return list(session.scalars(select(Agent).where(Agent.active.is_(True)).order_by(Agent.name, Agent.email)))


def active_rules(session: Session) -> list[LoadedRule]:
    """The active rules in the order they are tried, as plain values (the worker's once-per-batch read)."""
    return [LoadedRule.of(rule) for rule in session.scalars(
        select(Rule).where(Rule.active.is_(True)).order_by(Rule.position, Rule.id))]  # fmt: skip


# --- matching ---------------------------------------------------------------------------------------------------

def sender_matches(pattern: str, sender: str | None) -> bool:
    """pattern: an address (exact, without case) or "@domain" (that domain or a subdomain of it)."""
    if not sender:
        return False
    sender = sender.strip().lower()
    if not pattern.startswith("@"):
        return sender == pattern.lower()
    domain = pattern[1:].lower()
    _, at, sender_domain = sender.rpartition("@")
    return bool(at) and (sender_domain == domain or sender_domain.endswith("." + domain))


def matches(rule: RuleLike, facts: Facts) -> bool:
    """Every condition the rule sets holds for the ticket (a rule with none set matches nothing)."""
    checked = False
    if rule.sender is not None:
        checked = True
        if not sender_matches(rule.sender, facts.sender):
            return False
    if rule.recipient is not None:
        checked = True
        if (facts.recipient or "").strip().lower() != rule.recipient.lower():
            return False
    if rule.subject_contains is not None:
        checked = True
        if fold(rule.subject_contains) not in fold(facts.subject or ""):
            return False
    if rule.body_contains is not None:
        checked = True
        if fold(rule.body_contains) not in fold(facts.body):
            return False
    if rule.channel is not None:
        checked = True
        if rule.channel != facts.channel:
            return False
    return checked


def match(rules: Iterable[R], facts: Facts) -> R | None:
    """The first active rule that matches, in the order given (active_rules and list_rules give position order)."""
    return next((rule for rule in rules if rule.active and matches(rule, facts)), None)


# --- what a matching rule does on a ticket (worker.routing, after its write) ------------------------------------

@dataclass(frozen=True)
class RuleHit:
    """A rule matched a ticket of a batch, beside what the model said of it."""

    ticket_id: uuid.UUID
    rule: LoadedRule
    model_route: str
    model_confidence: float


def hit_text(hit: RuleHit) -> str:
    model = f"the model said {hit.model_route} {round(hit.model_confidence * 100)} %"
    what = "Routed by" if hit.rule.route is not None else "Matched"
    return f"{what} rule «{hit.rule.name}» v{hit.rule.version}; {model}"


def apply_hits(session: Session, hits: Sequence[RuleHit], routed_at: datetime) -> list[uuid.UUID]:
    """In the routing write's transaction: the history line of each ticket a rule routed, and the rule's assignee
    given the ticket directly. Only tickets that write changed (routed_at is its own) are touched: one an agent
    routed meanwhile is theirs. Returns the tickets given to a rule's assignee.

    A rule's assignee gets the ticket whatever their load or availability (an admin's decision), but only while
    active; otherwise automatic assignment takes it (worker.routing calls it next) and the history says why. The
    assignment has no assigned_at, like one made by hand, so the periodic pass never takes it back as untouched.
    """
    if not hits:
        return []
    by_id = {hit.ticket_id: hit for hit in hits}
    tickets = session.scalars(
        select(Ticket).where(Ticket.id.in_(list(by_id)), Ticket.routed_at == routed_at, Ticket.rule_id.is_not(None))
        .execution_options(populate_existing=True)
    ).all()
    wanted = {hit.rule.assignee_agent_id for hit in hits if hit.rule.assignee_agent_id is not None}
    agents = {a.id: a for a in session.scalars(select(Agent).where(Agent.id.in_(wanted)))} if wanted else {}
    assigned = []
    for ticket in tickets:
        hit = by_id[ticket.id]
        detail = hit_text(hit)
        agent = agents.get(hit.rule.assignee_agent_id) if hit.rule.assignee_agent_id is not None else None
        if hit.rule.assignee_agent_id is not None and (agent is None or not agent.active):
            detail += "; its assignee is no longer active, so the ticket is assigned automatically"
        session.add(TicketEvent(ticket_id=ticket.id, kind=EVENT_KIND, detail=detail, created_at=routed_at))
        if agent is not None and agent.active:
            reason = f"by rule «{hit.rule.name}» v{hit.rule.version}"
            ticket.assigned_agent_id, ticket.assigned_at = agent.id, None
            session.add(TicketEvent(ticket_id=ticket.id, kind="assigned", detail=reason, agent_id=agent.id,
                                    created_at=utcnow()))  # fmt: skip
            session.flush()
            webhooks.emit(session, webhooks.TICKET_ASSIGNED, ticket, {"agent_id": agent.id, "reason": reason})
            assigned.append(ticket.id)
    session.flush()
    return assigned
