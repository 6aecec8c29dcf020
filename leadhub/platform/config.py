"""Configuration from LEADHUB_* environment variables, with an instance folder
for the embedded default (a SQLite file, jobs inline)."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path


def _instance_path() -> Path:
    return Path(os.environ.get("LEADHUB_INSTANCE_PATH") or Path.cwd() / "instance").resolve()


def _secret_key(instance: Path) -> str:
    """A stable secret per instance folder, made on first use, unless one is given."""
    if os.environ.get("LEADHUB_SECRET_KEY"):
        return os.environ["LEADHUB_SECRET_KEY"]
    key_file = instance / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
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
    max_page_size: int = 500
    max_bulk_records: int = 1000
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides) -> "Config":
        instance = Path(overrides.pop("instance_path", None) or _instance_path())
        url = overrides.pop("database_url", None) or os.environ.get("LEADHUB_DATABASE_URL")
        if not url:
            instance.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{instance / 'leadhub.db'}"
        redis_url = overrides.pop("redis_url", None) or os.environ.get("LEADHUB_REDIS_URL") or None
        secret = overrides.pop("secret_key", None) or _secret_key(instance)
        overrides.setdefault("timezone", os.environ.get("LEADHUB_TIMEZONE", "Asia/Shanghai"))
        overrides.setdefault("secure_cookies", os.environ.get("LEADHUB_SECURE_COOKIES", "") in ("1", "true", "yes"))
        return cls(instance_path=instance, database_url=normalise_database_url(url),
                   redis_url=redis_url, secret_key=secret, **overrides)


def normalise_database_url(url: str) -> str:
    """Accept the postgres:// and postgresql:// spellings and use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url
