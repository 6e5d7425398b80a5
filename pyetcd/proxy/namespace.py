"""--namespace: every key a client names lives under a prefix in the cluster, and comes back without it.

The rules are those of etcd's namespace package: a key gets the prefix in front; a range end of "\\0"
(the end of the keyspace) becomes the end of the prefix's keyspace. Requests are rewritten into new
messages; responses from the cluster are rewritten in place (the proxy owns them).
"""

from __future__ import annotations

from etcdpb.etcdserverpb import rpc_pb2
from etcdpb.mvccpb import kv_pb2
from etcdpb.v3electionpb import v3election_pb2
from etcdpb.v3lockpb import v3lock_pb2
from pyetcd.errors import ErrGRPCEmptyKey

END_OF_KEYSPACE = b"\x00"


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key that starts with `prefix` (`\\0` when there is none)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return END_OF_KEYSPACE


class Namespace:
    """Rewrites requests into the prefix and strips it from answers."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: bytes) -> None:
        self.prefix = prefix

    # --- keys and ranges ---

    def key(self, key: bytes) -> bytes:
        return self.prefix + key

    def interval(self, key: bytes, range_end: bytes) -> tuple[bytes, bytes]:
        """A client's [key, range_end) as the range inside the prefix."""
        if range_end == END_OF_KEYSPACE:
            return self.prefix + key, prefix_end(self.prefix)
        if range_end:
            return self.prefix + key, self.prefix + range_end
        return self.prefix + key, b""

    def strip(self, key: bytes) -> bytes:
        return key[len(self.prefix):] if key.startswith(self.prefix) else key

    def strip_kv(self, kv: kv_pb2.KeyValue) -> None:
        if kv.key:
            kv.key = self.strip(kv.key)

    # --- KV ---

    def range_request(self, request: rpc_pb2.RangeRequest) -> rpc_pb2.RangeRequest:
        if not request.key:
            raise ErrGRPCEmptyKey
        out = rpc_pb2.RangeRequest()
        out.CopyFrom(request)
        out.key, out.range_end = self.interval(request.key, request.range_end)
        return out

    def range_response(self, response: rpc_pb2.RangeResponse) -> rpc_pb2.RangeResponse:
        for kv in response.kvs:
            self.strip_kv(kv)
        return response

    def put_request(self, request: rpc_pb2.PutRequest) -> rpc_pb2.PutRequest:
        if not request.key:
            raise ErrGRPCEmptyKey
        out = rpc_pb2.PutRequest()
        out.CopyFrom(request)
        out.key = self.key(request.key)
        return out

    def put_response(self, response: rpc_pb2.PutResponse) -> rpc_pb2.PutResponse:
        if response.HasField("prev_kv"):
            self.strip_kv(response.prev_kv)
        return response

    def delete_range_request(self, request: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeRequest:
        if not request.key:
            raise ErrGRPCEmptyKey
        out = rpc_pb2.DeleteRangeRequest()
        out.CopyFrom(request)
        out.key, out.range_end = self.interval(request.key, request.range_end)
        return out

    def delete_range_response(self, response: rpc_pb2.DeleteRangeResponse) -> rpc_pb2.DeleteRangeResponse:
        for kv in response.prev_kvs:
            self.strip_kv(kv)
        return response

    def txn_request(self, request: rpc_pb2.TxnRequest) -> rpc_pb2.TxnRequest:
        out = rpc_pb2.TxnRequest()
        for compare in request.compare:
            rewritten = out.compare.add()
            rewritten.CopyFrom(compare)
            rewritten.key, rewritten.range_end = self.interval(compare.key, compare.range_end)
        for op in request.success:
            out.success.append(self._request_op(op))
        for op in request.failure:
            out.failure.append(self._request_op(op))
        return out

    def _request_op(self, op: rpc_pb2.RequestOp) -> rpc_pb2.RequestOp:
        kind = op.WhichOneof("request")
        if kind == "request_range":
            return rpc_pb2.RequestOp(request_range=self.range_request(op.request_range))
        if kind == "request_put":
            return rpc_pb2.RequestOp(request_put=self.put_request(op.request_put))
        if kind == "request_delete_range":
            return rpc_pb2.RequestOp(request_delete_range=self.delete_range_request(op.request_delete_range))
        if kind == "request_txn":
            return rpc_pb2.RequestOp(request_txn=self.txn_request(op.request_txn))
        return rpc_pb2.RequestOp()

    def txn_response(self, response: rpc_pb2.TxnResponse) -> rpc_pb2.TxnResponse:
        for op in response.responses:
            kind = op.WhichOneof("response")
            if kind == "response_range":
                self.range_response(op.response_range)
            elif kind == "response_put":
                self.put_response(op.response_put)
            elif kind == "response_delete_range":
                self.delete_range_response(op.response_delete_range)
            elif kind == "response_txn":
                self.txn_response(op.response_txn)
        return response

    # --- Watch ---

    def watch_create(self, request: rpc_pb2.WatchCreateRequest) -> rpc_pb2.WatchCreateRequest:
        out = rpc_pb2.WatchCreateRequest()
        out.CopyFrom(request)
        out.key, out.range_end = self.interval(request.key, request.range_end)
        return out

    def watch_response(self, response: rpc_pb2.WatchResponse) -> rpc_pb2.WatchResponse:
        for event in response.events:
            self.strip_kv(event.kv)
            if event.HasField("prev_kv"):
                self.strip_kv(event.prev_kv)
        return response

    # --- Lock and Election: their names and keys live in the keyspace too ---

    def lock_request(self, request: v3lock_pb2.LockRequest) -> v3lock_pb2.LockRequest:
        return v3lock_pb2.LockRequest(name=self.key(request.name), lease=request.lease)

    def lock_response(self, response: v3lock_pb2.LockResponse) -> v3lock_pb2.LockResponse:
        response.key = self.strip(response.key)
        return response

    def unlock_request(self, request: v3lock_pb2.UnlockRequest) -> v3lock_pb2.UnlockRequest:
        return v3lock_pb2.UnlockRequest(key=self.key(request.key))

    def _leader_key_in(self, leader: v3election_pb2.LeaderKey) -> v3election_pb2.LeaderKey:
        return v3election_pb2.LeaderKey(name=self.key(leader.name), key=self.key(leader.key),
                                        rev=leader.rev, lease=leader.lease)

    def campaign_request(self, request: v3election_pb2.CampaignRequest) -> v3election_pb2.CampaignRequest:
        return v3election_pb2.CampaignRequest(name=self.key(request.name), lease=request.lease,
                                              value=request.value)

    def campaign_response(self, response: v3election_pb2.CampaignResponse) -> v3election_pb2.CampaignResponse:
        response.leader.name = self.strip(response.leader.name)
        response.leader.key = self.strip(response.leader.key)
        return response

    def proclaim_request(self, request: v3election_pb2.ProclaimRequest) -> v3election_pb2.ProclaimRequest:
        return v3election_pb2.ProclaimRequest(leader=self._leader_key_in(request.leader), value=request.value)

    def resign_request(self, request: v3election_pb2.ResignRequest) -> v3election_pb2.ResignRequest:
        return v3election_pb2.ResignRequest(leader=self._leader_key_in(request.leader))

    def leader_request(self, request: v3election_pb2.LeaderRequest) -> v3election_pb2.LeaderRequest:
        return v3election_pb2.LeaderRequest(name=self.key(request.name))

    def leader_response(self, response: v3election_pb2.LeaderResponse) -> v3election_pb2.LeaderResponse:
        if response.HasField("kv"):
            self.strip_kv(response.kv)
        return response
