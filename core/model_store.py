"""Model versions' files in the database, and MODEL_DIR as this machine's cache of them.

A version's files (model.keras, meta.json, the plots: whatever its directory holds) are rows of model_artifacts,
one per file with its SHA-256, so a worker on any machine can serve a version trained on another. A version
directory under MODEL_DIR is either the original the trainer wrote (not yet stored, or stored from it), or a copy
fetched from the database: fetched into a hidden temporary directory, checked against the hashes, then renamed into
place, so no reader ever sees half a version.

A directory whose content is in the database carries a hidden manifest (`.stored.json`), written only once the
rows are committed. It tells a pruned version (rows gone, manifest present: delete the directory) from a version
that was never stored (no manifest: the original of a version trained before the database kept files, or a new
candidate not yet registered; upload it or leave it alone, never delete it).

Functions take the caller's Session and never commit. Changes to the directory happen under an exclusive lock on
MODEL_DIR/.lock, so the prefork children of one worker (which all start at once) fetch a version only once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import delete, event, select
from sqlalchemy.orm import Session, SessionTransaction

from core.artifacts import META_FILE, NoModelError
from core.orm import ModelArtifact

log = logging.getLogger(__name__)

MANIFEST = ".stored.json"  # in a version directory: the files as stored (name -> sha256); hidden, never stored
LOCK = ".lock"
REQUIRED = (META_FILE, "model.keras")  # what a version needs to be served; the rest (plots) is for the Models page
_CHUNK = 1 << 20


class ArtifactError(NoModelError):
    """A stored version that cannot be fetched (its rows do not match their hashes); the message names it."""


Manifest = dict[str, tuple[str, int]]  # file name -> (sha256, size)


def digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def local_files(path: Path) -> dict[str, Path]:
    """The files of a version directory by name (a POSIX path relative to it); hidden files are bookkeeping."""
    if not path.is_dir():
        return {}
    return {
        file.relative_to(path).as_posix(): file
        for file in sorted(path.rglob("*"))
        if file.is_file() and not any(part.startswith(".") for part in file.relative_to(path).parts)
    }


def manifest(session: Session, version: str) -> Manifest:
    """The stored files of one version ({} when none), without loading their content."""
    rows = session.execute(
        select(ModelArtifact.name, ModelArtifact.sha256, ModelArtifact.size).where(ModelArtifact.version == version)
    ).all()
    return {str(name): (str(sha), int(size)) for name, sha, size in rows}


def stored_versions(session: Session) -> set[str]:
    """Every version with at least one stored file."""
    return {str(v) for v in session.scalars(select(ModelArtifact.version).distinct())}


def is_servable(files: Iterable[str]) -> bool:
    names = set(files)
    return all(name in names for name in REQUIRED)


def store(session: Session, version: str, path: Path) -> int:
    """Store the files of `path` as `version`'s (the version's model_versions row must be flushed already); return
    how many files were written.

    A stored file is never replaced: a version does not change once trained, and a damaged copy in some cache must
    not overwrite the good one. So calling it again stores only what was added since (evaluation.png, which the
    retrain writes after the registration)."""
    files = local_files(path)
    known = manifest(session, version)
    if not is_servable([*files, *known]):
        raise NoModelError(f"{path} holds no model files ({' and '.join(REQUIRED)} are needed)")
    written = 0
    hashes = {name: sha for name, (sha, _size) in known.items()}
    for name, file in files.items():
        if name in known:
            continue
        content = file.read_bytes()
        hashes[name] = hashlib.sha256(content).hexdigest()
        session.add(ModelArtifact(version=version, name=name, sha256=hashes[name], size=len(content),
                                  content=content))
        written += 1
    session.flush()
    if verify(path, {name: known[name] for name in known if name in files}):
        _after_commit(session, path, hashes)  # a directory that differs from the rows is no copy of them
    if written:
        log.info("stored %d files of model %s in the database", written, version)
    return written


def remove(session: Session, version: str) -> None:
    """Delete a version's stored files: every machine's cache drops it at its next check (evict)."""
    session.execute(delete(ModelArtifact).where(ModelArtifact.version == version))


def verify(path: Path, files: Manifest) -> bool:
    """Whether `path` holds every stored file with its size and hash (extra local files are allowed)."""
    for name, (sha, size) in files.items():
        file = path / name
        try:
            if file.stat().st_size != size or digest(file) != sha:
                return False
        except OSError:
            return False
    return True


@contextmanager
def locked(model_dir: Path) -> Iterator[None]:
    """Exclusive use of MODEL_DIR's cache among the processes of this machine (released if the process dies)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    with (model_dir / LOCK).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fetch(session: Session, version: str, model_dir: Path) -> Path:
    """MODEL_DIR/<version>, checked against the database and fetched from it when missing or damaged.

    A version the database holds no files of (one registered before it kept them, not yet uploaded) is served from
    the directory as it is; NoModelError when there is none either.
    """
    target = model_dir / version
    files = manifest(session, version)
    if not files:
        if is_servable(local_files(target)):
            return target
        raise NoModelError(f"model {version} is neither stored in the database nor in {target}; run `furiwake "
                           "models` on the machine that trained it (it uploads it), or `furiwake model rollback`")
    if not is_servable(files):
        raise ArtifactError(f"model {version} is stored incompletely (no {' or '.join(REQUIRED)})")
    with locked(model_dir):
        if verify(target, files):
            _write_manifest(target, {name: sha for name, (sha, _size) in files.items()})
            return target
        staging = model_dir / f".fetch-{version}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        try:
            _download(session, version, files, staging)
            _write_manifest(staging, {name: sha for name, (sha, _size) in files.items()})
            if target.exists():
                log.warning("cached model %s in %s does not match the database; fetching it again", version, target)
                _discard(target, model_dir)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    log.info("fetched model %s from the database into %s", version, target)
    return target


def read_file(session: Session, version: str, name: str) -> bytes | None:
    """One stored file of a version, checked against its hash; None when the database holds no such file.

    For a reader that needs one small file and no cache (the Models page's plots on a machine whose MODEL_DIR
    lacks the version); ArtifactError when the stored row does not match its hash."""
    row = session.execute(select(ModelArtifact.sha256, ModelArtifact.size).where(
        ModelArtifact.version == version, ModelArtifact.name == name)).first()
    if row is None:
        return None
    return _checked_content(session, version, name, (str(row.sha256), int(row.size)))


def _checked_content(session: Session, version: str, name: str, expected: tuple[str, int]) -> bytes:
    sha, size = expected
    content = session.scalar(select(ModelArtifact.content).where(ModelArtifact.version == version,
                                                                 ModelArtifact.name == name))
    if content is None or len(content) != size or hashlib.sha256(content).hexdigest() != sha:
        raise ArtifactError(f"the stored file {name} of model {version} does not match its hash")
    return bytes(content)


def _download(session: Session, version: str, files: Manifest, staging: Path) -> None:
    staging.mkdir()
    for name, expected in files.items():
        content = _checked_content(session, version, name, expected)
        out = staging / name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(content)


def _discard(path: Path, model_dir: Path) -> None:
    """Remove a version directory: renamed out of the way first, so the name is free at once."""
    aside = model_dir / f".discard-{path.name}-{uuid.uuid4().hex[:6]}"
    path.rename(aside)
    shutil.rmtree(aside, ignore_errors=True)


def evict(session: Session, model_dir: Path, keep: Iterable[str | None]) -> list[str]:
    """Delete the cached versions whose stored files are gone (pruned); never those in `keep` (the one this
    process serves, the champion) and never a directory that was not stored (no manifest). Returns the versions."""
    if not model_dir.is_dir():
        return []
    spared = {v for v in keep if v}
    stored = stored_versions(session)
    gone: list[str] = []
    with locked(model_dir):
        for path in sorted(model_dir.iterdir()):
            if path.name.startswith(".") or path.name in spared or path.name in stored:
                continue
            if (path / MANIFEST).is_file():
                _discard(path, model_dir)
                gone.append(path.name)
    if gone:
        log.info("removed %s from the model cache %s: no longer in the registry", ", ".join(gone), model_dir)
    return gone


def was_stored(path: Path) -> bool:
    """Whether this version directory's content was stored in the database once (it carries the manifest)."""
    return (path / MANIFEST).is_file()


def _write_manifest(path: Path, files: dict[str, str]) -> None:
    """Best effort: a MODEL_DIR this process may only read (the API's, in some deployments) just gets none."""
    try:
        tmp = path / f"{MANIFEST}.{os.getpid()}"
        tmp.write_text(json.dumps(files, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(path / MANIFEST)
    except OSError as exc:
        log.debug("could not write %s in %s: %s", MANIFEST, path, exc)


_PENDING = "model_store.manifests"  # session.info key: manifests to write once the transaction commits


def _after_commit(session: Session, path: Path, files: dict[str, str]) -> None:
    """Write the manifest when the rows are committed, not before: a manifest over rows that were rolled back
    would make evict() take the original directory for a pruned one."""
    innermost = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_PENDING, []).append((innermost, path, files))


def _within(transaction: SessionTransaction | None, ended: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_commit")
def _stored_committed(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: the whole transaction may still roll back
    for _transaction, path, files in session.info.pop(_PENDING, []):
        _write_manifest(path, files)


@event.listens_for(Session, "after_soft_rollback")
def _stored_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    """A rolled-back savepoint (or the whole transaction) takes its stored rows with it: forget their manifests."""
    pending = session.info.get(_PENDING)
    if pending:
        pending[:] = [entry for entry in pending if not _within(entry[0], previous_transaction)]


@event.listens_for(Session, "after_transaction_end")
def _transaction_ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_PENDING, None)  # ended without a commit (after_commit took them otherwise)


__all__ = ["MANIFEST", "ArtifactError", "evict", "fetch", "is_servable", "local_files", "locked", "manifest",
           "read_file", "remove", "store", "stored_versions", "verify", "was_stored"]
