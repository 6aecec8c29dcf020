"""The errors every layer raises; the web layer turns them into JSON answers.

Each carries an HTTP status, a stable code and, where input was at fault, the
offending fields mapped to their messages, as DESIGN.md's error shape asks.
"""
from __future__ import annotations


class LeadhubError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, fields: dict[str, object] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}

    def to_dict(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "fields": self.fields}}


class BadRequest(LeadhubError):
    status = 400
    code = "bad_request"


class Unauthorized(LeadhubError):
    status = 401
    code = "unauthorized"


class Forbidden(LeadhubError):
    status = 403
    code = "forbidden"


class NotFound(LeadhubError):
    status = 404
    code = "not_found"


class Conflict(LeadhubError):
    status = 409
    code = "conflict"


class ValidationFailed(LeadhubError):
    status = 422
    code = "validation_failed"

    def __init__(self, fields: dict[str, object], message: str | None = None):
        names = ", ".join(sorted(fields))
        super().__init__(message or f"Invalid value for: {names}", fields)


def messages_text(messages: object) -> str:
    """marshmallow's nested message lists and dicts, as one readable sentence."""
    if isinstance(messages, dict):
        return "; ".join(f"{k}: {messages_text(v)}" for k, v in messages.items())
    if isinstance(messages, list):
        return "; ".join(messages_text(m) for m in messages)
    return str(messages)
