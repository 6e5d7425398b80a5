"""The grpc-proxy's settings, and the `grpc-proxy start` flags (named as etcd 3.4 names them)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from pyetcd.config import ConfigError

DEFAULT_MAX_SEND_BYTES = 1_572_864 + 512 * 1024  # etcd's request limit plus headroom for headers
DEFAULT_MAX_RECV_BYTES = 2**31 - 1  # as etcd's gRPC server: effectively unlimited
DEFAULT_RESOLVER_TTL = 60


@dataclass(slots=True)
class ProxyConfig:
    """Everything the proxy needs to start; built from flags or directly by tests."""

    endpoints: list[str]
    listen_addr: str
    advertise_client_url: str = ""
    # Every key the proxy's clients name is stored under this prefix.
    namespace: str = ""
    # Where the proxy registers itself (`<prefix>/<advertise_client_url>`) for discovery by other clients.
    resolver_prefix: str = ""
    # Lease TTL, in seconds, of that registration.
    resolver_ttl: int = DEFAULT_RESOLVER_TTL
    max_send_bytes: int = DEFAULT_MAX_SEND_BYTES
    max_recv_bytes: int = DEFAULT_MAX_RECV_BYTES
    # Client TLS towards the cluster.
    cert: str = ""
    key: str = ""
    cacert: str = ""
    # Server TLS towards the proxy's own clients.
    cert_file: str = ""
    key_file: str = ""
    trusted_ca_file: str = ""
    debug: bool = False


def add_proxy_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `etcd grpc-proxy start` that this proxy supports."""
    parser.add_argument("--endpoints", default="127.0.0.1:2379",
                        help="comma separated etcd cluster endpoints")
    parser.add_argument("--listen-addr", default="127.0.0.1:23790", help="listen address")
    # Empty by default (etcd's default is the listen address) so MemberList shows the cluster unless asked.
    parser.add_argument("--advertise-client-url", default="",
                        help="advertise address to register (must be reachable by client)")
    parser.add_argument("--resolver-prefix", default="",
                        help="prefix to use for registering proxy "
                             "(must be shared with other grpc-proxy members)")
    parser.add_argument("--resolver-ttl", type=int, default=0,
                        help="specify TTL, in seconds, when registering proxy endpoints")
    parser.add_argument("--namespace", default="",
                        help="string to prefix to all keys for namespacing requests")
    parser.add_argument("--max-send-bytes", type=int, default=DEFAULT_MAX_SEND_BYTES,
                        help="message send limits in bytes")
    parser.add_argument("--max-recv-bytes", type=int, default=DEFAULT_MAX_RECV_BYTES,
                        help="message receive limits in bytes")
    parser.add_argument("--cert", default="",
                        help="identify secure connections with etcd servers using this TLS certificate file")
    parser.add_argument("--key", default="",
                        help="identify secure connections with etcd servers using this TLS key file")
    parser.add_argument("--cacert", default="",
                        help="verify certificates of TLS-enabled secure etcd servers using this CA bundle")
    parser.add_argument("--cert-file", default="",
                        help="identify secure connections to the proxy using this TLS certificate file")
    parser.add_argument("--key-file", default="",
                        help="identify secure connections to the proxy using this TLS key file")
    parser.add_argument("--trusted-ca-file", default="",
                        help="verify certificates of TLS-enabled secure proxy using this CA bundle")
    parser.add_argument("--debug", action="store_true", help="enable debug-level logging for grpc-proxy")


def proxy_config_from_args(args: argparse.Namespace) -> ProxyConfig:
    """A ProxyConfig from parsed flags, refusing the combinations etcd's grpc-proxy refuses."""
    if args.resolver_prefix and args.resolver_ttl < 1:
        raise ConfigError(f"invalid resolver-ttl {args.resolver_ttl}")
    if not args.resolver_prefix and args.resolver_ttl > 0:
        raise ConfigError(f'invalid resolver-prefix "{args.resolver_prefix}"')
    if args.resolver_prefix and not args.advertise_client_url:
        raise ConfigError(f'invalid advertise-client-url "{args.advertise_client_url}"')
    endpoints = [endpoint.strip() for endpoint in args.endpoints.split(",") if endpoint.strip()]
    if not endpoints:
        raise ConfigError("no endpoints given")
    return ProxyConfig(
        endpoints=endpoints,
        listen_addr=args.listen_addr,
        advertise_client_url=args.advertise_client_url,
        namespace=args.namespace,
        resolver_prefix=args.resolver_prefix,
        resolver_ttl=args.resolver_ttl if args.resolver_prefix else DEFAULT_RESOLVER_TTL,
        max_send_bytes=args.max_send_bytes,
        max_recv_bytes=args.max_recv_bytes,
        cert=args.cert,
        key=args.key,
        cacert=args.cacert,
        cert_file=args.cert_file,
        key_file=args.key_file,
        trusted_ca_file=args.trusted_ca_file,
        debug=args.debug,
    )
