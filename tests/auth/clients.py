"""A gRPC client of the etcd v3 API that sends its token as clients do, and how a call's answer is compared."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc


class Client:
    """The etcd v3 stubs on one channel; `token` goes into each call's metadata when given."""

    def __init__(self, endpoint: str) -> None:
        self.channel = grpc.insecure_channel(endpoint)
        self.kv = rpc_pb2_grpc.KVStub(self.channel)
        self.auth = rpc_pb2_grpc.AuthStub(self.channel)
        self.watch = rpc_pb2_grpc.WatchStub(self.channel)
        self.maintenance = rpc_pb2_grpc.MaintenanceStub(self.channel)

    def login(self, name: str, password: str) -> str:
        return str(self.auth.Authenticate(rpc_pb2.AuthenticateRequest(name=name, password=password)).token)

    def get(self, key: bytes, token: str) -> list[bytes]:
        answer = self.kv.Range(rpc_pb2.RangeRequest(key=key), metadata=[("token", token)])
        return [kv.value for kv in answer.kvs]

    def close(self) -> None:
        self.channel.close()


def outcome(call: Callable[[], Any]) -> Any:
    """What a call answered: ("ok", a summary) or (code name, etcd's message)."""
    try:
        answer = call()
    except grpc.RpcError as err:
        return (err.code().name, err.details())
    if isinstance(answer, rpc_pb2.RangeResponse):
        return ("ok", [(kv.key, kv.value) for kv in answer.kvs])
    if isinstance(answer, rpc_pb2.TxnResponse):
        return ("ok", answer.succeeded)
    if isinstance(answer, list | tuple):
        return ("ok", answer)
    return ("ok", type(answer).__name__)
