"""EtcdServer: proposes requests through Raft, waits for them to apply, serves linearizable reads.

This is the hub between the Raft node (raft/node.py) and the store (storage/mvcc). It serves no API itself:
the command (pyetcd/cli.py) puts the gRPC services in front of it once `ready` is set, and registers the peer
service on its transport before `start`. Writes never bypass the log, even with one member: a request is
encoded, proposed, committed, applied by the Applier on every member, and the proposer's waiter is woken with
the outcome. Linearizable reads wait for a ReadIndex and for the apply loop to reach it; serializable reads
read the local store at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import grpc

from etcdpb.etcdserverpb import raft_internal_pb2, rpc_pb2
from etcdpb.serverpb import peer_pb2, peer_pb2_grpc
from pyetcd import errors, etcd_lines
from pyetcd.apply import Applier, ApplyOutcome, MembershipChanges, encode_conf_change_context
from pyetcd.apply_kv import is_txn_read_only, is_txn_serializable, read_range, read_txn
from pyetcd.auth.checks import check_range, check_txn
from pyetcd.auth.store import AuthStore
from pyetcd.auth.tokens import new_token_provider
from pyetcd.cluster_version import Capabilities, ClusterVersionMonitor, major_minor
from pyetcd.compactor import new_compactor
from pyetcd.config import ServerConfig, configured_member_id
from pyetcd.counters import DiskObservers, ServerCounters
from pyetcd.datadir import MemberDirLocks, prepare_member_dirs
from pyetcd.diskspace import DiskSpaceGuard
from pyetcd.identity import Identity
from pyetcd.ids import RequestIdGenerator, format_id
from pyetcd.ids import member_id as derive_member_id
from pyetcd.lessor import Lessor
from pyetcd.membership import CLUSTER_BUCKET, CLUSTER_VERSION_KEY, MEMBERS_BUCKET, REMOVED_BUCKET, Member, Membership
from pyetcd.server_auth import ServerAuth
from pyetcd.server_core import AppliedIndexWaiters
from pyetcd.server_leases import ServerLeases
from pyetcd.server_maintenance import ServerMaintenance
from pyetcd.server_members import ServerMembers
from pyetcd.server_versions import ServerVersions
from pyetcd.tlsconfig import TLSInfo, is_secure_url, with_auto_tls
from pyetcd.tlscredentials import PeerSecurity
from raft.core import ConfChange, ConfChangeType, ConfState, ProposalDropped, Snapshot, SnapshotMetadata
from raft.node import ApplyBatch, NodeConfig, RaftNode
from raft.peer_traffic import PeerTraffic
from raft.transport import GrpcTransport, open_peer_channel
from storage.mvcc import MvccStore, QuotaExceededError
from storage.raftlog import DurableLog

log = logging.getLogger("pyetcd.server")
tls_log = logging.getLogger("pyetcd.embed")

STORE_FLUSH_INTERVAL_S = 1.0
REMOVED_MESSAGE = "the member has been permanently removed from the cluster"


class EtcdServer(ServerMembers, ServerMaintenance, ServerLeases, ServerAuth, ServerVersions):
    """One pyetcd member: start-up and shut-down, the apply loop, KV, and the background loops."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.member_id = 0
        self.cluster_id = 0
        self.store: MvccStore
        self.node: RaftNode
        self.transport: GrpcTransport
        self.lessor: Lessor
        self.membership = Membership()
        self.applier: Applier
        self._waiters: dict[int, asyncio.Future[ApplyOutcome]] = {}
        self._applied = AppliedIndexWaiters()
        self._ids: RequestIdGenerator
        self._tasks: list[asyncio.Task[None]] = []
        self._peer_services: list[Callable[[grpc.aio.Server], None]] = []
        self._peer_channels: dict[int, grpc.aio.Channel] = {}
        self._snapshot_index = 0
        self._revoking: dict[int, float] = {}
        self.ready = asyncio.Event()
        """Set once our name and client URLs are in the log: then clients may be served (etcd's ReadyNotify)."""
        self.stopped = asyncio.Event()
        self.stop_reason = ""
        self.failed = False
        """Whether the member stopped because something broke (the process then exits non-zero)."""
        self._initial_peers: list[Member] = []
        self._dir_locks = MemberDirLocks(config.store_dir, config.raft_log_dir)
        self.client_tls = config.client_tls
        self.peer_tls = config.peer_tls
        """The TLS settings in use: the flags', or the certificates auto-TLS made."""
        self.counters = ServerCounters()
        self.disk_observers: DiskObservers | None = None
        self.capabilities = Capabilities()
        """The cluster version whose capabilities are enabled (etcd's api.UpdateCapability)."""
        self._version_channels: dict[str, grpc.aio.Channel] = {}

    # -- start-up ------------------------------------------------------------------------------

    def add_peer_service(self, register: Callable[[grpc.aio.Server], None]) -> None:
        """Have `register` add a service to the peer listener beside Raft's (call before `start`)."""
        self._peer_services.append(register)

    async def start(self) -> None:
        """Open the member and start Raft and the background loops; `ready` is set once it may serve."""
        config = self.config
        prepare_member_dirs(config)
        # Like etcd, a second process on this data dir waits here and never serves while the first runs.
        if not await self._dir_locks.acquire(self.stopped):
            return
        self._set_up_tls()
        identity = Identity.load(config.member_dir)
        # The Raft log is fsync'd per Ready and compacted only after the store is synced, so the
        # store need not fsync each apply batch: entries it loses on power failure are replayed.
        self.store = MvccStore(config.store_dir, quota_bytes=config.quota_backend_bytes, sync_commits=False,
                               compaction_batch_limit=config.compaction_batch_limit)
        log_store = DurableLog.open(config.raft_log_dir)
        if self.disk_observers is not None:
            log_store.fsync_observer = self.disk_observers.wal_fsync
            self.store.commit_observer = self.disk_observers.backend_commit
        bootstrap: list[ConfChange] | None = None
        if identity is not None:
            log.info("restarting member from %s (ignoring --initial-cluster flags)", config.data_dir)
            self._load_membership(identity.cluster_id)
        elif config.initial_cluster_state == "new":
            identity = Identity(configured_member_id(config), config.initial_cluster_id())
            bootstrap = self._bootstrap_conf_changes()
            self.membership = Membership(identity.cluster_id)
        else:
            identity = await self._join_existing_cluster()
        self.member_id, self.cluster_id = identity.member_id, identity.cluster_id
        etcd_lines.starting_member(self.member_id, self.cluster_id)
        self._ids = RequestIdGenerator(self.member_id)
        self.lessor = Lessor(min_ttl=self.config.min_lease_ttl)
        self.lessor.restore(self.store.leases())
        self.auth = AuthStore(new_token_provider(config.auth_token, config.auth_token_ttl_s))
        self.auth.load(self.store)
        self.applier = Applier(self.store, self.membership, self.lessor,
                               MembershipChanges(self._apply_conf_change_to_raft, self._on_member_added,
                                                 self._on_member_removed, self._on_member_updated,
                                                 self._on_cluster_version_set),
                               self.auth)
        self._applied.advance(self.store.consistent_index)
        self._snapshot_index = self.store.consistent_index
        self.transport = GrpcTransport(self.member_id, self.cluster_id, list(config.listen_peer_urls),
                                       is_removed=lambda peer: peer in self.membership.removed,
                                       on_removed=lambda: self._shut_down_removed(),
                                       dial_timeout=1.0 + config.election_ms / 1000,
                                       security=PeerSecurity(self.peer_tls), traffic=self._peer_traffic())
        for register in self._peer_services:
            self.transport.add_services(register)
        for member in self.membership.members() + self._initial_peers:
            if member.id != self.member_id:
                self.transport.add_peer(member.id, list(member.peer_urls))
        node_config = NodeConfig(member_id=self.member_id, heartbeat_ms=config.heartbeat_ms,
                                 election_ms=config.election_ms, pre_vote=config.pre_vote,
                                 snapshot_catchup_entries=config.snapshot_catchup_entries)
        self.node = RaftNode(node_config, log_store, self.transport, applied_index=self.store.consistent_index,
                             snapshot_provider=self._snapshot_for_follower)
        await self.transport.start()
        await self.node.start(bootstrap_peers=bootstrap)
        identity.save(config.member_dir)
        self.node.add_leader_listener(self._on_leader_change)
        self.node.add_leader_listener(self.counters.on_leader_change)
        self.node.add_leader_listener(etcd_lines.LeaderLines(self.member_id))
        self.node.add_leader_listener(lambda leader_id, term: self.transport.traffic.reset_heartbeats())
        versions = ClusterVersionMonitor(member_id=self.member_id, is_leader=lambda: self.node.is_leader,
                                         members=lambda: self.membership.members(),
                                         current=lambda: self.membership.version,
                                         remote_version=self._remote_server_version,
                                         propose=self._propose_cluster_version)
        self.node.add_leader_listener(versions.on_leader_change)
        etcd_lines.starting_server(self.membership.version, self.member_id, self.cluster_id)
        self._fast_forward_election(bootstrap)
        publish = asyncio.create_task(self._publish_attributes(), name="publish")
        self._tasks = [asyncio.create_task(self._apply_loop(), name="apply"), publish,
                       asyncio.create_task(self._monitor_versions(versions), name="cluster-version"),
                       asyncio.create_task(self._lease_expiry_loop(), name="lease-expiry"),
                       asyncio.create_task(self._auto_compaction_loop(), name="auto-compaction"),
                       asyncio.create_task(self._store_flush_loop(), name="store-flush"),
                       asyncio.create_task(DiskSpaceGuard.for_member(self).run(), name="disk-space")]

    def _peer_traffic(self) -> PeerTraffic:
        """The transport's counts, kept in this member's counters for /metrics."""
        traffic = self.counters.peer_traffic
        traffic.heartbeat_interval_s = self.config.heartbeat_ms / 1000
        traffic.on_round_trip = self.counters.observe_round_trip
        traffic.on_late_heartbeat = self._on_late_heartbeat
        return traffic

    def _on_late_heartbeat(self, peer_id: int, exceeded_s: float) -> None:
        self.counters.heartbeat_send_failures += 1
        etcd_lines.heartbeat_late(peer_id, self.config.heartbeat_ms / 1000, exceeded_s)

    def _fast_forward_election(self, bootstrap: list[ConfChange] | None) -> None:
        """etcd's --initial-election-tick-advance for a lone voter: campaign after one tick, not a timeout."""
        voters = [cc.node_id for cc in bootstrap] if bootstrap else [m.id for m in self.membership.voters()]
        if not self.config.initial_election_tick_advance or voters != [self.member_id]:
            return
        ticks = self.config.election_ticks - 1
        log.info("%s as single-node; fast-forwarding %d ticks (election ticks %d)", format_id(self.member_id),
                 ticks, self.config.election_ticks)
        self.node.advance_ticks(ticks)

    def _set_up_tls(self) -> None:
        """Auto-TLS certificates and etcd's start-up notes about TLS on each side."""
        config = self.config
        self.peer_tls = with_auto_tls(config.peer_tls, config.peer_auto_tls, config.peer_auto_tls_dir,
                                      config.listen_peer_urls, "peer")
        self.client_tls = with_auto_tls(config.client_tls, config.client_auto_tls, config.client_auto_tls_dir,
                                        config.listen_client_urls, "client")
        if not self.peer_tls.empty:
            tls_log.info("peerTLS: %s", self.peer_tls)
        _warn_plain_urls(config.listen_peer_urls, self.peer_tls, "peer", "--peer-client-cert-auth")
        if not self.client_tls.empty:
            tls_log.info("ClientTLS: %s", self.client_tls)
        _warn_plain_urls(config.listen_client_urls, self.client_tls, "client", "--client-cert-auth")

    def _bootstrap_conf_changes(self) -> list[ConfChange]:
        """One ADD_NODE per --initial-cluster member, carrying the member record (etcd's StartNode peers)."""
        changes = []
        for name, urls in self.config.initial_peer_urls().items():
            member = Member(derive_member_id(urls, self.config.initial_cluster_token), tuple(urls), name=name)
            changes.append(ConfChange(ConfChangeType.ADD_NODE, member.id, encode_conf_change_context(member)))
        return sorted(changes, key=lambda cc: cc.node_id)

    def _load_membership(self, cluster_id: int) -> None:
        """The membership and cluster version the store holds (etcd's RaftCluster.Recover)."""
        members = [Member.decode(value) for _, value in self.store.meta_items(MEMBERS_BUCKET)]
        removed = {int(key.decode(), 16) for key, _ in self.store.meta_items(REMOVED_BUCKET)}
        stored_version = self.store.meta_get(CLUSTER_BUCKET, CLUSTER_VERSION_KEY)
        version = stored_version.decode() if stored_version else None
        self.membership = Membership(cluster_id, members, removed, version)
        if version is not None:
            if self.capabilities.update(version):
                etcd_lines.capabilities_enabled(version)
            etcd_lines.cluster_version_recovered(version)
            self.counters.set_cluster_version(major_minor(version))

    async def _join_existing_cluster(self) -> Identity:
        """--initial-cluster-state=existing: ask the other --initial-cluster members who we are."""
        own_urls = set(self.config.initial_advertise_peer_urls)
        peers = [url for _, url in self.config.initial_cluster if url not in own_urls]
        for url in peers:
            try:
                async with await open_peer_channel(url, PeerSecurity(self.peer_tls)) as channel:
                    stub = peer_pb2_grpc.PeerStub(channel)
                    answer = await stub.Cluster(peer_pb2.ClusterRequest(), timeout=2.0)
            except grpc.aio.AioRpcError:
                continue
            members = [Member(m.id, tuple(m.peer_urls), m.name, tuple(m.client_urls), m.is_learner)
                       for m in answer.members]
            me = next((m for m in members if set(m.peer_urls) == own_urls), None)
            if me is None:
                raise errors.StartupError("error validating peerURLs: member count is unequal "
                                          "(this member's peer URLs are not in the cluster it was told to join)")
            if me.id in answer.removed_ids:
                raise errors.StartupError(REMOVED_MESSAGE)
            # The membership itself is rebuilt by replaying the log (or from a snapshot); the
            # remote view only lets the transport reach the peers until then.
            self.membership = Membership(answer.cluster_id, removed=set(answer.removed_ids))
            self._initial_peers = [m for m in members if m.id != me.id]
            return Identity(me.id, answer.cluster_id)
        raise errors.StartupError("cannot fetch cluster info from peer urls: could not retrieve cluster "
                                  "information from the given URLs")

    # -- shut-down -----------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop the member (its client listeners are stopped first); a leader hands leadership over first,
        as etcd does on shutdown."""
        if getattr(self, "node", None) is not None and self.node.is_leader and len(self.membership.voters()) > 1:
            target = self._best_transferee()
            if target:
                log.info("leader %s transfers leadership to %s before shutting down",
                         format_id(self.member_id), format_id(target))
                with contextlib.suppress(TimeoutError, ProposalDropped):
                    await self.node.transfer_leadership(target, timeout=self.config.election_ms / 1000)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if getattr(self, "node", None) is not None:
            await self.node.stop()
        if getattr(self, "transport", None) is not None:
            await self.transport.stop()
        for channel in (*self._peer_channels.values(), *self._version_channels.values()):
            await channel.close()
        if getattr(self, "store", None) is not None:
            self.store.sync()
            self.store.close()
        self._dir_locks.release()
        self.stopped.set()

    def _shut_down_removed(self) -> None:
        if self.stop_reason:
            return
        self.stop_reason = REMOVED_MESSAGE
        log.warning(REMOVED_MESSAGE)
        # A removed leader's core hands over with TIMEOUT_NOW (thesis §4.2.2); let the Ready that
        # carries it reach the transport before we stop, or the rest wait an election timeout.
        asyncio.get_running_loop().call_later(2 * self.config.heartbeat_ms / 1000, self.stopped.set)


    # -- the apply loop ------------------------------------------------------------------------

    async def _apply_loop(self) -> None:
        while True:
            batch: ApplyBatch = await self.node.apply_queue.get()
            try:
                self._apply_batch(batch)
            except Exception:  # pragma: no cover - an apply failure means state is unknown: stop
                log.exception("apply failed; stopping")
                self.fail("apply failed")
                raise
            # The Raft driver waits for this before advancing past a conf change (raft/node.py).
            self.node.apply_queue.task_done()

    def _apply_batch(self, batch: ApplyBatch) -> None:
        if batch.snapshot is not None and not batch.snapshot.is_empty:
            self._install_snapshot(batch.snapshot)
        if batch.entries:
            started = time.perf_counter()
            applied = self.applier.apply_entries(batch.entries)
            if time.perf_counter() - started > self.config.warning_apply_duration_s:
                self.counters.slow_applies += 1
            for action in applied.after_commit:
                action()
            for outcome in applied.outcomes:
                if isinstance(outcome.error, QuotaExceededError) and self.node.is_leader:
                    self.raise_no_space_alarm()
                waiter = self._waiters.pop(outcome.request_id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(outcome)
            self._applied.advance(batch.entries[-1].index)
            self._maybe_snapshot()

    def _install_snapshot(self, snapshot: Snapshot) -> None:
        """A follower too far behind receives the leader's whole store (§7) and adopts its state."""
        if snapshot.metadata.index <= self.store.consistent_index:
            return
        log.info("installing snapshot at index %d", snapshot.metadata.index)
        self.store.replace_from_snapshot(snapshot.data)
        old_peers = {m.id for m in self.membership.members()}
        self._load_membership(self.cluster_id)
        self.applier.membership = self.membership
        self.applier.reload_alarms()
        self.auth.load(self.store)
        self.lessor.restore(self.store.leases())
        for member in self.membership.members():
            if member.id != self.member_id:
                if member.id in old_peers:
                    self.transport.update_peer(member.id, list(member.peer_urls))
                else:
                    self.transport.add_peer(member.id, list(member.peer_urls))
        for gone in old_peers - {m.id for m in self.membership.members()} - {self.member_id}:
            self.transport.remove_peer(gone)
        self._applied.advance(snapshot.metadata.index)
        self._snapshot_index = snapshot.metadata.index

    def _maybe_snapshot(self) -> None:
        applied = self.store.consistent_index
        if applied - self._snapshot_index < self.config.snapshot_count:
            return
        self.store.sync()
        self.node.create_snapshot(applied, self.node.status().conf_state)
        self._snapshot_index = applied

    def _snapshot_for_follower(self) -> Snapshot:
        """The leader's current applied state, sent instead of the log it no longer has (§7)."""
        metadata = SnapshotMetadata(index=self.store.consistent_index, term=self.store.consistent_term,
                                    conf_state=self.node.status().conf_state)
        return Snapshot(metadata=metadata, data=self.store.snapshot_bytes())

    # -- membership side effects ---------------------------------------------------------------

    def _apply_conf_change_to_raft(self, cc: ConfChange) -> ConfState:
        return self.node.apply_conf_change(cc)

    def _on_member_added(self, member: Member) -> None:
        etcd_lines.member_added(member.id, member.peer_urls, self.member_id, self.cluster_id)
        if member.id != self.member_id:
            self.transport.add_peer(member.id, list(member.peer_urls))

    def _on_member_removed(self, member_id: int) -> None:
        etcd_lines.member_removed(member_id, self.member_id, self.cluster_id)
        if member_id == self.member_id:
            self._shut_down_removed()
            return
        self.transport.remove_peer(member_id)
        channel = self._peer_channels.pop(member_id, None)
        if channel is not None:
            asyncio.ensure_future(channel.close())

    def _on_member_updated(self, member: Member) -> None:
        if member.id != self.member_id:
            self.transport.update_peer(member.id, list(member.peer_urls))

    async def _publish_attributes(self) -> None:
        """Announce our name and client URLs through the log, until it is applied (etcd's publish)."""
        request = raft_internal_pb2.InternalRaftRequest()
        request.member_attributes_set.member_ID = self.member_id
        request.member_attributes_set.name = self.config.name
        request.member_attributes_set.client_urls.extend(self.config.advertise_client_urls)
        while True:
            try:
                await self._propose_and_wait(request, type(None), timeout=self.config.election_ms / 1000 * 5)
                etcd_lines.published(self.config.name, self.config.advertise_client_urls, self.member_id,
                                     self.cluster_id)
                # Like etcd (ReadyNotify), serve clients only once our name and client URLs are in the
                # log: before that, members would be listed without them.
                self.ready.set()
                return
            except (TimeoutError, errors.EtcdError, ProposalDropped):
                await asyncio.sleep(self.config.heartbeat_ms / 1000 * 2)

    # -- KV ------------------------------------------------------------------------------------

    async def range(self, req: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        if not req.serializable:
            await self.linearizable_barrier()
        return await self.serialized_read(lambda info: check_range(self.auth, info, req),
                                          lambda: read_range(self.store, req, with_header=True))

    async def put(self, req: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
        request = raft_internal_pb2.InternalRaftRequest()
        request.put.CopyFrom(req)
        response = await self._propose_and_wait(request, rpc_pb2.PutResponse)
        return response

    async def delete_range(self, req: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
        request = raft_internal_pb2.InternalRaftRequest()
        request.delete_range.CopyFrom(req)
        return await self._propose_and_wait(request, rpc_pb2.DeleteRangeResponse)

    async def txn(self, req: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        if is_txn_read_only(req):
            # A txn that cannot write is a read: ReadIndex (unless all serializable), then a read view.
            if not is_txn_serializable(req):
                await self.linearizable_barrier()
            response = await self.serialized_read(lambda info: check_txn(self.auth, info, req),
                                                  lambda: read_txn(self.store, req))
            return response
        request = raft_internal_pb2.InternalRaftRequest()
        request.txn.CopyFrom(req)
        return await self._propose_and_wait(request, rpc_pb2.TxnResponse)

    async def compact(self, req: rpc_pb2.CompactionRequest) -> rpc_pb2.CompactionResponse:
        current = self.store.current_revision
        if req.revision > current:
            raise errors.ErrFutureRev
        if req.revision <= self.store.compact_revision:
            raise errors.ErrCompacted
        request = raft_internal_pb2.InternalRaftRequest()
        request.compaction.CopyFrom(req)
        response = await self._propose_and_wait(request, rpc_pb2.CompactionResponse)
        if req.physical:
            # etcd answers a physical compaction once its deletions are on disk, not just applied.
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self.store.wait_compacted, req.revision)
            await loop.run_in_executor(None, self.store.sync)
        return response

    # -- auto compaction -----------------------------------------------------------------------

    async def _store_flush_loop(self) -> None:
        """Bound what a power failure can make the store replay from the log (etcd's backend batch interval)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(STORE_FLUSH_INTERVAL_S)
            try:
                await loop.run_in_executor(None, self.store.sync)
            except Exception as err:
                log.critical("failed to flush the store: %r", err)
                self.fail(f"failed to flush the store: {err}")
                return

    def fail(self, reason: str) -> None:
        """Stop the member because something broke; the process exits with status 1, as etcd's does."""
        if not self.stop_reason:
            self.stop_reason = reason
        self.failed = True
        self.stopped.set()

    async def _auto_compaction_loop(self) -> None:
        """--auto-compaction-mode/--auto-compaction-retention, run as etcd's v3compactor runs them."""
        # The schedule (etcd's 5-minute revision check, periodic sampling) lives in pyetcd/compactor.py.
        compactor = new_compactor(self.config.auto_compaction_mode, self.config.auto_compaction_retention_value,
                                  current_revision=lambda: self.store.current_revision,
                                  compact=lambda revision: self.compact(rpc_pb2.CompactionRequest(revision=revision)),
                                  is_leader=lambda: self.node.is_leader)
        if compactor is not None:
            await compactor.run()



def _warn_plain_urls(urls: tuple[str, ...], tls: TLSInfo, side: str, auth_flag: str) -> None:
    """etcd's warnings for plain-text URLs on a side that has certificates or client-cert auth."""
    for url in urls:
        if is_secure_url(url):
            continue
        if not tls.empty:
            tls_log.warning("The scheme of %s url %s is HTTP while %s key/cert files are presented. "
                        "Ignored %skey/cert files.", side, url, "peer", "peer " if side == "peer" else "")
        if tls.client_cert_auth:
            tls_log.warning("The scheme of %s url %s is HTTP while client cert auth (%s) is enabled. "
                        "Ignored client cert auth for this url.", side, url, auth_flag)


__all__ = ["EtcdServer", "Identity"]
