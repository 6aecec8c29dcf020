"""Layouts, list views and the menu as the pages see them: always through
runtime.layouts (leadhub/data/layouts.py), so a page shows exactly the
layout the API's GET /objects/{object}/layout returns for the same user."""
from __future__ import annotations

from flask import g

from leadhub.platform.permissions import Actor
from leadhub.web.pages.common import runtime


def service():
    return runtime().layouts


def effective_layout(actor: Actor, obj_name: str) -> dict:
    """Once per request and object (a page asks for it more than once)."""
    cache = g.setdefault("_layouts", {})
    key = (actor.user_id, obj_name)
    if key not in cache:
        cache[key] = runtime().layouts.effective_layout(actor, obj_name)
    return cache[key]


def list_views(actor: Actor, obj_name: str) -> list[dict]:
    return runtime().layouts.list_views(actor, obj_name)


def menu(actor: Actor) -> list[dict]:
    return runtime().layouts.menu(actor)
