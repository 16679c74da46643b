"""Rate limits (flask-limiter): per client IP on public intake, per IP + account on sign-in, 429 with Retry-After,
counters shared through the broker's Redis, memory in the embedded mode, open when Redis is down."""

from __future__ import annotations

import logging
import math

import pytest
from flask import Flask

from api import limits
from api.limits import storage_uri
from core.config import ConfigError, Settings
from tests.support.agents import csrf_token, make_agent, sign_in
from tests.support.api import DEAD_BROKER_URL, assert_problem, count_tickets


def _post(client, address: str = "192.0.2.1", **headers: str):
    return client.post("/api/v1/tickets", json={"body": "ポイントが反映されません"}, headers=headers,
                       environ_base={"REMOTE_ADDR": address})


def _retry_after(response, window: int) -> int:
    seconds = int(response.headers["Retry-After"])
    assert 1 <= seconds <= window
    return seconds


def test_api_intake_is_limited_per_client_address(make_app, broker) -> None:
    app = make_app(rate_limit_intake="2/minute")
    client = app.test_client()
    assert [_post(client).status_code for _ in range(2)] == [202, 202]

    refused = _post(client)
    problem = assert_problem(refused, 429)
    _retry_after(refused, 60)
    assert "Retry in" in problem["detail"]
    assert _post(client, address="192.0.2.2").status_code == 202  # another client is not affected
    assert count_tickets(app) == 3
    assert broker.keys("*furiwake-limits/192.0.2.1/*")  # the counters live in the broker's Redis


def test_workers_share_one_counter_through_redis(make_app) -> None:
    """Two apps stand for two gunicorn workers (or two API machines) on one Redis."""
    first, second = (make_app(rate_limit_intake="2/minute").test_client() for _ in range(2))
    assert _post(first).status_code == 202
    assert _post(second).status_code == 202
    assert _post(first).status_code == 429
    assert _post(second).status_code == 429


def test_web_form_refusal_is_a_429_page_that_keeps_what_was_typed(make_app) -> None:
    client = make_app(rate_limit_intake="1/minute").test_client()
    data = {"subject": "", "customer_email": "hanako@example.jp", "body": "カードが使えません", "lang": "en"}
    assert client.post("/", data={"csrf_token": csrf_token(client, "/"), **data}).status_code == 303

    refused = client.post("/", data={"csrf_token": csrf_token(client, "/"), **data})
    assert refused.status_code == 429
    seconds = _retry_after(refused, 60)
    page = refused.get_data(as_text=True)
    assert f"wait about {seconds} s" in page
    assert "カードが使えません" in page and "hanako@example.jp" in page
    assert refused.headers["Content-Security-Policy"]  # the security headers are on refusals too


def test_sign_in_is_limited_per_address_and_account(make_app) -> None:
    app = make_app(rate_limit_signin="2/minute")
    hana, taro = make_agent(app), make_agent(app, email="taro@example.jp", name=None)
    client = app.test_client()
    assert [sign_in(client, hana.email, "wrong").status_code for _ in range(2)] == [401, 401]

    refused = sign_in(client, hana.email)  # even the right password: the attempts are used up
    assert refused.status_code == 429
    _retry_after(refused, 60)
    assert "Too many sign-in attempts" in refused.get_data(as_text=True)
    assert sign_in(client, hana.email.upper()).status_code == 429  # the account, however it is spelt

    assert sign_in(client, taro.email).status_code == 303  # another account from the same address
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "192.0.2.9"
    assert sign_in(other, hana.email).status_code == 303  # the same account from another address
    assert other.get("/agent/login").status_code in (200, 302)  # GET pages are not counted


def test_off_disables_a_limit(make_app) -> None:
    client = make_app(rate_limit_intake="off").test_client()
    assert {_post(client).status_code for _ in range(5)} == {202}


def test_embedded_mode_counts_in_memory(make_settings, make_app, database_url: str) -> None:
    assert storage_uri(make_settings(broker_url="filesystem://")) == "memory://"
    assert storage_uri(make_settings(broker_url="redis://127.0.0.1:6379/3")) == "redis://127.0.0.1:6379/3"
    client = make_app(broker_url="filesystem://", rate_limit_intake="1/minute").test_client()
    assert _post(client).status_code == 202
    assert_problem(_post(client), 429)


def test_forwarded_for_is_believed_only_from_trusted_proxies(make_app) -> None:
    untrusted = make_app(rate_limit_intake="1/minute").test_client()
    assert _post(untrusted, **{"X-Forwarded-For": "198.51.100.1"}).status_code == 202
    assert _post(untrusted, **{"X-Forwarded-For": "198.51.100.2"}).status_code == 429  # a forged header is no way out

    behind_proxy = make_app(rate_limit_intake="1/minute", trusted_proxies=1).test_client()
    assert _post(behind_proxy, **{"X-Forwarded-For": "198.51.100.3"}).status_code == 202
    assert _post(behind_proxy, **{"X-Forwarded-For": "198.51.100.4"}).status_code == 202  # two clients, one proxy
    assert _post(behind_proxy, **{"X-Forwarded-For": "198.51.100.3"}).status_code == 429


def test_limits_fail_open_when_redis_is_down(make_app, caplog, monkeypatch) -> None:
    """The broker's Redis holds the counters: when it is down, tickets are still accepted (the sweep sends them
    later), with one warning line rather than a traceback per request."""
    monkeypatch.setattr(limits._outage_log, "_last", -math.inf)  # as if no earlier test had seen an outage
    app: Flask = make_app(broker_url=DEAD_BROKER_URL, rate_limit_intake="1/minute")
    client = app.test_client()
    with caplog.at_level(logging.WARNING):
        assert [_post(client).status_code for _ in range(3)] == [202, 202, 202]
    assert count_tickets(app) == 3
    outage = [r for r in caplog.records if r.name == "flask-limiter"]
    assert len(outage) == 1 and outage[0].levelno == logging.WARNING and not outage[0].exc_info
    assert "rate-limit storage unreachable" in outage[0].getMessage()


@pytest.mark.parametrize("name", ["RATE_LIMIT_INTAKE", "RATE_LIMIT_SIGNIN"])
def test_limit_settings_are_checked_at_start_up(name: str) -> None:
    assert getattr(Settings.from_env({name: "OFF"}), name.lower()) == "off"
    assert getattr(Settings.from_env({name: "5/second; 100/hour"}), name.lower()) == "5/second; 100/hour"
    with pytest.raises(ConfigError, match=f"^{name}: "):
        Settings.from_env({name: "lots"})


def test_the_intake_limit_is_off_by_default_only_in_the_embedded_mode() -> None:
    """`make run` on one machine takes bulk imports from one client; a public deployment limits each IP."""
    from core.config import Settings

    assert Settings.from_env({}).rate_limit_intake == "off"
    public = Settings.from_env({"DATABASE_URL": "postgresql://db/furiwake", "BROKER_URL": "redis://redis:6379/0"})
    assert public.rate_limit_intake == "30/minute;300/hour"
    assert Settings.from_env({"RATE_LIMIT_INTAKE": "5/minute"}).rate_limit_intake == "5/minute"
