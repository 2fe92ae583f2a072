"""Password hashing with scrypt, stored as a self-describing string; the password policy.

Format: ``scrypt$n=16384,r=8,p=1$<salt, urlsafe base64>$<key, urlsafe base64>``; the parameters
travel with each hash so they can be raised later without breaking old hashes.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from pathlib import Path

SCHEME = "scrypt"
N, R, P = 2**14, 8, 1
SALT_BYTES = 16
KEY_BYTES = 32
# Refuse absurd stored parameters instead of letting a bad row eat the memory.
_MAX_N = 2**20


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=length, maxmem=256 * 1024 * 1024
    )


def hash_password(password: str) -> str:
    """A new salted scrypt hash of `password`."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt, N, R, P, KEY_BYTES)
    return f"{SCHEME}$n={N},r={R},p={P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """True if `password` matches the stored hash; False for a wrong or unreadable hash."""
    try:
        scheme, params, salt_text, key_text = stored.split("$")
        values = dict(item.split("=", 1) for item in params.split(","))
        n, r, p = int(values["n"]), int(values["r"]), int(values["p"])
        salt, key = _unb64(salt_text), _unb64(key_text)
    except (ValueError, KeyError):
        return False
    if scheme != SCHEME or not (1 < n <= _MAX_N) or r < 1 or p < 1 or not key:
        return False
    try:
        candidate = _derive(password, salt, n, r, p, len(key))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(candidate, key)


# ---- policy ----------------------------------------------------------------------------------

DEFAULT_MIN_LENGTH = 10
# The shortest minimum a deployment may configure; the shipped list holds passwords this long
# and longer (shorter ones fail the length rule anyway).
LOWEST_MIN_LENGTH = 8
MAX_LENGTH = 1024
_COMMON_FILE = Path(__file__).resolve().parent / "common_passwords.txt"


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords, lower case (read once)."""
    with _COMMON_FILE.open(encoding="utf-8") as lines:
        entries = (line.rstrip("\n") for line in lines)
        # Comment lines are "#" or start with "# " (passwords such as "#1stunna" do not).
        return frozenset(e for e in entries if e and e != "#" and not e.startswith("# "))


def policy_problem(password: str, username: str, min_length: int) -> str | None:
    """Why `password` is not acceptable for `username` (None if it is): too short or too long,
    containing the user name, or in the list of common passwords. The same for every role."""
    if len(password) < min_length:
        return f"must have at least {min_length} characters"
    if len(password) > MAX_LENGTH:
        return f"must have at most {MAX_LENGTH} characters"
    folded = password.casefold()
    if username and username.casefold() in folded:
        return "must not contain the user name"
    if folded in common_passwords():
        return "is one of the most common passwords: choose another"
    return None
