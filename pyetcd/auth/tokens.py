"""Auth tokens as etcd hands them out: simple tokens (`--auth-token simple`) and JWTs.

A token is made when an Authenticate entry is applied, so every member knows a simple token
and any member accepts it. Simple tokens are "<16 random letters>.<Raft index>", live in
memory only, and expire after --auth-token-ttl without use; a JWT carries the user name and
the auth revision it was made at, signed with the configured key, and expires at its `exp`.
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt

from pyetcd.flagvalues import parse_go_duration

TOKEN_LETTERS = string.ascii_lowercase + string.ascii_uppercase
SIMPLE_TOKEN_PREFIX_LENGTH = 16
DEFAULT_JWT_TTL_S = 300.0
KNOWN_JWT_OPTIONS = frozenset({"sign-method", "pub-key", "priv-key", "ttl"})

# etcd's auth package errors that stop start-up or reach clients as UNKNOWN with this text.
INVALID_AUTH_OPTS = "auth: invalid auth options"
INVALID_AUTH_METHOD = "auth: invalid auth signature method"
MISSING_KEY = "auth: missing key data"
KEY_MISMATCH = "auth: public and private keys don't match"
VERIFY_ONLY = "auth: token signing attempted with verify-only key"


class AuthOptionsError(Exception):
    """An --auth-token value etcd refuses at start-up; the message is etcd's."""


class TokenSigningError(Exception):
    """A token could not be made (a JWT provider holding only a public key)."""


@dataclass(frozen=True, slots=True)
class AuthInfo:
    """Who a request runs as, and the auth revision its credentials were checked at."""

    username: str
    revision: int


class TokenProvider(Protocol):
    """What the auth store needs of a token kind (etcd's TokenProvider)."""

    def info(self, token: str, current_revision: int) -> AuthInfo | None: ...
    def assign(self, username: str, revision: int, index: int, prefix: str) -> str: ...
    def required_index(self, token: str) -> int: ...
    def gen_token_prefix(self) -> str: ...
    def enable(self) -> None: ...
    def disable(self) -> None: ...
    def invalidate_user(self, username: str) -> None: ...


@dataclass(slots=True)
class SimpleTokens:
    """Random tokens mapped to user names in memory; each use pushes its expiry back by `ttl_s`."""

    ttl_s: float = 300.0
    clock: Callable[[], float] = time.monotonic
    enabled: bool = False
    _users: dict[str, str] = field(default_factory=dict)
    _expiry: dict[str, float] = field(default_factory=dict)

    def gen_token_prefix(self) -> str:
        return "".join(secrets.choice(TOKEN_LETTERS) for _ in range(SIMPLE_TOKEN_PREFIX_LENGTH))

    def required_index(self, token: str) -> int:
        """The Raft index the token was made at; a member must have applied it to know the token."""
        _, sep, index = token.rpartition(".")
        return int(index) if sep and index.isdigit() else 0

    def assign(self, username: str, revision: int, index: int, prefix: str) -> str:
        token = f"{prefix}.{index}"
        if self.enabled:
            self._users[token] = username
            self._expiry[token] = self.clock() + self.ttl_s
        return token

    def info(self, token: str, current_revision: int) -> AuthInfo | None:
        username = self._users.get(token)
        if username is None:
            return None
        now = self.clock()
        if now > self._expiry[token]:
            self._forget(token)
            return None
        self._expiry[token] = now + self.ttl_s
        return AuthInfo(username, current_revision)

    def enable(self) -> None:
        self.enabled = True

    def disable(self) -> None:
        self.enabled = False
        self._users.clear()
        self._expiry.clear()

    def invalidate_user(self, username: str) -> None:
        for token in [t for t, name in self._users.items() if name == username]:
            self._forget(token)

    def _forget(self, token: str) -> None:
        self._users.pop(token, None)
        self._expiry.pop(token, None)


@dataclass(slots=True)
class JwtTokens:
    """Signed tokens carrying {username, revision, exp}; nothing is kept on the server."""

    algorithm: str
    signing_key: Any
    verifying_key: Any
    ttl_s: float = DEFAULT_JWT_TTL_S
    clock: Callable[[], float] = time.time

    def gen_token_prefix(self) -> str:
        return ""

    def required_index(self, token: str) -> int:
        return 0

    def assign(self, username: str, revision: int, index: int, prefix: str) -> str:
        if self.signing_key is None:
            raise TokenSigningError(VERIFY_ONLY)
        claims = {"username": username, "revision": revision, "exp": int(self.clock() + self.ttl_s)}
        return jwt.encode(claims, self.signing_key, algorithm=self.algorithm)

    def info(self, token: str, current_revision: int) -> AuthInfo | None:
        try:
            claims = jwt.decode(token, self.verifying_key, algorithms=[self.algorithm])
        except jwt.PyJWTError:
            return None
        username, revision = claims.get("username"), claims.get("revision")
        if not isinstance(username, str) or not isinstance(revision, int | float) or isinstance(revision, bool):
            return None
        return AuthInfo(username, int(revision))

    def enable(self) -> None:
        pass

    def disable(self) -> None:
        pass

    def invalidate_user(self, username: str) -> None:
        pass


class NoTokens:
    """`--auth-token ""`: no token is ever valid and Authenticate fails (etcd's nop provider)."""

    def gen_token_prefix(self) -> str:
        return ""

    def required_index(self, token: str) -> int:
        return 0

    def assign(self, username: str, revision: int, index: int, prefix: str) -> str:
        raise TokenSigningError("auth: authentication failed, invalid user ID or password")

    def info(self, token: str, current_revision: int) -> AuthInfo | None:
        return None

    def enable(self) -> None:
        pass

    def disable(self) -> None:
        pass

    def invalidate_user(self, username: str) -> None:
        pass


def split_token_options(option: str) -> tuple[str, dict[str, str]]:
    """`type,key=value,...` as etcd's decomposeOpts splits it; a malformed or repeated pair is refused."""
    kind, *pairs = option.split(",")
    options: dict[str, str] = {}
    for pair in pairs:
        parts = pair.split("=")
        if len(parts) != 2 or parts[0] in options:
            raise AuthOptionsError(INVALID_AUTH_OPTS)
        options[parts[0]] = parts[1]
    return kind, options


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as err:
        raise AuthOptionsError(INVALID_AUTH_OPTS) from err


def _jwt_keys(algorithm: str, private_pem: bytes, public_pem: bytes) -> tuple[Any, Any]:
    """(signing key or None, verifying key) for the method's family, as etcd's jwtOptions.Key."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

    if algorithm.startswith("HS"):
        if not private_pem:
            raise AuthOptionsError(MISSING_KEY)
        return private_pem, private_pem
    family: tuple[type[Any], type[Any]] = (
        (rsa.RSAPrivateKey, rsa.RSAPublicKey) if algorithm[:2] in ("RS", "PS")
        else (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey))
    private = public = None
    try:
        if private_pem:
            private = load_pem_private_key(private_pem, password=None)
        if public_pem:
            public = load_pem_public_key(public_pem)
    except (ValueError, TypeError) as err:
        raise AuthOptionsError(str(err)) from err
    if private is not None and not isinstance(private, family[0]) or \
            public is not None and not isinstance(public, family[1]):
        raise AuthOptionsError(INVALID_AUTH_OPTS)
    if private is None:
        if public is None:
            raise AuthOptionsError(MISSING_KEY)
        return None, public
    if public is not None and public.public_numbers() != private.public_key().public_numbers():
        raise AuthOptionsError(KEY_MISMATCH)
    return private, private.public_key()


JWT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                  "ES256", "ES384", "ES512", "HS256", "HS384", "HS512")


def new_token_provider(option: str, simple_ttl_s: float) -> TokenProvider:
    """The provider --auth-token names; refused with etcd's start-up error when it cannot be made."""
    kind, options = split_token_options(option)
    if kind == "simple":
        return SimpleTokens(ttl_s=simple_ttl_s if simple_ttl_s > 0 else 300.0)
    if kind == "":
        return NoTokens()
    if kind != "jwt":
        raise AuthOptionsError(INVALID_AUTH_OPTS)
    ttl_s = DEFAULT_JWT_TTL_S
    try:
        if options.get("ttl"):
            ttl_s = parse_go_duration(options["ttl"])
        private_pem = _read(options["priv-key"]) if options.get("priv-key") else b""
        public_pem = _read(options["pub-key"]) if options.get("pub-key") else b""
    except ValueError as err:
        raise AuthOptionsError(INVALID_AUTH_OPTS) from err
    algorithm = options.get("sign-method", "")
    if algorithm not in JWT_ALGORITHMS:
        raise AuthOptionsError(INVALID_AUTH_OPTS)
    signing, verifying = _jwt_keys(algorithm, private_pem, public_pem)
    return JwtTokens(algorithm, signing, verifying, ttl_s)
