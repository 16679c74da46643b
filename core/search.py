"""Finding tickets: by reference, by the customer's address, or by words of their text, Japanese included.

Japanese is written without spaces, so word-based full-text search (PostgreSQL's `simple`/`english`
configurations, SQLite's default FTS5 tokenizer) finds nothing inside a sentence such as 「返金してください」. Both
databases instead index character trigrams, which match any substring of three characters or more:

- PostgreSQL: the `pg_trgm` extension, GIN indexes on subject, body and customer_email; `ILIKE '%term%'` uses them.
- SQLite (embedded mode): an FTS5 table with the `trigram` tokenizer over subject and body, kept by triggers.

A term shorter than three characters (a two-kanji word like 返金 is common) cannot use a trigram index; it is
matched with LIKE on the table itself. That scans, which the embedded mode's volumes afford; on PostgreSQL the
scan runs inside the same query, bounded by the page size.

The schema objects are made by migration 0012_search and are not in core/orm.py's metadata (they exist on one
dialect each); is_search_object names them so that Alembic's comparison leaves them alone (migrations/env.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, or_, select, text, tuple_
from sqlalchemy.orm import Session

from core.orm import Ticket
from core.tickets import Position

# Made by migration 0012_search on one dialect each: not declared in core/orm.py.
SEARCH_INDEXES = frozenset({"ix_tickets_subject_trgm", "ix_tickets_body_trgm", "ix_tickets_customer_email_trgm"})
FTS_TABLE = "tickets_fts"


def is_search_object(name: str | None) -> bool:
    """One of the search's own indexes or tables (the FTS5 table and its shadow tables, tickets_fts_*)."""
    return bool(name) and (name in SEARCH_INDEXES or name == FTS_TABLE or str(name).startswith(FTS_TABLE + "_"))


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Alembic's comparison (autogenerate, tests) leaves the search's own objects alone: they are in the database
    only, on one dialect each."""
    return not (reflected and compare_to is None and is_search_object(name))


QUERY_MAX = 200  # characters of a search: more is not a search but a paste
TERMS_MAX = 8
TRIGRAM = 3
REFERENCE = re.compile(r"^\[?(T-[0-9A-Z]{8})\]?$", re.IGNORECASE)


class SearchError(ValueError):
    """A search that cannot be run as typed (empty, too long): a 4xx for the caller."""


@dataclass(frozen=True)
class Search:
    """A parsed search: an exact reference, an address (or part of one), or text terms that must all match."""

    reference: str | None = None
    email: str | None = None
    terms: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: str) -> Search:
        query = " ".join(raw.split())  # full-width spaces are whitespace to str.split, too
        if not query:
            raise SearchError("the search is empty")
        if len(query) > QUERY_MAX:
            raise SearchError(f"the search is longer than {QUERY_MAX} characters")
        if match := REFERENCE.match(query):
            return cls(reference=match.group(1).upper())
        if "@" in query and " " not in query:
            return cls(email=query.lower())
        terms = tuple(dict.fromkeys(query.split(" ")))  # repeated words add nothing
        if len(terms) > TERMS_MAX:
            raise SearchError(f"a search has at most {TERMS_MAX} words")
        return cls(terms=terms)


def _like(term: str) -> str:
    """A LIKE pattern matching `term` anywhere, its own wildcards taken literally (escape character `\\`)."""
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _fts_phrase(term: str) -> str:
    """An FTS5 query matching `term` as one phrase (a trigram substring match), its quotes doubled."""
    return '"' + term.replace('"', '""') + '"'


def _term_matches(session: Session, term: str, number: int) -> ColumnElement[bool]:
    """A word of the search, found in the subject, the body, or the customer's name or address."""
    pattern = _like(term)
    who = (Ticket.customer_email.ilike(pattern, escape="\\"), Ticket.customer_name.ilike(pattern, escape="\\"))
    if session.get_bind().dialect.name == "sqlite" and len(term) >= TRIGRAM:
        # The trigram index answers the substring query; case folding is the tokenizer's (case_sensitive 0).
        name = f"fts_{number}"
        text_matches = text(f"tickets.rowid IN (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :{name})")
        return or_(text_matches.bindparams(**{name: _fts_phrase(term)}), *who)
    return or_(Ticket.subject.ilike(pattern, escape="\\"), Ticket.body.ilike(pattern, escape="\\"), *who)


def _where(session: Session, search: Search) -> ColumnElement[bool]:
    if search.reference is not None:
        return Ticket.reference == search.reference
    if search.email is not None:
        return Ticket.customer_email.ilike(_like(search.email), escape="\\")
    return and_(*(_term_matches(session, term, number) for number, term in enumerate(search.terms)))


def search_tickets(
    session: Session,
    search: Search,
    *,
    route: str | None = None,
    status: str | None = None,
    before: Position | None = None,
    limit: int = 50,
) -> tuple[list[Ticket], Position | None]:
    """Newest first, keyset-paginated over the whole table (every status); return (page, position to continue
    before, or None on the last page)."""
    query = select(Ticket).where(_where(session, search))
    if route is not None:
        query = query.where(Ticket.route == route)
    if status is not None:
        query = query.where(Ticket.status == status)
    if before is not None:
        query = query.where(tuple_(Ticket.created_at, Ticket.id) < tuple_(before.created_at, before.id))
    rows = list(session.scalars(query.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit + 1)))
    page = rows[:limit]
    return page, (Position.of(page[-1]) if len(rows) > limit else None)


def customer_tickets(session: Session, ticket: Ticket, limit: int = 20) -> list[Ticket]:
    """The same customer's other tickets, newest first (matched on the address, case-insensitively)."""
    if not ticket.customer_email:
        return []
    return list(session.scalars(
        select(Ticket)
        .where(func.lower(Ticket.customer_email) == ticket.customer_email.lower(), Ticket.id != ticket.id)
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(limit)
    ))
