"""Translations: English source strings are the msgids; each other language
has a gettext catalog, leadhub/web/i18n/<lang>/LC_MESSAGES/messages.po, so
translators work with the usual tools (Poedit, Weblate; `pybabel extract
-F babel.cfg` and `pybabel update`, see README). Babel reads the .po once
per process: no compile step at install or start. tests/test_pages.py
checks that every string marked with _() in the templates and page code has
a zh_CN entry, so the catalog stays complete.

Language: an explicit choice made in this browser (the switcher), else the
signed-in user's setting, else Accept-Language, else zh_CN."""
from __future__ import annotations

import functools
from pathlib import Path

from babel.messages.pofile import read_po
from flask import g, request, session

LANGUAGES = ("zh_CN", "en")
DEFAULT = "zh_CN"
CATALOG_DIR = Path(__file__).resolve().parent.parent / "i18n"


@functools.cache
def catalog(language: str) -> dict[str, str]:
    """msgid -> translation; untranslated and fuzzy entries are left out
    (the English shows)."""
    path = CATALOG_DIR / language / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return {}
    with path.open("rb") as f:
        po = read_po(f, locale=language)
    return {m.id: m.string for m in po if m.id and isinstance(m.id, str) and m.string and not m.fuzzy}


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
