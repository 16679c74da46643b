"""Settings: one frozen object built from the environment at each entry point (never at import time)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from core.routes import ROUTES


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message names the variable."""


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
    secret_key: str = "dev-insecure-change-me"
    sweep_after_seconds: int = 120
    sweep_every_seconds: int = 30
    max_body_chars: int = 20_000
    max_request_bytes: int = 1_000_000
    classify_batch_size: int = 64
    classify_batch_wait_ms: int = 20
    testing: bool = False

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def broker_dir(self) -> Path:
        return self.home / "var" / "broker"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read FURIWAKE_HOME, DATABASE_URL, BROKER_URL, MODEL_DIR, ... (see README's configuration table)."""
        env = os.environ if env is None else env
        home = Path(env.get("FURIWAKE_HOME", "") or os.getcwd()).resolve()
        route_map = env.get("ROUTE_MAP_FILE", "").strip()
        settings = cls(
            home=home,
            database_url=env.get("DATABASE_URL", "").strip() or f"sqlite:///{home / 'var' / 'furiwake.db'}",
            broker_url=env.get("BROKER_URL", "").strip() or "filesystem://",
            model_dir=Path(env.get("MODEL_DIR", "").strip() or home / "models").resolve(),
            route_map_file=Path(route_map).resolve() if route_map else None,
            review_thresholds=_parse_thresholds(env.get("REVIEW_THRESHOLDS", "")),
            port=_int(env, "PORT", 8000),
            secret_key=env.get("SECRET_KEY", "").strip() or "dev-insecure-change-me",
            sweep_after_seconds=_int(env, "SWEEP_AFTER_SECONDS", 120),
            sweep_every_seconds=_int(env, "SWEEP_EVERY_SECONDS", 30),
            max_body_chars=_int(env, "MAX_BODY_CHARS", 20_000),
            classify_batch_size=_int(env, "CLASSIFY_BATCH_SIZE", 64),
            classify_batch_wait_ms=_int(env, "CLASSIFY_BATCH_WAIT_MS", 20),
        )
        return replace(settings, **overrides) if overrides else settings  # type: ignore[arg-type]
