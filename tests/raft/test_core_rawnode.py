"""The RawNode facade: bootstrap, restart, Ready/advance, error cases, determinism."""

from __future__ import annotations

import pytest

from raft.core import (
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    EntryType,
    Message,
    MessageType,
    ProposalDropped,
    RaftError,
    RawNode,
    Ready,
    Snapshot,
    SnapshotMetadata,
    StateRole,
    decode_conf_change,
    describe_role_transitions,
)
from raft.core.memory_storage import MemoryStorage
from raft.core.roles import TRANSITIONS, RoleEvent

ADD = ConfChangeType.ADD_NODE


class Cluster:
    """In-process members exchanging messages directly; records what each applied."""

    def __init__(self, ids: tuple[int, ...], **config: object) -> None:
        self.storages = {i: MemoryStorage() for i in ids}
        self.nodes = {i: RawNode(Config(id=i, **config), self.storages[i]) for i in ids}  # type: ignore[arg-type]
        self.applied: dict[int, list[bytes]] = {i: [] for i in ids}
        self.trace: list[str] = []
        for node in self.nodes.values():
            node.bootstrap([ConfChange(ADD, i) for i in ids])

    def handle(self, member_id: int, rd: Ready) -> list[Message]:
        node = self.nodes[member_id]
        self.storages[member_id].save(rd.hard_state, list(rd.entries), rd.snapshot)
        for e in rd.committed_entries:
            if e.type is EntryType.CONF_CHANGE:
                node.apply_conf_change(decode_conf_change(e.data))
            elif e.data:
                self.applied[member_id].append(e.data)
        node.advance(rd)
        return list(rd.messages + rd.messages_after_append)

    def stabilize(self) -> None:
        moved = True
        while moved:
            moved = False
            outbox: list[Message] = []
            for member_id, node in self.nodes.items():
                if node.has_ready():
                    moved = True
                    outbox.extend(self.handle(member_id, node.ready()))
            for m in outbox:
                self.trace.append(f"{m.sender}->{m.to} {m.type.name} t{m.term} i{m.index} c{m.commit}")
                if m.to in self.nodes:
                    self.nodes[m.to].step(m)

    def elect(self, member_id: int) -> None:
        self.stabilize()
        self.nodes[member_id].campaign()
        self.stabilize()
        assert self.nodes[member_id].role is StateRole.LEADER


def test_bootstrap_commits_one_conf_change_per_peer() -> None:
    node = RawNode(Config(id=1), MemoryStorage())
    node.bootstrap([ConfChange(ADD, 1), ConfChange(ADD, 2)])
    rd = node.ready()
    assert rd.hard_state is not None and (rd.hard_state.term, rd.hard_state.commit) == (1, 2)
    assert [(e.term, e.index, e.type) for e in rd.entries] == [(1, 1, EntryType.CONF_CHANGE),
                                                                (1, 2, EntryType.CONF_CHANGE)]
    assert rd.committed_entries == rd.entries
    assert rd.must_sync
    assert node.status().conf_state == ConfState(voters=(1, 2))


def test_bootstrap_refuses_a_storage_that_has_a_log() -> None:
    storage = MemoryStorage()
    first = RawNode(Config(id=1), storage)
    first.bootstrap([ConfChange(ADD, 1)])
    rd = first.ready()
    storage.save(rd.hard_state, list(rd.entries), rd.snapshot)
    with pytest.raises(RaftError):
        RawNode(Config(id=1), storage).bootstrap([ConfChange(ADD, 1)])


def test_single_voter_elects_itself_and_commits_alone() -> None:
    cluster = Cluster((1,))
    cluster.elect(1)
    cluster.nodes[1].propose(b"solo")
    rd = cluster.nodes[1].ready()
    assert [e.data for e in rd.entries] == [b"solo"]
    assert [e.data for e in rd.committed_entries] == [b"solo"]
    cluster.handle(1, rd)
    assert cluster.applied[1] == [b"solo"]


def test_three_members_apply_the_same_entries_in_the_same_order() -> None:
    cluster = Cluster((1, 2, 3))
    cluster.elect(1)
    for i in range(20):
        cluster.nodes[1 + i % 3].propose(f"v{i}".encode())
        cluster.stabilize()
    assert cluster.applied[1] == cluster.applied[2] == cluster.applied[3]
    assert sorted(cluster.applied[1]) == sorted(f"v{i}".encode() for i in range(20))


def test_restart_restores_state_and_membership_without_reapplying() -> None:
    cluster = Cluster((1, 2, 3))
    cluster.elect(1)
    cluster.nodes[1].propose(b"before-restart")
    cluster.stabilize()
    before = cluster.nodes[2].status()
    restarted = RawNode(Config(id=2, applied=before.applied), cluster.storages[2])
    after = restarted.status()
    assert (after.term, after.vote, after.commit, after.applied) == (before.term, before.vote, before.commit,
                                                                     before.applied)
    # The bootstrap conf changes were applied before the restart: membership comes back without them.
    assert after.conf_state == ConfState(voters=(1, 2, 3))
    assert not restarted.ready().committed_entries


def test_ready_taken_twice_before_advance_does_not_repeat_entries() -> None:
    cluster = Cluster((1,))
    cluster.elect(1)
    node = cluster.nodes[1]
    node.propose(b"a")
    first = node.ready()
    node.propose(b"b")
    second = node.ready()
    assert [e.data for e in first.entries] == [b"a"]
    assert [e.data for e in second.entries] == [b"b"]
    assert [e.data for e in second.committed_entries] == [b"b"]
    storage = cluster.storages[1]
    for rd in (first, second):
        storage.save(rd.hard_state, list(rd.entries), rd.snapshot)
        node.advance(rd)
    assert node.status().applied == node.status().last_index == 4
    assert not node.has_ready()


def test_local_message_types_cannot_be_stepped() -> None:
    node = RawNode(Config(id=1), MemoryStorage())
    for kind in (MessageType.HUP, MessageType.BEAT, MessageType.CHECK_QUORUM, MessageType.UNREACHABLE,
                 MessageType.SNAP_STATUS):
        with pytest.raises(RaftError):
            node.step(Message(kind, to=1, sender=2))


def test_responses_from_unknown_members_are_ignored() -> None:
    cluster = Cluster((1, 2, 3))
    cluster.elect(1)
    leader = cluster.nodes[1]
    leader.step(Message(MessageType.APP_RESP, to=1, sender=9, term=leader.status().term, index=100))
    assert 9 not in leader.status().progress


def test_proposals_and_reads_without_a_leader_are_dropped() -> None:
    node = RawNode(Config(id=1), MemoryStorage())
    node.bootstrap([ConfChange(ADD, 1), ConfChange(ADD, 2), ConfChange(ADD, 3)])
    with pytest.raises(ProposalDropped):
        node.propose(b"x")
    with pytest.raises(ProposalDropped):
        node.read_index(b"ctx")
    with pytest.raises(ValueError):
        node.read_index(b"")


def test_one_conf_change_at_a_time() -> None:
    cluster = Cluster((1, 2, 3))
    cluster.elect(1)
    leader = cluster.nodes[1]
    leader.propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 3))
    with pytest.raises(ProposalDropped):
        leader.propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 2))
    cluster.stabilize()
    assert leader.status().conf_state == ConfState(voters=(1, 2))
    leader.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER_NODE, 3))
    cluster.stabilize()
    assert leader.status().conf_state == ConfState(voters=(1, 2), learners=(3,))


def test_a_forwarded_conf_change_that_must_wait_becomes_a_no_op() -> None:
    cluster = Cluster((1, 2, 3))
    cluster.elect(1)
    cluster.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER_NODE, 4))
    # The follower cannot know a change is pending: it forwards, and the leader refuses quietly.
    cluster.nodes[2].propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER_NODE, 5))
    cluster.stabilize()
    assert cluster.nodes[1].status().conf_state == ConfState(voters=(1, 2, 3), learners=(4,))


def test_the_last_voter_cannot_be_removed() -> None:
    cluster = Cluster((1,))
    cluster.elect(1)
    with pytest.raises(ProposalDropped):
        cluster.nodes[1].propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 1))


def test_same_inputs_give_the_same_outputs() -> None:
    def run() -> list[str]:
        cluster = Cluster((1, 2, 3), random_seed=7)
        cluster.stabilize()
        for _ in range(40):
            for node in cluster.nodes.values():
                node.tick()
            cluster.stabilize()
        leader = next(n for n in cluster.nodes.values() if n.role is StateRole.LEADER)
        leader.propose(b"x")
        cluster.stabilize()
        return cluster.trace

    assert run() == run()


def test_ticks_alone_elect_exactly_one_leader() -> None:
    cluster = Cluster((1, 2, 3))
    cluster.stabilize()
    for _ in range(60):
        for node in cluster.nodes.values():
            node.tick()
        cluster.stabilize()
    leaders = [n for n in cluster.nodes.values() if n.role is StateRole.LEADER]
    assert len(leaders) == 1
    assert {n.leader_id for n in cluster.nodes.values()} == {leaders[0].status().id}


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        RawNode(Config(id=0), MemoryStorage())
    with pytest.raises(ValueError):
        RawNode(Config(id=1, election_tick=1, heartbeat_tick=1), MemoryStorage())


def test_role_table_covers_every_role_and_reads_as_text() -> None:
    roles = {t.role for t in TRANSITIONS} | {t.next_role for t in TRANSITIONS}
    assert roles == set(StateRole)
    assert {t.event for t in TRANSITIONS} == set(RoleEvent)
    text = describe_role_transitions()
    assert "follower" in text and "§5.2" in text and len(text.splitlines()) == len(TRANSITIONS)


def test_a_transition_missing_from_the_table_is_refused() -> None:
    node = RawNode(Config(id=1), MemoryStorage())
    with pytest.raises(RaftError):
        node.raft._change_role(RoleEvent.VOTE_WON)  # a follower cannot win an election


def test_follower_ignores_a_snapshot_while_a_conf_change_it_was_handed_is_unapplied() -> None:
    # Applied after the snapshot's membership, the older change would corrupt it (thesis §4.1).
    cluster = Cluster((1, 2, 3))
    cluster.elect(1)
    cluster.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER_NODE, 4))
    follower, held = cluster.nodes[2], None
    for _ in range(10):
        outbox: list[Message] = []
        for member_id, node in cluster.nodes.items():
            if not node.has_ready() or (member_id == 2 and held is not None):
                continue
            rd = node.ready()
            if member_id == 2 and rd.commits_conf_change:
                held = rd  # persisted and answered, but the application has not applied it yet
                cluster.storages[2].save(rd.hard_state, list(rd.entries), rd.snapshot)
                continue
            outbox.extend(cluster.handle(member_id, rd))
        for m in outbox:
            if m.to in cluster.nodes:  # learner 4 is never started here
                cluster.nodes[m.to].step(m)
    assert held is not None
    term, committed = follower.status().term, follower.status().commit
    snapshot = Snapshot(SnapshotMetadata(index=50, term=term, conf_state=ConfState(voters=(1, 2, 3),
                                                                                   learners=(4, 5))))
    install = Message(MessageType.SNAP, to=2, sender=1, term=term, snapshot=snapshot)
    follower.step(install)
    assert follower.status().commit == committed
    assert follower.status().conf_state == ConfState(voters=(1, 2, 3))
    cluster.handle(2, held)  # applies the conf change, then advances
    assert follower.status().conf_state == ConfState(voters=(1, 2, 3), learners=(4,))
    follower.step(install)
    assert follower.status().commit == 50
    assert follower.status().conf_state == ConfState(voters=(1, 2, 3), learners=(4, 5))


def sent(messages: list[Message], type_: MessageType) -> list[tuple[int, int, int]]:
    """(sender, recipient, entries) of each message of `type_`."""
    return [(m.sender, m.to, len(m.entries)) for m in messages if m.type is type_]


@pytest.mark.parametrize("batch_appends", [False, True])
def test_batched_appends_send_one_message_per_follower_per_ready(batch_appends: bool) -> None:
    c = Cluster((1, 2, 3), batch_appends=batch_appends)
    c.elect(1)
    leader, follower = c.nodes[1], c.nodes[2]
    for i in range(5):
        leader.propose(b"l%d" % i)
        follower.propose(b"f%d" % i)
    forwarded = c.handle(2, follower.ready())
    # A follower forwards its proposals to the leader: five PROPs, or one holding all five.
    assert sent(forwarded, MessageType.PROP) == ([(2, 1, 5)] if batch_appends else [(2, 1, 1)] * 5)
    for m in forwarded:
        leader.step(m)
    appends = c.handle(1, leader.ready())
    # The leader sends each follower one APP per proposal, or one with every entry proposed since its
    # last Ready (its own five and the five forwarded).
    expected = [(1, 2, 10), (1, 3, 10)] if batch_appends else [(1, 2, 1), (1, 3, 1)] * 10
    assert sorted(sent(appends, MessageType.APP)) == sorted(expected)
    for m in appends:
        c.nodes[m.to].step(m)
    acks = [m for member_id in (2, 3) for m in c.handle(member_id, c.nodes[member_id].ready())]
    for m in acks:
        leader.step(m)
    commits = c.handle(1, leader.ready())
    # The commit index reaches the followers in one empty APP each, however many acknowledgements moved it.
    assert sent(commits, MessageType.APP).count((1, 2, 0)) == (1 if batch_appends else len(acks) // 2)
    for m in commits:
        c.nodes[m.to].step(m)
    c.stabilize()
    expected_data = [b"l%d" % i for i in range(5)] + [b"f%d" % i for i in range(5)]
    for member_id in (1, 2, 3):
        assert c.applied[member_id] == expected_data


def test_batched_forwards_are_dropped_when_the_leader_is_lost_before_the_ready() -> None:
    c = Cluster((1, 2, 3), batch_appends=True)
    c.elect(1)
    follower = c.nodes[2]
    follower.propose(b"lost")
    follower.forget_leader()
    assert sent(c.handle(2, follower.ready()), MessageType.PROP) == []
    c.stabilize()
    assert c.applied[1] == []


@pytest.mark.parametrize("batch_appends", [False, True])
def test_batched_reads_share_one_heartbeat_round(batch_appends: bool) -> None:
    c = Cluster((1, 2, 3), batch_appends=batch_appends)
    c.elect(1)
    leader = c.nodes[1]
    for ctx in (b"r1", b"r2", b"r3"):
        leader.read_index(ctx)
    rd = leader.ready()
    heartbeats = [m for m in c.handle(1, rd) if m.type is MessageType.HEARTBEAT]
    # One round per read, or one round carrying the newest read's context.
    assert [m.context for m in heartbeats if m.to == 2] == ([b"r3"] if batch_appends else [b"r1", b"r2", b"r3"])
    for m in heartbeats:
        c.nodes[m.to].step(m)
    for member_id in (2, 3):
        for m in c.handle(member_id, c.nodes[member_id].ready()):
            leader.step(m)
    rd = leader.ready()
    commit = leader.raft.log.committed
    assert sorted((s.request_ctx, s.index) for s in rd.read_states) == [(b"r1", commit), (b"r2", commit),
                                                                        (b"r3", commit)]


def test_batched_forwards_are_split_to_the_message_size_limit() -> None:
    # Many large proposals held by a follower must not become one message too large to send.
    c = Cluster((1, 2, 3), batch_appends=True, max_size_per_msg=2048)
    c.elect(1)
    follower = c.nodes[2]
    for i in range(5):
        follower.propose(bytes([i]) * 1500)
    props = [m for m in c.handle(2, follower.ready()) if m.type is MessageType.PROP]
    assert [len(m.entries) for m in props] == [1, 1, 1, 1, 1]
    for m in props:
        c.nodes[1].step(m)
    c.stabilize()
    assert c.applied[3] == [bytes([i]) * 1500 for i in range(5)]
