"""The etcd v3 gRPC proxy: a stateless client of the cluster that serves the same API.

It caches serializable reads, coalesces identical watches and lease keep-alives, can confine its
clients to a key prefix (--namespace), and fails over between the cluster's endpoints.
"""

from pyetcd.proxy.config import ProxyConfig, add_proxy_arguments, proxy_config_from_args
from pyetcd.proxy.server import GrpcProxy, serve_proxy

__all__ = ["GrpcProxy", "ProxyConfig", "add_proxy_arguments", "proxy_config_from_args", "serve_proxy"]
