"""Rules before the model in a real classify batch (worker.classify_tasks.route_batch, a real trained model, SQLite
and PostgreSQL): a matching rule routes the ticket and the model's own prediction is kept beside it, a rule's
assignee gets the ticket, the rest is routed and assigned as without rules, and the webhooks still fire."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from core import agents, assignment, rules, webhooks
from core.artifacts import resolve
from core.config import AssignmentSettings, Settings
from core.orm import Agent, Ticket, TicketEvent, WebhookDelivery
from core.rules import RuleSpec
from core.runtime import Runtime
from tests.support.backends import BACKENDS

LEAST = AssignmentSettings(mode="least_loaded", max_open=10, untouched_minutes=30)
REFUND = "二重に請求されています。返金してください"  # the model says Payment
PASSWORD = "パスワードを忘れてログインできません"  # the model says Account


@pytest.fixture(scope="module")
def predictor(trained_model_dir: Path):  # type: ignore[no-untyped-def]
    from serving.predictor import Predictor

    return Predictor(resolve(None, trained_model_dir))


@pytest.fixture(params=BACKENDS)
def runtime(request: pytest.FixtureRequest, make_settings: Callable[..., Settings]) -> Iterator[Runtime]:
    url = str(request.getfixturevalue(f"{request.param}_url"))
    built = Runtime.build(make_settings(database_url=url, assignment=LEAST))
    assignment.install(built)  # as the worker does: routing assigns in the same transaction
    yield built
    built.dispose()


def _ticket(runtime: Runtime, body: str, **fields: object) -> str:
    with runtime.unit_of_work() as session:
        ticket = Ticket(channel=fields.pop("channel", "email"), body=body, status="queued", **fields)
        session.add(ticket)
        session.flush()
        return str(ticket.id)


def _agent(runtime: Runtime, name: str, *routes: str) -> int:
    with runtime.unit_of_work() as session:
        agent = Agent(email=f"{name}@example.jp", name=name.capitalize(), password_hash="-")
        session.add(agent)
        session.flush()
        assignment.set_routes(session, agent, routes)
        return agent.id


def _rule(runtime: Runtime, spec: RuleSpec) -> int:
    with runtime.unit_of_work() as session:
        return rules.create_rule(session, spec, None).id


def _route(runtime: Runtime, predictor, ids: list[str], thresholds: dict[str, float] | None = None):  # type: ignore[no-untyped-def]
    from worker.classify_tasks import route_batch

    return route_batch(runtime, predictor, ids, thresholds or {})


def _get(runtime: Runtime, ticket_id: str) -> Ticket:
    with runtime.sessions() as session:
        ticket = session.get(Ticket, uuid.UUID(ticket_id))
        assert ticket is not None
        return ticket


def _events(runtime: Runtime, ticket_id: str) -> list[tuple[str, str | None, int | None]]:
    with runtime.sessions() as session:
        return [(e.kind, e.detail, e.agent_id) for e in session.scalars(
            select(TicketEvent).where(TicketEvent.ticket_id == uuid.UUID(ticket_id))
            .order_by(TicketEvent.created_at, TicketEvent.id))]  # fmt: skip


def test_a_rule_routes_its_ticket_and_the_models_prediction_is_kept_beside_it(runtime: Runtime, predictor) -> None:  # type: ignore[no-untyped-def]
    rule_id = _rule(runtime, RuleSpec(name="Refunds to Other", body_contains="返金", route="Other"))
    with runtime.unit_of_work() as session:  # v2, so the ticket must record the version, not just the rule
        rules.update_rule(session, rule_id, RuleSpec(name="Refunds", body_contains="ﾍﾝｷﾝ", route="Other"), None)
        rules.update_rule(session, rule_id, RuleSpec(name="Refunds", body_contains="返金", route="Other"), None)
    matched, unmatched = _ticket(runtime, REFUND), _ticket(runtime, PASSWORD)
    # Thresholds nobody reaches: without the rule both would wait for review.
    outcome = _route(runtime, predictor, [matched, unmatched], {"Account": 1.01, "Payment": 1.01, "Other": 1.01})
    assert outcome.routed == [matched] and outcome.needs_review == [unmatched]

    ticket = _get(runtime, matched)
    assert (ticket.status, ticket.route, ticket.model_route, ticket.review_reason) == ("routed", "Other", "Payment",
                                                                                       None)
    assert (ticket.rule_id, ticket.rule_version) == (rule_id, 3)
    scores = ticket.scores
    assert scores is not None and ticket.score_payment is not None
    assert ticket.confidence == pytest.approx(ticket.score_payment) and ticket.confidence == max(scores.values())
    assert ticket.fine_category is not None and ticket.fine_category.startswith("Payment - ")  # the model's own
    assert ticket.model_version == predictor.version and ticket.attempts == 1
    percent = round(ticket.score_payment * 100)
    assert _events(runtime, matched) == [("rule", f"Routed by rule «Refunds» v3; the model said Payment {percent} %",
                                          None)]  # fmt: skip
    with runtime.sessions() as session:
        texts = [entry.text for entry in agents.history(session, ticket)]
    assert f"Rule: Routed by rule «Refunds» v3; the model said Payment {percent} %" in texts

    other = _get(runtime, unmatched)
    assert (other.status, other.route, other.model_route, other.rule_id, other.rule_version, other.review_reason) == (
        "needs_review", "Account", "Account", None, None, "low_confidence")
    assert _events(runtime, unmatched) == []


def test_a_deactivated_rule_is_skipped_and_the_next_one_in_order_applies(runtime: Runtime, predictor) -> None:  # type: ignore[no-untyped-def]
    first = _rule(runtime, RuleSpec(name="email to Other", channel="email", route="Other"))
    second = _rule(runtime, RuleSpec(name="email to Account", channel="email", route="Account"))
    web = _ticket(runtime, REFUND, channel="web")
    mail = _ticket(runtime, REFUND)
    _route(runtime, predictor, [web, mail])
    assert (_get(runtime, web).route, _get(runtime, web).rule_id) == ("Payment", None)
    assert (_get(runtime, mail).route, _get(runtime, mail).rule_id) == ("Other", first)
    with runtime.unit_of_work() as session:
        rules.set_active(session, first, False, None)
    later = _ticket(runtime, REFUND)
    _route(runtime, predictor, [later])
    assert (_get(runtime, later).route, _get(runtime, later).rule_id, _get(runtime, later).model_route) == (
        "Account", second, "Payment")


def test_a_rules_assignee_gets_the_ticket_and_the_rest_is_assigned_automatically(runtime: Runtime,
                                                                                 predictor) -> None:  # type: ignore[no-untyped-def]
    vip_agent = _agent(runtime, "mei")  # works in no route: only the rule gives her tickets
    payment_agent = _agent(runtime, "ren", "Payment", "Account")
    with runtime.unit_of_work() as session:
        subscription = webhooks.add_subscription(session, "https://helpdesk.example.com/hook",
                                                 ["ticket.routed", "ticket.assigned"]).id
    _rule(runtime, RuleSpec(name="VIP", sender="@vip.example", assignee_agent_id=vip_agent))
    vip = _ticket(runtime, REFUND, customer_email="Boss@Mail.VIP.example")
    plain = _ticket(runtime, REFUND, customer_email="someone@example.jp")
    outcome = _route(runtime, predictor, [vip, plain], {"Account": 1.01, "Payment": 1.01, "Other": 1.01})
    assert outcome.routed == [vip] and outcome.needs_review == [plain]  # a rule is no review, even without a route

    ticket = _get(runtime, vip)
    assert (ticket.status, ticket.route, ticket.model_route) == ("routed", "Payment", "Payment")  # no route: model's
    assert (ticket.assigned_agent_id, ticket.assigned_at) == (vip_agent, None)  # never returned as untouched
    kinds = _events(runtime, vip)
    assert kinds[0][0] == "rule" and (kinds[0][1] or "").startswith("Matched rule «VIP» v1; the model said Payment ")
    assert kinds[1] == ("assigned", "by rule «VIP» v1", vip_agent)
    assert _get(runtime, plain).assigned_agent_id is None  # needs review: nobody is assigned, as before rules

    with runtime.sessions() as session:
        deliveries = session.scalars(select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription)
                                     .order_by(WebhookDelivery.id)).all()  # fmt: skip
    by_ticket = [(d.event, str(d.ticket_id)) for d in deliveries]
    assert ("ticket.routed", vip) in by_ticket and ("ticket.assigned", vip) in by_ticket
    assert ("ticket.routed", plain) in by_ticket
    assigned = json.loads(next(d.payload for d in deliveries if d.event == "ticket.assigned"))
    assert assigned["data"]["agent_id"] == vip_agent and assigned["data"]["reason"] == "by rule «VIP» v1"

    # The rule's assignee deactivated since: the ticket is assigned automatically, and its history says why.
    with runtime.unit_of_work() as session:
        agent = session.get(Agent, vip_agent)
        assert agent is not None
        agent.active = False
    again = _ticket(runtime, REFUND, customer_email="cfo@vip.example")
    _route(runtime, predictor, [again])
    assert _get(runtime, again).assigned_agent_id == payment_agent
    details = _events(runtime, again)
    assert details[0][0] == "rule" and "no longer active" in (details[0][1] or "")
    assert details[1][0] == "assigned" and (details[1][1] or "").startswith("auto: least loaded")


def test_a_recipient_rule_matches_the_address_the_first_mail_was_sent_to(runtime: Runtime, predictor) -> None:  # type: ignore[no-untyped-def]
    rule_id = _rule(runtime, RuleSpec(name="Billing inbox", recipient="billing@support.example", route="Payment"))
    billing = _ticket(runtime, PASSWORD, recipient="billing@support.example")
    general = _ticket(runtime, PASSWORD, recipient="help@support.example")
    web = _ticket(runtime, PASSWORD, channel="web")
    _route(runtime, predictor, [billing, general, web])
    assert (_get(runtime, billing).route, _get(runtime, billing).rule_id) == ("Payment", rule_id)
    assert (_get(runtime, general).route, _get(runtime, general).rule_id) == ("Account", None)
    assert (_get(runtime, web).route, _get(runtime, web).rule_id) == ("Account", None)
