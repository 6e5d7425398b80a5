"""A tiny interpreter for readable Raft scenarios: a script of commands, each followed by what it printed.

A script looks like this (see tests/raft/scenarios/*.txt)::

    # A comment explains what the reader should notice.
    add-nodes 3 voters=(1,2,3)
    ----
    ok

    campaign 1
    ----
    INFO 1 is starting a new election at term 1
    ...

Every member runs over a MemoryStorage and a trivial application that records what it
applied. Nothing moves unless a command moves it: `process-ready` runs a member's Ready
through the shared Ready cycle (raft/core/ready_cycle.py: queue the messages that may leave
now, persist, queue the acknowledgements, apply, advance); `deliver-msgs` hands queued
messages to their recipients. So a scenario shows each step of the protocol in order.

Commands:
  add-nodes N [voters=(..)] [learners=(..)] [index=I] [bootstrap=true] [pre-vote=B]
            [check-quorum=B] [election=T] [heartbeat=T] [max-inflight=K] [max-size=BYTES]
  campaign ID | propose ID DATA | propose-conf-change ID v4|l4|r2|u2 | read-index ID CTX
  transfer-leader ID TRANSFEREE | report-unreachable ID PEER | report-snapshot ID PEER [failed=B]
  forget-leader ID
  tick ID [N] | tick-heartbeat ID | tick-election ID
  process-ready [ID..] | deliver-msgs [ID..] [drop=(..)] | stabilize [ID..]
  isolate ID | recover | compact ID INDEX | status ID | raft-log ID | raft-state | applied ID
  log-level none|info      (none: commands print nothing but errors, to keep set-up steps short)
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from raft.core.codec import decode_conf_change
from raft.core.config import Config
from raft.core.memory_storage import MemoryStorage
from raft.core.rawnode import RawNode
from raft.core.ready_cycle import run_ready_cycle
from raft.core.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    RaftError,
    Ready,
    Snapshot,
    SnapshotMetadata,
    StateRole,
)

MT = MessageType


# -- rendering --------------------------------------------------------------------------------------------

def _quote(data: bytes) -> str:
    return '"' + data.decode("utf-8", errors="backslashreplace").replace('"', '\\"') + '"'


_CC_LETTER = {ConfChangeType.ADD_NODE: "v", ConfChangeType.ADD_LEARNER_NODE: "l",
              ConfChangeType.REMOVE_NODE: "r", ConfChangeType.UPDATE_NODE: "u"}


def describe_conf_change(cc: ConfChange) -> str:
    """`v4` adds voter 4 (or promotes learner 4), `l4` adds learner 4, `r4` removes 4, `u4` updates 4."""
    return f"{_CC_LETTER[cc.type]}{cc.node_id}"


def describe_entry(e: Entry) -> str:
    if e.type is EntryType.CONF_CHANGE:
        return f"{e.term}/{e.index} EntryConfChange {describe_conf_change(decode_conf_change(e.data))}"
    return f"{e.term}/{e.index} EntryNormal {_quote(e.data)}"


def describe_ids(ids: tuple[int, ...]) -> str:
    return "(" + ",".join(str(i) for i in ids) + ")"


def describe_conf_state(cs: ConfState) -> str:
    text = f"voters={describe_ids(cs.voters)}"
    if cs.learners:
        text += f" learners={describe_ids(cs.learners)}"
    return text


def describe_snapshot(s: Snapshot) -> str:
    m = s.metadata
    return f"index={m.index} term={m.term} {describe_conf_state(m.conf_state)}"


def describe_message(m: Message) -> str:
    """One line per message, e.g. `1->2 VOTE term=2 log=1/3` or `2->1 APP_RESP term=2 index=4`."""
    text = f"{m.sender}->{m.to} {m.type.name} term={m.term}"
    t = m.type
    if t in (MT.VOTE, MT.PRE_VOTE):
        text += f" log={m.log_term}/{m.index}"
        if m.context:
            text += " transfer"
    elif t in (MT.VOTE_RESP, MT.PRE_VOTE_RESP):
        if m.reject:
            text += " rejected"
    elif t is MT.APP:
        text += f" log={m.log_term}/{m.index} commit={m.commit}"
        if m.entries:
            text += " entries=[" + ", ".join(describe_entry(e) for e in m.entries) + "]"
    elif t is MT.APP_RESP:
        if m.reject:
            text += f" rejected index={m.index} hint={m.log_term}/{m.reject_hint}"
        else:
            text += f" index={m.index}"
    elif t is MT.HEARTBEAT:
        text += f" commit={m.commit}"
    elif t is MT.SNAP and m.snapshot is not None:
        text += f" snapshot=({describe_snapshot(m.snapshot)})"
    elif t is MT.PROP:
        text += " entries=[" + ", ".join(describe_entry(e) for e in m.entries) + "]"
    elif t is MT.READ_INDEX_RESP:
        text += f" index={m.index}"
    if m.context and t in (MT.HEARTBEAT, MT.HEARTBEAT_RESP, MT.READ_INDEX, MT.READ_INDEX_RESP):
        text += f" ctx={_quote(m.context)}"
    return text


def describe_hard_state(hs: HardState) -> str:
    return f"HardState term={hs.term} vote={hs.vote} commit={hs.commit}"


def describe_ready(rd: Ready) -> list[str]:
    lines = [f"Ready must-sync={str(rd.must_sync).lower()}"]
    if rd.soft_state is not None:
        lines.append(f"SoftState leader={rd.soft_state.leader_id} role={rd.soft_state.role.value}")
    if rd.hard_state is not None:
        lines.append(describe_hard_state(rd.hard_state))
    if rd.entries:
        lines.append("Entries:")
        lines.extend(describe_entry(e) for e in rd.entries)
    if rd.snapshot is not None:
        lines.append(f"Snapshot {describe_snapshot(rd.snapshot)}")
    if rd.committed_entries:
        lines.append("CommittedEntries:")
        lines.extend(describe_entry(e) for e in rd.committed_entries)
    if rd.messages:
        lines.append("Messages:")
        lines.extend(describe_message(m) for m in rd.messages)
    if rd.messages_after_append:
        lines.append("MessagesAfterAppend:")
        lines.extend(describe_message(m) for m in rd.messages_after_append)
    if rd.read_states:
        lines.append("ReadStates:")
        lines.extend(f"index={rs.index} ctx={_quote(rs.request_ctx)}" for rs in rd.read_states)
    return lines


# -- the environment --------------------------------------------------------------------------------------

@dataclass
class Member:
    """One member: its core, its storage and the application state it applied."""

    node: RawNode
    storage: MemoryStorage
    applied: list[str] = field(default_factory=list)


class _ScriptMemberHooks:
    """One member's side of the Ready cycle: a MemoryStorage, the script's message queue, a list app."""

    def __init__(self, member: Member, queue: list[Message]) -> None:
        self.member = member
        self.queue = queue

    def send(self, messages: Sequence[Message]) -> None:
        self.queue.extend(messages)

    def persist(self, rd: Ready) -> None:
        self.member.storage.save(rd.hard_state, list(rd.entries), rd.snapshot)

    def apply(self, rd: Ready) -> None:
        member, node = self.member, self.member.node
        if rd.snapshot is not None:
            member.applied = [f"snapshot@{rd.snapshot.metadata.index}"]
        for e in rd.committed_entries:
            if e.type is EntryType.CONF_CHANGE:
                cc = decode_conf_change(e.data)
                node.apply_conf_change(cc)
                member.applied.append(describe_conf_change(cc))
            elif e.data:
                member.applied.append(e.data.decode("utf-8", errors="backslashreplace"))
        if rd.committed_entries:
            # Like a real application, keep a snapshot of the applied state (with the membership it
            # implies) ready for a leader to send; `compact` decides when the log behind it goes.
            index = rd.committed_entries[-1].index
            if index > member.storage.snapshot().metadata.index:
                member.storage.create_snapshot(index, node.raft.trk.conf_state(),
                                               f"state@{index}".encode())


class InteractionEnv:
    """A cluster whose every step is a command; commands return the text they printed."""

    def __init__(self) -> None:
        self.members: dict[int, Member] = {}
        self.queue: list[Message] = []
        self.isolated: set[int] = set()
        self.log_enabled = True
        self._out: list[str] = []
        self._indent = ""
        self._commands: dict[str, Callable[[list[str], dict[str, str]], None]] = {
            "add-nodes": self._add_nodes, "campaign": self._campaign, "propose": self._propose,
            "propose-conf-change": self._propose_conf_change, "read-index": self._read_index,
            "transfer-leader": self._transfer_leader, "report-unreachable": self._report_unreachable,
            "report-snapshot": self._report_snapshot, "forget-leader": self._forget_leader,
            "tick": self._tick,
            "tick-heartbeat": self._tick_heartbeat, "tick-election": self._tick_election,
            "process-ready": self._process_ready_cmd, "deliver-msgs": self._deliver_msgs_cmd,
            "stabilize": self._stabilize, "isolate": self._isolate, "recover": self._recover,
            "compact": self._compact, "status": self._status, "raft-log": self._raft_log,
            "raft-state": self._raft_state, "applied": self._applied, "log-level": self._log_level,
        }

    # -- running --------------------------------------------------------------------------------------

    def run(self, command_line: str) -> str:
        """Run one command line; returns its output (`ok` when it printed nothing)."""
        words = shlex.split(command_line)
        name, args, kwargs = words[0], [], {}
        for w in words[1:]:
            if "=" in w:
                key, _, value = w.partition("=")
                kwargs[key] = value
            else:
                args.append(w)
        handler = self._commands.get(name)
        if handler is None:
            raise ValueError(f"unknown command {name!r}")
        self._out = []
        self._indent = ""
        try:
            handler(args, kwargs)
        except RaftError as err:
            self._out.append(f"error: {type(err).__name__}: {err}")
        return "\n".join(self._out) if self._out else "ok"

    def _print(self, line: str) -> None:
        if self.log_enabled:
            self._out.append(self._indent + line)

    def _logger(self, text: str) -> None:
        self._print("INFO " + text)

    def _node(self, arg: str) -> RawNode:
        return self.members[int(arg)].node

    @staticmethod
    def _ids(value: str) -> tuple[int, ...]:
        inner = value.strip().removeprefix("(").removesuffix(")")
        return tuple(int(x) for x in inner.split(",") if x.strip())

    @staticmethod
    def _bool(value: str) -> bool:
        if value not in ("true", "false"):
            raise ValueError(f"expected true or false, got {value!r}")
        return value == "true"

    # -- cluster setup --------------------------------------------------------------------------------

    def _add_nodes(self, args: list[str], kw: dict[str, str]) -> None:
        count = int(args[0])
        voters = self._ids(kw.get("voters", "()"))
        learners = self._ids(kw.get("learners", "()"))
        index = int(kw.get("index", "1"))
        bootstrap = self._bool(kw.get("bootstrap", "false"))
        first_id = max(self.members, default=0) + 1
        for member_id in range(first_id, first_id + count):
            storage = MemoryStorage()
            if voters and not bootstrap:
                # Every member starts from a snapshot at `index` (term 1) that holds the membership.
                storage.apply_snapshot(Snapshot(SnapshotMetadata(
                    index=index, term=1, conf_state=ConfState(voters=voters, learners=learners))))
                storage.set_hard_state(HardState(term=1, commit=index))
            config = Config(
                id=member_id,
                election_tick=int(kw.get("election", "3")),
                heartbeat_tick=int(kw.get("heartbeat", "1")),
                max_inflight_msgs=int(kw.get("max-inflight", "256")),
                max_size_per_msg=int(kw.get("max-size", str(1024 * 1024))),
                pre_vote=self._bool(kw.get("pre-vote", "true")),
                check_quorum=self._bool(kw.get("check-quorum", "true")),
                logger=self._logger,
            )
            node = RawNode(config, storage)
            member = Member(node=node, storage=storage)
            if voters and not bootstrap:
                member.applied.append(f"snapshot@{index}")
            self.members[member_id] = member
            if bootstrap:
                node.bootstrap([ConfChange(ConfChangeType.ADD_NODE, v) for v in voters])

    # -- inputs ---------------------------------------------------------------------------------------

    def _campaign(self, args: list[str], kw: dict[str, str]) -> None:
        self._node(args[0]).campaign()

    def _propose(self, args: list[str], kw: dict[str, str]) -> None:
        self._node(args[0]).propose(args[1].encode())

    def _propose_conf_change(self, args: list[str], kw: dict[str, str]) -> None:
        letter, node_id = args[1][0], int(args[1][1:])
        kinds = {v: k for k, v in _CC_LETTER.items()}
        self._node(args[0]).propose_conf_change(ConfChange(kinds[letter], node_id))

    def _read_index(self, args: list[str], kw: dict[str, str]) -> None:
        self._node(args[0]).read_index(args[1].encode())

    def _transfer_leader(self, args: list[str], kw: dict[str, str]) -> None:
        self._node(args[0]).transfer_leader(int(args[1]))

    def _report_unreachable(self, args: list[str], kw: dict[str, str]) -> None:
        self._node(args[0]).report_unreachable(int(args[1]))

    def _report_snapshot(self, args: list[str], kw: dict[str, str]) -> None:
        self._node(args[0]).report_snapshot(int(args[1]), self._bool(kw.get("failed", "false")))

    def _forget_leader(self, args: list[str], kw: dict[str, str]) -> None:
        self._node(args[0]).forget_leader()

    def _tick(self, args: list[str], kw: dict[str, str]) -> None:
        node = self._node(args[0])
        for _ in range(int(args[1]) if len(args) > 1 else 1):
            node.tick()

    def _tick_heartbeat(self, args: list[str], kw: dict[str, str]) -> None:
        node = self._node(args[0])
        for _ in range(node.raft.heartbeat_timeout):
            node.tick()

    def _tick_election(self, args: list[str], kw: dict[str, str]) -> None:
        """A leader ticks one election timeout (a CheckQuorum round); others tick until their timer fires."""
        node = self._node(args[0])
        r = node.raft
        if r.state is StateRole.LEADER:
            ticks = r.election_timeout
        else:
            ticks = max(1, r.randomized_election_timeout - r.election_elapsed)
        for _ in range(ticks):
            node.tick()

    # -- the loop: Ready and messages -----------------------------------------------------------------

    def _process_ready(self, member_id: int) -> None:
        member = self.members[member_id]
        node = member.node
        self._print(f"> {member_id} handling Ready")
        self._indent = "  "
        if not node.has_ready():
            self._print("<empty Ready>")
            self._indent = ""
            return
        rd = node.ready()
        for line in describe_ready(rd):
            self._print(line)
        run_ready_cycle(node, rd, _ScriptMemberHooks(member, self.queue))
        self._indent = ""

    def _process_ready_cmd(self, args: list[str], kw: dict[str, str]) -> None:
        ids = [int(a) for a in args] if args else sorted(self.members)
        for member_id in ids:
            if args or self.members[member_id].node.has_ready():
                self._process_ready(member_id)

    def _deliver(self, member_id: int, drop: bool = False) -> bool:
        """Deliver (or drop) every queued message addressed to `member_id`; False if there were none."""
        mine = [m for m in self.queue if m.to == member_id]
        if not mine:
            return False
        self.queue = [m for m in self.queue if m.to != member_id]
        self._print(f"> {member_id} receiving messages")
        self._indent = "  "
        node = self.members[member_id].node if member_id in self.members else None
        for m in mine:
            if drop or node is None or m.to in self.isolated or m.sender in self.isolated:
                self._print(f"dropped: {describe_message(m)}")
                continue
            self._print(describe_message(m))
            node.step(m)
        self._indent = ""
        return True

    def _deliver_msgs_cmd(self, args: list[str], kw: dict[str, str]) -> None:
        drop = set(self._ids(kw["drop"])) if "drop" in kw else set()
        targets = [int(a) for a in args] if args else sorted({m.to for m in self.queue} | drop)
        for member_id in targets:
            self._deliver(member_id, drop=member_id in drop)
        for member_id in sorted(drop - set(targets)):
            self._deliver(member_id, drop=True)

    def _stabilize(self, args: list[str], kw: dict[str, str]) -> None:
        """Process Readies and deliver messages until nothing moves."""
        ids = [int(a) for a in args] if args else sorted(self.members)
        while True:
            moved = False
            for member_id in ids:
                if self.members[member_id].node.has_ready():
                    self._process_ready(member_id)
                    moved = True
            for member_id in ids:
                moved = self._deliver(member_id) or moved
            if not moved:
                return

    def _isolate(self, args: list[str], kw: dict[str, str]) -> None:
        self.isolated.add(int(args[0]))

    def _recover(self, args: list[str], kw: dict[str, str]) -> None:
        self.isolated.clear()

    # -- storage and inspection -----------------------------------------------------------------------

    def _compact(self, args: list[str], kw: dict[str, str]) -> None:
        """Drop member ID's log up to INDEX (its snapshot of the applied state covers it)."""
        member = self.members[int(args[0])]
        member.storage.compact(int(args[1]))
        self._raft_log([args[0]], {})

    def _status(self, args: list[str], kw: dict[str, str]) -> None:
        st = self._node(args[0]).status()
        self._print(f"{st.id}: {st.role.value} term={st.term} vote={st.vote} lead={st.leader_id} "
                    f"commit={st.commit} applied={st.applied} last={st.last_index} "
                    f"{describe_conf_state(st.conf_state)}")
        for member_id, pr in st.progress.items():
            extra = " learner" if pr.is_learner else ""
            if pr.pending_snapshot:
                extra += f" pending-snapshot={pr.pending_snapshot}"
            if pr.inflight:
                extra += f" inflight={pr.inflight}"
            if not pr.recent_active:
                extra += " inactive"
            self._print(f"  {member_id}: {pr.state.value} match={pr.match} next={pr.next}{extra}")

    def _raft_log(self, args: list[str], kw: dict[str, str]) -> None:
        storage = self.members[int(args[0])].storage
        first, last = storage.first_index(), storage.last_index()
        if first > last:
            self._print(f"log is empty: first index={first}, last index={last}")
            return
        for e in storage.entries(first, last + 1):
            self._print(describe_entry(e))

    def _raft_state(self, args: list[str], kw: dict[str, str]) -> None:
        for member_id, member in sorted(self.members.items()):
            r = member.node.raft
            kind = "learner" if r.is_learner else ("voter" if member_id in r.trk.voters else "non-member")
            self._print(f"{member_id}: {r.state.value} ({kind}) term={r.term} lead={r.lead} "
                        f"commit={r.log.committed}")

    def _applied(self, args: list[str], kw: dict[str, str]) -> None:
        self._print(" ".join(self.members[int(args[0])].applied) or "(nothing)")

    def _log_level(self, args: list[str], kw: dict[str, str]) -> None:
        self.log_enabled = args[0] != "none"


# -- scripts ----------------------------------------------------------------------------------------------

@dataclass
class Block:
    """One command of a script: the lines before it (comments, blanks), the command, its expected output."""

    lead: list[str]
    command: str
    expected: list[str]


def parse_script(text: str) -> tuple[list[Block], list[str]]:
    """Split a script into blocks, plus the trailing lines after the last one."""
    lines = text.splitlines()
    blocks: list[Block] = []
    lead: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.startswith("#"):
            lead.append(line)
            i += 1
            continue
        if i + 1 >= len(lines) or lines[i + 1] != "----":
            raise ValueError(f"line {i + 1}: command {line!r} must be followed by '----'")
        i += 2
        expected: list[str] = []
        while i < len(lines) and lines[i].strip():
            expected.append(lines[i])
            i += 1
        blocks.append(Block(lead=lead, command=line, expected=expected))
        lead = []
    return blocks, lead


def run_script(text: str) -> str:
    """Run every command of a script and return the script with the actual outputs filled in."""
    blocks, trailer = parse_script(text)
    env = InteractionEnv()
    out: list[str] = []
    for block in blocks:
        out.extend(block.lead)
        out.append(block.command)
        out.append("----")
        out.extend(env.run(block.command).splitlines())
    out.extend(trailer)
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """`python -m raft.core.interaction SCRIPT [--rewrite]`: print or rewrite SCRIPT with actual outputs."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("script", type=Path)
    parser.add_argument("--rewrite", action="store_true", help="write the actual outputs into the script")
    args = parser.parse_args(argv)
    text = args.script.read_text()
    actual = run_script(text)
    if args.rewrite:
        args.script.write_text(actual)
    else:
        print(actual, end="")
    return 0 if actual == text else 1


if __name__ == "__main__":
    raise SystemExit(main())
