"""The audit log: sign-ins, token use, permission and role changes, owner
transfers, exports. Written in the transaction of what it records (so a
rolled-back change leaves no entry), except sign-in failures, which are
written on their own precisely because nothing else is."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from leadhub.platform import tables as t
from leadhub.platform.db import utcnow
from leadhub.platform.permissions import Actor

ACTIONS = ("sign_in", "sign_in_failed", "sign_out", "token_created", "token_revoked", "token_used",
           "user_created", "user_changed", "user_deactivated", "password_changed", "password_reset",
           "role_created", "role_changed", "role_deleted", "department_changed", "group_changed",
           "share_created", "share_deleted", "owner_transferred", "handover", "export",
           # metadata: items of every kind, objects and fields (object= the kind, target= the key)
           "meta_created", "meta_updated", "meta_deleted", "meta_restored", "meta_purged",
           "bundle_installed", "bundle_upgraded", "bundle_uninstalled")


def record(conn: sa.Connection, actor: Actor | None, action: str, *, object: str | None = None,
           target: Any = None, details: dict | None = None, ip: str | None = None) -> None:
    conn.execute(t.audit.insert().values(
        at=utcnow(), actor_id=actor.user_id if actor else None, actor_login=actor.login if actor else None,
        action=action, object=object, target=None if target is None else str(target)[:128],
        details=details, ip=ip))


def entries(conn: sa.Connection, *, action: str | None = None, actor_id: int | None = None,
            since=None, limit: int = 100, before_id: int | None = None) -> list[dict]:
    a = t.audit
    stmt = sa.select(a).order_by(a.c.id.desc()).limit(limit)
    if action:
        stmt = stmt.where(a.c.action == action)
    if actor_id:
        stmt = stmt.where(a.c.actor_id == actor_id)
    if since is not None:
        stmt = stmt.where(a.c.at >= since)
    if before_id:
        stmt = stmt.where(a.c.id < before_id)
    return [dict(r) for r in conn.execute(stmt).mappings()]
