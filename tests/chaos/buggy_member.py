"""A pyetcd member with one deliberate bug, to show that the chaos checks catch it.

`python -m tests.chaos.buggy_member BUG [pyetcd flags...]` runs pyetcd with BUG patched in.
The bugs are ones a Raft-based store could plausibly ship with; a harness that passes them
would be checking nothing.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Any

from etcdpb.etcdserverpb import raft_internal_pb2, rpc_pb2
from pyetcd import cli
from pyetcd.server import EtcdServer
from pyetcd.server_core import ServerCore
from raft.core import ProposalDropped


def local_reads() -> None:
    """Linearizable reads answered from the member's own store, without a ReadIndex round."""
    async def no_barrier(self: ServerCore) -> None:
        return None

    ServerCore.linearizable_barrier = no_barrier  # type: ignore[method-assign]


def ack_before_commit() -> None:
    """A put answered as soon as it is proposed, before a quorum has it (or even when it is dropped)."""
    async def put(self: EtcdServer, req: Any) -> Any:
        request = raft_internal_pb2.InternalRaftRequest()
        request.put.CopyFrom(req)
        request.header.ID = self._ids.next()
        with contextlib.suppress(ProposalDropped):
            self.node.propose(request.SerializeToString())
        response = rpc_pb2.PutResponse()
        response.header.revision = self.store.current_revision + 1  # the API layer fills the rest
        return response

    EtcdServer.put = put  # type: ignore[method-assign]


BUGS: dict[str, Callable[[], None]] = {"local-reads": local_reads, "ack-before-commit": ack_before_commit}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BUGS:
        print(f"usage: python -m tests.chaos.buggy_member {{{','.join(BUGS)}}} [pyetcd flags...]", file=sys.stderr)
        return 2
    BUGS[argv[0]]()
    return cli.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
