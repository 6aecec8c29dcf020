"""Rate limits of the web layer, by Flask-Limiter. Counters live in Redis
when LEADHUB_REDIS_URL is set (so every server process shares them), else in
the process's memory; should Redis go away, memory takes over until it is
back, and nobody is refused because a counter could not be read.

Sign-in is limited per client address (LEADHUB_SIGNIN_RATE_LIMIT): the
per-account lockout in auth.sign_in stops guessing one account's password,
this stops trying a few passwords on many accounts. Web-to-lead forms keep
their own per-form counters in the database (lead plugin, webforms.py):
they must agree across processes on the embedded default too, where there
is no Redis."""
from __future__ import annotations

import hashlib

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from leadhub.runtime import Runtime


def install(app: Flask, runtime: Runtime) -> Limiter:
    config = runtime.config
    # one installation's counters: two instances sharing a Redis do not count each other's requests
    instance = hashlib.sha256(config.database_url.encode()).hexdigest()[:12]
    limiter = Limiter(get_remote_address, app=app, storage_uri=config.redis_url or "memory://",
                      key_prefix=f"leadhub:{instance}", strategy="fixed-window", headers_enabled=True,
                      swallow_errors=True, in_memory_fallback_enabled=True)
    sign_in = app.view_functions["session.login"]
    app.view_functions["session.login"] = limiter.limit(config.signin_rate_limit, methods=["POST"])(sign_in)
    return limiter
