"""The one permission check. Every read passes through `scope_predicate` and
`check_field` (the query compiler calls them) and every write through
`require`, `scope_predicate(..., "edit")` and `check_writable` (the record
service calls them), so the API, pages, exports, lookups and functions
cannot disagree.

An Actor carries its Principal: the user's roles merged into rights per
object, its department, the departments below it, its groups and the users
who report to it, resolved once per security version (see identity.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import sqlalchemy as sa

from leadhub.platform.errors import Forbidden

ACTIONS = ("create", "read", "edit", "delete", "import", "export")
SCOPES = ("own", "department", "department_tree", "all")      # widening order
FIELD_ACCESS = ("hidden", "read", "edit")                      # widening order


@dataclass(frozen=True)
class ObjectRights:
    actions: frozenset[str] = frozenset()
    scope: str = "own"
    fields: Mapping[str, str] = field(default_factory=dict)   # only restricted fields: hidden | read

    def field_access(self, name: str) -> str:
        return self.fields.get(name, "edit")

    def merge(self, other: "ObjectRights") -> "ObjectRights":
        """The union of two roles' rights: every action either grants, the wider
        scope, and per field the more open access."""
        names = set(self.fields) & set(other.fields)  # a field one role leaves open stays open
        return ObjectRights(
            actions=self.actions | other.actions,
            scope=max(self.scope, other.scope, key=SCOPES.index),
            fields={n: max(self.fields[n], other.fields[n], key=FIELD_ACCESS.index) for n in names})


NO_RIGHTS = ObjectRights()
ALL_RIGHTS = ObjectRights(actions=frozenset(ACTIONS), scope="all")


@dataclass(frozen=True)
class Shared:
    """What has been shared with a principal on one object."""
    records: frozenset[int] = frozenset()        # readable record ids
    owners: frozenset[int] = frozenset()         # owners all of whose records are readable
    edit_records: frozenset[int] = frozenset()
    edit_owners: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Grant:
    """A plugin's widening of one object's scope (the "scope" slot): the
    records whose `column` holds one of `values`, e.g. the leads of the pools
    a rep is a member of. Read-only unless `edit`."""
    column: str
    values: frozenset
    edit: bool = False


@dataclass(frozen=True)
class Principal:
    """What a user may do, resolved from roles, departments, groups, managers
    and shares. Everything a scope needs is here as plain ids, so the scope
    predicate is a literal owner list the database can match on its index."""
    user_id: int
    department_id: int | None = None
    tree_department_ids: frozenset[int] = frozenset()   # own department and every one below it
    group_ids: frozenset[int] = frozenset()
    subordinate_ids: frozenset[int] = frozenset()       # everyone whose manager chain reaches this user
    department_user_ids: frozenset[int] = frozenset()   # members of the own department
    tree_user_ids: frozenset[int] = frozenset()         # members of the own department and those below
    rights: Mapping[str, ObjectRights] = field(default_factory=dict)  # by object, "*" for the rest
    shared: Mapping[str, Shared] = field(default_factory=dict)        # by object
    roles: tuple[str, ...] = ()                         # role api names, by role id (layouts are chosen by them)
    grants: Mapping[str, tuple[Grant, ...]] = field(default_factory=dict)  # by object, from plugins

    def rights_for(self, obj_name: str) -> ObjectRights:
        return self.rights.get(obj_name) or self.rights.get("*") or NO_RIGHTS


@dataclass(frozen=True)
class Actor:
    """Who is acting: a signed-in user, a token's user, or the system itself."""
    user_id: int | None
    login: str
    is_admin: bool = False
    language: str = "zh_CN"
    read_only: bool = False                         # a read-only token
    token_objects: frozenset[str] | None = None     # a token limited to these objects
    principal: Principal | None = None

    @classmethod
    def system(cls) -> "Actor":
        return cls(user_id=None, login="system", is_admin=True)

    def rights(self, obj_name: str) -> ObjectRights:
        if self.is_admin:
            return ALL_RIGHTS
        return self.principal.rights_for(obj_name) if self.principal else NO_RIGHTS


def require(actor: Actor, obj_name: str, action: str) -> None:
    """Refuse (403) an action on an object the actor has no right to."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action}")
    if actor is None:
        raise Forbidden("Sign in first.")
    if actor.read_only and action != "read":
        raise Forbidden("This token is read-only.")
    if actor.token_objects is not None and obj_name not in actor.token_objects:
        raise Forbidden(f"This token is not valid for {obj_name}.")
    if action not in actor.rights(obj_name).actions:
        raise Forbidden(f"You may not {action} {obj_name} records.", {obj_name: f"No {action} right."})


def require_admin(actor: Actor) -> None:
    if actor is None or not actor.is_admin or actor.read_only:
        raise Forbidden("Only administrators may do this.")


def check_field(actor: Actor, obj_name: str, field_name: str) -> None:
    """A hidden field is absent: naming it in fields, filters or sorts is a 403."""
    if actor.rights(obj_name).field_access(field_name) == "hidden":
        raise Forbidden(f"You may not read {obj_name}.{field_name}.", {field_name: "Hidden from you."})


def visible(actor: Actor, obj_name: str, field_name: str) -> bool:
    return actor.rights(obj_name).field_access(field_name) != "hidden"


def check_writable(actor: Actor, obj_name: str, field_names) -> None:
    """Refuse (403) a write that names a field the actor may only read or not see."""
    rights = actor.rights(obj_name)
    denied = {n: "You may not change this field." for n in field_names if rights.field_access(n) != "edit"}
    if denied:
        raise Forbidden(f"You may not change: {', '.join(sorted(denied))}.", denied)


@dataclass(frozen=True)
class RecordScope:
    """The records an actor may reach on one object, as plain ids: owned by
    one of `owners`, or one of `records` (shared one by one), or matched by a
    plugin's grant. The query compiler may split it by owner (see query.py);
    `predicate` is the same set as one WHERE clause."""
    owners: frozenset[int]
    records: frozenset[int] = frozenset()
    grants: tuple[Grant, ...] = ()

    def predicate(self, table: sa.Table) -> sa.ColumnElement:
        owners = sorted(self.owners)
        own = table.c.owner == owners[0] if len(owners) == 1 else table.c.owner.in_(owners) if owners else None
        extra = self.extra(table)
        if own is None or extra is None:
            return sa.false() if own is None and extra is None else own if extra is None else extra
        return sa.or_(own, extra)

    def extra(self, table: sa.Table) -> sa.ColumnElement | None:
        """What the scope reaches beyond its owners' records, or None."""
        clauses = [table.c.id.in_(sorted(self.records))] if self.records else []
        clauses += [table.c[g.column].in_(sorted(g.values)) for g in self.grants if g.column in table.c]
        if not clauses:
            return None
        return sa.or_(*clauses) if len(clauses) > 1 else clauses[0]


def record_scope(actor: Actor, obj_name: str, access: str = "read") -> RecordScope | None:
    """The records `actor` may read (or edit) on `obj_name`; None = all.
    Own records, the records of everyone reporting to the actor, of the
    department (or its tree) as the role's scope says, what was shared, and
    what plugins grant."""
    rights = actor.rights(obj_name)
    if rights.scope == "all":
        return None
    p = actor.principal
    if p is None:
        return RecordScope(owners=frozenset())
    owners = {p.user_id} | p.subordinate_ids
    if rights.scope == "department":
        owners |= p.department_user_ids
    elif rights.scope == "department_tree":
        owners |= p.tree_user_ids
    shared = p.shared.get(obj_name)
    records: frozenset[int] = frozenset()
    if shared is not None:
        owners |= shared.edit_owners if access == "edit" else shared.owners | shared.edit_owners
        records = shared.edit_records if access == "edit" else shared.records | shared.edit_records
    grants = tuple(g for g in p.grants.get(obj_name, ()) if g.values and (access == "read" or g.edit))
    return RecordScope(owners=frozenset(owners), records=records, grants=grants)


def scope_predicate(actor: Actor, obj_name: str, table: sa.Table, access: str = "read") -> sa.ColumnElement | None:
    """WHERE clause limiting `actor` to the records it may read (or edit); None = all
    (grants on columns absent from `table` are skipped)."""
    scope = record_scope(actor, obj_name, access)
    return None if scope is None else scope.predicate(table)
