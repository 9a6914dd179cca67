"""Who owns stored state: the caller, as far as the server knows it, never their secret.

An API key is known only by a hash of it; a Databricks Apps user by a hash of the identity
the platform forwards. Callers the server cannot tell apart share the anonymous owner
(a single-tenant deployment without keys). Everything stored is keyed by owner: another
caller's ids are simply not found.
"""

from __future__ import annotations

import hashlib

ANONYMOUS = "anonymous"


def owner_from_api_key(key: str) -> str:
    return "key-" + _digest(key)


def owner_from_forwarded_user(user: str) -> str:
    return "user-" + _digest(user)


def thread_key(owner: str, name: str) -> str:
    """The LangGraph thread id of a conversation, response chain or client-named thread: the
    owner's prefix keeps two callers who pick the same name apart."""
    return f"{owner}/{name}"


def _digest(secret: str) -> str:
    # sha256 of a high-entropy key cannot be reversed; 128 bits are plenty to tell callers
    # apart and keep the column short.
    return hashlib.sha256(secret.encode()).hexdigest()[:32]
