"""EtcdServer's side of the cluster version: the leader's decision, applying it, and the version
every member answers the leader (pyetcd/cluster_version.py holds the rules)."""

from __future__ import annotations

import asyncio
import logging

import grpc

from etcdpb.etcdserverpb import raft_internal_pb2
from etcdpb.serverpb import peer_pb2, peer_pb2_grpc
from pyetcd import SERVER_VERSION, etcd_lines
from pyetcd.cluster_version import NOT_DECIDED, Capabilities, ClusterVersionMonitor, major_minor
from pyetcd.ids import format_id
from pyetcd.logs import log_event
from pyetcd.membership import Member
from pyetcd.server_core import ServerCore

log = logging.getLogger("pyetcd.server")


class ServerVersions(ServerCore):
    """The cluster version's hooks and calls (etcd's monitorVersions, updateClusterVersion, SetVersion)."""

    ready: asyncio.Event
    capabilities: Capabilities
    _version_channels: dict[str, grpc.aio.Channel]

    def _on_cluster_version_set(self, old: str | None, new: str) -> None:
        etcd_lines.cluster_version_set(old, new, self.member_id, self.cluster_id)
        if self.capabilities.update(new):
            etcd_lines.capabilities_enabled(new)
        self.counters.set_cluster_version(major_minor(new))

    async def _monitor_versions(self, monitor: ClusterVersionMonitor) -> None:
        """The leader decides once this member has published itself: etcd's check waits for the term's
        first commit, which a starting member reaches at about the same moment."""
        await self.ready.wait()
        await monitor.run()

    async def _propose_cluster_version(self, version: str) -> None:
        request = raft_internal_pb2.InternalRaftRequest()
        request.cluster_version_set.ver = version
        await self._propose_and_wait(request, type(None))

    async def _remote_server_version(self, member: Member) -> str | None:
        """A member's server version, asked on its peer URLs in turn (etcd's getVersion); None if none answers."""
        for url in member.peer_urls:
            try:
                channel = self._version_channels.get(url)
                if channel is None:
                    channel = self._version_channels[url] = await self.transport.open_channel(url)
                answer = await peer_pb2_grpc.PeerStub(channel).Version(peer_pb2.VersionRequest(), timeout=2.0)
            except (grpc.aio.AioRpcError, ValueError) as err:
                reason = err.details() if isinstance(err, grpc.aio.AioRpcError) else str(err)
                log_event(log, logging.WARNING, "failed to reach the peerURL(%s) of member %s (%s)", url,
                          format_id(member.id), reason, zap="failed to reach the peer URL", address=f"{url}/version",
                          remote_member_id=format_id(member.id), error=reason)
                continue
            return str(answer.etcdserver)
        log_event(log, logging.WARNING, "cannot get the version of member %s", format_id(member.id),
                  zap="failed to get version", remote_member_id=format_id(member.id))
        return None

    def cluster_version(self) -> str | None:
        """The cluster version this member has applied (`3.4.0`), None while undecided."""
        return self.membership.version

    def version_answer(self) -> peer_pb2.VersionResponse:
        """What this member answers the leader's version check (etcd's /version on a peer URL)."""
        return peer_pb2.VersionResponse(etcdserver=SERVER_VERSION, etcdcluster=self.membership.version or NOT_DECIDED)

