"""EtcdServer's membership changes, as etcd makes them: its safety checks, then one conf change at a time."""

from __future__ import annotations

import contextlib
import time

import grpc

from etcdpb.etcdserverpb import rpc_pb2
from pyetcd import errors
from pyetcd.apply import encode_conf_change_context
from pyetcd.ids import member_id as derive_member_id
from pyetcd.membership import Member
from pyetcd.server_core import ServerCore
from raft.core import ConfChangeType, ProposalDropped

HEALTH_INTERVAL_S = 5.0
"""etcd refuses a reconfiguration unless peers have been connected this long (HealthInterval)."""


class ServerMembers(ServerCore):
    """MemberList/Add/Remove/Update/Promote."""

    def _member_proto(self, member: Member) -> rpc_pb2.Member:
        return rpc_pb2.Member(ID=member.id, name=member.name, peerURLs=list(member.peer_urls),
                              clientURLs=list(member.client_urls), isLearner=member.is_learner)

    def _members_proto(self, members: list[Member]) -> list[rpc_pb2.Member]:
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

    async def member_list(self, req: rpc_pb2.MemberListRequest) -> rpc_pb2.MemberListResponse:
        if getattr(req, "linearizable", False):
            await self.linearizable_barrier()
        response = rpc_pb2.MemberListResponse()
        response.members.extend(self._members_proto(self.membership.members()))
        return response

    async def member_add(self, req: rpc_pb2.MemberAddRequest) -> rpc_pb2.MemberAddResponse:
        await self.require_root()
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
        return response

    async def member_remove(self, req: rpc_pb2.MemberRemoveRequest) -> rpc_pb2.MemberRemoveResponse:
        await self.require_root()
        target = self.membership.get(req.ID)
        if target is None:
            raise errors.ErrMemberNotFound
        if self.config.strict_reconfig_check and not target.is_learner:
            self._check_removal_keeps_quorum(req.ID)
        await self._move_leadership_away_from(req.ID)
        members = await self._propose_conf_change_and_wait(ConfChangeType.REMOVE_NODE, req.ID)
        response = rpc_pb2.MemberRemoveResponse()
        response.members.extend(self._members_proto(members))
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

    async def member_update(self, req: rpc_pb2.MemberUpdateRequest) -> rpc_pb2.MemberUpdateResponse:
        await self.require_root()
        current = self.membership.get(req.ID)
        if current is None:
            raise errors.ErrMemberNotFound
        updated = Member(current.id, tuple(req.peerURLs), current.name, current.client_urls, current.is_learner)
        members = await self._propose_conf_change_and_wait(ConfChangeType.UPDATE_NODE, req.ID,
                                                           encode_conf_change_context(updated))
        response = rpc_pb2.MemberUpdateResponse()
        response.members.extend(self._members_proto(members))
        return response

    async def member_promote(self, req: rpc_pb2.MemberPromoteRequest) -> rpc_pb2.MemberPromoteResponse:
        await self.require_root()
        if not self.node.is_leader:
            stub = await self._leader_stub()
            try:
                forwarded: rpc_pb2.MemberPromoteResponse = await stub.MemberPromote(
                    req, timeout=self.request_timeout())
                return forwarded
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
