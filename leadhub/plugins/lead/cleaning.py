"""Cleaning: every lead write (API, pages, imports, web forms, functions)
passes through these record-event handlers before anyone sees the lead.

Normalising (in place): mobile and phone to E.164 (numbers without a
country code are read as Chinese), the mobile's province and city from
phonenumbers' geocoder (手机号归属地, e.g. 广东省深圳市 -> 广东 / 深圳), e-mail
lower-cased (we treat addresses case-insensitively, as providers do).

What fails is never refused: the lead is quarantined instead (status
`invalid`, `invalid_reason` naming every reason, `quarantined_at` set, the
owner it would have had kept in `quarantined_owner`, and owner cleared, so
no rep's own/department scope can see it; roles with scope "all" (admins,
marketing) review it). `release()` re-runs the checks and, when clean (or
forced), gives the lead back to its owner with status `new`.

Reasons (each names its field):
  mobile/phone   not a valid number (phonenumbers' numbering plans), or blacklisted
  email          domain that cannot exist (bad host name, no real TLD, reserved
                 .test/.example/.invalid/.localhost, example.com); address or
                 domain (or a parent domain) blacklisted
  company        blacklisted (compared by normalise.company_key)
  any text       contains a blacklisted keyword or a sensitive word (NFKC-folded,
                 case-insensitive substring)
  name           junk: no letter at all (only digits/punctuation), one character
                 repeated 3+ times (aaa, 啊啊啊), a run of 4+ keys along a keyboard
                 row (asdf, qwer, 1234 has no letter), or a test/placeholder name
                 (test, 测试, demo, 无, 未知, null, ...) once digits, spaces and
                 punctuation are removed.
Values the field type itself refuses (letters in a phone, an e-mail without
@, an empty name) are refused by the record service with a 422 before
cleaning runs; `rescue()` turns such a payload into one that lands in
quarantine instead, for imports and web forms.

Updates re-check only the fields that changed, so an old value never
re-quarantines a released lead."""
from __future__ import annotations

import re

import sqlalchemy as sa

from leadhub.platform import permissions, tables as t
from leadhub.platform.db import utcnow
from leadhub.platform.errors import Conflict, NotFound
from leadhub.platform.permissions import Actor
from leadhub.plugins.lead import blacklists, normalise as nz

OBJECT = "lead"
SYSTEM = Actor.system()
BLACKLIST_TYPES = blacklists.TYPES
PHONE_FIELDS = ("mobile", "phone")
TEXT_FIELDS = ("name", "company", "title", "email", "wechat", "address", "description")
CHECKED_FIELDS = ("name", "company", "title", "mobile", "phone", "email", "wechat", "address", "description")
MAX_REASON = 500
REFUSED = "[refused at intake]"

TEST_NAMES = {"test", "testing", "tester", "demo", "sample", "测试", "测试用户", "测试一下", "测试账号", "试试",
              "无", "无名", "未知", "不详", "匿名", "暂无", "null", "none", "nil", "na", "unknown", "xxx",
              "某某", "客户", "先生", "女士"}
KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NON_NAME = re.compile(r"[\d\W_]+", re.UNICODE)


# ---------------------------------------------------------------- checks
def junk_name(name: str | None) -> str | None:
    """Why a person's name is junk, or None (see the module docstring)."""
    if name is None or not name.strip():
        return "name is empty"
    folded = nz.fold(name)
    letters = _NON_NAME.sub("", folded)
    if not letters:
        return "name has no letters (only digits or punctuation)"
    if len(letters) >= 3 and len(set(letters)) == 1:
        return "name is one character repeated"
    if letters in TEST_NAMES or letters.rstrip("s") in TEST_NAMES:
        return "name is a test or placeholder name"
    if len(letters) >= 4 and letters.isascii() and any(letters in row or letters in row[::-1] for row in KEYBOARD_ROWS):
        return "name is keyboard mash"
    return None


def normalise_values(values: dict, only: set[str] | None = None) -> dict[str, str]:
    """Normalise phones and e-mail in place; answers {field: reason} for
    values that cannot be real."""
    reasons: dict[str, str] = {}
    for name in PHONE_FIELDS:
        if only is not None and name not in only:
            continue
        raw = values.get(name)
        if name == "mobile":
            values["mobile_province"] = values["mobile_city"] = None
        if not raw:
            continue
        phone = nz.parse_phone(raw)
        if phone is None:
            reasons[name] = f"not a valid phone number ({raw})"
            continue
        values[name] = phone.e164
        if name == "mobile":
            values["mobile_province"], values["mobile_city"] = phone.province, phone.city
    if values.get("email") and (only is None or "email" in only):
        values["email"] = values["email"].lower()
        problem = nz.email_domain_problem(values["email"])
        if problem:
            reasons["email"] = problem
    return reasons


def check(reg, values: dict, only: set[str] | None = None, normalised: dict[str, str] | None = None
          ) -> dict[str, str]:
    """Normalise `values` in place and answer {field: reasons} of everything
    that fails, for the fields in `only` (all when None), against the
    blacklists of the registry snapshot `reg`. A batch passes the reasons
    normalising gave (`normalised`)."""
    def wanted(name):
        return only is None or name in only
    reasons: dict[str, list[str]] = {}
    if normalised is None:
        normalised = normalise_values(values, only)
    for name, why in normalised.items():
        reasons.setdefault(name, []).append(why)
    lists = blacklists.entries(reg)
    for name in PHONE_FIELDS:
        if wanted(name) and values.get(name) in lists["phone"]:
            reasons.setdefault(name, []).append("number is blacklisted")
    email = values.get("email")
    if email and wanted("email"):
        if email in lists["email"]:
            reasons.setdefault("email", []).append("address is blacklisted")
        hit = next((d for d in nz.domains_of(email) if d in lists["email_domain"]), None)
        if hit:
            reasons.setdefault("email", []).append(f"domain {hit} is blacklisted")
    if wanted("company") and nz.company_key(values.get("company")) in lists["company"]:
        reasons.setdefault("company", []).append("company is blacklisted")
    for name in TEXT_FIELDS:
        text = values.get(name)
        if not text or not wanted(name):
            continue
        folded = nz.fold(str(text))
        for word in sorted(lists["keyword"]):
            if word in folded:
                reasons.setdefault(name, []).append(f"contains blacklisted keyword “{word}”")
        for word in sorted(lists["sensitive"]):
            if word in folded:
                reasons.setdefault(name, []).append(f"contains sensitive word “{word}”")
    for line in str(values.get("description") or "").splitlines():
        if line.startswith(REFUSED) and wanted("description"):
            name, _, raw = line[len(REFUSED):].strip().partition(":")
            reasons.setdefault(name.strip() or "description", []).append(f"refused value ({raw.strip()})")
    if wanted("name") and (why := junk_name(values.get("name"))):
        reasons.setdefault("name", []).append(why)
    return {k: "; ".join(v) for k, v in reasons.items()}


def reason_text(reasons: dict[str, str]) -> str:
    text = "; ".join(f"{k}: {v}" for k, v in sorted(reasons.items()))
    return text if len(text) <= MAX_REASON else text[:MAX_REASON - 1] + "…"


def _quarantine(values: dict, reasons: dict[str, str], owner: int | None) -> None:
    values.update(status="invalid", invalid_reason=reason_text(reasons), quarantined_at=utcnow(),
                  quarantined_owner=owner, owner=None)


# ---------------------------------------------------------------- handlers
def register(runtime) -> None:
    """Subscribe this part's event handlers and scheduled sweeps."""
    def before_insert(events):
        # normalised first: the blacklists hold E.164 numbers and folded addresses
        normalised = [normalise_values(ev.values) for ev in events]
        for ev, found in zip(events, normalised):
            reasons = check(ev.registry, ev.values, normalised=found)
            if reasons:
                _quarantine(ev.values, reasons, ev.values.get("owner") or ev.actor.user_id)

    def before_update(ev):
        old, values = ev.old, ev.values
        if old.get("quarantined_at") and old.get("status") == "invalid" and values.get("status") != "invalid":
            values.update(quarantined_at=None, quarantined_owner=None)   # released
            if values.get("invalid_reason") == old.get("invalid_reason"):
                values["invalid_reason"] = None
            return
        changed = {f for f in CHECKED_FIELDS if ev.changed(f)}
        if not changed:
            return
        quarantined = values.get("quarantined_at") is not None
        # in quarantine every reason is re-listed (one fixed field leaves the others named)
        reasons = check(ev.registry, values, only=None if quarantined else changed)
        if not reasons:
            return
        if quarantined:
            values["invalid_reason"] = reason_text(reasons)
        else:
            _quarantine(values, reasons, old.get("owner"))

    runtime.events.subscribe("before_insert", before_insert, object=OBJECT, batch=True)
    runtime.events.subscribe("before_update", before_update, object=OBJECT)


def release(runtime, actor: Actor, lead_id: int, force: bool = False) -> dict:
    """Give a quarantined lead back: re-run every check; when clean (or
    `force`), status new and the owner it had before quarantine (when that
    user is still active). Admins only."""
    permissions.require_admin(actor)
    with runtime.db.write() as conn:
        try:
            lead = runtime.records.get(SYSTEM, OBJECT, lead_id)
        except NotFound:
            raise NotFound(f"No lead record {lead_id}.") from None
        if lead.get("status") != "invalid":
            raise Conflict("This lead is not in quarantine.", {"status": "Not invalid."})
        reasons = check(runtime.cache.current(conn), dict(lead))
        if reasons and not force:
            raise Conflict("The lead still fails cleaning: " + reason_text(reasons)
                           + ". Fix the fields, or release with force.", reasons)
        owner = lead.get("quarantined_owner")
        if owner is not None and not conn.execute(sa.select(t.users.c.id).where(
                t.users.c.id == owner, t.users.c.active.is_(True))).first():
            owner = None
        runtime.records.update(actor, OBJECT, lead_id, {"status": "new", "invalid_reason": None, "owner": owner})
    return runtime.records.get(actor, OBJECT, lead_id)


def rescue(runtime, data: dict) -> dict:
    """A lead payload the record service would refuse for its phone, e-mail
    or WeChat id (422 from the field type) or its empty name, made
    acceptable: each refused value moves into the description on a line
    starting with REFUSED, which check() reports as a reason, and an empty
    name becomes a placeholder junk_name() catches. So the lead lands in
    quarantine with its raw values instead of being lost. For imports and
    web forms; other keys pass through untouched."""
    fields = runtime.cache.current().schema(OBJECT).fields
    out, moved = dict(data), []
    for name in ("mobile", "phone", "email", "wechat"):
        if name in fields and out.get(name) not in (None, ""):
            try:
                fields[name].deserialize(out[name], name, out)
            except Exception:  # marshmallow's ValidationError, or a wrong type
                moved.append(f"{REFUSED} {name}: {str(out.pop(name))[:200]}")
    if not isinstance(out.get("name"), str) or not out["name"].strip():
        out["name"] = "无"
    if moved:
        out["description"] = "\n".join(([str(out["description"])] if out.get("description") else []) + moved)
    return out


