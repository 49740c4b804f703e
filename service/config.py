"""One `Settings` object built from the environment (CONTRACT.md section 2) and passed explicitly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from urllib.parse import urlsplit

from service.crypto.retention import RetentionPolicy

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
# ID token signature algorithms the hub accepts unless HANDOVER_OIDC_ALGORITHMS narrows them: asymmetric only.
# `none` and the HMAC family (HS*, whose "key" would be the provider's public key) can never be configured.
OIDC_ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
DEFAULT_OIDC_ALGORITHMS = ("RS256", "PS256", "ES256")
# The development registry `handover keys init` makes (git-ignored, beside the private keys) from the tracked
# keys/network.json; a deployment sets HANDOVER_NETWORK to its network's registry.
DEV_NETWORK = "keys/private/network.json"


class ConfigError(ValueError):
    """A setting is present but unusable; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment.

    `database_url` None means: start a private embedded cluster under `var_dir/pg`.
    """

    database_url: str | None
    host: str
    port: int
    network_path: Path
    keys_dir: Path
    var_dir: Path
    checkpoint_seconds: float
    max_body_bytes: int
    db_pool_max: int = 20
    max_message_age_seconds: float = 24 * 3600
    max_clock_skew_seconds: float = 300
    staff_jwks_path: Path | None = None
    safety_net_seconds: float = 60
    deadline_acknowledgement_hours: float = 4
    deadline_smdt_outcome_days: float = 14
    deadline_transfer_response_hours: float = 24
    deadline_discharge_summary_hours: float = 24
    staff_issuer: str = "urn:handover:dev-staff-idp"
    kek_file: Path | None = None
    delivery_window_seconds: float = 5 * 24 * 3600
    push_timeout_seconds: float = 30
    push_concurrency: int = 4
    relay_poll_seconds: float = 1.0
    payload_retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    retention_sweep_seconds: float = 3600
    background_pool_max: int = 5
    clock_warning_days: int = 7
    oidc_issuer: str | None = None
    oidc_client_id: str = "handover"
    oidc_client_secret: str | None = None
    oidc_role_claim: str = "roles"
    dev_idp: bool = False
    ui_idle_minutes: float = 30
    ui_max_session_hours: float = 12
    ui_sign_in_starts_per_minute: int = 20
    # The staff pages' own address as browsers see it (the OIDC redirect_uri is built from it, never from Host);
    # None: http(s)://<listen address>, which suits development only.
    public_url: str | None = None
    serves_tls: bool = False  # HANDOVER_TLS_CERT is set (only the default public URL reads it)
    # Peers whose X-Forwarded-Proto / X-Forwarded-For are believed (TLS-terminating proxies); none by default.
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    oidc_algorithms: tuple[str, ...] = DEFAULT_OIDC_ALGORITHMS
    oidc_timeout_seconds: float = 10
    oidc_keys_max_age_seconds: float = 3600
    # Where the record of published checkpoints is kept, outside the database (service/auditlog/published.py);
    # None: no record (the default with the embedded development cluster, which is never backed up or restored).
    checkpoint_record_dir: Path | None = None
    housekeeping_seconds: float = 60
    # High availability (docs/operations.md): how long start-up waits for a writable primary before exiting 1,
    # and how long intake waits on the database before answering 503 (below any client's timeout).
    database_wait_seconds: float = 120
    intake_database_timeout_seconds: float = 5

    @property
    def staff_public_url(self) -> str:
        """HANDOVER_PUBLIC_URL, else this hub's listen address (https when it serves TLS itself)."""
        if self.public_url:
            return self.public_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104 - read, not bound
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.serves_tls else 'http'}://{host}:{self.port}"

    @property
    def kek_path(self) -> Path:
        """HANDOVER_KEK_FILE, else `<keys_dir>/kek.key` (created on first start of a new development set-up)."""
        return self.kek_file if self.kek_file is not None else self.keys_dir / "kek.key"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        host, port = _parse_listen(env.get("HANDOVER_LISTEN", "127.0.0.1:8080"))
        return cls(
            database_url=env.get("HANDOVER_DATABASE_URL") or None,
            host=host,
            port=port,
            network_path=Path(env.get("HANDOVER_NETWORK", DEV_NETWORK)),
            keys_dir=Path(env.get("HANDOVER_KEYS_DIR", "keys/private")),
            var_dir=Path(env.get("HANDOVER_VAR_DIR", "var")),
            checkpoint_seconds=_positive_number(env, "HANDOVER_CHECKPOINT_SECONDS", 10.0),
            max_body_bytes=int(_positive_number(env, "HANDOVER_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)),
            db_pool_max=int(_positive_number(env, "HANDOVER_DB_POOL_MAX", 20)),
            max_message_age_seconds=_positive_number(env, "HANDOVER_MAX_MESSAGE_AGE_SECONDS", 24 * 3600),
            max_clock_skew_seconds=_positive_number(env, "HANDOVER_MAX_CLOCK_SKEW_SECONDS", 300),
            deadline_acknowledgement_hours=_positive_number(env, "HANDOVER_DEADLINE_ACKNOWLEDGEMENT_HOURS", 4),
            deadline_smdt_outcome_days=_positive_number(env, "HANDOVER_DEADLINE_SMDT_OUTCOME_DAYS", 14),
            deadline_transfer_response_hours=_positive_number(env, "HANDOVER_DEADLINE_TRANSFER_RESPONSE_HOURS", 24),
            deadline_discharge_summary_hours=_positive_number(env, "HANDOVER_DEADLINE_DISCHARGE_SUMMARY_HOURS", 24),
            safety_net_seconds=_positive_number(env, "HANDOVER_SAFETY_NET_SECONDS", 60),
            staff_jwks_path=Path(env["HANDOVER_STAFF_JWKS"]) if env.get("HANDOVER_STAFF_JWKS") else None,
            staff_issuer=env.get("HANDOVER_STAFF_ISSUER") or "urn:handover:dev-staff-idp",
            kek_file=Path(env["HANDOVER_KEK_FILE"]) if env.get("HANDOVER_KEK_FILE") else None,
            delivery_window_seconds=_positive_number(env, "HANDOVER_DELIVERY_WINDOW_SECONDS", 5 * 24 * 3600),
            push_timeout_seconds=_positive_number(env, "HANDOVER_PUSH_TIMEOUT_SECONDS", 30),
            push_concurrency=int(_positive_number(env, "HANDOVER_PUSH_CONCURRENCY", 4)),
            relay_poll_seconds=_positive_number(env, "HANDOVER_RELAY_POLL_SECONDS", 1.0),
            payload_retention=_retention(env.get("HANDOVER_PAYLOAD_RETENTION") or "30d"),
            retention_sweep_seconds=_positive_number(env, "HANDOVER_RETENTION_SWEEP_SECONDS", 3600),
            background_pool_max=int(_positive_number(env, "HANDOVER_BACKGROUND_POOL_MAX", 5)),
            clock_warning_days=int(_positive_number(env, "HANDOVER_CLOCK_WARNING_DAYS", 7)),
            oidc_issuer=env.get("HANDOVER_OIDC_ISSUER") or None,
            oidc_client_id=env.get("HANDOVER_OIDC_CLIENT_ID") or "handover",
            oidc_client_secret=env.get("HANDOVER_OIDC_CLIENT_SECRET") or None,
            oidc_role_claim=env.get("HANDOVER_OIDC_ROLE_CLAIM") or "roles",
            dev_idp=_flag(env, "HANDOVER_DEV_IDP"),
            ui_idle_minutes=_positive_number(env, "HANDOVER_UI_IDLE_MINUTES", 30),
            ui_max_session_hours=_positive_number(env, "HANDOVER_UI_MAX_SESSION_HOURS", 12),
            ui_sign_in_starts_per_minute=int(_positive_number(env, "HANDOVER_UI_SIGN_IN_STARTS_PER_MINUTE", 20)),
            public_url=_public_url(env.get("HANDOVER_PUBLIC_URL") or ""),
            serves_tls=bool(env.get("HANDOVER_TLS_CERT")),
            trusted_proxies=_networks(env.get("HANDOVER_TRUSTED_PROXIES") or ""),
            oidc_algorithms=_algorithms(env.get("HANDOVER_OIDC_ALGORITHMS") or ""),
            oidc_timeout_seconds=_positive_number(env, "HANDOVER_OIDC_TIMEOUT_SECONDS", 10),
            oidc_keys_max_age_seconds=_positive_number(env, "HANDOVER_OIDC_KEYS_MAX_AGE_SECONDS", 3600),
            checkpoint_record_dir=_checkpoint_record_dir(env),
            housekeeping_seconds=_positive_number(env, "HANDOVER_HOUSEKEEPING_SECONDS", 60),
            database_wait_seconds=_positive_number(env, "HANDOVER_DATABASE_WAIT_SECONDS", 120),
            intake_database_timeout_seconds=_positive_number(env, "HANDOVER_INTAKE_DATABASE_TIMEOUT_SECONDS", 5),
        )


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "0").strip().lower()
    if raw not in ("0", "1", "true", "false", "yes", "no"):
        raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")
    return raw in ("1", "true", "yes")


def _checkpoint_record_dir(env: Mapping[str, str]) -> Path | None:
    """HANDOVER_CHECKPOINT_RECORD_DIR (``off`` for none); by default `<var_dir>/published-checkpoints` when the
    database is an external one (HANDOVER_DATABASE_URL), none with the embedded development cluster."""
    configured = env.get("HANDOVER_CHECKPOINT_RECORD_DIR", "")
    if configured:
        return None if configured == "off" else Path(configured)
    if env.get("HANDOVER_DATABASE_URL"):
        return Path(env.get("HANDOVER_VAR_DIR", "var")) / "published-checkpoints"
    return None


def _public_url(text: str) -> str | None:
    """HANDOVER_PUBLIC_URL: `http(s)://host[:port]`, optionally with a path prefix; no query or fragment."""
    if not text:
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"HANDOVER_PUBLIC_URL must be http(s)://host[:port], got {text!r}")
    return text.rstrip("/")


def _networks(text: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """HANDOVER_TRUSTED_PROXIES: comma-separated addresses or CIDR blocks."""
    try:
        return tuple(ip_network(item.strip(), strict=False) for item in text.split(",") if item.strip())
    except ValueError as err:
        raise ConfigError(f"HANDOVER_TRUSTED_PROXIES: {err}") from None


def _algorithms(text: str) -> tuple[str, ...]:
    """HANDOVER_OIDC_ALGORITHMS: comma-separated JWS algorithms, each an asymmetric one."""
    if not text.strip():
        return DEFAULT_OIDC_ALGORITHMS
    chosen = tuple(item.strip() for item in text.split(",") if item.strip())
    wrong = [alg for alg in chosen if alg not in OIDC_ASYMMETRIC_ALGORITHMS]
    if wrong or not chosen:
        raise ConfigError(
            f"HANDOVER_OIDC_ALGORITHMS may list only {', '.join(OIDC_ASYMMETRIC_ALGORITHMS)}; got {text!r}"
        )
    return chosen


def _retention(text: str) -> RetentionPolicy:
    try:
        return RetentionPolicy.parse(text)
    except ValueError as err:
        raise ConfigError(f"HANDOVER_PAYLOAD_RETENTION: {err}") from None


def _parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"HANDOVER_LISTEN must be host:port, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _positive_number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value
