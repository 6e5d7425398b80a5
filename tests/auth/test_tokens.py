"""Simple tokens and JWTs: made, recognised, expired and refused as etcd's token providers do."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pyetcd.auth.tokens import (
    INVALID_AUTH_OPTS,
    KEY_MISMATCH,
    MISSING_KEY,
    AuthInfo,
    AuthOptionsError,
    JwtTokens,
    SimpleTokens,
    TokenSigningError,
    new_token_provider,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write_keys(directory: Path, private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    priv = directory / "jwt.key"
    pub = directory / "jwt.pub"
    priv.write_bytes(private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    pub.write_bytes(private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


def test_simple_token_names_its_index_and_expires_unless_used() -> None:
    clock = Clock()
    tokens = SimpleTokens(ttl_s=10, clock=clock)
    tokens.enable()
    prefix = tokens.gen_token_prefix()
    assert len(prefix) == 16 and prefix.isalpha()
    token = tokens.assign("alice", 5, 42, prefix)
    assert token == f"{prefix}.42" and tokens.required_index(token) == 42
    clock.now += 8
    assert tokens.info(token, 7) == AuthInfo("alice", 7)  # a use pushes the expiry back
    clock.now += 8
    assert tokens.info(token, 7) == AuthInfo("alice", 7)
    clock.now += 11
    assert tokens.info(token, 7) is None
    assert tokens.info("forged.42", 7) is None


def test_simple_tokens_die_with_their_user_or_when_auth_is_disabled() -> None:
    tokens = SimpleTokens()
    tokens.enable()
    a, b = tokens.assign("a", 1, 1, "p"), tokens.assign("b", 1, 2, "p")
    tokens.invalidate_user("a")
    assert tokens.info(a, 1) is None and tokens.info(b, 1) is not None
    tokens.disable()
    assert tokens.info(b, 1) is None


@pytest.mark.parametrize("method,key", [("RS256", rsa.generate_private_key(65537, 2048)),
                                        ("ES256", ec.generate_private_key(ec.SECP256R1()))])
def test_jwt_carries_user_and_revision_and_is_checked_with_the_key(
        tmp_path: Path, method: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
    priv, pub = write_keys(tmp_path, key)
    provider = new_token_provider(f"jwt,pub-key={pub},priv-key={priv},sign-method={method},ttl=1m", 300)
    assert isinstance(provider, JwtTokens)
    token = provider.assign("bob", 9, 0, "")
    assert jwt.get_unverified_header(token)["alg"] == method
    assert provider.info(token, 12) == AuthInfo("bob", 9)  # the revision it was made at, not the current one
    head, body, signature = token.split(".")
    guessed_secret = "a guessed secret of 32 bytes!!!!"
    forged = jwt.encode({"username": "root", "revision": 9, "exp": 2**40}, guessed_secret, algorithm="HS256")
    assert provider.info(forged, 12) is None
    assert provider.info(f"{head}.{body}.{signature[:-4]}AAAA", 12) is None


def test_expired_jwt_is_refused(tmp_path: Path) -> None:
    priv, pub = write_keys(tmp_path, rsa.generate_private_key(65537, 2048))
    provider = new_token_provider(f"jwt,pub-key={pub},priv-key={priv},sign-method=RS256", 300)
    assert isinstance(provider, JwtTokens)
    clock = Clock()
    clock.now = 1_000_000.0  # long ago
    provider.clock = clock
    assert provider.info(provider.assign("bob", 1, 0, ""), 1) is None


def test_jwt_with_only_a_public_key_verifies_but_cannot_sign(tmp_path: Path) -> None:
    _, pub = write_keys(tmp_path, rsa.generate_private_key(65537, 2048))
    provider = new_token_provider(f"jwt,pub-key={pub},sign-method=RS256", 300)
    with pytest.raises(TokenSigningError):
        provider.assign("bob", 1, 0, "")


def test_bad_auth_token_options_are_refused_with_etcds_errors(tmp_path: Path) -> None:
    priv, _ = write_keys(tmp_path, rsa.generate_private_key(65537, 2048))
    (tmp_path / "other").mkdir()
    _, other_pub = write_keys(tmp_path / "other", rsa.generate_private_key(65537, 2048))
    cases = {
        "bogus": INVALID_AUTH_OPTS,
        "simple,ttl": INVALID_AUTH_OPTS,
        "jwt,sign-method=RS256,sign-method=RS256": INVALID_AUTH_OPTS,
        "jwt,sign-method=XX256": INVALID_AUTH_OPTS,
        "jwt,sign-method=RS256": MISSING_KEY,
        f"jwt,priv-key={tmp_path}/missing,sign-method=RS256": INVALID_AUTH_OPTS,
        f"jwt,priv-key={priv},pub-key={other_pub},sign-method=RS256": KEY_MISMATCH,
        f"jwt,priv-key={priv},sign-method=ES256": INVALID_AUTH_OPTS,
    }
    for option, message in cases.items():
        with pytest.raises(AuthOptionsError) as refused:
            new_token_provider(option, 300)
        assert str(refused.value) == message, option
    assert isinstance(new_token_provider("simple", 60), SimpleTokens)
