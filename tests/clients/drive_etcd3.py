"""Runs one scenario of python-etcd3 (PyPI `etcd3`) against one server and prints what it saw as JSON.

Started by tests/clients/test_python_etcd3.py with the interpreter of `.clients/etcd3` (python-etcd3
needs protobuf 3.x, which pyetcd's own pins exclude), once against real etcd and once against pyetcd:
`python drive_etcd3.py SCENARIO HOST PORT PREFIX [ARG]`. Revisions are printed relative to the
scenario's first write, lease IDs only as "is it this lease", so the two servers' outputs compare equal.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import etcd3
import etcd3.events
import etcd3.exceptions
import grpc


def error_of(exc: BaseException) -> dict[str, Any]:
    """How the client surfaced a server error: its exception class, and the gRPC code and text under it."""
    seen: dict[str, Any] = {"error": type(exc).__name__}
    cause = exc if isinstance(exc, grpc.RpcError) else exc.__context__
    if isinstance(cause, grpc.RpcError) and hasattr(cause, "code"):
        seen["code"] = cause.code().name
        seen["details"] = cause.details()
    return seen


class Scenario:
    def __init__(self, client: etcd3.Etcd3Client, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        # Every scenario starts with a write, so revisions can be told relative to it.
        self.base = client.put(self.key("start"), "0").header.revision

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def rel(self, revision: int) -> int:
        return revision - self.base if revision else 0

    def meta(self, metadata: Any) -> dict[str, Any]:
        return {"key": metadata.key.decode(), "create": self.rel(metadata.create_revision),
                "mod": self.rel(metadata.mod_revision), "version": metadata.version}

    def pairs(self, found: Any) -> list[Any]:
        return [[value.decode(), self.meta(metadata)] for value, metadata in found]

    def event(self, event: Any) -> dict[str, Any]:
        kind = "put" if isinstance(event, etcd3.events.PutEvent) else "delete"
        return {"kind": kind, "key": event.key.decode(), "value": event.value.decode(),
                "mod": self.rel(event.mod_revision), "version": event.version}

    def kv(self) -> dict[str, Any]:
        c, k = self.client, self.key
        seen: dict[str, Any] = {}
        c.put(k("a"), "1")
        c.put(k("b"), "2")
        seen["put_prev"] = c.put(k("a"), "1b", prev_kv=True).prev_kv.value.decode()
        value, metadata = c.get(k("a"))
        seen["get"] = [value.decode(), self.meta(metadata)]
        seen["missing"] = list(c.get(k("nothing")))
        seen["prefix"] = self.pairs(c.get_prefix(k("")))
        seen["prefix_desc"] = self.pairs(c.get_prefix(k(""), sort_order="descend", sort_target="key"))
        seen["range"] = self.pairs(c.get_range(k("a"), k("b")))
        seen["if_not_exists"] = [c.put_if_not_exists(k("a"), "x"), c.put_if_not_exists(k("c"), "3")]
        seen["replace"] = [c.replace(k("c"), "3", "3b"), c.replace(k("c"), "wrong", "x")]
        seen["delete"] = [c.delete(k("a")), c.delete(k("a"))]
        deleted = c.delete(k("b"), prev_kv=True, return_response=True)
        seen["delete_prev"] = [deleted.deleted, [kv.value.decode() for kv in deleted.prev_kvs]]
        seen["delete_prefix"] = c.delete_prefix(k("")).deleted
        seen["after"] = self.pairs(c.get_prefix(k("")))
        return seen

    def txn(self) -> dict[str, Any]:
        c, k, t = self.client, self.key, self.client.transactions
        c.put(k("x"), "1")
        seen: dict[str, Any] = {}
        ok, responses = c.transaction(
            compare=[t.value(k("x")) == "1", t.version(k("x")) > 0, t.create(k("y")) == 0],
            success=[t.put(k("y"), "made"), t.get(k("x")), t.delete(k("x"))],
            failure=[t.put(k("y"), "failed")])
        seen["success"] = [ok, len(responses), self.pairs(responses[1]),
                           responses[2].response_delete_range.deleted]
        ok, responses = c.transaction(compare=[t.mod(k("y")) < 1], success=[t.put(k("z"), "no")],
                                      failure=[t.get(k("y"))])
        seen["failure"] = [ok, self.pairs(responses[0])]
        seen["after"] = self.pairs(c.get_prefix(k("")))
        try:  # etcd refuses a txn that writes one key twice
            c.transaction(compare=[], success=[t.put(k("d"), "1"), t.put(k("d"), "2")], failure=[])
            seen["duplicate"] = "accepted"
        except Exception as exc:
            seen["duplicate"] = error_of(exc)
        return seen

    def watch(self) -> dict[str, Any]:
        c, k = self.client, self.key
        seen: dict[str, Any] = {}
        events: list[Any] = []
        arrived = threading.Event()

        def collect(response: Any) -> None:
            if isinstance(response, Exception):
                events.append(error_of(response))
                arrived.set()
                return
            events.extend(self.event(event) for event in response.events)
            if len(events) >= 3:
                arrived.set()

        watch_id = c.add_watch_prefix_callback(k("w/"), collect)
        c.put(k("w/1"), "a")
        c.put(k("w/1"), "b")
        c.delete(k("w/1"))
        arrived.wait(10)
        c.cancel_watch(watch_id)
        seen["live"] = events[:]
        # History from a past revision, through the iterator form.
        iterator, cancel = c.watch_prefix(k("w/"), start_revision=self.base + 1)
        history = []
        for event in iterator:
            history.append(self.event(event))
            if len(history) == 3:
                cancel()
        seen["history"] = history
        # watch_once with nothing happening times out in the client's own words.
        try:
            c.watch_once(k("w/never"), timeout=0.3)
            seen["once_timeout"] = "event"
        except etcd3.exceptions.WatchTimedOut:
            seen["once_timeout"] = "WatchTimedOut"
        # A watch from a compacted revision is refused with the compact revision.
        c.put(k("w/2"), "c")
        compacted_at = c.put(k("w/2"), "d").header.revision
        c.compact(compacted_at)
        errors: list[Any] = []
        got = threading.Event()

        def on_compacted(response: Any) -> None:
            if isinstance(response, etcd3.exceptions.RevisionCompactedError):
                errors.append(["RevisionCompactedError", self.rel(response.compacted_revision)])
            else:
                errors.append(repr(response))
            got.set()

        try:
            compacted_watch = c.add_watch_callback(k("w/2"), on_compacted, start_revision=self.base + 1)
            got.wait(10)
            c.cancel_watch(compacted_watch)
        except Exception as exc:
            errors.append(error_of(exc))
        seen["compacted"] = errors
        return seen

    def lease(self) -> dict[str, Any]:
        c, k = self.client, self.key
        seen: dict[str, Any] = {}
        lease = c.lease(60)
        seen["granted"] = lease.ttl
        c.put(k("l1"), "held", lease=lease)
        c.put(k("l2"), "held", lease=lease)
        _, metadata = c.get(k("l1"))
        seen["key_lease_is_it"] = metadata.lease_id == lease.id
        info = c.get_lease_info(lease.id)
        seen["info"] = [lease.id == info.ID, info.grantedTTL, 55 <= info.TTL <= 60,
                        sorted(key.decode() for key in info.keys)]
        seen["granted_ttl"] = lease.granted_ttl
        seen["keys"] = sorted(key.decode() for key in lease.keys)
        refreshed = lease.refresh()
        seen["refresh"] = [len(refreshed), lease.id == refreshed[0].ID, refreshed[0].TTL]
        chosen = c.lease(30, lease_id=0x1234)
        seen["chosen_id"] = [chosen.id, chosen.ttl]
        try:
            c.lease(30, lease_id=0x1234)
            seen["duplicate_id"] = "accepted"
        except Exception as exc:
            seen["duplicate_id"] = error_of(exc)
        lease.revoke()
        seen["after_revoke"] = [list(c.get(k("l1"))), c.get_lease_info(lease.id).TTL]
        try:
            c.revoke_lease(lease.id)
            seen["revoke_again"] = "accepted"
        except Exception as exc:
            seen["revoke_again"] = error_of(exc)
        chosen.revoke()
        # A lease below etcd's minimum TTL is raised to it; left alone it expires and takes its key.
        short = c.lease(1)
        seen["short_granted"] = short.ttl
        c.put(k("short"), "gone soon", lease=short)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and c.get(k("short"))[0] is not None:
            time.sleep(0.2)
        seen["expired"] = [c.get(k("short"))[0], c.get_lease_info(short.id).TTL]
        return seen

    def lock(self) -> dict[str, Any]:
        c = self.client
        name = self.prefix.strip("/").replace("/", "-") + "-lock"
        seen: dict[str, Any] = {}
        first = c.lock(name, ttl=20)
        seen["acquire"] = first.acquire(timeout=5)
        seen["held"] = first.is_acquired()
        holder, metadata = c.get(first.key)
        seen["key"] = [first.key, holder == first.uuid, metadata.lease_id == first.lease.id]
        second = c.lock(name, ttl=20)
        seen["second_waits"] = second.acquire(timeout=0.5)
        seen["refresh"] = first.refresh()[0].TTL
        seen["release"] = [first.release(), first.is_acquired()]
        seen["second_after"] = [second.acquire(timeout=5), second.is_acquired()]
        second.release()
        with c.lock(name, ttl=20) as third:
            seen["context"] = third.is_acquired()
        seen["context_after"] = third.is_acquired()
        return seen

    def cluster(self) -> dict[str, Any]:
        c = self.client
        status = c.status()
        members = list(c.members)
        return {
            "status": {"version": status.version, "db_size_positive": status.db_size > 0,
                       "leader_is_member": status.leader.id == members[0].id,
                       "raft_term_positive": status.raft_term > 0, "raft_index_positive": status.raft_index > 0},
            "members": [{"name": m.name, "peer_urls": list(m.peer_urls), "client_urls": list(m.client_urls)}
                        for m in members],
            "alarms": [[alarm.alarm_type, alarm.member_id] for alarm in c.list_alarms()],
            "hash_is_int": isinstance(c.hash(), int),
        }

    def snapshot(self, path: str) -> dict[str, Any]:
        c, k = self.client, self.key
        for i in range(20):
            c.put(k(f"s/{i:02d}"), "v" * i)
        c.delete(k("s/00"))
        lease = c.lease(600)
        c.put(k("s/leased"), "x", lease=lease)
        revision = c.put(k("s/last"), "end").header.revision
        with open(path, "wb") as out:
            c.snapshot(out)
        return {"revision": self.rel(revision)}


def attempt(call: Callable[[], Any]) -> Any:
    """"ok", or how the client reported the server's refusal."""
    try:
        call()
        return "ok"
    except Exception as exc:
        return error_of(exc)


def auth(host: str, port: int) -> dict[str, Any]:
    """On a member with auth on: alice may read /auth/ only, root anything (side_by_side.AUTH_SETUP).

    python-etcd3 sends its token as call credentials, which grpcio only sends over TLS: the member is https.
    """
    tls = tls_settings()
    seen: dict[str, Any] = {}
    with etcd3.client(host=host, port=port, timeout=10, user="alice", password="alicepw", **tls) as alice:
        seen["read"] = alice.get("/auth/key")[0].decode()
        seen["read_outside"] = attempt(lambda: alice.get("/elsewhere"))
        seen["write"] = attempt(lambda: alice.put("/auth/key", "by alice"))
        seen["txn_one_key_outside"] = attempt(lambda: alice.transaction(
            compare=[], success=[alice.transactions.get("/auth/key"), alice.transactions.get("/elsewhere")],
            failure=[]))
    for name, user, password in (("wrong_password", "alice", "wrong"), ("unknown_user", "mallory", "x")):
        seen[name] = attempt(functools.partial(etcd3.client, host=host, port=port, timeout=10, user=user,
                                               password=password, **tls))
    with etcd3.client(host=host, port=port, timeout=10, **tls) as anonymous:
        seen["anonymous"] = attempt(lambda: anonymous.get("/auth/key"))
    with etcd3.client(host=host, port=port, timeout=10, user="root", password="rootpw", **tls) as root:
        root.put("/auth/etcd3", "by root")
        seen["root"] = [root.get("/auth/etcd3")[0].decode(), len(list(root.members))]
    return seen


def tls_settings() -> dict[str, str]:
    """TLS to an https member: CLIENT_CA (and CLIENT_CERT, CLIENT_KEY for a client certificate)."""
    names = {"CLIENT_CA": "ca_cert", "CLIENT_CERT": "cert_cert", "CLIENT_KEY": "cert_key"}
    return {argument: os.environ[variable] for variable, argument in names.items() if variable in os.environ}


def main() -> None:
    scenario, host, port, prefix, *rest = sys.argv[1:]
    if scenario == "auth":
        result: Any = auth(host, int(port))
    elif scenario == "refused":  # a connection the member must refuse, as the client reports it
        try:
            with etcd3.client(host=host, port=int(port), timeout=5, **tls_settings()) as client:
                client.get(prefix)
            result = "ok"
        except Exception as exc:
            result = {"error": type(exc).__name__}
    else:
        with etcd3.client(host=host, port=int(port), timeout=10, **tls_settings()) as client:
            result = getattr(Scenario(client, prefix), scenario)(*rest)
    json.dump(result, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
