"""Serving processes: a member's client gRPC calls answered by N processes beside the one that runs Raft.

The member's process (the core) keeps Raft, the applier, the store and its full gRPC API on a private
socket. Each serving process runs a grpc.aio server that the client port's front relays connections
to; it sends KV calls to the core in batches (core_link.py, batch_service.py) and forwards every other
call, bytes unchanged, to the core's private gRPC socket (forward.py). The core starts, restarts and
stops them (supervisor.py); they die with it.
"""
