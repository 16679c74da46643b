"""core.rules: matching (NFKC and case folding, domains and their subdomains, every condition at once, the order,
inactive rules skipped) and, on SQLite and PostgreSQL, saving (validation, versions with their snapshots and who
saved them, moving, deactivating without deleting)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import func, select

from core import rules
from core.config import Settings
from core.orm import Agent, Rule, RuleVersion
from core.rules import Facts, RuleError, RuleSpec
from core.runtime import Runtime
from tests.support.backends import BACKENDS


def _draft(**fields: object) -> RuleSpec:
    return RuleSpec(name="draft", route="Payment", **fields)  # type: ignore[arg-type]


def _matches(spec: RuleSpec, **facts: object) -> bool:
    return rules.matches(spec, Facts(**{"channel": "email", **facts}))  # type: ignore[arg-type]


# --- matching (no database) -------------------------------------------------------------------------------------

def test_contains_folds_case_and_width_both_ways() -> None:
    assert _matches(_draft(body_contains="visa"), body="ＶＩＳＡカードが使えません")  # full-width in the ticket
    assert _matches(_draft(body_contains="ＶＩＳＡ"), body="my Visa card was declined")  # full-width in the rule
    assert _matches(_draft(subject_contains="カード"), subject="ｶｰﾄﾞの請求について")  # half-width kana
    assert _matches(_draft(subject_contains="ｶｰﾄﾞ"), subject="カードの請求")
    assert _matches(_draft(subject_contains="STRASSE"), subject="Straße")  # casefold, not just lower()
    assert not _matches(_draft(body_contains="visa"), body="mastercard")
    assert not _matches(_draft(subject_contains="カード"), subject=None, body="カード")  # the subject, not the body


def test_sender_address_is_exact_and_a_domain_takes_its_subdomains_only() -> None:
    address = _draft(sender="billing@example.com")
    assert _matches(address, sender="Billing@Example.COM")
    assert not _matches(address, sender="other@example.com")
    assert not _matches(address, sender=None)
    domain = _draft(sender="@example.com")
    for sender in ("a@example.com", "A@EXAMPLE.COM", "a@mail.example.com", "a@eu.mail.example.com"):
        assert _matches(domain, sender=sender), sender
    for sender in ("a@badexample.com", "a@example.com.evil.net", "example.com", "a@example.co"):
        assert not _matches(domain, sender=sender), sender


def test_every_condition_set_must_hold() -> None:
    rule = _draft(sender="@shop.example", subject_contains="refund", channel="email",
                  recipient="billing@furiwake.example")  # fmt: skip
    facts = {"sender": "x@shop.example", "subject": "Refund please", "recipient": "Billing@furiwake.example"}
    assert _matches(rule, **facts)
    assert not _matches(rule, **{**facts, "sender": "x@elsewhere.example"})
    assert not _matches(rule, **{**facts, "subject": "Password"})
    assert not _matches(rule, **{**facts, "recipient": "support@furiwake.example"})
    assert not _matches(rule, **{**facts, "recipient": None})  # web and API tickets have no recipient
    assert not _matches(rule, **facts, channel="web")
    assert not _matches(RuleSpec(name="nothing set", route="Other"), body="anything")  # no condition: no match


def test_the_first_active_rule_in_order_wins() -> None:
    first = rules.LoadedRule(1, 1, 1, "first", False, None, None, None, "card", None, "Payment", None)
    second = rules.LoadedRule(2, 4, 2, "second", True, None, None, None, "card", None, "Account", None)
    third = rules.LoadedRule(3, 1, 3, "third", True, None, None, None, "card", None, "Other", None)
    assert rules.match([first, second, third], Facts("web", body="card")) is second  # first is inactive
    assert rules.match([third, second], Facts("web", body="card")) is third
    assert rules.match([first, second, third], Facts("web", body="password")) is None


# --- saving (both databases) ------------------------------------------------------------------------------------

@pytest.fixture(params=BACKENDS)
def runtime(request: pytest.FixtureRequest, make_settings: Callable[..., Settings]) -> Iterator[Runtime]:
    built = Runtime.build(make_settings(database_url=str(request.getfixturevalue(f"{request.param}_url"))))
    yield built
    built.dispose()


def _agent(runtime: Runtime, name: str, active: bool = True) -> int:
    with runtime.unit_of_work() as session:
        agent = Agent(email=f"{name}@example.jp", name=name, password_hash="-", active=active, role="admin")
        session.add(agent)
        session.flush()
        return agent.id


def _create(runtime: Runtime, spec: RuleSpec, by: int | None = None) -> int:
    with runtime.unit_of_work() as session:
        return rules.create_rule(session, spec, by).id


def _versions(runtime: Runtime, rule_id: int) -> list[tuple[int, dict[str, object], int | None]]:
    with runtime.sessions() as session:
        return [(v.version, v.snapshot, v.saved_by) for v in rules.versions(session, rule_id)]


def test_saving_validates_and_normalises(runtime: Runtime) -> None:
    gone = _agent(runtime, "gone", active=False)
    bad = [
        (RuleSpec(name=" ", body_contains="x", route="Payment"), "name"),
        (RuleSpec(name="no condition", route="Payment"), "condition"),
        (RuleSpec(name="no action", body_contains="x"), "action"),
        (RuleSpec(name="r", body_contains="x", route="Billing"), "route"),
        (RuleSpec(name="r", body_contains="x", route="Payment", channel="fax"), "channel"),
        (RuleSpec(name="r", sender="not an address@", route="Payment"), "Sender"),
        (RuleSpec(name="r", sender="a@@b", route="Payment"), "Sender"),
        (RuleSpec(name="r", sender="a b@example.com", route="Payment"), "Sender"),
        (RuleSpec(name="r", sender="@exa mple.com", route="Payment"), "Sender"),
        (RuleSpec(name="r", sender="@example..com", route="Payment"), "Sender"),
        (RuleSpec(name="r", recipient="support", route="Payment"), "Recipient"),
        (RuleSpec(name="r", body_contains="x" * 501, route="Payment"), "too long"),
        (RuleSpec(name="r", body_contains="x", assignee_agent_id=gone), "active agent"),
        (RuleSpec(name="r", body_contains="x", assignee_agent_id=99999), "active agent"),
    ]
    for spec, words in bad:
        with pytest.raises(RuleError, match=words), runtime.unit_of_work() as session:
            rules.create_rule(session, spec, None)
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Rule)) == 0
    rule_id = _create(runtime, RuleSpec(name=" VIP ", sender="Example.COM", recipient=" Billing@Furiwake.example ",
                                        channel="EMAIL", route="payment"))  # fmt: skip
    with runtime.sessions() as session:
        rule = session.get(Rule, rule_id)
        assert rule is not None
        assert (rule.name, rule.sender, rule.recipient, rule.channel, rule.route) == (
            "VIP", "@example.com", "billing@furiwake.example", "email", "Payment")
        assert (rule.position, rule.version, rule.active, rule.subject_contains) == (1, 1, True, None)


def test_every_save_is_a_version_with_its_snapshot_and_who_saved_it(runtime: Runtime) -> None:
    admin, other = _agent(runtime, "aoi"), _agent(runtime, "ren")
    rule_id = _create(runtime, RuleSpec(name="Cards", body_contains="card", route="Payment"), admin)
    with runtime.unit_of_work() as session:
        rule, changed = rules.update_rule(session, rule_id, RuleSpec(name="Cards", body_contains="card",
                                                                     route="Payment"), other)  # fmt: skip
        assert (changed, rule.version) == (False, 1)  # the same rule again: no new version
        rule, changed = rules.update_rule(session, rule_id, RuleSpec(name="Cards", body_contains="ｶｰﾄﾞ",
                                                                     route="Account", assignee_agent_id=admin), other)
        assert (changed, rule.version, rule.updated_by) == (True, 2, other)
    with runtime.unit_of_work() as session:
        rule, changed = rules.set_active(session, rule_id, False, admin)
        assert (changed, rule.version) == (True, 3)
        assert rules.set_active(session, rule_id, False, admin)[1] is False
    history = _versions(runtime, rule_id)
    assert [(version, saved_by) for version, _, saved_by in history] == [(3, admin), (2, other), (1, admin)]
    snapshots = {version: snapshot for version, snapshot, _ in history}
    assert snapshots[1] == {"name": "Cards", "sender": None, "recipient": None, "subject_contains": None,
                            "body_contains": "card", "channel": None, "route": "Payment", "assignee_agent_id": None,
                            "active": True}  # fmt: skip
    assert (snapshots[2]["body_contains"], snapshots[2]["route"], snapshots[2]["assignee_agent_id"]) == (
        "ｶｰﾄﾞ", "Account", admin)
    assert snapshots[3]["active"] is False and snapshots[3]["route"] == "Account"
    with runtime.sessions() as session:
        assert rules.active_rules(session) == []  # deactivated: not tried...
        assert [r.id for r in rules.list_rules(session)] == [rule_id]  # ...but never deleted
        assert rules.name_at(session, rule_id, 1) == "Cards"
        assert session.scalar(select(func.count()).select_from(RuleVersion)) == 3


def test_moving_changes_the_order_the_worker_tries(runtime: Runtime) -> None:
    ids = [_create(runtime, RuleSpec(name=name, body_contains="card", route=route))
           for name, route in (("a", "Payment"), ("b", "Account"), ("c", "Other"))]
    facts = Facts("web", body="my card")

    def first() -> str | None:
        with runtime.sessions() as session:
            hit = rules.match(rules.active_rules(session), facts)
            return hit.name if hit else None

    assert first() == "a"
    with runtime.unit_of_work() as session:
        assert rules.move(session, ids[2], -1) and rules.move(session, ids[2], -1)
        assert not rules.move(session, ids[2], -1)  # already first
        assert not rules.move(session, ids[1], +1)  # already last
    with runtime.sessions() as session:
        assert [r.name for r in rules.list_rules(session)] == ["c", "a", "b"]
        assert [r.version for r in rules.list_rules(session)] == [1, 1, 1]  # moving is no new version
    assert first() == "c"
    with runtime.unit_of_work() as session:
        rules.set_active(session, ids[2], False, None)
    assert first() == "a"
    with pytest.raises(rules.RuleNotFound), runtime.unit_of_work() as session:
        rules.move(session, 99999, 1)
