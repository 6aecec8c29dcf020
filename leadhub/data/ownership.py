"""Who may see and who owns records beyond their scope: explicit shares and
the hand-over of everything one user owns to another."""
from __future__ import annotations

from typing import Any

import marshmallow as mm
import sqlalchemy as sa

from leadhub.data.query import QueryCompiler
from leadhub.platform import audit, permissions, tables as t
from leadhub.platform.db import utcnow
from leadhub.platform.errors import BadRequest, NotFound, ValidationFailed, messages_text
from leadhub.platform.identity import bump_security
from leadhub.platform.permissions import Actor

PRINCIPALS = {"user": t.users, "group": t.groups, "department": t.departments}
HANDOVER_BATCH = 500


class ShareSchema(mm.Schema):
    class Meta:
        unknown = mm.RAISE
    with_ = mm.fields.Dict(data_key="with", required=True)
    access = mm.fields.String(load_default="read", validate=mm.validate.OneOf(["read", "edit"]))
    object = mm.fields.String()


def _principal(conn, spec: dict) -> tuple[str, int]:
    kind, pid = spec.get("type"), spec.get("id")
    if kind not in PRINCIPALS or isinstance(pid, bool) or not isinstance(pid, int):
        raise ValidationFailed({"with": "Give {\"type\": \"user\" | \"group\" | \"department\", \"id\": n}."})
    table = PRINCIPALS[kind]
    if not conn.execute(sa.select(table.c.id).where(table.c.id == pid)).first():
        raise ValidationFailed({"with": f"No {kind} {pid}."})
    return kind, pid


def _load(payload: Any) -> dict:
    if not isinstance(payload, dict):
        raise BadRequest("The body must be a JSON object.", {"body": "Must be an object."})
    try:
        return ShareSchema().load(payload)
    except mm.ValidationError as exc:
        raise ValidationFailed({k: messages_text(v) for k, v in exc.normalized_messages().items()}) from None


def share_dict(r) -> dict:
    return {"id": r["id"], "object": r["object"], "record": r["record_id"], "owner": r["owner_id"],
            "with": {"type": r["principal_type"], "id": r["principal_id"]}, "access": r["access"],
            "created_by": r["created_by"], "created_at": r["created_at"]}


class Ownership:
    def __init__(self, runtime):
        self.runtime = runtime

    def share_record(self, actor: Actor, obj_name: str, record_id: int, payload: Any) -> dict:
        """Share one record; the actor must be able to edit it."""
        data = _load(payload)
        if "object" in data:
            raise ValidationFailed({"object": "The object is in the address."})
        rt = self.runtime
        with rt.db.write() as conn:
            self._editable(conn, actor, obj_name, record_id)
            kind, pid = _principal(conn, data["with_"])
            sid = conn.execute(t.shares.insert().values(
                object=obj_name, record_id=record_id, owner_id=None, principal_type=kind, principal_id=pid,
                access=data["access"], created_by=actor.user_id, created_at=utcnow()).returning(t.shares.c.id)).scalar_one()
            bump_security(conn)  # principals carry their shares
            audit.record(conn, actor, "share_created", object=obj_name, target=record_id,
                         details={"with": data["with_"], "access": data["access"]})
            return share_dict(conn.execute(sa.select(t.shares).where(t.shares.c.id == sid)).mappings().one())

    def share_owner(self, actor: Actor, owner_id: int, payload: Any) -> dict:
        """Share all of one user's records of an object (an admin's act)."""
        permissions.require_admin(actor)
        data = _load(payload)
        rt = self.runtime
        obj_name = data.get("object")
        if not obj_name:
            raise ValidationFailed({"object": "This field is required."})
        rt.cache.current().get(obj_name)
        with rt.db.write() as conn:
            if not conn.execute(sa.select(t.users.c.id).where(t.users.c.id == owner_id)).first():
                raise NotFound(f"No user {owner_id}.")
            kind, pid = _principal(conn, data["with_"])
            sid = conn.execute(t.shares.insert().values(
                object=obj_name, record_id=None, owner_id=owner_id, principal_type=kind, principal_id=pid,
                access=data["access"], created_by=actor.user_id, created_at=utcnow()).returning(t.shares.c.id)).scalar_one()
            bump_security(conn)
            audit.record(conn, actor, "share_created", object=obj_name, target=f"owner:{owner_id}",
                         details={"with": data["with_"], "access": data["access"]})
            return share_dict(conn.execute(sa.select(t.shares).where(t.shares.c.id == sid)).mappings().one())

    def list_shares(self, actor: Actor, obj_name: str, record_id: int) -> list[dict]:
        self.runtime.records.get(actor, obj_name, record_id, ["id"])  # 404 unless readable
        with self.runtime.db.read() as conn:
            rows = conn.execute(sa.select(t.shares).where(t.shares.c.object == obj_name,
                                                          t.shares.c.record_id == record_id)).mappings()
            return [share_dict(r) for r in rows]

    def _editable(self, conn, actor: Actor, obj_name: str, record_id: int) -> None:
        """Who shares a record, or takes a share back, must be able to edit it
        (the edit right and the record in his edit scope): else 403 / 404."""
        table = self.runtime.cache.current(conn).table(obj_name)
        permissions.require(actor, obj_name, "edit")
        scope = permissions.scope_predicate(actor, obj_name, table, "edit")
        row = conn.execute(sa.select(table.c.id).where(
            table.c.id == record_id, table.c.deleted_at.is_(None), *([scope] if scope is not None else []))).first()
        if row is None:
            raise NotFound(f"No {obj_name} record {record_id}.")

    def delete_share(self, actor: Actor, obj_name: str, record_id: int, share_id: int) -> None:
        rt = self.runtime
        with rt.db.write() as conn:
            self._editable(conn, actor, obj_name, record_id)
            deleted = conn.execute(sa.delete(t.shares).where(
                t.shares.c.id == share_id, t.shares.c.object == obj_name, t.shares.c.record_id == record_id)).rowcount
            if not deleted:
                raise NotFound(f"No share {share_id} on this record.")
            bump_security(conn)
            audit.record(conn, actor, "share_deleted", object=obj_name, target=record_id, details={"share": share_id})

    def handover(self, actor: Actor, from_uid: int, payload: Any) -> dict:
        """Move every record `from_uid` owns (optionally of some objects, and
        matching a filter) to another user. Each change goes through the
        record service, so history, events and roll-ups follow. All of it is
        one transaction: a record that may not move (a handler refuses it)
        leaves every record where it was. The hand-over is one audit entry
        with the counts. A plugin's object may stay with its owner on a
        hand-over (the "handover" slot: a follow-up violation is evidence
        about who let the deadline pass); naming it is refused."""
        permissions.require_admin(actor)
        if not isinstance(payload, dict):
            raise BadRequest("The body must be a JSON object.", {"body": "Must be an object."})
        unknown = set(payload) - {"to", "objects", "filter"}
        if unknown:
            raise ValidationFailed({k: "Unknown property." for k in unknown})
        rt = self.runtime
        to = payload.get("to")
        reg = rt.cache.current()
        objects = payload.get("objects")
        if objects is not None and (not isinstance(objects, list) or not all(isinstance(o, str) for o in objects)):
            raise ValidationFailed({"objects": "A list of object api names."})
        stays = {options["object"] for rule, options in rt.slots.entries("handover") if rule == "keep"}
        for name in objects or []:
            reg.get(name)
            if name in stays:
                raise ValidationFailed({"objects": f"{name} records stay with their owner on a hand-over."})
        if payload.get("filter") is not None and (not objects or len(objects) != 1):
            raise ValidationFailed({"filter": "A filter applies to exactly one object: name it in objects."})
        with rt.db.read() as conn:
            users = dict(conn.execute(sa.select(t.users.c.id, t.users.c.active)
                                      .where(t.users.c.id.in_([from_uid, to if isinstance(to, int) else -1]))).all())
        if from_uid not in users:
            raise NotFound(f"No user {from_uid}.")
        if isinstance(to, bool) or not isinstance(to, int) or to not in users:
            raise ValidationFailed({"to": "The id of the user who takes over."})
        if not users[to]:
            raise ValidationFailed({"to": "That user is deactivated."})
        if to == from_uid:
            raise ValidationFailed({"to": "Hand over to someone else."})
        system = Actor(user_id=actor.user_id, login=actor.login, is_admin=True)
        moved: dict[str, int] = {}
        with rt.db.write() as conn:
            for name in objects or sorted(set(reg.objects) - stays):
                table = reg.table(name)
                qc = QueryCompiler(reg, name, Actor.system(), rt.config.timezone)
                where = [table.c.owner == from_uid, table.c.deleted_at.is_(None)]
                extra = qc.where(payload.get("filter"))
                if extra is not None:
                    where.append(extra)
                ids = list(conn.execute(sa.select(table.c.id).where(*where).order_by(table.c.id)).scalars())
                for start in range(0, len(ids), HANDOVER_BATCH):
                    batch = ids[start:start + HANDOVER_BATCH]
                    try:
                        rt.records.bulk_update(system, name, [{"id": i, "owner": to} for i in batch])
                    except ValidationFailed as exc:
                        raise _refused_move(name, batch, exc) from None
                if ids:
                    moved[name] = len(ids)
            audit.record(conn, actor, "handover", target=from_uid, details={"to": to, "moved": moved,
                                                                            "filter": payload.get("filter")})
        return {"from": from_uid, "to": to, "moved": moved}


def _refused_move(obj_name: str, batch: list[int], exc: ValidationFailed) -> ValidationFailed:
    """A record that may not change hands, named as the admin knows it (not
    by its place in a batch): nothing was handed over."""
    fields = {}
    for key, why in exc.fields.items():
        parts = key.split(".")
        if len(parts) >= 3 and parts[0] == "records" and parts[1].isdigit():
            key = f"{obj_name}.{batch[int(parts[1])]}.{'.'.join(parts[2:])}"
        fields[key] = why
    first = next(iter(fields.items()), ("", ""))
    return ValidationFailed(fields, f"Nothing was handed over: {first[0]} cannot move ({first[1]}).")
