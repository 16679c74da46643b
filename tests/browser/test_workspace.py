"""The agents' workspace end to end, in Debian's Chromium driven by Playwright against a real gunicorn and a real
Celery worker (embedded mode), with a real webhook receiver on loopback:

an admin signs in (a Japanese browser: the pages are Japanese), subscribes the receiver to every event, creates a
rule and two agents in the Payment route with a cap of one open ticket each; three Payment tickets arrive; two are
assigned, one waits; one agent resolves theirs and the waiting ticket is assigned to them at once; a search by a
Japanese word finds it; the receiver got every event exactly once, each signed with the secret the page showed.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections import Counter

import requests
from sqlalchemy import select

from core import agents
from core.db import make_engine, make_session_factory
from core.orm import Agent, Rule, Ticket
from tests.support.paths import ROOT
from tests.support.processes import service_env, start_api, start_worker, wait_for_worker_model, wait_until
from tests.support.webhook_receiver import WebhookReceiver, webhook_receiver  # noqa: F401  (a fixture)

ARTIFACTS = ROOT / "test-artifacts"
ADMIN, ADMIN_PASSWORD = "yui@example.jp", "correct horse battery staple"
PAYMENT_AGENTS = [("ren@example.jp", "田中 蓮"), ("mio@example.jp", "佐藤 澪")]
AGENT_PASSWORD = "another long passphrase"
# "This rule (as typed, not saved) matches the sample."
MATCHES_AS_TYPED = "入力中のルール（未保存）はサンプルに一致します。"
EVENTS = ("ticket.created", "ticket.routed", "ticket.rerouted", "ticket.assigned", "ticket.resolved")
# Whatever the model would say, the admin's rule sends anything about an invoice (請求書) to Payment.
TICKETS = [
    ("請求書の金額について", "先月の請求書の金額が契約と違います。確認してください。"),
    ("請求書の再発行", "請求書を紛失しました。再発行をお願いできますか。"),
    ("請求書の宛名変更", "請求書の宛名を会社名に変更したいです。領収書も必要です。"),
]


def _sign_in(page, base: str, email: str, password: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/agent")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/agent*")


def _verified(secret: str, header: str, body: bytes) -> bool:
    """docs/webhooks.md's receiver recipe: the MAC over "<t>.<raw body>"."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(secret.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


def test_an_admin_sets_up_payment_and_its_queue_is_worked_fairly(  # type: ignore[no-untyped-def]
    browser, processes, trained_model_dir, tmp_path, webhook_receiver: WebhookReceiver  # noqa: F811
) -> None:
    from core.migrate import upgrade

    database_url = f"sqlite:///{tmp_path / 'var' / 'furiwake.db'}"
    upgrade(database_url)
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        admin = agents.create_agent(session, ADMIN, ADMIN_PASSWORD, name="山本 結")  # the first agent: an admin
        assert admin.role == "admin"
    env = service_env(database_url, "filesystem://", trained_model_dir, tmp_path, ASSIGNMENT="least_loaded")
    start_worker(processes, env, embedded=True)
    base = start_api(processes, env)
    wait_for_worker_model(processes)
    ARTIFACTS.mkdir(exist_ok=True)

    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")  # type: ignore[attr-defined]
    page = context.new_page()
    _sign_in(page, base, ADMIN, ADMIN_PASSWORD)
    assert page.locator("html").get_attribute("lang") == "ja"  # Accept-Language: ja, no choice made yet
    nav = page.locator("nav").first.inner_text()
    assert "キュー" in nav and "ルール" in nav and "担当者" in nav  # the admin's links, in Japanese

    # The receiver subscribes to every event; the page shows its secret once.
    page.goto(f"{base}/agent/webhooks")
    page.fill("#webhook-url", webhook_receiver.url)
    for event in EVENTS:
        page.check(f"input[name=events][value='{event}']")
    page.click("form.webhook-add button[type=submit]")
    secret = page.locator("[data-secret]").inner_text().strip()
    assert len(secret) >= 32

    # A rule: an invoice goes to Payment, tried on a sample before it is saved.
    page.goto(f"{base}/agent/rules")
    page.fill("#rule-name", "請求書はお支払いへ")
    page.fill("#rule-subject", "請求書")
    page.select_option("#rule-route", "Payment")
    page.fill("form.rule-form textarea[name=sample_body]", "請求書を送ってください")
    page.fill("form.rule-form input[name=sample_subject]", "請求書について")
    page.click("form.rule-form button[value=test]")
    assert page.locator("[data-test-result]").inner_text().strip() == MATCHES_AS_TYPED
    page.click("form.rule-form button[value=save]")
    page.locator(".flash-success").wait_for()
    with sessions() as session:
        [rule] = session.scalars(select(Rule)).all()
        assert (rule.subject_contains, rule.route, rule.version, rule.active) == ("請求書", "Payment", 1, True)

    # Two agents in the Payment route, one open ticket each at most.
    for email, name in PAYMENT_AGENTS:
        page.goto(f"{base}/agent/agents")
        form = page.locator("form.agent-add")
        form.locator("#agent-email").fill(email)
        form.locator("#agent-name").fill(name)
        form.locator("#agent-password").fill(AGENT_PASSWORD)
        form.locator("#agent-role").select_option("agent")
        form.locator("input[name=routes][value=Payment]").check()
        form.locator("#agent-cap").fill("1")
        form.locator("button[type=submit]").click()
        page.locator(".flash-success").wait_for()
    page.screenshot(path=str(ARTIFACTS / "workspace-agents.png"), full_page=True)
    with sessions() as session:
        staff = {a.email: a for a in session.scalars(select(Agent).where(Agent.email != ADMIN))}
        assert {(a.role, a.max_open) for a in staff.values()} == {("agent", 1)}
        agent_ids = {email: staff[email].id for email, _ in PAYMENT_AGENTS}

    # Three invoices arrive through the JSON API.
    ticket_ids = []
    for subject, body in TICKETS:
        response = requests.post(f"{base}/api/v1/tickets", json={"subject": subject, "body": body}, timeout=10)
        assert response.status_code == 202, response.text
        ticket_ids.append(uuid.UUID(response.json()["id"]))

    def tickets() -> list[Ticket]:
        with sessions() as session:
            return list(session.scalars(select(Ticket).where(Ticket.id.in_(ticket_ids))))

    wait_until(lambda: all(t.status == "routed" for t in tickets()), 120, processes, "three tickets routed")
    routed = tickets()
    assert {(t.route, t.rule_id, t.rule_version) for t in routed} == {("Payment", rule.id, 1)}
    assert all(t.model_route in ("Account", "Payment", "Other") for t in routed)  # the model's own, kept beside
    owners = Counter(t.assigned_agent_id for t in routed)
    assert owners == Counter({agent_ids[PAYMENT_AGENTS[0][0]]: 1, agent_ids[PAYMENT_AGENTS[1][0]]: 1, None: 1})
    [waiting] = [t for t in routed if t.assigned_agent_id is None]
    page.goto(f"{base}/agent?queue=payment")
    page.locator(f'tr[data-ticket-id="{waiting.id}"]').wait_for()
    page.screenshot(path=str(ARTIFACTS / "workspace-queue.png"), full_page=True)

    # One agent resolves theirs; the waiting ticket is theirs at once.
    email = PAYMENT_AGENTS[0][0]
    [theirs] = [t for t in routed if t.assigned_agent_id == agent_ids[email]]
    agent_context = browser.new_context(locale="ja-JP")  # type: ignore[attr-defined]
    agent_page = agent_context.new_page()
    _sign_in(agent_page, base, email, AGENT_PASSWORD)
    assert agent_page.locator("nav").first.get_by_text("ルール").count() == 0  # no admin links for an agent
    agent_page.goto(f"{base}/agent?queue=mine")
    agent_page.locator(f'tr[data-ticket-id="{theirs.id}"] td.title a').click()
    agent_page.wait_for_url(f"**/agent/tickets/{theirs.id}*")
    agent_page.click("form[action*='/resolve'] button[type=submit]")
    agent_page.locator(".flash-success").wait_for()
    after = {t.id: t for t in tickets()}
    assert after[theirs.id].status == "resolved"
    assert after[waiting.id].assigned_agent_id == agent_ids[email]
    agent_page.goto(f"{base}/agent?queue=mine")
    agent_page.locator(f'tr[data-ticket-id="{waiting.id}"]').wait_for()

    # Search by a Japanese word inside the waiting ticket's body.
    box = agent_page.locator("form.topsearch input[name=q]")
    box.fill("領収書")
    box.press("Enter")
    agent_page.wait_for_url("**/agent/search?q=*")
    rows = agent_page.locator("table.search-results tbody tr")
    assert rows.count() == 1 and rows.first.get_attribute("data-ticket-id") == str(waiting.id)
    agent_page.screenshot(path=str(ARTIFACTS / "workspace-search.png"), full_page=True)

    # Every event reached the receiver once, signed: 3 created, 3 routed, 3 assigned (two at routing, one on the
    # resolve), 1 resolved.
    expected = Counter({"ticket.created": 3, "ticket.routed": 3, "ticket.assigned": 3, "ticket.resolved": 1})

    def delivered() -> Counter[str]:
        return Counter(request.headers.get("Furiwake-Event", "") for request in webhook_receiver.delivered)

    wait_until(lambda: delivered() == expected, 60, processes, f"webhook deliveries {expected}")
    received = webhook_receiver.delivered
    ids = [request.headers["Furiwake-Event-Id"] for request in received]
    assert len(set(ids)) == len(ids) == sum(expected.values())  # each event once
    for request in received:
        assert _verified(secret, request.headers["Furiwake-Signature"], request.body)
        payload = json.loads(request.body)
        assert payload["id"] == request.headers["Furiwake-Event-Id"]
        assert uuid.UUID(payload["data"]["ticket"]["id"]) in ticket_ids
    assigned_to = Counter(json.loads(r.body)["data"]["ticket"]["assigned_agent_id"] for r in received
                          if r.headers["Furiwake-Event"] == "ticket.assigned")
    assert assigned_to == Counter({agent_ids[PAYMENT_AGENTS[0][0]]: 2, agent_ids[PAYMENT_AGENTS[1][0]]: 1})

    agent_context.close()
    context.close()
    engine.dispose()
