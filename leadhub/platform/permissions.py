"""The one permission check. Every read passes through `scope_predicate` (the
query compiler adds it) and every write through `require` (the record
service calls it), so the API, pages, exports and functions cannot disagree.

Today an active user may do everything and metadata changes need an admin;
the identity issue fills in roles, field rights and record scope here, in
this module only."""
from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from leadhub.platform.errors import Forbidden

ACTIONS = ("create", "read", "edit", "delete", "import", "export")


@dataclass(frozen=True)
class Actor:
    """Who is acting: a signed-in user, a token's user, or the system itself."""
    user_id: int | None
    login: str
    is_admin: bool = False
    language: str = "zh_CN"
    scopes: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def system(cls) -> "Actor":
        return cls(user_id=None, login="system", is_admin=True)


def require(actor: Actor, obj_name: str, action: str) -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action}")
    if actor is None:
        raise Forbidden("Sign in first.")


def require_admin(actor: Actor) -> None:
    if actor is None or not actor.is_admin:
        raise Forbidden("Only administrators may change metadata.")


def scope_predicate(actor: Actor, obj_name: str, table: sa.Table) -> sa.ColumnElement | None:
    """Extra WHERE clause limiting `actor` to the records they may see; None = all."""
    return None
