"""Signing in: passwords with lock-out, API tokens (shown once, stored as a
SHA-256 digest, scoped read-only or to objects, expiring, revocable, last
use recorded), and the Actor every request acts as."""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

import sqlalchemy as sa

from leadhub.platform import audit, passwords, sessions, tables as t
from leadhub.platform.db import Database, utcnow
from leadhub.platform.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from leadhub.platform.identity import ADMIN_ROLE
from leadhub.platform.permissions import Actor

TOKEN_PREFIX = "lh_"
TOUCH_EVERY = dt.timedelta(minutes=1)   # last_used_at is refreshed at most this often
MAX_FAILURES = 5                        # then the account locks ...
LOCK_FOR = dt.timedelta(minutes=15)     # ... for this long (doubling while failures go on)



def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(db: Database, login: str, name: str, *, email: str | None = None, is_admin: bool = False,
                language: str = "zh_CN", password: str | None = None) -> int:
    """Bootstrap and CLI helper; the admin API goes through identity.Organisation."""
    if password is not None and (msg := passwords.weakness(password)):
        raise ValidationFailed({"password": msg})
    with db.write() as conn:
        if conn.execute(sa.select(t.users.c.id).where(t.users.c.login == login)).first():
            raise Conflict(f"A user '{login}' already exists.", {"login": "Already taken."})
        uid = conn.execute(t.users.insert().values(
            login=login, name=name, email=email, is_admin=is_admin, active=True, language=language,
            created_at=utcnow(), password_hash=passwords.hash_password(password) if password else None,
        ).returning(t.users.c.id)).scalar_one()
        if is_admin:
            rid = conn.execute(sa.select(t.roles.c.id).where(t.roles.c.api_name == ADMIN_ROLE)).scalar()
            if rid:
                conn.execute(t.user_roles.insert().values(user_id=uid, role_id=rid))
        return uid


def user_id(db: Database, login: str) -> int:
    with db.read() as conn:
        uid = conn.execute(sa.select(t.users.c.id).where(t.users.c.login == login)).scalar()
    if uid is None:
        raise NotFound(f"No user '{login}'.", {"user": "Unknown user."})
    return uid


def session_actor(db: Database, cache, uid: Any, sid: Any) -> Actor:
    """The Actor of a browser session, or Unauthorized when the session was
    ended (signed out, password reset, deactivated) or never existed."""
    if not isinstance(uid, int):
        raise Unauthorized("Sign in again.")
    with db.read() as conn:
        ok, due = sessions.check(conn, uid, sid)
    if not ok:
        raise Unauthorized("Your session has ended; sign in again.")
    if due:
        with db.write() as conn:
            sessions.touch(conn, sid)
    return actor_for(db, cache, uid)


def actor_for(db: Database, cache, uid: int, *, read_only: bool = False, objects=None) -> Actor:
    """The Actor for a user, with rights resolved (cached per security version)."""
    with db.read() as conn:
        cache.current(conn)  # refreshes cache.security_version
        u = conn.execute(sa.select(t.users.c.login, t.users.c.is_admin, t.users.c.language, t.users.c.active)
                         .where(t.users.c.id == uid)).first()
        if u is None or not u.active:
            raise Unauthorized("The user is unknown or deactivated.")
        principal = cache.principals.get(conn, uid, cache.security_version)
    return Actor(user_id=uid, login=u.login, is_admin=u.is_admin, language=u.language, read_only=read_only,
                 token_objects=frozenset(objects) if objects is not None else None, principal=principal)


# ------------------------------------------------------------------ passwords

def sign_in(db: Database, cache, login: str, password: str, ip: str | None = None) -> Actor:
    """Check a password; repeated failures lock the account for a while.
    Every outcome is audited; the message never says which part was wrong."""
    now = utcnow()
    with db.write() as conn:
        u = conn.execute(sa.select(t.users).where(t.users.c.login == login)).mappings().first()
        locked = u is not None and u["locked_until"] is not None and u["locked_until"] > now
        ok = passwords.verify(u["password_hash"] if u else None, password) and u is not None and u["active"]
        if ok and not locked:
            conn.execute(sa.update(t.users).where(t.users.c.id == u["id"]).values(failed_logins=0, locked_until=None))
            audit.record(conn, Actor(user_id=u["id"], login=login), "sign_in", ip=ip)
            uid = u["id"]
        else:
            if u is not None and not locked:
                failures = u["failed_logins"] + 1
                values: dict[str, Any] = {"failed_logins": failures}
                if failures >= MAX_FAILURES:
                    values["locked_until"] = now + LOCK_FOR * (2 ** min(failures - MAX_FAILURES, 6))
                conn.execute(sa.update(t.users).where(t.users.c.id == u["id"]).values(**values))
            audit.record(conn, None, "sign_in_failed", target=login[:64], ip=ip,
                         details={"locked": bool(locked)})
            uid = None
    if uid is None:
        raise Unauthorized("Wrong login or password, or the account is locked for a while.")
    return actor_for(db, cache, uid)


def change_password(db: Database, actor: Actor, old: str, new: str, *, session_id: str | None = None) -> None:
    """The user's own change: every other session of his ends (the one making
    the change, `session_id`, goes on); his API tokens stay his to manage."""
    with db.write() as conn:
        current = conn.execute(sa.select(t.users.c.password_hash).where(t.users.c.id == actor.user_id)).scalar()
        if not passwords.verify(current, old or ""):
            raise Forbidden("The current password is wrong.", {"old_password": "Wrong password."})
        if (msg := passwords.weakness(new)):
            raise ValidationFailed({"new_password": msg})
        conn.execute(sa.update(t.users).where(t.users.c.id == actor.user_id).values(
            password_hash=passwords.hash_password(new), password_changed_at=utcnow()))
        sessions.end_all(conn, actor.user_id, revoke_tokens=False, keep=session_id)
        audit.record(conn, actor, "password_changed", target=actor.user_id)


# ------------------------------------------------------------------ tokens

def create_token(db: Database, login: str, name: str = "api", expires_at: dt.datetime | None = None, *,
                 read_only: bool = False, objects: list[str] | None = None, actor: Actor | None = None) -> str:
    """Create a token for `login` and return it; only its digest is stored."""
    uid = user_id(db, login)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.write() as conn:
        tid = conn.execute(t.api_tokens.insert().values(
            user_id=uid, name=name, token_hash=_digest(token), prefix=token[:10], created_at=utcnow(),
            expires_at=expires_at, read_only=read_only, objects=objects).returning(t.api_tokens.c.id)).scalar_one()
        audit.record(conn, actor, "token_created", target=tid, details={"user": login, "read_only": read_only,
                                                                        "objects": objects})
    return token


def token_dict(r) -> dict:
    return {"id": r["id"], "user": r["user_id"], "name": r["name"], "prefix": r["prefix"],
            "created_at": r["created_at"], "expires_at": r["expires_at"], "last_used_at": r["last_used_at"],
            "revoked": r["revoked_at"] is not None, "read_only": r["read_only"], "objects": r["objects"]}


def list_tokens(db: Database, actor: Actor) -> list[dict]:
    tk = t.api_tokens
    stmt = sa.select(tk).order_by(tk.c.id)
    if not actor.is_admin:
        stmt = stmt.where(tk.c.user_id == actor.user_id)
    with db.read() as conn:
        return [token_dict(r) for r in conn.execute(stmt).mappings()]


def revoke_token(db: Database, actor: Actor, token_id: int) -> None:
    tk = t.api_tokens
    with db.write() as conn:
        row = conn.execute(sa.select(tk.c.user_id).where(tk.c.id == token_id)).first()
        if row is None or (row.user_id != actor.user_id and not actor.is_admin):
            raise NotFound(f"No token {token_id}.")
        conn.execute(sa.update(tk).where(tk.c.id == token_id).values(revoked_at=utcnow()))
        audit.record(conn, actor, "token_revoked", target=token_id)


def token_is_valid(db: Database, token: str) -> bool:
    tk = t.api_tokens
    with db.read() as conn:
        row = conn.execute(sa.select(tk.c.revoked_at, tk.c.expires_at).where(tk.c.token_hash == _digest(token))).first()
    return row is not None and row.revoked_at is None and (row.expires_at is None or row.expires_at > utcnow())


def authenticate(db: Database, cache, token: str) -> Actor:
    if not token or not token.startswith(TOKEN_PREFIX):
        raise Unauthorized("Send 'Authorization: Bearer <token>'.")
    tk = t.api_tokens
    with db.read() as conn:
        row = conn.execute(sa.select(tk.c.id, tk.c.user_id, tk.c.expires_at, tk.c.revoked_at, tk.c.last_used_at,
                                     tk.c.read_only, tk.c.objects)
                           .where(tk.c.token_hash == _digest(token))).first()
    now = utcnow()
    if row is None or row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        raise Unauthorized("The token is unknown, revoked or expired.")
    if row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY:
        with db.write() as conn:
            conn.execute(sa.update(tk).where(tk.c.id == row.id).values(last_used_at=now))
            audit.record(conn, Actor(user_id=row.user_id, login=""), "token_used", target=row.id)
    return actor_for(db, cache, row.user_id, read_only=row.read_only, objects=row.objects)
