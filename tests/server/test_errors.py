"""etcd's errors: exact codes and messages, and how lower-layer exceptions map onto them."""

from __future__ import annotations

import grpc
import pytest

from pyetcd import errors
from raft.core import ProposalDropped
from storage.mvcc import (
    CompactedError,
    FutureRevisionError,
    LeaseExistsError,
    LeaseNotFoundError,
    QuotaExceededError,
)


def test_errors_carry_etcds_codes_and_messages() -> None:
    assert (errors.ErrGRPCLeaseNotFound.code, errors.ErrGRPCLeaseNotFound.message) == (
        grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found")
    assert (errors.ErrGRPCCompacted.code, errors.ErrGRPCCompacted.message) == (
        grpc.StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted")
    assert (errors.ErrGRPCNoLeader.code, str(errors.ErrGRPCNoLeader)) == (
        grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader")
    assert errors.ErrGRPCRequestTooLarge.code == grpc.StatusCode.INVALID_ARGUMENT


def test_every_message_names_one_error() -> None:
    messages = [err.message for err in errors.ALL_ERRORS]
    assert len(messages) == len(set(messages))
    assert all(message.startswith(("etcdserver: ", "mvcc: ")) for message in messages)
    assert errors.from_message("etcdserver: no leader") is errors.ErrGRPCNoLeader
    assert errors.from_message("no such thing") is None


def test_client_side_names_are_the_same_errors() -> None:
    assert errors.ErrNoLeader is errors.ErrGRPCNoLeader
    same = errors.EtcdError(grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found")
    assert errors.ErrLeaseNotFound == same


@pytest.mark.parametrize(("raised", "expected"), [
    (CompactedError(5), errors.ErrGRPCCompacted),
    (FutureRevisionError(9), errors.ErrGRPCFutureRev),
    (LeaseNotFoundError(3), errors.ErrGRPCLeaseNotFound),
    (LeaseExistsError(3), errors.ErrGRPCLeaseExist),
    (QuotaExceededError(10, 20), errors.ErrGRPCNoSpace),
    (ProposalDropped(), errors.ErrGRPCNoLeader),
    (errors.NotPrimaryError(), errors.ErrGRPCNotLeader),
    (TimeoutError(), errors.ErrGRPCTimeout),
    (errors.ErrGRPCMemberExist, errors.ErrGRPCMemberExist),
])
def test_lower_layer_exceptions_map_to_etcd_errors(raised: BaseException, expected: errors.EtcdError) -> None:
    assert errors.to_etcd_error(raised) == expected


def test_unknown_exceptions_become_unknown_with_their_text() -> None:
    mapped = errors.to_etcd_error(ValueError("disk on fire"))
    assert (mapped.code, mapped.message) == (grpc.StatusCode.UNKNOWN, "disk on fire")


def test_an_error_from_another_member_is_recognised_by_its_message() -> None:
    known = errors.from_status(grpc.StatusCode.NOT_FOUND, "etcdserver: member not found")
    assert known is errors.ErrGRPCMemberNotFound
    odd = errors.from_status(grpc.StatusCode.INTERNAL, "boom")
    assert (odd.code, odd.message) == (grpc.StatusCode.INTERNAL, "boom")
