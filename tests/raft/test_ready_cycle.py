"""The Ready cycle's order (raft/core/ready_cycle.py), and that both runners follow it.

The simulator, the interaction scripts and the asyncio driver all run `ready_steps`; the
simulations check the properties that rest on it, this pins the order itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import pytest

from raft.core import Entry, EntryType, HardState, Message, MessageType, RawNode, Ready, StateRole
from raft.core.ready_cycle import (
    ReadyStep,
    Step,
    ready_steps,
    run_ready_cycle,
    run_ready_cycle_async,
)

APPEND = Message(MessageType.APP, to=2, sender=1, term=1)
ACK = Message(MessageType.APP_RESP, to=1, sender=2, term=1)
CONF_CHANGE = Entry(term=1, index=2, type=EntryType.CONF_CHANGE)


def ready(*, conf_change: bool) -> Ready:
    committed = (Entry(term=1, index=1), CONF_CHANGE) if conf_change else (Entry(term=1, index=1),)
    return Ready(hard_state=HardState(term=1, commit=len(committed)), entries=(Entry(term=1, index=3),),
                 committed_entries=committed, messages=(APPEND,), messages_after_append=(ACK,),
                 must_sync=True)


def test_a_leader_replicates_before_its_own_write_and_acknowledges_after_it() -> None:
    assert ready_steps(ready(conf_change=False), StateRole.LEADER) == [
        ReadyStep(Step.SEND, (APPEND,)), ReadyStep(Step.PERSIST), ReadyStep(Step.SEND, (ACK,)),
        ReadyStep(Step.APPLY)]


def test_a_leader_committing_a_conf_change_waits_for_the_applier_but_sends_at_once() -> None:
    assert ready_steps(ready(conf_change=True), StateRole.LEADER) == [
        ReadyStep(Step.SEND, (APPEND,)), ReadyStep(Step.PERSIST), ReadyStep(Step.SEND, (ACK,)),
        ReadyStep(Step.APPLY), ReadyStep(Step.WAIT_APPLIED)]


def test_a_follower_committing_a_conf_change_sends_only_once_it_is_applied() -> None:
    assert ready_steps(ready(conf_change=True), StateRole.FOLLOWER) == [
        ReadyStep(Step.PERSIST), ReadyStep(Step.APPLY), ReadyStep(Step.WAIT_APPLIED),
        ReadyStep(Step.SEND, [APPEND, ACK])]


def test_entries_already_on_disk_are_applied_before_the_new_commit_index_is_written() -> None:
    commit_only = Ready(hard_state=HardState(term=1, commit=1), committed_entries=(Entry(term=1, index=1),),
                        messages=(APPEND,))
    assert ready_steps(commit_only, StateRole.LEADER) == [
        ReadyStep(Step.SEND, (APPEND,)), ReadyStep(Step.APPLY), ReadyStep(Step.PERSIST)]
    # Entries this very Ready writes are applied only once they are on disk (the tests above).


def test_a_ready_with_nothing_to_send_is_still_persisted_and_applied() -> None:
    assert ready_steps(Ready(), StateRole.FOLLOWER) == [ReadyStep(Step.PERSIST), ReadyStep(Step.APPLY)]


class Recorder:
    """Stands in for the core and for both kinds of hooks, noting every call in order."""

    def __init__(self, role: StateRole) -> None:
        self.role = role
        self.calls: list[Any] = []

    def advance(self, rd: Ready) -> None:
        self.calls.append("advance")

    def send(self, messages: Sequence[Message]) -> None:
        self.calls.append(("send", list(messages)))

    def persist(self, rd: Ready) -> None:
        self.calls.append("persist")

    def apply(self, rd: Ready) -> None:
        self.calls.append("apply")


class AsyncRecorder(Recorder):
    async def persist(self, rd: Ready) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        self.calls.append("persist")

    async def wait_applied(self) -> None:
        await asyncio.sleep(0)
        self.calls.append("wait-applied")


def expected_calls(rd: Ready, role: StateRole, *, waits: bool) -> list[Any]:
    names = {Step.PERSIST: "persist", Step.APPLY: "apply", Step.WAIT_APPLIED: "wait-applied"}
    calls: list[Any] = [("send", list(s.messages)) if s.step is Step.SEND else names[s.step]
                        for s in ready_steps(rd, role) if waits or s.step is not Step.WAIT_APPLIED]
    return [*calls, "advance"]


@pytest.mark.parametrize("role", [StateRole.LEADER, StateRole.FOLLOWER])
@pytest.mark.parametrize("conf_change", [False, True])
def test_both_runners_take_the_steps_in_order_then_advance(role: StateRole, conf_change: bool) -> None:
    rd = ready(conf_change=conf_change)
    sync = Recorder(role)
    run_ready_cycle(cast(RawNode, sync), rd, sync)
    # A synchronous apply has applied when it returns: nothing to wait for.
    assert sync.calls == expected_calls(rd, role, waits=False)
    driver = AsyncRecorder(role)
    asyncio.run(run_ready_cycle_async(cast(RawNode, driver), rd, driver))
    assert driver.calls == expected_calls(rd, role, waits=True)
    assert ("wait-applied" in driver.calls) is conf_change
