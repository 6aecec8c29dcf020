"""REST endpoints of the lead intake (under /api/v1): blacklists, quarantine
release, duplicate rules, the duplicate check and duplicate scans. Reads
need a signed-in user; every change needs an administrator."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, g, request

from leadhub.platform import permissions
from leadhub.platform.db import utcnow
from leadhub.platform.errors import BadRequest, Conflict, NotFound
from leadhub.plugins.lead import cleaning, dedupe, duplicate_scan as scans
from leadhub.plugins.lead.intake_tables import blacklist
from leadhub.web.api import authenticate, runtime
from leadhub.web.jsonio import body

bp = Blueprint("lead_intake", __name__, url_prefix="/api/v1")
bp.before_request(authenticate)

ENTRY_KEYS = {"type", "value", "note"}


# ---------------------------------------------------------------- blacklists
def _entry(row) -> dict:
    return {"id": row["id"], "type": row["type"], "value": row["value"], "note": row["note"],
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


def _entry_values(payload: Any, old: dict | None = None) -> dict:
    if not isinstance(payload, dict):
        raise BadRequest("A blacklist entry is a JSON object.", {"body": "Must be an object."})
    unknown = set(payload) - ENTRY_KEYS
    if unknown:
        raise BadRequest(f"Unknown property: {', '.join(sorted(unknown))}.", {k: "Unknown property." for k in unknown})
    merged = {**(old or {}), **payload}
    kind = merged.get("type")
    if kind not in cleaning.BLACKLIST_TYPES:
        raise BadRequest(f"type must be one of: {', '.join(cleaning.BLACKLIST_TYPES)}.", {"type": "Unknown type."})
    note = merged.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 500):
        raise BadRequest("note is text of at most 500 characters.", {"note": "At most 500 characters."})
    return {"type": kind, "value": cleaning.blacklist_value(kind, merged.get("value")), "note": note}


def _get_entry(conn, entry_id: int) -> dict:
    row = conn.execute(sa.select(blacklist).where(blacklist.c.id == entry_id)).mappings().first()
    if row is None:
        raise NotFound(f"No blacklist entry {entry_id}.")
    return dict(row)


def _taken(conn, values: dict, entry_id: int | None = None) -> None:
    stmt = sa.select(blacklist.c.id).where(blacklist.c.type == values["type"], blacklist.c.value == values["value"])
    other = conn.execute(stmt).scalar()
    if other is not None and other != entry_id:
        raise Conflict(f"Entry {other} already blacklists this {values['type']}.", {"value": "Already blacklisted."})


def list_entries(rt, kind: str | None = None) -> list[dict]:
    """Blacklist entries, of one type when `kind` is given (the admin pages call these too)."""
    stmt = sa.select(blacklist).order_by(blacklist.c.type, blacklist.c.value)
    if kind:
        if kind not in cleaning.BLACKLIST_TYPES:
            raise BadRequest(f"type must be one of: {', '.join(cleaning.BLACKLIST_TYPES)}.", {"type": "Unknown type."})
        stmt = stmt.where(blacklist.c.type == kind)
    with rt.db.read() as conn:
        return [_entry(r) for r in conn.execute(stmt).mappings()]


def add_entry(rt, actor, payload: Any) -> dict:
    permissions.require_admin(actor)
    values = _entry_values(payload)
    with rt.db.write() as conn:
        _taken(conn, values)
        now = utcnow()
        new_id = conn.execute(blacklist.insert().values(**values, created_by=actor.user_id, created_at=now,
                                                        updated_at=now).returning(blacklist.c.id)).scalar_one()
        return _entry(_get_entry(conn, new_id))


def delete_entry(rt, actor, entry_id: int) -> None:
    permissions.require_admin(actor)
    with rt.db.write() as conn:
        _get_entry(conn, entry_id)
        conn.execute(sa.delete(blacklist).where(blacklist.c.id == entry_id))


@bp.get("/meta/blacklists")
def list_blacklists():
    return {"entries": list_entries(runtime(), request.args.get("type"))}


@bp.post("/meta/blacklists")
def create_blacklist():
    return add_entry(runtime(), g.actor, body()), 201


@bp.get("/meta/blacklists/<id:entry_id>")
def get_blacklist(entry_id):
    with runtime().db.read() as conn:
        return _entry(_get_entry(conn, entry_id))


@bp.patch("/meta/blacklists/<id:entry_id>")
def update_blacklist(entry_id):
    permissions.require_admin(g.actor)
    with runtime().db.write() as conn:
        old = _get_entry(conn, entry_id)
        values = _entry_values(body(), {k: old[k] for k in ENTRY_KEYS})
        _taken(conn, values, entry_id)
        conn.execute(sa.update(blacklist).where(blacklist.c.id == entry_id).values(**values, updated_at=utcnow()))
        return _entry(_get_entry(conn, entry_id))


@bp.delete("/meta/blacklists/<id:entry_id>")
def delete_blacklist(entry_id):
    delete_entry(runtime(), g.actor, entry_id)
    return "", 204


# ---------------------------------------------------------------- quarantine
@bp.post("/objects/lead/records/<id:record_id>/release")
def release_lead(record_id):
    payload = body() if request.get_data() else {}
    if not isinstance(payload, dict) or set(payload) - {"force"} or not isinstance(payload.get("force", False), bool):
        raise BadRequest("The body is {\"force\": true|false} or empty.", {"force": "Must be true or false."})
    return cleaning.release(runtime(), g.actor, record_id, force=payload.get("force", False))


# ---------------------------------------------------------------- duplicate rules
# Duplicate rules are a metadata kind: /meta/duplicate-rules[/<name>] is the
# kernel's generic REST (web/api/kinds.py). Scans are the plugin's own.
@bp.post("/meta/duplicate-rules/<rule>/scan")
def start_scan(rule):
    return scans.start_scan(runtime(), g.actor, rule), 202


@bp.get("/meta/duplicate-rules/<rule>/scan")
def latest_scan(rule):
    permissions.require_admin(g.actor)
    return scans.get_scan(runtime(), rule)


@bp.get("/meta/duplicate-rules/<rule>/scans/<id:scan_id>")
def get_scan(rule, scan_id):
    permissions.require_admin(g.actor)
    return scans.get_scan(runtime(), rule, scan_id)


@bp.post("/objects/<name>/duplicates/check")
def check_duplicates(name):
    """{"record": {draft fields}, "rule": optional rule name}, or the draft itself."""
    payload = body()
    if isinstance(payload, dict) and "record" in payload:
        unknown = set(payload) - {"record", "rule"}
        if unknown:
            raise BadRequest(f"Unknown property: {', '.join(sorted(unknown))}.", {k: "Unknown property." for k in unknown})
        rule = payload.get("rule")
        if rule is not None and not isinstance(rule, str):
            raise BadRequest("rule must be a rule's name.", {"rule": "Must be text."})
        return dedupe.check_draft(runtime(), g.actor, name, payload["record"], rule)
    return dedupe.check_draft(runtime(), g.actor, name, payload)
