"""Notifications: rows in the caller's transaction, e-mail after commit to a
real SMTP server on a local socket, each user sees and marks only their own."""
from __future__ import annotations

import email
import email.policy
import socketserver
import threading

import pytest
import sqlalchemy as sa

from leadhub.platform import auth
from leadhub.platform.errors import BadRequest
from leadhub.platform.notifications import deliver_mail, notifications
from tests.conftest import Api, count_rows


class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough RFC 5321 for smtplib: EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    def reply(self, line: str) -> None:
        self.wfile.write((line + "\r\n").encode())

    def handle(self):
        server = self.server
        self.reply("220 test-smtp ready")
        sender, rcpts = None, []
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode().strip()
            verb = cmd[:4].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250-test-smtp")
                self.reply("250 8BITMIME")
            elif verb == "MAIL":
                sender, rcpts = cmd.split(":", 1)[1].strip().split()[0].strip("<>"), []
                self.reply("250 OK")
            elif verb == "RCPT":
                addr = cmd.split(":", 1)[1].strip().strip("<>")
                if addr in server.refuse:
                    self.reply("550 no such user")
                else:
                    rcpts.append(addr)
                    self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 end with .")
                data = []
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                server.messages.append((sender, rcpts, email.message_from_bytes(
                    b"".join(data), policy=email.policy.default)))
                self.reply("250 queued")
            elif verb in ("RSET", "NOOP"):
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")


class SMTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _SMTPHandler)
        self.messages: list = []
        self.refuse: set[str] = set()


@pytest.fixture
def smtp(runtime):
    server = SMTPServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    cfg = runtime.config
    cfg.smtp_host, cfg.smtp_port, cfg.smtp_from = "127.0.0.1", server.server_address[1], "crm@example.com"
    cfg.base_url = "https://crm.example.com"
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def users(runtime):
    return {login: auth.create_user(runtime.db, login, login.title(), email=mail)
            for login, mail in [("ann", "ann@example.com"), ("bob", "bob@example.com"), ("cat", None)]}


@pytest.fixture
def clients(app, runtime, users):
    return {login: Api(app.test_client(), auth.create_token(runtime.db, login)) for login in users}


def test_send_writes_a_row_per_recipient_and_mails_after_commit(runtime, users, smtp):
    with runtime.db.write():
        runtime.notifications.send([users["ann"], users["cat"], users["ann"], None], "lead.assigned",
                                   "New lead: 纷扬科技", "Call them today.", link="/objects/lead/records/7",
                                   data={"lead": 7})
        assert smtp.messages == []   # nothing leaves before the commit
    assert count_rows(runtime, "lh_notifications") == 2  # ann once, cat; None and the repeat dropped
    assert len(smtp.messages) == 1   # cat has no address
    sender, rcpts, msg = smtp.messages[0]
    assert (sender, rcpts) == ("crm@example.com", ["ann@example.com"])
    assert msg["Subject"] == "New lead: 纷扬科技"
    assert "Call them today." in msg.get_content() and "/objects/lead/records/7" in msg.get_content()
    assert "https://crm.example.com/objects/lead/records/7" in msg.get_content()   # absolute: read outside the app
    with runtime.db.read() as conn:
        emailed = dict(conn.execute(sa.select(notifications.c.user_id, notifications.c.emailed_at)).all())
    assert emailed[users["ann"]] is not None and emailed[users["cat"]] is None


def test_rolled_back_write_leaves_no_notification_and_no_mail(runtime, users, smtp):
    with pytest.raises(RuntimeError):
        with runtime.db.write():
            runtime.notifications.send([users["ann"]], "x", "Will vanish")
            raise RuntimeError("the triggering write fails")
    with runtime.db.write(rollback=True):   # a dry run notifies nobody either
        runtime.notifications.send([users["bob"]], "x", "Dry run")
    assert count_rows(runtime, "lh_notifications") == 0
    assert smtp.messages == []


def test_failed_savepoint_drops_only_its_own_notification(runtime, users, smtp):
    with runtime.db.write():
        runtime.notifications.send([users["ann"]], "x", "Kept")
        with pytest.raises(RuntimeError):
            with runtime.db.write():
                runtime.notifications.send([users["bob"]], "x", "Dropped")
                raise RuntimeError
    assert [m[2]["Subject"] for m in smtp.messages] == ["Kept"]
    assert count_rows(runtime, "lh_notifications") == 1


def test_mail_failure_is_logged_and_never_fails_the_write(runtime, users, smtp, caplog):
    smtp.server_close()                    # nothing listens any more
    runtime.config.smtp_port = smtp.server_address[1]
    with runtime.db.write():
        runtime.notifications.send([users["ann"]], "x", "Still in the app")
    assert count_rows(runtime, "lh_notifications") == 1
    assert "failed" in caplog.text


def test_a_refused_recipient_does_not_stop_the_others(runtime, users, smtp):
    smtp.refuse.add("ann@example.com")
    runtime.notifications.send([users["ann"], users["bob"]], "x", "Hello")  # no open write: its own
    assert [m[1] for m in smtp.messages] == [["bob@example.com"]]
    with runtime.db.read() as conn:
        left = conn.execute(sa.select(notifications.c.id).where(notifications.c.emailed_at.is_(None))).scalars().all()
    assert len(left) == 1
    smtp.refuse.clear()                   # a retry sends only what was not sent
    from leadhub.platform.jobs import _current
    token = _current.set(runtime)
    try:
        assert deliver_mail(left) == 1
    finally:
        _current.reset(token)
    assert [m[1] for m in smtp.messages] == [["bob@example.com"], ["ann@example.com"]]


def test_without_smtp_nothing_is_mailed(runtime, users):
    assert not runtime.notifications.mail_configured
    runtime.notifications.send([users["ann"]], "x", "In-app only")
    assert count_rows(runtime, "lh_notifications") == 1


def test_inactive_and_unknown_users_are_skipped(runtime, users):
    with runtime.db.write() as conn:
        conn.execute(sa.text("UPDATE lh_users SET active = :f WHERE id = :i"), {"f": False, "i": users["bob"]})
    runtime.notifications.send([users["bob"], 999999], "x", "Nobody")
    assert count_rows(runtime, "lh_notifications") == 0


@pytest.mark.parametrize("args, field", [
    (("not a list", "k", "t"), "user_ids"),
    ((["1"], "k", "t"), "user_ids"),
    (([True], "k", "t"), "user_ids"),
    (([1], "", "t"), "kind"),
    (([1], "k" * 65, "t"), "kind"),
    (([1], "k", "  "), "title"),
    (([1], "k", None), "title"),
    (([1], "k", "t" * 201), "title"),
])
def test_send_refuses_bad_input_naming_the_field(runtime, users, args, field):
    with pytest.raises(BadRequest) as err:
        runtime.notifications.send(*args)
    assert field in err.value.fields
    with pytest.raises(BadRequest) as err:
        runtime.notifications.send([users["ann"]], "k", "t", data=["not", "a", "dict"])
    assert "data" in err.value.fields
    assert count_rows(runtime, "lh_notifications") == 0


def test_api_lists_counts_and_marks_only_the_callers_own(runtime, users, clients):
    for i in range(3):
        runtime.notifications.send([users["ann"]], "x", f"ann {i}", data={"i": i})
    runtime.notifications.send([users["bob"]], "x", "bob's")
    ann, bob = clients["ann"], clients["bob"]

    listed = ann.get("/notifications").get_json()
    assert [n["title"] for n in listed["notifications"]] == ["ann 2", "ann 1", "ann 0"]   # newest first
    assert listed["unread"] == 3 and listed["total"] == 3 and listed["notifications"][0]["data"] == {"i": 2}
    assert ann.get("/notifications/count").get_json() == {"unread": 3}

    first = listed["notifications"][-1]["id"]
    r = ann.post(f"/notifications/{first}/read")
    assert r.status_code == 200 and r.get_json()["read"] is True
    assert ann.post(f"/notifications/{first}/read").status_code == 200   # again: still fine
    assert ann.get("/notifications/count").get_json() == {"unread": 2}
    assert [n["title"] for n in ann.get("/notifications?unread=1").get_json()["notifications"]] == ["ann 2", "ann 1"]

    page = ann.get("/notifications?page=2&page_size=2").get_json()
    assert [n["title"] for n in page["notifications"]] == ["ann 0"] and page["total"] == 3

    # bob can neither see nor mark ann's: it is simply not there for him
    assert [n["title"] for n in bob.get("/notifications").get_json()["notifications"]] == ["bob's"]
    r = bob.post(f"/notifications/{first + 1}/read")
    assert r.status_code == 404
    assert ann.get("/notifications/count").get_json() == {"unread": 2}

    assert ann.post("/notifications/read-all").get_json() == {"updated": 2}
    assert ann.get("/notifications/count").get_json() == {"unread": 0}
    assert bob.get("/notifications/count").get_json() == {"unread": 1}


@pytest.mark.parametrize("path, field", [
    ("/notifications?page=x", "page"),
    ("/notifications?page=0", "page"),
    ("/notifications?page_size=0", "page_size"),
    ("/notifications?page_size=201", "page_size"),
])
def test_api_bad_paging_is_400_naming_the_field(clients, path, field):
    r = clients["ann"].get(path)
    assert r.status_code == 400 and field in r.get_json()["error"]["fields"]


def test_api_missing_notifications_are_404(clients):
    ann = clients["ann"]
    for path in ("/notifications/999999/read", "/notifications/99999999999/read", "/notifications/0/read"):
        assert ann.post(path).status_code == 404, path
    assert ann.post("/notifications/abc/read").status_code == 404


def test_api_needs_a_signed_in_user(app):
    assert app.test_client().get("/api/v1/notifications").status_code == 401
