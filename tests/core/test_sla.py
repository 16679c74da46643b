"""core.sla and core.stats: the SLA settings, the clocks' states at fixed times, the first response recorded by an
agent's reply only, and the dashboard's numbers on a known set of tickets, on real SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from core import outbox, sla
from core.config import ConfigError, MailSettings, Settings, SlaSettings, SmtpServer
from core.db import make_engine, make_session_factory
from core.orm import Correction, Ticket
from core.stats import ALL, WINDOW_DAYS, dashboard
from tests.support.backends import both_backends

NOW = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)  # 12:00 in Asia/Tokyo
TARGETS = SlaSettings()  # Account 60 / 480, Payment 30 / 240, Other 240 / 1440 minutes
MINUTE = timedelta(minutes=1)


# --- settings -----------------------------------------------------------------------------------------------------

def test_the_defaults_and_a_partial_setting() -> None:
    settings = Settings.from_env({"SLA_FIRST_RESPONSE_MINUTES": " Payment=15 ", "SLA_RESOLUTION_MINUTES": ""}).sla
    assert settings.first_response_minutes == {"Account": 60, "Payment": 15, "Other": 240}
    assert settings.resolution_minutes == {"Account": 480, "Payment": 240, "Other": 1440}


@pytest.mark.parametrize(("env", "message"), [
    ({"SLA_FIRST_RESPONSE_MINUTES": "Billing=30"}, "SLA_FIRST_RESPONSE_MINUTES: expected ROUTE=MINUTES"),
    ({"SLA_FIRST_RESPONSE_MINUTES": "Account"}, "SLA_FIRST_RESPONSE_MINUTES: expected ROUTE=MINUTES"),
    ({"SLA_RESOLUTION_MINUTES": "Other=1.5"}, "SLA_RESOLUTION_MINUTES: Other's target must be whole minutes"),
    ({"SLA_RESOLUTION_MINUTES": "Other=0"}, "SLA_RESOLUTION_MINUTES: Other's target must be within 1.."),
    ({"SLA_FIRST_RESPONSE_MINUTES": "Payment=300"}, "Payment's first-response target (300 min) is longer"),
])  # fmt: skip
def test_a_bad_value_stops_the_start_with_one_line_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    assert message in str(raised.value) and "\n" not in str(raised.value)


# --- the clocks ---------------------------------------------------------------------------------------------------

def _clocks(route: str | None, age: timedelta, first_response: timedelta | None = None,
            resolved: timedelta | None = None) -> sla.TicketClocks:
    """The clocks at NOW of a ticket created `age` ago; the other times are after its creation."""
    created = NOW - age
    return sla.clocks_of(TARGETS, route, created, created + first_response if first_response is not None else None,
                         created + resolved if resolved is not None else None, NOW)


@pytest.mark.parametrize(("age_minutes", "state", "left_minutes"), [
    (10, sla.OK, 20),
    (22, sla.OK, 8),  # more than a quarter of 30 minutes left
    (23, sla.DUE_SOON, 7),
    (30, sla.DUE_SOON, 0),  # due now, not past it
    (42, sla.BREACHED, -12),
])  # fmt: skip
def test_a_running_first_response_clock(age_minutes: int, state: str, left_minutes: int) -> None:
    clock = _clocks("Payment", age_minutes * MINUTE).first_response
    due = NOW - age_minutes * MINUTE + 30 * MINUTE
    assert (clock.state, clock.left, clock.due, clock.running) == (state, left_minutes * MINUTE, due, True)


def test_a_stopped_clock_is_met_or_breached_whatever_the_time_now() -> None:
    answered_in_time = _clocks("Account", timedelta(days=3), first_response=59 * MINUTE, resolved=8 * 60 * MINUTE)
    assert (answered_in_time.first_response.state, answered_in_time.first_response.left) == (sla.MET, MINUTE)
    assert answered_in_time.resolution.state == sla.MET and not answered_in_time.breached
    late = _clocks("Account", timedelta(days=3), first_response=61 * MINUTE, resolved=8 * 60 * MINUTE + MINUTE)
    assert (late.first_response.state, late.first_response.left) == (sla.BREACHED, -MINUTE)
    assert late.resolution.state == sla.BREACHED and late.breached


def test_the_clock_that_matters_now_moves_from_first_response_to_resolution() -> None:
    waiting = _clocks("Other", 200 * MINUTE)
    assert waiting.current.kind == sla.FIRST_RESPONSE and waiting.current.state == sla.DUE_SOON  # 40 of 240 left
    answered = _clocks("Other", 200 * MINUTE, first_response=30 * MINUTE)
    assert answered.current.kind == sla.RESOLUTION and answered.current.state == sla.OK


def test_resolving_without_a_reply_stops_the_first_response_clock_too() -> None:
    closed = _clocks("Payment", timedelta(hours=5), resolved=20 * MINUTE)
    assert closed.first_response.stopped_at == NOW - timedelta(hours=5) + 20 * MINUTE
    assert closed.first_response.state == sla.MET
    replied_after_resolving = _clocks("Payment", timedelta(hours=5), first_response=2 * 60 * MINUTE,
                                      resolved=20 * MINUTE)
    assert replied_after_resolving.first_response.state == sla.MET  # the earlier of the two stopped it


def test_a_ticket_without_a_route_is_held_to_the_shortest_targets() -> None:
    assert sla.targets(TARGETS, None) == (30 * MINUTE, 240 * MINUTE)
    assert _clocks(None, 31 * MINUTE).first_response.state == sla.BREACHED


# --- the first response, on both databases -------------------------------------------------------------------

@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        yield session
    engine.dispose()


MAIL = MailSettings(smtp=SmtpServer("smtp", "127.0.0.1", 2525), mail_from="Support <support@example.jp>")


@both_backends
def test_the_first_agent_reply_sets_the_first_response_not_a_note_nor_the_acknowledgement(session: Session) -> None:
    ticket = Ticket(channel="email", body="返金してください", customer_email="taro@example.jp", status="routed",
                    route="Payment")
    session.add(ticket)
    session.flush()
    assert outbox.queue_acknowledgement(session, ticket, MAIL) is not None
    outbox.add_note(session, ticket, None, "返金の可否を確認中")
    session.commit()
    session.expire_all()
    assert session.get(Ticket, ticket.id).first_response_at is None  # type: ignore[union-attr]

    first = outbox.queue_reply(session, ticket, None, "返金いたしました。", MAIL)
    assert ticket.first_response_at == first.created_at
    session.commit()
    outbox.queue_reply(session, ticket, None, "ほかにご不明な点はございますか。", MAIL)
    session.commit()
    session.expire_all()
    stored = session.get(Ticket, ticket.id)
    assert stored is not None and stored.first_response_at == first.created_at  # the second reply changed nothing
    assert sla.ticket_clocks(TARGETS, stored, stored.created_at + timedelta(hours=1)).first_response.state == sla.MET


# --- the dashboard's numbers ----------------------------------------------------------------------------------------

def _add(session: Session, route: str | None, status: str, created: datetime, *,
         first_response: timedelta | None = None, resolved: timedelta | None = None,
         model: str | None = "same") -> Ticket:
    """A ticket created at `created`; `model`: the route the model chose ("same": the ticket's), None: unrouted."""
    chose = route if model == "same" else model
    scores = {r: (0.8 if r == chose else 0.1) for r in ("Account", "Payment", "Other")} if chose else None
    ticket = Ticket(
        channel="web", body="…", route=route, status=status, created_at=created,
        first_response_at=created + first_response if first_response is not None else None,
        resolved_at=created + resolved if resolved is not None else None,
        routed_at=created + timedelta(seconds=1) if scores else None, model_version="v1" if scores else None,
        score_account=scores["Account"] if scores else None, score_payment=scores["Payment"] if scores else None,
        score_other=scores["Other"] if scores else None,
    )  # fmt: skip
    session.add(ticket)
    session.flush()
    return ticket


@both_backends
def test_the_dashboard_numbers_on_a_known_set_of_tickets(session: Session) -> None:
    hour, day = timedelta(hours=1), timedelta(days=1)
    _add(session, "Account", "routed", NOW - 2 * hour, first_response=30 * MINUTE)  # answered in time, open
    wrong = _add(session, "Account", "routed", NOW - 3 * hour, model="Payment")  # unanswered past 60 min
    _add(session, "Account", "resolved", NOW - 10 * hour, first_response=90 * MINUTE, resolved=9 * hour)  # both late
    _add(session, "Payment", "resolved", NOW - day, first_response=10 * MINUTE, resolved=hour)
    confirmed = _add(session, "Payment", "routed", NOW - 20 * MINUTE)  # 10 of 30 minutes left
    _add(session, "Payment", "routed", NOW - 25 * MINUTE)  # due soon, not breached
    _add(session, "Other", "resolved", NOW - 20 * day, resolved=hour)  # before the window: nowhere
    _add(session, "Other", "routed", NOW - 20 * day)  # old but open: both clocks breached
    # The window's first local day starts at 2026-11-20 00:00 JST (15:00 UTC the day before).
    _add(session, "Other", "resolved", datetime(2026, 11, 19, 15, 30, tzinfo=UTC), resolved=30 * MINUTE)
    _add(session, "Other", "resolved", datetime(2026, 11, 19, 14, 30, tzinfo=UTC), resolved=20 * MINUTE)  # the 19th
    _add(session, None, "failed", NOW - hour, model=None)  # no route: the shortest target, 30 minutes
    for corrected in ("Account", "Other"):  # two corrections of one ticket count once
        session.add(Correction(ticket_id=wrong.id, predicted_route="Payment", corrected_route=corrected))
    session.add(Correction(ticket_id=confirmed.id, predicted_route="Payment", corrected_route="Payment"))  # no override
    session.commit()

    stats = dashboard(session, TARGETS, "Asia/Tokyo", NOW)

    assert stats.since == datetime(2026, 11, 19, 15, 0, tzinfo=UTC) and len(stats.days) == WINDOW_DAYS
    per_day = {d.day: (d.received, d.resolved) for d in stats.days if d.received or d.resolved}
    # 2026-12-02 17:00 UTC is the 3rd in Tokyo: the ticket created ten hours before NOW counts there.
    assert per_day == {date(2026, 11, 20): (1, 1), date(2026, 12, 2): (1, 1), date(2026, 12, 3): (6, 1)}
    account, payment, other = stats.routes
    assert (account.route, payment.route, other.route, stats.total.route) == ("Account", "Payment", "Other", ALL)
    assert (account.received, account.resolved, account.open) == (3, 1, 2)
    assert (payment.received, payment.resolved, payment.open) == (3, 1, 2)
    assert (other.received, other.resolved, other.open) == (1, 1, 1)
    assert (stats.total.received, stats.total.resolved, stats.total.open) == (8, 3, 6)
    assert account.first_response_median_minutes == 60  # 30 and 90
    assert payment.first_response_median_minutes == 10
    assert other.first_response_median_minutes is None
    assert (stats.total.first_response_median_minutes, stats.total.first_responses) == (30, 3)  # 10, 30, 90

    def breaches(entry):  # noqa: ANN001, ANN202
        return (entry.first_response_breached_open, entry.first_response_breached_closed,
                entry.resolution_breached_open, entry.resolution_breached_closed)

    assert breaches(account) == (1, 1, 0, 1)
    assert breaches(payment) == (0, 0, 0, 0)
    assert breaches(other) == (1, 0, 1, 0)
    assert breaches(stats.total) == (3, 1, 1, 1)  # + the unrouted one's first response
    assert (account.override.routed, account.override.corrected, account.override_rate) == (2, 0, 0.0)
    assert (payment.override.routed, payment.override.corrected, payment.override_rate) == (4, 1, 0.25)
    assert (other.override.routed, other.override_rate) == (1, 0.0)  # routed on the window's first day
    assert (stats.total.override.routed, stats.total.override.corrected) == (7, 1)
    assert not stats.truncated
