"""Follow-up deadline rules ("T+N"): for leads in `status`, within `hours` of
the owner changing (T) the lead must have a follow-up; a reminder goes out
`remind_before_hours` before that. One rule per status, edited by admins
at /api/v1/meta/follow-up-rules."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import marshmallow as mm
import sqlalchemy as sa

from leadhub.platform.db import UTCDateTime, utcnow
from leadhub.platform.errors import BadRequest, Conflict, NotFound, messages_text
from leadhub.platform.permissions import Actor, require_admin
from leadhub.platform.tables import metadata

if TYPE_CHECKING:
    from leadhub.platform.runtime import Runtime

log = logging.getLogger(__name__)
MAX_HOURS = 24 * 365
CACHE_SECONDS = 5  # other processes see a rule change within this; this one at once

rules_table = sa.Table(
    "lh_follow_up_rules", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("status", sa.String(40), nullable=False, unique=True),
    sa.Column("hours", sa.Integer, nullable=False),
    sa.Column("remind_before_hours", sa.Integer, nullable=False, server_default="0"),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)


@dataclass(frozen=True)
class Rule:
    id: int
    status: str
    hours: int
    remind_before_hours: int
    active: bool

    @property
    def label(self) -> str:
        return f"{self.status}: T+{self.hours}h"

    def to_api(self) -> dict:
        return {"id": self.id, "status": self.status, "hours": self.hours,
                "remind_before_hours": self.remind_before_hours, "active": self.active}


class RuleSchema(mm.Schema):
    class Meta:
        unknown = mm.RAISE
    status = mm.fields.String(required=True)
    hours = mm.fields.Integer(required=True, strict=True, validate=mm.validate.Range(1, MAX_HOURS))
    remind_before_hours = mm.fields.Integer(load_default=0, strict=True, validate=mm.validate.Range(0, MAX_HOURS))
    active = mm.fields.Boolean(load_default=True)


class Rules:
    def __init__(self, runtime: "Runtime"):
        self.runtime = runtime
        self._cache: tuple[float, dict[str, Rule]] | None = None

    def active(self) -> dict[str, Rule]:
        """Active rules by status, cached briefly: every lead write asks."""
        if self._cache is None or time.monotonic() - self._cache[0] > CACHE_SECONDS:
            with self.runtime.db.read() as conn:
                rows = conn.execute(sa.select(rules_table).where(rules_table.c.active)).all()
            self._cache = (time.monotonic(), {r.status: _rule(r) for r in rows})
        return self._cache[1]

    def list(self) -> list[dict]:
        with self.runtime.db.read() as conn:
            rows = conn.execute(sa.select(rules_table).order_by(rules_table.c.id)).all()
        return [_rule(r).to_api() for r in rows]

    def get(self, rule_id: int) -> dict:
        with self.runtime.db.read() as conn:
            return self._row(conn, rule_id).to_api()

    def create(self, actor: Actor, payload: Any) -> dict:
        require_admin(actor)
        data = self._load(payload, partial=False)
        now = utcnow()
        with self.runtime.db.write() as conn:
            self._check_unique(conn, data["status"])
            rid = conn.execute(rules_table.insert().values(**data, created_at=now, updated_at=now)
                               ).inserted_primary_key[0]
            rule = self._row(conn, rid)
            self._changed(rule.status)
        return rule.to_api()

    def update(self, actor: Actor, rule_id: int, payload: Any) -> dict:
        require_admin(actor)
        data = self._load(payload, partial=True)
        with self.runtime.db.write() as conn:
            old = self._row(conn, rule_id)
            merged = {**old.to_api(), **data}
            if merged["remind_before_hours"] >= merged["hours"]:
                raise BadRequest("remind_before_hours must be less than hours.",
                                 {"remind_before_hours": "Must be less than hours."})
            if merged["status"] != old.status:
                self._check_unique(conn, merged["status"])
            conn.execute(sa.update(rules_table).where(rules_table.c.id == rule_id)
                         .values(**data, updated_at=utcnow()))
            rule = self._row(conn, rule_id)
            self._changed(old.status, rule.status)
        return rule.to_api()

    def delete(self, actor: Actor, rule_id: int) -> None:
        require_admin(actor)
        with self.runtime.db.write() as conn:
            old = self._row(conn, rule_id)
            conn.execute(sa.delete(rules_table).where(rules_table.c.id == rule_id))
            self._changed(old.status)

    # ---------------------------------------------------------------------
    def _load(self, payload: Any, *, partial: bool) -> dict:
        if not isinstance(payload, dict):
            raise BadRequest("The body must be a JSON object.", {"body": "Must be an object."})
        try:
            data = RuleSchema().load(payload, partial=partial)
        except mm.ValidationError as exc:
            fields = {k: messages_text(v) for k, v in exc.normalized_messages().items()}
            raise BadRequest(f"Invalid follow-up rule: {messages_text(fields)}", fields) from None
        if partial:  # defaults apply to new rules only
            data = {k: v for k, v in data.items() if k in payload}
        if "status" in data:
            statuses = lead_statuses(self.runtime)
            if data["status"] not in statuses:
                raise BadRequest(f"status must be a lead status: {', '.join(statuses)}.",
                                 {"status": f"Not a lead status: {data['status']!r}."})
        if not partial and data["remind_before_hours"] >= data["hours"]:
            raise BadRequest("remind_before_hours must be less than hours.",
                             {"remind_before_hours": "Must be less than hours."})
        return data

    @staticmethod
    def _row(conn, rule_id: int) -> Rule:
        row = None
        if 1 <= rule_id < 2**31:
            row = conn.execute(sa.select(rules_table).where(rules_table.c.id == rule_id)).first()
        if row is None:
            raise NotFound(f"No follow-up rule {rule_id}.")
        return _rule(row)

    @staticmethod
    def _check_unique(conn, status: str) -> None:
        if conn.execute(sa.select(rules_table.c.id).where(rules_table.c.status == status)).first():
            raise Conflict(f"There is already a rule for status '{status}'; edit that one.",
                           {"status": "Already has a rule."})

    def _changed(self, *statuses: str) -> None:
        """Leads in these statuses get their deadlines worked out again, after the commit."""
        self._cache = None
        from leadhub.plugins.lead.followup import recompute_deadlines  # the handlers live there
        self.runtime.db.on_commit(lambda: self._after_change(recompute_deadlines, sorted(set(statuses))))

    def _after_change(self, job, statuses: list[str]) -> None:
        self._cache = None
        try:
            self.runtime.jobs.enqueue(job, statuses)
        except Exception:  # the rule is saved; the next write of each lead catches up
            log.exception("Could not queue deadline recomputation for %s", statuses)


def _rule(r) -> Rule:
    return Rule(id=r.id, status=r.status, hours=r.hours, remind_before_hours=r.remind_before_hours,
                active=bool(r.active))


def lead_statuses(runtime: "Runtime") -> list[str]:
    """The lead status picklist as it is now (admins extend it)."""
    field = runtime.cache.current().get("lead").fields["status"]
    return [o["value"] for o in field.settings["options"]]
