"""Where a call's credentials come from: the token metadata, else a verified client certificate's CN."""

from __future__ import annotations

from typing import Any

from pyetcd.auth.credentials import Credentials, credentials_from_call
from pyetcd.auth.store import AuthStore
from pyetcd.auth.tokens import AuthInfo, SimpleTokens


class FakeCall:
    def __init__(self, metadata: list[tuple[str, str]], auth_context: dict[str, list[bytes]]) -> None:
        self._metadata = metadata
        self._auth_context = auth_context

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return self._metadata

    def auth_context(self) -> dict[str, Any]:
        return self._auth_context


TLS_CLIENT = {"transport_security_type": [b"ssl"], "x509_common_name": [b"alice"], "x509_pem_cert": [b"PEM"]}
NAMELESS_CLIENT = {"transport_security_type": [b"ssl"], "x509_pem_cert": [b"PEM"]}


def test_token_comes_from_the_token_metadata_or_the_gateways_authorization() -> None:
    assert credentials_from_call(FakeCall([("token", "t.1")], {})).token == "t.1"
    assert credentials_from_call(FakeCall([("authorization", "t.2")], {})).token == "t.2"
    assert credentials_from_call(FakeCall([], {})) == Credentials()


def test_a_verified_client_certificate_names_the_user() -> None:
    assert credentials_from_call(FakeCall([], TLS_CLIENT)).common_name == "alice"
    assert credentials_from_call(FakeCall([], {})).common_name is None
    # A certificate without a CN names the empty user, whom etcd then refuses permission.
    assert credentials_from_call(FakeCall([], NAMELESS_CLIENT)).common_name == ""
    both = credentials_from_call(FakeCall([("token", "t.1")], TLS_CLIENT))
    assert both.token == "t.1"  # the server prefers the token when both are there
    # The JSON gateway relays calls with the server's own certificate: its CN names nobody.
    relayed = credentials_from_call(FakeCall([("grpcgateway-accept", "application/json")], TLS_CLIENT))
    assert relayed.token is None and relayed.common_name is None


def test_a_common_name_acts_at_the_current_auth_revision() -> None:
    store = AuthStore(SimpleTokens())
    assert store.info_from_common_name("root") == AuthInfo("root", store.revision)
