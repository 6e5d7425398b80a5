"""The Ready cycle: the order in which an embedder persists, sends, applies and advances.

The order is written once, in `ready_steps`. Every embedder runs it: the synchronous
ones (the interaction scripts, the simulator's core-only mode) through `run_ready_cycle`
with `ReadyHooks`, the asyncio driver (raft/node.py) through `run_ready_cycle_async`
with `AsyncReadyHooks`, whose log write and wait for the applier may suspend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from raft.core.rawnode import RawNode
from raft.core.types import Message, Ready, StateRole


class ReadyHooks(Protocol):
    """What a synchronous embedder does with each part of a Ready."""

    def send(self, messages: Sequence[Message]) -> None:
        """Hand messages to the network (never blocks on the peer)."""
        ...

    def persist(self, ready: Ready) -> None:
        """Make the Ready's hard state, entries and snapshot durable (fsync when `must_sync`);
        called for every Ready, even one with nothing to write."""
        ...

    def apply(self, ready: Ready) -> None:
        """Apply the snapshot and committed entries in order, calling `apply_conf_change` for
        each CONF_CHANGE entry, before returning; act on the read states."""
        ...


class AsyncReadyHooks(Protocol):
    """What an asyncio embedder does with each part of a Ready; applying may run behind it."""

    def send(self, messages: Sequence[Message]) -> None:
        """Hand messages to the network (never blocks on the peer)."""
        ...

    async def persist(self, ready: Ready) -> None:
        """Make the Ready's hard state, entries and snapshot durable (fsync when `must_sync`)."""
        ...

    def apply(self, ready: Ready) -> None:
        """Hand the snapshot and committed entries to the application, which may apply them later."""
        ...

    async def wait_applied(self) -> None:
        """Return once the application applied everything handed to it so far."""
        ...


class Step(Enum):
    """One step of a Ready cycle; SEND steps carry the messages they send."""

    SEND = "send"
    PERSIST = "persist"
    APPLY = "apply"
    WAIT_APPLIED = "wait-applied"


@dataclass(frozen=True, slots=True)
class ReadyStep:
    step: Step
    messages: Sequence[Message] = ()


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
    (the WAIT_APPLIED step below; the driven simulator's ready-contract check in
    tests/raft/test_sim_driven.py).
    A leader replicates at once (thesis §10.2.1): its new configuration only counts once applied.
    """
    return role is not StateRole.LEADER and ready.commits_conf_change


def applies_before_persisting(ready: Ready) -> bool:
    """Whether this Ready's committed entries go to the application before its write.

    Only when the Ready writes no entries and no snapshot: then everything it commits is already
    on this member's disk and on a quorum's, and only the new commit index is left to write. A
    member that loses that write recovers the commit index from its applied index
    (`Raft._restore_applied`); etcd applies while its WAL write runs for the same reason. An
    asyncio embedder saves a thread round trip on every commit this way.
    """
    return bool(ready.committed_entries) and not ready.entries and (
        ready.snapshot is None or ready.snapshot.is_empty)


def ready_steps(ready: Ready, role: StateRole) -> list[ReadyStep]:
    """The steps that carry out `ready`, taken from a member in `role`, before `advance`.

    1. Messages the core lets leave early (appends, heartbeats, vote requests) go out in
       parallel with the member's own log write (thesis §10.2.1). Safe because whatever a
       commit makes visible comes out in a later Ready, taken only after this one advanced.
    2. Persist: a vote or an append acknowledged must survive a crash (§5, Figure 2).
    3. The acknowledgements (messages_after_append), now backed by the disk.
    4. Hand the committed entries to the application (before step 2 when they are already
       durable: `applies_before_persisting`).
    5. A Ready that commits a conf change waits until it is applied: `advance` moves the applied
       index past it, and the core must not count votes and quorums, or accept the next conf
       change, with a membership it has not switched to (thesis §4.1). Other Readies leave the
       application working behind the cycle.
    6. Messages held for the conf change (`holds_messages_until_applied`).
    """
    hold = holds_messages_until_applied(ready, role)
    apply_first = applies_before_persisting(ready)
    steps: list[ReadyStep] = []
    if not hold and ready.messages:
        steps.append(ReadyStep(Step.SEND, ready.messages))
    if apply_first:
        steps.append(ReadyStep(Step.APPLY))
    steps.append(ReadyStep(Step.PERSIST))
    if not hold and ready.messages_after_append:
        steps.append(ReadyStep(Step.SEND, ready.messages_after_append))
    if not apply_first:
        steps.append(ReadyStep(Step.APPLY))
    if ready.commits_conf_change:
        steps.append(ReadyStep(Step.WAIT_APPLIED))
    if hold and (ready.messages or ready.messages_after_append):
        steps.append(ReadyStep(Step.SEND, [*ready.messages, *ready.messages_after_append]))
    return steps


def run_ready_cycle(node: RawNode, ready: Ready, hooks: ReadyHooks) -> None:
    """Carry out `ready` (just taken from `node`) in the order of `ready_steps`, then advance.

    WAIT_APPLIED needs nothing here: a synchronous `apply` has applied when it returns.
    """
    for step in ready_steps(ready, node.role):
        if step.step is Step.SEND:
            hooks.send(step.messages)
        elif step.step is Step.PERSIST:
            hooks.persist(ready)
        elif step.step is Step.APPLY:
            hooks.apply(ready)
    node.advance(ready)


async def run_ready_cycle_async(node: RawNode, ready: Ready, hooks: AsyncReadyHooks) -> None:
    """`run_ready_cycle` for an asyncio embedder: the same steps, awaiting the log write and the applier.

    Call it right after taking `ready` from `node`, before anything else steps the core.
    """
    for step in ready_steps(ready, node.role):
        if step.step is Step.SEND:
            hooks.send(step.messages)
        elif step.step is Step.PERSIST:
            await hooks.persist(ready)
        elif step.step is Step.APPLY:
            hooks.apply(ready)
        else:
            await hooks.wait_applied()
    node.advance(ready)
