"""Users and API tokens, the minimum the API needs until the identity issue
adds passwords, roles and sessions. Tokens are shown once and stored as a
SHA-256 digest; a leaked database does not leak usable tokens."""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets

import sqlalchemy as sa

from leadhub.platform import tables as t
from leadhub.platform.db import Database, utcnow
from leadhub.platform.errors import Conflict, NotFound, Unauthorized
from leadhub.platform.permissions import Actor

TOKEN_PREFIX = "lh_"
TOUCH_EVERY = dt.timedelta(minutes=1)  # last_used_at is refreshed at most this often


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(db: Database, login: str, name: str, *, email: str | None = None,
                is_admin: bool = False, language: str = "zh_CN") -> int:
    with db.write() as conn:
        if conn.execute(sa.select(t.users.c.id).where(t.users.c.login == login)).first():
            raise Conflict(f"A user '{login}' already exists.", {"login": "Already taken."})
        return conn.execute(t.users.insert().values(
            login=login, name=name, email=email, is_admin=is_admin, active=True,
            language=language, created_at=utcnow()).returning(t.users.c.id)).scalar_one()


def user_id(db: Database, login: str) -> int:
    with db.read() as conn:
        uid = conn.execute(sa.select(t.users.c.id).where(t.users.c.login == login)).scalar()
    if uid is None:
        raise NotFound(f"No user '{login}'.", {"user": "Unknown user."})
    return uid


def create_token(db: Database, login: str, name: str = "api", expires_at: dt.datetime | None = None) -> str:
    """Create a token for `login` and return it; only its digest is stored."""
    uid = user_id(db, login)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.write() as conn:
        conn.execute(t.api_tokens.insert().values(
            user_id=uid, name=name, token_hash=_digest(token), prefix=token[:10],
            created_at=utcnow(), expires_at=expires_at))
    return token


def token_is_valid(db: Database, token: str) -> bool:
    try:
        authenticate(db, token)
        return True
    except Unauthorized:
        return False


def authenticate(db: Database, token: str) -> Actor:
    if not token or not token.startswith(TOKEN_PREFIX):
        raise Unauthorized("Send 'Authorization: Bearer <token>'.")
    tk, u = t.api_tokens, t.users
    with db.read() as conn:
        row = conn.execute(sa.select(tk.c.id, tk.c.expires_at, tk.c.revoked_at, tk.c.last_used_at,
                                     u.c.id.label("uid"), u.c.login, u.c.is_admin, u.c.active, u.c.language)
                           .join(u, u.c.id == tk.c.user_id).where(tk.c.token_hash == _digest(token))).first()
    now = utcnow()
    if row is None or row.revoked_at is not None or not row.active \
            or (row.expires_at is not None and row.expires_at <= now):
        raise Unauthorized("The token is unknown, revoked or expired.")
    if row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY:
        with db.write() as conn:
            conn.execute(sa.update(tk).where(tk.c.id == row.id).values(last_used_at=now))
    return Actor(user_id=row.uid, login=row.login, is_admin=row.is_admin, language=row.language)
