"""Metrics across real processes: gunicorn with two workers (configured by api.gunicorn_conf, as `furiwake run` and
compose start it) and a classify worker with two Celery children, all writing to one PROMETHEUS_MULTIPROC_DIR. One
scrape of /metrics must add up every process: N tickets posted, N received, N routed."""

from __future__ import annotations

import sys
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from core.artifacts import current_version
from core.migrate import upgrade
from tests.support.processes import Processes, free_port, service_env, start_worker, wait_until

BODIES = ["パスワードを忘れてログインできません", "二重に請求されています", "注文した商品がまだ届きません"]
N = 24


def parse_samples(text: str) -> dict[str, float]:
    """Each sample name summed over every label set (`name`), and over each single label (`name{label=value}`)."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for key in (sample.name, *(f"{sample.name}{{{k}={v}}}" for k, v in sample.labels.items())):
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def _start_api(processes: Processes, env: dict[str, str]) -> str:
    port = free_port()
    processes.start("api", [sys.executable, "-m", "gunicorn", "--config", "python:api.gunicorn_conf",
                            "--bind", f"127.0.0.1:{port}", "--workers", "2", "api.wsgi:app"], env)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(f"{base}/healthz", timeout=1).ok, 60, processes, "API /healthz")
    return base


def _children_loaded(processes: Processes, count: int) -> bool:
    [log] = [log for name, _child, log in processes.children if name == "worker"]
    return log.read_text(errors="replace").count("loaded in") >= count


def test_one_scrape_adds_up_every_process(processes: Processes, trained_model_dir: Path, tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'var' / 'furiwake.db'}"
    upgrade(database_url)
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = service_env(database_url, "filesystem://", trained_model_dir, tmp_path,
                      PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    start_worker(processes, env, embedded=True, concurrency=2)
    base = _start_api(processes, env)
    wait_until(lambda: _children_loaded(processes, 2), 120, processes, "both worker children's model")

    for i in range(N):
        response = requests.post(f"{base}/api/v1/tickets", json={"body": BODIES[i % len(BODIES)]}, timeout=10)
        assert response.status_code == 202, response.text
    samples: dict[str, float] = {}

    def all_routed() -> bool:
        samples.clear()
        samples.update(parse_samples(requests.get(f"{base}/metrics", timeout=10).text))
        return samples.get("furiwake_tickets_routed_total", 0) >= N and samples.get("furiwake_queue_depth") == 0

    wait_until(all_routed, 60, processes, f"{N} tickets routed, as /metrics counts them")
    version = current_version(trained_model_dir)
    assert samples["furiwake_tickets_received_total"] == N
    assert samples["furiwake_tickets_routed_total"] == N
    assert samples["furiwake_routing_latency_seconds_count"] == N
    assert samples[f"furiwake_routing_confidence_count{{model_version={version}}}"] == N
    served = samples.get(f"furiwake_worker_model_processes{{version={version}}}")
    assert served == 2, (sorted(path.name for path in metrics_dir.iterdir()), samples)  # both children, summed
    # Every process wrote its own files: gunicorn's worker(s) and the Celery children, merged by one scrape.
    assert len({path.stem.rsplit("_", 1)[1] for path in metrics_dir.glob("counter_*.db")}) >= 2
