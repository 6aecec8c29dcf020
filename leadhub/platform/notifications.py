"""In-app notifications (the bell and its list) and their e-mail copies.

`send` writes one row per recipient inside the caller's write transaction,
so a write that rolls back notifies nobody. E-mail goes out only after the
commit, as a job (RQ with Redis, inline otherwise), so a slow or broken mail
server never blocks or fails the write that caused it; delivery failures are
logged and the notification stays in the app."""
from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from leadhub.platform import tables as t
from leadhub.platform.db import UTCDateTime, utcnow
from leadhub.platform.errors import BadRequest, NotFound
from leadhub.platform.jobs import current_runtime
from leadhub.platform.tables import metadata

if TYPE_CHECKING:
    from leadhub.platform.permissions import Actor
    from leadhub.runtime import Runtime

log = logging.getLogger(__name__)

MAX_KIND, MAX_TITLE, MAX_BODY, MAX_LINK = 64, 200, 10_000, 500
MAX_RECIPIENTS = 1000
PAGE_SIZE, MAX_PAGE_SIZE = 50, 200
SMTP_TIMEOUT = 20  # seconds; a hung server fails the job, not the request

notifications = sa.Table(
    "lh_notifications", metadata,
    # many rows per user and event: 64-bit ids, as record ids are
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("lh_users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("kind", sa.String(MAX_KIND), nullable=False),
    sa.Column("title", sa.String(MAX_TITLE), nullable=False),
    sa.Column("body", sa.Text, nullable=False, server_default=""),
    sa.Column("link", sa.String(MAX_LINK)),
    sa.Column("data", sa.JSON),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("read_at", UTCDateTime),
    sa.Column("emailed_at", UTCDateTime),
    # the bell's count and the list are both "this user's, newest first"
    sa.Index("ix_lh_notifications_user", "user_id", "read_at", "id"),
)


def _text(name: str, value: Any, limit: int, *, required: bool) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadRequest(f"{name} must be a non-empty string.", {name: "Required text."})
    if len(value) > limit:
        raise BadRequest(f"{name} is longer than {limit} characters.", {name: f"At most {limit} characters."})
    return value


def _user_ids(user_ids: Any) -> list[int]:
    """Whole numbers, duplicates and None dropped (a lead without a manager
    simply notifies one person fewer)."""
    if not isinstance(user_ids, (list, tuple, set, frozenset)):
        raise BadRequest("user_ids must be a list of user ids.", {"user_ids": "Must be a list."})
    ids = []
    for uid in user_ids:
        if uid is None:
            continue
        if isinstance(uid, bool) or not isinstance(uid, int):
            raise BadRequest("user_ids must be whole numbers.", {"user_ids": f"Not a user id: {uid!r}."})
        if uid not in ids:
            ids.append(uid)
    if len(ids) > MAX_RECIPIENTS:
        raise BadRequest(f"At most {MAX_RECIPIENTS} recipients.", {"user_ids": "Too many."})
    return ids


def to_dict(r) -> dict:
    return {"id": r.id, "kind": r.kind, "title": r.title, "body": r.body, "link": r.link, "data": r.data,
            "created_at": r.created_at, "read": r.read_at is not None, "read_at": r.read_at}


class Notifications:
    def __init__(self, runtime: "Runtime"):
        self.runtime = runtime

    @property
    def mail_configured(self) -> bool:
        return bool(self.runtime.config.smtp_host)

    def send(self, user_ids: list[int], kind: str, title: str, body: str = "",
             link: str | None = None, data: dict | None = None) -> None:
        """Notify active users among `user_ids`, in the open write if there is one."""
        ids = _user_ids(user_ids)
        kind = _text("kind", kind, MAX_KIND, required=True)
        title = _text("title", title, MAX_TITLE, required=True)
        body = _text("body", body, MAX_BODY, required=False)
        if link is not None:
            link = _text("link", link, MAX_LINK, required=True)
        if data is not None and not isinstance(data, dict):
            raise BadRequest("data must be an object.", {"data": "Must be an object."})
        if not ids:
            return
        now = utcnow()
        db = self.runtime.db
        with db.write() as conn:
            active = conn.execute(sa.select(t.users.c.id).where(t.users.c.id.in_(ids), t.users.c.active)
                                  ).scalars().all()
            if not active:
                return
            rows = [{"user_id": uid, "kind": kind, "title": title, "body": body, "link": link, "data": data,
                     "created_at": now} for uid in ids if uid in set(active)]
            new_ids = [conn.execute(notifications.insert().values(**row)).inserted_primary_key[0]
                       for row in rows]
            if self.mail_configured:            # a job row in this transaction: mail goes iff they exist
                self.runtime.jobs.enqueue(deliver_mail, new_ids)

    # the caller's own notifications --------------------------------------

    def list(self, actor: "Actor", *, unread_only: bool = False, page: int = 1,
             page_size: int = PAGE_SIZE) -> dict:
        if page < 1:
            raise BadRequest("page must be 1 or more.", {"page": "Must be 1 or more."})
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise BadRequest(f"page_size must be 1 to {MAX_PAGE_SIZE}.", {"page_size": "Out of range."})
        n = notifications
        where = [n.c.user_id == actor.user_id]
        if unread_only:
            where.append(n.c.read_at.is_(None))
        with self.runtime.db.read() as conn:
            rows = conn.execute(sa.select(n).where(*where).order_by(n.c.id.desc())
                                .limit(page_size).offset((page - 1) * page_size)).all()
            total = conn.execute(sa.select(sa.func.count()).select_from(n).where(*where)).scalar_one()
        return {"notifications": [to_dict(r) for r in rows], "page": page, "page_size": page_size,
                "total": total, "unread": self.unread_count(actor)}

    def unread_count(self, actor: "Actor") -> int:
        n = notifications
        with self.runtime.db.read() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(n).where(
                n.c.user_id == actor.user_id, n.c.read_at.is_(None))).scalar_one()

    def mark_read(self, actor: "Actor", notification_id: int) -> dict:
        n = notifications
        with self.runtime.db.write() as conn:
            row = conn.execute(sa.select(n).where(n.c.id == notification_id, n.c.user_id == actor.user_id)
                               ).first()
            if row is None:  # someone else's is as absent as a missing one
                raise NotFound(f"No notification {notification_id}.")
            if row.read_at is None:
                conn.execute(sa.update(n).where(n.c.id == row.id).values(read_at=utcnow()))
                row = conn.execute(sa.select(n).where(n.c.id == row.id)).first()
        return to_dict(row)

    def mark_all_read(self, actor: "Actor") -> int:
        n = notifications
        with self.runtime.db.write() as conn:
            return conn.execute(sa.update(n).where(n.c.user_id == actor.user_id, n.c.read_at.is_(None))
                                .values(read_at=utcnow())).rowcount


def deliver_mail(notification_ids: list[int]) -> int:
    """Job: e-mail the given notifications to recipients who have an address,
    over one SMTP connection. Returns how many were sent; failures are logged."""
    runtime = current_runtime()
    cfg = runtime.config
    if not cfg.smtp_host:
        return 0
    n, u = notifications, t.users
    with runtime.db.read() as conn:
        rows = conn.execute(sa.select(n.c.id, n.c.title, n.c.body, n.c.link, u.c.email, u.c.name)
                            .join(u, u.c.id == n.c.user_id)
                            .where(n.c.id.in_(notification_ids), n.c.emailed_at.is_(None),
                                   u.c.email.is_not(None), u.c.email != "")).all()
    if not rows:
        return 0
    sent: list[int] = []
    try:
        with _smtp(cfg) as smtp:
            for r in rows:
                try:
                    smtp.send_message(_message(cfg, r))
                    sent.append(r.id)
                except smtplib.SMTPRecipientsRefused:
                    log.warning("Mail server refused %s for notification %s", r.email, r.id)
    except (OSError, smtplib.SMTPException):
        log.exception("E-mail for notifications %s failed after %d sent", notification_ids, len(sent))
    if sent:
        with runtime.db.write() as conn:
            conn.execute(sa.update(n).where(n.c.id.in_(sent)).values(emailed_at=utcnow()))
    return len(sent)


deliver_mail.job_label = "E-mail delivery"


def _smtp(cfg) -> smtplib.SMTP:
    if cfg.smtp_tls == "ssl":
        smtp = smtplib.SMTP_SSL(cfg.smtp_host, cfg.smtp_port, timeout=SMTP_TIMEOUT,
                                context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=SMTP_TIMEOUT)
        if cfg.smtp_tls == "starttls":
            smtp.starttls(context=ssl.create_default_context())
    if cfg.smtp_user:
        smtp.login(cfg.smtp_user, cfg.smtp_password or "")
    return smtp


def _message(cfg, r) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = cfg.smtp_from
    msg["To"] = formataddr((r.name or "", r.email))
    msg["Subject"] = r.title
    msg["Message-ID"] = make_msgid(domain=cfg.smtp_from.rpartition("@")[2] or None)
    text = r.body or r.title
    if r.link:   # in-app links are paths; a mail reader needs the site too
        text += f"\n\n{cfg.base_url}{r.link}" if r.link.startswith("/") else f"\n\n{r.link}"
    msg.set_content(text)
    return msg
