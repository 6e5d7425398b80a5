"""The lines etcd 3.4 logs at the moments scripts and harnesses wait for, in both of its formats.

Each function is called where etcd logs the same event: a member starting, a member added or
removed as the log applies it, attributes published, clients served, the cluster version set,
and leadership changes seen by the Raft node.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from pyetcd import SERVER_VERSION
from pyetcd.cluster_version import major_minor
from pyetcd.logs import NOTICE, log_event

server_log = logging.getLogger("pyetcd.server")
membership_log = logging.getLogger("pyetcd.membership")
api_log = logging.getLogger("pyetcd.api")
embed_log = logging.getLogger("pyetcd.embed")
raft_log = logging.getLogger("raft")


def starting_member(member_id: int, cluster_id: int) -> None:
    log_event(server_log, logging.INFO, "starting member %x in cluster %x", member_id, cluster_id,
              zap="starting local member", local_member_id=f"{member_id:x}", cluster_id=f"{cluster_id:x}")


def member_added(member_id: int, peer_urls: Sequence[str], local_id: int, cluster_id: int) -> None:
    log_event(membership_log, logging.INFO, "added member %x [%s] to cluster %x", member_id, " ".join(peer_urls),
              cluster_id, zap="added member", cluster_id=f"{cluster_id:x}", local_member_id=f"{local_id:x}",
              added_peer_id=f"{member_id:x}", added_peer_peer_urls=list(peer_urls))


def member_removed(member_id: int, local_id: int, cluster_id: int) -> None:
    log_event(membership_log, logging.INFO, "removed member %x from cluster %x", member_id, cluster_id,
              zap="removed member", cluster_id=f"{cluster_id:x}", local_member_id=f"{local_id:x}",
              removed_remote_peer_id=f"{member_id:x}")


def published(name: str, client_urls: Sequence[str], member_id: int, cluster_id: int) -> None:
    attributes = f"{{Name:{name} ClientURLs:[{' '.join(client_urls)}]}}"
    log_event(server_log, logging.INFO, "published %s to cluster %x", attributes, cluster_id,
              zap="published local member to cluster through raft", local_member_id=f"{member_id:x}",
              local_member_attributes=attributes, request_path=f"/0/members/{member_id:x}/attributes",
              cluster_id=f"{cluster_id:x}", publish_timeout="7s")


def serving_clients(listen_client_urls: Sequence[str], secure: Callable[[str], bool]) -> None:
    embed_log.info("ready to serve client requests", extra={"zap_msg": "", "zap_fields": {}})
    for url in listen_client_urls:
        address = urlsplit(url).netloc
        if secure(url):
            log_event(embed_log, NOTICE, "serving client requests on %s", address,
                      zap="serving client traffic securely", address=address)
        else:
            log_event(embed_log, NOTICE, "serving insecure client requests on %s, this is strongly discouraged!",
                      address, zap="serving client traffic insecurely; this is strongly discouraged!",
                      address=address)


def starting_server(cluster_version: str | None, member_id: int, cluster_id: int) -> None:
    """etcd's s.start line: the server version, and the cluster version if this member already knows it."""
    if cluster_version is None:
        log_event(server_log, logging.INFO, "starting server... [version: %s, cluster version: to_be_decided]",
                  SERVER_VERSION, zap="starting etcd server", local_member_id=f"{member_id:x}",
                  local_server_version=SERVER_VERSION, cluster_version="to_be_decided")
        return
    log_event(server_log, logging.INFO, "starting server... [version: %s, cluster version: %s]", SERVER_VERSION,
              major_minor(cluster_version), zap="starting etcd server", local_member_id=f"{member_id:x}",
              local_server_version=SERVER_VERSION, cluster_id=f"{cluster_id:x}",
              cluster_version=major_minor(cluster_version))


def cluster_version_set(old: str | None, new: str, local_id: int, cluster_id: int) -> None:
    """RaftCluster.SetVersion's line as the log applies a cluster version."""
    if old is None:
        log_event(membership_log, NOTICE, "set the initial cluster version to %s", major_minor(new),
                  zap="set initial cluster version", cluster_id=f"{cluster_id:x}", local_member_id=f"{local_id:x}",
                  cluster_version=major_minor(new))
    else:
        log_event(membership_log, NOTICE, "updated the cluster version from %s to %s", major_minor(old),
                  major_minor(new), zap="updated cluster version", cluster_id=f"{cluster_id:x}",
                  local_member_id=f"{local_id:x}", **{"from": major_minor(old)}, to=major_minor(new))


def cluster_version_recovered(version: str) -> None:
    """RaftCluster.Recover's line: a restarted member read the cluster version back from its store."""
    log_event(membership_log, logging.INFO, "set the cluster version to %s from store", major_minor(version),
              zap="set cluster version from store", cluster_version=major_minor(version))


def capabilities_enabled(version: str) -> None:
    """api.UpdateCapability's line, when the capabilities follow a higher cluster version."""
    log_event(api_log, logging.INFO, "enabled capabilities for version %s", major_minor(version),
              zap="enabled capabilities for version", cluster_version=major_minor(version))


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String for the short durations these lines print: `100ms`, `1.5s`, `250µs`."""
    nanos = round(seconds * 1e9)
    for unit, size in (("s", 10**9), ("ms", 10**6), ("µs", 10**3)):
        if nanos >= size:
            whole, rest = divmod(nanos, size)
            fraction = f"{rest:0{len(str(size)) - 1}d}".rstrip("0")
            return f"{whole}.{fraction}{unit}" if fraction else f"{whole}{unit}"
    return f"{nanos}ns"


def heartbeat_late(peer_id: int, interval_s: float, exceeded_s: float) -> None:
    """etcd's raft loop, when a heartbeat to a peer left more than twice the interval after the last one."""
    log_event(server_log, logging.WARNING, "failed to send out heartbeat on time (exceeded the %s timeout for %s, "
              "to %x)", go_duration(interval_s), go_duration(exceeded_s), peer_id,
              zap="leader failed to send out heartbeat on time; took too long, leader is overloaded likely from "
              "slow disk", to=f"{peer_id:x}", heartbeat_interval=go_duration(interval_s),
              expected_duration=go_duration(2 * interval_s), exceeded_duration=go_duration(exceeded_s))
    log_event(server_log, logging.WARNING, "server is likely overloaded", only="capnslog")


class LeaderLines:
    """raft's `became leader` and raft.node's `elected leader` / `lost leader`, from leader changes."""

    def __init__(self, member_id: int) -> None:
        self._member_id = member_id
        self._leader = 0

    def __call__(self, leader_id: int, term: int) -> None:
        me = self._member_id
        if leader_id == 0:
            if self._leader:
                raft_log.info("raft.node: %x lost leader %x at term %d", me, self._leader, term)
        else:
            if leader_id == me:
                raft_log.info("%x became leader at term %d", me, term)
            raft_log.info("raft.node: %x elected leader %x at term %d", me, leader_id, term)
        self._leader = leader_id
