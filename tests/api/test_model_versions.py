"""The agents' Models page: versions side by side, images served safely, the retrain and rollback buttons.

Real database and Redis (tests/api/conftest.py); artifacts are stubs (the page never loads a model).
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core import registry
from core.artifacts import current_version, set_current
from core.messaging import RETRAIN_TASK, TRAINING_QUEUE
from core.orm import Correction, Ticket
from tests.support.agents import csrf_token, make_agent, sign_in, visible_text
from tests.support.api import DEAD_BROKER_URL
from tests.support.backends import both_backends
from tests.support.registry import fake_version, in_unit_of_work

PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 32


@pytest.fixture
def signed_in(app, client):
    agent = make_agent(app)
    assert sign_in(client, agent.email).status_code == 303
    return client


@pytest.fixture
def model_dir(app):
    return app.extensions["furiwake"].settings.model_dir


@pytest.fixture
def sessions(app):
    return app.extensions["furiwake"].sessions


def _two_champions_and_a_reject(sessions, model_dir):
    """v0 (initial) → v1 (promoted), and v2 rejected with its figures."""
    from core.artifacts import read_meta

    set_current(model_dir, fake_version(model_dir, "v0"))
    (model_dir / "v0" / "curves.png").write_bytes(PNG)
    in_unit_of_work(sessions, registry.sync, model_dir)
    for version in ("v1", "v2"):
        fake_version(model_dir, version)
        in_unit_of_work(sessions, registry.register_candidate, read_meta(model_dir / version), "schedule",
                                    {"by_source": {"corpus": 90, "corrections": 8, "resolved": 2}, "rows": 100})
    figures = {"accuracy": 0.9, "macro_f1": 0.9, "per_route": {r: {"f1": 0.9} for r in ("Account", "Payment", "Other")},
               "parts": {"corpus": {"n": 80, "accuracy": 0.9}, "corrections": {"n": 5, "accuracy": 0.8}}}
    evaluation = {"eval_set": {"n": 85, "corpus": 80, "corrections": 5}, "candidate": figures,
                  "champion": {**figures, "macro_f1": 0.85}, "replay": {"tickets": 10, "agreement": 0.9}}
    in_unit_of_work(sessions, registry.record_evaluation, "v1", evaluation, "v0")
    in_unit_of_work(sessions, registry.promote, model_dir, "v1", "promoted: macro-F1 0.9000 vs 0.8500",
                    expected_champion="v0")
    in_unit_of_work(sessions, registry.record_evaluation, "v2",
                    {**evaluation, "candidate": {**figures, "macro_f1": 0.8}}, "v1")
    in_unit_of_work(sessions, registry.reject, "v2", "rejected: macro-F1 0.8000 vs 0.9000 for the champion v1")
    with sessions() as session, session.begin():
        tickets = [Ticket(channel="api", body=f"t{i}", status="routed", route="Other", model_version="v1")
                   for i in range(4)]
        session.add_all(tickets)
        session.flush()
        session.add(Correction(ticket_id=tickets[0].id, predicted_route="Other", corrected_route="Payment"))


def test_signed_out_agents_are_sent_to_sign_in(client):
    response = client.get("/agent/models")
    assert response.status_code == 302 and "/agent/login" in response.headers["Location"]
    assert client.post("/agent/models/rollback").status_code in (302, 400)


@both_backends
def test_the_page_shows_every_version_side_by_side(signed_in, sessions, model_dir):
    _two_champions_and_a_reject(sessions, model_dir)
    response = signed_in.get("/agent/models")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Content-Security-Policy" in response.headers
    for text in ("v0", "v1", "v2", "badge-champion", "badge-rejected", "badge-retired", "first model", "nightly",
                 "rejected: macro-F1 0.8000 vs 0.9000", "+0.0500", "25.0% re-routed", "Roll back to v0",
                 "corpus 90 · re-routes 8 · resolved 2", "85 rows: 80 corpus, 5 re-routes", "90% of its last 10"):
        assert text in html, text
    assert 'href="/agent/models"' in html  # the top bar's link
    listed = signed_in.get("/agent/models/versions.json").get_json()
    assert [row["version"] for row in listed][0] in ("v1", "v2") and {r["status"] for r in listed} == {
        "champion", "retired", "rejected"}


def test_images_only_known_files_of_registered_versions(signed_in, sessions, model_dir):
    _two_champions_and_a_reject(sessions, model_dir)
    response = signed_in.get("/agent/models/v0/curves.png")
    assert response.status_code == 200 and response.mimetype == "image/png" and response.data == PNG
    (model_dir / "v0" / "secret.png").write_bytes(PNG)
    fake_version(model_dir, "unregistered")
    (model_dir / "unregistered" / "curves.png").write_bytes(PNG)
    for url in ("/agent/models/v0/meta.json", "/agent/models/v0/secret.png", "/agent/models/v0/confusion.png",
                "/agent/models/unregistered/curves.png", "/agent/models/..%2Fv0/curves.png",
                "/agent/models/v0/..%2F..%2Fetc%2Fpasswd", "/agent/models/.hidden/curves.png"):
        assert signed_in.get(url).status_code == 404, url


@both_backends
def test_a_plot_this_machine_lacks_is_served_from_the_database(signed_in, sessions, model_dir, tmp_path):
    """Trained on another machine (its own MODEL_DIR), stored in the shared database, never fetched here."""
    from core.artifacts import read_meta

    elsewhere = tmp_path / "trainer-machine" / "models"
    fake_version(elsewhere, "v9")
    (elsewhere / "v9" / "curves.png").write_bytes(PNG)
    (elsewhere / "v9" / "secret.png").write_bytes(PNG)  # stored too, but no name the page serves
    in_unit_of_work(sessions, registry.register_candidate, read_meta(elsewhere / "v9"), "schedule", {},
                    elsewhere / "v9")
    assert not (model_dir / "v9").exists()
    response = signed_in.get("/agent/models/v9/curves.png")
    assert response.status_code == 200 and response.mimetype == "image/png" and response.data == PNG
    for url in ("/agent/models/v9/confusion.png", "/agent/models/v9/secret.png", "/agent/models/v9/meta.json"):
        assert signed_in.get(url).status_code == 404, url


def test_retrain_button_queues_the_task_for_the_trainer(signed_in, broker):
    response = signed_in.post("/agent/models/retrain", data={"csrf_token": csrf_token(signed_in, "/agent/models")})
    assert response.status_code == 303
    messages = broker.lrange(TRAINING_QUEUE, 0, -1)
    assert len(messages) == 1
    envelope = json.loads(messages[0])
    assert envelope["headers"]["task"] == RETRAIN_TASK
    _args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
    assert kwargs == {"trigger": "button"}
    assert "Retrain queued" in signed_in.get("/agent/models").get_data(as_text=True)
    assert signed_in.post("/agent/models/retrain").status_code == 400  # no CSRF token: refused
    assert len(broker.lrange(TRAINING_QUEUE, 0, -1)) == 1


def test_retrain_button_with_the_broker_down_says_so(make_app):
    app = make_app(broker_url=DEAD_BROKER_URL)
    client = app.test_client()
    sign_in(client, make_agent(app).email)
    response = client.post("/agent/models/retrain", data={"csrf_token": csrf_token(client, "/agent/models")},
                           follow_redirects=True)
    assert response.status_code == 200 and "could not be queued" in response.get_data(as_text=True)


@both_backends
def test_rollback_buttons(signed_in, sessions, model_dir):
    _two_champions_and_a_reject(sessions, model_dir)
    token = csrf_token(signed_in, "/agent/models")
    response = signed_in.post("/agent/models/rollback", data={"csrf_token": token}, follow_redirects=True)
    assert "v0 is the champion again (was v1)" in response.get_data(as_text=True)
    assert current_version(model_dir) == "v0"
    response = signed_in.post("/agent/models/rollback", data={"csrf_token": token, "to": "v2"},
                              follow_redirects=True)
    assert "v2 is the champion again (was v0)" in response.get_data(as_text=True)
    assert current_version(model_dir) == "v2"
    with sessions() as session:
        assert "by hana@example.jp" in (registry.champion(session).reason or "")  # type: ignore[union-attr]
    response = signed_in.post("/agent/models/rollback", data={"csrf_token": token, "to": "nope"},
                              follow_redirects=True)
    assert "Nothing changed" in response.get_data(as_text=True) and current_version(model_dir) == "v2"
    assert signed_in.post("/agent/models/rollback", data={"csrf_token": token, "to": "../x"}).status_code == 400


# --- what a new user sees: the model that routes, readable times, who retrains, the same counts everywhere ---------

_LOCAL = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d JST")


def test_first_visit_adopts_the_model_in_current_without_writing_model_dir(signed_in, sessions, model_dir):
    """`furiwake train` (make run) made a version current before the registry knew of it: the first visit shows it
    as the champion, and adopting a version CURRENT already names writes nothing (an API may only read MODEL_DIR)."""
    set_current(model_dir, fake_version(model_dir, "20261203-100000-abcdef"))
    before = (model_dir / "CURRENT").stat().st_ino
    html = signed_in.get("/agent/models").get_data(as_text=True)
    assert "No model is registered" not in html and "No model yet" not in html
    assert 'Routing now: <span class="mono">20261203-100000-abcdef</span>' in html and "badge-champion" in html
    assert (model_dir / "CURRENT").stat().st_ino == before
    with sessions() as session:
        assert registry.champion(session).trigger == "initial"  # type: ignore[union-attr]


def test_first_visit_shows_the_served_model_even_when_the_registry_cannot_record_it(signed_in, model_dir):
    """A meta.json without created_at (written by hand, or by an older trainer) cannot be registered, but the
    workers serve it: the page says what routes, never that there is no model."""
    version = fake_version(model_dir, "handmade")
    meta = json.loads((model_dir / version / "meta.json").read_text(encoding="utf-8"))
    del meta["created_at"]
    (model_dir / version / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    set_current(model_dir, version)
    html = signed_in.get("/agent/models").get_data(as_text=True)
    assert "No model is registered" not in html and "No model yet" not in html
    assert 'Routing now: <span class="mono">handmade</span>' in html and "not recorded it yet" in html


def test_times_are_local_and_keep_the_exact_instant(signed_in, sessions, model_dir):
    _two_champions_and_a_reject(sessions, model_dir)
    html = signed_in.get("/agent/models").get_data(as_text=True)
    shown = re.findall(r'<time datetime="([^"]+)" title="([^"]+)" data-relative>([^<]+)</time>', html)
    assert len(shown) >= 4, html  # the champion's "since" and every version's creation
    for exact, local, relative in shown:
        instant = datetime.fromisoformat(exact)
        assert instant.utcoffset() == timedelta(hours=9) and _LOCAL.fullmatch(local), (exact, local)
        assert local == instant.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%Y-%m-%d %H:%M JST")
        assert relative == "just now" or relative.endswith(" ago"), relative
    assert not re.search(r">[^<]*\d{4}-\d\d-\d\dT\d\d:\d\d", html)  # no raw ISO string as text


def test_times_follow_display_timezone(make_app):
    app = make_app(display_timezone="UTC")
    client = app.test_client()
    sign_in(client, make_agent(app).email)
    model_dir = app.extensions["furiwake"].settings.model_dir
    set_current(model_dir, fake_version(model_dir, "v0"))
    html = client.get("/agent/models").get_data(as_text=True)
    assert re.search(r'<time datetime="[^"]+\+00:00" title="\d{4}-\d\d-\d\d \d\d:\d\d UTC"', html)
    assert " JST" not in html


def test_a_running_retrain_says_since_when_and_who_started_it_and_the_page_reloads(signed_in, sessions, model_dir):
    set_current(model_dir, fake_version(model_dir, "v0"))
    html = signed_in.get("/agent/models").get_data(as_text=True)
    assert 'http-equiv="refresh"' not in html  # nothing running: the page stays still
    lease = registry.Lease(sessions, registry.RETRAIN_LEASE, 300, holder=registry.default_holder("button"))
    assert lease.acquire()  # as the trainer takes it for a retrain the button asked for
    holder = lease.holder
    html = signed_in.get("/agent/models").get_data(as_text=True)
    text = visible_text(html)
    since = r"Retrain running since (just now|\d+ \w+ ago) ?, "
    assert re.search(since + r"started by an agent \(Retrain now\)", text)
    assert holder not in html and holder.partition("@")[2] not in html  # no lock id, no host:pid
    assert re.search(r'<meta http-equiv="refresh" content="\d+; url=/agent/models">', html)


def test_after_the_retrain_button_the_page_looks_again_shortly(signed_in, broker):
    response = signed_in.post("/agent/models/retrain", data={"csrf_token": csrf_token(signed_in, "/agent/models")})
    assert response.status_code == 303 and response.headers["Location"].endswith("/agent/models?queued=1")
    html = signed_in.get(response.headers["Location"]).get_data(as_text=True)
    assert re.search(r'<meta http-equiv="refresh" content="\d+; url=/agent/models">', html)


@both_backends
def test_every_version_counts_its_rows_the_same_way(signed_in, sessions, model_dir):
    """v0 adopted from CURRENT, v1 registered by a retrain on the same meta.json counts: the same figures. (A retrain
    passes its input, duplicates included and both splits per route; meta.json counts what train() kept.)"""
    from core.artifacts import read_meta

    set_current(model_dir, fake_version(model_dir, "v0"))
    in_unit_of_work(sessions, registry.sync, model_dir)
    fake_version(model_dir, "v1")
    retrain_counts = {"rows": 130, "by_route": {"Account": 50, "Payment": 50, "Other": 30}, "input_hash": "x",
                      "by_source": {"corpus": 120, "corrections": 6, "resolved": 4}}
    in_unit_of_work(sessions, registry.register_candidate, read_meta(model_dir / "v1"), "button", retrain_counts)
    listed = {row["version"]: row["train_counts"] for row in signed_in.get("/agent/models/versions.json").get_json()}
    for key in ("rows", "train_rows", "validation_rows", "by_route"):
        assert listed["v0"].get(key) == listed["v1"].get(key), key
    assert listed["v1"]["rows"] == 100 and listed["v1"]["by_source"]["corpus"] == 120
    html = signed_in.get("/agent/models").get_data(as_text=True)
    assert visible_text(html).count("100 rows 20 held out for validation trained on: Account 30 · Payment 30") == 2
