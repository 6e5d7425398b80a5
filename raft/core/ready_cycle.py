"""The Ready cycle: the order in which an embedder persists, sends, applies and advances.

The rules live here once. The synchronous embedders (the interaction scripts, the
simulator's core-only mode, tests) call `run_ready_cycle` with their own hooks; the
asyncio driver (raft/node.py) runs the same steps in the same order, with awaits, and
asks `holds_messages_until_applied` the same question.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from raft.core.rawnode import RawNode
from raft.core.types import Message, Ready, StateRole


class ReadyHooks(Protocol):
    """What an embedder does with each part of a Ready."""

    def send(self, messages: Sequence[Message]) -> None:
        """Hand messages to the network (never blocks on the peer)."""
        ...

    def persist(self, ready: Ready) -> None:
        """Make the Ready's hard state, entries and snapshot durable (fsync when `must_sync`);
        called for every Ready, even one with nothing to write."""
        ...

    def apply(self, ready: Ready) -> None:
        """Apply the snapshot and committed entries in order, calling `apply_conf_change` for
        each CONF_CHANGE entry; act on the read states."""
        ...


def holds_messages_until_applied(ready: Ready, role: StateRole) -> bool:
    """Whether a follower or candidate sends this Ready's messages only once its conf changes are applied.

    Kept to match etcd's server (etcdserver/raft.go waits here before sending), but no safety
    property rests on it in this core. A follower's messages are replies and forwarded requests
    built from its term, vote and log, never from its configuration (thesis §4.1: the
    configuration decides whom a member counts and whether it may campaign). A candidate, whose
    vote requests do name the voters, never has a conf change to hold for: it may not campaign
    while one is committed and unapplied, and it commits nothing until it is a follower again.
    So the hold changes when messages leave, not what they say, and no other member can tell it
    from an application that applied at once. The dangers etcd's comment names (counting votes
    against, or winning as sole voter of, a membership not yet switched to) need the core to act
    on a stale configuration, and two other rules forbid that, each with a test that fails
    without it: the core refuses to campaign while a committed conf change is unapplied
    (`Raft._hup`; tests/raft/test_node_contract.py), and a conf change is applied before `advance`
    (raft/node.py; the driven simulator's ready-contract check in tests/raft/test_sim_driven.py).
    A leader replicates at once (thesis §10.2.1): its new configuration only counts once applied.
    """
    return role is not StateRole.LEADER and ready.commits_conf_change


def run_ready_cycle(node: RawNode, ready: Ready, hooks: ReadyHooks) -> None:
    """Carry out `ready` (just taken from `node`) in the order the core's contract demands."""
    hold = holds_messages_until_applied(ready, node.role)
    if not hold and ready.messages:
        hooks.send(ready.messages)
    hooks.persist(ready)
    if not hold and ready.messages_after_append:
        hooks.send(ready.messages_after_append)
    hooks.apply(ready)
    if hold and (ready.messages or ready.messages_after_append):
        hooks.send(ready.messages + ready.messages_after_append)
    node.advance(ready)
