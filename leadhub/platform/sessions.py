"""Browser sessions kept on the server. The signed cookie holds a random
session id; its SHA-256 is the row's key, so neither a database reader nor
the cookie alone can forge one. A session is valid while its row is not
ended and its user active; signing out ends it, a password reset or
deactivation ends all of the user's (and revokes the user's API tokens)."""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets

import sqlalchemy as sa

from leadhub.platform import tables as t
from leadhub.platform.db import utcnow

TOUCH_EVERY = dt.timedelta(minutes=5)     # last_seen_at is written at most this often
IDLE_LIMIT = dt.timedelta(days=14)        # a session unused this long has ended


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def start(conn: sa.Connection, user_id: int, ip: str | None = None) -> str:
    sid = secrets.token_urlsafe(32)
    now = utcnow()
    conn.execute(t.sessions.insert().values(id_hash=_hash(sid), user_id=user_id, created_at=now,
                                            last_seen_at=now, ip=(ip or "")[:64] or None))
    return sid


def check(conn: sa.Connection, user_id: int, sid: str | None) -> tuple[bool, bool]:
    """(whether `sid` is a live session of `user_id`, whether it is due a
    `touch`): a read, so pages do not queue behind each other for a write."""
    if not isinstance(sid, str) or not sid:
        return False, False
    s = t.sessions
    row = conn.execute(sa.select(s.c.user_id, s.c.last_seen_at, s.c.ended_at)
                       .where(s.c.id_hash == _hash(sid))).first()
    now = utcnow()
    if row is None or row.user_id != user_id or row.ended_at is not None or now - row.last_seen_at > IDLE_LIMIT:
        return False, False
    return True, now - row.last_seen_at > TOUCH_EVERY


def touch(conn: sa.Connection, sid: str) -> None:
    conn.execute(sa.update(t.sessions).where(t.sessions.c.id_hash == _hash(sid)).values(last_seen_at=utcnow()))


def end(conn: sa.Connection, sid: str | None) -> None:
    if sid:
        conn.execute(sa.update(t.sessions).where(t.sessions.c.id_hash == _hash(sid), t.sessions.c.ended_at.is_(None))
                     .values(ended_at=utcnow()))


def end_all(conn: sa.Connection, user_id: int, *, revoke_tokens: bool, keep: str | None = None) -> None:
    """Every session of the user ends (a password reset, a deactivation), but
    `keep` (the one changing its own password); with revoke_tokens, the
    user's API tokens stop working too."""
    now = utcnow()
    others = [t.sessions.c.id_hash != _hash(keep)] if keep else []
    conn.execute(sa.update(t.sessions).where(t.sessions.c.user_id == user_id, t.sessions.c.ended_at.is_(None),
                                             *others).values(ended_at=now))
    if revoke_tokens:
        conn.execute(sa.update(t.api_tokens).where(t.api_tokens.c.user_id == user_id,
                                                   t.api_tokens.c.revoked_at.is_(None)).values(revoked_at=now))
