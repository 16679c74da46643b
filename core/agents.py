"""Agents and what they do to tickets: accounts, passwords, API tokens, the queues, re-route / resolve / assign.

Plain functions over a Session, no Flask: the web pages, the JSON API and the CLI call the same code. They never
commit: the caller's unit of work (core.runtime.Runtime.unit_of_work) does, so an action, its Correction and its
TicketEvent commit together.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import ColumnElement, case, func, select, tuple_
from sqlalchemy.orm import Session

from core import metrics, webhooks
from core.categories import Catalog, catalog
from core.orm import ROLES, Agent, AgentRoute, ApiToken, Correction, Ticket, TicketEvent, utcnow
from core.routes import ROUTES
from core.tickets import Position

MIN_PASSWORD_CHARS = 12
TOKEN_PREFIX = "fwk_"
# last_used_at is a hint for whoever audits tokens, not a log: writing it on every request would turn each read
# of the listing into a write.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=5)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# argon2id with the library's defaults (RFC 9106's second recommendation: 64 MiB, 3 passes).
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the e-mail is unknown, so a wrong address costs the same time as a wrong password."""
    return _hasher.hash("furiwake: no such agent")


class AgentError(ValueError):
    """Bad input for an agent action (duplicate e-mail, short password, unknown route); the message says which."""


class TicketNotFound(LookupError):
    pass


class AgentNotFound(AgentError):
    """No agent has this e-mail address (a ValueError, so the CLI reports it in one line)."""


# --- accounts and passwords -------------------------------------------------------------------------------------

def normalise_email(email: str) -> str:
    return email.strip().lower()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def session_fingerprint(agent: Agent) -> str:
    """Part of the login session's id: a new password, a sign-out or a deactivation ends every session opened
    before it (the cookie is signed, not stored, so the server refuses it by its fingerprint no longer matching)."""
    material = f"{agent.password_hash}\0{agent.session_epoch}"
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def end_sessions(agent: Agent) -> None:
    """End every web session the agent has open, on every device, copied cookies included.

    One counter per agent rather than a sessions table: a support team signs in from a few browsers, and
    "sign out" ending them all is the safer reading of the button."""
    agent.session_epoch = (agent.session_epoch or 0) + 1


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AgentError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    if password != password.strip():
        raise AgentError("the password must not start or end with white space")


def create_agent(session: Session, email: str, password: str, name: str | None = None,
                 role: str | None = None) -> Agent:
    """A new active agent. Role None: "admin" for the helpdesk's first agent (somebody must be able to manage the
    rest), else "agent"."""
    email = normalise_email(email)
    if role is not None and role not in ROLES:
        raise AgentError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if not _EMAIL.match(email) or len(email) > 320:
        raise AgentError(f"not an e-mail address: {email!r}")
    check_password_rules(password)
    if find_agent(session, email) is not None:
        raise AgentError(f"an agent with e-mail {email} already exists")
    if role is None:
        role = "agent" if session.scalar(select(Agent.id).limit(1)) is not None else "admin"
    agent = Agent(email=email, name=(name or "").strip() or None, password_hash=hash_password(password), active=True,
                  role=role)
    session.add(agent)
    session.flush()
    return agent


def find_agent(session: Session, email: str) -> Agent | None:
    return session.scalars(select(Agent).where(Agent.email == normalise_email(email))).first()


def authenticate(session: Session, email: str, password: str) -> Agent | None:
    """The active agent with this e-mail and password, else None (the caller does not learn which was wrong).

    A hash made with older argon2 parameters is replaced on a successful login, so raising the cost later needs
    no migration; the caller's unit of work commits it.
    """
    agent = find_agent(session, email)
    if agent is None or not agent.active:
        verify_password(_dummy_hash(), password)
        return None
    if not verify_password(agent.password_hash, password):
        return None
    if _hasher.check_needs_rehash(agent.password_hash):
        agent.password_hash = hash_password(password)
    return agent


def require_agent(session: Session, email: str) -> Agent:
    agent = find_agent(session, email)
    if agent is None:
        raise AgentNotFound(f"no agent with e-mail {normalise_email(email)}")
    return agent


def deactivate_agent(session: Session, agent: Agent) -> bool:
    """Lock the agent out at once: sign-in refused, every session ended, every token revoked. False when the agent
    was inactive already; an AgentError when they are the last active admin (refuse_removing_last_admin).

    Tokens are revoked rather than merely suspended, so activating the agent again does not bring back a token
    from a laptop that left with them; they ask for a new one (`furiwake create-token`). Any token still live on
    an agent deactivated some other way is revoked too, so running this twice is safe and thorough."""
    was_active = agent.active
    if was_active:
        refuse_removing_last_admin(session, agent)
        agent.active = False
        end_sessions(agent)
    revoke_tokens(session, agent)
    return was_active


# --- roles -------------------------------------------------------------------------------------------------------

class LastAdminError(AgentError):
    """The change would leave the helpdesk without an active admin: nobody could manage agents, models or rules."""


def refuse_removing_last_admin(session: Session, agent: Agent) -> None:
    """Raise LastAdminError when `agent` is the only active admin (demoting or deactivating them would leave no
    one who can make another admin but whoever holds the server). The one check every caller shares: the Agents
    page, the CLI, deactivate_agent and set_role.

    The active admins' rows are locked until commit (PostgreSQL; SQLite has one writer at a time anyway): two
    admins demoting each other at once are applied one after the other, and the second sees the first's change."""
    if not (agent.active and agent.is_admin):
        return
    admins = session.scalars(
        select(Agent.id).where(Agent.role == "admin", Agent.active.is_(True)).order_by(Agent.id).with_for_update()
    ).all()
    if not any(admin_id != agent.id for admin_id in admins):
        raise LastAdminError(f"{agent.email} is the last active admin: make another agent admin first "
                             "(`furiwake agent role EMAIL admin`, or the Agents page)")


def set_role(session: Session, agent: Agent, role: str) -> bool:
    """Make the agent an admin or an agent; False when they have that role already. Demoting the last active
    admin is refused (LastAdminError). Their open sessions keep working and see the new role at their next request
    (the user loader reads it from the database every time)."""
    if role not in ROLES:
        raise AgentError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if agent.role == role:
        return False
    if role != "admin":
        refuse_removing_last_admin(session, agent)
    agent.role = role
    return True


def activate_agent(agent: Agent) -> bool:
    """Let the agent sign in again (with their password); False when already active."""
    if agent.active:
        return False
    agent.active = True
    return True


@dataclass(frozen=True)
class AgentSummary:
    id: int
    email: str
    name: str | None
    active: bool
    live_tokens: int
    created_at: datetime
    role: str = "agent"
    available: bool = True
    max_open: int | None = None  # their own cap; None: ASSIGNMENT_MAX_OPEN
    routes: tuple[str, ...] = ()  # the routes (skills) automatic assignment gives them tickets of

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def list_agents(session: Session) -> list[AgentSummary]:
    """Every agent by e-mail, with how many unrevoked tokens each holds and their routes (two queries)."""
    live = func.count(ApiToken.id)
    rows = session.execute(
        select(Agent, live)
        .outerjoin(ApiToken, (ApiToken.agent_id == Agent.id) & ApiToken.revoked_at.is_(None))
        .group_by(Agent.id)
        .order_by(Agent.email)
    ).all()
    routes: dict[int, set[str]] = {}
    for agent_id, route in session.execute(select(AgentRoute.agent_id, AgentRoute.route)):
        routes.setdefault(agent_id, set()).add(route)
    return [AgentSummary(agent.id, agent.email, agent.name, agent.active, int(count), agent.created_at, agent.role,
                         agent.available, agent.max_open, tuple(r for r in ROUTES if r in routes.get(agent.id, ())))
            for agent, count in rows]  # fmt: skip


def display_name(agent: Agent | None) -> str:
    if agent is None:
        return "—"
    return agent.name or agent.email


# --- API tokens ------------------------------------------------------------------------------------------------

def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, agent: Agent) -> str:
    """A new bearer token for the agent; only its SHA-256 is stored, so this is the one time it can be read.

    256 random bits make a slow hash pointless: SHA-256 lets each request find its token with one indexed look-up.
    """
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(agent_id=agent.id, token_hash=_token_hash(token)))
    session.flush()
    return token


def verify_token(session: Session, token: str) -> Agent | None:
    """The active agent a valid, unrevoked token belongs to, else None; records when it was last used."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = session.execute(
        select(ApiToken, Agent)
        .join(Agent, Agent.id == ApiToken.agent_id)
        .where(ApiToken.token_hash == _token_hash(token))
    ).first()
    if row is None:
        return None
    api_token, agent = row
    if api_token.revoked_at is not None or not agent.active:
        return None
    now = utcnow()
    if api_token.last_used_at is None or now - api_token.last_used_at > TOKEN_TOUCH_INTERVAL:
        api_token.last_used_at = now
    return agent


def revoke_token(session: Session, token: str) -> bool:
    """Revoke one token (given as issued); False when it is unknown or already revoked."""
    api_token = session.scalars(select(ApiToken).where(ApiToken.token_hash == _token_hash(token))).first()
    if api_token is None or api_token.revoked_at is not None:
        return False
    api_token.revoked_at = utcnow()
    return True


@dataclass(frozen=True)
class TokenSummary:
    """A live token as an admin sees it: never the token, only when it was made and last used."""

    id: int
    agent_id: int
    created_at: datetime
    last_used_at: datetime | None


def live_tokens(session: Session) -> dict[int, list[TokenSummary]]:
    """Every unrevoked token, by agent id, oldest first."""
    tokens: dict[int, list[TokenSummary]] = {}
    for row in session.scalars(select(ApiToken).where(ApiToken.revoked_at.is_(None)).order_by(ApiToken.id)):
        tokens.setdefault(row.agent_id, []).append(TokenSummary(row.id, row.agent_id, row.created_at,
                                                                row.last_used_at))
    return tokens


def revoke_token_id(session: Session, agent: Agent, token_id: int) -> bool:
    """Revoke one of the agent's tokens by its id (the Agents page cannot know the token itself); False when it is
    not theirs, unknown or already revoked."""
    api_token = session.get(ApiToken, token_id)
    if api_token is None or api_token.agent_id != agent.id or api_token.revoked_at is not None:
        return False
    api_token.revoked_at = utcnow()
    return True


def revoke_tokens(session: Session, agent: Agent) -> int:
    """Revoke every token of an agent (someone left, a laptop was lost); return how many were live."""
    live = list(session.scalars(select(ApiToken).where(ApiToken.agent_id == agent.id, ApiToken.revoked_at.is_(None))))
    now = utcnow()
    for api_token in live:
        api_token.revoked_at = now
    return len(live)


# --- the queues -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Queue:
    key: str
    label: str


QUEUES: tuple[Queue, ...] = (
    Queue("account", "Account"),
    Queue("payment", "Payment"),
    Queue("other", "Other"),
    Queue("review", "Needs review"),
    Queue("all", "All"),
    Queue("mine", "Mine"),
)
QUEUE_KEYS = tuple(q.key for q in QUEUES)
OPEN_STATUSES = ("received", "queued", "routed", "needs_review", "failed")
# The model was unsure, or could not route at all: a person decides.
REVIEW_STATUSES = ("needs_review", "failed")


def _queue_conditions(queue: str, agent_id: int | None) -> list[ColumnElement[bool]]:
    """What a queue holds. A route's queue holds the open tickets routed there with confidence; the model's
    doubtful ones wait in Needs review until a person confirms or changes their route; All is every open ticket,
    including those not routed yet."""
    if queue in ("account", "payment", "other"):
        return [Ticket.status == "routed", Ticket.route == queue.capitalize()]
    if queue == "review":
        return [Ticket.status.in_(REVIEW_STATUSES)]
    if queue == "all":
        return [Ticket.status.in_(OPEN_STATUSES)]
    if queue == "mine":
        return [Ticket.status.in_(OPEN_STATUSES), Ticket.assigned_agent_id == agent_id]
    raise AgentError(f"unknown queue {queue!r}; one of {', '.join(QUEUE_KEYS)}")


def queue_tickets(session: Session, queue: str, agent_id: int | None = None, limit: int = 100, *,
                  after: Position | None = None, before: Position | None = None) -> list[Ticket]:
    """The queue's tickets, oldest first (the one waiting longest is the next to answer).

    `after` / `before` page by keyset, as core.tickets.list_tickets does for the API (and with its Position): the
    `limit` tickets just after, or just before, a (created_at, id); any depth of queue costs the same."""
    query = select(Ticket).where(*_queue_conditions(queue, agent_id))
    key = tuple_(Ticket.created_at, Ticket.id)
    if after is not None:
        query = query.where(key > tuple_(after.created_at, after.id))
    if before is not None:
        newest_first = query.where(key < tuple_(before.created_at, before.id))
        page = session.scalars(newest_first.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit))
        return list(page)[::-1]
    return list(session.scalars(query.order_by(Ticket.created_at, Ticket.id).limit(limit)))


def queue_counts(session: Session, agent_id: int | None = None) -> dict[str, int]:
    """The number of tickets in every queue, from one GROUP BY over the open tickets."""
    mine = func.sum(case((Ticket.assigned_agent_id == agent_id, 1), else_=0)) if agent_id is not None else None
    columns = [Ticket.status, Ticket.route, func.count()] + ([mine] if mine is not None else [])
    rows = session.execute(
        select(*columns).where(Ticket.status.in_(OPEN_STATUSES)).group_by(Ticket.status, Ticket.route)
    ).all()
    counts = dict.fromkeys(QUEUE_KEYS, 0)
    for row in rows:
        status, route, count = row[0], row[1], int(row[2])
        counts["all"] += count
        if status == "routed" and route in ROUTES:
            counts[route.lower()] += count
        if status in REVIEW_STATUSES:
            counts["review"] += count
        if mine is not None:
            counts["mine"] += int(row[3] or 0)
    return counts


def agent_names(session: Session) -> dict[int, str]:
    """Every agent's display name by id (a support team is tens of people, not thousands)."""
    return {agent.id: display_name(agent) for agent in session.scalars(select(Agent))}


# --- ticket actions ---------------------------------------------------------------------------------------------

def model_route(ticket: Ticket) -> str | None:
    """The route the model chose (its highest score), whatever a person has set since."""
    scores = ticket.scores
    if scores is None:
        return None
    return max(scores, key=lambda route: scores[route])


def _locked_ticket(session: Session, ticket_id: uuid.UUID) -> Ticket:
    """The ticket, locked on PostgreSQL until commit so two agents acting at once are applied one after the other
    (SQLite takes one writer at a time anyway)."""
    ticket = session.scalars(
        select(Ticket).where(Ticket.id == ticket_id).with_for_update().execution_options(populate_existing=True)
    ).first()
    if ticket is None:
        raise TicketNotFound(f"no ticket {ticket_id}")
    return ticket


def _event(session: Session, ticket: Ticket, kind: str, detail: str | None, agent_id: int | None) -> TicketEvent:
    event = TicketEvent(ticket_id=ticket.id, kind=kind, detail=detail, agent_id=agent_id, created_at=utcnow())
    session.add(event)
    return event


def model_category(session: Session, ticket: Ticket) -> str | None:
    """The category the model gave the ticket, whatever a person has set since. Every Correction records it, so
    the first one holds it; without a correction, it is the ticket's own."""
    kept = session.execute(
        select(Correction.predicted_category, Correction.corrected_category)
        .where(Correction.ticket_id == ticket.id).order_by(Correction.created_at, Correction.id)
    ).all()
    if not kept:
        return ticket.fine_category
    if kept[0].predicted_category is not None:
        return kept[0].predicted_category
    # Corrections from before categories: the ticket's own, unless a person has set it since.
    return None if any(row.corrected_category is not None for row in kept) else ticket.fine_category


def check_category(category: str, route: str, known: Catalog) -> None:
    """AgentError unless the category is a known one and belongs to the route (where the route map says)."""
    if category not in known.routes:
        raise AgentError(f"unknown category {category!r}; one of {', '.join(known.names)}")
    its_route = known.route_of(category)
    if its_route is not None and its_route != route:
        raise AgentError(f"category {category!r} belongs to the {its_route} route, not {route}")


def reroute(session: Session, ticket_id: uuid.UUID, route: str, agent_id: int | None, category: str | None = None,
            *, known: Catalog | None = None) -> tuple[Ticket, bool]:
    """Set the ticket's route, and optionally its fine category, by hand; return (ticket, whether anything changed).

    A change of route or of category, and the confirmation of a ticket the model left for review, store a
    Correction (the model's own route and category, the agent's, the model version): the training signal for the
    next model. The category must be one the model knows (`known`: core.categories.catalog, from the configured
    corpus and route map; None reads the defaults) and belong to the route. A route change without a category
    drops a category of another route, so suggestions follow the new route. The ticket becomes `routed` (unless
    already resolved), so a worker that has not classified it yet leaves it alone. Setting what a routed ticket
    already has changes nothing and stores nothing.
    """
    if route not in ROUTES:
        raise AgentError(f"unknown route {route!r}; one of {', '.join(ROUTES)}")
    if category is not None:
        known = known or catalog(session)
        check_category(category, route, known)
    ticket = _locked_ticket(session, ticket_id)
    previous = ticket.route
    previous_category = ticket.fine_category
    reviewing = ticket.status not in ("routed", "resolved")
    recategorised = category is not None and category != previous_category
    if previous == route and not reviewing and not recategorised:
        return ticket, False
    now = utcnow()
    predicted = model_route(ticket)
    session.add(Correction(
        ticket_id=ticket.id, predicted_route=predicted or previous, corrected_route=route,
        predicted_category=model_category(session, ticket), corrected_category=category,
        model_version=ticket.model_version, agent_id=agent_id, created_at=now,
    ))  # fmt: skip
    if predicted is not None and predicted != route:  # the model was overruled (a confirmation is no override)
        version = ticket.model_version
        metrics.on_commit(session, lambda: metrics.route_overridden(predicted, route, version))
    if previous != route:
        _event(session, ticket, "rerouted", f"{previous or 'none'} → {route}", agent_id)
    elif reviewing:
        _event(session, ticket, "reviewed", f"{route} confirmed", agent_id)
    if recategorised:
        _event(session, ticket, "recategorised", f"{previous_category or 'none'} → {category}", agent_id)
        ticket.fine_category, ticket.fine_confidence = category, None  # a person's choice has no model score
    elif category is None and previous != route and previous_category is not None:
        known = known or catalog(session)
        if known.route_of(previous_category) not in (None, route):
            ticket.fine_category, ticket.fine_confidence = None, None
    ticket.route = route
    if ticket.status != "resolved":
        ticket.status = "routed"
    if ticket.routed_at is None:
        ticket.routed_at = now
    if previous != route:
        webhooks.emit(session, webhooks.TICKET_REROUTED, ticket, {"previous_route": previous, "agent_id": agent_id})
    return ticket, True


def resolve(session: Session, ticket_id: uuid.UUID, agent_id: int | None) -> tuple[Ticket, bool]:
    """Close the ticket; resolving a resolved ticket changes nothing (a double click, a retried API call)."""
    ticket = _locked_ticket(session, ticket_id)
    if ticket.status == "resolved":
        return ticket, False
    ticket.status = "resolved"
    ticket.resolved_at = utcnow()
    _event(session, ticket, "resolved", None, agent_id)
    webhooks.emit(session, webhooks.TICKET_RESOLVED, ticket, {"agent_id": agent_id})
    from core.assignment import after_resolve  # the freed slot takes the next waiting ticket (core/assignment.py)

    after_resolve(session, ticket)
    return ticket, True


def assign(session: Session, ticket_id: uuid.UUID, agent_id: int) -> tuple[Ticket, bool]:
    """Make the agent the ticket's owner, taking it over from whoever had it (the history says from whom)."""
    ticket = _locked_ticket(session, ticket_id)
    if ticket.assigned_agent_id == agent_id:
        return ticket, False
    previous = ticket.assigned_agent_id
    detail = None
    if previous is not None:
        detail = f"taken over from {agent_names(session).get(previous, 'a former agent')}"
    ticket.assigned_agent_id = agent_id
    _event(session, ticket, "assigned", detail, agent_id)
    webhooks.emit(session, webhooks.TICKET_ASSIGNED, ticket,
                  {"agent_id": agent_id, "previous_agent_id": previous, "reason": "by hand"})
    return ticket, True


# --- history ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    kind: str
    text: str
    agent: str | None = None


_EVENT_TEXT = {
    "rerouted": "Re-routed", "reviewed": "Reviewed", "recategorised": "Category", "resolved": "Resolved",
    "assigned": "Assigned", "reopened": "Reopened", "attachment_dropped": "Attachment not kept",
}


def history(session: Session, ticket: Ticket) -> list[HistoryEntry]:
    """The ticket's life, oldest first: received, routed by the model (from the ticket's own columns; the worker
    writes no event), then what agents did (TicketEvent rows)."""
    entries = [HistoryEntry(ticket.created_at, "received", f"Received via {ticket.channel}")]
    predicted = model_route(ticket)
    if ticket.model_version is not None and ticket.routed_at is not None and predicted is not None:
        confidence = (ticket.scores or {}).get(predicted, 0.0)
        # A rule's route is the rule's (its own "rule" event says so); the model's line then only says what it said.
        verb = "Routed by model" if ticket.rule_id is None else "Model"
        entries.append(HistoryEntry(
            ticket.routed_at, "routed", f"{verb} {ticket.model_version}: {predicted} ({confidence:.0%})",
        ))  # fmt: skip
    names = agent_names(session)
    events = session.scalars(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.created_at, TicketEvent.id)
    )
    for event in events:
        text = _EVENT_TEXT.get(event.kind, event.kind.capitalize())
        if event.detail:
            text = f"{text}: {event.detail}"
        agent = names.get(event.agent_id) if event.agent_id is not None else None
        entries.append(HistoryEntry(event.created_at, event.kind, text, agent))
    return sorted(entries, key=lambda entry: entry.at)
