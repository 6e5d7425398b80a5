"""The etcd v3 gRPC proxy: a stateless client of the cluster that serves the same API.

It caches serializable reads, coalesces identical watches and lease keep-alives, can confine its
clients to a key prefix (--namespace), and fails over between the cluster's endpoints.
"""

from typing import TYPE_CHECKING, Any

from pyetcd.proxy.config import ProxyConfig, add_proxy_arguments, proxy_config_from_args

if TYPE_CHECKING:
    from pyetcd.proxy.server import GrpcProxy, serve_proxy


def __getattr__(name: str) -> Any:
    # The server (and with it gRPC) loads only when asked for: `grpc-proxy start` reads its flags
    # first, because gRPC takes its TLS cipher suites from the environment when it is first loaded.
    if name in ("GrpcProxy", "serve_proxy"):
        from pyetcd.proxy import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["GrpcProxy", "ProxyConfig", "add_proxy_arguments", "proxy_config_from_args", "serve_proxy"]
