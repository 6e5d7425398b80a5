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
    """Whether a member must apply this Ready's conf changes before any of its messages leave.

    A follower or candidate that learns of a committed membership change sends nothing until
    the change is applied: its next votes and acknowledgements must be counted against the
    membership it implies (thesis §4.1; etcd's server waits at the same point). A leader
    replicates first (thesis §10.2.1): its new configuration only counts once applied.
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
