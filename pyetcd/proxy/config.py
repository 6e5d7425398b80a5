"""The grpc-proxy's settings, and the `grpc-proxy start` flags (named as etcd 3.4 names them)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from cryptography import x509

from pyetcd.config import ConfigError
from pyetcd.limits import DEFAULT_MAX_REQUEST_BYTES, GRPC_OVERHEAD_BYTES
from pyetcd.tlsconfig import CipherSuiteError, grpc_cipher_list, split_cipher_suites

DEFAULT_MAX_SEND_BYTES = DEFAULT_MAX_REQUEST_BYTES + GRPC_OVERHEAD_BYTES  # etcd's request limit plus headroom
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
    # A self-signed certificate for the proxy's clients, in <data_dir>/fixtures/proxy (etcd's --auto-tls).
    auto_tls: bool = False
    data_dir: str = "default.proxy"
    # TLS 1.2 suites offered to the proxy's clients (etcd's names); applied by the command line.
    listen_cipher_suites: tuple[str, ...] = ()
    debug: bool = False

    @property
    def auto_tls_dir(self) -> str:
        return f"{self.data_dir}/fixtures/proxy"


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
    parser.add_argument("--listen-cipher-suites", default="",
                        help="Comma-separated list of supported TLS cipher suites between client/proxy "
                             "(empty will be auto-populated)")
    parser.add_argument("--auto-tls", action="store_true", help="proxy TLS using generated certificates")
    parser.add_argument("--data-dir", default="default.proxy", help="Data directory for persistent data")
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
    cipher_suites = split_cipher_suites(args.listen_cipher_suites)
    if cipher_suites:
        try:
            grpc_cipher_list(cipher_suites)
        except CipherSuiteError as err:
            raise ConfigError(str(err)) from None
        if not (args.cert_file or args.key_file or args.trusted_ca_file or args.auto_tls):
            raise ConfigError("--listen-cipher-suites needs TLS towards the proxy's clients "
                              "(--cert-file and --key-file, or --auto-tls)")
    if (args.cert_file or args.key_file or args.trusted_ca_file) and not (args.cert_file and args.key_file):
        raise ConfigError(f"KeyFile and CertFile must both be present[key: {args.key_file}, cert: {args.cert_file}]")
    if args.cert:
        refuse_named_client_certificate(args.cert)
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
        auto_tls=args.auto_tls,
        data_dir=args.data_dir,
        listen_cipher_suites=cipher_suites,
        debug=args.debug,
    )


def refuse_named_client_certificate(path: str) -> None:
    """etcd's grpc-proxy dials the cluster only with a certificate whose subject has no Common Name.

    With client-cert auth a CN would make every request the proxy forwards run as that user.
    """
    try:
        with open(path, "rb") as fh:
            certificate = x509.load_pem_x509_certificate(fh.read())
    except (OSError, ValueError) as err:
        raise ConfigError(str(err)) from None
    names = certificate.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    if names:
        value = names[0].value
        raise ConfigError(f"cert has non empty Common Name ({value if isinstance(value, str) else value.decode()})")
