"""One retrain: learn from the agents' work, compare with the champion on a fixed evaluation set, promote or reject.

Called by `furiwake retrain` (in-process) and by the `furiwake.retrain` Celery task on the `training` queue (beat
at night, the Models page's button); both run `retrain()`. Only one runs at a time, anywhere: the `retrain` lease
(core/registry.py) is taken first and renewed while training; a second caller returns `skipped` at once.

Training data (the first label of a text wins, so agents' corrections come first):
1. agents' corrections: the newest correction of each ticket, its corrected route (weight RETRAIN_WEIGHT_CORRECTION),
   except the held-out ones (a fixed RETRAIN_HOLDOUT_PERCENT share of tickets, by a hash of the ticket id);
2. resolved tickets no agent corrected: the route they were routed with was confirmed (RETRAIN_WEIGHT_RESOLVED);
3. the bundled corpus minus its evaluation part (RETRAIN_WEIGHT_CORPUS).
The fine category head learns, from the same rows: the correction's corrected category (a correction of the route
alone teaches it nothing: the category predicted with the wrong route is not one an agent vouched for), a resolved
ticket's fine category (confirmed like its route), the corpus's category column. A row without one trains the
route head only (weight 0 on the category head, training.train.category_targets).

Evaluation set, scored for champion and challenger side by side through the serving Predictor:
- the corpus's evaluation part: exactly the 20 % validation split `train()` keeps out of the bundled model
  (stratified, seed 20261124, on the deduplicated corpus), so the shipped champion never saw a row of it;
- the newest RETRAIN_EVAL_CORRECTIONS held-out corrections: today's traffic, which no model has trained on.
Resolved tickets are never in it: their labels are the champion's own predictions and would flatter it.
Fine-category accuracy on the rows of it that have a fine label is recorded beside the route figures; it never
decides anything.

Decision: promote when the challenger's macro-F1 beats the champion's by more than RETRAIN_MIN_GAIN and it loses at
most RETRAIN_MAX_CORPUS_DROP of macro-F1 on the corpus part (agents' data, even wrong, cannot buy its gain by
forgetting the established routes); else record it as rejected with the figures. No promotion happens without
that comparison (except when there is no champion at all), so the router never gets worse by itself. A run whose
training data is the same as a version already compared with the current champion is skipped as `unchanged`
(nothing new to learn) unless forced.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core import registry
from core.config import Settings
from core.orm import Correction, Ticket
from core.routes import ROUTES, RouteMap
from core.runtime import Runtime
from core.text import clean, ticket_text
from training.datasets import CORPUS, Dataset, Example, guess_format, load
from training.train import TrainOptions, category_labels, split

log = logging.getLogger(__name__)

BUNDLED_CORPUS = Path(__file__).resolve().parent.parent / "data" / "tickets.tsv"
CORRECTION = "agent correction"  # the Example.origin of each source: train() weighs rows by origin
RESOLVED = "resolved ticket"
EVAL_FRACTION = TrainOptions().validation_fraction  # the corpus part: train()'s own default validation split
INNER_VALIDATION = 0.1  # train()'s early stopping and review thresholds, inside the training data
REPLAY_TICKETS = 500
DECISIONS = ("promoted", "rejected", "unchanged", "skipped")


@dataclass
class RetrainData:
    train: Dataset
    eval_texts: list[str]
    eval_routes: list[str]
    eval_parts: list[str]  # "corpus" or "corrections", per evaluation row
    eval_categories: list[str | None]  # the fine label per evaluation row; None where there is none
    by_source: dict[str, int]
    weights: dict[str, float]
    eval_hash: str

    def by_route(self) -> dict[str, int]:
        return self.train.route_counts()


@dataclass
class RetrainOutcome:
    decision: str  # one of DECISIONS
    reason: str
    trigger: str
    version: str | None = None  # the challenger trained by this run
    champion_version: str | None = None  # the champion it was compared with
    candidate_macro_f1: float | None = None
    champion_macro_f1: float | None = None
    champion_after: str | None = None
    train_counts: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def holdout_bucket(key: str) -> int:
    """0..99, fixed for a ticket: whether its correction is held out never changes between runs."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100


def _usable(text: str) -> bool:
    return bool(clean(text))


def corpus_split(corpus: Dataset) -> tuple[Dataset, Dataset]:
    """(training part, evaluation part) of the deduplicated corpus: train()'s default validation split."""
    corpus = corpus.deduplicated()
    train_idx, eval_idx = split(corpus, EVAL_FRACTION, TrainOptions().seed)
    return (Dataset([corpus.examples[i] for i in train_idx], corpus.dropped),
            Dataset([corpus.examples[i] for i in eval_idx]))


def build_data(session: Session, settings: Settings, corpus: Dataset) -> RetrainData:
    """The training set and the evaluation set of this run (see the module docstring)."""
    config = settings.retrain
    corpus_train, corpus_eval = corpus_split(corpus)

    # ticket id → (text, corrected route, corrected category or None): the newest correction wins, whole
    latest: dict[str, tuple[str, str, str | None]] = {}
    for ticket_id, route, category, subject, body in session.execute(
        select(Correction.ticket_id, Correction.corrected_route, Correction.corrected_category, Ticket.subject,
               Ticket.body)
        .join(Ticket, Ticket.id == Correction.ticket_id)
        .order_by(Correction.created_at, Correction.id)
    ):
        latest.pop(str(ticket_id), None)  # re-insert: dict order becomes the order of each ticket's newest change
        latest[str(ticket_id)] = (ticket_text(subject, body), route, category or None)
    held_out = [(key, value) for key, value in latest.items() if holdout_bucket(key) < config.holdout_percent]
    eval_corrections = held_out[-config.eval_corrections:] if config.eval_corrections else []
    held_keys = {key for key, _ in held_out}
    corrections = [Example(text, route, category, f"correction:{key}", CORRECTION)
                   for key, (text, route, category) in latest.items() if key not in held_keys and _usable(text)]

    resolved: list[Example] = []
    if config.max_resolved and config.weight_resolved > 0:
        uncorrected = ~select(Correction.id).where(Correction.ticket_id == Ticket.id).exists()
        # A rule's route is an admin's policy ("VIP customers → Other"), not what the text says: a ticket a rule
        # routed away from the model's choice teaches nothing about the text, unless an agent corrected it.
        text_route = or_(Ticket.rule_id.is_(None), Ticket.route == Ticket.model_route)
        for ticket_id, subject, body, confirmed, fine in session.execute(
            select(Ticket.id, Ticket.subject, Ticket.body, Ticket.route, Ticket.fine_category)
            .where(Ticket.status == "resolved", Ticket.route.in_(ROUTES), uncorrected, text_route)
            .order_by(func.coalesce(Ticket.resolved_at, Ticket.created_at).desc())
            .limit(config.max_resolved)
        ):
            text = ticket_text(subject, body)
            if _usable(text):
                resolved.append(Example(text, str(confirmed), fine or None, f"resolved:{ticket_id}", RESOLVED))

    eval_examples = [Example(text, route, category, f"correction:{key}", CORRECTION)
                     for key, (text, route, category) in reversed(eval_corrections) if _usable(text)]
    eval_examples += [replace(e, origin=CORPUS) for e in corpus_eval.examples]
    evaluation = Dataset(eval_examples).deduplicated()  # a held-out correction wins over a corpus row
    eval_texts = {e.text for e in evaluation.examples}

    sources = (
        [] if config.weight_correction <= 0 else corrections,
        resolved,
        [] if config.weight_corpus <= 0 else corpus_train.examples,
    )
    # Nothing the evaluation set holds may be trained on, whichever source brings it.
    train_examples = [e for source in sources for e in source if e.text not in eval_texts]
    training = Dataset(train_examples, Counter(corpus.dropped)).deduplicated()
    names = {CORRECTION: "corrections", RESOLVED: "resolved"}
    counted = Counter(names.get(e.origin, "corpus") for e in training.examples)
    weights = {CORRECTION: config.weight_correction, RESOLVED: config.weight_resolved}
    if config.weight_corpus != 1.0:
        weights[CORPUS] = config.weight_corpus
    return RetrainData(
        train=training,
        eval_texts=[e.text for e in evaluation.examples],
        eval_routes=[e.route for e in evaluation.examples],
        eval_parts=["corrections" if e.origin == CORRECTION else "corpus" for e in evaluation.examples],
        eval_categories=[e.category for e in evaluation.examples],
        by_source={source: counted.get(source, 0) for source in ("corpus", "corrections", "resolved")},
        weights=weights,
        eval_hash=evaluation.content_hash(),
    )


def load_corpus(settings: Settings) -> Dataset:
    path = settings.retrain.corpus or BUNDLED_CORPUS
    return load(path, guess_format(path), RouteMap.load(settings.route_map_file))


def input_hash(data: RetrainData, options: TrainOptions) -> str:
    """Everything that decides what a retrain would learn: rows, labels, weights, options."""
    described = {k: v for k, v in asdict(options).items() if k != "model"}
    described["model"] = repr(options.model)
    blob = json.dumps([data.train.content_hash(), data.weights, described], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _part_scores(gold: list[str], parts: list[str], scores: Any, categories: list[str | None],
                 category_labels: list[str]) -> dict[str, Any]:
    """The whole set's full metrics, plus accuracy per part, and macro-F1 for the corpus part (the corrections may
    lack a route, where macro-F1 would mislead); and fine-category accuracy and macro-F1 where the model has the
    head (`scores` is serving.predictor.Scores)."""
    import numpy as np
    from sklearn.metrics import f1_score

    from training.metrics import category_scores, score

    probabilities = scores.routes
    metrics = score(gold, probabilities)
    if scores.categories is not None:
        metrics["category"] = category_scores(categories, scores.categories, category_labels)
    predicted = [ROUTES[i] for i in probabilities.argmax(axis=1)]
    metrics["parts"] = {}
    for part in ("corpus", "corrections"):
        rows = [i for i, p in enumerate(parts) if p == part]
        if rows:
            correct = np.array([predicted[i] == gold[i] for i in rows])
            metrics["parts"][part] = {"n": len(rows), "accuracy": float(correct.mean())}
            if part == "corpus":
                metrics["parts"][part]["macro_f1"] = float(f1_score(
                    [gold[i] for i in rows], [predicted[i] for i in rows], labels=list(ROUTES), average="macro",
                    zero_division=0))
    return metrics


def _corpus_macro_f1(metrics: dict[str, Any] | None) -> float:
    return float(((metrics or {}).get("parts") or {}).get("corpus", {}).get("macro_f1", 0.0))


def decide(candidate: dict[str, Any], champion: dict[str, Any] | None, champion_version: str | None,
           margin: float, max_corpus_drop: float, where: str = "") -> tuple[str, str]:
    """("promoted" | "rejected", the reason with the figures) from both models' scores on the evaluation set."""
    new = candidate["macro_f1"]
    if champion is None:
        return "promoted", f"promoted: no champion to compare with; macro-F1 {new:.4f} {where}".rstrip()
    old = champion["macro_f1"]
    figures = f"macro-F1 {new:.4f} vs {old:.4f} for the champion {champion_version}"
    if new - old <= margin:
        return "rejected", f"rejected: {figures} ({new - old:+.4f}, needed > {margin:+g}) {where}".rstrip()
    drop = _corpus_macro_f1(champion) - _corpus_macro_f1(candidate)
    if drop > max_corpus_drop:
        return "rejected", (f"rejected: {figures} (+{new - old:.4f} > margin {margin:g}) {where}, but it loses "
                            f"{drop:.4f} macro-F1 on the corpus part (more than RETRAIN_MAX_CORPUS_DROP "
                            f"{max_corpus_drop:g})")
    return "promoted", f"promoted: {figures} (+{new - old:.4f} > margin {margin:g}) {where}".rstrip()


def _top_route(account: float | None, payment: float | None, other: float | None) -> str:
    scores = dict(zip(ROUTES, (account or 0.0, payment or 0.0, other or 0.0), strict=True))
    return max(scores, key=lambda route: scores[route])


def _replay(session: Session, champion_version: str | None, candidate: Any) -> dict[str, Any] | None:
    """Shadow replay: how often the challenger agrees with the champion on the newest tickets it routed (the
    champion's own choice: its highest score, whatever an agent set since)."""
    if champion_version is None:
        return None
    rows = session.execute(
        select(Ticket.subject, Ticket.body, Ticket.score_account, Ticket.score_payment, Ticket.score_other)
        .where(Ticket.model_version == champion_version, Ticket.score_account.is_not(None))
        .order_by(Ticket.routed_at.desc())
        .limit(REPLAY_TICKETS)
    ).all()
    if not rows:
        return None
    champion_routes = [_top_route(row[2], row[3], row[4]) for row in rows]
    predictions = candidate.predict([ticket_text(row[0], row[1]) for row in rows])
    agree = sum(p.route == c for p, c in zip(predictions, champion_routes, strict=True))
    return {"tickets": len(rows), "agreement": agree / len(rows)}


def retrain(
    runtime: Runtime,
    *,
    trigger: str,
    force: bool = False,
    options: TrainOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> RetrainOutcome:
    """Run one retrain under the `retrain` lease; returns what was decided and why (never raises for a busy lock).

    A sequence of short units of work on the caller's Runtime (sync, read the data, register, record, decide,
    prune), none of them open while the model trains or is evaluated: a transaction held for minutes would pin
    locks and, on SQLite, the writer.
    """
    lease = registry.Lease(runtime.sessions, registry.RETRAIN_LEASE, runtime.settings.retrain.lease_seconds,
                           holder=registry.default_holder(trigger))  # the Models page says who started it
    if not lease.acquire():
        with runtime.unit_of_work() as session:
            state = registry.lease_state(session)
        held = f" by {state.holder} since {state.acquired_at:%Y-%m-%d %H:%M:%S} UTC" if state else ""
        return RetrainOutcome("skipped", f"another retrain is running{held}", trigger)
    try:
        with lease.kept_alive():
            return _retrain(runtime, lease, trigger, force, options, progress)
    finally:
        lease.release()


def _say(progress: Callable[[str], None] | None, message: str) -> None:
    if progress is not None:
        progress(message)
    log.info("%s", message)


def _retrain(
    runtime: Runtime,
    lease: registry.Lease,
    trigger: str,
    force: bool,
    options: TrainOptions | None,
    progress: Callable[[str], None] | None,
) -> RetrainOutcome:
    from serving.predictor import Predictor
    from training import plots
    from training.train import train

    settings = runtime.settings
    started = time.monotonic()
    seconds: dict[str, float] = {}
    model_dir = settings.model_dir
    with runtime.unit_of_work() as session:
        champion_version = registry.sync(session, model_dir)
    with runtime.unit_of_work() as session:
        data = build_data(session, settings, load_corpus(settings))
    base = options or TrainOptions(epochs=settings.retrain.epochs, validation_fraction=INNER_VALIDATION,
                                   target_precision=settings.retrain.target_precision)
    train_options = replace(base, sample_weights={**data.weights, **base.sample_weights})
    fingerprint = input_hash(data, train_options)
    # "categories": what the API lists as the fine labels an agent may pick (it cannot read meta.json's via Keras).
    train_counts = {"by_route": data.by_route(), "by_source": data.by_source, "rows": len(data.train),
                    "input_hash": fingerprint, "categories": category_labels(data.train)}
    seconds["data"] = round(time.monotonic() - started, 1)
    _say(progress, f"retrain ({trigger}): {len(data.train)} training rows {data.by_source}, "
                   f"{len(data.eval_texts)} evaluation rows; champion {champion_version}")

    if not force:
        with runtime.unit_of_work() as session:
            for row in registry.versions(session):
                same = row.train_counts.get("input_hash") == fingerprint
                if same and (row.version == champion_version or row.compared_with == champion_version):
                    reason = (f"nothing new to learn: the training data and options are the same as for {row.version} "
                              f"({row.status}), already compared with the champion {champion_version}")
                    return RetrainOutcome("unchanged", reason, trigger, champion_version=champion_version,
                                          champion_after=champion_version, train_counts=train_counts,
                                          seconds=seconds)

    mark = time.monotonic()
    result = train(data.train, model_dir, train_options, progress=progress, make_current=False, trigger=trigger)
    seconds["train"] = round(time.monotonic() - mark, 1)
    with runtime.unit_of_work() as session:
        registry.register_candidate(session, result.meta, trigger, train_counts, result.path)

    try:
        mark = time.monotonic()
        gold, parts, fine = data.eval_routes, data.eval_parts, data.eval_categories
        candidate = Predictor(result.path, warm_up=False)
        evaluation: dict[str, Any] = {
            "eval_set": {"n": len(gold), "hash": data.eval_hash, "corpus": parts.count("corpus"),
                         "corrections": parts.count("corrections")},
            "candidate": _part_scores(gold, parts, candidate.scores(data.eval_texts), fine, candidate.categories),
            "champion": None,
        }
        champion_path = model_dir / champion_version if champion_version else None
        if champion_path is not None and (champion_path / "meta.json").is_file():
            champion = Predictor(champion_path, warm_up=False)
            evaluation["champion"] = _part_scores(gold, parts, champion.scores(data.eval_texts), fine,
                                                  champion.categories)
            del champion
        with runtime.unit_of_work() as session:
            evaluation["replay"] = _replay(session, champion_version, candidate)
        plots.confusion(evaluation["candidate"], result.path / "evaluation.png",
                        title=f"Evaluation set ({len(gold)} rows), this version")
        del candidate
        with runtime.unit_of_work() as session:
            registry.record_evaluation(session, result.version, evaluation, champion_version)
        seconds["evaluate"] = round(time.monotonic() - mark, 1)

        parts = data.eval_parts
        where = (f"on {len(parts)} evaluation rows ({parts.count('corpus')} corpus, "
                 f"{parts.count('corrections')} held-out corrections)")
        decision, reason = decide(evaluation["candidate"], evaluation["champion"], champion_version,
                                  settings.retrain.min_gain, settings.retrain.max_corpus_drop, where)
        outcome = RetrainOutcome(decision, reason, trigger, version=result.version,
                                 champion_version=champion_version,
                                 candidate_macro_f1=evaluation["candidate"]["macro_f1"],
                                 champion_macro_f1=(evaluation["champion"] or {}).get("macro_f1"),
                                 champion_after=champion_version, train_counts=train_counts, evaluation=evaluation,
                                 seconds=seconds)
        if outcome.decision == "promoted":
            try:
                with runtime.unit_of_work() as session:
                    registry.promote(session, model_dir, result.version, outcome.reason, champion_version, lease)
                outcome.champion_after = result.version
            except registry.RegistryError as exc:
                outcome.decision = "rejected"
                outcome.reason = f"rejected: {exc} ({outcome.reason})"
        if outcome.decision == "rejected":
            with runtime.unit_of_work() as session:
                registry.reject(session, result.version, outcome.reason)
    except BaseException as exc:
        # Never leave a version undecided: whatever broke, it is not promoted.
        with contextlib.suppress(Exception), runtime.unit_of_work() as session:
            registry.reject(session, result.version,
                            f"rejected: the evaluation failed ({type(exc).__name__}: {exc})")
        raise
    try:
        with runtime.unit_of_work() as session:
            registry.prune(session, model_dir, settings.retrain.keep_versions)
    except Exception as exc:  # noqa: BLE001 - disk housekeeping must not fail a retrain whose decision is recorded
        log.warning("could not prune old model versions: %s", exc)
    seconds["total"] = round(time.monotonic() - started, 1)
    _say(progress, f"{outcome.reason} [{seconds['total']} s]")
    return outcome
