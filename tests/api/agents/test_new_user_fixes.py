"""What a new user found on the agents' side: the Models page on a fresh `make run` (the model the workers serve is
registered and listed, readable times, no lock ids, each version's calibration and review thresholds, a page that
reloads only while a retrain runs), and Resolve leading on to the next ticket of the queue the agent came from.

Real database and broker; model artifacts are stubs as train() leaves them on disk (the page loads no model)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core import registry
from core.artifacts import read_meta, set_current
from core.orm import ModelVersion
from tests.support.agents import post_form, sign_in, ticket_row, visible_text
from tests.support.registry import fake_version, in_unit_of_work

THRESHOLDS = {"Account": 0.62, "Payment": 0.58, "Other": 0.9}
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")


@pytest.fixture
def model_dir(app: Flask) -> Path:
    return app.extensions["furiwake"].settings.model_dir


@pytest.fixture
def runtime(app: Flask):
    return app.extensions["furiwake"]


def trained(model_dir: Path, version: str, *, ece: float | None = 0.0312,
            thresholds: dict[str, float] | None = None, calibration: dict[str, float] | None = None,
            model: dict[str, object] | None = None, arms: dict[str, float] | None = None) -> str:
    """A version as `furiwake train` leaves it: its meta.json has the review thresholds and the validation ECE
    (and, given `model`, the network's configuration)."""
    fake_version(model_dir, version)
    path = model_dir / version / "meta.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    if ece is not None:
        meta["metrics"]["validation"]["ece"] = ece
    if calibration is not None:
        meta["metrics"]["validation"]["calibration"] = calibration
    if arms is not None:
        meta["metrics"]["validation"]["arms"] = arms
    meta["labels"] = ["Account", "Payment", "Other"]
    meta["thresholds"] = THRESHOLDS if thresholds is None else thresholds
    if model is not None:
        meta["model"] = model
    path.write_text(json.dumps(meta), encoding="utf-8")
    return version


def _text_outside_tags(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


# --- the Models page on a fresh `make run` ------------------------------------------------------------------------

def test_the_worker_registers_the_model_make_run_trained_and_the_page_lists_it(
        signed_in: FlaskClient, runtime, model_dir: Path) -> None:
    """`make run` trains into MODEL_DIR (CURRENT, no database involved), then the worker loads it: that lookup
    records it in model_versions, with its files in model_artifacts, before any agent opens the page."""
    from worker.current_model import CurrentModel

    version = trained(model_dir, "20261203-090000-a1b2c3")
    set_current(model_dir, version)
    with runtime.sessions() as session:
        assert session.get(ModelVersion, version) is None
    model = CurrentModel(model_dir, reader=runtime.sessions.begin, writer=runtime.unit_of_work)
    wanted, path = model._wanted(time.monotonic())  # the worker's lookup, without loading TensorFlow
    assert wanted == version and path == model_dir / version
    with runtime.sessions() as session:
        row = session.get(ModelVersion, version)
        assert row is not None and row.status == "champion" and row.trigger == "initial"
        assert registry.champion(session).version == version  # type: ignore[union-attr]
        from core import model_store
        assert model_store.is_servable(model_store.manifest(session, version))

    html = signed_in.get("/agent/models").get_data(as_text=True)
    assert "No model" not in html and "No version in the registry" not in html
    assert f'Routing now: <span class="mono">{version}</span>' in html and "badge-champion" in html
    assert f'data-version="{version}"' in html


def test_the_page_shows_each_versions_calibration_and_review_thresholds(signed_in: FlaskClient, runtime,
                                                                        model_dir: Path) -> None:
    set_current(model_dir, trained(model_dir, "v0"))
    in_unit_of_work(runtime.sessions, registry.sync, model_dir)
    trained(model_dir, "v1", ece=0.0457, thresholds={"Account": 0.5, "Payment": 0.66, "Other": 0.74},
            calibration={"temperature": 1.8412, "ece_before": 0.061, "target_precision": 0.97,
                         "blend_temperature": 0.7634, "linear_temperature": 0.5981, "coverage_floor": 0.2803},
            model={"members": 3, "lstm_units": 64, "bidirectional": False, "wide": True, "wide_units": 32,
                   "linear": True},
            arms={"network": 0.9012, "linear": 0.8876, "averaged": 0.9105})
    in_unit_of_work(runtime.sessions, registry.register_candidate, read_meta(model_dir / "v1"), "button",
                    {"by_source": {"corpus": 90, "corrections": 8, "resolved": 2}})
    listed = {row["version"]: row for row in signed_in.get("/agent/models/versions.json").get_json()}
    assert listed["v0"]["thresholds"] == THRESHOLDS and listed["v0"]["calibration_error"] == pytest.approx(0.0312)
    assert listed["v1"]["thresholds"]["Payment"] == 0.66 and listed["v1"]["calibration_error"] == pytest.approx(0.0457)
    text = visible_text(signed_in.get("/agent/models").get_data(as_text=True))
    assert "calibration error (ECE) 0.0312" in text and "calibration error (ECE) 0.0457" in text
    assert "review below: Account 0.62 · Payment 0.58 · Other 0.90" in text
    assert "review below: Account 0.50 · Payment 0.66 · Other 0.74" in text
    assert "temperature 1.84, target precision 0.97" in text and text.count("target precision") == 1  # v0 has none
    assert "linear arm temperature 0.60, average 0.76" in text and text.count("linear arm temperature") == 1
    assert "review if n-gram coverage is below 0.28" in text and text.count("n-gram coverage") == 1
    assert "REVIEW_THRESHOLDS replaces them" not in text  # none configured
    # What the network is: v1's meta.json says (three members), v0's does not, so the page claims nothing for it.
    assert listed["v1"]["architecture"] == {"members": 3, "lstm_units": 64, "bidirectional": False, "ngram_units": 32,
                                            "linear": True,
                                            "arms": {"network": 0.9012, "linear": 0.8876, "averaged": 0.9105}}
    assert ("3 LSTM networks averaged (64 units each) · character n-gram arm · averaged with a linear model over the"
            " raw text's character n-grams") in text and text.count("LSTM net") == 1
    assert "validation macro-F1: network 0.9012 · linear 0.8876 · averaged 0.9105" in text


def test_a_version_registered_before_thresholds_were_kept_shows_them_from_its_meta(signed_in: FlaskClient, runtime,
                                                                                   model_dir: Path) -> None:
    set_current(model_dir, trained(model_dir, "old"))
    in_unit_of_work(runtime.sessions, registry.sync, model_dir)
    with runtime.unit_of_work() as session:  # as an older registry stored it: validation figures only
        row = session.get(ModelVersion, "old")
        row.metrics = {"validation": {k: v for k, v in row.metrics["validation"].items() if k != "ece"}}
    text = visible_text(signed_in.get("/agent/models").get_data(as_text=True))
    assert "review below: Account 0.62 · Payment 0.58 · Other 0.90" in text
    assert "calibration error" not in text  # not recorded: nothing shown rather than a guess


def test_a_version_without_thresholds_or_calibration_shows_neither(signed_in: FlaskClient, runtime,
                                                                   model_dir: Path) -> None:
    set_current(model_dir, trained(model_dir, "bare", ece=None, thresholds={}))
    text = visible_text(signed_in.get("/agent/models").get_data(as_text=True))
    assert "bare" in text and "review below" not in text and "calibration error" not in text


def test_configured_review_thresholds_are_said_to_replace_the_models(make_app) -> None:
    app = make_app(review_thresholds={"Payment": 0.7})
    client = app.test_client()
    from tests.support.agents import make_agent

    sign_in(client, make_agent(app).email)
    model_dir = app.extensions["furiwake"].settings.model_dir
    set_current(model_dir, trained(model_dir, "v0"))
    text = visible_text(client.get("/agent/models").get_data(as_text=True))
    assert "REVIEW_THRESHOLDS replaces them for: Payment 0.70." in text


def test_while_a_retrain_runs_the_page_reloads_shows_no_lock_id_and_no_raw_timestamp(
        signed_in: FlaskClient, runtime, model_dir: Path) -> None:
    set_current(model_dir, trained(model_dir, "v0"))
    html = signed_in.get("/agent/models").get_data(as_text=True)
    assert 'http-equiv="refresh"' not in html  # nothing running: nothing reloads under the agent's eyes
    lease = registry.Lease(runtime.sessions, registry.RETRAIN_LEASE, 300, holder=registry.default_holder("schedule"))
    assert lease.acquire()
    html = signed_in.get("/agent/models").get_data(as_text=True)
    assert re.search(r'<meta http-equiv="refresh" content="\d+; url=/agent/models">', html)
    text = _text_outside_tags(html)
    assert "started by the nightly schedule" in text
    _trigger, _at, process = lease.holder.partition("@")
    for secret in (lease.holder, process, process.rsplit(":", 1)[-1]):
        assert secret not in html, secret
    assert not ISO.search(text), ISO.search(text)
    lease.release()
    assert 'http-equiv="refresh"' not in signed_in.get("/agent/models").get_data(as_text=True)


def test_every_time_on_the_page_is_local_with_the_exact_instant_kept_for_machines(
        signed_in: FlaskClient, runtime, model_dir: Path) -> None:
    """Promoted, retired and rolled-back versions write times into their reasons too: none may be an ISO string."""
    set_current(model_dir, trained(model_dir, "v0"))
    in_unit_of_work(runtime.sessions, registry.sync, model_dir)
    trained(model_dir, "v1")
    in_unit_of_work(runtime.sessions, registry.register_candidate, read_meta(model_dir / "v1"), "button", {})
    figures = {"macro_f1": 0.9, "accuracy": 0.9, "per_route": {}}
    in_unit_of_work(runtime.sessions, registry.record_evaluation, "v1", {"candidate": figures}, "v0")
    in_unit_of_work(runtime.sessions, registry.promote, model_dir, "v1", "promoted", expected_champion="v0")
    in_unit_of_work(runtime.sessions, registry.rollback, model_dir, actor="hana@example.jp")
    html = signed_in.get("/agent/models").get_data(as_text=True)
    assert not ISO.search(_text_outside_tags(html)), ISO.search(_text_outside_tags(html))
    assert len(re.findall(r"<time datetime=", html)) >= 3


# --- Resolve, then the next ticket of the same queue ----------------------------------------------------------------

def _link(html: str, pattern: str) -> str:
    match = re.search(pattern, html)
    assert match, pattern
    return match.group(1).replace("&amp;", "&")


def test_resolving_from_a_queue_leads_to_that_queues_next_ticket_by_the_pages_own_links(
        app: Flask, signed_in: FlaskClient, add_ticket) -> None:
    """Followed as an agent clicks: the Payment tab, a ticket in it, its Resolve button."""
    first = add_ticket("一件目", route="Payment", scores=(0.05, 0.9, 0.05))
    add_ticket("別の窓口", route="Account")
    second = add_ticket("二件目", route="Payment", scores=(0.05, 0.9, 0.05))

    queue_page = signed_in.get("/agent/?queue=payment").get_data(as_text=True)
    ticket_url = _link(queue_page, rf'href="(/agent/tickets/{first.id}\?queue=payment)"')
    ticket_page = signed_in.get(ticket_url).get_data(as_text=True)
    resolve_url = _link(ticket_page, r'action="(/agent/tickets/[^"]+/resolve[^"]*)"')
    response = post_form(signed_in, resolve_url, ticket_url)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/agent/tickets/{second.id}?queue=payment"
    assert ticket_row(app, first.id).status == "resolved"
    page = signed_in.get(response.headers["Location"]).get_data(as_text=True)
    assert f"Resolved. Next: {second.reference}" in visible_text(page)

    resolved = signed_in.get(ticket_url).get_data(as_text=True)  # the one just resolved: nothing left to do
    assert "route-button" not in resolved and "/route" not in resolved and "/resolve" not in resolved

    resolve_url = _link(page, r'action="(/agent/tickets/[^"]+/resolve[^"]*)"')
    response = post_form(signed_in, resolve_url, response.headers["Location"])
    assert response.headers["Location"] == "/agent/?queue=payment"  # the Account ticket is another queue's
    assert "Nothing else is waiting in this queue" in signed_in.get("/agent/?queue=payment").get_data(as_text=True)
