"""The log lines of sign-ins, agents' actions and intake name ids, never an e-mail address or a customer's name.

These look at the records as the code logs them (caplog), before core.logs' redaction: the redaction is a last
line of defence, not the reason these lines are clean.
"""

from __future__ import annotations

import logging

import pytest
from flask.testing import FlaskClient

from tests.support.agents import AgentAccount, sign_in


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(record.getMessage() for record in caplog.records)


def test_sign_ins_log_the_agent_id_not_the_address(client: FlaskClient, agent: AgentAccount,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    assert sign_in(client, agent.email, "wrong password").status_code == 401
    assert sign_in(client, "stranger@example.org", "whatever").status_code == 401
    assert sign_in(client, agent.email).status_code == 303

    logged = _logged(caplog)
    assert "failed sign-in" in logged and f"agent {agent.id} signed in" in logged
    assert agent.email not in logged and "stranger@example.org" not in logged


def test_intake_logs_the_ticket_id_not_the_customer(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    response = client.post("/api/v1/tickets", json={
        "body": "請求書の宛名を変えたい", "subject": "宛名の変更", "customer_email": "taro@example.jp",
        "customer_name": "山田太郎",
    })
    assert response.status_code == 202

    intake = [record for record in caplog.records if record.name == "api.intake.tickets"]
    assert intake, _logged(caplog)
    logged = _logged(caplog)
    for personal in ("taro@example.jp", "山田太郎", "宛名の変更", "請求書"):
        assert personal not in logged
