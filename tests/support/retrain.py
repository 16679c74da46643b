"""Shared by the retrain tests (tests/training/test_registry_retrain.py, tests/e2e/test_retrain_e2e.py).

Training stays tiny: a 400-ticket stratified slice of the bundled corpus and a few epochs. The agents' "new
knowledge" is a drift the bundled model cannot know: tickets that name the new premium membership
(`MARKER`) belong to the Account team, whatever else they say; the bodies come from Other tickets outside the
slice, so the old model routes them to Other.
"""

from __future__ import annotations

import atexit
import functools
import random
import shutil
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from core.orm import Correction, Ticket
from tests.support.paths import CORPUS

MARKER = "【プレミアム会員サポート】"
SLICE = 400
EPOCHS = 4
SEED = 7


@functools.cache
def _scratch() -> Path:
    path = Path(tempfile.mkdtemp(prefix="furiwake-retrain-tests-"))
    atexit.register(shutil.rmtree, path, True)
    return path


@functools.cache
def _split() -> tuple[list, list]:
    """(the slice, the rest) of the bundled corpus, fixed."""
    from training.datasets import load

    examples = list(load(CORPUS).deduplicated().examples)
    random.Random(SEED).shuffle(examples)
    by_route: dict[str, list] = {}
    for example in examples:
        by_route.setdefault(example.route, []).append(example)
    picked = [e for route in sorted(by_route) for e in by_route[route][: SLICE // 3 + 1]][:SLICE]
    chosen = {id(e) for e in picked}
    return picked, [e for e in examples if id(e) not in chosen]


def tiny_corpus() -> Path:
    """The slice as a seed TSV with a route column (RETRAIN_CORPUS)."""
    path = _scratch() / "tiny-corpus.tsv"
    if not path.exists():
        rows = ["id\tquestion\tanswer\tcategory\troute"]
        for i, e in enumerate(_split()[0]):
            rows.append(f"S{i:04d}\t{e.text.replace(chr(10), chr(92) + 'n')}\t-\t{e.category}\t{e.route}")
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def train_options(**overrides: object):  # type: ignore[no-untyped-def]
    from training.retrain import INNER_VALIDATION
    from training.train import TrainOptions

    return TrainOptions(**{"epochs": EPOCHS, "patience": 2, "validation_fraction": INNER_VALIDATION, **overrides})


@functools.cache
def _champion_dir() -> Path:
    """v1: what a retrain without any agent data trains on the slice (trained once per test session)."""
    from training.datasets import load
    from training.retrain import corpus_split
    from training.train import train

    corpus_train, _ = corpus_split(load(tiny_corpus()))
    model_dir = _scratch() / "champion"
    train(corpus_train, model_dir, train_options(), progress=None, make_current=True, trigger="initial")
    return model_dir


def champion_into(model_dir: Path) -> str:
    """Copy v1 into `model_dir` and make it CURRENT (the registry adopts it as the initial champion)."""
    from core.artifacts import current_version, set_current

    source = _champion_dir()
    version = current_version(source)
    assert version is not None
    model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source / version, model_dir / version)
    set_current(model_dir, version)
    return version


def drift_texts(n: int, offset: int = 0) -> list[str]:
    """Other tickets from outside the slice, each naming the premium membership."""
    others = [e.text for e in _split()[1] if e.route == "Other"]
    return [f"{MARKER}{text}" for text in others[offset : offset + n]]


def add_corrections(sessions: sessionmaker[Session], texts: Iterable[str], model_version: str | None,
                    corrected: str = "Account") -> list[uuid.UUID]:
    """Tickets routed to Other by `model_version`, each re-routed by an agent (as core.agents.reroute stores it)."""
    ids = []
    with sessions() as session, session.begin():
        for text in texts:
            ticket = Ticket(channel="api", body=text, status="routed", route=corrected, model_version=model_version,
                            score_account=0.1, score_payment=0.1, score_other=0.8, confidence=0.8, attempts=1)
            session.add(ticket)
            session.flush()
            session.add(Correction(ticket_id=ticket.id, predicted_route="Other", corrected_route=corrected,
                                   model_version=model_version))
            ids.append(ticket.id)
    return ids
