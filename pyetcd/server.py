"""EtcdServer: proposes requests through Raft, waits for them to apply, serves linearizable reads.

This is the hub between the gRPC services (pyetcd/api), the Raft node (raft/node.py) and the
store (storage/mvcc). Writes never bypass the log, even with one member: a request is encoded,
proposed, committed, applied by the Applier on every member, and the proposer's waiter is
woken with the outcome. Linearizable reads wait for a ReadIndex and for the apply loop to
reach it; serializable reads read the local store at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import grpc

from etcdpb.etcdserverpb import raft_internal_pb2, rpc_pb2
from etcdpb.serverpb import peer_pb2, peer_pb2_grpc
from pyetcd import errors
from pyetcd.apply import Applier, ApplyOutcome, MembershipChanges, encode_conf_change_context, txn_writes
from pyetcd.compactor import new_compactor
from pyetcd.config import ServerConfig, configured_member_id
from pyetcd.ids import RequestIdGenerator, format_id
from pyetcd.ids import member_id as derive_member_id
from pyetcd.lease import Lessor
from pyetcd.membership import MEMBERS_BUCKET, REMOVED_BUCKET, Member, Membership
from raft.core import ConfChange, ConfChangeType, ConfState, ProposalDropped, Snapshot, SnapshotMetadata
from raft.node import ApplyBatch, NodeConfig, RaftNode
from raft.transport import GrpcTransport
from storage.mvcc import MvccStore, QuotaExceededError
from storage.raftlog import DurableLog

log = logging.getLogger("pyetcd.server")

SERVER_VERSION = "3.4.23"
"""The etcd server version whose API pyetcd speaks (clients gate features on it)."""
CLUSTER_VERSION = "3.4.0"
HEALTH_INTERVAL_S = 5.0
"""etcd refuses a reconfiguration unless peers have been connected this long (HealthInterval)."""
GRPC_OVERHEAD_BYTES = 512 * 1024
STORE_FLUSH_INTERVAL_S = 1.0
REMOVED_MESSAGE = "the member has been permanently removed from the cluster"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who this member is; kept beside the data, never replicated."""

    member_id: int
    cluster_id: int

    @staticmethod
    def path(config: ServerConfig) -> str:
        return os.path.join(config.member_dir, "identity.json")

    @staticmethod
    def load(config: ServerConfig) -> Identity | None:
        try:
            with open(Identity.path(config), encoding="utf-8") as fh:
                raw = json.load(fh)
        except FileNotFoundError:
            return None
        return Identity(int(raw["member_id"], 16), int(raw["cluster_id"], 16))

    def save(self, config: ServerConfig) -> None:
        os.makedirs(config.member_dir, exist_ok=True)
        tmp = Identity.path(config) + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"member_id": format_id(self.member_id), "cluster_id": format_id(self.cluster_id)}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, Identity.path(config))


class AppliedIndexWaiters:
    """Futures waiting for the apply loop to reach an index (linearizable reads)."""

    def __init__(self) -> None:
        self.applied_index = 0
        self._heap: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = 0

    async def wait_for(self, index: int) -> None:
        if index <= self.applied_index:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._heap, (index, self._seq, future))
        await future

    def advance(self, index: int) -> None:
        self.applied_index = max(self.applied_index, index)
        while self._heap and self._heap[0][0] <= self.applied_index:
            _, _, future = heapq.heappop(self._heap)
            if not future.done():
                future.set_result(None)


def host_port(url: str) -> str:
    """`http://host:port` -> `host:port` for gRPC."""
    parts = urlsplit(url)
    return parts.netloc if parts.netloc else url


class EtcdServer:
    """One pyetcd member."""

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
        self._grpc_server: grpc.aio.Server | None = None
        self._peer_channels: dict[int, grpc.aio.Channel] = {}
        self._snapshot_index = 0
        self._revoking: dict[int, float] = {}
        self.stopped = asyncio.Event()
        self.stop_reason = ""
        self._published = False
        self._initial_peers: list[Member] = []

    # -- start-up ------------------------------------------------------------------------------

    async def start(self) -> None:
        config = self.config
        os.makedirs(config.store_dir, exist_ok=True)
        identity = Identity.load(config)
        # The Raft log is fsync'd per Ready and compacted only after the store is synced, so the
        # store need not fsync each apply batch: entries it loses on power failure are replayed.
        self.store = MvccStore(config.store_dir, quota_bytes=config.quota_backend_bytes, sync_commits=False)
        log_store = DurableLog.open(config.raft_log_dir)
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
        self._ids = RequestIdGenerator(self.member_id)
        self.lessor = Lessor(min_ttl=self.config.min_lease_ttl)
        self.lessor.restore(self.store.leases())
        self.applier = Applier(self.store, self.membership, self.lessor, config.min_lease_ttl,
                               MembershipChanges(self._apply_conf_change_to_raft, self._on_member_added,
                                                 self._on_member_removed, self._on_member_updated))
        self._applied.advance(self.store.consistent_index)
        self._snapshot_index = self.store.consistent_index
        self.transport = GrpcTransport(self.member_id, self.cluster_id, list(config.listen_peer_urls),
                                       is_removed=lambda peer: peer in self.membership.removed,
                                       on_removed=lambda: self._shut_down_removed())
        self.transport.add_services(self._register_peer_service)
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
        identity.save(config)
        self.node.add_leader_listener(self._on_leader_change)
        publish = asyncio.create_task(self._publish_attributes(), name="publish")
        self._tasks = [asyncio.create_task(self._apply_loop(), name="apply"), publish,
                       asyncio.create_task(self._lease_expiry_loop(), name="lease-expiry"),
                       asyncio.create_task(self._auto_compaction_loop(), name="auto-compaction"),
                       asyncio.create_task(self._store_flush_loop(), name="store-flush")]
        # Like etcd (ReadyNotify), serve clients only once our name and client URLs are in the
        # log: before that, members would be listed without them.
        stopped = asyncio.create_task(self.stopped.wait())
        await asyncio.wait([publish, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if self.stopped.is_set():
            return
        await self._serve_clients()
        log.info("pyetcd member %s serving clients on %s (cluster %s)", format_id(self.member_id),
                 ",".join(config.listen_client_urls), format_id(self.cluster_id))

    def _bootstrap_conf_changes(self) -> list[ConfChange]:
        """One ADD_NODE per --initial-cluster member, carrying the member record (etcd's StartNode peers)."""
        changes = []
        for name, urls in self.config.initial_peer_urls().items():
            member = Member(derive_member_id(urls, self.config.initial_cluster_token), tuple(urls), name=name)
            changes.append(ConfChange(ConfChangeType.ADD_NODE, member.id, encode_conf_change_context(member)))
        return sorted(changes, key=lambda cc: cc.node_id)

    def _load_membership(self, cluster_id: int) -> None:
        members = [Member.decode(value) for _, value in self.store.meta_items(MEMBERS_BUCKET)]
        removed = {int(key.decode(), 16) for key, _ in self.store.meta_items(REMOVED_BUCKET)}
        self.membership = Membership(cluster_id, members, removed)

    async def _join_existing_cluster(self) -> Identity:
        """--initial-cluster-state=existing: ask the other --initial-cluster members who we are."""
        own_urls = set(self.config.initial_advertise_peer_urls)
        peers = [url for _, url in self.config.initial_cluster if url not in own_urls]
        for url in peers:
            try:
                async with grpc.aio.insecure_channel(host_port(url)) as channel:
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

    async def _serve_clients(self) -> None:
        limit = self.config.max_request_bytes + GRPC_OVERHEAD_BYTES
        server = grpc.aio.server(options=[
            # The handlers refuse requests over `limit` in grpc-go's words; the transport allows more.
            ("grpc.max_receive_message_length", 4 * limit),
            ("grpc.max_send_message_length", 2**31 - 1),
            ("grpc.max_concurrent_streams", 2**31 - 1),
            ("grpc.http2.min_ping_interval_without_data_ms", int(self.config.grpc_keepalive_min_time_s * 1000)),
            ("grpc.so_reuseport", 0),
        ])
        from pyetcd.api.register import add_services

        add_services(server, self)
        for url in self.config.listen_client_urls:
            address = host_port(url)
            if server.add_insecure_port(address) == 0:
                raise errors.StartupError(f"listen tcp {address}: bind: address already in use")
        await server.start()
        self._grpc_server = server

    # -- shut-down -----------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop serving; a leader hands leadership over first, as etcd does on shutdown."""
        if self._grpc_server is not None:
            await self._grpc_server.stop(grace=0.5)
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
        for channel in self._peer_channels.values():
            await channel.close()
        if getattr(self, "store", None) is not None:
            self.store.sync()
            self.store.close()
        self.stopped.set()

    def _shut_down_removed(self) -> None:
        if self.stop_reason:
            return
        self.stop_reason = REMOVED_MESSAGE
        log.warning(REMOVED_MESSAGE)
        # A removed leader's core hands over with TIMEOUT_NOW (thesis §4.2.2); let the Ready that
        # carries it reach the transport before we stop, or the rest wait an election timeout.
        asyncio.get_running_loop().call_later(2 * self.config.heartbeat_ms / 1000, self.stopped.set)

    def _best_transferee(self) -> int:
        status = self.node.status()
        progress = getattr(status, "progress", {}) or {}
        voters = {m.id for m in self.membership.voters()} - {self.member_id}
        best, best_match = 0, -1
        for peer, pr in progress.items():
            if peer in voters and pr.match > best_match:
                best, best_match = peer, pr.match
        return best

    # -- the apply loop ------------------------------------------------------------------------

    async def _apply_loop(self) -> None:
        while True:
            batch: ApplyBatch = await self.node.apply_queue.get()
            try:
                self._apply_batch(batch)
            except Exception:  # pragma: no cover - an apply failure means state is unknown: stop
                log.exception("apply failed; stopping")
                self.stop_reason = "apply failed"
                self.stopped.set()
                raise

    def _apply_batch(self, batch: ApplyBatch) -> None:
        if batch.snapshot is not None and not batch.snapshot.is_empty:
            self._install_snapshot(batch.snapshot)
        if batch.entries:
            applied = self.applier.apply_entries(batch.entries)
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
        if member.id != self.member_id:
            self.transport.add_peer(member.id, list(member.peer_urls))

    def _on_member_removed(self, member_id: int) -> None:
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
                await self._propose_and_wait(request, timeout=self.config.election_ms / 1000 * 5)
                self._published = True
                return
            except (TimeoutError, errors.EtcdError, ProposalDropped):
                await asyncio.sleep(self.config.heartbeat_ms / 1000 * 2)

    # -- proposing -----------------------------------------------------------------------------

    def header(self, revision: int | None = None) -> Any:
        return rpc_pb2.ResponseHeader(cluster_id=self.cluster_id, member_id=self.member_id,
                                      revision=self.store.current_revision if revision is None else revision,
                                      raft_term=self.node.term)

    def request_timeout(self) -> float:
        """etcd's ReqTimeout: 5 s plus twice the election timeout."""
        return 5.0 + 2 * self.config.election_ms / 1000

    async def _propose_and_wait(self, request: Any, timeout: float | None = None) -> Any:
        """Propose an InternalRaftRequest and wait until this member has applied it."""
        request_id = self._ids.next()
        request.header.ID = request_id
        data = request.SerializeToString()
        if len(data) > self.config.max_request_bytes:
            raise errors.ErrRequestTooLarge
        return await self._wait_for_applied(request_id, lambda: self.node.propose(data), timeout)

    async def _propose_conf_change_and_wait(self, cc_type: ConfChangeType, node_id: int,
                                            context: bytes = b"") -> list[Member]:
        """Propose a membership change; the answer is the member list once it is applied."""
        request_id = self._ids.next()
        cc = ConfChange(cc_type, node_id, context, request_id)
        members: list[Member] = await self._wait_for_applied(request_id, lambda: self.node.propose_conf_change(cc))
        return members

    async def _wait_for_applied(self, request_id: int, propose: Callable[[], None],
                                timeout: float | None = None) -> Any:
        """Register a waiter before proposing (the entry may apply at once), then wait for its outcome."""
        future: asyncio.Future[ApplyOutcome] = asyncio.get_running_loop().create_future()
        self._waiters[request_id] = future
        try:
            try:
                propose()
            except ProposalDropped:
                raise errors.ErrNoLeader from None
            try:
                # asyncio.timeout, unlike wait_for, starts no extra task per request.
                async with asyncio.timeout(timeout or self.request_timeout()):
                    outcome = await future
            except TimeoutError:
                raise errors.ErrTimeout from None
        finally:
            self._waiters.pop(request_id, None)
        if outcome.error is not None:
            raise outcome.error
        return outcome.result

    async def linearizable_barrier(self) -> None:
        """ReadIndex (thesis §6.4): learn the commit index the leader confirmed, then wait to apply it."""
        try:
            index = await self.node.read_index()
        except ProposalDropped:
            raise errors.ErrNoLeader from None
        except TimeoutError:
            raise errors.ErrTimeout from None
        await asyncio.wait_for(self._applied.wait_for(index), self.request_timeout())

    # -- KV ------------------------------------------------------------------------------------

    async def range(self, req: Any) -> Any:
        if not req.serializable:
            await self.linearizable_barrier()
        response = self.store.range(req)
        response.header.CopyFrom(self.header())
        return response

    async def put(self, req: Any) -> Any:
        request = raft_internal_pb2.InternalRaftRequest()
        request.put.CopyFrom(req)
        response = await self._propose_and_wait(request)
        return self._with_header(response)

    async def delete_range(self, req: Any) -> Any:
        request = raft_internal_pb2.InternalRaftRequest()
        request.delete_range.CopyFrom(req)
        return self._with_header(await self._propose_and_wait(request))

    async def txn(self, req: Any) -> Any:
        if _txn_is_read_only(req):
            # A txn that cannot write is a read: ReadIndex (unless all serializable), then evaluate locally.
            if not _txn_all_serializable(req):
                await self.linearizable_barrier()
            with self.store.write(consistent_index=self.store.consistent_index,
                                  consistent_term=self.store.consistent_term) as w:
                response = w.txn(req)
            return self._with_header(response)
        request = raft_internal_pb2.InternalRaftRequest()
        request.txn.CopyFrom(req)
        return self._with_header(await self._propose_and_wait(request))

    async def compact(self, req: Any) -> Any:
        current = self.store.current_revision
        if req.revision > current:
            raise errors.ErrFutureRev
        if req.revision <= self.store.compact_revision:
            raise errors.ErrCompacted
        request = raft_internal_pb2.InternalRaftRequest()
        request.compaction.CopyFrom(req)
        response = await self._propose_and_wait(request)
        if req.physical:
            self.store.sync()
        return self._with_header(response)

    def _with_header(self, response: Any) -> Any:
        revision = response.header.revision if response.header.revision else None
        response.header.CopyFrom(self.header(revision))
        return response

    # -- leases --------------------------------------------------------------------------------

    async def lease_grant(self, req: Any) -> Any:
        if req.TTL > Lessor.MAX_TTL:
            raise errors.ErrLeaseTTLTooLarge
        request = raft_internal_pb2.InternalRaftRequest()
        request.lease_grant.CopyFrom(req)
        if request.lease_grant.ID == 0:
            request.lease_grant.ID = self._ids.next() & ((1 << 63) - 1)
        return self._with_header(await self._propose_and_wait(request))

    async def lease_revoke(self, req: Any) -> Any:
        request = raft_internal_pb2.InternalRaftRequest()
        request.lease_revoke.CopyFrom(req)
        return self._with_header(await self._propose_and_wait(request))

    async def lease_renew(self, lease_id: int) -> int:
        """Keep-alive: only the leader tracks expiry, so followers forward (etcd forwards too)."""
        for _ in range(3):
            if self.node.is_leader:
                try:
                    return await self.lessor.arenew(lease_id)
                except errors.NotPrimaryError:
                    continue  # lost leadership while waiting: ask the new leader
            stub = await self._leader_stub()
            try:
                answer = await stub.LeaseRenew(peer_pb2.LeaseRenewRequest(id=lease_id), timeout=self.request_timeout())
                return int(answer.ttl)
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.NOT_FOUND:
                    raise errors.ErrLeaseNotFound from None
                await asyncio.sleep(self.config.heartbeat_ms / 1000)
        raise errors.ErrNoLeader

    async def lease_time_to_live(self, req: Any) -> Any:
        if not self.node.is_leader:
            stub = await self._leader_stub()
            try:
                answer = await stub.LeaseTimeToLive(req, timeout=self.request_timeout())
            except grpc.aio.AioRpcError as err:
                raise errors.from_rpc_error(err) from None
            return self._with_header(answer)
        granted, remaining = self.lessor.time_to_live(req.ID)
        response = rpc_pb2.LeaseTimeToLiveResponse(ID=req.ID, TTL=remaining, grantedTTL=granted)
        if granted < 0:
            response.TTL = -1
        elif req.keys:
            response.keys.extend(self.store.lease_keys(req.ID))
        return self._with_header(response)

    async def lease_leases(self) -> Any:
        response = rpc_pb2.LeaseLeasesResponse()
        for lease_id, _ in sorted(self.store.leases()):
            response.leases.add(ID=lease_id)
        return self._with_header(response)

    async def _lease_expiry_loop(self) -> None:
        """The leader alone decides a lease expired, then revokes it through the log so all members agree."""
        while True:
            await asyncio.sleep(0.5)
            if not self.node.is_leader:
                continue
            now = time.monotonic()
            for lease_id in self.lessor.expired():
                if self._revoking.get(lease_id, 0.0) > now:
                    continue
                self._revoking[lease_id] = now + self.request_timeout()
                asyncio.ensure_future(self._revoke_expired(lease_id))

    async def _revoke_expired(self, lease_id: int) -> None:
        try:
            await self.lease_revoke(rpc_pb2.LeaseRevokeRequest(ID=lease_id))
        except errors.EtcdError:
            pass
        finally:
            self._revoking.pop(lease_id, None)

    def _on_leader_change(self, leader_id: int, term: int) -> None:
        if leader_id == self.member_id:
            self.lessor.promote(extend=self.config.election_ms / 1000)
        else:
            self.lessor.demote()

    async def _leader_stub(self) -> peer_pb2_grpc.PeerStub:
        leader = self.node.leader_id
        member = self.membership.get(leader) if leader else None
        if member is None:
            raise errors.ErrNoLeader
        channel = self._peer_channels.get(leader)
        if channel is None:
            channel = grpc.aio.insecure_channel(host_port(member.peer_urls[0]))
            self._peer_channels[leader] = channel
        return peer_pb2_grpc.PeerStub(channel)

    # -- auto compaction -----------------------------------------------------------------------

    async def _store_flush_loop(self) -> None:
        """Bound what a power failure can make the store replay from the log (etcd's backend batch interval)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(STORE_FLUSH_INTERVAL_S)
            await loop.run_in_executor(None, self.store.sync)

    async def _auto_compaction_loop(self) -> None:
        """--auto-compaction-mode/--auto-compaction-retention, run as etcd's v3compactor runs them."""
        # The schedule (etcd's 5-minute revision check, periodic sampling) lives in pyetcd/compactor.py.
        compactor = new_compactor(self.config.auto_compaction_mode, self.config.auto_compaction_retention_value,
                                  current_revision=lambda: self.store.current_revision,
                                  compact=lambda revision: self.compact(rpc_pb2.CompactionRequest(revision=revision)),
                                  is_leader=lambda: self.node.is_leader)
        if compactor is not None:
            await compactor.run()

    # -- cluster -------------------------------------------------------------------------------

    def _member_proto(self, member: Member) -> Any:
        return rpc_pb2.Member(ID=member.id, name=member.name, peerURLs=list(member.peer_urls),
                              clientURLs=list(member.client_urls), isLearner=member.is_learner)

    def _members_proto(self, members: list[Member]) -> list[Any]:
        return [self._member_proto(m) for m in members]

    def _peers_connected_since(self, since: float, members: list[Member]) -> int:
        connected = 0
        for member in members:
            if member.id == self.member_id:
                connected += 1
                continue
            active = self.transport.active_since(member.id)
            if active is not None and active <= since:
                connected += 1
        return connected

    async def member_list(self, req: Any) -> Any:
        if getattr(req, "linearizable", False):
            await self.linearizable_barrier()
        response = rpc_pb2.MemberListResponse()
        response.members.extend(self._members_proto(self.membership.members()))
        response.header.CopyFrom(self.header())
        return response

    async def member_add(self, req: Any) -> Any:
        urls = tuple(req.peerURLs)
        if self.membership.peer_url_in_use(urls):
            raise errors.ErrPeerURLExist
        if req.isLearner:
            if len(self.membership.learners()) >= 1:
                raise errors.ErrTooManyLearners
        elif self.config.strict_reconfig_check:
            if not self.membership.ready_to_add_voter():
                raise errors.ErrNotEnoughStartedMembers
            voters = self.membership.voters()
            since = time.monotonic() - HEALTH_INTERVAL_S
            if self._peers_connected_since(since, voters) < len(voters):
                raise errors.ErrUnhealthy
        member = Member(derive_member_id(list(urls), "", int(time.time())), urls, is_learner=req.isLearner)
        cc_type = ConfChangeType.ADD_LEARNER_NODE if req.isLearner else ConfChangeType.ADD_NODE
        members = await self._propose_conf_change_and_wait(cc_type, member.id, encode_conf_change_context(member))
        response = rpc_pb2.MemberAddResponse(member=self._member_proto(member))
        response.members.extend(self._members_proto(members))
        response.header.CopyFrom(self.header())
        return response

    async def member_remove(self, req: Any) -> Any:
        target = self.membership.get(req.ID)
        if target is None:
            raise errors.ErrMemberNotFound
        if self.config.strict_reconfig_check and not target.is_learner:
            self._check_removal_keeps_quorum(req.ID)
        await self._move_leadership_away_from(req.ID)
        members = await self._propose_conf_change_and_wait(ConfChangeType.REMOVE_NODE, req.ID)
        response = rpc_pb2.MemberRemoveResponse()
        response.members.extend(self._members_proto(members))
        response.header.CopyFrom(self.header())
        return response

    async def _move_leadership_away_from(self, member_id: int) -> None:
        """Before the leader is removed, hand leadership to another voter (thesis §3.10).

        Waiting for the removed leader to hand over after the fact races with the others
        applying the removal (they then refuse its messages), leaving an election timeout
        without a leader; moving first keeps the cluster writable throughout.
        """
        if self.node.leader_id != member_id or len(self.membership.voters()) < 2:
            return
        if member_id == self.member_id:
            transferee = self._best_transferee()
        else:
            me = self.membership.get(self.member_id)
            transferee = self.member_id if me is not None and not me.is_learner else 0
        if transferee:
            with contextlib.suppress(TimeoutError, ProposalDropped):
                await self.node.transfer_leadership(transferee, timeout=self.config.election_ms / 1000 * 2)

    def _check_removal_keeps_quorum(self, member_id: int) -> None:
        """etcd's mayRemoveMember: never remove a connected voter if the rest would lose quorum."""
        if not self.membership.ready_to_remove_voter(member_id):
            raise errors.ErrNotEnoughStartedMembers
        if member_id != self.member_id and self.transport.active_since(member_id) is None:
            return  # a member that is down is not part of the active quorum
        voters = self.membership.voters()
        active = self._peers_connected_since(time.monotonic() - HEALTH_INTERVAL_S, voters)
        if active - 1 < 1 + (len(voters) - 1) // 2:
            raise errors.ErrUnhealthy

    async def member_update(self, req: Any) -> Any:
        current = self.membership.get(req.ID)
        if current is None:
            raise errors.ErrMemberNotFound
        updated = Member(current.id, tuple(req.peerURLs), current.name, current.client_urls, current.is_learner)
        members = await self._propose_conf_change_and_wait(ConfChangeType.UPDATE_NODE, req.ID,
                                                           encode_conf_change_context(updated))
        response = rpc_pb2.MemberUpdateResponse()
        response.members.extend(self._members_proto(members))
        response.header.CopyFrom(self.header())
        return response

    async def member_promote(self, req: Any) -> Any:
        if not self.node.is_leader:
            stub = await self._leader_stub()
            try:
                return await stub.MemberPromote(req, timeout=self.request_timeout())
            except grpc.aio.AioRpcError as err:
                raise errors.from_rpc_error(err) from None
        member = self.membership.get(req.ID)
        if member is None:
            raise errors.ErrMemberNotFound
        if not member.is_learner:
            raise errors.ErrMemberNotLearner
        if not self._learner_ready(req.ID):
            raise errors.ErrLearnerNotReady
        promoted = Member(member.id, member.peer_urls, member.name, member.client_urls, is_learner=False)
        members = await self._propose_conf_change_and_wait(ConfChangeType.ADD_NODE, req.ID,
                                                           encode_conf_change_context(promoted, promote=True))
        response = rpc_pb2.MemberPromoteResponse()
        response.members.extend(self._members_proto(members))
        response.header.CopyFrom(self.header())
        return response

    def _learner_ready(self, learner_id: int) -> bool:
        """etcd's isLearnerReady: the learner's match index is within 90% of the leader's."""
        status = self.node.status()
        progress = getattr(status, "progress", {}) or {}
        learner = progress.get(learner_id)
        leader = progress.get(self.member_id)
        if learner is None or leader is None:
            return False
        return bool(learner.match >= 0.9 * leader.match)

    # -- maintenance ---------------------------------------------------------------------------

    async def status(self) -> Any:
        status = self.node.status()
        me = self.membership.get(self.member_id)
        response = rpc_pb2.StatusResponse(
            version=SERVER_VERSION, dbSize=self.store.db_size(), leader=self.node.leader_id,
            raftIndex=status.commit, raftTerm=status.term, raftAppliedIndex=self.store.consistent_index,
            dbSizeInUse=self.store.db_size_in_use(), isLearner=bool(me and me.is_learner))
        response.errors.extend(self._alarm_error_strings())
        response.header.CopyFrom(self.header())
        return response

    def _alarm_error_strings(self) -> list[str]:
        return [f"memberID:{member_id} alarm:{rpc_pb2.AlarmType.Name(cast(Any, alarm))} "
                for member_id, alarm in sorted(self.applier.alarms)]

    async def defragment(self) -> Any:
        await asyncio.get_running_loop().run_in_executor(None, self.store.defragment)
        return rpc_pb2.DefragmentResponse(header=self.header())

    async def hash(self) -> Any:
        return rpc_pb2.HashResponse(header=self.header(), hash=self.store.hash())

    async def hash_kv(self, req: Any) -> Any:
        value, compact_revision, hash_revision = self.store.hash_kv(req.revision)
        return rpc_pb2.HashKVResponse(header=self.header(hash_revision), hash=value,
                                      compact_revision=compact_revision)

    async def alarm(self, req: Any) -> Any:
        if req.action == rpc_pb2.AlarmRequest.GET:
            response = rpc_pb2.AlarmResponse(header=self.header())
            for member_id, alarm in sorted(self.applier.alarms):
                if req.alarm in (rpc_pb2.NONE, alarm) and req.memberID in (0, member_id):
                    response.alarms.add(memberID=member_id, alarm=alarm)
            return response
        request = raft_internal_pb2.InternalRaftRequest()
        request.alarm.CopyFrom(req)
        return self._with_header(await self._propose_and_wait(request))

    def raise_no_space_alarm(self) -> None:
        """The store refused a write for lack of space: tell every member through the log (etcd does too)."""
        if self.applier.no_space():
            return
        request = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=self.member_id,
                                       alarm=rpc_pb2.NOSPACE)
        asyncio.ensure_future(self._quietly(self.alarm(request)))

    @staticmethod
    async def _quietly(coro: Any) -> None:
        try:
            await coro
        except Exception:  # noqa: BLE001
            log.warning("background request failed", exc_info=True)

    async def move_leader(self, req: Any) -> Any:
        if not self.node.is_leader:
            raise errors.ErrNotLeader
        target = self.membership.get(req.targetID)
        if target is None or target.is_learner:
            raise errors.ErrBadLeaderTransferee
        try:
            await self.node.transfer_leadership(req.targetID, timeout=self.request_timeout())
        except TimeoutError:
            raise errors.ErrTimeoutLeaderTransfer from None
        return rpc_pb2.MoveLeaderResponse(header=self.header())

    async def snapshot_chunks(self) -> AsyncIterator[bytes]:
        data = await asyncio.get_running_loop().run_in_executor(None, self.store.snapshot_bytes)
        chunk = 32 * 1024
        for offset in range(0, len(data), chunk):
            yield data[offset:offset + chunk]

    # -- the peer service ----------------------------------------------------------------------

    def _register_peer_service(self, server: grpc.aio.Server) -> None:
        peer_pb2_grpc.add_PeerServicer_to_server(PeerService(self), server)


class PeerService(peer_pb2_grpc.PeerServicer):
    """Member-to-member calls: the cluster for joiners, and leader-only lease and promote calls."""

    def __init__(self, server: EtcdServer) -> None:
        self.server = server

    async def Cluster(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method name
        membership = self.server.membership
        answer = peer_pb2.ClusterResponse(cluster_id=self.server.cluster_id, removed_ids=sorted(membership.removed))
        for m in membership.members():
            answer.members.add(id=m.id, name=m.name, peer_urls=list(m.peer_urls), client_urls=list(m.client_urls),
                               is_learner=m.is_learner)
        return answer

    async def LeaseRenew(self, request: Any, context: Any) -> Any:  # noqa: N802
        if not self.server.node.is_leader:
            await errors.abort_with(context, errors.ErrNotLeader)
        try:
            ttl = await self.server.lessor.arenew(request.id)
        except Exception as err:  # noqa: BLE001 - every failure goes back as etcd's error
            await errors.abort_with(context, err)
        return peer_pb2.LeaseRenewResponse(ttl=ttl)

    async def LeaseTimeToLive(self, request: Any, context: Any) -> Any:  # noqa: N802
        if not self.server.node.is_leader:
            await errors.abort_with(context, errors.ErrNotLeader)
        return await self.server.lease_time_to_live(request)

    async def MemberPromote(self, request: Any, context: Any) -> Any:  # noqa: N802
        try:
            return await self.server.member_promote(request)
        except Exception as err:  # noqa: BLE001
            await errors.abort_with(context, err)


def _txn_is_read_only(req: Any) -> bool:
    return not txn_writes(req)


def _txn_all_serializable(req: Any) -> bool:
    ops = list(req.success) + list(req.failure)
    return bool(ops) and all(op.WhichOneof("request") == "request_range" and op.request_range.serializable
                             for op in ops)

