"""Password hashing with Argon2id (memory-hard), and the strength rule."""
from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id with the library's current recommended cost
MIN_LENGTH = 8
MAX_LENGTH = 256
# a hash to verify against when the login is unknown, so timing does not tell
# whether a user exists
_DUMMY = _hasher.hash("leadhub-no-such-user")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def weakness(password: str) -> str | None:
    """Why a password is refused, or None."""
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        return f"A password needs at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"A password has at most {MAX_LENGTH} characters."
    if password.isdigit() or password.isalpha():
        return "Mix letters with digits or symbols."
    return None
