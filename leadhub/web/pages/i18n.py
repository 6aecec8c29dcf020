"""Translations: English source strings, one JSON catalog per other language
(leadhub/web/i18n/<lang>.json, {"English": "译文"}), loaded once. Plain
JSON needs no compile step at install or start; tests/test_pages.py checks
that every string marked with _() in the templates and page code has a
zh_CN entry, so the catalog stays complete.

Language: an explicit choice made in this browser (the switcher), else the
signed-in user's setting, else Accept-Language, else zh_CN."""
from __future__ import annotations

import functools
import json
from pathlib import Path

from flask import g, request, session

LANGUAGES = ("zh_CN", "en")
DEFAULT = "zh_CN"
CATALOG_DIR = Path(__file__).resolve().parent.parent / "i18n"


@functools.cache
def catalog(language: str) -> dict[str, str]:
    path = CATALOG_DIR / f"{language}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def choose(user_language: str | None = None) -> str:
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return chosen
    if user_language in LANGUAGES:
        return user_language
    best = request.accept_languages.best_match(["zh-CN", "zh", "en"])
    if best:
        return "en" if best == "en" else "zh_CN"
    return DEFAULT


def current() -> str:
    lang = g.get("lang")
    if lang is None:
        lang = g.lang = choose()
    return lang


def gettext(text: str) -> str:
    return catalog(current()).get(text, text)


def ngettext(singular: str, plural: str, n: int) -> str:
    return gettext(singular if n == 1 else plural)


def label(labels, language: str | None = None) -> str:
    """A metadata label ({"en", "zh_CN"} or plain text) in the page's language."""
    if isinstance(labels, dict):
        lang = language or current()
        return labels.get(lang) or labels.get("en") or next(iter(labels.values()), "")
    return labels or ""
