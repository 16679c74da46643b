"""An agent's reply or internal note on a ticket, shared by the ticket page (api.agents.web) and the JSON API
(api.agents.api): store it in the request's unit of work, then, once committed, publish the reply's mail.

The mail is sent by the mail worker (worker.mail_tasks), never by the request: a mail server that is slow or down
costs the agent nothing, and the reply waits in the outbox until it can go.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import structlog

from api.problems import raise_problem
from api.services import after_commit, current_runtime, get_session, unit_of_work
from core import outbox
from core.conversations import entries
from core.mail_queue import publish_mail
from core.orm import Message, Ticket

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplyIn:
    ticket_id: uuid.UUID
    agent_id: int | None
    body: str


NoteIn = ReplyIn


def _ticket(ticket_id: uuid.UUID) -> Ticket:
    ticket = get_session().get(Ticket, ticket_id)
    if ticket is None:
        raise_problem(404, "No ticket with this id.")
    return ticket


def send_reply(reply: ReplyIn) -> Message:
    """Queue the reply (404 no ticket, 409 no customer address); its mail is published once committed."""
    runtime = current_runtime()
    with unit_of_work() as session:
        ticket = _ticket(reply.ticket_id)
        try:
            message = outbox.queue_reply(session, ticket, reply.agent_id, _text(reply.body), runtime.settings.mail)
        except outbox.NoRecipient:
            raise_problem(409, "This ticket has no customer e-mail address: a reply cannot be sent. "
                               "Add an internal note instead.", title="No recipient")
        message_id = message.id
    # After the request's commit, not this block's end: under agents_only / login_required it is not the outermost.
    after_commit(lambda: publish_mail(runtime, [message_id]))
    with structlog.contextvars.bound_contextvars(ticket_id=str(reply.ticket_id)):
        log.info("agent %s replied (mail %s queued)", reply.agent_id, message_id)
    return message


def add_note(note: NoteIn) -> Message:
    with unit_of_work() as session:
        message = outbox.add_note(session, _ticket(note.ticket_id), note.agent_id, _text(note.body))
    with structlog.contextvars.bound_contextvars(ticket_id=str(note.ticket_id)):
        log.info("agent %s added a note", note.agent_id)
    return message


def timeline(ticket_id: uuid.UUID) -> list[Message]:
    """The conversation after the ticket's first message, oldest first (core.conversations.entries)."""
    return entries(get_session(), ticket_id)


def _text(body: str) -> str:
    """Line ends as a browser's textarea sends them (CRLF) become plain newlines; trailing blanks go."""
    return body.replace("\r\n", "\n").replace("\r", "\n").rstrip()
