"""The end-of-run checks, each a pure function of what was recorded and read back.

- the register history is linearizable;
- every acknowledged write is in every member's store (serializable reads at its revision);
- all members hash their key-value state alike at one revision (Maintenance.HashKV);
- every member's full event history is the same, one event per revision with none missing;
- every watcher saw each revision of its keys exactly once and in order, across reconnects;
- no two leaders in one term (Raft's Election Safety, §5.2).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tests.chaos.history import OK, OpRecord, StatusSample, WatchEvent
from tests.chaos.linearizability import CAS, DELETE, PUT, HistoryResult, Verdict


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"[{'PASS' if self.ok else 'FAIL'}] {self.name}: {self.detail}"


def linearizability(result: HistoryResult) -> CheckResult:
    return CheckResult("linearizable", result.verdict is Verdict.LINEARIZABLE, result.explain())


def acknowledged_writes(op: OpRecord) -> bool:
    """A write the cluster acknowledged as applied, at the revision in its answer."""
    return op.status == OK and (op.f == PUT or (op.f == CAS and op.result is True)
                                or (op.f == DELETE and op.result is True))


@dataclass(frozen=True, slots=True)
class ReadBack:
    """What a member's serializable read at an acknowledged write's revision found."""

    member: int
    op_index: int
    value: str | None
    mod_revision: int
    error: str = ""


def writes_on_every_member(ops: Sequence[OpRecord], reads: Sequence[ReadBack], members: int) -> CheckResult:
    """Each acknowledged put or swap reads back at its revision with its value; a delete reads back absent."""
    by_index = {op.index: op for op in ops}
    expected = [op for op in ops if acknowledged_writes(op)]
    found = {(r.member, r.op_index): r for r in reads}
    problems: list[str] = []
    for op in expected:
        for member in range(members):
            read = found.get((member, op.index))
            want = None if op.f == DELETE else op.value
            if read is None:
                problems.append(f"m{member}: no read-back of #{op.index}")
            elif read.error:
                problems.append(f"m{member}: read-back of #{op.index} failed: {read.error}")
            elif read.value != want or (want is not None and read.mod_revision != op.revision):
                problems.append(f"m{member}: #{op.index} {by_index[op.index].f} {op.key!r}={want!r} acknowledged "
                                f"at revision {op.revision}, but the member has {read.value!r} "
                                f"(mod_revision {read.mod_revision}) there")
    detail = f"{len(expected)} acknowledged writes x {members} members"
    if problems:
        detail += f"; {len(problems)} missing or wrong, e.g.:\n  " + "\n  ".join(problems[:10])
    return CheckResult("acknowledged writes on every member", not problems, detail)


def hashes_agree(hashes: Mapping[int, tuple[int, int, int]], revision: int, members: int) -> CheckResult:
    """`hashes`: member -> (hash, compact_revision, current_revision) from HashKV(revision); a member
    missing from it did not answer. As etcd's, the header names the member's current revision, which
    must have reached `revision`."""
    distinct = {(h, c) for h, c, _ in hashes.values()}
    shown = ", ".join(f"m{m}: hash {h:#010x} compact {c} at {r}" for m, (h, c, r) in sorted(hashes.items()))
    silent = [f"m{m}" for m in range(members) if m not in hashes]
    if silent:
        shown += f"; no answer from {', '.join(silent)}"
    ok = not silent and len(distinct) == 1 and all(r >= revision for _, _, r in hashes.values())
    return CheckResult(f"HashKV equal at revision {revision}", ok, shown)


def member_histories_agree(histories: Mapping[int, Sequence[WatchEvent]], first: int,
                           last: int) -> CheckResult:
    """Every member's events from `first` to `last`: identical, and one per revision with no gaps."""
    problems: list[str] = []
    reference_member = min(histories) if histories else -1
    reference = list(histories.get(reference_member, ()))
    revisions = [e.revision for e in reference]
    if revisions != list(range(first, last + 1)):
        missing = sorted(set(range(first, last + 1)) - set(revisions))
        doubled = sorted({r for r in revisions if revisions.count(r) > 1})
        problems.append(f"m{reference_member}: revisions {first}..{last} not each present once "
                        f"(missing {missing[:10]}, repeated {doubled[:10]})")
    for member, events in sorted(histories.items()):
        if list(events) != reference:
            at = next((i for i, (a, b) in enumerate(zip(events, reference, strict=False)) if a != b),
                      min(len(events), len(reference)))
            mine = events[at] if at < len(events) else None
            theirs = reference[at] if at < len(reference) else None
            problems.append(f"m{member} differs from m{reference_member} at event {at}: {mine} vs {theirs}")
    detail = f"{len(histories)} members, revisions {first}..{last}"
    if problems:
        detail += ":\n  " + "\n  ".join(problems)
    return CheckResult("members' event histories identical and gap-free", not problems, detail)


def watchers_saw_everything(watches: Mapping[int, Sequence[WatchEvent]], reference: Sequence[WatchEvent],
                            start: int, reconnects: Mapping[int, int]) -> CheckResult:
    """Each watcher's events are exactly the reference events from `start` on: none lost,
    none repeated, none out of order, whatever members and reconnects it went through."""
    problems: list[str] = []
    want = [e for e in reference if e.revision >= start]
    for watcher, events in sorted(watches.items()):
        seen = list(events)
        if seen == want:
            continue
        revisions = [e.revision for e in seen]
        repeated = sorted({r for r in revisions if revisions.count(r) > 1})
        out_of_order = [b for a, b in zip(revisions, revisions[1:], strict=False) if b <= a]
        missing = sorted({e.revision for e in want} - set(revisions))
        wrong = [(a, b) for a, b in zip(seen, want, strict=False) if a != b and a.revision == b.revision]
        problems.append(f"watcher {watcher}: {len(seen)} events, {len(want)} expected; missing {missing[:10]}, "
                        f"repeated {repeated[:10]}, out of order {out_of_order[:10]}, "
                        f"differing {wrong[:2]}")
    total = sum(reconnects.values())
    detail = f"{len(watches)} watchers, {len(want)} events each, {total} reconnects"
    if problems:
        detail += ":\n  " + "\n  ".join(problems)
    return CheckResult("watchers saw every revision once, in order", not problems, detail)


def one_leader_per_term(samples: Sequence[StatusSample]) -> CheckResult:
    """Election Safety (§5.2): at most one leader can be elected in a given term."""
    leaders: dict[int, set[int]] = defaultdict(set)
    for sample in samples:
        if sample.leader:
            leaders[sample.term].add(sample.leader)
    split = {term: ids for term, ids in leaders.items() if len(ids) > 1}
    detail = f"{len(samples)} status samples over {len(leaders)} terms"
    if split:
        detail += "; terms with two leaders: " + ", ".join(
            f"term {t}: {sorted(f'{i:x}' for i in ids)}" for t, ids in sorted(split.items()))
    return CheckResult("one leader per term", not split, detail)
