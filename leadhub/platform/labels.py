"""Labels are free text in zh_CN and en; a plain string stands for both."""
from __future__ import annotations

LANGUAGES = ("zh_CN", "en")
MAX_LABEL = 255


def normalise_labels(value: object) -> dict[str, str]:
    """Return {"en": ..., "zh_CN": ...} or raise ValueError saying what is wrong."""
    if isinstance(value, str):
        value = {"en": value, "zh_CN": value}
    if not isinstance(value, dict) or not value:
        raise ValueError("Label must be a string or an object with 'en' and/or 'zh_CN'.")
    unknown = set(value) - set(LANGUAGES)
    if unknown:
        raise ValueError(f"Unknown label language: {', '.join(sorted(unknown))}.")
    out = {}
    for lang in LANGUAGES:
        text = value.get(lang)
        if text is None:
            continue
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"Label for {lang} must be non-empty text.")
        if len(text) > MAX_LABEL:
            raise ValueError(f"Label must be at most {MAX_LABEL} characters.")
        out[lang] = text.strip()
    if not out:
        raise ValueError("Label must not be empty.")
    for lang in LANGUAGES:
        out.setdefault(lang, next(iter(out.values())))
    return out


def pick(labels: dict[str, str] | None, language: str) -> str | None:
    if not labels:
        return None
    return labels.get(language) or labels.get("en") or next(iter(labels.values()))
