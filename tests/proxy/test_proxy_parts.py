"""The grpc-proxy's parts that need no cluster: range cache, namespace, registration format, flags."""

from __future__ import annotations

import argparse
import json

import pytest

from etcdpb.etcdserverpb import rpc_pb2
from etcdpb.mvccpb import kv_pb2
from pyetcd.config import ConfigError
from pyetcd.errors import ErrGRPCCompacted, ErrGRPCEmptyKey
from pyetcd.proxy import add_proxy_arguments, proxy_config_from_args
from pyetcd.proxy.cache import KeyInterval, RangeCache
from pyetcd.proxy.namespace import Namespace, prefix_end
from pyetcd.proxy.register import parse_registration, registration_value
from pyetcd.proxy.upstream import endpoint_target

# --- range cache ---


def _answer(value: bytes, key: bytes = b"k") -> rpc_pb2.RangeResponse:
    return rpc_pb2.RangeResponse(kvs=[kv_pb2.KeyValue(key=key, value=value)], count=1)


def test_cache_answers_the_serializable_form_of_a_cached_request() -> None:
    cache = RangeCache()
    cache.add(rpc_pb2.RangeRequest(key=b"k"), _answer(b"v"))
    cached = cache.get(rpc_pb2.RangeRequest(key=b"k", serializable=True))
    assert cached is not None and cached.kvs[0].value == b"v"
    assert cache.get(rpc_pb2.RangeRequest(key=b"k", serializable=True, keys_only=True)) is None


def test_cache_hands_out_copies_that_callers_may_change() -> None:
    cache = RangeCache()
    request = rpc_pb2.RangeRequest(key=b"k", serializable=True)
    cache.add(request, _answer(b"v"))
    first = cache.get(request)
    assert first is not None
    first.kvs[0].key = b"changed"
    second = cache.get(request)
    assert second is not None and second.kvs[0].key == b"k"


@pytest.mark.parametrize(("write_key", "write_end", "dropped"), [
    (b"b", b"", True),  # a put of a key inside the cached range
    (b"a", b"c", True),  # a delete of an overlapping range
    (b"0", b"\x00", True),  # a delete from "0" to the end of the keyspace
    (b"c", b"", False),  # range ends are exclusive
    (b"0", b"a", False),  # a range that ends where the cached one starts
])
def test_writes_drop_exactly_the_cached_ranges_they_touch(write_key: bytes, write_end: bytes,
                                                          dropped: bool) -> None:
    cache = RangeCache()
    request = rpc_pb2.RangeRequest(key=b"a", range_end=b"c", serializable=True)
    cache.add(request, _answer(b"v", b"b"))
    cache.invalidate(write_key, write_end)
    assert (cache.get(request) is None) == dropped


def test_answers_pinned_to_a_revision_survive_writes_but_not_compaction() -> None:
    cache = RangeCache()
    pinned = rpc_pb2.RangeRequest(key=b"k", revision=5, serializable=True)
    cache.add(pinned, _answer(b"old"))
    cache.invalidate(b"k")
    assert cache.get(pinned) is not None
    cache.compact(6)
    with pytest.raises(type(ErrGRPCCompacted)) as raised:
        cache.get(pinned)
    assert raised.value == ErrGRPCCompacted


def test_cache_evicts_the_least_recently_used_answer() -> None:
    cache = RangeCache(max_entries=2)
    requests = [rpc_pb2.RangeRequest(key=key, serializable=True) for key in (b"a", b"b", b"c")]
    cache.add(requests[0], _answer(b"1"))
    cache.add(requests[1], _answer(b"2"))
    assert cache.get(requests[0]) is not None
    cache.add(requests[2], _answer(b"3"))
    assert len(cache) == 2
    assert cache.get(requests[1]) is None
    assert cache.get(requests[0]) is not None


def test_key_intervals_meet_as_half_open_ranges() -> None:
    assert KeyInterval.of(b"a", b"").intersects(KeyInterval.of(b"a", b""))
    assert not KeyInterval.of(b"a", b"").intersects(KeyInterval.of(b"ab", b""))
    assert KeyInterval.of(b"a", b"b").intersects(KeyInterval.of(b"a\xff", b""))
    assert KeyInterval.of(b"x", b"\x00").intersects(KeyInterval.of(b"zzz", b""))
    assert not KeyInterval.of(b"x", b"\x00").intersects(KeyInterval.of(b"a", b"x"))


# --- namespace ---


def test_prefix_end_is_the_first_key_after_the_prefix() -> None:
    assert prefix_end(b"ns/") == b"ns0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") == b"\x00"


def test_namespace_maps_keys_and_ranges_into_the_prefix() -> None:
    ns = Namespace(b"ns/")
    assert ns.interval(b"k", b"") == (b"ns/k", b"")
    assert ns.interval(b"a", b"b") == (b"ns/a", b"ns/b")
    # "\0" means the end of the keyspace, which inside a namespace is the end of the prefix.
    assert ns.interval(b"\x00", b"\x00") == (b"ns/\x00", b"ns0")


def test_namespace_refuses_an_empty_key_like_etcd() -> None:
    ns = Namespace(b"ns/")
    with pytest.raises(type(ErrGRPCEmptyKey)) as raised:
        ns.put_request(rpc_pb2.PutRequest(key=b"", value=b"v"))
    assert raised.value == ErrGRPCEmptyKey


def test_namespace_rewrites_nested_transactions_both_ways() -> None:
    ns = Namespace(b"ns/")
    request = rpc_pb2.TxnRequest(
        compare=[rpc_pb2.Compare(key=b"c", range_end=b"\x00")],
        success=[rpc_pb2.RequestOp(request_txn=rpc_pb2.TxnRequest(
            success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"p", value=b"v"))]))],
        failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"r"))],
    )
    out = ns.txn_request(request)
    assert (out.compare[0].key, out.compare[0].range_end) == (b"ns/c", b"ns0")
    assert out.success[0].request_txn.success[0].request_put.key == b"ns/p"
    assert out.failure[0].request_range.key == b"ns/r"
    assert request.success[0].request_txn.success[0].request_put.key == b"p"  # the caller's is untouched

    response = rpc_pb2.TxnResponse(responses=[rpc_pb2.ResponseOp(response_txn=rpc_pb2.TxnResponse(
        responses=[rpc_pb2.ResponseOp(response_put=rpc_pb2.PutResponse(
            prev_kv=kv_pb2.KeyValue(key=b"ns/p")))]))])
    ns.txn_response(response)
    assert response.responses[0].response_txn.responses[0].response_put.prev_kv.key == b"p"


# --- registration, flags, endpoints ---


def test_registration_is_stored_in_grpc_naming_format() -> None:
    value = registration_value("127.0.0.1:23790", "host-a")
    assert json.loads(value) == {"Op": 0, "Addr": "127.0.0.1:23790", "Metadata": '{"name":"host-a"}'}
    assert parse_registration(value) == (0, "127.0.0.1:23790", "host-a")
    assert parse_registration(b"not json") is None


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_proxy_arguments(parser)
    return parser.parse_args(list(argv))


def test_flags_become_a_proxy_config() -> None:
    config = proxy_config_from_args(_parse(
        "--endpoints=127.0.0.1:2379,http://127.0.0.1:22379", "--listen-addr=127.0.0.1:23790",
        "--advertise-client-url=127.0.0.1:23790", "--namespace=/ns/", "--resolver-prefix=/proxies",
        "--resolver-ttl=30"))
    assert config.endpoints == ["127.0.0.1:2379", "http://127.0.0.1:22379"]
    assert (config.namespace, config.resolver_prefix, config.resolver_ttl) == ("/ns/", "/proxies", 30)


@pytest.mark.parametrize(("argv", "message"), [
    (("--resolver-prefix=/p",), "invalid resolver-ttl 0"),
    (("--resolver-ttl=5",), 'invalid resolver-prefix ""'),
])
def test_flags_refuse_what_etcds_proxy_refuses(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        proxy_config_from_args(_parse("--advertise-client-url=127.0.0.1:23790", *argv))


def test_endpoints_may_carry_a_scheme() -> None:
    assert endpoint_target("http://127.0.0.1:2379") == "127.0.0.1:2379"
    assert endpoint_target("https://10.0.0.1:2379/") == "10.0.0.1:2379"
    assert endpoint_target("127.0.0.1:2379") == "127.0.0.1:2379"
