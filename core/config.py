"""Settings: one frozen object built from the environment at each entry point (never at import time)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.routes import ROUTES


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message names the variable."""


SOURCE_ROOT = Path(__file__).resolve().parent.parent
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# What SECRET_KEY is when unset; accepted only in the embedded mode (SQLite + filesystem broker, one machine).
DEV_SECRET_KEY = "dev-insecure-change-me"
RATE_LIMIT_OFF = "off"
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own name: it reads it too


def default_home(env: Mapping[str, str]) -> Path:
    """Where `var/` (the embedded database and broker) and `models/` live when FURIWAKE_HOME is not set.

    The same directory whatever the current one, so `furiwake create-token` run from elsewhere finds the database
    `make run` created: the source checkout when furiwake runs from one (the `make run` case), else
    $XDG_DATA_HOME/furiwake (~/.local/share/furiwake).
    """
    if (SOURCE_ROOT / "pyproject.toml").is_file() and (SOURCE_ROOT / "core").is_dir():
        return SOURCE_ROOT
    data_home = env.get("XDG_DATA_HOME", "").strip() or str(Path.home() / ".local" / "share")
    return Path(data_home) / "furiwake"


def _time_zone(env: Mapping[str, str]) -> str:
    """DISPLAY_TIMEZONE: an IANA name (Asia/Tokyo, UTC, ...), checked here so a typo stops the start, not a page."""
    name = env.get("DISPLAY_TIMEZONE", "").strip() or "Asia/Tokyo"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"DISPLAY_TIMEZONE: not a time zone name (e.g. Asia/Tokyo, UTC), got {name!r}") from None
    return name


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip() or default
    value = raw.upper() if name == "LOG_LEVEL" else raw.lower()
    if value not in choices:
        raise ConfigError(f"{name}: expected one of {', '.join(choices)}, got {raw!r}")
    return value


def _parse_thresholds(raw: str) -> dict[str, float]:
    """`Account=0.6,Payment=0.55` → {"Account": 0.6, ...}; routes not named keep the model's own threshold."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        route, sep, value = part.partition("=")
        route = route.strip()
        if not sep or route not in ROUTES:
            raise ConfigError(f"REVIEW_THRESHOLDS: expected ROUTE=NUMBER with ROUTE in {ROUTES}, got {part!r}")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"REVIEW_THRESHOLDS: {value!r} is not a number") from None
        if not 0.0 <= number <= 1.0:
            raise ConfigError(f"REVIEW_THRESHOLDS: {route} must be within 0..1, got {number}")
        out[route] = number
    return out


def _batch_wait_default(env: Mapping[str, str]) -> int:
    """CLASSIFY_BATCH_WAIT_MS when unset: 100 ms over a real broker, 20 over the embedded filesystem broker. That one
    hands the worker its messages a file at a time, so delivery, not the wait, bounds a batch; a longer wait only
    caps the batches per second (tests/faults/test_embedded_load.py fell behind with 100 ms)."""
    broker_url = env.get("BROKER_URL", "").strip() or "filesystem://"
    return 20 if broker_url.startswith("filesystem://") else 100


def _intake_limit_default(env: Mapping[str, str], home: Path) -> str:
    """Off in the embedded mode (`make run`: one machine, usually one client on loopback importing or replaying
    tickets in bulk); per client IP otherwise, where the intake faces the public."""
    database_url = env.get("DATABASE_URL", "").strip() or "sqlite:"
    broker_url = env.get("BROKER_URL", "").strip() or "filesystem://"
    embedded = database_url.startswith("sqlite") and broker_url.startswith("filesystem://")
    return RATE_LIMIT_OFF if embedded else Settings.rate_limit_intake


def _rate_limit(env: Mapping[str, str], name: str, default: str) -> str:
    """`30/minute;300/hour` (flask-limiter's notation, checked here so a typo stops start-up), or `off`."""
    from limits import parse_many

    raw = " ".join(env.get(name, "").split()) or default
    if raw.lower() in (RATE_LIMIT_OFF, "none", "disabled"):
        return RATE_LIMIT_OFF
    try:
        parse_many(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected limits like '30/minute;300/hour', or 'off', got {raw!r}") from None
    return raw


def _metrics_dir(env: Mapping[str, str]) -> Path | None:
    """PROMETHEUS_MULTIPROC_DIR, which must exist: prometheus_client writes into it from the first metric on and
    would fail there, in the middle of a request, instead of here at start-up."""
    raw = env.get(METRICS_DIR_VARIABLE, "").strip()
    if not raw:
        return None
    path = Path(raw).resolve()
    if not path.is_dir():
        raise ConfigError(f"{METRICS_DIR_VARIABLE}: {raw!r} is not a directory (create it, empty, before start-up)")
    return path


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    """Everything a furiwake process needs to know about its surroundings."""

    home: Path
    database_url: str
    broker_url: str
    model_dir: Path
    route_map_file: Path | None = None
    review_thresholds: dict[str, float] = field(default_factory=dict)
    port: int = 8000
    host: str = "127.0.0.1"  # where `furiwake run` binds the API
    web_concurrency: int = 2  # gunicorn processes `furiwake run` starts
    worker_concurrency: int = 1  # classify worker processes `furiwake run` starts
    worker_tf_threads: int = 1  # TensorFlow threads per worker process: N processes on N cores, not N x N threads
    result_backend: str = ""  # only the benchmark's no-op round trips need one
    log_level: str = "INFO"
    log_format: str = "text"  # text for a terminal, json for a log collector
    # The agents' pages show times in this zone (the database keeps UTC): a Japanese helpdesk reads JST.
    display_timezone: str = "Asia/Tokyo"
    secret_key: str = DEV_SECRET_KEY
    # Per client IP on public intake (POST /api/v1/tickets, the web form) and per IP + e-mail on agents' sign-in.
    rate_limit_intake: str = "30/minute;300/hour"
    rate_limit_signin: str = "10/minute"
    # Reverse proxies (TLS terminators) in front of the API whose X-Forwarded-For/-Proto/-Host are believed.
    trusted_proxies: int = 0
    sweep_after_seconds: int = 120
    sweep_every_seconds: int = 30
    max_body_chars: int = 20_000
    max_request_bytes: int = 1_000_000
    classify_batch_size: int = 64
    # 100 ms, not 20, over Redis: a batch's cost is mostly fixed (the pool hand-off, one transaction, one model
    # call), so fuller batches halve the worker's CPU per ticket, for at most 0.1 s more before a lone ticket is
    # routed (docs/operations.md, "Batching"). 20 over the embedded broker (_batch_wait_default says why).
    classify_batch_wait_ms: int = 100
    # E-mail webhooks (docs/email.md): basic auth for SendGrid, Postmark and raw MIME; Mailgun signs instead.
    # Empty means not configured, and those endpoints refuse mail (503) rather than accept it unauthenticated.
    email_webhook_user: str = ""
    email_webhook_password: str = field(default="", repr=False)
    mailgun_signing_key: str = field(default="", repr=False)
    # E-mail attachments (docs/email.md, "Attachments"): kept up to this size per file and per mail; larger ones are
    # dropped with a note on the ticket, the mail itself is still taken.
    attachment_max_bytes: int = 10 * 1024 * 1024
    attachments_max_bytes_per_mail: int = 25 * 1024 * 1024
    # Prometheus (docs/operations.md, "Metrics"): the directory where every process of one installation writes its
    # metric files (prometheus_client reads the variable itself, at import), and the bearer token /metrics asks for.
    metrics_dir: Path | None = None
    metrics_token: str = field(default="", repr=False)
    retrain: RetrainSettings = field(default_factory=lambda: RetrainSettings())
    mail: MailSettings = field(default_factory=lambda: MailSettings())  # sending mail (docs/email.md)
    assignment: AssignmentSettings = field(default_factory=lambda: AssignmentSettings())  # docs/agents.md
    sla: SlaSettings = field(default_factory=lambda: SlaSettings())  # targets per route (docs/agents.md, "SLA")
    testing: bool = False

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def embedded(self) -> bool:
        """SQLite and the filesystem broker: everything on one machine (`make run`'s defaults)."""
        return self.embedded_broker and self.database_url.startswith("sqlite")

    @property
    def broker_dir(self) -> Path:
        return self.home / "var" / "broker"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read FURIWAKE_HOME, DATABASE_URL, BROKER_URL, MODEL_DIR, ... (see README's configuration table)."""
        env = os.environ if env is None else env
        home = Path(env.get("FURIWAKE_HOME", "").strip() or default_home(env)).resolve()
        route_map = env.get("ROUTE_MAP_FILE", "").strip()
        settings = cls(
            home=home,
            database_url=env.get("DATABASE_URL", "").strip() or f"sqlite:///{home / 'var' / 'furiwake.db'}",
            broker_url=env.get("BROKER_URL", "").strip() or "filesystem://",
            model_dir=Path(env.get("MODEL_DIR", "").strip() or home / "models").resolve(),
            route_map_file=Path(route_map).resolve() if route_map else None,
            review_thresholds=_parse_thresholds(env.get("REVIEW_THRESHOLDS", "")),
            port=_int(env, "PORT", 8000),
            host=env.get("HOST", "").strip() or "127.0.0.1",
            web_concurrency=_int(env, "WEB_CONCURRENCY", 2),
            worker_concurrency=_int(env, "WORKER_CONCURRENCY", 1),
            worker_tf_threads=_int(env, "WORKER_TF_THREADS", 1),
            result_backend=env.get("RESULT_BACKEND", "").strip(),
            log_level=_choice(env, "LOG_LEVEL", "INFO", LOG_LEVELS),
            log_format=_choice(env, "LOG_FORMAT", "text", LOG_FORMATS),
            display_timezone=_time_zone(env),
            secret_key=env.get("SECRET_KEY", "").strip() or DEV_SECRET_KEY,
            rate_limit_intake=_rate_limit(env, "RATE_LIMIT_INTAKE", _intake_limit_default(env, home)),
            rate_limit_signin=_rate_limit(env, "RATE_LIMIT_SIGNIN", cls.rate_limit_signin),
            trusted_proxies=_int(env, "TRUSTED_PROXIES", 0),
            sweep_after_seconds=_int(env, "SWEEP_AFTER_SECONDS", 120),
            sweep_every_seconds=_int(env, "SWEEP_EVERY_SECONDS", 30),
            max_body_chars=_int(env, "MAX_BODY_CHARS", 20_000),
            classify_batch_size=_int(env, "CLASSIFY_BATCH_SIZE", 64),
            classify_batch_wait_ms=_int(env, "CLASSIFY_BATCH_WAIT_MS", _batch_wait_default(env)),
            email_webhook_user=env.get("EMAIL_WEBHOOK_USER", "").strip(),
            email_webhook_password=env.get("EMAIL_WEBHOOK_PASSWORD", "").strip(),
            mailgun_signing_key=env.get("MAILGUN_SIGNING_KEY", "").strip(),
            attachment_max_bytes=_int(env, "ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024),
            attachments_max_bytes_per_mail=_int(env, "ATTACHMENTS_MAX_BYTES_PER_MAIL", 25 * 1024 * 1024),
            metrics_dir=_metrics_dir(env),
            metrics_token=env.get("METRICS_TOKEN", "").strip(),
            retrain=RetrainSettings.from_env(env),
            mail=MailSettings.from_env(env),
            assignment=AssignmentSettings.from_env(env),
            sla=SlaSettings.from_env(env),
        )
        for name, value in (("WEB_CONCURRENCY", settings.web_concurrency),
                            ("WORKER_CONCURRENCY", settings.worker_concurrency),
                            ("WORKER_TF_THREADS", settings.worker_tf_threads)):
            if value < 1:
                raise ConfigError(f"{name}: must be at least 1, got {value}")
        if settings.trusted_proxies < 0:
            raise ConfigError(f"TRUSTED_PROXIES: must not be negative, got {settings.trusted_proxies}")
        return replace(settings, **overrides) if overrides else settings  # type: ignore[arg-type]


# --- Retraining (issue 5; docs/retraining.md) ------------------------------------------------------------------

def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}: must be within {low:g}..{high:g}, got {value:g}")
    return value


def _schedule(raw: str) -> str:
    """A five-field crontab (`minute hour day-of-month month day-of-week`, in the Celery app's Asia/Tokyo time),
    or `off`."""
    raw = " ".join(raw.split())
    if raw.lower() in ("off", "none", "disabled"):
        return "off"
    if len(raw.split(" ")) != 5:
        raise ConfigError(f"RETRAIN_SCHEDULE: expected 5 crontab fields (e.g. '0 3 * * *') or 'off', got {raw!r}")
    return raw


# Per route, the precision kept among tickets routed without review: what every trained model's review thresholds
# are chosen for (training.metrics.review_thresholds; docs/quality.md).
DEFAULT_TARGET_PRECISION = 0.97


@dataclass(frozen=True)
class RetrainSettings:
    """How the router retrains itself from its agents' work (RETRAIN_* variables; README's configuration table)."""

    schedule: str = "0 3 * * *"  # nightly at 03:00 Asia/Tokyo
    min_gain: float = 0.01  # the challenger's macro-F1 must beat the champion's by more (above seed noise)
    max_corpus_drop: float = 0.03  # ... and lose at most this much macro-F1 on the corpus part of the set
    weight_corpus: float = 1.0
    weight_correction: float = 2.0
    weight_resolved: float = 0.5
    holdout_percent: int = 20  # share of corrected tickets kept out of training, for the evaluation set
    eval_corrections: int = 500  # the newest held-out corrections in the evaluation set
    max_resolved: int = 20_000  # newest resolved, uncorrected tickets used for training
    epochs: int = 20
    target_precision: float = DEFAULT_TARGET_PRECISION
    lease_seconds: int = 300  # a crashed trainer blocks the next retrain at most this long
    keep_versions: int = 10  # model directories kept besides the champion's; older ones are pruned after a retrain
    corpus: Path | None = None  # None: the bundled data/tickets.tsv

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RetrainSettings:
        corpus = env.get("RETRAIN_CORPUS", "").strip()
        settings = cls(
            schedule=_schedule(env.get("RETRAIN_SCHEDULE", "") or cls.schedule),
            min_gain=_float(env, "RETRAIN_MIN_GAIN", cls.min_gain, -1.0, 1.0),
            max_corpus_drop=_float(env, "RETRAIN_MAX_CORPUS_DROP", cls.max_corpus_drop, 0.0, 1.0),
            weight_corpus=_float(env, "RETRAIN_WEIGHT_CORPUS", cls.weight_corpus, 0.0, 100.0),
            weight_correction=_float(env, "RETRAIN_WEIGHT_CORRECTION", cls.weight_correction, 0.0, 100.0),
            weight_resolved=_float(env, "RETRAIN_WEIGHT_RESOLVED", cls.weight_resolved, 0.0, 100.0),
            holdout_percent=_int(env, "RETRAIN_HOLDOUT_PERCENT", cls.holdout_percent),
            eval_corrections=_int(env, "RETRAIN_EVAL_CORRECTIONS", cls.eval_corrections),
            max_resolved=_int(env, "RETRAIN_MAX_RESOLVED", cls.max_resolved),
            epochs=_int(env, "RETRAIN_EPOCHS", cls.epochs),
            target_precision=_float(env, "RETRAIN_TARGET_PRECISION", cls.target_precision, 0.5, 0.999),
            lease_seconds=_int(env, "RETRAIN_LEASE_SECONDS", cls.lease_seconds),
            keep_versions=_int(env, "RETRAIN_KEEP_VERSIONS", cls.keep_versions),
            corpus=Path(corpus).resolve() if corpus else None,
        )
        if not 0 <= settings.holdout_percent <= 90:
            raise ConfigError(f"RETRAIN_HOLDOUT_PERCENT: must be within 0..90, got {settings.holdout_percent}")
        for name, value in (("RETRAIN_EVAL_CORRECTIONS", settings.eval_corrections),
                            ("RETRAIN_MAX_RESOLVED", settings.max_resolved),
                            ("RETRAIN_KEEP_VERSIONS", settings.keep_versions)):
            if value < 0:
                raise ConfigError(f"{name}: must not be negative, got {value}")
        if settings.epochs < 1 or settings.lease_seconds < 30:
            raise ConfigError("RETRAIN_EPOCHS must be >= 1 and RETRAIN_LEASE_SECONDS >= 30")
        return settings


# --- Sending mail (docs/email.md, "Sending mail") -----------------------------------------------------------------

SMTP_SCHEMES = ("smtp", "smtp+starttls", "smtps")
_SMTP_DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


@dataclass(frozen=True)
class SmtpServer:
    """Where outbound mail goes, parsed from SMTP_URL.

    The scheme says the transport security outright, never "whatever the server offers": `smtp://` is plain (a
    relay on loopback or a private network), `smtp+starttls://` requires STARTTLS (a server that does not offer it
    is an error, never a silent fall back to plain text), `smtps://` is TLS from the first byte.
    """

    scheme: str
    host: str
    port: int
    username: str = ""
    password: str = field(default="", repr=False)

    @classmethod
    def parse(cls, raw: str) -> SmtpServer:
        from urllib.parse import unquote, urlsplit

        def bad(why: str) -> ConfigError:
            shown = raw.split("@")[-1]  # never echo a password
            return ConfigError(f"SMTP_URL: {why} (expected smtp://host:port, smtp+starttls://user:pass@host:587 "
                               f"or smtps://user:pass@host:465), got ...{shown!r}")

        parts = urlsplit(raw)
        scheme = parts.scheme.lower()
        if scheme not in SMTP_SCHEMES:
            raise bad(f"the scheme must be one of {', '.join(SMTP_SCHEMES)}")
        try:
            port = parts.port or _SMTP_DEFAULT_PORTS[scheme]
        except ValueError:
            raise bad("the port is not a number") from None
        if not parts.hostname:
            raise bad("no host")
        if parts.path not in ("", "/") or parts.query:
            raise bad("a path or query means nothing here")
        return cls(scheme, parts.hostname, port, unquote(parts.username or ""), unquote(parts.password or ""))


def _mail_from(raw: str) -> str:
    """`support@example.com` or `Example Support <support@example.com>`: one address, with a domain (the Message-IDs
    we make end in it)."""
    from email.utils import parseaddr

    _name, address = parseaddr(raw)
    if not address or address.count("@") != 1 or not address.split("@")[1] or any(c.isspace() for c in address):
        raise ConfigError(f"MAIL_FROM: expected an address like 'Support <support@example.com>', got {raw!r}")
    return raw


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("on", "true", "yes", "1"):
        return True
    if raw in ("off", "false", "no", "0"):
        return False
    raise ConfigError(f"{name}: expected on or off, got {raw!r}")


def _public_url(env: Mapping[str, str]) -> str:
    """The address customers reach the ticket page at (the link in acknowledgements); by default the one
    `furiwake run` serves (HOST, PORT)."""
    from urllib.parse import urlsplit

    raw = env.get("PUBLIC_URL", "").strip()
    if not raw:
        host = env.get("HOST", "").strip() or "127.0.0.1"
        return f"http://{host}:{_int(env, 'PORT', 8000)}"
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"PUBLIC_URL: expected an http(s) URL like https://support.example.com, got {raw!r}")
    return raw.rstrip("/")


@dataclass(frozen=True)
class MailSettings:
    """Outbound mail: agents' replies and acknowledgements (SMTP_URL, MAIL_FROM, ACKNOWLEDGE*, PUBLIC_URL)."""

    smtp: SmtpServer | None = None  # None: no mail is sent; replies wait in the outbox, no acknowledgements
    mail_from: str = ""
    acknowledge: bool = True  # effective only with an SMTP server
    acknowledge_max_per_hour: int = 3  # per recipient address: a mail loop or a flood gets at most this many
    public_url: str = "http://127.0.0.1:8000"
    smtp_timeout_seconds: float = 30.0

    @property
    def sends(self) -> bool:
        return self.smtp is not None

    @property
    def acknowledges(self) -> bool:
        return self.smtp is not None and self.acknowledge

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MailSettings:
        raw_url = env.get("SMTP_URL", "").strip()
        smtp = SmtpServer.parse(raw_url) if raw_url else None
        mail_from = env.get("MAIL_FROM", "").strip()
        if mail_from:
            mail_from = _mail_from(mail_from)
        elif smtp is not None:
            raise ConfigError("MAIL_FROM: required when SMTP_URL is set (e.g. 'Support <support@example.com>')")
        settings = cls(
            smtp=smtp,
            mail_from=mail_from,
            acknowledge=_switch(env, "ACKNOWLEDGE", True),
            acknowledge_max_per_hour=_int(env, "ACKNOWLEDGE_MAX_PER_HOUR", cls.acknowledge_max_per_hour),
            public_url=_public_url(env),
        )
        if settings.acknowledge_max_per_hour < 1:
            raise ConfigError("ACKNOWLEDGE_MAX_PER_HOUR: must be at least 1 (ACKNOWLEDGE=off turns them off)")
        return settings


# --- Assigning tickets to agents (docs/agents.md, "Assignment") -------------------------------------------------

ASSIGNMENT_MODES = ("least_loaded", "round_robin", "off")


@dataclass(frozen=True)
class AssignmentSettings:
    """How routed tickets go to agents of their route (ASSIGNMENT, ASSIGNMENT_MAX_OPEN,
    ASSIGNMENT_UNTOUCHED_MINUTES); core/assignment.py applies them."""

    mode: str = "least_loaded"  # or round_robin; off: agents take tickets by hand
    max_open: int = 10  # open tickets per agent, unless the agent has a cap of their own
    untouched_minutes: int = 30  # an assignee who has not acted on a ticket by then loses it to the pool

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AssignmentSettings:
        settings = cls(
            mode=_choice(env, "ASSIGNMENT", cls.mode, ASSIGNMENT_MODES),
            max_open=_int(env, "ASSIGNMENT_MAX_OPEN", cls.max_open),
            untouched_minutes=_int(env, "ASSIGNMENT_UNTOUCHED_MINUTES", cls.untouched_minutes),
        )
        if settings.max_open < 1:
            raise ConfigError(f"ASSIGNMENT_MAX_OPEN: must be at least 1, got {settings.max_open}")
        if settings.untouched_minutes < 1:
            raise ConfigError(f"ASSIGNMENT_UNTOUCHED_MINUTES: must be at least 1, got {settings.untouched_minutes}")
        return settings


# --- Service-level targets (docs/agents.md, "SLA") -----------------------------------------------------------------

SLA_FIRST_RESPONSE_DEFAULTS = {"Account": 60, "Payment": 30, "Other": 240}
SLA_RESOLUTION_DEFAULTS = {"Account": 480, "Payment": 240, "Other": 1440}
SLA_MAX_MINUTES = 365 * 24 * 60  # a year: anything longer is a typo (hours or seconds meant), not a target


def _route_minutes(env: Mapping[str, str], name: str, defaults: Mapping[str, int]) -> dict[str, int]:
    """`Account=60,Payment=30` → {"Account": 60, "Payment": 30, "Other": <default>}: whole minutes per route; a
    route not named keeps its default."""
    out = dict(defaults)
    for part in filter(None, (p.strip() for p in env.get(name, "").split(","))):
        route, sep, value = part.partition("=")
        route = route.strip()
        if not sep or route not in ROUTES:
            raise ConfigError(f"{name}: expected ROUTE=MINUTES with ROUTE in {', '.join(ROUTES)}, got {part!r}")
        try:
            minutes = int(value.strip())
        except ValueError:
            raise ConfigError(f"{name}: {route}'s target must be whole minutes, got {value.strip()!r}") from None
        if not 1 <= minutes <= SLA_MAX_MINUTES:
            raise ConfigError(f"{name}: {route}'s target must be within 1..{SLA_MAX_MINUTES} minutes, got {minutes}")
        out[route] = minutes
    return out


@dataclass(frozen=True)
class SlaSettings:
    """Per route, the minutes within which a ticket should get its first answer and be resolved
    (SLA_FIRST_RESPONSE_MINUTES, SLA_RESOLUTION_MINUTES); core/sla.py runs the clocks. Round the clock (24/7):
    no business hours or holidays (docs/agents.md, "SLA", says why)."""

    first_response_minutes: dict[str, int] = field(default_factory=lambda: dict(SLA_FIRST_RESPONSE_DEFAULTS))
    resolution_minutes: dict[str, int] = field(default_factory=lambda: dict(SLA_RESOLUTION_DEFAULTS))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SlaSettings:
        settings = cls(
            first_response_minutes=_route_minutes(env, "SLA_FIRST_RESPONSE_MINUTES", SLA_FIRST_RESPONSE_DEFAULTS),
            resolution_minutes=_route_minutes(env, "SLA_RESOLUTION_MINUTES", SLA_RESOLUTION_DEFAULTS),
        )
        for route in ROUTES:
            first, resolved = settings.first_response_minutes[route], settings.resolution_minutes[route]
            if first > resolved:
                raise ConfigError(f"SLA_FIRST_RESPONSE_MINUTES: {route}'s first-response target ({first} min) is "
                                  f"longer than its resolution target in SLA_RESOLUTION_MINUTES ({resolved} min)")
        return settings
