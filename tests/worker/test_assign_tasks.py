"""worker.assign_tasks and the routing hook, on SQLite and PostgreSQL: the periodic task returns untouched tickets and
assigns what waits; a routing write assigns its routed tickets in the same transaction; beat schedules the pass
unless ASSIGNMENT=off."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from celery import Celery
from sqlalchemy import select

from core import assignment
from core.config import Settings
from core.orm import Agent, Ticket
from core.runtime import Runtime
from core.tickets import NewTicket, store_queued
from tests.support.backends import BACKENDS
from worker import assign_tasks, context
from worker.routing import RoutingOutcome, RoutingPlan, write_routes


@pytest.fixture(params=BACKENDS)
def runtime(request: pytest.FixtureRequest, make_settings: Callable[..., Settings]) -> Iterator[Runtime]:
    url = str(request.getfixturevalue(f"{request.param}_url"))
    built = Runtime.build(make_settings(database_url=url))
    before = context._installed
    context.install(context.WorkerContext(built))  # what worker.classify_app does at start-up
    try:
        yield built
    finally:
        context._installed = before
        built.dispose()


def _agent(runtime: Runtime, *routes: str) -> int:
    with runtime.unit_of_work() as session:
        agent = Agent(email="aoi@example.jp", password_hash="-", active=True)
        session.add(agent)
        session.flush()
        assignment.set_routes(session, agent, routes)
        return agent.id


def _queued(runtime: Runtime) -> uuid.UUID:
    with runtime.unit_of_work() as session:
        ticket, _ = store_queued(session, NewTicket(channel="api", body="カードの請求が二重です"))
        return ticket.id


def _plan(ticket_id: uuid.UUID, status: str = "routed") -> RoutingPlan:
    """What plan_routes would return for one ticket the model put in Payment (no model needed to write it)."""
    return RoutingPlan(RoutingOutcome(routed=[str(ticket_id)]), "20261203-000000-test", params=[{
        "b_id": ticket_id, "b_status": status, "b_route": "Payment", "b_confidence": 0.9, "b_account": 0.05,
        "b_payment": 0.9, "b_other": 0.05}], received_at=[None])  # fmt: skip


def _assignee(runtime: Runtime, ticket_id: uuid.UUID) -> int | None:
    with runtime.sessions() as session:
        return session.scalar(select(Ticket.assigned_agent_id).where(Ticket.id == ticket_id))


def test_the_periodic_task_assigns_what_waits(runtime: Runtime) -> None:
    ticket_id = _queued(runtime)
    with runtime.unit_of_work() as session:
        write_routes(session, _plan(ticket_id))  # no settings installed: routed, left waiting
    assert _assignee(runtime, ticket_id) is None
    aoi = _agent(runtime, "Payment")
    assert assign_tasks.assign_tickets() == {"returned": 0, "assigned": 1}
    assert _assignee(runtime, ticket_id) == aoi
    assert assign_tasks.assign_tickets() == {"returned": 0, "assigned": 0}


def test_a_routing_write_assigns_its_tickets_once_the_worker_installed_the_settings(runtime: Runtime) -> None:
    aoi = _agent(runtime, "Payment")
    assign_tasks._install_settings()  # worker_init, in the worker's parent
    routed, doubtful = _queued(runtime), _queued(runtime)
    with runtime.unit_of_work() as session:
        write_routes(session, _plan(routed))
        write_routes(session, _plan(doubtful, status="needs_review"))
    assert (_assignee(runtime, routed), _assignee(runtime, doubtful)) == (aoi, None)


def test_beat_schedules_the_pass_unless_assignment_is_off(make_settings: Callable[..., Settings]) -> None:
    on, off = Celery(set_as_current=False), Celery(set_as_current=False)
    settings = make_settings()
    assignment.add_assignment_sweep(on, settings)
    assignment.add_assignment_sweep(off, replace(settings, assignment=replace(settings.assignment, mode="off")))
    assert on.conf.beat_schedule["assign-tickets"] == {"task": assign_tasks.assign_tickets.name,
                                                       "schedule": assignment.ASSIGN_EVERY_SECONDS}
    assert "assign-tickets" not in off.conf.beat_schedule
