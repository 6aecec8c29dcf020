"""The WSGI application for a process manager of your choice, e.g.

    gunicorn --workers 4 --bind 0.0.0.0:8000 'leadhub.wsgi:app'

Configured from LEADHUB_* like every command. Each worker process builds its
own runtime (connection pool, caches); none runs the scheduler: run
`leadhub worker` (with Redis) or `leadhub tick` from cron beside them."""
from leadhub.web.app import create_app

app = create_app()
