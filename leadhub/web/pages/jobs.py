"""The designer's jobs page (/admin/jobs): background work by status, what
failed and why, and running a failed job again. Reads Jobs, as GET
/api/v1/jobs does."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from leadhub.platform import jobs
from leadhub.web.pages.admin import bp
from leadhub.web.pages.common import runtime
from leadhub.web.pages.i18n import gettext as _

STATUS_LABELS = {"pending": "Waiting", "queued": "Queued", "running": "Running", "done": "Done", "failed": "Failed"}
SHOWN = 200


@bp.get("/jobs")
def jobs_page():
    status = request.args.get("status") or None
    if status is not None and status not in jobs.STATUSES:
        abort(404)
    rows = runtime().jobs.list(status=status, limit=SHOWN)
    for row in rows:
        row["label"] = jobs.label(row["fn"])
        row["subject"] = ", ".join(str(a) for a in row["args"].get("args", []))[:120]
    return render_template("admin/jobs.html", rows=rows, counts=runtime().jobs.counts(), status=status,
                           STATUS_LABELS=STATUS_LABELS, tz=runtime().config.timezone)


@bp.post("/jobs/<id:job_id>/retry")
def job_retry(job_id):
    if runtime().jobs.retry(job_id):
        flash(_("The job runs again."), "ok")
    else:
        flash(_("Only a failed job can be run again."), "error")
    return redirect(url_for("admin.jobs_page", status=request.form.get("status") or None))
