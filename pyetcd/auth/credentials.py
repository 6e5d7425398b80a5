"""Where a request's credentials come from: the `token` gRPC metadata, else a client certificate's CN.

etcd looks for the token under `token` (and `authorization`, the gateway's name). With
--client-cert-auth and no token, the Common Name of the verified client certificate is the
user name, except on requests relayed by the JSON gateway, whose certificate is the server's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

TOKEN_METADATA_KEYS = ("token", "authorization")
GATEWAY_METADATA_KEY = "grpcgateway-accept"
COMMON_NAME_PROPERTY = "x509_common_name"
PEER_CERTIFICATE_PROPERTY = "x509_pem_cert"


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def metadata_value(metadata: Iterable[tuple[str, str | bytes]] | None, wanted: str) -> str | None:
    for key, value in metadata or ():
        if key.lower() == wanted:
            return _text(value)
    return None


def token_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The auth token a client sent, if any."""
    items = list(metadata or ())
    for name in TOKEN_METADATA_KEYS:
        found = metadata_value(items, name)
        if found is not None:
            return found
    return None


def common_name_from_auth_context(auth_context: Mapping[str, Sequence[Any]] | None,
                                  metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The CN of the client's verified certificate (grpc's auth context): "" for a certificate without
    one, None when the call has no client certificate or the gateway relayed it."""
    context = auth_context or {}
    if not context.get(PEER_CERTIFICATE_PROPERTY):
        return None
    if metadata_value(metadata, GATEWAY_METADATA_KEY) is not None:
        return None
    names = context.get(COMMON_NAME_PROPERTY) or []
    return _text(names[0]) if names else ""


@dataclass(frozen=True, slots=True)
class Credentials:
    """What one call presented: a token, a verified certificate's CN, or the server acting as root.

    The CN is read from the call only when asked for (only --client-cert-auth servers ask), so
    calls on other servers do not pay for reading their TLS state.
    """

    token: str | None = None
    cn: str | None = None
    as_root: bool = False
    call: Any = field(default=None, compare=False)

    @property
    def common_name(self) -> str | None:
        if self.cn is not None or self.call is None:
            return self.cn
        try:
            auth_context = self.call.auth_context()
        except Exception:  # noqa: BLE001 - no auth context (e.g. a test double): no certificate
            return None
        return common_name_from_auth_context(auth_context, self.call.invocation_metadata())


NO_CREDENTIALS = Credentials()
ROOT_CREDENTIALS = Credentials(as_root=True)
"""The server's own requests that must pass auth (revoking expired leases), as etcd's WithRoot."""

REQUEST_CREDENTIALS: ContextVar[Credentials] = ContextVar("request_credentials", default=NO_CREDENTIALS)
"""The credentials of the call being served. The gRPC handler sets it when a call starts; each call
runs in its own task, so the server reads the caller's credentials without threading them through
every method."""


def credentials_from_call(context: Any) -> Credentials:
    """A grpc.aio call's token, with its client certificate's CN to be read on demand."""
    return Credentials(token_from_metadata(context.invocation_metadata()), call=context)
