"""The core of EtcdServer, which every part of it shares: proposing through the log and waiting for
the outcome, ReadIndex reads, this member's response header, and reaching the leader.

Answers leave here with at most the revision they were produced or read at in their header; the
API layer (api/header.py) fills in the rest by each method's rule, as etcd's v3rpc does."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from typing import TypeVar

import grpc

from etcdpb.etcdserverpb import raft_internal_pb2, rpc_pb2
from etcdpb.serverpb import peer_pb2_grpc
from pyetcd import errors
from pyetcd.apply import Applier, ApplyOutcome
from pyetcd.auth.checks import untranslated
from pyetcd.auth.credentials import REQUEST_CREDENTIALS
from pyetcd.auth.store import AuthStore
from pyetcd.auth.tokens import AuthInfo
from pyetcd.config import ServerConfig
from pyetcd.counters import ServerCounters
from pyetcd.ids import RequestIdGenerator
from pyetcd.lessor import Lessor
from pyetcd.membership import Member, Membership
from raft.core import ConfChange, ConfChangeType, ProposalDropped
from raft.node import RaftNode
from raft.transport import GrpcTransport
from storage.mvcc import MvccStore

AnswerT = TypeVar("AnswerT")


class ServerCore:
    """A member's shared state (set up by EtcdServer.start) and the propose/read paths."""

    config: ServerConfig
    member_id: int
    cluster_id: int
    store: MvccStore
    node: RaftNode
    transport: GrpcTransport
    lessor: Lessor
    membership: Membership
    applier: Applier
    counters: ServerCounters
    auth: AuthStore
    _ids: RequestIdGenerator
    _waiters: dict[int, asyncio.Future[ApplyOutcome]]
    _applied: AppliedIndexWaiters
    _peer_channels: dict[int, grpc.aio.Channel]

    def header(self) -> rpc_pb2.ResponseHeader:
        """This member's header now: the API layer (api/header.py) fills every answer's from it."""
        return rpc_pb2.ResponseHeader(cluster_id=self.cluster_id, member_id=self.member_id,
                                      revision=self.store.current_revision, raft_term=self.node.term)

    def request_timeout(self) -> float:
        """etcd's ReqTimeout: 5 s plus twice the election timeout."""
        return 5.0 + 2 * self.config.election_ms / 1000

    async def _propose_and_wait(self, request: raft_internal_pb2.InternalRaftRequest, answer: type[AnswerT],
                                timeout: float | None = None) -> AnswerT:
        """Propose an InternalRaftRequest, wait until this member has applied it, and return its answer."""
        request_id = self._ids.next()
        request.header.ID = request_id
        info = await self.request_auth_info()
        if info is not None:
            # The applier checks this user at this auth revision (etcd's RequestHeader).
            request.header.username = info.username
            request.header.auth_revision = info.revision
        data = request.SerializeToString()
        if len(data) > self.config.max_request_bytes:
            raise errors.ErrRequestTooLarge
        result = await self._wait_for_applied(request_id, lambda: self.node.propose(data), timeout)
        if not isinstance(result, answer):
            raise TypeError(f"applying the request answered {type(result).__name__}, not {answer.__name__}")
        return result

    async def request_auth_info(self) -> AuthInfo | None:
        """Who the current call runs as (etcd's AuthInfoFromCtx): its token's user, else its certificate's CN.

        A simple token names the Raft index that created it; a member that has not applied that
        index yet waits for it before looking the token up, as etcd does.
        """
        credentials = REQUEST_CREDENTIALS.get()
        if credentials.as_root:
            return AuthInfo("root", self.auth.revision)
        if credentials.token is not None:
            index = self.auth.tokens.required_index(credentials.token)
            if index > self._applied.applied_index:
                try:
                    await asyncio.wait_for(self._applied.wait_for(index), self.request_timeout())
                except TimeoutError:
                    raise errors.ErrGRPCInvalidAuthToken from None
            return self.auth.info_from_token(credentials.token)
        if self.config.client_tls.client_cert_auth and credentials.common_name is not None:
            return self.auth.info_from_common_name(credentials.common_name)
        return None

    async def require_root(self, *, untranslated_errors: bool = False) -> None:
        """Member changes and some maintenance calls need the root role (when auth is enabled).

        etcd's maintenance server returns these errors untranslated (`untranslated_errors`).
        """
        try:
            self.auth.is_admin_permitted(await self.request_auth_info())
        except errors.EtcdError as err:
            if untranslated_errors:
                raise untranslated(err) from None
            raise

    async def serialized_read(self, check: Callable[[AuthInfo | None], None],
                              read: Callable[[], AnswerT]) -> AnswerT:
        """A read served by this member (etcd's doSerialize): check, read, then refuse the answer if
        the auth store changed meanwhile, so a revoked permission never leaks data."""
        info = await self.request_auth_info()
        check(info)
        answer = read()
        if info is not None and info.revision != 0 and info.revision != self.auth.revision:
            raise errors.ErrGRPCAuthOldRevision
        return answer

    async def _propose_conf_change_and_wait(self, cc_type: ConfChangeType, node_id: int,
                                            context: bytes = b"") -> list[Member]:
        """Propose a membership change; the answer is the member list once it is applied."""
        request_id = self._ids.next()
        cc = ConfChange(cc_type, node_id, context, request_id)
        members = await self._wait_for_applied(request_id, lambda: self.node.propose_conf_change(cc))
        if not isinstance(members, list):
            raise TypeError(f"applying a conf change answered {type(members).__name__}, not the member list")
        return members

    async def _wait_for_applied(self, request_id: int, propose: Callable[[], None],
                                timeout: float | None = None) -> object:
        """Register a waiter before proposing (the entry may apply at once), then wait for its outcome."""
        future: asyncio.Future[ApplyOutcome] = asyncio.get_running_loop().create_future()
        self._waiters[request_id] = future
        try:
            try:
                propose()
            except ProposalDropped:
                self.counters.proposals_failed += 1
                raise errors.ErrNoLeader from None
            try:
                # asyncio.timeout, unlike wait_for, starts no extra task per request.
                async with asyncio.timeout(timeout or self.request_timeout()):
                    outcome = await future
            except TimeoutError:
                self.counters.proposals_failed += 1
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

    async def _leader_stub(self) -> peer_pb2_grpc.PeerStub:
        leader = self.node.leader_id
        member = self.membership.get(leader) if leader else None
        if member is None:
            raise errors.ErrNoLeader
        channel = self._peer_channels.get(leader)
        if channel is None:
            channel = await self.transport.open_channel(member.peer_urls[0])
            self._peer_channels[leader] = channel
        return peer_pb2_grpc.PeerStub(channel)

    def _best_transferee(self) -> int:
        status = self.node.status()
        progress = getattr(status, "progress", {}) or {}
        voters = {m.id for m in self.membership.voters()} - {self.member_id}
        best, best_match = 0, -1
        for peer, pr in progress.items():
            if peer in voters and pr.match > best_match:
                best, best_match = peer, pr.match
        return best


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
