"""The grpc-proxy itself: a client of the cluster serving the same etcd v3 API on its own address."""

from __future__ import annotations

import asyncio
import logging

import grpc
import grpc.aio

from etcdpb.etcdserverpb import rpc_pb2
from etcdpb.v3electionpb import v3election_pb2
from etcdpb.v3lockpb import v3lock_pb2
from pyetcd.proxy.cache import RangeCache
from pyetcd.proxy.cluster import MemberListProxy
from pyetcd.proxy.config import ProxyConfig
from pyetcd.proxy.forward import Route, forwarders
from pyetcd.proxy.handlers import service_handler
from pyetcd.proxy.kv import KVProxy
from pyetcd.proxy.lease import KeepAliveHub, LeaseKeepAliveProxy
from pyetcd.proxy.namespace import Namespace
from pyetcd.proxy.register import ProxyRegistration, ProxyResolver
from pyetcd.proxy.upstream import Upstream, client_credentials, endpoint_target
from pyetcd.proxy.watch import WatchProxy
from pyetcd.proxy.watch_broadcast import WatchHub
from pyetcd.tlsconfig import TLSInfo, self_cert
from pyetcd.tlscredentials import server_credentials

log = logging.getLogger("pyetcd.grpcproxy")

READS = Route(idempotent=True)


class GrpcProxy:
    """Everything one proxy runs: upstream channels, the caches and hubs, the gRPC server, registration."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.namespace = Namespace(config.namespace.encode()) if config.namespace else None
        self.upstream: Upstream | None = None
        self.cache = RangeCache()
        self.watch_hub: WatchHub | None = None
        self.keepalive_hub: KeepAliveHub | None = None
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self._registration: ProxyRegistration | None = None
        self._resolver: ProxyResolver | None = None

    @property
    def upstream_watch_count(self) -> int:
        """Upstream watches open now: fewer than downstream watchers when watches are coalesced."""
        return self.watch_hub.active_upstream_watches if self.watch_hub else 0

    async def start(self) -> None:
        config = self.config
        upstream = self.upstream = Upstream(
            config.endpoints, credentials=self._client_credentials(),
            max_send_bytes=config.max_send_bytes, max_recv_bytes=config.max_recv_bytes)
        self.watch_hub = WatchHub(upstream)
        self.keepalive_hub = KeepAliveHub(upstream)
        if config.advertise_client_url and config.resolver_prefix:
            self._resolver = ProxyResolver(upstream, config.resolver_prefix)
            self._registration = ProxyRegistration(upstream, config.resolver_prefix,
                                                   config.advertise_client_url, config.resolver_ttl)

        server = self._server = grpc.aio.server(options=[
            ("grpc.max_send_message_length", config.max_send_bytes),
            ("grpc.max_receive_message_length", config.max_recv_bytes),
        ])
        server.add_generic_rpc_handlers(self._handlers(upstream))
        address = endpoint_target(config.listen_addr)
        credentials = self._server_credentials()
        if credentials is not None:
            self.port = server.add_secure_port(address, credentials)
        else:
            self.port = server.add_insecure_port(address)
        if not self.port:
            raise OSError(f"cannot listen on {config.listen_addr}")
        await server.start()
        if self._resolver is not None:
            self._resolver.start()
        if self._registration is not None:
            self._registration.start()
        log.info("listening for gRPC proxy client requests on %s (endpoints %s)",
                 address, ",".join(upstream.targets))

    def _handlers(self, upstream: Upstream) -> tuple[grpc.GenericRpcHandler, ...]:
        assert self.watch_hub is not None and self.keepalive_hub is not None
        ns = self.namespace
        kv = KVProxy(upstream, self.cache, ns)
        watch = WatchProxy(self.watch_hub, upstream, ns)
        keepalive = LeaseKeepAliveProxy(self.keepalive_hub)
        members = MemberListProxy(upstream, self.config.advertise_client_url, self._resolver)

        kv_service = rpc_pb2.DESCRIPTOR.services_by_name["KV"]
        watch_service = rpc_pb2.DESCRIPTOR.services_by_name["Watch"]
        lease_service = rpc_pb2.DESCRIPTOR.services_by_name["Lease"]
        cluster_service = rpc_pb2.DESCRIPTOR.services_by_name["Cluster"]
        maintenance_service = rpc_pb2.DESCRIPTOR.services_by_name["Maintenance"]
        auth_service = rpc_pb2.DESCRIPTOR.services_by_name["Auth"]
        lock_service = v3lock_pb2.DESCRIPTOR.services_by_name["Lock"]
        election_service = v3election_pb2.DESCRIPTOR.services_by_name["Election"]

        lease_methods = forwarders(upstream, lease_service, {
            "LeaseTimeToLive": READS, "LeaseLeases": READS})
        lease_methods["LeaseKeepAlive"] = keepalive.LeaseKeepAlive
        cluster_methods = forwarders(upstream, cluster_service)
        cluster_methods["MemberList"] = members.MemberList
        maintenance_methods = forwarders(upstream, maintenance_service, {
            "Status": READS, "Hash": READS, "HashKV": READS, "Snapshot": READS})
        auth_methods = forwarders(upstream, auth_service, {
            "UserGet": READS, "UserList": READS, "RoleGet": READS, "RoleList": READS})
        lock_methods = forwarders(upstream, lock_service, {
            "Lock": Route(to_upstream=ns.lock_request, from_upstream=ns.lock_response),
            "Unlock": Route(to_upstream=ns.unlock_request),
        } if ns else {})
        election_methods = forwarders(upstream, election_service, {
            "Campaign": Route(to_upstream=ns.campaign_request, from_upstream=ns.campaign_response),
            "Proclaim": Route(to_upstream=ns.proclaim_request),
            "Leader": Route(True, ns.leader_request, ns.leader_response),
            "Observe": Route(True, ns.leader_request, ns.leader_response),
            "Resign": Route(to_upstream=ns.resign_request),
        } if ns else {"Leader": READS, "Observe": READS})

        return (
            service_handler(kv_service, {name: getattr(kv, name) for name in
                                         ("Range", "Put", "DeleteRange", "Txn", "Compact")}),
            service_handler(watch_service, {"Watch": watch.Watch}),
            service_handler(lease_service, lease_methods),
            service_handler(cluster_service, cluster_methods),
            service_handler(maintenance_service, maintenance_methods),
            service_handler(auth_service, auth_methods),
            service_handler(lock_service, lock_methods),
            service_handler(election_service, election_methods),
        )

    def _client_credentials(self) -> grpc.ChannelCredentials | None:
        config = self.config
        secure = any(endpoint.strip().startswith("https://") for endpoint in config.endpoints)
        if secure or config.cacert or config.cert:
            return client_credentials(config.cert, config.key, config.cacert)
        return None

    def _server_credentials(self) -> grpc.ServerCredentials | None:
        """TLS towards the proxy's clients: the given certificate, or (with --auto-tls) a self-signed one."""
        config = self.config
        if config.cert_file or config.key_file or config.trusted_ca_file:
            # etcd's grpc-proxy asks for client certificates when it has a CA to check them against.
            return server_credentials(TLSInfo(cert_file=config.cert_file, key_file=config.key_file,
                                              trusted_ca_file=config.trusted_ca_file))
        if config.auto_tls:
            address = endpoint_target(config.listen_addr)
            return server_credentials(self_cert(config.auto_tls_dir, [address]))
        return None

    async def stop(self) -> None:
        """Stop serving, withdraw the registration and close every upstream stream and channel."""
        if self._server is not None:
            await self._server.stop(grace=0.2)
        if self._registration is not None:
            await self._registration.stop()
        if self._resolver is not None:
            await self._resolver.stop()
        if self.watch_hub is not None:
            await self.watch_hub.close()
        if self.keepalive_hub is not None:
            await self.keepalive_hub.close()
        if self.upstream is not None:
            await self.upstream.close()


async def serve_proxy(config: ProxyConfig, *, ready: asyncio.Event | None = None,
                      stop: asyncio.Event | None = None) -> None:
    """Run a proxy until `stop` is set (forever without one); `ready` is set once it serves."""
    proxy = GrpcProxy(config)
    try:
        await proxy.start()
        if ready is not None:
            ready.set()
        await (stop or asyncio.Event()).wait()
    finally:
        await proxy.stop()
