"""Config: how one member's Raft core behaves (timeouts in ticks, flow-control limits, optional rules)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Config:
    """Settings of one member; `id` must be non-zero and unique in the cluster."""

    id: int
    election_tick: int = 10
    """Election timeout in ticks; each wait is random in [election_tick, 2*election_tick) (§5.2)."""
    heartbeat_tick: int = 1
    max_size_per_msg: int = 1024 * 1024
    """Bytes of entries per APP message (at least one entry is always sent)."""
    max_inflight_msgs: int = 256
    """APP messages in flight to one follower before the leader pauses it."""
    pre_vote: bool = True
    """Thesis §9.6: ask whether an election could be won before disrupting the cluster with a new term."""
    check_quorum: bool = True
    """Thesis §6.2: the leader steps down when it has not heard from a quorum in an election timeout."""
    applied: int = 0
    """The last index the application applied before restarting."""
    random_seed: int | None = None
    """Seeds the core's own random.Random, mixed with the id (default: the id): runs are reproducible."""
    max_committed_size_per_ready: int = 64 * 1024 * 1024
    """Bytes of committed entries handed out in one Ready (at least one entry)."""
    batch_appends: bool = False
    """Defer the leader's APP messages and ReadIndex heartbeat rounds, and a follower's forwarded
    proposals, to the next Ready: every proposal, acknowledgement and read stepped between two Readies
    then shares one APP per follower, one heartbeat round (the newest read's context confirms the
    older ones, thesis §6.4) and one PROP to the leader, instead of one each. Raft does not care when
    these go out; this only sends fewer, larger messages. The asyncio driver turns it on; off, the
    core sends as etcd-io/raft does, message by message, which the scenario tests spell out."""
    logger: Callable[[str], None] | None = None
    """Receives one line per notable event (role changes, votes, conf changes); for traces and tests."""

    def validate(self) -> None:
        if self.id == 0:
            raise ValueError("member id 0 is reserved for 'nobody'")
        if self.heartbeat_tick <= 0:
            raise ValueError("heartbeat_tick must be greater than 0")
        if self.election_tick <= self.heartbeat_tick:
            raise ValueError("election_tick must be greater than heartbeat_tick")
        if self.max_inflight_msgs <= 0:
            raise ValueError("max_inflight_msgs must be greater than 0")
        if self.max_size_per_msg <= 0:
            raise ValueError("max_size_per_msg must be greater than 0")
        if self.applied < 0:
            raise ValueError("applied must not be negative")
