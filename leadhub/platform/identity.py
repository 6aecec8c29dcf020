"""Organisation and rights: users, the department tree, groups, roles and
their merge into a Principal per user. Every change here bumps the security
version, so every process rebuilds the principals it cached."""
from __future__ import annotations

import dataclasses
import re
import threading
import zoneinfo
from typing import Any, Callable, Iterable

import marshmallow as mm
import sqlalchemy as sa

from leadhub.platform import audit, passwords, sessions, tables as t
from leadhub.platform.apinames import check_api_name
from leadhub.platform.db import Database, utcnow
from leadhub.platform.errors import BadRequest, Conflict, Forbidden, NotFound, ValidationFailed, messages_text
from leadhub.platform.labels import normalise_labels
from leadhub.platform.permissions import (ACTIONS, FIELD_ACCESS, SCOPES, Actor, Grant, ObjectRights, Principal,
                                          Shared, require_admin)

ADMIN_ROLE = "system_admin"


# ------------------------------------------------------------------ principals

def load_principal(conn: sa.Connection, user_id: int, contributors: Iterable = ()) -> Principal:
    """What `user_id` may do. Each scope contributor (a plugin's entry in the
    "scope" slot) is called as contributor(conn, principal) and returns
    (object, Grant) pairs widening the scope; a plugin whose grants change
    (pool members, say) calls bump_security so every process reloads them."""
    principal = _principal(conn, user_id)
    grants: dict[str, list[Grant]] = {}
    for contributor in contributors:
        for obj, grant in contributor(conn, principal) or ():
            grants.setdefault(obj, []).append(grant)
    return dataclasses.replace(principal, grants={o: tuple(g) for o, g in grants.items()}) if grants else principal


def _principal(conn: sa.Connection, user_id: int) -> Principal:
    user = conn.execute(sa.select(t.users.c.department_id).where(t.users.c.id == user_id)).first()
    dept = user.department_id if user else None
    tree: set[int] = set()
    if dept is not None:
        children: dict[int | None, list[int]] = {}
        for did, parent in conn.execute(sa.select(t.departments.c.id, t.departments.c.parent_id)):
            children.setdefault(parent, []).append(did)
        stack = [dept]
        while stack:
            d = stack.pop()
            if d not in tree:
                tree.add(d)
                stack.extend(children.get(d, []))
    reports: dict[int, list[int]] = {}
    for uid, manager in conn.execute(sa.select(t.users.c.id, t.users.c.manager_id).where(t.users.c.manager_id.is_not(None))):
        reports.setdefault(manager, []).append(uid)
    subordinates: set[int] = set()
    stack = list(reports.get(user_id, []))
    while stack:
        u = stack.pop()
        if u not in subordinates and u != user_id:
            subordinates.add(u)
            stack.extend(reports.get(u, []))
    groups = frozenset(conn.execute(sa.select(t.group_members.c.group_id)
                                    .where(t.group_members.c.user_id == user_id)).scalars())
    # within a role a named object's entry replaces the role's "*" entry;
    # across roles the rights for each object are merged (the union)
    per_role, role_names = [], []
    for objects, role_name in conn.execute(
            sa.select(t.roles.c.objects, t.roles.c.api_name).join(t.user_roles, t.user_roles.c.role_id == t.roles.c.id)
            .where(t.user_roles.c.user_id == user_id).order_by(t.roles.c.id)):
        role_names.append(role_name)
        per_role.append({name: ObjectRights(actions=frozenset(a for a in ACTIONS if spec.get(a)),
                                            scope=spec.get("scope", "own"),
                                            fields={f: a for f, a in (spec.get("fields") or {}).items() if a != "edit"})
                         for name, spec in (objects or {}).items()})
    rights: dict[str, ObjectRights] = {}
    for name in {n for role in per_role for n in role}:
        granted = [role.get(name) or role.get("*") for role in per_role]
        granted = [r for r in granted if r is not None]
        merged = granted[0]
        for r in granted[1:]:
            merged = merged.merge(r)
        rights[name] = merged
    members: dict[int, set[int]] = {}
    if tree:
        for uid, did in conn.execute(sa.select(t.users.c.id, t.users.c.department_id)
                                     .where(t.users.c.department_id.in_(sorted(tree)))):
            members.setdefault(did, set()).add(uid)
    return Principal(user_id=user_id, department_id=dept, tree_department_ids=frozenset(tree),
                     group_ids=groups, subordinate_ids=frozenset(subordinates),
                     department_user_ids=frozenset(members.get(dept, ())),
                     tree_user_ids=frozenset(u for d in tree for u in members.get(d, ())),
                     rights=rights, shared=_shares(conn, user_id, dept, groups), roles=tuple(role_names))


def _shares(conn, user_id: int, dept: int | None, groups: frozenset[int]) -> dict[str, Shared]:
    s = t.shares
    to_me = [sa.and_(s.c.principal_type == "user", s.c.principal_id == user_id)]
    if groups:
        to_me.append(sa.and_(s.c.principal_type == "group", s.c.principal_id.in_(sorted(groups))))
    if dept is not None:
        to_me.append(sa.and_(s.c.principal_type == "department", s.c.principal_id == dept))
    found: dict[str, dict[str, set[int]]] = {}
    for obj, record_id, owner_id, access in conn.execute(
            sa.select(s.c.object, s.c.record_id, s.c.owner_id, s.c.access).where(sa.or_(*to_me))):
        kinds = found.setdefault(obj, {"records": set(), "owners": set(), "edit_records": set(), "edit_owners": set()})
        prefix = "edit_" if access == "edit" else ""
        if record_id is not None:
            kinds[prefix + "records"].add(record_id)
        elif owner_id is not None:
            kinds[prefix + "owners"].add(owner_id)
    return {obj: Shared(**{k: frozenset(v) for k, v in kinds.items()}) for obj, kinds in found.items()}


class PrincipalCache:
    """Principals per user, valid for one security version; one per runtime
    (its `contributors()` are the runtime's scope slot)."""

    def __init__(self, contributors: Callable[[], Iterable] = tuple):
        self.contributors = contributors
        self._version = None
        self._items: dict[int, Principal] = {}
        self._lock = threading.Lock()

    def get(self, conn: sa.Connection, user_id: int, version: int) -> Principal:
        with self._lock:
            if version != self._version:
                self._items, self._version = {}, version
            p = self._items.get(user_id)
        if p is None:
            p = load_principal(conn, user_id, self.contributors())
            with self._lock:
                if version == self._version:
                    self._items[user_id] = p
        return p


def bump_security(conn: sa.Connection) -> None:
    conn.execute(sa.update(t.meta_version).values(security_version=t.meta_version.c.security_version + 1))


# ------------------------------------------------------------------ payloads

LOGIN = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")


def _timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise mm.ValidationError(f"Unknown time zone '{value}'.") from None


class WorkingHours(mm.Schema):
    class Meta:
        unknown = mm.RAISE
    days = mm.fields.List(mm.fields.Integer(strict=True, validate=mm.validate.Range(1, 7)), load_default=[1, 2, 3, 4, 5])
    start = mm.fields.String(load_default="09:00", validate=mm.validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$"))
    end = mm.fields.String(load_default="18:00", validate=mm.validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$"))


class UserSchema(mm.Schema):
    class Meta:
        unknown = mm.RAISE
    login = mm.fields.String(validate=mm.validate.Regexp(LOGIN, error="2-64 letters, digits or _ . @ -"))
    name = mm.fields.String(validate=mm.validate.Length(1, 128))
    email = mm.fields.Email(allow_none=True)
    phone = mm.fields.String(allow_none=True, validate=mm.validate.Regexp(r"^\+?[0-9 \-]{3,24}$"))
    password = mm.fields.String(load_only=True)
    department = mm.fields.Integer(strict=True, allow_none=True)
    manager = mm.fields.Integer(strict=True, allow_none=True)
    roles = mm.fields.List(mm.fields.String())
    language = mm.fields.String(validate=mm.validate.OneOf(["zh_CN", "en"]))
    timezone = mm.fields.String(validate=_timezone)
    working_hours = mm.fields.Nested(WorkingHours, allow_none=True)
    active = mm.fields.Boolean()
    is_admin = mm.fields.Boolean()


class DepartmentSchema(mm.Schema):
    class Meta:
        unknown = mm.RAISE
    name = mm.fields.String(validate=mm.validate.Length(1, 128))
    parent = mm.fields.Integer(strict=True, allow_none=True)
    head = mm.fields.Integer(strict=True, allow_none=True)


class GroupSchema(mm.Schema):
    class Meta:
        unknown = mm.RAISE
    name = mm.fields.String(validate=mm.validate.Length(1, 128))
    members = mm.fields.List(mm.fields.Integer(strict=True))


class RoleSchema(mm.Schema):
    class Meta:
        unknown = mm.RAISE
    api_name = mm.fields.String()
    label = mm.fields.Raw()
    objects = mm.fields.Dict(keys=mm.fields.String(), values=mm.fields.Dict())


def _load(schema: mm.Schema, payload: Any, *, partial: bool) -> dict:
    if not isinstance(payload, dict):
        raise BadRequest("The body must be a JSON object.", {"body": "Must be an object."})
    try:
        return schema.load(payload, partial=partial)
    except mm.ValidationError as exc:
        raise ValidationFailed({k: messages_text(v) for k, v in exc.normalized_messages().items()}) from None


def check_role_objects(objects: dict, known_objects) -> dict:
    """Validate a role's `objects` map; returns it normalised."""
    errors, out = {}, {}
    allowed = set(ACTIONS) | {"scope", "fields"}
    for name, spec in objects.items():
        key = f"objects.{name}"
        if name != "*" and name not in known_objects:
            errors[key] = f"No object '{name}'."
            continue
        if not isinstance(spec, dict) or set(spec) - allowed:
            errors[key] = f"Takes {', '.join(ACTIONS)}, scope and fields."
            continue
        bad = [a for a in ACTIONS if a in spec and not isinstance(spec[a], bool)]
        if bad:
            errors[key] = f"{', '.join(bad)} must be true or false."
            continue
        if spec.get("scope", "own") not in SCOPES:
            errors[f"{key}.scope"] = f"Scope is one of {', '.join(SCOPES)}."
            continue
        fields = spec.get("fields") or {}
        obj = known_objects.get(name)
        if not isinstance(fields, dict) or any(v not in FIELD_ACCESS for v in fields.values()):
            errors[f"{key}.fields"] = f"Each field is one of {', '.join(FIELD_ACCESS)}."
            continue
        unknown = [f for f in fields if obj is not None and f not in obj.fields]
        if unknown:
            errors[f"{key}.fields"] = f"Unknown fields: {', '.join(unknown)}."
            continue
        out[name] = {**{a: spec.get(a, False) for a in ACTIONS}, "scope": spec.get("scope", "own"), "fields": fields}
    if errors:
        raise ValidationFailed(errors)
    return out


# ------------------------------------------------------------------ service

class Organisation:
    """Users, departments, groups and roles: the admin side of identity."""

    def __init__(self, db: Database, cache):
        self.db, self.cache = db, cache

    # users
    def user_dict(self, conn, uid: int) -> dict:
        u = conn.execute(sa.select(t.users).where(t.users.c.id == uid)).mappings().first()
        if u is None:
            raise NotFound(f"No user {uid}.")
        roles = list(conn.execute(sa.select(t.roles.c.api_name).join(t.user_roles, t.user_roles.c.role_id == t.roles.c.id)
                                  .where(t.user_roles.c.user_id == uid).order_by(t.roles.c.api_name)).scalars())
        return {"id": u["id"], "login": u["login"], "name": u["name"], "email": u["email"], "phone": u["phone"],
                "department": u["department_id"], "manager": u["manager_id"], "roles": roles,
                "language": u["language"], "timezone": u["timezone"], "working_hours": u["working_hours"],
                "active": u["active"], "is_admin": u["is_admin"], "created_at": u["created_at"],
                "locked_until": u["locked_until"]}

    def list_users(self) -> list[dict]:
        with self.db.read() as conn:
            return [self.user_dict(conn, uid) for uid in conn.execute(sa.select(t.users.c.id).order_by(t.users.c.id)).scalars()]

    def get_user(self, uid: int) -> dict:
        with self.db.read() as conn:
            return self.user_dict(conn, uid)

    def create_user(self, actor: Actor, payload: Any) -> dict:
        require_admin(actor)
        data = _load(UserSchema(), payload, partial=False)
        missing = {k: "This field is required." for k in ("login",) if k not in data}
        if missing:
            raise ValidationFailed(missing)
        with self.db.write() as conn:
            if conn.execute(sa.select(t.users.c.id).where(t.users.c.login == data["login"])).first():
                raise Conflict(f"A user '{data['login']}' already exists.", {"login": "Already taken."})
            uid = conn.execute(t.users.insert().values(
                login=data["login"], name=data.get("name") or data["login"], email=data.get("email"),
                is_admin=data.get("is_admin", False), active=data.get("active", True),
                language=data.get("language", "zh_CN"), created_at=utcnow()).returning(t.users.c.id)).scalar_one()
            self._apply_user(conn, actor, uid, data)
            audit.record(conn, actor, "user_created", target=data["login"],
                         details={k: v for k, v in data.items() if k != "password"})
            return self.user_dict(conn, uid)

    def update_user(self, actor: Actor, uid: int, payload: Any) -> dict:
        require_admin(actor)
        data = _load(UserSchema(), payload, partial=True)
        with self.db.write() as conn:
            self.user_dict(conn, uid)
            if "login" in data and conn.execute(sa.select(t.users.c.id).where(
                    t.users.c.login == data["login"], t.users.c.id != uid)).first():
                raise Conflict(f"A user '{data['login']}' already exists.", {"login": "Already taken."})
            simple = {k: data[k] for k in ("login", "name", "email", "language", "is_admin", "active") if k in data}
            if simple:
                conn.execute(sa.update(t.users).where(t.users.c.id == uid).values(**simple))
            self._apply_user(conn, actor, uid, data)
            audit.record(conn, actor, "user_changed", target=uid,
                         details={k: v for k, v in data.items() if k != "password"})
            return self.user_dict(conn, uid)

    def update_me(self, actor: Actor, payload: Any) -> dict:
        """What every user may change about himself: language, time zone,
        working hours, phone. Everything else is an admin's."""
        if actor.user_id is None:
            raise BadRequest("The system has no profile.")
        allowed = ("language", "timezone", "working_hours", "phone")
        if isinstance(payload, dict):
            refused = {k: "Only an administrator may change this." for k in payload if k not in allowed}
            if refused:
                raise Forbidden("You may change your language, time zone, working hours and phone.", refused)
        data = _load(UserSchema(), payload, partial=True)
        with self.db.write() as conn:
            if "language" in data:
                conn.execute(sa.update(t.users).where(t.users.c.id == actor.user_id).values(language=data["language"]))
            self._apply_user(conn, actor, actor.user_id, data)
            return self.user_dict(conn, actor.user_id)

    def deactivate_user(self, actor: Actor, uid: int) -> None:
        """Users are never deleted: their records, history and audit trail stay."""
        require_admin(actor)
        if uid == actor.user_id:
            raise Conflict("You cannot deactivate yourself.", {"id": "Yourself."})
        with self.db.write() as conn:
            self.user_dict(conn, uid)
            conn.execute(sa.update(t.users).where(t.users.c.id == uid).values(active=False))
            sessions.end_all(conn, uid, revoke_tokens=False)    # tokens stop with the user; kept for reactivation
            bump_security(conn)
            audit.record(conn, actor, "user_deactivated", target=uid)

    def _apply_user(self, conn, actor: Actor, uid: int, data: dict) -> None:
        errors = {}
        values: dict[str, Any] = {}
        if "password" in data:
            if (msg := passwords.weakness(data["password"])):
                errors["password"] = msg
            else:
                values.update(password_hash=passwords.hash_password(data["password"]), password_changed_at=utcnow(),
                              failed_logins=0, locked_until=None)
                # a reset cuts off whoever held the old password: every session, and
                # the user's tokens too (a first password, set for a user who had
                # none, leaves the tokens an admin gave him alone)
                had = conn.execute(sa.select(t.users.c.password_hash).where(t.users.c.id == uid)).scalar()
                sessions.end_all(conn, uid, revoke_tokens=had is not None)
        if "department" in data:
            if data["department"] is not None and not conn.execute(
                    sa.select(t.departments.c.id).where(t.departments.c.id == data["department"])).first():
                errors["department"] = f"No department {data['department']}."
            values["department_id"] = data["department"]
        if "manager" in data:
            manager = data["manager"]
            if manager is not None:
                if manager == uid:
                    errors["manager"] = "A user cannot manage themselves."
                elif not conn.execute(sa.select(t.users.c.id).where(t.users.c.id == manager)).first():
                    errors["manager"] = f"No user {manager}."
                elif uid in _manager_chain(conn, manager):
                    errors["manager"] = "That would make a circle of managers."
            values["manager_id"] = manager
        for key in ("phone", "timezone", "working_hours"):
            if key in data:
                values[key] = data[key]
        role_ids = None
        if "roles" in data:
            found = dict(conn.execute(sa.select(t.roles.c.api_name, t.roles.c.id)
                                      .where(t.roles.c.api_name.in_(data["roles"]))).all())
            unknown = [r for r in data["roles"] if r not in found]
            if unknown:
                errors["roles"] = f"No role {', '.join(unknown)}."
            role_ids = sorted(set(found.values()))
        if errors:
            raise ValidationFailed(errors)
        if values:
            conn.execute(sa.update(t.users).where(t.users.c.id == uid).values(**values))
        if role_ids is not None:
            conn.execute(sa.delete(t.user_roles).where(t.user_roles.c.user_id == uid))
            if role_ids:
                conn.execute(t.user_roles.insert(), [{"user_id": uid, "role_id": r} for r in role_ids])
            if "is_admin" not in data:  # the system_admin role and the admin flag go together
                conn.execute(sa.update(t.users).where(t.users.c.id == uid)
                             .values(is_admin=ADMIN_ROLE in data["roles"]))
        bump_security(conn)

    # departments
    def dept_dict(self, conn, did: int) -> dict:
        d = conn.execute(sa.select(t.departments).where(t.departments.c.id == did)).mappings().first()
        if d is None:
            raise NotFound(f"No department {did}.")
        return {"id": d["id"], "name": d["name"], "parent": d["parent_id"], "head": d["head_id"],
                "created_at": d["created_at"]}

    def list_departments(self) -> list[dict]:
        with self.db.read() as conn:
            return [self.dept_dict(conn, i) for i in conn.execute(sa.select(t.departments.c.id).order_by(t.departments.c.id)).scalars()]

    def get_department(self, did: int) -> dict:
        with self.db.read() as conn:
            return self.dept_dict(conn, did)

    def save_department(self, actor: Actor, payload: Any, did: int | None = None) -> dict:
        require_admin(actor)
        data = _load(DepartmentSchema(), payload, partial=did is not None)
        if did is None and "name" not in data:
            raise ValidationFailed({"name": "This field is required."})
        with self.db.write() as conn:
            if did is not None:
                self.dept_dict(conn, did)
            errors = {}
            parent = data.get("parent")
            if parent is not None:
                if not conn.execute(sa.select(t.departments.c.id).where(t.departments.c.id == parent)).first():
                    errors["parent"] = f"No department {parent}."
                elif did is not None and did in _dept_chain(conn, parent):
                    errors["parent"] = "A department cannot sit below itself."
            if data.get("head") is not None and not conn.execute(
                    sa.select(t.users.c.id).where(t.users.c.id == data["head"])).first():
                errors["head"] = f"No user {data['head']}."
            if errors:
                raise ValidationFailed(errors)
            values = {k2: data[k] for k, k2 in (("name", "name"), ("parent", "parent_id"), ("head", "head_id")) if k in data}
            if did is None:
                did = conn.execute(t.departments.insert().values(created_at=utcnow(), **values)
                                   .returning(t.departments.c.id)).scalar_one()
            elif values:
                conn.execute(sa.update(t.departments).where(t.departments.c.id == did).values(**values))
            bump_security(conn)
            audit.record(conn, actor, "department_changed", target=did, details=data)
            return self.dept_dict(conn, did)

    def delete_department(self, actor: Actor, did: int) -> None:
        require_admin(actor)
        with self.db.write() as conn:
            self.dept_dict(conn, did)
            if conn.execute(sa.select(t.departments.c.id).where(t.departments.c.parent_id == did)).first():
                raise Conflict("The department has departments below it; move or delete them first.", {"id": "Has children."})
            if conn.execute(sa.select(t.users.c.id).where(t.users.c.department_id == did)).first():
                raise Conflict("The department still has users; move them first.", {"id": "Has users."})
            conn.execute(sa.delete(t.departments).where(t.departments.c.id == did))
            bump_security(conn)
            audit.record(conn, actor, "department_changed", target=did, details={"deleted": True})

    # groups
    def group_dict(self, conn, gid: int) -> dict:
        g = conn.execute(sa.select(t.groups).where(t.groups.c.id == gid)).mappings().first()
        if g is None:
            raise NotFound(f"No group {gid}.")
        members = list(conn.execute(sa.select(t.group_members.c.user_id).where(t.group_members.c.group_id == gid)
                                    .order_by(t.group_members.c.user_id)).scalars())
        return {"id": g["id"], "name": g["name"], "members": members}

    def list_groups(self) -> list[dict]:
        with self.db.read() as conn:
            return [self.group_dict(conn, i) for i in conn.execute(sa.select(t.groups.c.id).order_by(t.groups.c.id)).scalars()]

    def get_group(self, gid: int) -> dict:
        with self.db.read() as conn:
            return self.group_dict(conn, gid)

    def save_group(self, actor: Actor, payload: Any, gid: int | None = None) -> dict:
        require_admin(actor)
        data = _load(GroupSchema(), payload, partial=gid is not None)
        if gid is None and "name" not in data:
            raise ValidationFailed({"name": "This field is required."})
        with self.db.write() as conn:
            if gid is not None:
                self.group_dict(conn, gid)
            if "name" in data and conn.execute(sa.select(t.groups.c.id).where(
                    t.groups.c.name == data["name"], t.groups.c.id != (gid or 0))).first():
                raise Conflict(f"A group '{data['name']}' already exists.", {"name": "Already taken."})
            if "members" in data:
                known = set(conn.execute(sa.select(t.users.c.id).where(t.users.c.id.in_(data["members"]))).scalars())
                unknown = sorted(set(data["members"]) - known)
                if unknown:
                    raise ValidationFailed({"members": f"No users {', '.join(map(str, unknown))}."})
            if gid is None:
                gid = conn.execute(t.groups.insert().values(name=data["name"], created_at=utcnow())
                                   .returning(t.groups.c.id)).scalar_one()
            elif "name" in data:
                conn.execute(sa.update(t.groups).where(t.groups.c.id == gid).values(name=data["name"]))
            if "members" in data:
                conn.execute(sa.delete(t.group_members).where(t.group_members.c.group_id == gid))
                if data["members"]:
                    conn.execute(t.group_members.insert(), [{"group_id": gid, "user_id": u} for u in sorted(set(data["members"]))])
            bump_security(conn)
            audit.record(conn, actor, "group_changed", target=gid, details=data)
            return self.group_dict(conn, gid)

    def delete_group(self, actor: Actor, gid: int) -> None:
        require_admin(actor)
        with self.db.write() as conn:
            self.group_dict(conn, gid)
            conn.execute(sa.delete(t.group_members).where(t.group_members.c.group_id == gid))
            conn.execute(sa.delete(t.shares).where(t.shares.c.principal_type == "group", t.shares.c.principal_id == gid))
            conn.execute(sa.delete(t.groups).where(t.groups.c.id == gid))
            bump_security(conn)
            audit.record(conn, actor, "group_changed", target=gid, details={"deleted": True})

    # roles
    @staticmethod
    def role_dict(r) -> dict:
        return {"id": r["id"], "api_name": r["api_name"], "label": r["labels"].get("en"), "labels": r["labels"],
                "objects": r["objects"], "builtin": r["builtin"]}

    def list_roles(self) -> list[dict]:
        with self.db.read() as conn:
            return [self.role_dict(r) for r in conn.execute(sa.select(t.roles).order_by(t.roles.c.id)).mappings()]

    def _role_row(self, conn, key):
        col = t.roles.c.id if isinstance(key, int) else t.roles.c.api_name
        r = conn.execute(sa.select(t.roles).where(col == key)).mappings().first()
        if r is None:
            raise NotFound(f"No role {key}.")
        return r

    def get_role(self, key) -> dict:
        with self.db.read() as conn:
            return self.role_dict(self._role_row(conn, key))

    def save_role(self, actor: Actor, payload: Any, key=None) -> dict:
        require_admin(actor)
        data = _load(RoleSchema(), payload, partial=key is not None)
        errors = {}
        if key is None:
            if (msg := check_api_name(data.get("api_name"), kind="role")):
                errors["api_name"] = msg
        elif "api_name" in data:
            errors["api_name"] = "A role's api_name cannot change."
        labels = None
        if "label" in data or key is None:
            try:
                labels = normalise_labels(data.get("label"))
            except ValueError as exc:
                errors["label"] = "Label is required." if data.get("label") is None else str(exc)
        if errors:
            raise ValidationFailed(errors)
        objects = check_role_objects(data["objects"], self.cache.current().objects) if "objects" in data else None
        now = utcnow()
        with self.db.write() as conn:
            if key is None:
                if conn.execute(sa.select(t.roles.c.id).where(t.roles.c.api_name == data["api_name"])).first():
                    raise Conflict(f"A role '{data['api_name']}' already exists.", {"api_name": "Already taken."})
                rid = conn.execute(t.roles.insert().values(
                    api_name=data["api_name"], labels=labels, objects=objects or {}, builtin=False,
                    created_at=now, updated_at=now).returning(t.roles.c.id)).scalar_one()
                action = "role_created"
            else:
                rid = self._role_row(conn, key)["id"]
                values = {"updated_at": now}
                if labels is not None:
                    values["labels"] = labels
                if objects is not None:
                    values["objects"] = objects
                conn.execute(sa.update(t.roles).where(t.roles.c.id == rid).values(**values))
                action = "role_changed"
            bump_security(conn)
            audit.record(conn, actor, action, target=rid, details=data)
            return self.role_dict(self._role_row(conn, rid))

    def delete_role(self, actor: Actor, key) -> None:
        require_admin(actor)
        with self.db.write() as conn:
            r = self._role_row(conn, key)
            if r["builtin"]:
                raise Conflict(f"'{r['api_name']}' is a built-in role; change its rights instead.", {"id": "Built-in."})
            conn.execute(sa.delete(t.user_roles).where(t.user_roles.c.role_id == r["id"]))
            conn.execute(sa.delete(t.roles).where(t.roles.c.id == r["id"]))
            bump_security(conn)
            audit.record(conn, actor, "role_deleted", target=r["api_name"])


def _manager_chain(conn, uid: int) -> set[int]:
    managers = dict(conn.execute(sa.select(t.users.c.id, t.users.c.manager_id)).all())
    seen: set[int] = set()
    while uid is not None and uid not in seen:
        seen.add(uid)
        uid = managers.get(uid)
    return seen


def _dept_chain(conn, did: int) -> set[int]:
    parents = dict(conn.execute(sa.select(t.departments.c.id, t.departments.c.parent_id)).all())
    seen: set[int] = set()
    while did is not None and did not in seen:
        seen.add(did)
        did = parents.get(did)
    return seen
