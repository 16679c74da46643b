"""core.assignment on SQLite and PostgreSQL: who gets a routed ticket (least loaded, round robin), who never does
(away, deactivated, another route), the cap, a waiting ticket taken when a slot frees, untouched tickets returned to
the pool, and the reasons in the ticket's history."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from core import agents, assignment, outbox, webhooks
from core.config import AssignmentSettings, ConfigError, Settings
from core.orm import Agent, Ticket, TicketEvent, WebhookDelivery, utcnow
from core.runtime import Runtime
from core.tickets import NewTicket, store_queued
from tests.support.backends import BACKENDS

LEAST = AssignmentSettings(mode="least_loaded", max_open=3, untouched_minutes=30)
ROBIN = replace(LEAST, mode="round_robin")


@pytest.fixture(params=BACKENDS)
def runtime(request: pytest.FixtureRequest, make_settings: Callable[..., Settings]) -> Iterator[Runtime]:
    url = str(request.getfixturevalue(f"{request.param}_url"))
    built = Runtime.build(make_settings(database_url=url, assignment=LEAST))
    yield built
    built.dispose()


def _agent(runtime: Runtime, name: str, *routes: str, available: bool = True, active: bool = True,
           cap: int | None = None) -> int:
    with runtime.unit_of_work() as session:
        # A password hash nobody signs in with: these agents are only assigned to (argon2 would cost seconds).
        agent = Agent(email=f"{name}@example.jp", name=name.capitalize(), password_hash="-", active=active)
        session.add(agent)
        session.flush()
        assignment.set_routes(session, agent, routes)
        assignment.set_available(agent, available)
        assignment.set_cap(agent, cap)
        return agent.id


def _routed(runtime: Runtime, route: str, count: int = 1) -> list[uuid.UUID]:
    """Tickets as the worker leaves them: routed, nobody assigned; created one after the other (oldest first)."""
    ids = []
    for n in range(count):
        with runtime.unit_of_work() as session:
            ticket, _ = store_queued(session, NewTicket(channel="api", body=f"{route} {n}"))
            stored = session.get(Ticket, ticket.id)
            assert stored is not None
            stored.status, stored.route, stored.routed_at = "routed", route, utcnow()
            ids.append(ticket.id)
    return ids


def _assign(runtime: Runtime, settings: AssignmentSettings = LEAST, **options: object) -> list[assignment.Assignment]:
    with runtime.unit_of_work() as session:
        return assignment.assign_waiting(session, settings, **options)  # type: ignore[arg-type]


def _assignees(runtime: Runtime, ticket_ids: list[uuid.UUID]) -> list[int | None]:
    with runtime.sessions() as session:
        rows = session.execute(select(Ticket.id, Ticket.assigned_agent_id).where(Ticket.id.in_(ticket_ids)))
        by_id = {ticket_id: agent_id for ticket_id, agent_id in rows}
    return [by_id[ticket_id] for ticket_id in ticket_ids]


def _assigned_details(runtime: Runtime, ticket_id: uuid.UUID) -> list[tuple[str | None, int | None]]:
    with runtime.sessions() as session:
        return [(row.detail, row.agent_id) for row in session.execute(
            select(TicketEvent.detail, TicketEvent.agent_id)
            .where(TicketEvent.ticket_id == ticket_id, TicketEvent.kind == "assigned")
            .order_by(TicketEvent.created_at, TicketEvent.id))]  # fmt: skip


def _load(runtime: Runtime, agent_id: int) -> int:
    with runtime.sessions() as session:
        return assignment.open_counts(session, [agent_id])[agent_id]


def test_least_loaded_gives_the_ticket_to_the_agent_with_fewest_open(runtime: Runtime) -> None:
    busy = _agent(runtime, "busy", "Payment")
    idle = _agent(runtime, "idle", "Payment", "Account")
    first_two = _routed(runtime, "Payment", 2)
    _assign(runtime, ticket_ids=first_two)
    # Both were free: one each (ties go to whoever waited longest, then the lower id).
    assert sorted(a for a in _assignees(runtime, first_two) if a is not None) == [busy, idle]
    with runtime.unit_of_work() as session:  # idle's ticket resolved: idle has 0 open, busy 1
        for ticket in session.scalars(select(Ticket).where(Ticket.assigned_agent_id == idle)):
            ticket.status = "resolved"
    (ticket_id,) = _routed(runtime, "Payment")
    (done,) = _assign(runtime)
    assert (done.ticket_id, done.agent_id) == (ticket_id, idle)
    assert done.reason == "auto: least loaded (0 open) in Payment"
    assert _assigned_details(runtime, ticket_id) == [("auto: least loaded (0 open) in Payment", idle)]
    with runtime.sessions() as session:
        stored = session.get(Ticket, ticket_id)
        assert stored is not None and stored.assigned_at is not None
        texts = [entry.text for entry in agents.history(session, stored)]
    assert "Assigned: auto: least loaded (0 open) in Payment" in texts


def test_round_robin_takes_turns_across_passes(runtime: Runtime) -> None:
    first, second, third = (_agent(runtime, name, "Account", cap=10) for name in ("aoi", "ren", "sora"))
    tickets = _routed(runtime, "Account", 4)
    done = _assign(runtime, ROBIN)
    assert [a.agent_id for a in done] == [first, second, third, first]  # oldest ticket first
    assert done[3].reason == "auto: round robin (1 open) in Account"
    later = _routed(runtime, "Account", 2)
    assert [a.agent_id for a in _assign(runtime, ROBIN)] == [second, third]  # the turn carries over
    assert _assignees(runtime, tickets + later) == [first, second, third, first, second, third]


def test_away_deactivated_and_other_route_agents_never_get_tickets(runtime: Runtime) -> None:
    _agent(runtime, "away", "Payment", available=False)
    _agent(runtime, "gone", "Payment", active=False)
    _agent(runtime, "other", "Account", "Other")
    _agent(runtime, "none")  # in no route at all
    tickets = _routed(runtime, "Payment", 2)
    assert _assign(runtime) == []
    assert _assignees(runtime, tickets) == [None, None]
    helper = _agent(runtime, "helper", "Payment")
    assert {a.agent_id for a in _assign(runtime)} == {helper}
    assert _assignees(runtime, tickets) == [helper, helper]


def test_no_agent_goes_above_their_cap_and_the_rest_wait(runtime: Runtime) -> None:
    small = _agent(runtime, "small", "Other", cap=1)
    default = _agent(runtime, "default", "Other")  # LEAST.max_open = 3
    tickets = _routed(runtime, "Other", 6)
    assert len(_assign(runtime)) == 4
    assert (_load(runtime, small), _load(runtime, default)) == (1, 3)
    assert _assignees(runtime, tickets)[4:] == [None, None]  # the newest wait
    assert _assign(runtime) == []  # nobody has a free slot: another pass changes nothing
    assert (_load(runtime, small), _load(runtime, default)) == (1, 3)


def test_a_waiting_ticket_is_assigned_when_a_resolve_frees_a_slot(runtime: Runtime) -> None:
    assignment.install(runtime)  # what the API and the worker do: the resolve hook reads these settings
    hana = _agent(runtime, "hana", "Payment", cap=1)
    first, waiting = _routed(runtime, "Payment", 2)
    _assign(runtime)
    assert _assignees(runtime, [first, waiting]) == [hana, None]
    with runtime.unit_of_work() as session:
        agents.resolve(session, first, hana)
    assert _assignees(runtime, [waiting]) == [hana]
    assert _assigned_details(runtime, waiting) == [("auto: least loaded (0 open) in Payment", hana)]


def test_the_periodic_pass_assigns_what_waited_once_an_agent_is_back(runtime: Runtime) -> None:
    ren = _agent(runtime, "ren", "Account", available=False)
    (ticket_id,) = _routed(runtime, "Account")
    with runtime.unit_of_work() as session:
        assert assignment.sweep(session, LEAST).assigned == []
        agent = session.get(Agent, ren)
        assert agent is not None and assignment.set_available(agent, True)
    with runtime.unit_of_work() as session:
        outcome = assignment.sweep(session, LEAST)
    assert [(a.ticket_id, a.agent_id) for a in outcome.assigned] == [(ticket_id, ren)]


def test_an_untouched_ticket_returns_to_the_pool_and_goes_to_someone_else(runtime: Runtime) -> None:
    aoi = _agent(runtime, "aoi", "Payment")
    (ticket_id,) = _routed(runtime, "Payment")
    _assign(runtime)
    assert _assignees(runtime, [ticket_id]) == [aoi]
    sora = _agent(runtime, "sora", "Payment")
    with runtime.unit_of_work() as session:
        assert assignment.sweep(session, LEAST, now=utcnow() + timedelta(minutes=29)).returned == []
    later = utcnow() + timedelta(minutes=31)
    with runtime.unit_of_work() as session:
        outcome = assignment.sweep(session, LEAST, now=later)
    assert [a.ticket_id for a in outcome.returned] == [ticket_id]
    assert [(a.ticket_id, a.agent_id) for a in outcome.assigned] == [(ticket_id, sora)]  # not aoi again
    assert _assigned_details(runtime, ticket_id) == [
        ("auto: least loaded (0 open) in Payment", aoi),
        ("returned to the pool: untouched for 30 min by Aoi", None),
        ("auto: least loaded (0 open) in Payment", sora),
    ]


def test_an_untouched_ticket_goes_back_to_its_assignee_when_nobody_else_can_take_it(runtime: Runtime) -> None:
    aoi = _agent(runtime, "aoi", "Payment")
    (ticket_id,) = _routed(runtime, "Payment")
    _assign(runtime)
    with runtime.unit_of_work() as session:
        outcome = assignment.sweep(session, LEAST, now=utcnow() + timedelta(minutes=31))
    assert [a.agent_id for a in outcome.returned + outcome.assigned] == [None, aoi]
    assert _assignees(runtime, [ticket_id]) == [aoi]


@pytest.mark.parametrize("touch", ["note", "reply", "resolve", "reroute"])
def test_a_ticket_its_assignee_touched_stays_theirs(runtime: Runtime, touch: str) -> None:
    aoi = _agent(runtime, "aoi", "Payment", "Account")
    _agent(runtime, "sora", "Payment", "Account")
    with runtime.unit_of_work() as session:
        ticket, _ = store_queued(session, NewTicket(channel="email", body="返金", customer_email="k@example.com"))
    with runtime.unit_of_work() as session:
        stored = session.get(Ticket, ticket.id)
        assert stored is not None
        stored.status, stored.route = "routed", "Payment"
    (done,) = _assign(runtime)
    assert done.agent_id == aoi  # a tie: the lower id
    with runtime.unit_of_work() as session:
        stored = session.get(Ticket, ticket.id)
        assert stored is not None
        if touch == "note":
            outbox.add_note(session, stored, aoi, "確認中")
        elif touch == "reply":
            outbox.queue_reply(session, stored, aoi, "確認します", runtime.settings.mail)
        elif touch == "resolve":
            agents.resolve(session, ticket.id, aoi)
        else:
            agents.reroute(session, ticket.id, "Account", aoi)
    with runtime.unit_of_work() as session:
        outcome = assignment.sweep(session, LEAST, now=utcnow() + timedelta(minutes=31))
    assert outcome.returned == []
    assert _assignees(runtime, [ticket.id]) == [aoi]


def test_another_agents_action_is_no_touch_of_the_assignee(runtime: Runtime) -> None:
    aoi = _agent(runtime, "aoi", "Payment")
    sora = _agent(runtime, "sora", "Account")
    (ticket_id,) = _routed(runtime, "Payment")
    _assign(runtime)
    with runtime.unit_of_work() as session:
        stored = session.get(Ticket, ticket_id)
        assert stored is not None
        outbox.add_note(session, stored, sora, "Aoi さん、お願いします")
    with runtime.unit_of_work() as session:
        outcome = assignment.sweep(session, LEAST, now=utcnow() + timedelta(minutes=31))
    assert [a.ticket_id for a in outcome.returned] == [ticket_id]
    assert _assignees(runtime, [ticket_id]) == [aoi]  # nobody else in Payment: back to aoi, with a fresh clock


def test_a_ticket_taken_by_hand_is_never_returned(runtime: Runtime) -> None:
    aoi = _agent(runtime, "aoi", "Payment")
    sora = _agent(runtime, "sora", "Payment")
    first, second = _routed(runtime, "Payment", 2)
    with runtime.unit_of_work() as session:
        agents.assign(session, first, aoi)  # an unassigned ticket taken: no assigned_at
    (auto,) = _assign(runtime, ticket_ids=[second])
    with runtime.unit_of_work() as session:  # taken over from its automatic assignee: assigned_at stays theirs
        agents.assign(session, second, aoi if auto.agent_id == sora else sora)
    with runtime.unit_of_work() as session:
        assert assignment.sweep(session, LEAST, now=utcnow() + timedelta(hours=5)).returned == []


def test_every_assignment_emits_the_ticket_assigned_webhook(runtime: Runtime) -> None:
    aoi = _agent(runtime, "aoi", "Other")
    with runtime.unit_of_work() as session:
        webhooks.add_subscription(session, "https://hooks.example.com/a", [webhooks.TICKET_ASSIGNED],
                                  secret="s" * 32)
    (ticket_id,) = _routed(runtime, "Other")
    _assign(runtime)
    with runtime.sessions() as session:
        deliveries = session.scalars(select(WebhookDelivery).where(WebhookDelivery.ticket_id == ticket_id)).all()
    assert [d.event for d in deliveries] == ["ticket.assigned"]
    assert f'"agent_id":{aoi}' in deliveries[0].payload and '"reason":"auto: least loaded' in deliveries[0].payload


def test_off_assigns_nothing_and_needs_review_tickets_are_not_assigned(runtime: Runtime) -> None:
    _agent(runtime, "aoi", "Payment")
    (routed,) = _routed(runtime, "Payment")
    assert _assign(runtime, replace(LEAST, mode="off")) == []
    with runtime.unit_of_work() as session:
        stored = session.get(Ticket, routed)
        assert stored is not None
        stored.status = "needs_review"
    assert _assign(runtime) == []


def test_agent_settings_are_checked(runtime: Runtime) -> None:
    aoi = _agent(runtime, "aoi", "payment", "Other")  # any case
    with runtime.unit_of_work() as session:
        assert assignment.routes_of(session, aoi) == ["Payment", "Other"]
        agent = session.get(Agent, aoi)
        assert agent is not None
        with pytest.raises(assignment.AssignmentError, match="unknown route Billing"):
            assignment.set_routes(session, agent, ["Account", "Billing"])
        with pytest.raises(assignment.AssignmentError, match="at least 1"):
            assignment.set_cap(agent, 0)
        assert assignment.set_routes(session, agent, []) == []


def test_the_settings_come_from_the_environment() -> None:
    built = AssignmentSettings.from_env({"ASSIGNMENT": "round_robin", "ASSIGNMENT_MAX_OPEN": "4",
                                         "ASSIGNMENT_UNTOUCHED_MINUTES": "15"})
    assert built == AssignmentSettings("round_robin", 4, 15)
    assert AssignmentSettings.from_env({}) == AssignmentSettings("least_loaded", 10, 30)
    for env in ({"ASSIGNMENT": "random"}, {"ASSIGNMENT_MAX_OPEN": "0"}, {"ASSIGNMENT_UNTOUCHED_MINUTES": "x"}):
        with pytest.raises(ConfigError):
            AssignmentSettings.from_env(env)
