"""A do-nothing etcd KV servicer: every Put (and Range) gets one fixed answer at once.

It runs on grpc.aio and uvloop like pyetcd, so "put on pyetcd / put here" shows how much of
pyetcd's cost is its own work rather than Python's gRPC stack and the load generator.
`python -m benchmarks.compare.reference --listen 127.0.0.1:PORT`
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import grpc
import uvloop

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

HEADER = rpc_pb2.ResponseHeader(cluster_id=1, member_id=1, revision=1, raft_term=1)


class FixedKV(rpc_pb2_grpc.KVServicer):
    """Answers without looking at the request."""

    def __init__(self) -> None:
        self.put_response = rpc_pb2.PutResponse(header=HEADER)
        self.range_response = rpc_pb2.RangeResponse(header=HEADER)

    async def Put(self, request: rpc_pb2.PutRequest, context: grpc.aio.ServicerContext) -> rpc_pb2.PutResponse:
        return self.put_response

    async def Range(self, request: rpc_pb2.RangeRequest,
                    context: grpc.aio.ServicerContext) -> rpc_pb2.RangeResponse:
        return self.range_response


async def serve(address: str) -> None:
    server = grpc.aio.server(options=[("grpc.max_concurrent_streams", 2**31 - 1), ("grpc.so_reuseport", 0)])
    rpc_pb2_grpc.add_KVServicer_to_server(FixedKV(), server)
    if server.add_insecure_port(address) == 0:
        raise SystemExit(f"cannot listen on {address}")
    await server.start()
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    await stopped.wait()
    await server.stop(grace=0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", required=True, help="host:port to serve on")
    uvloop.run(serve(parser.parse_args().listen))


if __name__ == "__main__":
    main()
