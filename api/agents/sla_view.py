"""The SLA clocks (core.sla) on the agents' pages: the queue's SLA column ("45 min left", "overdue 12 min") and the
two clocks on a ticket's page. Template globals, so the queue and ticket views need no change of their own."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Flask
from flask_babel import gettext as _

from api.services import current_runtime
from core import sla
from core.orm import Ticket


def sla_clocks(ticket: Ticket, now: datetime) -> sla.TicketClocks:
    return sla.ticket_clocks(current_runtime().settings.sla, ticket, now)


def duration(delta: timedelta, *, late: bool = False) -> str:
    """"45 min", "3 h 05 min", "2 d 4 h": whole minutes, as precise as a deadline needs; `late` for time overdue,
    where ten seconds late is "1 min", never "0 min"."""
    minutes = int(abs(delta.total_seconds()) // 60)
    if late:
        minutes = max(minutes, 1)
    if minutes < 60:
        return _("%(minutes)d min", minutes=minutes)
    if minutes < 24 * 60:
        return _("%(hours)d h %(minutes)02d min", hours=minutes // 60, minutes=minutes % 60)
    return _("%(days)d d %(hours)d h", days=minutes // (24 * 60), hours=minutes % (24 * 60) // 60)


def sla_left(clock: sla.Clock) -> str:
    """What the clock says in words: time left or overdue while it runs; how early or late it stopped."""
    if clock.running:
        if clock.left < timedelta(0):
            return _("overdue %(time)s", time=duration(clock.left, late=True))
        return _("%(time)s left", time=duration(clock.left))
    if clock.state == sla.MET:
        return _("met, %(time)s to spare", time=duration(clock.left))
    return _("%(time)s late", time=duration(clock.left, late=True))


def sla_kind(clock: sla.Clock) -> str:
    return _("first response") if clock.kind == sla.FIRST_RESPONSE else _("resolution")


def sla_state(clock: sla.Clock) -> str:
    return {sla.OK: _("on time"), sla.DUE_SOON: _("due soon"), sla.BREACHED: _("breached"),
            sla.MET: _("met")}[clock.state]


def init_app(app: Flask) -> None:
    app.add_template_global(sla_clocks, "sla_clocks")
    app.add_template_filter(sla_left, "sla_left")
    app.add_template_filter(sla_kind, "sla_kind")
    app.add_template_filter(sla_state, "sla_state")
