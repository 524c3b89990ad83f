"""One place for configuration: read from PARCOURS_* environment variables, safe dev defaults."""

from __future__ import annotations

import ipaddress
from datetime import time
from functools import lru_cache
from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET = "dev-secret-change-me"
MIN_SECRET_LENGTH = 32


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: reachable from this machine only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


class ConfigError(Exception):
    """A configuration value is wrong; the message names the variable."""


class Settings(BaseSettings):
    """Runtime configuration. Every field maps to PARCOURS_<FIELD> in the environment."""

    model_config = SettingsConfigDict(env_prefix="PARCOURS_", extra="ignore")

    mode: str = Field("dev", pattern="^(dev|prod)$", description="dev or prod")
    data_dir: Path = Path(".parcours")
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "parcours"
    database_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int | None = Field(None, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    mail_from: str = "Parcours <ne-pas-repondre@parcours.localhost>"
    base_url: str | None = Field(None, description="public URL of the admin UI (default: http://ui_host:ui_port)")
    secret_key: str = DEFAULT_SECRET
    ui_host: str = "127.0.0.1"
    ui_port: int = Field(8000, ge=1, le=65535)
    # `parcours ui`: uvicorn worker processes, each with its own connections (`--workers` overrides).
    ui_workers: int = Field(1, ge=1, le=64)
    # Behind a reverse proxy: the header it sets to the client's address (e.g. X-Real-IP or
    # X-Forwarded-For, its last address), read for the sign-in rate limits. Unset: the socket peer.
    trusted_proxy_header: str | None = None
    capture_smtp_port: int = Field(2525, ge=1, le=65535)
    temporal_ui_port: int = Field(8233, ge=1, le=65535)
    # Working hours (Europe/Paris): working-day deadlines end at closing time; reminders, overdue
    # notices and escalations of working-day clocks go out between opening and closing.
    day_opens: time = time(8, 30)
    day_closes: time = time(18, 0)
    # Where npm put @gouvfr/dsfr and htmx.org (default: node_modules next to the code).
    assets_dir: Path | None = None
    # Continue-as-new once a run's history grows past this many events (at a step boundary).
    history_event_limit: int = Field(2000, ge=100)
    # Read-model writes of new pathways (README, "When something fails"): how long a write may
    # hold a pathway before it is retried durably, how long an action waits for the pages to
    # follow, and the backoff of durable retries. Given to each pathway when it starts.
    commit_local_seconds: float = Field(30.0, gt=0, le=300)
    answer_within_seconds: float = Field(10.0, gt=0, le=60)
    commit_retry_first_seconds: float = Field(5.0, gt=0, le=600)
    commit_retry_max_seconds: float = Field(600.0, gt=0, le=3600)
    # Open pathways kept in a worker's memory; beyond it a timer firing must replay a history first.
    workflow_cache_size: int = Field(5000, ge=100)
    secrecy_threshold: int = Field(
        11,
        ge=1,
        le=1000,
        description="counts below it are not shown to designers or the direction (secret statistique)",
    )
    # Minutes between two computations of the evaluation's figures (services/evaluation_facts.py):
    # the workers take turns; 0 leaves them to `parcours evaluation-refresh` (cron).
    evaluation_refresh_minutes: int = Field(60, ge=0, le=24 * 60)
    # Seconds between two looks of a worker's outbox relay at the e-mails due (it is woken at once
    # by the commits of its own process; polling finds the others' and the retries).
    outbox_poll_seconds: float = 2.0

    @model_validator(mode="after")
    def _refuse_default_secret_in_prod(self) -> Settings:
        if self.mode == "prod" and (self.secret_key == DEFAULT_SECRET or len(self.secret_key) < MIN_SECRET_LENGTH):
            raise ValueError(
                f"PARCOURS_SECRET_KEY doit être un vrai secret d'au moins {MIN_SECRET_LENGTH} caractères quand "
                "PARCOURS_MODE=prod (par exemple : python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        return self

    @model_validator(mode="after")
    def _dev_listens_on_loopback_only(self) -> Settings:
        if self.mode == "dev" and not is_loopback(self.ui_host):
            raise ValueError(
                f"PARCOURS_UI_HOST={self.ui_host} : en mode dev (secret par défaut, e-mails capturés visibles), "
                "l'interface n'écoute que sur la boucle locale (127.0.0.1, ::1 ou localhost) ; pour l'exposer, "
                "passez en PARCOURS_MODE=prod avec une PARCOURS_SECRET_KEY"
            )
        return self

    @model_validator(mode="after")
    def _hours_in_order(self) -> Settings:
        if self.day_opens >= self.day_closes:
            raise ValueError(
                f"PARCOURS_DAY_OPENS ({self.day_opens:%H:%M}) must be before PARCOURS_DAY_CLOSES ({self.day_closes:%H:%M})"
            )
        return self

    @field_validator("outbox_poll_seconds")
    @classmethod
    def _outbox_poll_in_range(cls, value: float) -> float:
        if not 0.05 <= value <= 300:
            raise ValueError(f"{value:g} : il faut un nombre de secondes entre 0,05 et 300 (par défaut 2)")
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'parcours.db').resolve()}"

    @property
    def public_url(self) -> str:
        return (self.base_url or f"http://{self.ui_host}:{self.ui_port}").rstrip("/")

    @property
    def uses_smtp_capture(self) -> bool:
        """Without an SMTP server configured, the dev stack captures e-mails itself."""
        return self.smtp_host is None


def load_settings() -> Settings:
    """Read settings, turning pydantic's error into one line per wrong variable."""
    try:
        return Settings()
    except ValidationError as error:
        lines = []
        for item in error.errors():
            name = "PARCOURS_" + "_".join(str(p) for p in item["loc"]).upper() if item["loc"] else "settings"
            lines.append(f"{name}: {item['msg']}")
        raise ConfigError("; ".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
