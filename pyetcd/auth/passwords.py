"""Password hashes: bcrypt, with etcd's cost rules (--bcrypt-cost, 4..31, default 10).

Hashing is deliberately slow, so callers run these functions off the event loop. The hash is
made before a request is proposed, so the Raft log carries the hash and never the password,
and every member stores the same bytes.
"""

from __future__ import annotations

import logging

import bcrypt

MIN_COST = 4
MAX_COST = 31
DEFAULT_COST = 10

log = logging.getLogger("pyetcd.auth")


def effective_cost(cost: int) -> int:
    """etcd replaces a cost outside bcrypt's range by the default, with a warning."""
    if MIN_COST <= cost <= MAX_COST:
        return cost
    log.warning("use default bcrypt cost %d instead of the invalid given cost %d", DEFAULT_COST, cost)
    return DEFAULT_COST


BCRYPT_MAX_PASSWORD_BYTES = 72


def _password_bytes(password: str) -> bytes:
    """bcrypt reads at most 72 bytes; etcd 3.4's Go bcrypt ignores the rest rather than refusing."""
    return password.encode()[:BCRYPT_MAX_PASSWORD_BYTES]


def hash_password(password: str, cost: int) -> str:
    return bcrypt.hashpw(_password_bytes(password), bcrypt.gensalt(rounds=cost)).decode()


def password_matches(hashed: bytes, password: str) -> bool:
    """bcrypt.CompareHashAndPassword: False for a wrong password or a hash that is not bcrypt's."""
    try:
        return bool(bcrypt.checkpw(_password_bytes(password), hashed))
    except ValueError:
        return False
