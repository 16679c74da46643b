"""The Rules page (admins only): create, edit (a new version each save, the versions listed), test a draft before
saving and the saved rules against a sample, reorder, deactivate / activate; an agent gets 403; bad input is a 400
with a flashed message and the form kept, never an error page. Also the ticket page's "Routed by rule" line and the
JSON ticket's rule fields."""

from __future__ import annotations

import re
from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from core.orm import Rule, RuleVersion, Ticket
from tests.support.agents import AgentAccount, csrf_token, fetch, make_agent, post_form, sign_in, visible_text
from tests.support.backends import both_backends

PAGE = "/agent/rules"


def _create(client: FlaskClient, **fields: str):  # type: ignore[no-untyped-def]
    return post_form(client, PAGE, PAGE, action="save", **fields)


def _flash(html: str) -> list[str]:
    return [visible_text(m) for m in re.findall(r'<p class="flash flash-\w+"[^>]*>(.*?)</p>', html, re.S)]


def test_an_agent_who_is_not_admin_gets_403_and_no_link(app: Flask, agent: AgentAccount) -> None:
    make_agent(app, "ken@example.jp", "Ken")  # the second agent: not an admin
    client = app.test_client()
    assert sign_in(client, "ken@example.jp").status_code == 303
    assert client.get(PAGE).status_code == 403
    assert f'href="{PAGE}"' not in client.get("/agent/").get_data(as_text=True)
    token = csrf_token(client, "/agent/")
    assert client.post(PAGE, data={"csrf_token": token, "name": "x", "body_contains": "x",
                                   "route": "Payment"}).status_code == 403  # fmt: skip
    assert client.post(f"{PAGE}/test", data={"csrf_token": token}).status_code == 403
    assert fetch(app, Rule) == []
    assert app.test_client().get(PAGE).status_code == 302  # a stranger is sent to sign in


@both_backends
def test_admin_creates_edits_and_sees_the_versions(app: Flask, agent: AgentAccount, signed_in: FlaskClient) -> None:
    page = signed_in.get(PAGE)
    assert page.status_code == 200 and f'href="{PAGE}"' in page.get_data(as_text=True)  # admins see the link
    assert "No rules yet" in visible_text(page.get_data(as_text=True))
    created = _create(signed_in, name="Cards", body_contains="VISA", route="Payment", sender="example.com")
    assert created.status_code == 303 and created.headers["Location"] == PAGE
    [rule] = fetch(app, Rule)
    assert (rule.name, rule.body_contains, rule.sender, rule.version, rule.updated_by) == (
        "Cards", "VISA", "@example.com", 1, agent.id)
    listing = visible_text(signed_in.get(PAGE).get_data(as_text=True))
    assert "Rule «Cards» saved (v1)" in listing
    assert "sender @example.com and body contains “VISA”" in listing and "Hana Sato" in listing

    edit_url = f"{PAGE}/{rule.id}"
    form = visible_text(signed_in.get(edit_url).get_data(as_text=True))
    assert "Edit rule «Cards» (v1)" in form
    saved = post_form(signed_in, edit_url, edit_url, action="save", name="Cards", body_contains="VISA",
                      route="Account", channel="email", assignee_agent_id=str(agent.id))
    assert saved.status_code == 303
    [rule] = fetch(app, Rule)
    assert (rule.route, rule.channel, rule.assignee_agent_id, rule.version) == ("Account", "email", agent.id, 2)
    with app.extensions["furiwake"].sessions() as session:
        versions = list(session.scalars(select(RuleVersion).order_by(RuleVersion.version)))
    assert [(v.version, v.snapshot["route"], v.saved_by) for v in versions] == [
        (1, "Payment", agent.id), (2, "Account", agent.id)]
    html = signed_in.get(edit_url).get_data(as_text=True)
    assert 'data-version="2"' in html and 'data-version="1"' in html
    assert "saved as v2" in visible_text(html) and "assign to Hana Sato" in visible_text(html)
    same = post_form(signed_in, edit_url, edit_url, action="save", name="Cards", body_contains="VISA",
                     route="Account", channel="email", assignee_agent_id=str(agent.id))
    assert same.status_code == 303 and fetch(app, Rule)[0].version == 2  # nothing changed: no new version


def test_testing_a_draft_saves_nothing_and_the_test_form_names_the_rule(app: Flask, signed_in: FlaskClient) -> None:
    _create(signed_in, name="Cards", body_contains="visa", route="Payment")
    [rule] = fetch(app, Rule)
    edit_url = f"{PAGE}/{rule.id}"
    sample = {"sample_sender": "a@example.com", "sample_subject": "カード", "sample_body": "ＶＩＳＡが使えない",
              "sample_channel": "web"}
    tried = post_form(signed_in, edit_url, edit_url, action="test", name="Cards v2", body_contains="mastercard",
                      route="Other", **sample)
    assert tried.status_code == 200
    html = tried.get_data(as_text=True)
    assert "does not match the sample" in visible_text(html)
    assert 'value="mastercard"' in html and "ＶＩＳＡが使えない" in html  # the draft and the sample stay in the form
    tried = post_form(signed_in, edit_url, edit_url, action="test", name="Cards v2", subject_contains="ｶｰﾄﾞ",
                      route="Other", **sample)
    assert "This rule (as typed, not saved) matches the sample." in visible_text(tried.get_data(as_text=True))
    [rule] = fetch(app, Rule)
    assert (rule.name, rule.body_contains, rule.version) == ("Cards", "visa", 1)  # not saved

    found = post_form(signed_in, f"{PAGE}/test", PAGE, **sample)
    assert found.status_code == 200
    assert "The sample matches rule «Cards» (v1)." in visible_text(found.get_data(as_text=True))
    none = post_form(signed_in, f"{PAGE}/test", PAGE, **{**sample, "sample_body": "password"})
    assert "No active rule matches the sample: the model decides." in visible_text(none.get_data(as_text=True))


@both_backends
def test_reorder_deactivate_and_activate(app: Flask, signed_in: FlaskClient) -> None:
    for name in ("first", "second"):
        _create(signed_in, name=name, body_contains="card", route="Payment")
    first, second = fetch(app, Rule)
    moved = post_form(signed_in, f"{PAGE}/{second.id}/move", PAGE, direction="up")
    assert moved.status_code == 303
    assert [r.name for r in sorted(fetch(app, Rule), key=lambda r: r.position)] == ["second", "first"]
    sample = {"sample_body": "card", "sample_channel": "web"}
    assert "«second»" in visible_text(post_form(signed_in, f"{PAGE}/test", PAGE, **sample).get_data(as_text=True))
    assert post_form(signed_in, f"{PAGE}/{second.id}/move", PAGE, direction="up").status_code == 303  # at the top
    assert "already at the end" in visible_text(signed_in.get(PAGE).get_data(as_text=True))

    assert post_form(signed_in, f"{PAGE}/{second.id}/active", PAGE, active="0").status_code == 303
    assert "is deactivated (v2)" in visible_text(signed_in.get(PAGE).get_data(as_text=True))
    assert "«first»" in visible_text(post_form(signed_in, f"{PAGE}/test", PAGE, **sample).get_data(as_text=True))
    assert post_form(signed_in, f"{PAGE}/{second.id}/active", PAGE, active="1").status_code == 303
    assert [(r.name, r.active, r.version) for r in fetch(app, Rule)] == [("first", True, 1), ("second", True, 3)]


def test_bad_input_is_a_flashed_400_that_keeps_the_form(app: Flask, signed_in: FlaskClient) -> None:
    cases = [
        ({"name": "no condition", "route": "Payment"}, "at least one condition"),
        ({"name": "no action", "body_contains": "x"}, "needs an action"),
        ({"name": "", "body_contains": "x", "route": "Payment"}, "needs a name"),
        ({"name": "bad route", "body_contains": "x", "route": "Billing"}, "Unknown route"),
        ({"name": "bad channel", "body_contains": "x", "channel": "fax", "route": "Payment"}, "Unknown channel"),
        ({"name": "bad sender", "sender": "a b@c", "route": "Payment"}, "neither an address nor a domain"),
        ({"name": "bad assignee", "body_contains": "x", "assignee_agent_id": "abc"}, "active agent"),
        ({"name": "gone assignee", "body_contains": "x", "assignee_agent_id": "99999"}, "active agent"),
        ({"name": "long", "body_contains": "x" * 600, "route": "Payment"}, "too long"),
    ]
    for fields, words in cases:
        response = _create(signed_in, **fields)
        assert response.status_code == 400, (fields, response.status_code)
        html = response.get_data(as_text=True)
        assert any(words in message for message in _flash(html)), (fields, _flash(html))
        if fields["name"]:
            assert f'value="{fields["name"]}"' in html  # what was typed stays
    testing = post_form(signed_in, PAGE, PAGE, action="test", name="draft", route="Payment")
    assert testing.status_code == 400 and any("Cannot test" in m for m in _flash(testing.get_data(as_text=True)))
    assert fetch(app, Rule) == []
    assert post_form(signed_in, f"{PAGE}/999/move", PAGE, direction="up").status_code == 404
    assert post_form(signed_in, f"{PAGE}/999/active", PAGE, active="0").status_code == 404
    assert signed_in.get(f"{PAGE}/999").status_code == 404
    assert post_form(signed_in, f"{PAGE}/999", PAGE, action="save", name="x").status_code == 404
    odd = post_form(signed_in, f"{PAGE}/1/move", PAGE, direction="sideways")
    assert odd.status_code == 303


def test_ticket_page_and_json_show_the_rule_beside_the_models_route(app: Flask, signed_in: FlaskClient,
                                                                    bearer: dict[str, str],
                                                                    add_ticket: Callable[..., Ticket]) -> None:
    _create(signed_in, name="Refunds", body_contains="返金", route="Other")
    [rule] = fetch(app, Rule)
    ticket = add_ticket("返金してください", route="Other", scores=(0.1, 0.82, 0.08), rule_id=rule.id, rule_version=1,
                        model_route="Payment")
    page = visible_text(signed_in.get(f"/agent/tickets/{ticket.id}").get_data(as_text=True))
    assert "Routed by rule «Refunds» (v1) · model: Payment 82 %" in page
    body = signed_in.application.test_client().get(f"/api/v1/tickets/{ticket.id}", headers=bearer).get_json()
    assert (body["rule_id"], body["rule_version"], body["model_route"], body["route"]) == (
        rule.id, 1, "Payment", "Other")
    plain = add_ticket("パスワード", model_route="Account")
    assert "Routed by rule" not in visible_text(signed_in.get(f"/agent/tickets/{plain.id}").get_data(as_text=True))
    body = signed_in.application.test_client().get(f"/api/v1/tickets/{plain.id}", headers=bearer).get_json()
    assert (body["rule_id"], body["rule_version"], body["model_route"]) == (None, None, "Account")
