"""What the peer transport counts of its own work, as plain numbers the application may export.

etcd's rafthttp counts bytes and failures per peer (etcd_network_peer_*) and its raft loop counts
heartbeats sent late (etcd_server_heartbeat_send_failures_total). The transport bumps these counts
once per batch, stream or snapshot, never per byte; whoever scrapes them reads the dictionaries.
The round-trip times and late heartbeats go to callbacks, so the application picks the histogram.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


def _ignore(peer_id: int, seconds: float) -> None:
    return None


@dataclass(slots=True)
class PeerTraffic:
    """Per-peer counts, keyed by member ID; a peer appears once something was counted for it."""

    sent_bytes: dict[int, int] = field(default_factory=dict)
    """Bytes of Raft messages and snapshots written to each peer."""
    received_bytes: dict[int, int] = field(default_factory=dict)
    """Bytes of Raft messages and snapshots read from each peer."""
    sent_failures: dict[int, int] = field(default_factory=dict)
    """Messages dropped on a full queue, failed stream writes and failed snapshot sends."""
    received_failures: dict[int, int] = field(default_factory=dict)
    """Streams from a peer that broke mid-way and snapshots from it that were refused."""
    on_round_trip: Callable[[int, float], None] = _ignore
    """Called with a peer and one probe's round-trip time in seconds."""
    on_late_heartbeat: Callable[[int, float], None] = _ignore
    """Called with a peer and by how many seconds a heartbeat to it was later than twice the interval."""
    heartbeat_interval_s: float = 0.0
    """The leader's heartbeat interval; 0 turns the late-heartbeat check off."""
    _last_heartbeat: dict[int, float] = field(default_factory=dict)

    @staticmethod
    def add(counts: dict[int, int], peer_id: int, amount: int = 1) -> None:
        counts[peer_id] = counts.get(peer_id, 0) + amount

    def heartbeat_sent(self, peer_id: int, now: float | None = None) -> None:
        """etcd's TimeoutDetector on heartbeats: two to one peer more than 2 intervals apart were late."""
        if not self.heartbeat_interval_s:
            return
        now = time.monotonic() if now is None else now
        last = self._last_heartbeat.get(peer_id)
        self._last_heartbeat[peer_id] = now
        if last is not None:
            exceeded = now - last - 2 * self.heartbeat_interval_s
            if exceeded > 0:
                self.on_late_heartbeat(peer_id, exceeded)

    def reset_heartbeats(self) -> None:
        """Forget when heartbeats were sent: a new term's leader starts its own rhythm (etcd resets on
        every leadership change)."""
        self._last_heartbeat.clear()
