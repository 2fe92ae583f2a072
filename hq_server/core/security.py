"""Bearer tokens: random, with a readable prefix naming their kind; HQ keeps sha256 hashes only."""

from __future__ import annotations

import hashlib
import secrets
from enum import StrEnum


class TokenKind(StrEnum):
    """The kind of a token, shown by its prefix (so a leaked token is easy to recognise)."""

    ENROLLMENT = "swe_"
    AGENT = "swa_"
    USER = "swu_"


TOKEN_BYTES = 32


def new_token(kind: TokenKind) -> str:
    """A fresh random token of this kind (prefix + 43 url-safe characters)."""
    return kind.value + secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The sha256 hex digest HQ stores and looks tokens up by."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_kind(token: str) -> TokenKind | None:
    """The kind a token claims by its prefix, or None for an unknown prefix."""
    for kind in TokenKind:
        if token.startswith(kind.value):
            return kind
    return None
