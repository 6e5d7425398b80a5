"""EtcdServer's maintenance work: status, alarms, hashes, defragment, snapshots, moving the leader."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any, cast

from etcdpb.etcdserverpb import raft_internal_pb2, rpc_pb2
from pyetcd import SERVER_VERSION, errors
from pyetcd.limits import SNAPSHOT_CHUNK_BYTES
from pyetcd.server_core import ServerCore
from pyetcd.snapshot_file import etcd_database

log = logging.getLogger("pyetcd.server")



class ServerMaintenance(ServerCore):
    """Status, Defragment, Hash, HashKV, Alarm, MoveLeader, Snapshot."""

    async def status(self) -> rpc_pb2.StatusResponse:
        # Leader and term from one reading of the core: the driver's leader_id catches up only when
        # it handles the next Ready, and a deposed leader must not report itself in the new term.
        status = self.node.status()
        me = self.membership.get(self.member_id)
        response = rpc_pb2.StatusResponse(
            version=SERVER_VERSION, dbSize=self.store.db_size(), leader=status.leader_id,
            raftIndex=status.commit, raftTerm=status.term, raftAppliedIndex=self.store.consistent_index,
            dbSizeInUse=self.store.db_size_in_use(), isLearner=bool(me and me.is_learner))
        response.errors.extend(self._alarm_error_strings())
        return response

    def _alarm_error_strings(self) -> list[str]:
        return [alarm_text(member_id, alarm) for member_id, alarm in sorted(self.applier.alarms)]

    async def defragment(self) -> rpc_pb2.DefragmentResponse:
        await self.require_root(untranslated_errors=True)
        await asyncio.get_running_loop().run_in_executor(None, self.store.defragment)
        return rpc_pb2.DefragmentResponse()

    async def hash(self) -> rpc_pb2.HashResponse:
        await self.require_root(untranslated_errors=True)
        return rpc_pb2.HashResponse(hash=self.store.hash())

    async def hash_kv(self, req: rpc_pb2.HashKVRequest) -> rpc_pb2.HashKVResponse:
        await self.require_root(untranslated_errors=True)
        value, compact_revision, _ = self.store.hash_kv(req.revision)
        # The header names the store's current revision, not the one hashed (etcd's mvcc HashByRev):
        # the API layer fills it in.
        return rpc_pb2.HashKVResponse(hash=value, compact_revision=compact_revision)

    async def alarm(self, req: rpc_pb2.AlarmRequest) -> rpc_pb2.AlarmResponse:
        if req.action == rpc_pb2.AlarmRequest.GET:
            response = rpc_pb2.AlarmResponse()
            for member_id, alarm in sorted(self.applier.alarms):
                if req.alarm in (rpc_pb2.NONE, alarm) and req.memberID in (0, member_id):
                    response.alarms.add(memberID=member_id, alarm=alarm)
            return response
        request = raft_internal_pb2.InternalRaftRequest()
        request.alarm.CopyFrom(req)
        return await self._propose_and_wait(request, rpc_pb2.AlarmResponse)

    def raise_no_space_alarm(self) -> None:
        """The store refused a write for lack of space: tell every member through the log (etcd does too)."""
        if self.applier.no_space():
            return
        request = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=self.member_id,
                                       alarm=rpc_pb2.NOSPACE)
        asyncio.ensure_future(self._quietly(self.alarm(request)))

    @staticmethod
    async def _quietly(coro: Awaitable[object]) -> None:
        try:
            await coro
        except Exception:  # noqa: BLE001
            log.warning("background request failed", exc_info=True)

    async def move_leader(self, req: rpc_pb2.MoveLeaderRequest) -> rpc_pb2.MoveLeaderResponse:
        if not self.node.is_leader:
            raise errors.ErrNotLeader
        target = self.membership.get(req.targetID)
        if target is None or target.is_learner:
            raise errors.ErrBadLeaderTransferee
        try:
            await self.node.transfer_leadership(req.targetID, timeout=self.request_timeout())
        except TimeoutError:
            raise errors.ErrTimeoutLeaderTransfer from None
        return rpc_pb2.MoveLeaderResponse()

    async def snapshot_chunks(self) -> AsyncIterator[bytes]:
        await self.require_root(untranslated_errors=True)
        # What etcd streams is its bbolt backend, so etcdctl and etcd can open the file.
        data = await asyncio.get_running_loop().run_in_executor(None, self._etcd_database)
        for offset in range(0, len(data), SNAPSHOT_CHUNK_BYTES):
            yield data[offset:offset + SNAPSHOT_CHUNK_BYTES]

    def _etcd_database(self) -> bytes:
        return etcd_database(self.store.contents())


def alarm_text(member_id: int, alarm: int) -> str:
    """An alarm as etcd's Status prints it (protobuf's compact text): zero fields left out, and an
    alarm type this API has no name for shown as its number."""
    fields = []
    if member_id:
        fields.append(f"memberID:{member_id}")
    if alarm:
        known = alarm in rpc_pb2.AlarmType.values()
        fields.append(f"alarm:{rpc_pb2.AlarmType.Name(cast(Any, alarm)) if known else alarm}")
    return "".join(f"{field} " for field in fields)
