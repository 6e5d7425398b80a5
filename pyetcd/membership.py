"""Cluster membership: the members a cluster has, as the applier records them in log order.

A member's Raft identity (its ID and peer URLs) arrives in a ConfChange's context; its
name and client URLs arrive later, when the member publishes them after it starts. Until
then it is "unstarted", as etcd lists it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from pyetcd.ids import format_id

CLUSTER_BUCKET = "cluster"
MEMBERS_BUCKET = "members"
REMOVED_BUCKET = "members_removed"
CLUSTER_VERSION_KEY = b"clusterVersion"
"""In CLUSTER_BUCKET: the cluster version the log set, e.g. `3.4.0` (etcd's backend key of that name)."""


@dataclass(frozen=True, slots=True)
class Member:
    """One member of the cluster (etcd's membership.Member)."""

    id: int
    peer_urls: tuple[str, ...]
    name: str = ""
    client_urls: tuple[str, ...] = ()
    is_learner: bool = False

    @property
    def is_started(self) -> bool:
        return self.name != ""

    def encode(self) -> bytes:
        """The member record as it goes in a ConfChange context and in the store."""
        return json.dumps({
            "id": format_id(self.id), "peerURLs": list(self.peer_urls), "name": self.name,
            "clientURLs": list(self.client_urls), "isLearner": self.is_learner,
        }, sort_keys=True).encode()

    @staticmethod
    def decode(data: bytes) -> Member:
        raw = json.loads(data)
        return Member(id=int(raw["id"], 16), peer_urls=tuple(raw.get("peerURLs", ())), name=raw.get("name", ""),
                      client_urls=tuple(raw.get("clientURLs", ())), is_learner=bool(raw.get("isLearner", False)))

    def store_key(self) -> bytes:
        return member_key(self.id)


def member_key(member_id: int) -> bytes:
    return format_id(member_id).encode()


class Membership:
    """The in-memory view of the members, kept equal to the store's members bucket by the applier."""

    def __init__(self, cluster_id: int = 0, members: list[Member] | None = None,
                 removed: set[int] | None = None, version: str | None = None) -> None:
        self.cluster_id = cluster_id
        self._members: dict[int, Member] = {m.id: m for m in members or []}
        self.removed: set[int] = set(removed or ())
        self.version = version
        """The cluster version the log set (`3.4.0`), None while the cluster has not decided one."""

    def get(self, member_id: int) -> Member | None:
        return self._members.get(member_id)

    def __contains__(self, member_id: object) -> bool:
        return member_id in self._members

    def members(self) -> list[Member]:
        """Members ordered by ID, as etcd lists them."""
        return [self._members[mid] for mid in sorted(self._members)]

    def voters(self) -> list[Member]:
        return [m for m in self.members() if not m.is_learner]

    def learners(self) -> list[Member]:
        return [m for m in self.members() if m.is_learner]

    def add(self, member: Member) -> None:
        self._members[member.id] = member

    def remove(self, member_id: int) -> Member | None:
        self.removed.add(member_id)
        return self._members.pop(member_id, None)

    def update(self, member: Member) -> None:
        self._members[member.id] = member

    def set_attributes(self, member_id: int, name: str, client_urls: tuple[str, ...]) -> Member | None:
        member = self._members.get(member_id)
        if member is None:
            return None
        updated = replace(member, name=name, client_urls=client_urls)
        self._members[member_id] = updated
        return updated

    def promote(self, member_id: int) -> Member | None:
        member = self._members.get(member_id)
        if member is None:
            return None
        updated = replace(member, is_learner=False)
        self._members[member_id] = updated
        return updated

    def peer_url_in_use(self, urls: tuple[str, ...], except_id: int = 0) -> bool:
        return any(url in m.peer_urls for m in self._members.values() if m.id != except_id for url in urls)

    def ready_to_add_voter(self) -> bool:
        """etcd's IsReadyToAddVotingMember: started voters must stay a quorum of the grown cluster."""
        voters = self.voters()
        started = sum(1 for m in voters if m.is_started)
        if started == 1 and len(voters) == 1:
            return True  # growing a one-member cluster, e.g. to restore its data elsewhere
        return started >= (len(voters) + 1) // 2 + 1

    def ready_to_remove_voter(self, member_id: int) -> bool:
        """etcd's IsReadyToRemoveVotingMember: the started voters left must still be a quorum."""
        voters = [m for m in self.voters() if m.id != member_id]
        if len(voters) == len(self.voters()):
            return True
        started = sum(1 for m in voters if m.is_started)
        return started >= len(voters) // 2 + 1 if voters else False
