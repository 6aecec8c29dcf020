"""Configuration from LEADHUB_* environment variables, with an instance folder
for the embedded default (a SQLite file, jobs inline)."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path


def _instance_path() -> Path:
    return Path(os.environ.get("LEADHUB_INSTANCE_PATH") or Path.cwd() / "instance").resolve()


def private_folder(path: Path) -> Path:
    """A folder only the server's user may enter (0700): the instance holds
    the SQLite database, the secret key and uploaded files."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_uid == os.getuid():
        path.chmod(0o700)
    return path


def _secret_key(instance: Path) -> str:
    """A stable secret per instance folder, made on first use, unless one is given."""
    if os.environ.get("LEADHUB_SECRET_KEY"):
        return os.environ["LEADHUB_SECRET_KEY"]
    key_file = instance / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    private_folder(instance)
    key = secrets.token_hex(32)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


@dataclass
class Config:
    instance_path: Path
    database_url: str
    redis_url: str | None = None
    secret_key: str = ""
    default_language: str = "zh_CN"
    timezone: str = "Asia/Shanghai"  # for today/this_week filters and dated auto-numbers
    secure_cookies: bool = False  # LEADHUB_SECURE_COOKIES=1 behind HTTPS
    signin_rate_limit: str = "20 per minute"  # sign-in attempts per client address (LEADHUB_SIGNIN_RATE_LIMIT)
    max_page_size: int = 500
    max_bulk_records: int = 1000
    function_workers: int = 2               # sandbox worker processes (LEADHUB_FUNCTION_WORKERS)
    sandbox_user: str = "nobody"            # who sandbox workers become when started as root (LEADHUB_SANDBOX_USER)
    function_run_retention_days: int = 30   # execution log kept this long (LEADHUB_FUNCTION_RUN_RETENTION_DAYS)
    job_heartbeat_seconds: int = 10         # a running job's row is touched this often (LEADHUB_JOB_HEARTBEAT_SECONDS)
    job_stale_seconds: int = 60             # then its worker is taken for dead after this long (LEADHUB_JOB_STALE_SECONDS)
    tick_seconds: int = 15                  # how often serve and worker look for due periodic work (LEADHUB_TICK_SECONDS)
    # outgoing mail for notifications; no host means in-app only
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "leadhub@localhost"
    smtp_tls: str = "none"  # none | starttls | ssl (LEADHUB_SMTP_TLS=1 means starttls)
    base_url: str = ""      # https://crm.example.com: links in mail are absolute (LEADHUB_BASE_URL)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides) -> "Config":
        instance = Path(overrides.pop("instance_path", None) or _instance_path())
        url = overrides.pop("database_url", None) or os.environ.get("LEADHUB_DATABASE_URL")
        if not url:
            private_folder(instance)
            url = f"sqlite:///{instance / 'leadhub.db'}"
        redis_url = overrides.pop("redis_url", None) or os.environ.get("LEADHUB_REDIS_URL") or None
        secret = overrides.pop("secret_key", None) or _secret_key(instance)
        overrides.setdefault("timezone", os.environ.get("LEADHUB_TIMEZONE", "Asia/Shanghai"))
        for key, env in (("function_workers", "LEADHUB_FUNCTION_WORKERS"),
                         ("function_run_retention_days", "LEADHUB_FUNCTION_RUN_RETENTION_DAYS"),
                         ("job_heartbeat_seconds", "LEADHUB_JOB_HEARTBEAT_SECONDS"),
                         ("job_stale_seconds", "LEADHUB_JOB_STALE_SECONDS"),
                         ("tick_seconds", "LEADHUB_TICK_SECONDS")):
            if os.environ.get(env, "").isdigit():
                overrides.setdefault(key, int(os.environ[env]))
        base_url = os.environ.get("LEADHUB_BASE_URL", "").strip().rstrip("/")
        if base_url and not base_url.startswith(("http://", "https://")):
            raise ValueError("LEADHUB_BASE_URL must start with http:// or https://.")
        overrides.setdefault("base_url", base_url)
        if os.environ.get("LEADHUB_SIGNIN_RATE_LIMIT", "").strip():
            overrides.setdefault("signin_rate_limit", os.environ["LEADHUB_SIGNIN_RATE_LIMIT"].strip())
        if "LEADHUB_SANDBOX_USER" in os.environ:
            overrides.setdefault("sandbox_user", os.environ["LEADHUB_SANDBOX_USER"].strip())
        overrides.setdefault("secure_cookies", os.environ.get("LEADHUB_SECURE_COOKIES", "") in ("1", "true", "yes"))
        overrides.update({k: v for k, v in smtp_from_env().items() if k not in overrides})
        return cls(instance_path=instance, database_url=normalise_database_url(url),
                   redis_url=redis_url, secret_key=secret, **overrides)


def smtp_from_env() -> dict:
    env = os.environ
    out: dict = {}
    for name in ("host", "user", "password", "from"):
        if env.get(f"LEADHUB_SMTP_{name.upper()}"):
            out[f"smtp_{name}"] = env[f"LEADHUB_SMTP_{name.upper()}"]
    if env.get("LEADHUB_SMTP_PORT"):
        out["smtp_port"] = int(env["LEADHUB_SMTP_PORT"])
    tls = env.get("LEADHUB_SMTP_TLS", "").strip().lower()
    if tls:
        out["smtp_tls"] = {"1": "starttls", "true": "starttls", "yes": "starttls",
                           "0": "none", "false": "none", "no": "none"}.get(tls, tls)
        if out["smtp_tls"] not in ("none", "starttls", "ssl"):
            raise ValueError("LEADHUB_SMTP_TLS must be none, starttls or ssl.")
    return out


def normalise_database_url(url: str) -> str:
    """Accept the postgres:// and postgresql:// spellings and use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url
