"""An in-memory peer transport: RaftNodes of one process exchange messages on the event loop.

It plays the part raft/transport.py's gRPC transport plays between processes (hashicorp/raft
ships the same pair): `send` never blocks, delivery happens on a later turn of the event
loop, a snapshot carries the sending application's state (`snapshot_to_send`) and its
outcome is reported back (`report_snapshot`), and a message to a peer that cannot be
reached is reported (`report_unreachable`) so the leader falls back to probing it.

A `LinkPolicy` decides each message's fate: the delays of the copies that arrive (none:
it is lost; two: it is duplicated). The default delivers everything once, at once. The
simulator passes a seeded one.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence

from raft.core.types import Message, MessageType
from raft.transport import RaftHandler

LinkPolicy = Callable[[Message], Sequence[float]]
"""Seconds until each copy of `message` arrives; empty when it is lost on the way."""


def deliver_at_once(message: Message) -> Sequence[float]:
    return (0.0,)


class MemoryNetwork:
    """The links between the MemoryTransports of one process; links can be cut one way."""

    def __init__(self, policy: LinkPolicy = deliver_at_once) -> None:
        self.policy = policy
        self._members: dict[int, MemoryTransport] = {}
        self._cut: set[tuple[int, int]] = set()

    def transport(self, member_id: int) -> MemoryTransport:
        """A new transport for `member_id` (replacing the one of an earlier incarnation)."""
        transport = MemoryTransport(member_id, self)
        self._members[member_id] = transport
        return transport

    def remove(self, transport: MemoryTransport) -> None:
        """Take `transport` off the network: messages to its member are lost from now on."""
        if self._members.get(transport.member_id) is transport:
            del self._members[transport.member_id]

    def cut(self, src: int, dst: int) -> None:
        """Messages from `src` to `dst` no longer arrive (and `src`'s transport notices)."""
        self._cut.add((src, dst))

    def heal(self) -> None:
        self._cut.clear()

    def link_open(self, src: int, dst: int) -> bool:
        return (src, dst) not in self._cut and dst in self._members

    def route(self, sender: MemoryTransport, messages: Sequence[Message]) -> None:
        loop = asyncio.get_running_loop()
        for message in messages:
            if message.type is MessageType.SNAP and sender.handler is not None:
                # As over gRPC: the application's applied state replaces the log's metadata-only snapshot.
                message = dataclasses.replace(message, snapshot=sender.handler.snapshot_to_send(message))
            delays = self.policy(message) if self.link_open(message.sender, message.to) else ()
            if not delays:
                loop.call_soon(sender.lost, message)
            for delay in delays:
                loop.call_later(delay, self._arrive, sender, message)

    def _arrive(self, sender: MemoryTransport, message: Message) -> None:
        receiver = self._members.get(message.to)
        if receiver is None or receiver.handler is None or not self.link_open(message.sender, message.to):
            sender.lost(message)
            return
        receiver.handler.receive(message)
        if message.type is MessageType.SNAP:
            sender.snapshot_sent(message.to)


class MemoryTransport:
    """One member's end of a MemoryNetwork (implements raft.transport.Transport)."""

    def __init__(self, member_id: int, network: MemoryNetwork) -> None:
        self.member_id = member_id
        self.network = network
        self.handler: RaftHandler | None = None

    def attach(self, handler: RaftHandler) -> None:
        self.handler = handler

    def send(self, messages: Sequence[Message]) -> None:
        if self.handler is not None:
            self.network.route(self, messages)

    def close(self) -> None:
        """Leave the network: nothing more is delivered to or reported from this member."""
        self.network.remove(self)
        self.handler = None

    def lost(self, message: Message) -> None:
        """A message did not arrive; a snapshot's sender hears it failed, any other that the peer
        is unreachable (a transport notices a broken link, not a single lost packet, but telling
        the leader more often only makes it probe sooner)."""
        if self.handler is None:
            return
        if message.type is MessageType.SNAP:
            self.handler.report_snapshot(message.to, True)
        else:
            self.handler.report_unreachable(message.to)

    def snapshot_sent(self, peer_id: int) -> None:
        if self.handler is not None:
            self.handler.report_snapshot(peer_id, False)
