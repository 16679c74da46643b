"""The model registry: which trained versions exist, which one serves (the champion), and why.

The `model_versions` table is the source of truth, and `model_artifacts` holds each version's files
(core/model_store.py): a champion is never crowned without its files stored, so a worker on any machine can fetch
it, and MODEL_DIR on each machine is a cache. Workers learn the champion from the database
(worker/current_model.py: a worker child looks every second on a thread of its own and loads a new version beside
the one serving, then swaps it in). MODEL_DIR/CURRENT is still kept equal to
the champion on the machine that changes it (and by the workers on theirs): `furiwake predict` and `evaluate`
default to it, and `furiwake train` makes a version current through it. Every function here takes the caller's
Session and never commits (the entry point's unit of work does). A change of champion
writes CURRENT inside that transaction, as its last step and while holding the registry's row lock, so two changes
(a promotion and a rollback, say) cannot write the file out of order; if the transaction then ends without a
commit (the commit failed, or the caller raised afterwards), the file is put back (see `_switch`). `sync()` repairs
whatever a crash between the two left behind:

- CURRENT names a version the registry does not know (the registry is new, or `furiwake train` made a version
  current by hand): that version is adopted as the champion (trigger `initial` for the very first, else `cli`);
- CURRENT names a known version that is not the champion (a crash after the file, before the commit; another
  machine changed the champion), or is missing: the database wins, the champion's files are fetched into MODEL_DIR
  if they are not there, and CURRENT is written again.

Versions registered before the database kept files have them on the trainer's disk only: `publish_local` uploads
them (the workers call it when they start, and so do `furiwake models`, `furiwake model …` and every retrain's
prune). Pruning deletes a version's stored files; each worker then deletes its cached copy (model_store.evict).

Jobs that must run alone (retraining) hold a `Lease`: a row taken by a conditional UPDATE and renewed while the
job runs, so a trainer that crashed blocks the next retrain for one lease period at most, on PostgreSQL and on the
embedded SQLite alike.

It lives in core, not training, because the API's Models page (rollback, listing) needs it and the API imports
nothing from training or worker (tests/api/test_factory.py); it needs no TensorFlow and no numpy.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, Table, event, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from core import model_store
from core.artifacts import ArtifactMeta, NoModelError, current_version, read_meta, set_current, version_dir
from core.orm import Correction, JobLease, ModelVersion, Ticket, utcnow

log = logging.getLogger(__name__)

REGISTRY_LOCK = "registry"
RETRAIN_LEASE = "retrain"
# The only files the Models page may serve from a version directory.
IMAGES = ("curves.png", "confusion.png", "evaluation.png")


class RegistryError(ValueError):
    """A registry request that cannot be done (no earlier champion, unknown version, ...); the message says why."""


class ChampionChanged(RegistryError):
    """The champion changed while a candidate was being evaluated against it: the comparison no longer holds."""


def _execute(session: Session, statement: Any) -> int:
    """Run a Core statement in the session's transaction; return the number of rows it touched."""
    return int(cast(CursorResult[Any], session.connection().execute(statement)).rowcount)


def _leases() -> Table:
    return cast(Table, JobLease.__table__)


def _lock_registry(session: Session) -> None:
    """Serialise champion changes: on PostgreSQL the UPDATE locks the registry row until the commit, on SQLite any
    write takes the database's write lock. Both release at the end of the transaction."""
    table = _leases()
    touch = update(table).where(table.c.name == REGISTRY_LOCK).values(acquired_at=utcnow())
    if _execute(session, touch) == 0:
        try:
            with session.begin_nested():
                session.add(JobLease(name=REGISTRY_LOCK))
        except IntegrityError:
            pass  # created meanwhile by another process; the UPDATE below waits for it
        _execute(session, touch)


# --- reading ------------------------------------------------------------------------------------------------

def champion(session: Session) -> ModelVersion | None:
    return session.scalars(select(ModelVersion).where(ModelVersion.status == "champion")).first()


def versions(session: Session) -> list[ModelVersion]:
    """Every registered version, newest first."""
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.created_at.desc(),
                                                              ModelVersion.version.desc())))


@dataclass(frozen=True)
class Override:
    routed: int  # tickets this version routed
    corrected: int  # of those, how many an agent re-routed

    @property
    def rate(self) -> float | None:
        return self.corrected / self.routed if self.routed else None


def override_rates(session: Session) -> dict[str, Override]:
    """Per model version: the tickets it routed and the share agents re-routed (corrections / tickets routed)."""
    corrected = (
        select(Correction.ticket_id)
        .where(Correction.predicted_route.is_not(None), Correction.corrected_route != Correction.predicted_route)
        .distinct()
        .subquery()
    )  # a confirmation of a ticket left for review (same route) is not an override
    rows = session.execute(
        select(Ticket.model_version, func.count(Ticket.id), func.count(corrected.c.ticket_id))
        .outerjoin(corrected, corrected.c.ticket_id == Ticket.id)
        .where(Ticket.model_version.is_not(None))
        .group_by(Ticket.model_version)
    ).all()
    return {str(version): Override(int(routed), int(fixed)) for version, routed, fixed in rows}


def as_dict(row: ModelVersion, override: Override | None = None) -> dict[str, Any]:
    """What `furiwake models --json` and the Models page's JSON show for one version."""
    evaluation = row.metrics.get("evaluation", {})
    validation = row.metrics.get("validation", {})
    return {
        "version": row.version,
        "status": row.status,
        "trigger": row.trigger,
        "created_at": row.created_at.isoformat(),
        "promoted_at": row.promoted_at.isoformat() if row.promoted_at else None,
        "retired_at": row.retired_at.isoformat() if row.retired_at else None,
        "reason": row.reason,
        "data_hash": row.data_hash,
        "train_counts": row.train_counts,
        "macro_f1": row.macro_f1,
        "champion_macro_f1": row.champion_macro_f1,
        "compared_with": row.compared_with,
        "previous_champion": row.previous_champion,
        "accuracy": (evaluation.get("candidate") or {}).get("accuracy"),
        "validation_macro_f1": validation.get("macro_f1"),
        "validation_accuracy": validation.get("accuracy"),
        "calibration_error": validation.get("ece"),
        "calibration": validation.get("calibration") or {},  # temperature, target precision (training.calibration)
        "thresholds": row.metrics.get("thresholds") or {},
        "architecture": row.metrics.get("architecture") or {},  # members, LSTM units, n-gram arm (None: none)
        "evaluation": evaluation,
        "routed": override.routed if override else 0,
        "corrected": override.corrected if override else 0,
        "override_rate": override.rate if override else None,
    }


# --- changing the champion ----------------------------------------------------------------------------------

def _has_files(model_dir: Path, version: str) -> bool:
    """Whether this machine's MODEL_DIR holds the version's files."""
    return (version_dir(model_dir, version) / "meta.json").is_file() and (
        version_dir(model_dir, version) / "model.keras").is_file()


def _servable(session: Session, model_dir: Path, version: str) -> bool:
    """Whether the version's files are stored in the database or, not yet uploaded, on this machine."""
    return model_store.is_servable(model_store.manifest(session, version)) or _has_files(model_dir, version)


def _stored_and_cached(session: Session, model_dir: Path, version: str) -> bool:
    """Make sure a version about to be crowned is stored (from this machine's files, which also adds what was
    written since its registration, like evaluation.png), and cached here so CURRENT can name it. Returns whether
    MODEL_DIR holds it now: a MODEL_DIR this process may only read keeps its CURRENT (the workers need none)."""
    if _has_files(model_dir, version):
        model_store.store(session, version, version_dir(model_dir, version))
        return True
    if not model_store.is_servable(model_store.manifest(session, version)):
        raise RegistryError(f"{version_dir(model_dir, version)} holds no model files, nor does the database")
    try:
        model_store.fetch(session, version, model_dir)
    except OSError as exc:
        log.warning("could not cache model %s in %s (%s); CURRENT there is left as it is", version, model_dir, exc)
        return False
    return True


def _note(row: ModelVersion, line: str) -> None:
    row.reason = f"{row.reason}\n{line}" if row.reason else line


def _switch(session: Session, model_dir: Path,
            change: Callable[[Session], tuple[ModelVersion | None, ModelVersion]]) -> tuple[str | None, str]:
    """Run `change` (which returns (old champion, new champion)) under the registry lock, in a savepoint, and point
    CURRENT at the new champion; return (old, new) versions.

    A failure inside rolls back the savepoint only, so the caller's transaction holds none of the change (sync()
    relies on it). CURRENT is written last, while the registry row stays locked until the caller's commit, and put
    back if that transaction ends without a commit (_restore_unless_committed).
    """
    before = current_version(model_dir)
    with session.begin_nested():
        _lock_registry(session)
        old, new = change(session)
        session.flush()
        cached = _stored_and_cached(session, model_dir, new.version)
        result = (old.version if old is not None else None, new.version)
        if not cached or current_version(model_dir) == new.version:  # read again under the lock: `before` may be stale
            # CURRENT already names it (sync() adopting what `furiwake train` made current): nothing to write, so
            # a MODEL_DIR this process may only read (the API's, in some deployments) does not undo the adoption.
            _restore_unless_committed(session, model_dir, None, result)
        else:
            _restore_unless_committed(session, model_dir, before, result)
            set_current(model_dir, new.version)  # inside the savepoint: a file not written undoes the change
    return result


_PENDING_CURRENT = "registry.current_before"  # session.info key: CURRENT changes the open transaction made


def _restore_unless_committed(session: Session, model_dir: Path, before: str | None,
                              change: tuple[str | None, str]) -> None:
    """Put CURRENT back to `before` if the session's transaction ends without a commit (a failed commit, or an
    error later in the caller's unit of work); log the change once it is committed.

    Session events rather than a try/except here: the commit belongs to the entry point, after this returns."""
    session.info.setdefault(_PENDING_CURRENT, []).append((model_dir, before, change))


@event.listens_for(Session, "after_commit")
def _current_committed(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: the whole transaction may still roll back
    for _model_dir, _before, (old, new) in session.info.pop(_PENDING_CURRENT, []):
        log.info("champion is now %s (was %s)", new, old)


@event.listens_for(Session, "after_transaction_end")
def _current_rolled_back(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return  # a savepoint: only the end of the whole transaction decides
    for model_dir, before, _change in reversed(session.info.pop(_PENDING_CURRENT, [])):
        if before is not None and _has_files(model_dir, before):
            set_current(model_dir, before)


def _crown(session: Session, new: ModelVersion, old: ModelVersion | None, now: datetime, why: str) -> None:
    """Retire the old champion first (the unique index allows one champion at a time), then crown the new one."""
    if old is not None and old.version != new.version:
        old.status = "retired"
        old.retired_at = now
        _note(old, f"{now:%Y-%m-%d %H:%M} UTC retired: {why}")
        session.flush()
    if new.promoted_at is None and old is not None and old.version != new.version:
        new.previous_champion = old.version  # first crowning only: a rollback target keeps its own predecessor
    new.status = "champion"
    new.promoted_at = now
    new.retired_at = None


def _row_from_meta(meta: ArtifactMeta, status: str, trigger: str, reason: str) -> ModelVersion:
    if meta.created_at is None:
        raise RegistryError(f"the meta.json of {meta.version} has no created_at; it cannot be registered")
    counts = meta.counts
    train_counts: dict[str, Any] = {"by_route": dict(counts.train_by_route), "rows": counts.rows,
                                    "train_rows": counts.train, "validation_rows": counts.validation}
    categories = meta.extra.get("categories")
    if isinstance(categories, list) and categories:  # the fine-category head's labels: what agents may choose
        train_counts["categories"] = sorted(str(name) for name in categories)
    return ModelVersion(
        version=meta.version,
        created_at=meta.created_at,
        status=status,
        trigger=trigger,
        reason=reason,
        data_hash=meta.data_hash,
        train_counts=train_counts,
        metrics=_metrics_from_meta(meta),
    )


def _metrics_from_meta(meta: ArtifactMeta) -> dict[str, Any]:
    """The figures kept for the Models page: validation scores (calibration, `ece`, among them) and the per-route
    review thresholds the version was trained with (a ticket predicted below its route's goes to needs_review)."""
    metrics: dict[str, Any] = {"validation": dict(meta.metrics.validation)}
    if meta.thresholds:
        metrics["thresholds"] = dict(meta.thresholds)
    model = meta.model
    if model.lstm_units is not None:  # what the network is, for the page: a hand-written meta.json may not say
        metrics["architecture"] = {
            "members": model.members or 1,  # None: trained before members, one network
            "lstm_units": model.lstm_units, "bidirectional": bool(model.bidirectional),
            "ngram_units": model.wide_units if model.wide else None,
            "linear": bool(model.linear),  # serving.linear: a linear model averaged with the network
        }
        arms = meta.metrics.validation.get("arms")
        if model.linear and isinstance(arms, dict):  # each arm's validation macro-F1 beside the average's
            metrics["architecture"]["arms"] = {arm: arms.get(arm) for arm in ("network", "linear", "averaged")}
    return metrics


def register_candidate(session: Session, meta: ArtifactMeta, trigger: str, train_counts: dict[str, Any],
                       path: Path | None = None) -> None:
    """A freshly trained version, not yet decided on.

    `rows`, `by_route` and the split come from meta.json, as for a version adopted from CURRENT, so every version
    on the Models page is counted the same way (the rows train() kept after removing duplicates, both splits; the
    per-route counts of its training split). The caller's figures only add what meta.json cannot know (where the
    rows came from, the input hash): before, the retrain's own `rows` (its input, duplicates included) and
    `by_route` (both splits) replaced them, and two versions trained on the same data showed different counts."""
    row = _row_from_meta(meta, "candidate", trigger, "trained; being evaluated against the champion")
    row.train_counts = {**{k: v for k, v in train_counts.items() if k not in row.train_counts}, **row.train_counts}
    session.add(row)
    if path is not None:  # its files in the same transaction; else at its promotion (_switch) or by publish_local
        session.flush()
        model_store.store(session, meta.version, path)


def record_evaluation(session: Session, version: str, evaluation: dict[str, Any],
                      champion_version: str | None) -> None:
    row = session.get(ModelVersion, version)
    if row is None:
        raise RegistryError(f"unknown version {version}")
    row.metrics = {**row.metrics, "evaluation": evaluation}
    row.macro_f1 = evaluation["candidate"]["macro_f1"]
    row.champion_macro_f1 = (evaluation.get("champion") or {}).get("macro_f1")
    row.compared_with = champion_version


def reject(session: Session, version: str, reason: str) -> None:
    row = session.get(ModelVersion, version)
    if row is None:
        raise RegistryError(f"unknown version {version}")
    row.status = "rejected"
    row.reason = reason


def promote(session: Session, model_dir: Path, version: str, reason: str,
            expected_champion: str | None, lease: Lease | None = None) -> tuple[str | None, str]:
    """Make a candidate the champion, provided the champion is still the one it was compared with (and, for a
    retrain, that its lease is still held: a trainer that lost it must not promote)."""

    def change(session: Session) -> tuple[ModelVersion | None, ModelVersion]:
        if lease is not None and not lease.renew_in(session):
            raise RegistryError(f"the {lease.name} lease was lost (held too long without renewal); not promoted")
        old = champion(session)
        if (old.version if old else None) != expected_champion:
            raise ChampionChanged(f"the champion changed from {expected_champion} to "
                                  f"{old.version if old else None} during the evaluation; not promoted")
        row = session.get(ModelVersion, version)
        if row is None or row.status != "candidate":
            raise RegistryError(f"{version} is not a candidate")
        row.reason = reason
        _crown(session, row, old, utcnow(), f"replaced by {version} (retrain)")
        return old, row

    return _switch(session, model_dir, change)


def rollback(session: Session, model_dir: Path, to: str | None = None,
             actor: str = "cli") -> tuple[str | None, str]:
    """Make the previous champion (or `to`) the champion again; return (old, new). Workers reload as for a promotion.

    "Previous" is the champion the current one replaced, recorded when it was first crowned, so rolling back twice
    walks further back in time instead of swinging between two versions."""

    def change(session: Session) -> tuple[ModelVersion | None, ModelVersion]:
        old = champion(session)
        if old is None:
            raise RegistryError("there is no champion to roll back from")
        target_version = to or old.previous_champion
        if target_version is None:
            raise RegistryError(f"{old.version} replaced no earlier champion; name one with --to VERSION")
        if target_version == old.version:
            raise RegistryError(f"{target_version} is already the champion")
        target = session.get(ModelVersion, target_version)
        if target is None:
            raise RegistryError(f"{target_version} is not a registered version (`furiwake models` lists them)")
        if not _servable(session, model_dir, target_version):
            raise RegistryError(f"{version_dir(model_dir, target_version)} holds no model files any more")
        now = utcnow()
        _note(target, f"{now:%Y-%m-%d %H:%M} UTC made champion again by {actor} (rollback from {old.version})")
        _crown(session, target, old, now, f"rolled back to {target_version} by {actor}")
        return old, target

    return _switch(session, model_dir, change)


def prune(session: Session, model_dir: Path, keep: int, dry_run: bool = False) -> list[str]:
    """Delete the model files of old versions; return the versions pruned (or, with dry_run, that would be).

    Kept: the champion, whatever CURRENT names, candidates still being evaluated, and the `keep` newest of the other
    versions that still have files (the rollback targets). A version is ~30 MB and a nightly retrain writes one, so
    without this the database and MODEL_DIR grow by gigabytes a year. A pruned version's stored files are deleted
    (so every worker drops its cached copy at its next check) and so is its directory here. The registry rows stay
    (history, the Models page); a pruned version can no longer be rolled back to, and rollback says so. Directories
    the registry does not know are left alone. The kept versions not stored yet are uploaded (publish_local).
    """
    if keep < 0:
        raise RegistryError(f"keep must not be negative, got {keep}")
    pruned: list[str] = []
    _lock_registry(session)  # no promotion or rollback can pick a version while its files go (until the commit)
    current = current_version(model_dir)
    stored = model_store.stored_versions(session)
    others = [
        row for row in versions(session)
        if row.status not in ("champion", "candidate") and row.version != current
        and (row.version in stored or version_dir(model_dir, row.version).is_dir())
    ]
    now = utcnow()
    for row in others[keep:]:
        pruned.append(row.version)
        if not dry_run:
            model_store.remove(session, row.version)
            shutil.rmtree(version_dir(model_dir, row.version), ignore_errors=True)
            _note(row, f"{now:%Y-%m-%d %H:%M} UTC {PRUNED_NOTE} (the {keep} newest were kept)")
    if not dry_run:
        if pruned:
            log.info("pruned the files of %d old model versions: %s", len(pruned), ", ".join(pruned))
        publish_local(session, model_dir)
    return pruned


PRUNED_NOTE = "model files pruned"


def publish_local(session: Session, model_dir: Path) -> list[str]:
    """Upload the registered versions whose files are in this MODEL_DIR only (trained before the database kept
    them); return those versions. One that fails (a damaged directory) is logged and left for the next call.

    Skipped: a directory that was stored once (it carries model_store's manifest: its rows are gone, so it was
    pruned elsewhere and is about to be evicted here) and a version the registry notes as pruned."""
    stored = model_store.stored_versions(session)
    published: list[str] = []
    for row in versions(session):
        path = version_dir(model_dir, row.version)
        if (row.version in stored or not _has_files(model_dir, row.version) or model_store.was_stored(path)
                or PRUNED_NOTE in (row.reason or "")):
            continue
        try:
            with session.begin_nested():
                model_store.store(session, row.version, path)
        except (NoModelError, OSError, IntegrityError) as exc:  # IntegrityError: another process uploaded it
            log.warning("could not store model %s from %s: %s", row.version, path, exc)
            continue
        published.append(row.version)
    if published:
        log.info("uploaded %d model versions found only in %s: %s", len(published), model_dir, ", ".join(published))
    return published


def sync(session: Session, model_dir: Path) -> str | None:
    """Make the registry and CURRENT agree (the module docstring says how); return the champion's version."""
    current = current_version(model_dir)

    def change(session: Session) -> tuple[ModelVersion | None, ModelVersion]:
        old = champion(session)
        now = utcnow()
        if current is not None and (old is None or current != old.version) and _has_files(model_dir, current):
            row = session.get(ModelVersion, current)
            if row is None:
                first = not session.scalar(select(func.count()).select_from(ModelVersion))
                trigger = "initial" if first else "cli"
                reason = ("the model in use when the registry started (MODEL_DIR/CURRENT)" if first else
                          "made current outside the registry (furiwake train); adopted as the champion")
                row = _row_from_meta(read_meta(version_dir(model_dir, current)), "candidate", trigger, reason)
                session.add(row)
                session.flush()
                _crown(session, row, old, now, f"replaced by {current}, made current outside the registry")
                return old, row
            if old is None:
                _note(row, f"{now:%Y-%m-%d %H:%M} UTC champion again: named by MODEL_DIR/CURRENT, none in the registry")
                _crown(session, row, None, now, "")
                return None, row
        if old is None:
            raise _NothingToDo
        return old, old  # the database wins: CURRENT is written again

    if current is not None:
        # The common case, cheaply: already in agreement, nothing to lock or write.
        row = champion(session)
        if row is not None and row.version == current:
            return current
    try:
        return _switch(session, model_dir, change)[1]
    except _NothingToDo:
        return None
    except RegistryError as exc:
        log.error("registry and MODEL_DIR disagree and cannot be reconciled: %s", exc)
        row = champion(session)
        return row.version if row is not None else None


class _NothingToDo(Exception):
    pass


# --- leases -------------------------------------------------------------------------------------------------

# Who asked for a retrain, as the Models page says it (the model_versions triggers).
STARTED_BY = {"button": "an agent (Retrain now)", "schedule": "the nightly schedule", "cli": "the command line"}


@dataclass(frozen=True)
class LeaseState:
    holder: str
    acquired_at: datetime
    expires_at: datetime

    @property
    def started_by(self) -> str:
        """Who started the job, from the trigger default_holder() put first; the rest of the holder (host, pid, a
        random tag) tells processes apart and means nothing to an agent."""
        trigger, sep, _process = self.holder.partition("@")
        return STARTED_BY.get(trigger, "the trainer") if sep else "the trainer"


def default_holder(trigger: str | None = None) -> str:
    """A holder unique to this process and call; `trigger@...` when the job's trigger is known (see started_by)."""
    process = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    return f"{trigger}@{process}" if trigger else process


class Lease:
    """A named lease in `job_leases`, taken only when free or expired (see the module docstring).

    Unlike the functions above, a Lease holds a session factory and runs its own short transactions: its point is
    to be seen by other processes while the job runs, so taking, renewing (from the heartbeat thread of
    kept_alive(), which cannot share the job's Session: a Session is not thread-safe) and releasing it must each
    commit at once, never wait for the job's own units of work. renew_in() is the exception: it renews inside the
    caller's transaction, so a promotion commits only if the lease was still held.
    """

    def __init__(self, sessions: sessionmaker[Session], name: str, seconds: float, holder: str | None = None) -> None:
        self.sessions = sessions
        self.name = name
        self.seconds = float(seconds)
        self.holder = holder or default_holder()
        self.lost = False

    def _where_mine(self) -> Any:
        table = _leases()
        return (table.c.name == self.name) & (table.c.holder == self.holder)

    def acquire(self) -> bool:
        table = _leases()
        now = utcnow()
        take = (
            update(table)
            .where(table.c.name == self.name,
                   or_(table.c.holder.is_(None), table.c.expires_at.is_(None), table.c.expires_at < now))
            .values(holder=self.holder, acquired_at=now, expires_at=now + timedelta(seconds=self.seconds))
        )
        with self.sessions.begin() as session:
            if _execute(session, take) == 1:
                return True
            if session.get(JobLease, self.name) is not None:
                return False
            try:
                with session.begin_nested():
                    session.add(JobLease(name=self.name, holder=self.holder, acquired_at=now,
                                         expires_at=now + timedelta(seconds=self.seconds)))
            except IntegrityError:
                return False
            return True

    def renew_in(self, session: Session) -> bool:
        """Extend the lease inside the caller's transaction; False if it is no longer ours."""
        extend = update(_leases()).where(self._where_mine()).values(
            expires_at=utcnow() + timedelta(seconds=self.seconds))
        return _execute(session, extend) == 1

    def renew(self) -> bool:
        with self.sessions.begin() as session:
            return self.renew_in(session)

    def release(self) -> None:
        with self.sessions.begin() as session:
            _execute(session, update(_leases()).where(self._where_mine()).values(holder=None, expires_at=None))

    @contextmanager
    def kept_alive(self) -> Iterator[Lease]:
        """Renew every quarter period from a background thread while the body runs; `lost` turns True if a renewal
        finds the lease taken over (it had expired: the process stalled for longer than a whole period)."""
        stop = threading.Event()

        def heartbeat() -> None:
            while not stop.wait(self.seconds / 4):
                try:
                    if not self.renew():
                        self.lost = True
                        log.error("lease %s lost by %s", self.name, self.holder)
                        return
                except Exception:  # noqa: BLE001 - the database may be back at the next beat
                    log.warning("could not renew lease %s", self.name, exc_info=True)

        thread = threading.Thread(target=heartbeat, name=f"lease-{self.name}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(timeout=10)


def lease_state(session: Session, name: str = RETRAIN_LEASE) -> LeaseState | None:
    """Who holds a lease now (None when free or expired): the Models page shows a running retrain."""
    row = session.get(JobLease, name)
    if row is None or row.holder is None or row.expires_at is None or row.acquired_at is None:
        return None
    if row.expires_at < utcnow():
        return None
    return LeaseState(row.holder, row.acquired_at, row.expires_at)


__all__ = [
    "IMAGES", "STARTED_BY", "ChampionChanged", "Lease", "LeaseState", "NoModelError", "Override", "RegistryError",
    "as_dict", "champion", "default_holder", "lease_state", "override_rates", "promote", "prune", "publish_local",
    "register_candidate", "record_evaluation", "reject", "rollback", "sync", "versions",
]
