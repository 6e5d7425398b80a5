"""Runs one scenario of aetcd (PyPI `aetcd`, asyncio) against one server and prints what it saw as JSON.

Started by tests/clients/test_aetcd.py with the interpreter of `.clients/aetcd`, once against real etcd
and once against pyetcd: `python drive_aetcd.py SCENARIO HOST PORT PREFIX [ARG]`. Revisions are printed
relative to the scenario's first write, lease IDs only as "is it this lease", so outputs compare equal.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aetcd
import aetcd.exceptions
import aetcd.rtypes


def error_of(exc: BaseException) -> dict[str, Any]:
    """How the client surfaced a server error: its exception class, the gRPC code and text under it."""
    seen: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc)}
    cause = exc.__cause__
    if cause is not None and hasattr(cause, "code"):
        seen["code"] = cause.code().name
    return seen


class Scenario:
    def __init__(self, client: aetcd.Client, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.base = 0

    async def start(self) -> None:
        """Every scenario starts with a write, so revisions can be told relative to it."""
        self.base = (await self.client.put(self.key("start"), b"0")).header.revision

    def key(self, name: str) -> bytes:
        return f"{self.prefix}/{name}".encode()

    def rel(self, revision: int) -> int:
        return revision - self.base if revision else 0

    def kv(self, kv: Any) -> list[Any]:
        return [kv.key.decode(), kv.value.decode(), self.rel(kv.create_revision), self.rel(kv.mod_revision),
                kv.version]

    def event(self, event: aetcd.rtypes.Event) -> list[Any]:
        return [str(event.kind), *self.kv(event.kv)]

    async def kv_ops(self) -> dict[str, Any]:
        c, k = self.client, self.key
        seen: dict[str, Any] = {}
        await c.put(k("a"), b"1")
        await c.put(k("b"), b"2")
        put = await c.put(k("a"), b"1b", prev_kv=True)
        seen["put_prev"] = self.kv(put.prev_kv)
        got = await c.get(k("a"))
        seen["get"] = self.kv(got)
        seen["missing"] = await c.get(k("nothing"))
        seen["prefix"] = [self.kv(kv) for kv in await c.get_prefix(k(""))]
        seen["prefix_desc"] = [self.kv(kv) for kv in await c.get_prefix(k(""), sort_order="descend")]
        seen["range"] = [self.kv(kv) for kv in await c.get_range(k("a"), k("b"))]
        seen["all_has_ours"] = [kv.key for kv in await c.get_all()].count(k("a"))
        seen["replace"] = [await c.replace(k("b"), b"2", b"2b"), await c.replace(k("b"), b"wrong", b"x")]
        deleted = await c.delete(k("a"), prev_kv=True)
        seen["delete"] = [deleted.deleted, self.kv(deleted.prev_kv), await c.delete(k("a"))]
        ranged = await c.delete_prefix(k(""), prev_kv=True)
        seen["delete_prefix"] = [ranged.deleted, sorted(kv.key.decode() for kv in ranged)]
        seen["after"] = len(await c.get_prefix(k("")))
        return seen

    async def txn(self) -> dict[str, Any]:
        c, k, t = self.client, self.key, self.client.transactions
        await c.put(k("x"), b"1")
        seen: dict[str, Any] = {}
        ok, responses = await c.transaction(
            compare=[t.value(k("x")) == b"1", t.version(k("x")) > 0, t.create(k("y")) == 0],
            success=[t.put(k("y"), b"made"), t.get(k("x")), t.delete(k("x"))],
            failure=[t.put(k("y"), b"failed")])
        seen["success"] = [ok, len(responses), [[value.decode(), self.kv(kv)] for value, kv in responses[1]],
                           responses[2].response_delete_range.deleted]
        ok, responses = await c.transaction(compare=[t.mod(k("y")) < 1], success=[t.put(k("z"), b"no")],
                                            failure=[t.get(k("y"))])
        seen["failure"] = [ok, [value.decode() for value, _ in responses[0]]]
        seen["after"] = [self.kv(kv) for kv in await c.get_prefix(k(""))]
        try:  # etcd refuses a txn that writes one key twice
            await c.transaction(compare=[], success=[t.put(k("d"), b"1"), t.put(k("d"), b"2")], failure=[])
            seen["duplicate"] = "accepted"
        except aetcd.exceptions.ClientError as exc:
            seen["duplicate"] = error_of(exc)
        return seen

    async def watch(self) -> dict[str, Any]:
        c, k = self.client, self.key
        seen: dict[str, Any] = {}
        live = await c.watch_prefix(k("w/"))
        await c.put(k("w/1"), b"a")
        await c.put(k("w/1"), b"b")
        await c.delete(k("w/1"))
        events: list[Any] = []

        async def take(watch: Any, count: int) -> None:
            async for event in watch:
                events.append(self.event(event))
                if len(events) == count:
                    break

        await asyncio.wait_for(take(live, 3), 10)
        await live.cancel()
        seen["live"] = events[:]
        events.clear()
        history = await c.watch_prefix(k("w/"), start_revision=self.base + 1)
        await asyncio.wait_for(take(history, 3), 10)
        await history.cancel()
        seen["history"] = events[:]
        deletes = await c.watch_once(k("w/1"), timeout=10, start_revision=self.base + 1,
                                     kind=aetcd.rtypes.EventKind.PUT)
        seen["once_filtered"] = self.event(deletes)
        try:
            await c.watch_once(k("w/never"), timeout=0.3)
            seen["once_timeout"] = "event"
        except aetcd.exceptions.WatchTimeoutError as exc:
            seen["once_timeout"] = type(exc).__name__
        await c.put(k("w/2"), b"c")
        compacted_at = (await c.put(k("w/2"), b"d")).header.revision
        await c.compact(compacted_at)
        try:  # the refusal comes either on creation or as the watch's first response
            compacted = await c.watch(k("w/2"), start_revision=self.base + 1)
            await asyncio.wait_for(take(compacted, 1), 10)
            seen["compacted"] = ["event", events[-1]]
        except aetcd.exceptions.RevisionCompactedError as exc:
            seen["compacted"] = ["RevisionCompactedError", self.rel(exc.compacted_revision)]
        return seen

    async def lease(self) -> dict[str, Any]:
        c, k = self.client, self.key
        seen: dict[str, Any] = {}
        lease = await c.lease(60)
        seen["granted"] = lease.ttl
        await c.put(k("l1"), b"held", lease=lease)
        await c.put(k("l2"), b"held", lease=lease)
        seen["key_lease_is_it"] = (await c.get(k("l1"))).lease == lease.id
        seen["remaining"] = 55 <= await lease.remaining_ttl() <= 60
        seen["granted_ttl"] = await lease.granted_ttl()
        seen["keys"] = sorted(key.decode() for key in await lease.keys())
        refreshed = await lease.refresh()
        seen["refresh"] = [lease.id == refreshed.ID, refreshed.TTL]
        chosen = await c.lease(30, lease_id=0x4321)
        seen["chosen_id"] = [chosen.id, chosen.ttl]
        try:
            await c.lease(30, lease_id=0x4321)
            seen["duplicate_id"] = "accepted"
        except aetcd.exceptions.ClientError as exc:
            seen["duplicate_id"] = error_of(exc)
        await lease.revoke()
        seen["after_revoke"] = [await c.get(k("l1")), await lease.remaining_ttl()]
        try:
            await c.revoke_lease(lease.id)
            seen["revoke_again"] = "accepted"
        except aetcd.exceptions.ClientError as exc:
            seen["revoke_again"] = error_of(exc)
        await chosen.revoke()
        # Below etcd's minimum TTL the lease is raised to it; left alone it expires and takes its key.
        short = await c.lease(1)
        seen["short_granted"] = short.ttl
        await c.put(k("short"), b"gone soon", lease=short)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and await c.get(k("short")) is not None:
            await asyncio.sleep(0.2)
        seen["expired"] = [await c.get(k("short")), await short.remaining_ttl()]
        return seen

    async def lock(self) -> dict[str, Any]:
        c, k = self.client, self.key
        seen: dict[str, Any] = {}
        first = c.lock(k("lock"), ttl=20)
        seen["acquire"] = await first.acquire(timeout=5)
        seen["held"] = await first.is_acquired()
        holder = await c.get(k("lock"))
        seen["key"] = [holder.value == first.uuid, holder.lease == first.lease.id]
        second = c.lock(k("lock"), ttl=20)
        seen["second_waits"] = await second.acquire(timeout=0.5)
        seen["refresh"] = (await first.refresh()).TTL
        seen["release"] = [await first.release(), await first.is_acquired()]
        seen["second_after"] = [await second.acquire(timeout=5), await second.is_acquired()]
        await second.release()
        async with c.lock(k("lock"), ttl=20) as third:
            seen["context"] = await third.is_acquired()
        seen["context_after"] = await third.is_acquired()
        return seen

    async def cluster(self) -> dict[str, Any]:
        c = self.client
        status = await c.status()
        members = [member async for member in c.members()]
        return {
            "status": {"version": status.version, "db_size_positive": status.db_size > 0,
                       "leader_is_member": status.leader is not None and status.leader.id == members[0].id,
                       "raft_term_positive": status.raft_term > 0, "raft_index_positive": status.raft_index > 0},
            "members": [{"name": m.name, "peer_urls": list(m.peer_urls), "client_urls": list(m.client_urls)}
                        for m in members],
            "alarms": [alarm async for alarm in c.list_alarms()],
            "hash_is_int": isinstance(await c.hash(), int),
        }

    async def snapshot(self, path: str) -> dict[str, Any]:
        c, k = self.client, self.key
        for i in range(20):
            await c.put(k(f"s/{i:02d}"), b"v" * i)
        await c.delete(k("s/00"))
        lease = await c.lease(600)
        await c.put(k("s/leased"), b"x", lease=lease)
        revision = (await c.put(k("s/last"), b"end")).header.revision
        with open(path, "wb") as out:
            await c.snapshot(out)
        return {"revision": self.rel(revision)}


async def attempt(call: Callable[[], Awaitable[Any]]) -> Any:
    """"ok", or how the client reported the server's refusal."""
    try:
        await call()
        return "ok"
    except aetcd.exceptions.ClientError as exc:
        return error_of(exc)


async def auth(host: str, port: int) -> dict[str, Any]:
    """On a member with auth on: alice may read /auth/ only, root anything (side_by_side.AUTH_SETUP)."""
    seen: dict[str, Any] = {}
    async with aetcd.Client(host=host, port=port, timeout=10, username="alice", password="alicepw") as alice:
        seen["read"] = (await alice.get(b"/auth/key")).value.decode()
        seen["read_outside"] = await attempt(lambda: alice.get(b"/elsewhere"))
        seen["write"] = await attempt(lambda: alice.put(b"/auth/key", b"by alice"))
        t = alice.transactions
        seen["txn_one_key_outside"] = await attempt(lambda: alice.transaction(
            compare=[], success=[t.get(b"/auth/key"), t.get(b"/elsewhere")], failure=[]))
        seen["watch_outside"] = await attempt(lambda: alice.watch(b"/elsewhere"))
        with open(os.devnull, "wb") as nowhere:
            seen["snapshot"] = await attempt(lambda: alice.snapshot(nowhere))
    for name, user, password in (("wrong_password", "alice", "wrong"), ("unknown_user", "mallory", "x")):
        refused = aetcd.Client(host=host, port=port, timeout=10, username=user, password=password)
        try:  # the client authenticates as it connects
            seen[name] = await attempt(refused.connect)
        finally:
            await refused.close()
    async with aetcd.Client(host=host, port=port, timeout=10) as anonymous:
        seen["anonymous"] = await attempt(lambda: anonymous.get(b"/auth/key"))
    async with aetcd.Client(host=host, port=port, timeout=10, username="root", password="rootpw") as root:
        await root.put(b"/auth/aetcd", b"by root")
        seen["root"] = [(await root.get(b"/auth/aetcd")).value.decode(), len([m async for m in root.members()])]
    return seen


async def run(scenario: str, host: str, port: int, prefix: str, rest: list[str]) -> Any:
    if scenario == "auth":
        return await auth(host, port)
    async with aetcd.Client(host=host, port=port, timeout=10) as client:
        driver = Scenario(client, prefix)
        await driver.start()
        return await getattr(driver, "kv_ops" if scenario == "kv" else scenario)(*rest)


def main() -> None:
    scenario, host, port, prefix, *rest = sys.argv[1:]
    result = asyncio.run(run(scenario, host, int(port), prefix, rest))
    json.dump(result, sys.stdout, sort_keys=True, default=repr)


if __name__ == "__main__":
    main()
