"""The leader's queue of ReadIndex requests awaiting a heartbeat round to confirm it (thesis §6.4)."""

from __future__ import annotations

from dataclasses import dataclass, field

from raft.core.types import Message


@dataclass(slots=True)
class ReadIndexStatus:
    """One pending read: the request, the commit index when it arrived, and who acknowledged it since."""

    request: Message
    index: int
    acks: dict[int, bool] = field(default_factory=dict)


class ReadOnly:
    """Pending ReadIndex requests in arrival order, keyed by their request context.

    One heartbeat round carrying the newest context confirms every older request too,
    so many reads share a single round trip.
    """

    __slots__ = ("pending", "queue")

    def __init__(self) -> None:
        self.pending: dict[bytes, ReadIndexStatus] = {}
        self.queue: list[bytes] = []

    def add_request(self, index: int, request: Message) -> None:
        """Remember `request`, to be answered with `index` once a quorum confirms; duplicates are ignored."""
        ctx = request.context
        if ctx in self.pending:
            return
        self.pending[ctx] = ReadIndexStatus(request=request, index=index)
        self.queue.append(ctx)

    def recv_ack(self, member_id: int, ctx: bytes) -> dict[int, bool] | None:
        """Record that `member_id` answered the heartbeat for `ctx`; returns the acks so far."""
        status = self.pending.get(ctx)
        if status is None:
            return None
        status.acks[member_id] = True
        return status.acks

    def advance(self, ctx: bytes) -> list[ReadIndexStatus]:
        """Pop every request up to and including `ctx`: all are confirmed by the same round."""
        try:
            position = self.queue.index(ctx)
        except ValueError:
            return []
        confirmed = self.queue[: position + 1]
        del self.queue[: position + 1]
        return [self.pending.pop(c) for c in confirmed]

    def last_pending_request_ctx(self) -> bytes:
        return self.queue[-1] if self.queue else b""
