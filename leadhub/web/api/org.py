"""Identity endpoints: users, departments, groups, roles, tokens, shares,
hand-over and the audit log."""
from __future__ import annotations

import datetime as dt

from flask import g, request, session

from leadhub.platform import audit, auth, permissions, sessions
from leadhub.platform.errors import BadRequest, ValidationFailed
from leadhub.web.api.base import api, runtime
from leadhub.web.jsonio import body


def org():
    return runtime().org


# users
@api.get("/users")
def list_users():
    return {"users": org().list_users()}


@api.post("/users")
def create_user():
    return org().create_user(g.actor, body()), 201


@api.get("/users/<id:uid>")
def get_user(uid):
    return org().get_user(uid)


@api.patch("/users/<id:uid>")
def update_user(uid):
    payload = body()
    changed = org().update_user(g.actor, uid, payload)
    if uid == g.actor.user_id and isinstance(payload, dict) and "password" in payload and session.get("sid"):
        # the reset ended every session of this user; the browser that made it goes on in a new one
        with runtime().db.write() as conn:
            session["sid"] = sessions.start(conn, uid, request.remote_addr)
    return changed


@api.delete("/users/<id:uid>")
def deactivate_user(uid):
    org().deactivate_user(g.actor, uid)
    return "", 204


@api.post("/users/<id:uid>/handover")
def handover(uid):
    return runtime().ownership.handover(g.actor, uid, body())


@api.post("/users/<id:uid>/shares")
def share_owner(uid):
    return runtime().ownership.share_owner(g.actor, uid, body()), 201


@api.get("/me")
def me():
    return org().get_user(g.actor.user_id)


@api.patch("/me")
def update_me():
    """Language, time zone, working hours and phone: each user's own."""
    return org().update_me(g.actor, body())


@api.post("/me/password")
def change_password():
    data = body()
    via_session = "Authorization" not in request.headers
    auth.change_password(runtime().db, g.actor, data.get("old_password"), data.get("new_password"),
                         session_id=session.get("sid") if via_session else None)
    return "", 204


# departments and groups
@api.get("/departments")
def list_departments():
    return {"departments": org().list_departments()}


@api.post("/departments")
def create_department():
    return org().save_department(g.actor, body()), 201


@api.get("/departments/<id:did>")
def get_department(did):
    return org().get_department(did)


@api.patch("/departments/<id:did>")
def update_department(did):
    return org().save_department(g.actor, body(), did)


@api.delete("/departments/<id:did>")
def delete_department(did):
    org().delete_department(g.actor, did)
    return "", 204


@api.get("/groups")
def list_groups():
    return {"groups": org().list_groups()}


@api.post("/groups")
def create_group():
    return org().save_group(g.actor, body()), 201


@api.get("/groups/<id:gid>")
def get_group(gid):
    return org().get_group(gid)


@api.patch("/groups/<id:gid>")
def update_group(gid):
    return org().save_group(g.actor, body(), gid)


@api.delete("/groups/<id:gid>")
def delete_group(gid):
    org().delete_group(g.actor, gid)
    return "", 204


# roles: addressed by id or api_name
def _role_key(key: str):
    # a number beyond 64 bits names no role (and must not reach the database)
    return int(key) if key.isdigit() and int(key) <= 2 ** 63 - 1 else key


@api.get("/roles")
def list_roles():
    return {"roles": org().list_roles()}


@api.post("/roles")
def create_role():
    return org().save_role(g.actor, body()), 201


@api.get("/roles/<key>")
def get_role(key):
    return org().get_role(_role_key(key))


@api.patch("/roles/<key>")
def update_role(key):
    return org().save_role(g.actor, body(), _role_key(key))


@api.delete("/roles/<key>")
def delete_role(key):
    org().delete_role(g.actor, _role_key(key))
    return "", 204


# tokens
@api.post("/tokens")
def create_token():
    data = body()
    unknown = set(data) - {"user", "name", "read_only", "objects", "expires_at"}
    if unknown:
        raise ValidationFailed({k: "Unknown property." for k in unknown})
    login = data.get("user", g.actor.login)
    if login != g.actor.login:
        permissions.require_admin(g.actor)
    if not isinstance(login, str):
        raise ValidationFailed({"user": "The user's login."})
    name = data.get("name", "api")
    read_only = data.get("read_only", False)
    objects = data.get("objects")
    errors = {}
    if not isinstance(name, str) or not 1 <= len(name) <= 128:
        errors["name"] = "1-128 characters."
    if not isinstance(read_only, bool):
        errors["read_only"] = "true or false."
    if objects is not None and (not isinstance(objects, list) or not all(isinstance(o, str) for o in objects)):
        errors["objects"] = "A list of object api names."
    elif objects is not None:
        unknown_objects = [o for o in objects if o not in runtime().cache.current().objects]
        if unknown_objects:
            errors["objects"] = f"No object {', '.join(unknown_objects)}."
    expires = None
    if data.get("expires_at") is not None:
        try:
            expires = dt.datetime.fromisoformat(str(data["expires_at"]).replace("Z", "+00:00"))
            expires = expires if expires.tzinfo else expires.replace(tzinfo=dt.timezone.utc)
        except ValueError:
            errors["expires_at"] = "An ISO 8601 date-time."
    if errors:
        raise ValidationFailed(errors)
    token = auth.create_token(runtime().db, login, name, expires, read_only=read_only, objects=objects, actor=g.actor)
    return {"token": token, "user": login, "name": name, "read_only": read_only, "objects": objects,
            "expires_at": expires}, 201


@api.get("/tokens")
def list_tokens():
    return {"tokens": auth.list_tokens(runtime().db, g.actor)}


@api.delete("/tokens/<id:token_id>")
def revoke_token(token_id):
    auth.revoke_token(runtime().db, g.actor, token_id)
    return "", 204


# record shares
@api.post("/objects/<name>/records/<id:record_id>/shares")
def share_record(name, record_id):
    return runtime().ownership.share_record(g.actor, name, record_id, body()), 201


@api.get("/objects/<name>/records/<id:record_id>/shares")
def list_shares(name, record_id):
    return {"shares": runtime().ownership.list_shares(g.actor, name, record_id)}


@api.delete("/objects/<name>/records/<id:record_id>/shares/<id:share_id>")
def delete_share(name, record_id, share_id):
    runtime().ownership.delete_share(g.actor, name, record_id, share_id)
    return "", 204


# audit
@api.get("/audit")
def audit_log():
    permissions.require_admin(g.actor)
    args = request.args
    try:
        limit = min(int(args.get("limit", 100)), 1000)
        actor_id = int(args["actor"]) if "actor" in args else None
        before = int(args["before"]) if "before" in args else None
        since = dt.datetime.fromisoformat(args["since"].replace("Z", "+00:00")) if "since" in args else None
    except ValueError:
        raise BadRequest("limit, actor and before are numbers; since is an ISO date-time.", {"query": "Malformed."}) from None
    with runtime().db.read() as conn:
        return {"entries": audit.entries(conn, action=args.get("action"), actor_id=actor_id, since=since,
                                         limit=limit, before_id=before)}
