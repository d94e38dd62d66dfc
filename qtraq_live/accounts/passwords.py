"""Account passwords: the policy (length, not a common password) and argon2id hashing.

The policy follows NIST SP 800-63B: a minimum length and a check against passwords known to be
common, no composition rules. The list ships with the package (``common_passwords.txt``).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..errors import Invalid

MIN_LENGTH = 10
MAX_LENGTH = 128

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verifying against this keeps a login for an unknown account as slow as for a known one.
    Made on first use, not at import: a hash costs ~0.15 s of CPU, and every process imports this
    module (each worker, each CLI command) while only a login needs it. The server makes it at
    start (:func:`warm`), so not even the first login of an unknown account takes longer."""
    return _hasher.hash("qtraq-live dummy password")


def warm() -> None:
    """Make the dummy hash now (at server start)."""
    _dummy_hash()


@cache
def common_passwords() -> frozenset[str]:
    text = resources.files("qtraq_live.accounts").joinpath("common_passwords.txt").read_text()
    return frozenset(line.strip().lower() for line in text.splitlines()
                     if line.strip() and not line.startswith("#"))


def check_policy(password: str, *, field: str = "password") -> None:
    """422 naming ``field`` when the password is too short, too long or commonly used."""
    if len(password) < MIN_LENGTH:
        raise Invalid(field, f"must have at least {MIN_LENGTH} characters", code="weak_password")
    if len(password) > MAX_LENGTH:
        raise Invalid(field, f"must have at most {MAX_LENGTH} characters")
    if password.lower() in common_passwords():
        raise Invalid(field, "is a commonly used password; choose another", code="weak_password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; an absent hash costs the same time and fails."""
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False
